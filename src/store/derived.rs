//! Conflicts derived from more than one field or record, kept up to date by
//! every write and merged change like the tree (`tree.rs`) and the blocker
//! counts (`blockers.rs`), and the same on every replica whatever order the
//! changes arrived in. Each is a function of the synced fields as they
//! stand; none writes a change.
//!
//! - `archived_while_open` (a work item's `archived_at`): the item is
//!   archived, not completed and not deleted. An archive that raced a
//!   reopen leaves that; the item would otherwise sit in no list.
//! - `parent_deleted` (a work item's `parent_id`): the item is live and its
//!   parent is deleted (a child created under a parent deleted meanwhile).
//! - `dependency_cycle` (a dependency's `removed`): the live edge lies on a
//!   cycle of live edges, oriented waiter -> awaited (`depends_on`: the
//!   source waits for the target; `blocks`: the target waits for the
//!   source). Local operations refuse cycles; two stores can still make one.

use std::collections::{HashMap, HashSet, VecDeque};

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::id::{self, get_id};
use crate::error::Result;

pub(crate) const ARCHIVED_WHILE_OPEN: &str = "archived_while_open";
pub(crate) const PARENT_DELETED: &str = "parent_deleted";
pub(crate) const DEPENDENCY_CYCLE: &str = "dependency_cycle";

/// Record (`on`) or clear one derived conflict.
pub(super) fn set(tx: &Transaction<'_>, collection: &str, id: &str, field: &str, kind: &str, on: bool) -> Result<()> {
    if on {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO conflicts (collection, record_id, field, kind) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute([collection, id, field, kind])?;
    } else {
        tx.prepare_cached(
            "DELETE FROM conflicts WHERE collection = ?1 AND record_id = ?2 AND field = ?3 AND kind = ?4",
        )?
        .execute([collection, id, field, kind])?;
    }
    Ok(())
}

/// Whether a work item in this state is archived while still open.
pub(super) fn archived_while_open(archived: bool, completed: bool, deleted: bool) -> bool {
    archived && !completed && !deleted
}

/// Whether work item `parent` has a row here and is deleted.
pub(super) fn is_deleted(conn: &Connection, parent: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT deleted_at IS NOT NULL FROM work_items WHERE id = ?1")?
        .query_row([id::sql(parent)], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Work item `id` was deleted or restored: re-derive `parent_deleted` on
/// its children.
pub(super) fn parent_deletion_changed(tx: &Transaction<'_>, id: &str, deleted: bool) -> Result<()> {
    let children: Vec<(String, bool)> = tx
        .prepare_cached("SELECT id, deleted_at IS NULL FROM work_items WHERE parent_id = ?1")?
        .query_map([id::sql(id)], |r| Ok((get_id(r, 0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (child, live) in children {
        set(tx, "work_items", &child, "parent_id", PARENT_DELETED, live && deleted)?;
    }
    Ok(())
}

/// The live edges from `node` (its waiter side) to what it awaits:
/// `(edge id, awaited)`.
fn awaited_by(conn: &Connection, node: &str) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, target_id FROM dependencies
              WHERE source_id = ?1 AND removed = 0 AND dependency_type = 'depends_on'
             UNION ALL
             SELECT id, source_id FROM dependencies
              WHERE target_id = ?1 AND removed = 0 AND dependency_type = 'blocks'",
        )?
        .query_map([id::sql(node)], |r| Ok((get_id(r, 0)?, get_id(r, 1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The live edges into `node` (its awaited side) from what waits for it:
/// `(edge id, waiter)`.
fn waiting_for(conn: &Connection, node: &str) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, source_id FROM dependencies
              WHERE target_id = ?1 AND removed = 0 AND dependency_type = 'depends_on'
             UNION ALL
             SELECT id, target_id FROM dependencies
              WHERE source_id = ?1 AND removed = 0 AND dependency_type = 'blocks'",
        )?
        .query_map([id::sql(node)], |r| Ok((get_id(r, 0)?, get_id(r, 1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Every item reachable from `from` along live edges (`forward`: waiter to
/// awaited; else backwards), `from` included.
fn reach(conn: &Connection, from: &str, forward: bool) -> Result<HashSet<String>> {
    let mut seen: HashSet<String> = HashSet::from([from.to_owned()]);
    let mut queue = VecDeque::from([from.to_owned()]);
    while let Some(node) = queue.pop_front() {
        let next = if forward {
            awaited_by(conn, &node)?
        } else {
            waiting_for(conn, &node)?
        };
        for (_, other) in next {
            if seen.insert(other.clone()) {
                queue.push_back(other);
            }
        }
    }
    Ok(seen)
}

/// Whether `to` is reachable from `from` along live edges. The search runs
/// from both ends at once (forward from `from`, backward from `to`, the
/// smaller frontier first) and ends when they meet or either runs out: it
/// costs about twice the smaller neighbourhood, so a new edge hanging off a
/// fresh item (an import's, a tool's) looks at a few rows, not at all that
/// its awaited side reaches.
fn reaches(conn: &Connection, from: &str, to: &str) -> Result<bool> {
    if from == to {
        return Ok(true);
    }
    let mut ahead: HashSet<String> = HashSet::from([from.to_owned()]);
    let mut behind: HashSet<String> = HashSet::from([to.to_owned()]);
    let mut ahead_queue = VecDeque::from([from.to_owned()]);
    let mut behind_queue = VecDeque::from([to.to_owned()]);
    loop {
        let forward = ahead_queue.len() <= behind_queue.len();
        let (queue, seen, other) = if forward {
            (&mut ahead_queue, &mut ahead, &behind)
        } else {
            (&mut behind_queue, &mut behind, &ahead)
        };
        // One side ran out without meeting the other: everything it can
        // reach has been seen.
        let Some(node) = queue.pop_front() else {
            return Ok(false);
        };
        let next = if forward {
            awaited_by(conn, &node)?
        } else {
            waiting_for(conn, &node)?
        };
        for (_, n) in next {
            if other.contains(&n) {
                return Ok(true);
            }
            if seen.insert(n.clone()) {
                queue.push_back(n);
            }
        }
    }
}

/// The waiter and the awaited item of dependency `edge`, while it is live.
fn live_edge(conn: &Connection, edge: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT CASE dependency_type WHEN 'blocks' THEN target_id ELSE source_id END,
                    CASE dependency_type WHEN 'blocks' THEN source_id ELSE target_id END
               FROM dependencies
              WHERE id = ?1 AND removed = 0 AND dependency_type IN ('depends_on', 'blocks')",
        )?
        .query_row([id::sql(edge)], |r| Ok((get_id(r, 0)?, get_id(r, 1)?)))
        .optional()?)
}

/// Dependency `edge` just became live (or arrived live): flag every edge of
/// each cycle it closes. An edge `a -> b` lies on such a cycle when `a` is
/// reachable from the new edge's awaited side and `b` reaches its waiter.
pub(super) fn edge_became_live(tx: &Transaction<'_>, edge: &str) -> Result<()> {
    let Some((waiter, awaited)) = live_edge(tx, edge)? else {
        return Ok(());
    };
    // Most new edges close nothing: one search from both ends.
    if !reaches(tx, &awaited, &waiter)? {
        return Ok(());
    }
    let ahead = reach(tx, &awaited, true)?;
    let behind = reach(tx, &waiter, false)?;
    for a in &ahead {
        for (e, b) in awaited_by(tx, a)? {
            if behind.contains(&b) {
                set(tx, "dependencies", &e, "removed", DEPENDENCY_CYCLE, true)?;
            }
        }
    }
    Ok(())
}

/// Dependency `edge` stopped being live: it is on no cycle, and every
/// flagged edge is checked again (is its waiter still reachable from its
/// awaited side?).
pub(super) fn edge_died(tx: &Transaction<'_>, edge: &str) -> Result<()> {
    set(tx, "dependencies", edge, "removed", DEPENDENCY_CYCLE, false)?;
    let flagged: Vec<String> = tx
        .prepare_cached(
            "SELECT record_id FROM conflicts WHERE collection = 'dependencies' AND kind = 'dependency_cycle'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for e in flagged {
        let on_cycle = match live_edge(tx, &e)? {
            Some((waiter, awaited)) => reaches(tx, &awaited, &waiter)?,
            None => false,
        };
        if !on_cycle {
            set(tx, "dependencies", &e, "removed", DEPENDENCY_CYCLE, false)?;
        }
    }
    Ok(())
}

/// Every derived conflict of this file, computed at once from the rows (for
/// `Store::verify`): `(collection, record id, field, kind)`.
pub(super) fn derive_all(conn: &Connection) -> Result<Vec<(String, String, String, String)>> {
    let mut out = Vec::new();
    let ids = |sql: &str| -> Result<Vec<String>> {
        Ok(conn
            .prepare(sql)?
            .query_map([], |r| get_id(r, 0))?
            .collect::<rusqlite::Result<_>>()?)
    };
    for id in
        ids("SELECT id FROM work_items WHERE archived_at IS NOT NULL AND status != 'completed' AND deleted_at IS NULL")?
    {
        out.push((
            "work_items".into(),
            id,
            "archived_at".into(),
            ARCHIVED_WHILE_OPEN.into(),
        ));
    }
    for id in ids("SELECT c.id FROM work_items c JOIN work_items p ON p.id = c.parent_id
          WHERE c.deleted_at IS NULL AND p.deleted_at IS NOT NULL")?
    {
        out.push(("work_items".into(), id, "parent_id".into(), PARENT_DELETED.into()));
    }
    // Edges on a cycle: both ends in one strongly connected component.
    let edges: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT id, CASE dependency_type WHEN 'blocks' THEN target_id ELSE source_id END,
                    CASE dependency_type WHEN 'blocks' THEN source_id ELSE target_id END
               FROM dependencies WHERE removed = 0 AND dependency_type IN ('depends_on', 'blocks')",
        )?
        .query_map([], |r| Ok((get_id(r, 0)?, get_id(r, 1)?, get_id(r, 2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let component = components(&edges);
    for (e, waiter, awaited) in &edges {
        if component[waiter.as_str()] == component[awaited.as_str()] {
            out.push((
                "dependencies".into(),
                e.clone(),
                "removed".into(),
                DEPENDENCY_CYCLE.into(),
            ));
        }
    }
    Ok(out)
}

/// The strongly connected component of every node of `edges`
/// (`(id, from, to)`), by Kosaraju's two passes, iteratively.
fn components(edges: &[(String, String, String)]) -> HashMap<&str, usize> {
    let mut forward: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut backward: HashMap<&str, Vec<&str>> = HashMap::new();
    for (_, a, b) in edges {
        forward.entry(a).or_default().push(b);
        backward.entry(b).or_default().push(a);
        forward.entry(b).or_default();
        backward.entry(a).or_default();
    }
    let mut nodes: Vec<&str> = forward.keys().copied().collect();
    nodes.sort_unstable();
    // First pass: nodes by finishing time.
    let mut done: HashSet<&str> = HashSet::new();
    let mut order: Vec<&str> = Vec::with_capacity(nodes.len());
    for &start in &nodes {
        if !done.insert(start) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.pop() {
            let out = &forward[node];
            if next < out.len() {
                stack.push((node, next + 1));
                if done.insert(out[next]) {
                    stack.push((out[next], 0));
                }
            } else {
                order.push(node);
            }
        }
    }
    // Second pass, on the reversed edges, latest finish first.
    let mut component: HashMap<&str, usize> = HashMap::new();
    for (n, &start) in order.iter().rev().enumerate() {
        if component.contains_key(start) {
            continue;
        }
        component.insert(start, n);
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &prev in &backward[node] {
                if !component.contains_key(prev) {
                    component.insert(prev, n);
                    stack.push(prev);
                }
            }
        }
    }
    component
}

//! The derived hierarchy: every work item's `path` and `depth`, computed
//! from the `parent_id` links, the same on every replica whatever order the
//! changes arrived in, and without writing new changes.
//!
//! Local operations refuse moves that would break a rule, but merged
//! changes can still make a tree that no replica wrote: concurrent moves
//! that form a cycle (of any length), a chain deeper than the limit, a child
//! whose parent has not arrived. Each is resolved by a rule that depends
//! only on the links:
//! - a **cycle** is found by walking the parent links by id (never the
//!   stored paths: the depth rule cuts those, so a cycle longer than the
//!   limit never shows in one) and cut above its member with the smallest
//!   id, which becomes a root (a `cycle` conflict on its `parent_id`);
//! - depths then count from the (cut) roots down, and an item that would
//!   sit deeper than [`MAX_DEPTH`] becomes a root, its subtree following
//!   (a `depth` conflict);
//! - an item whose parent is unknown here is a root until the parent arrives
//!   (an `orphan` conflict).
//!
//! A path lists the ancestors' keys (the local row numbers), `/k0/k1/`, and
//! `/` for a root: a subtree is the range of paths that start with its
//! root's path and key. Keys are local; the rules above compare ids. Paths
//! are an output (subtree queries read them), never an input to the rules.
//!
//! Invariant kept between transactions: every stored path is the derived
//! one. So only a change of one item's link (or the arrival of an item
//! whose children came first) can move anything, and only that item's
//! subtree by links: [`relink`] walks the links up from the old and the new
//! parent (one indexed lookup per link; a sound tree is at most
//! [`MAX_DEPTH`] deep) to see whether a cycle was opened or closed, then
//! derives the subtree again. [`derive_all`] derives the whole tree at once,
//! for `Store::verify`.

use std::collections::{HashSet, VecDeque};

use rusqlite::{OptionalExtension, Transaction};

use super::id::{self, get_id};
use crate::domain::MAX_DEPTH;
use crate::error::Result;

/// Why a derived place differs from the item's own parent link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeIssue {
    Cycle,
    Depth,
    Orphan,
}

impl TreeIssue {
    pub fn as_str(self) -> &'static str {
        match self {
            TreeIssue::Cycle => "cycle",
            TreeIssue::Depth => "depth",
            TreeIssue::Orphan => "orphan",
        }
    }
}

/// Where an item goes, given its parent link and the parent's stored place.
pub(super) struct Place {
    /// The ancestors' keys: `/k0/k1/`.
    pub path: String,
    pub depth: i64,
    pub issue: Option<TreeIssue>,
    /// The parent's row exists and the parent is deleted.
    pub parent_deleted: bool,
}

pub(crate) const ROOT_PATH: &str = "/";

fn root(issue: Option<TreeIssue>) -> Place {
    Place {
        path: ROOT_PATH.to_owned(),
        depth: 0,
        issue,
        parent_deleted: false,
    }
}

/// The keys of a path, root first.
pub fn keys(path: &str) -> impl Iterator<Item = i64> + '_ {
    path.split('/').filter_map(|s| s.parse().ok())
}

/// The path of the children of the item at `path` with `key`.
pub(crate) fn child_path(path: &str, key: i64) -> String {
    format!("{path}{key}/")
}

/// The bounds of the paths of every item below the item at `path` with
/// `key`: `path >= low AND path < high`.
pub(crate) fn subtree_range(path: &str, key: i64) -> (String, String) {
    let low = child_path(path, key);
    let high = format!("{}0", &low[..low.len() - 1]);
    (low, high)
}

/// The id of the work item stored under `key`.
pub fn id_of(conn: &rusqlite::Connection, key: i64) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT id FROM work_items WHERE key = ?1")?
        .query_row([key], |r| get_id(r, 0))?)
}

/// The parent link of work item `id`: `None` for a root or an item that has
/// no row here; an empty link is no link.
fn parent_of(conn: &rusqlite::Connection, id: &str) -> Result<Option<String>> {
    let parent: Option<Option<String>> = conn
        .prepare_cached("SELECT parent_id FROM work_items WHERE id = ?1")?
        .query_row([id::sql(id)], |r| id::get_opt_id(r, 0))
        .optional()?;
    Ok(parent.flatten().filter(|p| !p.is_empty()))
}

/// The members of the cycle that the link `id -> parent` closes, if it
/// closes one: `id` and every item met walking up the parent links from
/// `parent` back to `id`. One indexed lookup per link walked (a sound tree
/// is at most [`MAX_DEPTH`] links deep); the walk stops at a root, at an
/// item that has not arrived, or at a cycle that does not pass through `id`.
/// `id`'s own stored link is never followed, so this also answers for the
/// link `id` had before a move.
pub(super) fn cycle_through(conn: &rusqlite::Connection, id: &str, parent: &str) -> Result<Option<Vec<String>>> {
    let mut members = vec![id.to_owned()];
    let mut seen: HashSet<String> = HashSet::from([id.to_owned()]);
    let mut at = parent.to_owned();
    loop {
        if at == id {
            return Ok(Some(members));
        }
        if !seen.insert(at.clone()) {
            return Ok(None);
        }
        let Some(up) = parent_of(conn, &at)? else {
            return Ok(None);
        };
        members.push(std::mem::replace(&mut at, up));
    }
}

/// Whether `ancestor` is `item` or one of its ancestors by parent links
/// (whatever the stored paths say: a depth cut hides the ancestors above
/// it from them). Local moves check this before writing.
pub(crate) fn links_reach(conn: &rusqlite::Connection, item: &str, ancestor: &str) -> Result<bool> {
    if item == ancestor {
        return Ok(true);
    }
    Ok(cycle_through(conn, ancestor, item)?.is_some())
}

/// The place of item `id` under `parent`, from the parent's stored place,
/// when the link `id -> parent` closes no cycle (the caller knows, or `id`
/// has no children).
pub(super) fn place(tx: &Transaction<'_>, id: &str, parent: Option<&str>) -> Result<Place> {
    let Some(parent) = parent.filter(|p| !p.is_empty()) else {
        return Ok(root(None));
    };
    if parent == id {
        return Ok(root(Some(TreeIssue::Cycle)));
    }
    let found: Option<(i64, String, i64, bool)> = tx
        .prepare_cached("SELECT key, path, depth, deleted_at IS NOT NULL FROM work_items WHERE id = ?1")?
        .query_row([id::sql(parent)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((parent_key, parent_path, parent_depth, parent_deleted)) = found else {
        return Ok(root(Some(TreeIssue::Orphan)));
    };
    if parent_depth + 1 > MAX_DEPTH {
        return Ok(Place {
            parent_deleted,
            ..root(Some(TreeIssue::Depth))
        });
    }
    Ok(Place {
        path: child_path(&parent_path, parent_key),
        depth: parent_depth + 1,
        issue: None,
        parent_deleted,
    })
}

/// Record (or clear) the derived conflict of one item.
pub(super) fn set_issue(tx: &Transaction<'_>, id: &str, issue: Option<TreeIssue>) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM conflicts WHERE collection = 'work_items' AND record_id = ?1 AND kind IN ('cycle', 'depth', 'orphan')",
    )?
    .execute([id])?;
    if let Some(issue) = issue {
        tx.prepare_cached(
            "INSERT INTO conflicts (collection, record_id, field, kind) VALUES ('work_items', ?1, 'parent_id', ?2)",
        )?
        .execute([id, issue.as_str()])?;
    }
    Ok(())
}

fn store_place(tx: &Transaction<'_>, key: i64, path: &str, depth: i64) -> Result<()> {
    tx.prepare_cached("UPDATE work_items SET path = ?2, depth = ?3 WHERE key = ?1 AND (path != ?2 OR depth != ?3)")?
        .execute(rusqlite::params![key, path, depth])?;
    Ok(())
}

/// Re-derive the place of item `id` (stored under `key`) whose parent link
/// just changed from `old_parent` to `new_parent` (or which just arrived,
/// with children already here), and of everything below it.
///
/// Every place is a function of the links alone: a cycle is found by
/// walking the links (never the stored paths, which the depth rule cuts),
/// its smallest member is cut and becomes a root, and depths count from the
/// (cut) roots down. Only the items whose parent chain passes through `id`
/// can move: they are `id`'s subtree by links. When a cycle was opened or
/// closed, that whole subtree is walked (the cut item of a cycle that the
/// move opened sits somewhere in it); otherwise the walk stops at children
/// whose place did not change. Returns `id`'s own tree conflict, if any.
pub(super) fn relink(
    tx: &Transaction<'_>,
    id: &str,
    key: i64,
    old_parent: Option<&str>,
    new_parent: Option<&str>,
) -> Result<Option<TreeIssue>> {
    let old_cycle = match old_parent {
        Some(old) => cycle_through(tx, id, old)?,
        None => None,
    };
    let new_cycle = match new_parent {
        Some(new) => cycle_through(tx, id, new)?,
        None => None,
    };
    if let Some(members) = new_cycle {
        let cut = members.iter().min().cloned().unwrap_or_else(|| id.to_owned());
        let cut_key: i64 = tx
            .prepare_cached("SELECT key FROM work_items WHERE id = ?1")?
            .query_row([id::sql(&cut)], |r| r.get(0))?;
        store_place(tx, cut_key, ROOT_PATH, 0)?;
        set_issue(tx, &cut, Some(TreeIssue::Cycle))?;
        rederive_below(tx, &cut, cut_key, ROOT_PATH, 0, true)?;
        // Every member but the cut one hangs below it, within the limit or
        // cut again by depth (which the walk recorded).
        return Ok((cut == id).then_some(TreeIssue::Cycle));
    }
    let place = place(tx, id, new_parent)?;
    store_place(tx, key, &place.path, place.depth)?;
    set_issue(tx, id, place.issue)?;
    rederive_below(tx, id, key, &place.path, place.depth, old_cycle.is_some())?;
    Ok(place.issue)
}

/// Re-derive the places below `top` (stored under `key`), whose own place
/// was just set to `path`/`depth`. Walks the children by parent link,
/// breadth first; unless `whole`, a child whose place is unchanged keeps
/// its subtree. A child met twice is the cut member of a cycle: `top`.
pub(super) fn rederive_below(
    tx: &Transaction<'_>,
    top: &str,
    key: i64,
    path: &str,
    depth: i64,
    whole: bool,
) -> Result<()> {
    let mut queue = VecDeque::from([(top.to_owned(), key, path.to_owned(), depth)]);
    let mut seen: HashSet<i64> = HashSet::from([key]);
    while let Some((node, node_key, node_path, node_depth)) = queue.pop_front() {
        let children: Vec<(i64, String, String, i64)> = tx
            .prepare_cached("SELECT key, id, path, depth FROM work_items WHERE parent_id = ?1 ORDER BY id")?
            .query_map([id::sql(&node)], |r| {
                Ok((r.get(0)?, get_id(r, 1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let under = child_path(&node_path, node_key);
        for (child_key, child, old_path, old_depth) in children {
            if !seen.insert(child_key) {
                continue;
            }
            let (new_path, new_depth, issue) = if node_depth + 1 > MAX_DEPTH {
                (ROOT_PATH.to_owned(), 0, Some(TreeIssue::Depth))
            } else {
                (under.clone(), node_depth + 1, None)
            };
            // Why the child sits where it does can change even where its
            // place does not (an orphan whose parent arrived at the limit).
            set_issue(tx, &child, issue)?;
            if new_path == old_path && new_depth == old_depth && !whole {
                continue;
            }
            store_place(tx, child_key, &new_path, new_depth)?;
            queue.push_back((child, child_key, new_path, new_depth));
        }
    }
    Ok(())
}

/// Whether any work item links to `id` as its parent.
pub(super) fn has_children(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM work_items WHERE parent_id = ?1)")?
        .query_row([id::sql(id)], |r| r.get(0))?)
}

/// One work item's derived place: key, path, depth and tree conflict.
pub(super) type DerivedPlace = (i64, String, i64, Option<TreeIssue>);

/// The whole tree derived at once from the links, for checking the
/// incremental derivation (`Store::verify`): per work item, by key, its
/// path, depth and tree conflict. Independent of the order the items were
/// stored in: cycles are found by walking the links, each is cut above its
/// smallest id, and depths count from the roots down.
pub(super) fn derive_all(conn: &rusqlite::Connection) -> Result<Vec<DerivedPlace>> {
    let rows: Vec<(i64, String, Option<String>)> = conn
        .prepare("SELECT key, id, parent_id FROM work_items ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, get_id(r, 1)?, id::get_opt_id(r, 2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let at: std::collections::HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, id, _))| (id.as_str(), i))
        .collect();
    // The parent of each item: None for a root, Some(None) when the parent
    // has not arrived.
    let parent: Vec<Option<Option<usize>>> = rows
        .iter()
        .map(|(_, _, p)| p.as_deref().filter(|p| !p.is_empty()).map(|p| at.get(p).copied()))
        .collect();
    let mut issue: Vec<Option<TreeIssue>> = vec![None; rows.len()];
    let mut is_root: Vec<bool> = parent.iter().map(|p| !matches!(p, Some(Some(_)))).collect();
    for (i, p) in parent.iter().enumerate() {
        if matches!(p, Some(None)) {
            issue[i] = Some(TreeIssue::Orphan);
        }
    }
    // Cycles: walk each item's links; a walk that meets itself found one.
    let mut state = vec![0u8; rows.len()]; // 0 unseen, 1 on this walk, 2 done
    for start in 0..rows.len() {
        let mut walk = Vec::new();
        let mut i = start;
        loop {
            match state[i] {
                2 => break,
                1 => {
                    let from = walk.iter().position(|w| *w == i).unwrap_or_default();
                    let cut = walk[from..]
                        .iter()
                        .copied()
                        .min_by(|a: &usize, b: &usize| rows[*a].1.cmp(&rows[*b].1))
                        .unwrap_or(i);
                    is_root[cut] = true;
                    issue[cut] = Some(TreeIssue::Cycle);
                    break;
                }
                _ => {}
            }
            state[i] = 1;
            walk.push(i);
            match parent[i] {
                Some(Some(p)) => i = p,
                _ => break,
            }
        }
        for w in walk {
            state[w] = 2;
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    for (i, p) in parent.iter().enumerate() {
        if let (Some(Some(p)), false) = (p, is_root[i]) {
            children[*p].push(i);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut queue: VecDeque<(usize, String, i64)> = (0..rows.len())
        .filter(|i| is_root[*i])
        .map(|i| (i, ROOT_PATH.to_owned(), 0))
        .collect();
    while let Some((i, path, depth)) = queue.pop_front() {
        let under = child_path(&path, rows[i].0);
        for c in &children[i] {
            if depth + 1 > MAX_DEPTH {
                issue[*c] = Some(TreeIssue::Depth);
                queue.push_back((*c, ROOT_PATH.to_owned(), 0));
            } else {
                queue.push_back((*c, under.clone(), depth + 1));
            }
        }
        out.push((rows[i].0, path, depth, issue[i]));
    }
    Ok(out)
}

/// Whether any work item here waits at the root for a parent that has not
/// arrived (an `orphan` conflict). Only then can a new item have children
/// already. `known` caches the answer for one write transaction; a
/// transaction that makes an orphan sets it.
pub(super) fn orphans_exist(tx: &Transaction<'_>, known: &mut Option<bool>) -> Result<bool> {
    if let Some(answer) = *known {
        return Ok(answer);
    }
    let answer: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM conflicts WHERE collection = 'work_items' AND kind = 'orphan')")?
        .query_row([], |r| r.get(0))?;
    *known = Some(answer);
    Ok(answer)
}

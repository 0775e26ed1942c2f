//! The derived hierarchy: every work item's `path` and `depth`, computed
//! from the `parent_id` links, the same on every replica whatever order the
//! changes arrived in, and without writing new changes.
//!
//! Local operations refuse moves that would break a rule, but merged
//! changes can still make a tree that no replica wrote: two concurrent moves
//! that form a cycle, a chain deeper than the limit, a child whose parent has
//! not arrived. Each is resolved by a rule that depends only on the links:
//! - a **cycle** is cut above its member with the smallest id, which becomes a
//!   root (a `cycle` conflict on its `parent_id`);
//! - an item that would sit deeper than [`MAX_DEPTH`] becomes a root, its
//!   subtree following it (a `depth` conflict);
//! - an item whose parent is unknown here is a root until the parent arrives
//!   (an `orphan` conflict).
//!
//! Invariant kept between transactions: every stored path is the derived
//! one. So after a change to one item only that item's subtree (by parent
//! links) can need new paths, and a subtree whose root keeps its path is
//! left alone.

use std::collections::{HashSet, VecDeque};

use rusqlite::{OptionalExtension, Transaction};

use crate::domain::MAX_DEPTH;
use crate::error::Result;

/// Why a derived place differs from the item's own parent link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeIssue {
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
    pub path: String,
    pub depth: i64,
    pub issue: Option<TreeIssue>,
    /// A cycle was found whose smallest member is another item: the tree
    /// must be re-derived from that item, as a root.
    pub reroot: Option<String>,
}

fn root(id: &str, issue: Option<TreeIssue>) -> Place {
    Place {
        path: format!("/{id}"),
        depth: 0,
        issue,
        reroot: None,
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The place of item `id` under `parent`, from the parent's stored path.
pub(super) fn place(tx: &Transaction<'_>, id: &str, parent: Option<&str>) -> Result<Place> {
    let Some(parent) = parent.filter(|p| !p.is_empty()) else {
        return Ok(root(id, None));
    };
    let found: Option<(String, i64)> = tx
        .prepare_cached("SELECT path, depth FROM work_items WHERE id = ?1")?
        .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((parent_path, parent_depth)) = found else {
        return Ok(root(id, Some(TreeIssue::Orphan)));
    };
    let segs: Vec<&str> = segments(&parent_path).collect();
    if let Some(at) = segs.iter().position(|s| *s == id) {
        // id -> parent -> ... -> id: the members are id and the items on the
        // parent's path below it.
        let breaker = segs[at..].iter().min().copied().unwrap_or(id);
        return Ok(if breaker == id {
            root(id, Some(TreeIssue::Cycle))
        } else {
            Place {
                reroot: Some(breaker.to_owned()),
                ..root(id, None)
            }
        });
    }
    if parent_depth + 1 > MAX_DEPTH {
        return Ok(root(id, Some(TreeIssue::Depth)));
    }
    Ok(Place {
        path: format!("{parent_path}/{id}"),
        depth: parent_depth + 1,
        issue: None,
        reroot: None,
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

fn store_place(tx: &Transaction<'_>, id: &str, path: &str, depth: i64) -> Result<()> {
    tx.prepare_cached("UPDATE work_items SET path = ?2, depth = ?3 WHERE id = ?1")?
        .execute(rusqlite::params![id, path, depth])?;
    Ok(())
}

/// Re-derive the places below `top`, whose own place was just set to
/// `path`/`depth`. Walks the children by parent link, breadth first; a child
/// whose place is unchanged keeps its subtree.
pub(super) fn rederive_below(tx: &Transaction<'_>, top: &str, path: &str, depth: i64) -> Result<()> {
    let mut queue = VecDeque::from([(top.to_owned(), path.to_owned(), depth)]);
    let mut seen: HashSet<String> = HashSet::from([top.to_owned()]);
    let mut reroots: Vec<String> = Vec::new();
    while let Some((node, path, depth)) = queue.pop_front() {
        let children: Vec<(String, String)> = tx
            .prepare_cached("SELECT id, path FROM work_items WHERE parent_id = ?1 ORDER BY id")?
            .query_map([&node], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (child, old_path) in children {
            if !seen.insert(child.clone()) {
                continue;
            }
            let segs: Vec<&str> = segments(&path).collect();
            let (new_path, new_depth, issue) = if let Some(at) = segs.iter().position(|s| *s == child) {
                // The child is an ancestor of its parent: a cycle.
                let breaker = segs[at..].iter().min().copied().unwrap_or(&child);
                if breaker != child {
                    reroots.push(breaker.to_owned());
                }
                (format!("/{child}"), 0, Some(TreeIssue::Cycle))
            } else if depth + 1 > MAX_DEPTH {
                (format!("/{child}"), 0, Some(TreeIssue::Depth))
            } else {
                (format!("{path}/{child}"), depth + 1, None)
            };
            // Why the child sits where it does can change even where its
            // place does not (an orphan whose parent arrived inside a cycle).
            set_issue(tx, &child, issue)?;
            if new_path == old_path {
                continue;
            }
            store_place(tx, &child, &new_path, new_depth)?;
            if issue != Some(TreeIssue::Cycle) {
                queue.push_back((child, new_path, new_depth));
            }
        }
    }
    for breaker in reroots {
        reroot(tx, &breaker)?;
    }
    Ok(())
}

/// Make `id` a root (the smallest member of a cycle) and re-derive below it.
pub(super) fn reroot(tx: &Transaction<'_>, id: &str) -> Result<()> {
    let path = format!("/{id}");
    let old: Option<String> = tx
        .prepare_cached("SELECT path FROM work_items WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if old.as_deref() == Some(path.as_str()) {
        set_issue(tx, id, Some(TreeIssue::Cycle))?;
        return Ok(());
    }
    store_place(tx, id, &path, 0)?;
    set_issue(tx, id, Some(TreeIssue::Cycle))?;
    rederive_below(tx, id, &path, 0)
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

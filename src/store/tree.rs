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
//! A path lists the ancestors' keys (the local row numbers), `/k0/k1/`, and
//! `/` for a root: a subtree is the range of paths that start with its
//! root's path and key. Keys are local; the rules above compare ids.
//!
//! Invariant kept between transactions: every stored path is the derived
//! one. So after a change to one item only that item's subtree (by parent
//! links) can need new paths, and a subtree whose root keeps its path is
//! left alone.

use std::collections::{HashSet, VecDeque};

use rusqlite::{OptionalExtension, Transaction};

use super::id::{self, get_id};
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
    /// The ancestors' keys: `/k0/k1/`.
    pub path: String,
    pub depth: i64,
    pub issue: Option<TreeIssue>,
    /// A cycle was found whose smallest member is another item: the tree
    /// must be re-derived from that item, as a root.
    pub reroot: Option<String>,
}

pub const ROOT_PATH: &str = "/";

fn root(issue: Option<TreeIssue>) -> Place {
    Place {
        path: ROOT_PATH.to_owned(),
        depth: 0,
        issue,
        reroot: None,
    }
}

/// The keys of a path, root first.
pub fn keys(path: &str) -> impl Iterator<Item = i64> + '_ {
    path.split('/').filter_map(|s| s.parse().ok())
}

/// The path of the children of the item at `path` with `key`.
pub fn child_path(path: &str, key: i64) -> String {
    format!("{path}{key}/")
}

/// The bounds of the paths of every item below the item at `path` with
/// `key`: `path >= low AND path < high`.
pub fn subtree_range(path: &str, key: i64) -> (String, String) {
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

/// The member of a cycle where it is cut: the smallest id among the items
/// from `me` down the path `members` (keys) to the parent.
fn breaker(tx: &Transaction<'_>, me: &str, members: &[i64]) -> Result<String> {
    let mut smallest = me.to_owned();
    for key in members {
        let id = id_of(tx, *key)?;
        if id < smallest {
            smallest = id;
        }
    }
    Ok(smallest)
}

/// The place of item `id` (stored under `key`, when it has a row) under
/// `parent`, from the parent's stored place.
pub(super) fn place(tx: &Transaction<'_>, id: &str, key: Option<i64>, parent: Option<&str>) -> Result<Place> {
    let Some(parent) = parent.filter(|p| !p.is_empty()) else {
        return Ok(root(None));
    };
    if parent == id {
        return Ok(root(Some(TreeIssue::Cycle)));
    }
    let found: Option<(i64, String, i64)> = tx
        .prepare_cached("SELECT key, path, depth FROM work_items WHERE id = ?1")?
        .query_row([id::sql(parent)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((parent_key, parent_path, parent_depth)) = found else {
        return Ok(root(Some(TreeIssue::Orphan)));
    };
    let path = child_path(&parent_path, parent_key);
    if let Some(key) = key {
        let line: Vec<i64> = keys(&path).collect();
        if let Some(at) = line.iter().position(|k| *k == key) {
            // id -> parent -> ... -> id: the members are id and the items on
            // the path below it.
            let breaker = breaker(tx, id, &line[at + 1..])?;
            return Ok(if breaker == id {
                root(Some(TreeIssue::Cycle))
            } else {
                Place {
                    reroot: Some(breaker),
                    ..root(None)
                }
            });
        }
    }
    if parent_depth + 1 > MAX_DEPTH {
        return Ok(root(Some(TreeIssue::Depth)));
    }
    Ok(Place {
        path,
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

fn store_place(tx: &Transaction<'_>, key: i64, path: &str, depth: i64) -> Result<()> {
    tx.prepare_cached("UPDATE work_items SET path = ?2, depth = ?3 WHERE key = ?1")?
        .execute(rusqlite::params![key, path, depth])?;
    Ok(())
}

/// Re-derive the places below `top` (stored under `key`), whose own place
/// was just set to `path`/`depth`. Walks the children by parent link,
/// breadth first; a child whose place is unchanged keeps its subtree.
pub(super) fn rederive_below(tx: &Transaction<'_>, top: &str, key: i64, path: &str, depth: i64) -> Result<()> {
    let mut queue = VecDeque::from([(top.to_owned(), key, path.to_owned(), depth)]);
    let mut seen: HashSet<i64> = HashSet::from([key]);
    let mut reroots: Vec<String> = Vec::new();
    while let Some((node, node_key, node_path, node_depth)) = queue.pop_front() {
        let children: Vec<(i64, String, String, i64)> = tx
            .prepare_cached("SELECT key, id, path, depth FROM work_items WHERE parent_id = ?1 ORDER BY id")?
            .query_map([id::sql(&node)], |r| {
                Ok((r.get(0)?, get_id(r, 1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let under = child_path(&node_path, node_key);
        let line: Vec<i64> = keys(&under).collect();
        for (child_key, child, old_path, old_depth) in children {
            if !seen.insert(child_key) {
                continue;
            }
            let (new_path, new_depth, issue) = if let Some(at) = line.iter().position(|k| *k == child_key) {
                // The child is an ancestor of its parent: a cycle.
                let breaker = breaker(tx, &child, &line[at + 1..])?;
                if breaker != child {
                    reroots.push(breaker);
                }
                (ROOT_PATH.to_owned(), 0, Some(TreeIssue::Cycle))
            } else if node_depth + 1 > MAX_DEPTH {
                (ROOT_PATH.to_owned(), 0, Some(TreeIssue::Depth))
            } else {
                (under.clone(), node_depth + 1, None)
            };
            // Why the child sits where it does can change even where its
            // place does not (an orphan whose parent arrived inside a cycle).
            set_issue(tx, &child, issue)?;
            if new_path == old_path && new_depth == old_depth {
                continue;
            }
            store_place(tx, child_key, &new_path, new_depth)?;
            if issue != Some(TreeIssue::Cycle) {
                queue.push_back((child, child_key, new_path, new_depth));
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
    let (key, old_path, old_depth): (i64, String, i64) = tx
        .prepare_cached("SELECT key, path, depth FROM work_items WHERE id = ?1")?
        .query_row([id::sql(id)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    set_issue(tx, id, Some(TreeIssue::Cycle))?;
    if old_path == ROOT_PATH && old_depth == 0 {
        return Ok(());
    }
    store_place(tx, key, ROOT_PATH, 0)?;
    rederive_below(tx, id, key, ROOT_PATH, 0)
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

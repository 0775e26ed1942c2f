//! Derived: how many open work items each work item waits for
//! (`work_items.open_blockers`), so that ready work is an index range instead
//! of two dependency probes per active item.
//!
//! An item waits for the target of its `depends_on` edges and for the source
//! of `blocks` edges that point at it; an awaited item is open until it is
//! completed or deleted. The count changes when an edge is added or removed
//! (the edge's waiter is recounted) and when an item opens or closes (every
//! item waiting for it is recounted). Like the tree, it is derived from
//! synced fields, never synced itself.

use rusqlite::Transaction;

use super::id;
use crate::error::Result;

/// Recount the open blockers of work item `id`.
pub(super) fn recount(tx: &Transaction<'_>, id: &str) -> Result<()> {
    // Written only when the count changed: a new item with no edges (the
    // common case) costs a read, not a row write.
    tx.prepare_cached(
        "UPDATE work_items SET open_blockers = c.n
         FROM (SELECT
                 (SELECT count(*) FROM dependencies d JOIN work_items b ON b.id = d.target_id
                   WHERE d.source_id = ?1 AND d.removed = 0 AND d.dependency_type = 'depends_on'
                     AND b.status != 'completed' AND b.deleted_at IS NULL)
               + (SELECT count(*) FROM dependencies d JOIN work_items b ON b.id = d.source_id
                   WHERE d.target_id = ?1 AND d.removed = 0 AND d.dependency_type = 'blocks'
                     AND b.status != 'completed' AND b.deleted_at IS NULL) AS n) AS c
         WHERE work_items.id = ?1 AND work_items.open_blockers != c.n",
    )?
    .execute([id::sql(id)])?;
    Ok(())
}

/// Whether any live dependency row names work item `id`.
pub(super) fn has_edges(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM dependencies WHERE source_id = ?1 AND removed = 0)
                 OR EXISTS (SELECT 1 FROM dependencies WHERE target_id = ?1 AND removed = 0)",
        )?
        .query_row([id::sql(id)], |r| r.get(0))?)
}

/// Recount every item that waits for `id` (it opened or closed).
pub(super) fn recount_waiters_of(tx: &Transaction<'_>, id: &str) -> Result<()> {
    let waiters: Vec<String> = tx
        .prepare_cached(
            "SELECT source_id FROM dependencies WHERE target_id = ?1 AND removed = 0 AND dependency_type = 'depends_on'
             UNION
             SELECT target_id FROM dependencies WHERE source_id = ?1 AND removed = 0 AND dependency_type = 'blocks'",
        )?
        .query_map([id::sql(id)], |r| id::get_id(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    for w in waiters {
        recount(tx, &w)?;
    }
    Ok(())
}

/// Recount the waiter of dependency `id` (just added, removed or changed).
pub(super) fn recount_edge(tx: &Transaction<'_>, id: &str) -> Result<()> {
    let waiter: Option<String> = rusqlite::OptionalExtension::optional(
        tx.prepare_cached(
            "SELECT CASE dependency_type WHEN 'blocks' THEN target_id ELSE source_id END FROM dependencies WHERE id = ?1",
        )?
        .query_row([id::sql(id)], |r| id::get_id(r, 0)),
    )?;
    if let Some(w) = waiter {
        recount(tx, &w)?;
    }
    Ok(())
}

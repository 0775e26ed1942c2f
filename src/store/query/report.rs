//! The status report's reads: the open work items and, one by one, the
//! ancestors that keep their tree whole; live vendors; the latest
//! deployments; the enhancements not completed; and the summary's counts
//! and last updated items. Each returns the report's own types
//! (`crate::report`), which say how a stored value is shown.

use rusqlite::{Connection, OptionalExtension};

use super::work_items::{ROW_COLUMNS, row_from_row};
use super::{COUNT_CAP, capped_count, metadata};
use crate::domain::{ItemType, WorkStatus};
use crate::error::Result;
use crate::ops::WorkItemRow;
use crate::report::{ReportDeployment, ReportEnhancement, ReportVendor, StoredItem};
use crate::store::WORK_ITEMS;
use crate::store::id::{self, get_id, get_opt_id};

/// The columns [`stored_item`] reads, in its order.
const ITEM_COLUMNS: &str =
    "id, title, item_type, status, depth, created_at, branch_name, parent_id, deleted_at IS NOT NULL";

fn stored_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredItem> {
    Ok(StoredItem {
        id: get_id(r, 0)?,
        title: r.get(1)?,
        item_type: r.get(2)?,
        status: r.get(3)?,
        depth: r.get(4)?,
        created_at: r.get(5)?,
        branch_name: r.get(6)?,
        parent_id: get_opt_id(r, 7)?,
        deleted: r.get(8)?,
    })
}

/// Every open work item: live, not archived, not completed (any order).
pub(crate) fn open_items(conn: &Connection) -> Result<Vec<StoredItem>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS} FROM work_items
             WHERE status != 'completed' AND deleted_at IS NULL AND archived_at IS NULL"
        ))?
        .query_map([], stored_item)?
        .collect::<rusqlite::Result<_>>()?)
}

/// A lookup of work items by id, whatever their state (deleted ones
/// flagged): one statement for all the lookups of a report.
pub(crate) fn items_by_id(conn: &Connection) -> Result<impl FnMut(&str) -> Result<Option<StoredItem>> + '_> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM work_items WHERE id = ?1"))?;
    Ok(move |id: &str| Ok(stmt.query_row([id::sql(id)], stored_item).optional()?))
}

/// The title of the work item of id `id`, whatever its state.
pub(crate) fn title(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT title FROM work_items WHERE id = ?1")?
        .query_row([id::sql(id)], |r| r.get(0))
        .optional()?)
}

/// Live vendors by name (case-folded).
pub(crate) fn vendors(conn: &Connection) -> Result<Vec<ReportVendor>> {
    Ok(conn
        .prepare_cached("SELECT name, status, metadata FROM vendors WHERE deleted_at IS NULL ORDER BY name_key")?
        .query_map([], |r| {
            let text: String = r.get(2)?;
            Ok(ReportVendor::new(r.get(0)?, r.get(1)?, &metadata(&text)))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The `limit` latest live deployments, newest first, each with the names
/// of the vendors it links.
pub(crate) fn recent_deployments(conn: &Connection, limit: i64) -> Result<Vec<ReportDeployment>> {
    // The limit is written into the statement: SQLite plans a bound LIMIT
    // afresh (re-prepares) on every run.
    Ok(conn
        .prepare_cached(&format!(
            "SELECT d.id, d.deployed_at, d.commit_hash, d.metadata,
                    (SELECT group_concat(v.name, char(31)) FROM deployment_links l JOIN vendors v ON v.id = l.target_id
                      WHERE l.deployment_id = d.id AND l.removed = 0 AND l.link_type = 'vendor')
             FROM deployments d WHERE d.deleted_at IS NULL
             ORDER BY d.deployed_at DESC, d.id DESC LIMIT {limit}"
        ))?
        .query_map([], |r| {
            let text: String = r.get(3)?;
            let vendors: Option<String> = r.get(4)?;
            let vendors = vendors
                .map(|v| v.split('\u{1f}').map(str::to_owned).collect())
                .unwrap_or_default();
            Ok(ReportDeployment::new(
                get_id(r, 0)?,
                r.get(1)?,
                r.get(2)?,
                &metadata(&text),
                vendors,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Live enhancements not completed, by priority, then creation.
pub(crate) fn open_enhancements(conn: &Connection) -> Result<Vec<ReportEnhancement>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, title, priority, status, target_quarter, description FROM enhancements
             WHERE deleted_at IS NULL AND status != 'completed' ORDER BY priority, created_at, id",
        )?
        .query_map([], |r| {
            let target: Option<String> = r.get(4)?;
            Ok(ReportEnhancement::new(
                get_id(r, 0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                target.as_deref(),
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Work items neither deleted nor archived of each status, then of each
/// type, counted as lists count (up to `COUNT_CAP`, so the count costs the
/// same on any store): `(status counts, type counts)`, each `(word, count,
/// capped)`, the words with none left out.
#[allow(clippy::type_complexity)]
pub(crate) fn item_counts(
    conn: &Connection,
) -> Result<(Vec<(&'static str, i64, bool)>, Vec<(&'static str, i64, bool)>)> {
    let count = |column: &str, word: &'static str| -> Result<Option<(&'static str, i64, bool)>> {
        let (n, capped) = capped_count(
            conn,
            &format!("work_items WHERE {column} = ?1 AND deleted_at IS NULL AND archived_at IS NULL"),
            &[word],
        )?;
        Ok((n > 0).then_some((word, n, capped)))
    };
    let mut by_status = Vec::new();
    for s in WorkStatus::ALL {
        by_status.extend(count("status", s.as_str())?);
    }
    let mut by_type = Vec::new();
    for t in ItemType::ALL {
        by_type.extend(count("item_type", t.as_str())?);
    }
    Ok((by_status, by_type))
}

/// Live vendors: `(operational, all)`.
pub(crate) fn vendor_counts(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE status = 'operational'), count(*) FROM vendors WHERE deleted_at IS NULL",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Up to `limit` work items of `status` (neither deleted nor archived)
/// among the `COUNT_CAP` work items this store changed last (written or
/// pulled: the change feed), the latest first.
pub(crate) fn last_changed(conn: &Connection, status: WorkStatus, limit: i64) -> Result<Vec<WorkItemRow>> {
    // The feed walked down its sequence index (`+collection`: not by its
    // primary key, which sorts the whole feed), then each item by its key
    // (`CROSS JOIN` keeps that order; left to itself, SQLite walks every
    // item of the status instead).
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM
               (SELECT key AS changed, seq FROM change_feed WHERE +collection = ?1 ORDER BY seq DESC LIMIT {COUNT_CAP})
             CROSS JOIN work_items ON work_items.key = changed
             WHERE status = ?2 AND deleted_at IS NULL AND archived_at IS NULL
             ORDER BY seq DESC LIMIT {limit}"
        ))?
        .query_map(rusqlite::params![WORK_ITEMS.code, status.as_str()], row_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

//! The board's reads: the whole store, as the board draws it.

use rusqlite::Connection;
use serde_json::Value;

use crate::error::Result;
use crate::ops::board::{BoardDeployment, BoardEnhancement, BoardItem, BoardVendor};
use crate::store::id::{get_id, get_opt_id};

/// Every live work item (archived ones flagged), in the order this store recorded them.
pub(crate) fn items(conn: &Connection) -> Result<Vec<BoardItem>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT id, title, item_type, status, priority, parent_id, depth, open_blockers, branch_name,
                    created_at, updated_at, updated_by, archived_at IS NOT NULL, ",
            live_holder!(),
            " FROM work_items WHERE deleted_at IS NULL ORDER BY key"
        ))?
        .query_map([], |r| {
            Ok(BoardItem {
                id: get_id(r, 0)?,
                title: r.get(1)?,
                item_type: r.get(2)?,
                status: r.get(3)?,
                priority: r.get(4)?,
                parent_id: get_opt_id(r, 5)?,
                depth: r.get(6)?,
                open_blockers: r.get(7)?,
                branch_name: r.get(8)?,
                created_at: r.get(9)?,
                updated_at: r.get(10)?,
                updated_by: r.get(11)?,
                archived: r.get(12)?,
                holder: r.get(13)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// When the first live lease ends (a board that shows its holder is stale
/// from then on).
pub(crate) fn next_lease_end(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT min(expires_at) FROM claims WHERE holder IS NOT NULL AND expires_at > ",
            now_ms!()
        ))?
        .query_row([], |r| r.get(0))?)
}

/// Every dependency as (waiting item, item waited for).
pub(crate) fn waits(conn: &Connection) -> Result<Vec<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT source_id, target_id, dependency_type FROM dependencies WHERE NOT removed")?
        .query_map([], |r| {
            let (source, target, kind): (String, String, String) = (get_id(r, 0)?, get_id(r, 1)?, r.get(2)?);
            Ok(if kind == "blocks" {
                (target, source)
            } else {
                (source, target)
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Live vendors by name, with their test counts.
pub(crate) fn vendors(conn: &Connection) -> Result<Vec<BoardVendor>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, status, extractor_version, metadata, updated_at FROM vendors
             WHERE deleted_at IS NULL ORDER BY name_key",
        )?
        .query_map([], |r| {
            let metadata: String = r.get(3)?;
            let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
            let results = metadata.get("test_results");
            let n = |k: &str| results.and_then(|t| t.get(k)).and_then(Value::as_i64);
            Ok(BoardVendor {
                name: r.get(0)?,
                status: r.get(1)?,
                extractor_version: r.get(2)?,
                passing: n("passing"),
                total: n("total"),
                updated_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The latest `limit` deployments, newest first.
pub(crate) fn deployments(conn: &Connection, limit: i64) -> Result<Vec<BoardDeployment>> {
    Ok(conn
        .prepare_cached(
            "SELECT deployed_at, commit_hash, metadata FROM deployments WHERE deleted_at IS NULL
             ORDER BY deployed_at DESC LIMIT ?1",
        )?
        .query_map([limit], |r| {
            let metadata: String = r.get(2)?;
            let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
            Ok(BoardDeployment {
                deployed_at: r.get(0)?,
                commit_hash: r.get(1)?,
                pr_number: metadata.get("pr_number").and_then(Value::as_i64),
                pr_title: metadata.get("pr_title").and_then(Value::as_str).map(str::to_owned),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Live enhancements by quarter, then priority.
pub(crate) fn enhancements(conn: &Connection) -> Result<Vec<BoardEnhancement>> {
    Ok(conn
        .prepare_cached(
            "SELECT title, status, priority, target_quarter FROM enhancements WHERE deleted_at IS NULL
             ORDER BY target_quarter IS NULL, target_quarter, priority, title",
        )?
        .query_map([], |r| {
            Ok(BoardEnhancement {
                title: r.get(0)?,
                status: r.get(1)?,
                priority: r.get(2)?,
                target_quarter: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

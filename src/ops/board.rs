//! What the board (`src/board`) shows, read in one transaction: every
//! work item in the compact form a board card needs, the live dependency
//! edges, vendors with their test results, recent deployments,
//! enhancements, sync health and the feed's cursor at the time.

use serde::Serialize;
use serde_json::Value;

use super::Tracker;
use super::configuration::SyncHealth;
use super::exchange::ConflictView;
use crate::error::Result;
use crate::store::id::{get_id, get_opt_id};

/// The most recent deployments the board reads.
const DEPLOYMENTS: i64 = 60;

/// One work item as the board shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardItem {
    pub id: String,
    pub title: String,
    pub item_type: String,
    pub status: String,
    pub priority: i64,
    pub parent_id: Option<String>,
    pub depth: i64,
    /// Open items this one waits for.
    pub open_blockers: i64,
    pub branch_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub updated_by: String,
    pub archived: bool,
}

/// A vendor with its test results (`passing` of `total`, when recorded).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardVendor {
    pub name: String,
    pub status: String,
    pub extractor_version: String,
    pub passing: Option<i64>,
    pub total: Option<i64>,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardDeployment {
    pub deployed_at: String,
    pub commit_hash: String,
    pub pr_number: Option<i64>,
    pub pr_title: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BoardEnhancement {
    pub title: String,
    pub status: String,
    pub priority: i64,
    pub target_quarter: Option<String>,
}

/// Everything the board shows, as of one moment.
#[derive(Clone, Debug, Serialize)]
pub struct BoardData {
    /// Live items (deleted ones left out; archived ones kept for the charts).
    pub items: Vec<BoardItem>,
    /// Live dependency edges as `(waiter, awaited)`.
    pub waits: Vec<(String, String)>,
    pub vendors: Vec<BoardVendor>,
    /// Newest first.
    pub deployments: Vec<BoardDeployment>,
    pub enhancements: Vec<BoardEnhancement>,
    pub health: SyncHealth,
    pub conflicts: Vec<ConflictView>,
    /// The change feed's cursor these were read at.
    pub cursor: i64,
}

impl Tracker {
    /// What the board shows, read in one transaction.
    pub(crate) fn board_data(&self) -> Result<BoardData> {
        self.store.read(|conn| {
            let cursor = crate::store::feed::head(conn)?;
            let items = conn
                .prepare_cached(
                    "SELECT id, title, item_type, status, priority, parent_id, depth, open_blockers, branch_name,
                            created_at, updated_at, updated_by, archived_at IS NOT NULL
                     FROM work_items WHERE deleted_at IS NULL ORDER BY key",
                )?
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
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let waits = conn
                .prepare_cached("SELECT source_id, target_id, dependency_type FROM dependencies WHERE NOT removed")?
                .query_map([], |r| {
                    let (source, target, kind): (String, String, String) = (get_id(r, 0)?, get_id(r, 1)?, r.get(2)?);
                    Ok(if kind == "blocks" {
                        (target, source)
                    } else {
                        (source, target)
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let vendors = conn
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
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let deployments = conn
                .prepare_cached(
                    "SELECT deployed_at, commit_hash, metadata FROM deployments WHERE deleted_at IS NULL
                     ORDER BY deployed_at DESC LIMIT ?1",
                )?
                .query_map([DEPLOYMENTS], |r| {
                    let metadata: String = r.get(2)?;
                    let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
                    Ok(BoardDeployment {
                        deployed_at: r.get(0)?,
                        commit_hash: r.get(1)?,
                        pr_number: metadata.get("pr_number").and_then(Value::as_i64),
                        pr_title: metadata.get("pr_title").and_then(Value::as_str).map(str::to_owned),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let enhancements = conn
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
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let health = super::configuration::sync_health(conn)?;
            let conflicts = super::exchange::list_conflicts(conn)?;
            Ok(BoardData {
                items,
                waits,
                vendors,
                deployments,
                enhancements,
                health,
                conflicts,
                cursor,
            })
        })
    }
}

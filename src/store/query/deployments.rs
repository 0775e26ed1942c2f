//! Deployments: one by id with its links, by a commit's prefix, and the
//! list, newest first.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::{Total, capped_count, metadata};
use crate::error::Result;
use crate::ops::{Deployment, DeploymentRow};
use crate::store::id::{self, get_id};

const COLUMNS: &str =
    "id, deployed_at, commit_hash, metadata, deleted_at, created_at, created_by, updated_at, updated_by, version";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Deployment> {
    let metadata_text: String = r.get(3)?;
    Ok(Deployment {
        id: get_id(r, 0)?,
        deployed_at: r.get(1)?,
        commit_hash: r.get(2)?,
        metadata: metadata(&metadata_text),
        vendor_ids: Vec::new(),
        work_item_ids: Vec::new(),
        deleted_at: r.get(4)?,
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        updated_at: r.get(7)?,
        updated_by: r.get(8)?,
        version: r.get(9)?,
    })
}

/// One deployment by id (deleted ones too), with its live links.
pub(crate) fn load(conn: &Connection, id: &str) -> Result<Option<Deployment>> {
    let Some(mut d) = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deployments WHERE id = ?1"))?
        .query_row([id::sql(id)], from_row)
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT link_type, target_id FROM deployment_links WHERE deployment_id = ?1 AND removed = 0 ORDER BY target_id",
    )?;
    let links = stmt.query_map([id::sql(id)], |r| Ok((r.get::<_, String>(0)?, get_id(r, 1)?)))?;
    for link in links {
        let (kind, target) = link?;
        if kind == "vendor" {
            d.vendor_ids.push(target)
        } else {
            d.work_item_ids.push(target)
        }
    }
    Ok(Some(d))
}

/// Every deployment's id, in id order.
pub(crate) fn ids(conn: &Connection) -> Result<Vec<String>> {
    Ok(conn
        .prepare("SELECT id FROM deployments ORDER BY id")?
        .query_map([], |r| get_id(r, 0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The id of a deployment whose commit hash starts with `prefix` (in any
/// case), if there is one.
pub(crate) fn with_commit_prefix(conn: &Connection, prefix: &str) -> Result<Option<String>> {
    let prefix = prefix.to_ascii_lowercase();
    Ok(conn
        .prepare_cached(
            "SELECT id FROM deployments WHERE lower(commit_hash) >= ?1 AND lower(commit_hash) < ?1 || 'g' LIMIT 1",
        )?
        .query_row([&prefix], |r| get_id(r, 0))
        .optional()?)
}

/// Live deployments, newest first, linked to every target given (vendor
/// or work item ids): up to `limit + 1` rows after the row `(deployed_at,
/// id)` when given, and the count.
pub(crate) fn list(
    conn: &Connection,
    linked_to: &[&str],
    after: Option<(String, String)>,
    limit: i64,
) -> Result<(Vec<DeploymentRow>, Total)> {
    let mut clauses = vec!["d.deleted_at IS NULL".to_owned()];
    let mut args: Vec<SqlValue> = Vec::new();
    for target in linked_to {
        args.push(id::value(target));
        clauses.push(format!(
            "d.id IN (SELECT deployment_id FROM deployment_links WHERE target_id = ?{} AND removed = 0)",
            args.len()
        ));
    }
    let filters = clauses.join(" AND ");
    let count_args = args.len();
    let mut page_filters = filters.clone();
    if let Some((at, id)) = after {
        args.extend([at.into(), id::value(&id)]);
        let n = args.len();
        page_filters.push_str(&format!(" AND (d.deployed_at, d.id) < (?{}, ?{n})", n - 1));
    }
    let total = capped_count(conn, &format!("deployments d WHERE {filters}"), &args[..count_args])?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.id, d.deployed_at, d.commit_hash, d.metadata FROM deployments d WHERE {page_filters}
         ORDER BY d.deployed_at DESC, d.id DESC LIMIT {}",
        limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| {
            let metadata: String = r.get(3)?;
            let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
            Ok(DeploymentRow {
                id: get_id(r, 0)?,
                deployed_at: r.get(1)?,
                commit_hash: r.get(2)?,
                pr_number: metadata.get("pr_number").and_then(Value::as_i64),
                pr_title: metadata.get("pr_title").and_then(Value::as_str).map(str::to_owned),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}

//! Vendors: one by id, and the list by name.

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use super::{Total, capped_count, metadata};
use crate::domain::VendorStatus;
use crate::error::Result;
use crate::ops::{Vendor, VendorRow};
use crate::store::id::{self, get_id};

pub(super) const VENDOR_COLUMNS: &str = "id, name, status, extractor_version, metadata, deleted_at, created_at, \
     created_by, updated_at, updated_by, version";

pub(super) fn vendor_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vendor> {
    let metadata_text: String = r.get(4)?;
    Ok(Vendor {
        id: get_id(r, 0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        extractor_version: r.get(3)?,
        metadata: metadata(&metadata_text),
        deleted_at: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
        updated_at: r.get(8)?,
        updated_by: r.get(9)?,
        version: r.get(10)?,
    })
}

/// `passing/total` of a vendor's metadata, when it has test results.
fn tests_of(metadata: &Value) -> Option<String> {
    let t = metadata.get("test_results")?;
    let n = |k| t.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(format!("{}/{}", n("passing"), n("total")))
}

/// The live vendor of id `id`.
pub(crate) fn live(conn: &Connection, id: &str) -> Result<Option<Vendor>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VENDOR_COLUMNS} FROM vendors WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([id::sql(id)], vendor_from_row)
        .optional()?)
}

/// Live vendors by name (case-folded): up to `limit + 1` rows with their
/// name keys, after the name key `after` when given, and the count. `tests`
/// of each row from its metadata's test results.
pub(crate) fn list(
    conn: &Connection,
    status: Option<VendorStatus>,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<(VendorRow, String)>, Total)> {
    let mut clauses = vec!["deleted_at IS NULL".to_owned()];
    let mut args: Vec<String> = Vec::new();
    if let Some(s) = status {
        args.push(s.as_str().to_owned());
        clauses.push(format!("status = ?{}", args.len()));
    }
    let filters = clauses.join(" AND ");
    let count_args = args.len();
    let mut page_filters = filters.clone();
    if let Some(key) = after {
        args.push(key);
        page_filters.push_str(&format!(" AND name_key > ?{}", args.len()));
    }
    let total = capped_count(conn, &format!("vendors WHERE {filters}"), &args[..count_args])?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, name, status, extractor_version, metadata, updated_at, version, name_key
         FROM vendors WHERE {page_filters} ORDER BY name_key LIMIT {}",
        limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| {
            let metadata: String = r.get(4)?;
            let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
            Ok((
                VendorRow {
                    id: get_id(r, 0)?,
                    name: r.get(1)?,
                    status: r.get(2)?,
                    extractor_version: r.get(3)?,
                    tests: tests_of(&metadata),
                    updated_at: r.get(5)?,
                    version: r.get(6)?,
                },
                r.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}

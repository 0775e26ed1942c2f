//! Whole tables in id order, for the canonical JSON export.

use std::collections::HashMap;

use rusqlite::Connection;

use super::dependencies::{DEPENDENCY_COLUMNS, dependency_from_row};
use super::enhancements;
use super::vendors::{VENDOR_COLUMNS, vendor_from_row};
use super::work_items::{ITEM_COLUMNS, item_from_row, user_path};
use crate::error::{Error, Result};
use crate::ops::{Dependency, Enhancement, Vendor, WorkItem};
use crate::store::id::get_id;

fn all<T>(conn: &Connection, sql: &str, f: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
    Ok(conn.prepare(sql)?.query_map([], f)?.collect::<rusqlite::Result<_>>()?)
}

/// Every work item (archived and deleted too), paths as a reader sees them.
pub(crate) fn work_items(conn: &Connection) -> Result<Vec<WorkItem>> {
    let mut items = all(
        conn,
        &format!("SELECT {ITEM_COLUMNS} FROM work_items ORDER BY id"),
        item_from_row,
    )?;
    let ids: HashMap<i64, String> = all(conn, "SELECT key, id FROM work_items", |r| {
        Ok((r.get(0)?, get_id(r, 1)?))
    })?
    .into_iter()
    .collect();
    for item in &mut items {
        item.path = user_path(&item.path, &item.id, |key| {
            ids.get(&key)
                .cloned()
                .ok_or_else(|| Error::Corrupt(format!("work item key {key} is missing")))
        })?;
    }
    Ok(items)
}

/// Every live dependency.
pub(crate) fn dependencies(conn: &Connection) -> Result<Vec<Dependency>> {
    all(
        conn,
        &format!("SELECT {DEPENDENCY_COLUMNS} FROM dependencies WHERE removed = 0 ORDER BY id"),
        dependency_from_row,
    )
}

/// Every vendor (deleted too).
pub(crate) fn vendors(conn: &Connection) -> Result<Vec<Vendor>> {
    all(
        conn,
        &format!("SELECT {VENDOR_COLUMNS} FROM vendors ORDER BY id"),
        vendor_from_row,
    )
}

/// Every live enhancement.
pub(crate) fn enhancements(conn: &Connection) -> Result<Vec<Enhancement>> {
    all(
        conn,
        &format!(
            "SELECT {} FROM enhancements WHERE deleted_at IS NULL ORDER BY id",
            enhancements::COLUMNS
        ),
        enhancements::from_row,
    )
}

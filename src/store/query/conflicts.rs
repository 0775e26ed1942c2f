//! The conflicts table: which fields of which records hold open conflicts.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// Every open conflict as `(collection, record_id, field, kind)`, sorted.
pub(crate) fn all(conn: &Connection) -> Result<Vec<(String, String, String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT collection, record_id, field, kind FROM conflicts ORDER BY collection, record_id, field, kind",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The kind of the open conflict on a field that a write resolves
/// (`value`, `delete_vs_update` or `archived_while_open`), if any.
pub(crate) fn resolvable_kind(
    conn: &Connection,
    collection: &str,
    record_id: &str,
    field: &str,
) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT kind FROM conflicts WHERE collection = ?1 AND record_id = ?2 AND field = ?3
               AND kind IN ('value', 'delete_vs_update', 'archived_while_open') ORDER BY kind DESC LIMIT 1",
            [collection, record_id, field],
            |r| r.get(0),
        )
        .optional()?)
}

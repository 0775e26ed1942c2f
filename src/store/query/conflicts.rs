//! The conflicts table: which fields of which records hold open conflicts.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// A conflict's key, `(collection, record_id, field, kind)`: its place in
/// the list's order.
pub(crate) type ConflictKey = (String, String, String, String);

/// Every open conflict's key, sorted.
pub(crate) fn all(conn: &Connection) -> Result<Vec<ConflictKey>> {
    page(conn, None, i64::MAX)
}

/// At most `limit` open conflicts' keys after `after` (from the first when
/// `None`), sorted: one range of the table's primary key.
pub(crate) fn page(conn: &Connection, after: Option<&ConflictKey>, limit: i64) -> Result<Vec<ConflictKey>> {
    let key = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    let rows = match after {
        None => conn
            .prepare_cached(
                "SELECT collection, record_id, field, kind FROM conflicts
                 ORDER BY collection, record_id, field, kind LIMIT ?1",
            )?
            .query_map([limit], key)?
            .collect::<rusqlite::Result<_>>()?,
        Some((c, r, f, k)) => conn
            .prepare_cached(
                "SELECT collection, record_id, field, kind FROM conflicts
                 WHERE (collection, record_id, field, kind) > (?1, ?2, ?3, ?4)
                 ORDER BY collection, record_id, field, kind LIMIT ?5",
            )?
            .query_map(rusqlite::params![c, r, f, k, limit], key)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

/// How many conflicts are open.
pub(crate) fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM conflicts", [], |r| r.get(0))?)
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

//! Dependencies: one live edge by id, and reachability for the cycle check.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;
use crate::ops::Dependency;
use crate::store::id::{self, get_id};

pub(super) const DEPENDENCY_COLUMNS: &str =
    "id, source_id, target_id, dependency_type, created_at, created_by, updated_at, updated_by, version";

pub(super) fn dependency_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Dependency> {
    Ok(Dependency {
        id: get_id(r, 0)?,
        source_id: get_id(r, 1)?,
        target_id: get_id(r, 2)?,
        dependency_type: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        updated_at: r.get(6)?,
        updated_by: r.get(7)?,
        version: r.get(8)?,
    })
}

/// The live (not removed) dependency of id `id`.
pub(crate) fn live(conn: &Connection, id: &str) -> Result<Option<Dependency>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEPENDENCY_COLUMNS} FROM dependencies WHERE id = ?1 AND removed = 0"
        ))?
        .query_row([id::sql(id)], dependency_from_row)
        .optional()?)
}

/// Whether item `from` already waits, directly or through others, for item
/// `to`. "Waits for" follows live `depends_on` edges forwards and `blocks`
/// edges backwards.
pub(crate) fn waits_for(conn: &Connection, from: &str, to: &str) -> Result<bool> {
    let found: Option<i64> = conn
        .prepare_cached(
            "WITH RECURSIVE reach(id) AS (
                 SELECT ?1
                 UNION
                 SELECT d.target_id FROM dependencies d JOIN reach r ON d.source_id = r.id
                  WHERE d.removed = 0 AND d.dependency_type = 'depends_on'
                 UNION
                 SELECT d.source_id FROM dependencies d JOIN reach r ON d.target_id = r.id
                  WHERE d.removed = 0 AND d.dependency_type = 'blocks'
             )
             SELECT 1 FROM reach WHERE id = ?2 LIMIT 1",
        )?
        .query_row([id::sql(from), id::sql(to)], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

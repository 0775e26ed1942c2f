//! The full-text index of work item titles and descriptions, kept in batches.
//!
//! A write that changes a title or a description does not touch the index:
//! it notes the item in `search_pending` (with the text the index holds for
//! it, which the index needs to forget it). Updating an FTS5 index costs a
//! new segment, its structure record and its totals on every transaction,
//! four pages of the eight an update writes; noted, the same write costs one
//! row of a small table.
//!
//! The index catches up, in one transaction for every item noted:
//! * before every search (so a search sees every committed write, from any
//!   process: the notes are in the store, not in memory);
//! * when the writer thread goes idle (so an idle store's index is current);
//! * at the commit of a transaction that finds [`CATCH_UP_AT`] items noted
//!   (so a long burst of writes pays for the index in batches).

use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use crate::error::Result;

/// Items noted from which a committing write brings the index up to date.
pub(super) const CATCH_UP_AT: i64 = 256;

/// Note that the title or description of the work item stored under `key`
/// changed; `indexed` is the text the index holds for it (None for an item
/// written for the first time). A second note before the index catches up
/// keeps the first one's text: the index still holds it.
pub(super) fn note(conn: &Connection, key: i64, indexed: Option<(&Sql, &Sql)>) -> Result<()> {
    let (title, description) = indexed.unwrap_or((&Sql::Null, &Sql::Null));
    conn.prepare_cached(
        "INSERT OR IGNORE INTO search_pending (key, indexed, title, description) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(rusqlite::params![key, indexed.is_some(), title, description])?;
    Ok(())
}

/// How many items wait for the index.
pub(super) fn pending(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM search_pending")?
        .query_row([], |r| r.get(0))?)
}

/// A noted item: its key, whether the index holds text for it and that
/// text, and its title and description now (None if its row is gone).
type Noted = (i64, bool, Sql, Sql, Option<(Sql, Sql)>);

/// Bring the index up to date with every noted item, inside the caller's
/// write transaction. Returns how many items it indexed.
pub(super) fn catch_up(conn: &Connection) -> Result<usize> {
    let noted: Vec<Noted> = conn
        .prepare_cached(
            "SELECT p.key, p.indexed, p.title, p.description, w.key, w.title, w.description
             FROM search_pending p LEFT JOIN work_items w ON w.key = p.key",
        )?
        .query_map([], |r| {
            let now = match r.get::<_, Option<i64>>(4)? {
                Some(_) => Some((r.get(5)?, r.get(6)?)),
                None => None,
            };
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, now))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if noted.is_empty() {
        return Ok(0);
    }
    let mut forget = conn.prepare_cached(
        "INSERT INTO work_items_fts (work_items_fts, rowid, title, description) VALUES ('delete', ?1, ?2, ?3)",
    )?;
    let mut index =
        conn.prepare_cached("INSERT INTO work_items_fts (rowid, title, description) VALUES (?1, ?2, ?3)")?;
    for (key, indexed, old_title, old_description, now) in &noted {
        if *indexed {
            forget.execute(rusqlite::params![key, old_title, old_description])?;
        }
        if let Some((title, description)) = now {
            index.execute(rusqlite::params![key, title, description])?;
        }
    }
    conn.prepare_cached("DELETE FROM search_pending")?.execute([])?;
    Ok(noted.len())
}

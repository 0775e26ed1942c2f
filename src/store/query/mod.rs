//! The reads the operations make, one typed function each: the operations
//! ask for records, pages and facts, and never see a table or a column.
//! Each function takes a connection (`Store::read`'s, or a write
//! transaction's `WriteTx::conn`) and returns the operations' own types.
//!
//! Lists count their matches up to [`COUNT_CAP`] and fetch one row past
//! the page (`limit + 1`), so the operations can cut the page and tell
//! whether more follow.

/// Now, in milliseconds since the epoch, as a statement reads it: leases
/// are decided at read time.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

/// The agent holding a live claim on the `work_items` row in scope, if any.
macro_rules! live_holder {
    () => {
        concat!(
            "(SELECT c.holder FROM claims c WHERE c.id = work_items.id AND c.expires_at > ",
            now_ms!(),
            ")"
        )
    };
}

pub(crate) mod board;
pub(crate) mod claims;
pub(crate) mod configuration;
pub(crate) mod conflicts;
pub(crate) mod dependencies;
pub(crate) mod deployments;
pub(crate) mod enhancements;
pub(crate) mod export;
pub(crate) mod history;
pub(crate) mod report;
pub(crate) mod vendors;
pub(crate) mod work_items;

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::error::Result;

/// Lists count matching rows up to this many.
pub(crate) const COUNT_CAP: i64 = 1000;

/// A list's count: `(count, capped)`.
pub(crate) type Total = (i64, bool);

/// Count the rows of `from_where` (`table WHERE ...`), stopping past
/// [`COUNT_CAP`].
fn capped_count(conn: &Connection, from_where: &str, args: &[impl rusqlite::ToSql]) -> Result<Total> {
    let n: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM {from_where} LIMIT {})",
            COUNT_CAP + 1
        ))?
        .query_row(rusqlite::params_from_iter(args), |r| r.get(0))?;
    Ok((n.min(COUNT_CAP), n > COUNT_CAP))
}

/// A `metadata` column: a JSON object (an empty one if unreadable).
fn metadata(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Map::new()))
}

//! The configuration record, and the counts behind the sync health.

use rusqlite::{Connection, OptionalExtension};

use crate::domain::ids;
use crate::error::Result;
use crate::ops::Configuration;
use crate::store::id::{self, get_id, get_opt_id};

const COLUMNS: &str = "id, active_context_type, current_session_id, git_branch, git_head_commit, \
     default_token_budget, created_at, created_by, updated_at, updated_by, version";

/// The configuration, once it has been written.
pub(crate) fn load(conn: &Connection) -> Result<Option<Configuration>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM configuration WHERE id = ?1"))?
        .query_row([id::sql(&ids::configuration())], |r| {
            Ok(Configuration {
                id: get_id(r, 0)?,
                active_context_type: r.get(1)?,
                current_session_id: get_opt_id(r, 2)?,
                git_branch: r.get(3)?,
                git_head_commit: r.get(4)?,
                default_token_budget: r.get(5)?,
                created_at: r.get(6)?,
                created_by: r.get(7)?,
                updated_at: r.get(8)?,
                updated_by: r.get(9)?,
                version: r.get(10)?,
            })
        })
        .optional()?)
}

/// A value of this replica's local state (never synced).
pub(crate) fn local_state(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM local_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Open conflicts of every kind.
pub(crate) fn open_conflicts(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM conflicts")?
        .query_row([], |r| r.get(0))?)
}

//! Enhancements: one by id, whether an id was ever used, and the list by
//! priority.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use super::{Total, capped_count};
use crate::domain::EnhancementStatus;
use crate::error::Result;
use crate::ops::Enhancement;
use crate::store::id::{self, get_id};

pub(super) const COLUMNS: &str = "id, title, description, priority, status, target_quarter, \
     requires_constitutional_approval, depends_on, created_at, created_by, updated_at, updated_by, version";

pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Enhancement> {
    let deps: String = r.get(7)?;
    Ok(Enhancement {
        id: get_id(r, 0)?,
        title: r.get(1)?,
        description: r.get(2)?,
        priority: r.get(3)?,
        status: r.get(4)?,
        target_quarter: r.get(5)?,
        requires_constitutional_approval: r.get(6)?,
        depends_on: serde_json::from_str(&deps).unwrap_or_default(),
        created_at: r.get(8)?,
        created_by: r.get(9)?,
        updated_at: r.get(10)?,
        updated_by: r.get(11)?,
        version: r.get(12)?,
    })
}

/// The live enhancement of id `id`.
pub(crate) fn live(conn: &Connection, id: &str) -> Result<Option<Enhancement>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM enhancements WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([id::sql(id)], from_row)
        .optional()?)
}

/// Whether an enhancement of id `id` exists, deleted or not.
pub(crate) fn exists(conn: &Connection, id: &str) -> Result<bool> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM enhancements WHERE id = ?1")?
        .query_row([id::sql(id)], |r| r.get(0))?;
    Ok(n > 0)
}

/// What `list` selects; every value already checked.
#[derive(Debug, Default)]
pub(crate) struct EnhancementList {
    pub priority: Option<i64>,
    pub status: Option<EnhancementStatus>,
    /// `YYYY-QN`.
    pub target_quarter: Option<String>,
    /// The `(priority, created_at, id)` of the last row of the previous page.
    pub after: Option<(i64, String, String)>,
    pub limit: i64,
}

/// Live enhancements by priority (1 first), then oldest: up to `limit + 1`
/// rows, and the count.
pub(crate) fn list(conn: &Connection, q: EnhancementList) -> Result<(Vec<Enhancement>, Total)> {
    let mut clauses = vec!["deleted_at IS NULL".to_owned()];
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(p) = q.priority {
        args.push(p.into());
        clauses.push(format!("priority = ?{}", args.len()));
    }
    if let Some(s) = q.status {
        args.push(s.as_str().to_owned().into());
        clauses.push(format!("status = ?{}", args.len()));
    }
    if let Some(t) = q.target_quarter {
        args.push(t.into());
        clauses.push(format!("target_quarter = ?{}", args.len()));
    }
    let filters = clauses.join(" AND ");
    let count_args = args.len();
    let mut page_filters = filters.clone();
    if let Some((priority, at, id)) = q.after {
        args.extend([priority.into(), at.into(), id::value(&id)]);
        let n = args.len();
        page_filters.push_str(&format!(
            " AND (priority, created_at, id) > (?{}, ?{}, ?{n})",
            n - 2,
            n - 1
        ));
    }
    let total = capped_count(conn, &format!("enhancements WHERE {filters}"), &args[..count_args])?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM enhancements WHERE {page_filters} ORDER BY priority, created_at, id LIMIT {}",
        q.limit + 1
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(&args), from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total))
}

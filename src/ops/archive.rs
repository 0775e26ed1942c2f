//! The archive: completed or deleted work items untouched for a long time
//! are marked archived (an ordinary change, so peers archive them too). They
//! keep every field, leave the lists and the report, and stay queryable.

use rusqlite::types::Value;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::page::{Page, capped_count, clamp_limit, decode_timed_cursor, encode_cursor, paginate};
use super::work_items::{ROW_COLUMNS, WorkItemRow, fts_query, row_from_row};
use crate::domain::ItemType;
use crate::error::{Error, Result};
use crate::store::WORK_ITEMS;
use crate::store::write::Fields;

/// What `archive_work_items` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    /// Default 365.
    #[schemars(range(min = 0, max = 36500))]
    pub older_than_days: Option<i64>,
    /// Only report what would be archived.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ArchiveResult {
    pub dry_run: bool,
    pub older_than_days: i64,
    /// How many items were (or would be) archived.
    pub count: i64,
    /// The rows' fields, in order.
    pub columns: &'static [&'static str],
    /// The first of them.
    #[serde(rename = "rows", serialize_with = "super::page::serialize_rows")]
    pub items: Vec<WorkItemRow>,
}

/// What `query_archived_work_items` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchivedQuery {
    /// Words to find in title or description.
    #[schemars(length(max = 1000))]
    pub text: Option<String>,
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Completed or deleted, not archived, untouched since the cutoff, and with
/// no live descendant that is still open (a subtree is archived whole or
/// not at all).
const CANDIDATES: &str = "SELECT id, title, item_type, status, priority, parent_id, updated_at, version
    FROM work_items w
    WHERE w.archived_at IS NULL AND (w.status = 'completed' OR w.deleted_at IS NOT NULL) AND w.updated_at < ?1
      AND NOT EXISTS (SELECT 1 FROM work_items d
          WHERE d.path >= w.path || w.key || '/' AND d.path < w.path || w.key || '0' AND d.archived_at IS NULL
            AND d.status != 'completed' AND d.deleted_at IS NULL)
    ORDER BY w.updated_at, w.id";

/// How many archived rows a result lists.
const SHOWN: usize = 100;

impl Tracker {
    pub fn archive_work_items(&self, author: &str, request: ArchiveRequest) -> Result<ArchiveResult> {
        let days = request.older_than_days.unwrap_or(365);
        if !(0..=36_500).contains(&days) {
            return Err(Error::invalid(
                "older_than_days",
                format!("must be 0 to 36,500 (got {days})"),
            ));
        }
        let dry_run = request.dry_run;
        self.store.write(author, move |tx| {
            let cutoff = tx.now().minus_days(days).to_string();
            let rows: Vec<WorkItemRow> = tx
                .conn()
                .prepare(CANDIDATES)?
                .query_map([&cutoff], row_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            if !dry_run {
                let at = tx.now().to_string();
                for row in &rows {
                    let mut fields = Fields::new();
                    fields.insert("archived_at".into(), at.clone().into());
                    tx.write(&WORK_ITEMS, &row.id, fields)?;
                }
            }
            let count = rows.len() as i64;
            Ok(ArchiveResult {
                dry_run,
                older_than_days: days,
                count,
                columns: <WorkItemRow as super::page::Row>::COLUMNS,
                items: rows.into_iter().take(SHOWN).collect(),
            })
        })
    }

    /// Archived items, most recently archived first.
    pub fn query_archived_work_items(&self, query: ArchivedQuery) -> Result<Page<WorkItemRow>> {
        let limit = clamp_limit(query.limit)?;
        let mut clauses = vec!["archived_at IS NOT NULL".to_owned()];
        let mut args: Vec<Value> = Vec::new();
        if let Some(t) = &query.item_type {
            args.push(ItemType::parse(t)?.as_str().to_owned().into());
            clauses.push(format!("item_type = ?{}", args.len()));
        }
        if let Some(text) = query.text.as_deref().filter(|t| !t.trim().is_empty()) {
            args.push(fts_query(text)?.into());
            self.store.catch_up_search()?;
            clauses.push(format!(
                "rowid IN (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH ?{})",
                args.len()
            ));
        }
        let filters = clauses.join(" AND ");
        let count_args = args.len();
        let mut page_filters = filters.clone();
        if let Some(c) = &query.cursor {
            args.extend(decode_timed_cursor(c)?);
            let n = args.len();
            page_filters.push_str(&format!(" AND (archived_at, id) < (?{}, ?{n})", n - 1));
        }
        self.store.read(|tx| {
            let total = capped_count(tx, &format!("work_items WHERE {filters}"), &args[..count_args])?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, archived_at FROM work_items WHERE {page_filters}
                 ORDER BY archived_at DESC, id DESC LIMIT {}",
                limit + 1
            ))?;
            let rows: Vec<(WorkItemRow, String)> = stmt
                .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(8)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(paginate(rows, limit, total, |(row, at)| encode_cursor(&[at, &row.id])).map(|(row, _)| row))
        })
    }
}

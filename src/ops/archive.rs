//! The archive: completed or deleted work items untouched for a long time
//! are marked archived (an ordinary change, so peers archive them too). They
//! keep every field, leave the lists and the report, and stay queryable.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::page::{Page, clamp_limit, decode_timed_cursor, encode_cursor, paginate};
use super::work_items::{WorkItemFilter, WorkItemRow, search_words};
use crate::domain::ItemType;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::write::Fields;
use crate::store::{WORK_ITEMS, query};

/// What `archive_work_items` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    /// Default 365.
    #[schemars(range(min = 0, max = 36500))]
    pub older_than_days: Option<i64>,
    // Only report what would be archived.
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

/// How many archived rows a result lists.
const SHOWN: usize = 100;

impl Tracker {
    pub fn archive_work_items(&self, author: &str, request: ArchiveRequest) -> Result<ArchiveResult> {
        self.archive_work_items_with(author, request, &Progress::none())
    }

    /// [`Tracker::archive_work_items`], telling `progress` the items archived.
    pub fn archive_work_items_with(
        &self,
        author: &str,
        request: ArchiveRequest,
        progress: &Progress,
    ) -> Result<ArchiveResult> {
        let progress = progress.clone();
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
            let rows = query::work_items::archive_candidates(tx.conn(), &cutoff)?;
            if !dry_run {
                let at = tx.now().to_string();
                let total = Some(rows.len() as u64);
                for (n, row) in rows.iter().enumerate() {
                    let mut fields = Fields::new();
                    fields.insert("archived_at".into(), at.clone().into());
                    tx.write(&WORK_ITEMS, &row.id, fields)?;
                    progress.step(n as u64 + 1, total, "items archived");
                    progress.check()?;
                }
                progress.done(rows.len() as u64, total, "items archived");
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

    /// Archived items, most recently archived first: `list_work_items`
    /// with `archived` (which takes no status, parent or deleted filter).
    pub(super) fn archived_work_items(&self, filter: WorkItemFilter) -> Result<Page<WorkItemRow>> {
        if filter.status.is_some() || filter.parent_id.is_some() || filter.include_deleted {
            return Err(Error::invalid(
                "archived",
                "lists take only item_type, text, limit and cursor besides it",
            ));
        }
        let limit = clamp_limit(filter.limit)?;
        let item_type = filter.item_type.as_deref().map(ItemType::parse).transpose()?;
        let text = filter.text.as_deref().filter(|t| !t.trim().is_empty());
        let words = text.map(search_words).transpose()?;
        if words.is_some() {
            self.store.catch_up_search()?;
        }
        let after = filter.cursor.as_deref().map(decode_timed_cursor).transpose()?;
        self.store.read(|tx| {
            let (rows, total) = query::work_items::archived(tx, item_type, words.as_deref(), after, limit)?;
            Ok(paginate(rows, limit, total, |(row, at)| encode_cursor(&[at, &row.id])).map(|(row, _)| row))
        })
    }
}

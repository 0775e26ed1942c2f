//! What changed since a cursor, and waiting for it: `wait_for_changes`,
//! `waymark watch`, the board's live updates and the resource
//! notifications all read the store's change feed (`store::feed`).
//!
//! A cursor is the feed's sequence number as text. Each record changed
//! after it is listed once, as it is now (the feed keeps one row per
//! record), oldest change first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use crate::error::{Error, Result};
use crate::store::feed::{self, FeedEntry, FeedFilter};
use crate::store::{Collection, WORK_ITEMS};

/// The longest wait, in seconds.
pub const MAX_WAIT_S: u64 = 60;
/// The wait when none is given, in seconds.
pub(crate) const DEFAULT_WAIT_S: u64 = 30;
/// The most records one answer lists (`more` says when others follow).
pub(crate) const MAX_CHANGES: usize = 100;
/// The most characters of a work item's title an entry carries.
const TITLE_CHARS: usize = 80;

/// What to wait for. The field docs are kept out of the schema (plain
/// comments): `tools/list` stays in every model's context, and the tool's
/// description says what a model needs.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForChanges {
    // The `cursor` of the last answer; none: the current one, at once.
    pub cursor: Option<String>,
    // Only these collections (work_items, dependencies, vendors, ...).
    pub collections: Option<Vec<String>>,
    // Only this work item and the items under it.
    pub under: Option<String>,
    // Seconds to wait, default 30 (the operation checks the range too).
    #[schemars(range(min = 0, max = 60))]
    pub timeout_s: Option<i64>,
}

/// One record changed after the cursor, as it is now.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Changed {
    pub collection: String,
    pub id: String,
    /// Work items: their type, status and title (cut at 80 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Deleted (a removed dependency or link too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// The answer: what changed, and the cursor to pass next.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Changes {
    pub cursor: String,
    pub changes: Vec<Changed>,
    /// More changes wait: call again at once with `cursor`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// A checked request.
struct Request {
    after: Option<i64>,
    filter: FeedFilter,
    under: Option<String>,
    timeout: Duration,
}

impl Tracker {
    /// The feed's current cursor.
    pub fn changes_cursor(&self) -> Result<String> {
        Ok(self.store.feed_head()?.to_string())
    }

    /// What changed after `input.cursor`, without waiting (no cursor: none,
    /// and the current cursor).
    pub fn changes_since(&self, input: &WaitForChanges) -> Result<Changes> {
        let request = self.check(input)?;
        match request.after {
            None => Ok(Changes {
                cursor: self.changes_cursor()?,
                changes: Vec::new(),
                more: false,
            }),
            Some(after) => self.collect(after, &request),
        }
    }

    /// [`Tracker::changes_since`], waiting up to `timeout_s` for a change
    /// that passes the filters. Blocks the calling thread.
    pub fn wait_for_changes(&self, input: &WaitForChanges) -> Result<Changes> {
        self.wait_for_changes_or(input, &AtomicBool::new(false))
    }

    /// [`Tracker::wait_for_changes`], answering early (with what changed so
    /// far, perhaps nothing) once `cancelled` is set.
    pub(crate) fn wait_for_changes_or(&self, input: &WaitForChanges, cancelled: &AtomicBool) -> Result<Changes> {
        let request = self.check(input)?;
        let Some(mut after) = request.after else {
            return self.changes_since(input);
        };
        let deadline = std::time::Instant::now() + request.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let head = self.store.wait_for_feed(after, left, cancelled)?;
            let found = self.collect(after, &request)?;
            if !found.changes.is_empty() || head <= after || left.is_zero() || cancelled.load(Ordering::Relaxed) {
                return Ok(found);
            }
            // Changes, none of them wanted: wait on from past them.
            after = found.cursor.parse().unwrap_or(head);
        }
    }

    fn check(&self, input: &WaitForChanges) -> Result<Request> {
        let after = match input.cursor.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let n: i64 = text.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Error::invalid(
                        "cursor",
                        format!("{text:?} is not a cursor; pass the cursor of an earlier answer, or none"),
                    )
                })?;
                let head = self.store.feed_head()?;
                if n > head {
                    return Err(Error::invalid(
                        "cursor",
                        format!(
                            "{n} is ahead of this store's changes ({head}): it came from another store; call without a cursor to start again"
                        ),
                    ));
                }
                Some(n)
            }
        };
        let mut collections = Vec::new();
        for name in input.collections.iter().flatten() {
            let c = Collection::named(name.trim()).ok_or_else(|| {
                Error::invalid(
                    "collections",
                    format!("{name:?} is not one of work_items, dependencies, vendors, deployments, deployment_links, enhancements, configuration"),
                )
            })?;
            collections.push(c);
        }
        let under = match input.under.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) => Some(crate::domain::ids::parse("under", id)?),
        };
        if under.is_some() && !collections.is_empty() && !collections.iter().any(|c| std::ptr::eq(*c, &WORK_ITEMS)) {
            return Err(Error::invalid(
                "under",
                "names work items, but collections leaves work_items out",
            ));
        }
        let timeout_s = input.timeout_s.unwrap_or(DEFAULT_WAIT_S as i64);
        if !(0..=MAX_WAIT_S as i64).contains(&timeout_s) {
            return Err(Error::invalid(
                "timeout_s",
                format!("must be 0 to {MAX_WAIT_S} (got {timeout_s})"),
            ));
        }
        // The subtree's path prefix, read now: an item moved in or out
        // later is judged by where it is when it changes.
        let filter = FeedFilter {
            collections,
            under: match &under {
                Some(id) => Some(self.subtree(id)?),
                None => None,
            },
        };
        Ok(Request {
            after,
            filter,
            under,
            timeout: Duration::from_secs(timeout_s as u64),
        })
    }

    fn collect(&self, after: i64, request: &Request) -> Result<Changes> {
        let filter = match &request.under {
            // Read the subtree's place again: the item may have moved.
            Some(id) => FeedFilter {
                collections: request.filter.collections.clone(),
                under: Some(self.subtree(id)?),
            },
            None => request.filter.clone(),
        };
        let (head, mut entries) = self.store.read(|conn| {
            let head = feed::head(conn)?;
            let entries = feed::changed(conn, after, head, &filter, MAX_CHANGES)?;
            Ok((head, entries))
        })?;
        let more = entries.len() > MAX_CHANGES;
        entries.truncate(MAX_CHANGES);
        let cursor = match entries.last() {
            Some(last) if more => last.seq,
            _ => head,
        };
        Ok(Changes {
            cursor: cursor.to_string(),
            changes: entries.into_iter().map(changed).collect(),
            more,
        })
    }

    /// The bounds of the paths under work item `id`, and its id (refused
    /// when there is no such item).
    fn subtree(&self, id: &str) -> Result<(String, String, String)> {
        let id = crate::domain::ids::parse("under", id)?;
        let (low, high) = self.store.read(|conn| {
            super::work_items::require(conn, &id)?;
            crate::store::query::work_items::subtree_of(conn, &id)
        })?;
        Ok((low, high, id))
    }
}

fn changed(e: FeedEntry) -> Changed {
    let (item_type, status, title) = match e.item {
        Some((t, s, title)) => {
            let title = match title.char_indices().nth(TITLE_CHARS) {
                Some((cut, _)) => format!("{}…", &title[..cut]),
                None => title,
            };
            (Some(t), Some(s), Some(title))
        }
        None => (None, None, None),
    };
    Changed {
        collection: e.collection,
        id: e.id,
        item_type,
        status,
        title,
        deleted: e.gone,
    }
}

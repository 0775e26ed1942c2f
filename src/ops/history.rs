//! Who did what to a work item (issue 14): the field-level timeline the
//! store knows, newest first, paged.
//!
//! The store keeps, per field, the values no later write has seen (the
//! registers): the latest value of each field and every concurrent one (an
//! open conflict), each with its author, its time and its dot; and the same
//! for the item's claim. Values a later write replaced (and so a resolved
//! conflict's other values) are not kept, so they are not listed: the
//! timeline is each field's last write, and the open conflicts beside it.

use serde::Serialize;
use serde_json::Value;

use super::Tracker;
use super::page::{Page, clamp_limit, decode_cursor, encode_cursor};
use crate::domain::ids;
use crate::error::{Error, Kind, Result};
use crate::store::{CLAIMS, WORK_ITEMS, query};
use crate::time::Timestamp;

/// One value the store holds for a field of the item.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistoryEntry {
    /// When it was written (its clock reading).
    pub at: String,
    pub author: String,
    /// The field (`metadata.<key>` for a metadata key, `claim` for the claim).
    pub field: String,
    pub value: Value,
    /// The write's dot (`replica:counter`), as `resolve_conflict` takes it.
    pub dot: String,
    /// Another value of this field was written concurrently and is kept
    /// beside it (an open conflict; for `claim`, decided by the hub's order).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub concurrent: bool,
}

impl super::page::Row for HistoryEntry {
    const COLUMNS: &'static [&'static str] = &["at", "author", "field", "value", "dot", "concurrent"];
}

/// A value longer than this (as JSON) is cut in a history entry.
const MAX_VALUE_CHARS: usize = 300;

fn bounded(value: &Value) -> Value {
    match value {
        Value::String(s) if s.chars().count() > MAX_VALUE_CHARS => {
            Value::String(s.chars().take(MAX_VALUE_CHARS).chain(['…']).collect())
        }
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        other => {
            let text = other.to_string();
            if text.chars().count() > MAX_VALUE_CHARS {
                Value::String(text.chars().take(MAX_VALUE_CHARS).chain(['…']).collect())
            } else {
                other.clone()
            }
        }
    }
}

impl Tracker {
    /// The timeline of item `id`: a page of the values the store holds for
    /// its fields (and its claim), newest first.
    pub fn work_item_history(&self, id: &str, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<HistoryEntry>> {
        let id = ids::parse("id", id)?;
        let limit = clamp_limit(limit)?;
        let after = cursor
            .map(|c| {
                let parts = decode_cursor(c, 3)?;
                let hlc: u64 = parts[0].parse().map_err(|_| {
                    Error::invalid("cursor", "is not a cursor this list returned; start again without one")
                })?;
                Ok::<_, Error>((hlc, parts[1].clone(), parts[2].clone()))
            })
            .transpose()?;
        let (item, claim) = self.store.read(|tx| {
            if query::work_items::load(tx, &id)?.is_none() {
                return Err(Error::not_found(Kind::WorkItem, &id));
            }
            Ok((
                query::history::state(tx, &WORK_ITEMS, &id)?,
                query::history::state(tx, &CLAIMS, &id)?,
            ))
        })?;
        // (hlc, dot, field) descending: newest first, one order every page shares.
        let mut all: Vec<((u64, String, String), HistoryEntry)> = Vec::new();
        for state in [&item, &claim] {
            for (field, register) in &state.fields {
                let concurrent = register.siblings().len() > 1;
                for s in register.siblings() {
                    let dot = crate::domain::claim::dot_text(&s.dot);
                    all.push((
                        (s.hlc.0, dot.clone(), field.clone()),
                        HistoryEntry {
                            at: Timestamp::from_millis(s.hlc.millis()).to_string(),
                            author: s.author.clone(),
                            field: field.clone(),
                            value: bounded(&s.value),
                            dot,
                            concurrent,
                        },
                    ));
                }
            }
        }
        all.sort_by(|a, b| b.0.cmp(&a.0));
        let total = all.len() as i64;
        let rest: Vec<_> = all
            .into_iter()
            .filter(|(key, _)| after.as_ref().is_none_or(|a| key < a))
            .take(limit as usize + 1)
            .collect();
        let more = rest.len() as i64 > limit;
        let mut items: Vec<_> = rest;
        items.truncate(limit as usize);
        let next_cursor = more
            .then(|| {
                items
                    .last()
                    .map(|((h, d, f), _)| encode_cursor(&[&h.to_string(), d, f]))
            })
            .flatten();
        Ok(Page {
            items: items.into_iter().map(|(_, e)| e).collect(),
            total_count: total,
            total_is_capped: false,
            next_cursor,
        })
    }
}

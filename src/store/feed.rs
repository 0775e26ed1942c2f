//! The change feed: which records changed after a point, and a way to wait
//! for the next change.
//!
//! Every change applied to a record (written here or pulled from the hub)
//! gives the record the next local sequence number, in `change_feed` (one
//! row per record, so the feed never outgrows the store) and in the
//! replica row (`feed_seq`, the head), in the change's transaction. Writes
//! commit in sequence order (one writer at a time, across processes too),
//! so a reader that saw head N has seen every change numbered up to N.
//!
//! Waiting: the writer of this process signals waiters after a commit
//! that moved the feed; writes of other processes on the same file are
//! seen by reading the head every [`POLL`], and only while someone waits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use waymark_sync::{Hlc, ReplicaId};

use super::collections::Collection;
use crate::error::{Error, Result};

/// How often a waiter reads the head, for writes of other processes.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The replica row as a write transaction needs it: id, counter, clock and
/// the feed's head.
pub(super) fn read_replica_for_write(conn: &Connection) -> Result<(ReplicaId, u64, Hlc, i64)> {
    let (id, counter, hlc, feed): (String, i64, i64, i64) = conn
        .prepare_cached("SELECT replica_id, counter, hlc, feed_seq FROM replica WHERE singleton = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let id = id
        .parse()
        .map_err(|_| Error::Corrupt(format!("replica id {id:?} is not a UUID")))?;
    Ok((id, counter as u64, Hlc(hlc as u64), feed))
}

/// Give record `key` of collection `code` (0: opaque) sequence number `seq`.
pub(super) fn note(conn: &Connection, code: i64, key: i64, seq: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO change_feed (collection, key, seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (collection, key) DO UPDATE SET seq = excluded.seq",
    )?
    .execute([code, key, seq])?;
    Ok(())
}

/// The feed's head: the sequence number of the latest change.
pub fn head(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT feed_seq FROM replica WHERE singleton = 1")?
        .query_row([], |r| r.get(0))?)
}

/// One record in the feed, as it is now.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedEntry {
    pub seq: i64,
    pub collection: String,
    pub id: String,
    /// Work items: type, status and title; other records: none.
    pub item: Option<(String, String, String)>,
    /// Whether the record is deleted (or, for a link, removed).
    pub gone: bool,
}

/// Which records a reader of the feed cares about.
#[derive(Clone, Debug, Default)]
pub struct FeedFilter {
    /// Only these collections (all when empty).
    pub collections: Vec<&'static Collection>,
    /// Only work items whose path is within these bounds (a subtree, see
    /// `tree::subtree_range`), or that have this id; other collections are
    /// left out.
    pub under: Option<(String, String, String)>,
}

/// The records changed after `after` and up to `upto`, oldest change first,
/// at most `limit` of them (one more tells the caller there are more).
pub fn changed(conn: &Connection, after: i64, upto: i64, filter: &FeedFilter, limit: usize) -> Result<Vec<FeedEntry>> {
    let mut out = Vec::new();
    let take = limit as i64 + 1;
    for c in Collection::all() {
        if !filter.collections.is_empty() && !filter.collections.iter().any(|f| std::ptr::eq(*f, c)) {
            continue;
        }
        let is_items = std::ptr::eq(c, &super::WORK_ITEMS);
        if filter.under.is_some() && !is_items {
            continue;
        }
        let gone = match c.name {
            "dependencies" | "deployment_links" => "t.removed",
            "configuration" => "0",
            "claims" => "t.holder IS NULL",
            _ => "t.deleted_at IS NOT NULL",
        };
        let extra = if is_items {
            ", t.item_type, t.status, t.title"
        } else {
            ""
        };
        let under = if is_items && filter.under.is_some() {
            " AND ((t.path >= ?5 AND t.path < ?6) OR t.id = ?7)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT f.seq, t.id, {gone}{extra} FROM change_feed f JOIN {table} t ON t.key = f.key
             WHERE f.collection = ?1 AND f.seq > ?2 AND f.seq <= ?3{under} ORDER BY f.seq LIMIT ?4",
            table = c.name
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<FeedEntry> {
            Ok(FeedEntry {
                seq: r.get(0)?,
                collection: c.name.to_owned(),
                id: super::id::get_id(r, 1)?,
                gone: r.get(2)?,
                item: if is_items {
                    Some((r.get(3)?, r.get(4)?, r.get(5)?))
                } else {
                    None
                },
            })
        };
        let rows = match &filter.under {
            Some((low, high, id)) if is_items => stmt
                .query_map(
                    rusqlite::params![c.code, after, upto, take, low, high, super::id::sql(id)],
                    read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            _ => stmt
                .query_map(rusqlite::params![c.code, after, upto, take], read)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        out.extend(rows);
    }
    if filter.collections.is_empty() && filter.under.is_none() {
        let mut stmt = conn.prepare_cached(
            "SELECT f.seq, t.collection, t.record_id FROM change_feed f JOIN opaque_records t ON t.key = f.key
             WHERE f.collection = 0 AND f.seq > ?1 AND f.seq <= ?2 ORDER BY f.seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(rusqlite::params![after, upto, take], |r| {
            Ok(FeedEntry {
                seq: r.get(0)?,
                collection: r.get(1)?,
                id: r.get(2)?,
                item: None,
                gone: false,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by_key(|e| e.seq);
    out.truncate(limit + 1);
    Ok(out)
}

/// Waiters on this process's writes: a generation bumped after each commit
/// that moved the feed, while anyone waits.
#[derive(Default)]
pub(super) struct Signal {
    generation: Mutex<u64>,
    moved: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    /// After a commit that moved the feed: wake every waiter (nothing to do
    /// when nobody waits).
    pub(super) fn committed(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *generation += 1;
        self.moved.notify_all();
    }

    /// Wait until `head()` passes `after`, `deadline` comes or `cancelled`
    /// is set (seen within [`POLL`]); returns the last head read.
    pub(super) fn wait(
        &self,
        after: i64,
        deadline: Instant,
        cancelled: &AtomicBool,
        head: impl Fn() -> Result<i64>,
    ) -> Result<i64> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = (|| loop {
            let seen = *self.generation.lock().unwrap_or_else(|p| p.into_inner());
            let now = head()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if now > after || left.is_zero() || cancelled.load(Ordering::Relaxed) {
                return Ok(now);
            }
            let generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
            if *generation != seen {
                continue;
            }
            drop(
                self.moved
                    .wait_timeout(generation, left.min(POLL))
                    .unwrap_or_else(|p| p.into_inner()),
            );
        })();
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

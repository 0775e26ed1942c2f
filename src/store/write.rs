//! The one write path. Every change to a record, local or merged from a
//! peer, goes through [`WriteTx::apply`]: it updates the record's registers,
//! rewrites the typed projection and (for local changes) appends the change
//! to the outbox, all inside the caller's `BEGIN IMMEDIATE` transaction.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction};
use serde_json::Value;
use waymark_sync::{Applied, Change, Dot, Hlc, RecordState, ReplicaId, SCHEMA_VERSION};

use super::collections::{Collection, Loaded};
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Work items written in one transaction from which it is a bulk write.
const BULK_WRITE: usize = 5_000;

/// Field name -> value, as one change writes them.
pub type Fields = BTreeMap<String, Value>;

/// One write transaction. Dropped without [`WriteTx::commit`], it rolls back.
pub struct WriteTx<'c> {
    tx: Transaction<'c>,
    author: String,
    replica: ReplicaId,
    counter: u64,
    hlc: Hlc,
    dirty: bool,
    /// Whether this transaction wrote local changes (outbox entries).
    wrote_local: bool,
    /// Work items written in this transaction (each a full-text index write).
    work_items_written: usize,
    /// Replica ids and authors interned so far in this transaction.
    interned: super::codec::Interned,
    /// Whether the record the last applied change touched holds a value conflict.
    last_conflicted: bool,
    /// Whether orphan work items exist (looked up once per transaction).
    orphans: Option<bool>,
    /// Wall time override for the next local changes (imports keep the
    /// times of the records they bring in).
    at: Option<Timestamp>,
    /// Replica ids this store wrote under before (looked up once per
    /// transaction): their changes may still wait in the outbox.
    retired: Option<Vec<ReplicaId>>,
    /// The last outbox entry handed to a push (looked up once per
    /// transaction): see [`WriteTx::keep_overwritten`].
    handed_out: Option<i64>,
    /// Milliseconds this store's clock runs ahead of the machine's (tests).
    skew_ms: i64,
}

impl<'c> WriteTx<'c> {
    pub(super) fn begin(tx: Transaction<'c>, author: String, skew_ms: i64) -> Result<WriteTx<'c>> {
        let (replica, counter, hlc, _) = super::read_replica(&tx)?;
        Ok(WriteTx {
            tx,
            author,
            replica,
            counter,
            hlc,
            dirty: false,
            wrote_local: false,
            work_items_written: 0,
            interned: super::codec::Interned::default(),
            last_conflicted: false,
            orphans: None,
            at: None,
            retired: None,
            handed_out: None,
            skew_ms,
        })
    }

    /// The transaction, for reads and validation inside the write.
    pub fn conn(&self) -> &Transaction<'c> {
        &self.tx
    }

    pub fn author(&self) -> &str {
        &self.author
    }

    /// Record the following local changes as written by `author` (imports
    /// keep the authors of the records they bring in).
    pub fn set_author(&mut self, author: String) {
        self.author = author;
    }

    /// The time the next local change will carry.
    pub fn now(&self) -> Timestamp {
        self.at
            .unwrap_or_else(|| Timestamp(Timestamp::now().0.saturating_add(self.skew_ms.saturating_mul(1000))))
    }

    /// Stamp the following local changes with `at` instead of the wall
    /// clock (the hybrid clock still never goes backwards for them).
    pub fn set_time(&mut self, at: Option<Timestamp>) {
        self.at = at;
    }

    /// Write `fields` of record `id` as one local change: take the next dot,
    /// stamp the record's version vector as the context and the hybrid
    /// clock, apply it, and append it to the outbox. Returns the record's
    /// new local version.
    pub fn write(&mut self, collection: &'static Collection, id: &str, fields: Fields) -> Result<i64> {
        if fields.is_empty() {
            return Err(Error::Corrupt("a change must write at least one field".into()));
        }
        let old = collection.load(&self.tx, id)?;
        self.counter += 1;
        let millis = self.now().millis();
        self.hlc = match self.at {
            // An import's time is kept as given, unless it would reorder this
            // record's own history.
            Some(_) => {
                let floor = old.state.last_write().map(|s| s.hlc).unwrap_or_default();
                let wanted = Hlc::from_parts(millis, 0);
                if wanted > floor { wanted } else { floor.tick(millis) }
            }
            None => self.hlc.tick(millis),
        };
        let change = Change {
            collection: collection.name.to_owned(),
            record_id: id.to_owned(),
            dot: Dot {
                replica: self.replica,
                counter: self.counter,
            },
            context: old.state.vv.clone(),
            fields,
            hlc: self.hlc,
            author: self.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.dirty = true;
        self.wrote_local = true;
        let (version, key) = self.apply_to(collection, old, &change)?;
        // The outbox names the record; the change is rebuilt from its state
        // when pushed (see `replica.rs`).
        let (replica, author) = super::codec::intern_write(&self.tx, &mut self.interned, &self.replica, &self.author)?;
        let context = super::codec::encode_context(&self.tx, &mut self.interned, &change.context)?;
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (replica, counter, collection, record, hlc, author, schema, context)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(rusqlite::params![
                replica,
                self.counter as i64,
                collection.code,
                key,
                self.hlc.0 as i64,
                author,
                SCHEMA_VERSION,
                context
            ])?;
        Ok(version)
    }

    /// Apply a change that came from a peer (through the hub). No outbox
    /// entry; the clock observes the change's time. Returns the record's
    /// local version, or `None` when the change was already applied.
    pub fn apply_remote(&mut self, change: &Change) -> Result<Option<i64>> {
        let collection = Collection::named(&change.collection)
            .ok_or_else(|| Error::Corrupt(format!("change for unknown collection {:?}", change.collection)))?;
        let old = collection.load(&self.tx, &change.record_id)?;
        if old.state.vv.covers(&change.dot) {
            return Ok(None);
        }
        self.hlc = self.hlc.observe(change.hlc);
        self.dirty = true;
        self.apply_to(collection, old, change).map(|(version, _)| Some(version))
    }

    fn apply_to(&mut self, collection: &'static Collection, mut old: Loaded, change: &Change) -> Result<(i64, i64)> {
        // Values of this replica's earlier writes that this change may
        // replace: a pending change may keep them (see `keep_overwritten`).
        let mut replaced: Vec<(&str, Dot, Value)> = Vec::new();
        for name in change.fields.keys() {
            for s in old.state.fields.get(name).map(|r| r.siblings()).unwrap_or_default() {
                if self.may_be_pending(&s.dot)? {
                    replaced.push((name, s.dot, s.value.clone()));
                }
            }
        }
        let mut state = std::mem::take(&mut old.state);
        if state.apply(change) == Applied::AlreadySeen {
            return Err(Error::Corrupt(format!("change {:?} applied twice", change.dot)));
        }
        for (name, dot, value) in replaced {
            let kept = state
                .fields
                .get(name)
                .is_some_and(|r| r.siblings().iter().any(|s| s.dot == dot));
            if !kept {
                self.keep_overwritten(&dot, name, &value)?;
            }
        }
        if std::ptr::eq(collection, &super::WORK_ITEMS) {
            self.work_items_written += 1;
        }
        let encoded = super::codec::encode(&self.tx, &mut self.interned, collection, &state)?;
        self.last_conflicted = state
            .conflicts()
            .any(|(f, _)| !super::collections::QUIET_FIELDS.contains(&f));
        collection.materialize(&self.tx, &change.record_id, &old, &state, encoded, &mut self.orphans)
    }

    /// Whether `dot` was written here (under this replica id or a retired
    /// one), so that its change may still wait in the outbox.
    fn may_be_pending(&mut self, dot: &Dot) -> Result<bool> {
        if dot.replica == self.replica {
            return Ok(true);
        }
        if self.retired.is_none() {
            let retired = self
                .tx
                .prepare_cached("SELECT replica_id FROM retired_replicas")?
                .query_map([], |r| r.get::<_, String>(0))?
                .filter_map(|r| r.ok().and_then(|id| id.parse().ok()))
                .collect();
            self.retired = Some(retired);
        }
        Ok(self.retired.as_ref().is_some_and(|r| r.contains(&dot.replica)))
    }

    /// Copy the value a pending change wrote, and this write replaces, into
    /// the change's outbox entry, if a push may already have sent the change:
    /// the hub then holds it as written and refuses a resend that differs.
    /// A change never handed to a push is rebuilt without the value; the
    /// later change that replaced it carries the field, with a context that
    /// covers the earlier one, so every replica ends in the same state.
    fn keep_overwritten(&mut self, dot: &Dot, field: &str, value: &Value) -> Result<()> {
        let handed_out = match self.handed_out {
            Some(seq) => seq,
            None => {
                let seq = super::replica::handed_out(&self.tx)?;
                self.handed_out = Some(seq);
                seq
            }
        };
        if handed_out == 0 {
            return Ok(());
        }
        let Some(replica) = super::codec::replica_number(&self.tx, &dot.replica)? else {
            return Ok(());
        };
        let found: Option<(i64, Option<String>)> = self
            .tx
            .prepare_cached("SELECT seq, overwritten FROM outbox WHERE replica = ?1 AND counter = ?2")?
            .query_row(rusqlite::params![replica, dot.counter as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((seq, kept)) = found.filter(|(seq, _)| *seq <= handed_out) else {
            return Ok(());
        };
        let mut kept: serde_json::Map<String, Value> = match kept {
            Some(text) => serde_json::from_str(&text)
                .map_err(|_| Error::Corrupt(format!("outbox entry {seq} keeps malformed values")))?,
            None => serde_json::Map::new(),
        };
        kept.insert(field.to_owned(), value.clone());
        self.tx
            .prepare_cached("UPDATE outbox SET overwritten = ?2 WHERE seq = ?1")?
            .execute(rusqlite::params![seq, Value::Object(kept).to_string()])?;
        Ok(())
    }

    /// Whether the record of the last change written or applied holds a
    /// value conflict (concurrent, different values in one field).
    pub fn last_conflicted(&self) -> bool {
        self.last_conflicted
    }

    /// The stored registers of one record (empty for a record never written).
    pub fn state(&self, collection: &'static Collection, id: &str) -> Result<RecordState> {
        Ok(collection.load(&self.tx, id)?.state)
    }

    /// Commit; returns whether local changes were written.
    pub(super) fn commit(self) -> Result<bool> {
        let wrote_local = self.wrote_local;
        if self.dirty {
            self.tx
                .prepare_cached("UPDATE replica SET counter = ?1, hlc = ?2 WHERE singleton = 1")?
                .execute(rusqlite::params![self.counter as i64, self.hlc.0 as i64])?;
        }
        if self.work_items_written > 0 && super::search::pending(&self.tx)? >= super::search::CATCH_UP_AT {
            super::search::catch_up(&self.tx)?;
        }
        if self.work_items_written >= BULK_WRITE {
            // A bulk write (an import) leaves the full-text index in many
            // small segments, which every later write pays for; merge them.
            self.tx
                .execute("INSERT INTO work_items_fts (work_items_fts) VALUES ('optimize')", [])?;
        }
        self.tx.commit()?;
        Ok(wrote_local)
    }
}

/// The stored registers of one record (empty for a record never written).
pub fn load_state(conn: &rusqlite::Connection, collection: &Collection, id: &str) -> Result<RecordState> {
    Ok(collection.load(conn, id)?.state)
}

//! The one write path. Every change to a record, local or merged from a
//! peer, goes through [`WriteTx::apply`]: it updates the record's registers,
//! rewrites the typed projection and (for local changes) appends the change
//! to the outbox, all inside the caller's `BEGIN IMMEDIATE` transaction.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction};
use serde_json::Value;
use waymark_sync::{Applied, Change, Dot, Hlc, RecordState, ReplicaId, SCHEMA_VERSION};

use super::collections::Collection;
use crate::error::{Error, Result};
use crate::time::Timestamp;

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
    /// Replica ids and authors interned so far in this transaction.
    interned: super::codec::Interned,
    /// Whether the record the last applied change touched holds a value conflict.
    last_conflicted: bool,
    /// Whether orphan work items exist (looked up once per transaction).
    orphans: Option<bool>,
    /// Wall time override for the next local changes (imports keep the
    /// times of the records they bring in).
    at: Option<Timestamp>,
}

impl<'c> WriteTx<'c> {
    pub(super) fn begin(tx: Transaction<'c>, author: String) -> Result<WriteTx<'c>> {
        let (replica, counter, hlc, _) = super::read_replica(&tx)?;
        Ok(WriteTx {
            tx,
            author,
            replica,
            counter,
            hlc,
            dirty: false,
            wrote_local: false,
            interned: super::codec::Interned::default(),
            last_conflicted: false,
            orphans: None,
            at: None,
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
        self.at.unwrap_or_else(Timestamp::now)
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
        let state = load_state(&self.tx, collection, id)?;
        self.counter += 1;
        let millis = self.now().millis();
        self.hlc = match self.at {
            // An import's time is kept as given, unless it would reorder this
            // record's own history.
            Some(_) => {
                let floor = state.last_write().map(|s| s.hlc).unwrap_or_default();
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
            context: state.vv.clone(),
            fields,
            hlc: self.hlc,
            author: self.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.dirty = true;
        self.wrote_local = true;
        self.tx
            .prepare_cached("INSERT INTO outbox (replica_id, counter, change) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![
                self.replica.to_string(),
                self.counter as i64,
                super::codec::encode_change(&self.tx, &mut self.interned, &change)?
            ])?;
        self.apply_to(collection, state, &change)
    }

    /// Apply a change that came from a peer (through the hub). No outbox
    /// entry; the clock observes the change's time. Returns the record's
    /// local version, or `None` when the change was already applied.
    pub fn apply_remote(&mut self, change: &Change) -> Result<Option<i64>> {
        let collection = Collection::named(&change.collection)
            .ok_or_else(|| Error::Corrupt(format!("change for unknown collection {:?}", change.collection)))?;
        let state = load_state(&self.tx, collection, &change.record_id)?;
        if state.vv.covers(&change.dot) {
            return Ok(None);
        }
        self.hlc = self.hlc.observe(change.hlc);
        self.dirty = true;
        self.apply_to(collection, state, change).map(Some)
    }

    fn apply_to(&mut self, collection: &'static Collection, mut state: RecordState, change: &Change) -> Result<i64> {
        let had_conflicts = state.conflicts().next().is_some() || state.delete_conflict();
        let is_new = state.vv.is_empty();
        if state.apply(change) == Applied::AlreadySeen {
            return Err(Error::Corrupt(format!("change {:?} applied twice", change.dot)));
        }
        self.tx
            .prepare_cached(
                "INSERT INTO records (collection, id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (collection, id) DO UPDATE SET state = excluded.state",
            )?
            .execute(rusqlite::params![
                collection.name,
                change.record_id,
                super::codec::encode(&self.tx, &mut self.interned, &state)?
            ])?;
        self.last_conflicted = state
            .conflicts()
            .any(|(f, _)| !super::collections::QUIET_FIELDS.contains(&f));
        collection.materialize(
            &self.tx,
            &change.record_id,
            &state,
            had_conflicts,
            is_new,
            &mut self.orphans,
        )
    }

    /// Whether the record of the last change written or applied holds a
    /// value conflict (concurrent, different values in one field).
    pub fn last_conflicted(&self) -> bool {
        self.last_conflicted
    }

    /// The stored registers of one record (empty for a record never written).
    pub fn state(&self, collection: &'static Collection, id: &str) -> Result<RecordState> {
        load_state(&self.tx, collection, id)
    }

    /// Commit; returns whether local changes were written.
    pub(super) fn commit(self) -> Result<bool> {
        let wrote_local = self.wrote_local;
        if self.dirty {
            self.tx.execute(
                "UPDATE replica SET counter = ?1, hlc = ?2 WHERE singleton = 1",
                rusqlite::params![self.counter as i64, self.hlc.0 as i64],
            )?;
        }
        self.tx.commit()?;
        Ok(wrote_local)
    }
}

/// The stored registers of one record (empty for a record never written).
pub fn load_state(tx: &rusqlite::Connection, collection: &Collection, id: &str) -> Result<RecordState> {
    let text: Option<String> = tx
        .prepare_cached("SELECT state FROM records WHERE collection = ?1 AND id = ?2")?
        .query_row([collection.name, id], |r| r.get(0))
        .optional()?;
    match text {
        None => Ok(RecordState::default()),
        Some(text) => {
            super::codec::decode(tx, &text).map_err(|e| Error::Corrupt(format!("record {}/{id}: {e}", collection.name)))
        }
    }
}

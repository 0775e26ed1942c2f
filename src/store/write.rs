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

/// How far ahead of this machine's clock a pulled change's clock may read
/// before this store stops following it: beyond, the store's own clock (and
/// so every later local write) is held at the machine's time plus this, and
/// the sync health says which peer is ahead. A peer whose clock is years
/// ahead then cannot pin every store's new writes in the future.
pub(crate) const MAX_CLOCK_DRIFT_MS: u64 = 60_000;

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
    /// Whether this transaction wrote local changes.
    wrote_local: bool,
    /// Whether local changes go to the outbox: not until the store has
    /// published its state to a hub (see `replica.rs`, `UNPUBLISHED`).
    publishing: bool,
    /// Whether this transaction publishes the store's state again: its
    /// changes write what the records show, and their versions stay (a
    /// user's update based on what it read still applies).
    republishing: bool,
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
    /// Milliseconds this store's clock runs ahead of the machine's (tests).
    skew_ms: i64,
    /// The change feed's last sequence number (see `feed.rs`).
    feed_seq: i64,
    feed_begin: i64,
}

impl<'c> WriteTx<'c> {
    pub(super) fn begin(tx: Transaction<'c>, author: String, skew_ms: i64) -> Result<WriteTx<'c>> {
        let (replica, counter, hlc, feed_seq) = super::feed::read_replica_for_write(&tx)?;
        let publishing = !super::replica::unpublished(&tx)?;
        Ok(WriteTx {
            tx,
            author,
            replica,
            counter,
            hlc,
            dirty: false,
            wrote_local: false,
            publishing,
            republishing: false,
            work_items_written: 0,
            interned: super::codec::Interned::default(),
            last_conflicted: false,
            orphans: None,
            at: None,
            skew_ms,
            feed_seq,
            feed_begin: feed_seq,
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
    pub(crate) fn set_author(&mut self, author: String) {
        self.author = author;
    }

    /// This machine's time (with the store's test skew), whatever time the
    /// next local change is told to carry.
    fn wall(&self) -> Timestamp {
        Timestamp(Timestamp::now().0.saturating_add(self.skew_ms.saturating_mul(1000)))
    }

    /// The furthest the store's clock follows a time it did not read itself
    /// (a peer's, an import's, a republished write's): [`MAX_CLOCK_DRIFT_MS`]
    /// past this machine's time.
    fn clock_bound(&self) -> Hlc {
        Hlc::from_parts(self.wall().millis().saturating_add(MAX_CLOCK_DRIFT_MS), 0)
    }

    /// Follow a pulled change's clock reading, no further than
    /// [`WriteTx::clock_bound`]; note a peer beyond.
    fn observe(&mut self, change: &Change) -> Result<()> {
        let wall = self.wall().millis();
        let bound = self.clock_bound();
        if change.hlc > bound {
            let ahead = change.hlc.millis().saturating_sub(wall) / 1000;
            let warning = format!(
                "changes by {} (replica {}) carry a clock {} ahead of this machine's; check that machine's clock",
                change.author,
                change.dot.replica,
                crate::time::duration_words(ahead)
            );
            self.tx
                .prepare_cached(
                    "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?
                .execute([crate::ops::configuration::health_keys::CLOCK_AHEAD, &warning])?;
        }
        self.hlc = self.hlc.observe(change.hlc.min(bound));
        Ok(())
    }

    /// The time the next local change will carry.
    pub fn now(&self) -> Timestamp {
        self.at.unwrap_or_else(|| self.wall())
    }

    /// Stamp the following local changes with `at` instead of the wall
    /// clock (the hybrid clock still never goes backwards for them).
    pub(crate) fn set_time(&mut self, at: Option<Timestamp>) {
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
        let hlc = match self.at {
            // An import's time is kept as given, unless it would reorder this
            // record's own history; the store's clock never goes back for it.
            Some(_) => {
                let floor = old.state.last_write().map(|s| s.hlc).unwrap_or_default();
                let wanted = Hlc::from_parts(millis, 0);
                if wanted > floor { wanted } else { floor.tick(millis) }
            }
            None => self.hlc.tick(millis),
        };
        // The store's clock follows a time it was given (an import, a
        // republished write) no further than it follows a peer's.
        self.hlc = self.hlc.max(hlc.min(self.clock_bound()));
        let change = Change {
            collection: collection.name.to_owned(),
            record_id: id.to_owned(),
            dot: Dot {
                replica: self.replica,
                counter: self.counter,
            },
            context: old.state.vv.clone(),
            fields,
            hlc,
            author: self.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.record_local(collection, old, &change)
    }

    /// Apply a local `change` and append it to the outbox.
    fn record_local(&mut self, collection: &'static Collection, old: Loaded, change: &Change) -> Result<i64> {
        self.dirty = true;
        self.wrote_local = true;
        let (version, key) = self.apply_to(collection, old, change)?;
        self.append_outbox(collection.code, key, change)?;
        Ok(version)
    }

    /// From here on, this store's local changes go to the outbox (its state
    /// is being published in this transaction: see `Store::republish`).
    pub(super) fn start_publishing(&mut self) -> Result<()> {
        super::replica::set_published(&self.tx)?;
        self.publishing = true;
        self.republishing = true;
        Ok(())
    }

    /// Append a local change to the outbox, as written: an entry is never
    /// rewritten, so a resend, a copy of this store, a push interrupted
    /// anywhere all send the same bytes (see `replica.rs`). A store that has
    /// not published its state to a hub yet appends nothing: its first hub
    /// gets its whole state then, which carries what each of these changes
    /// left.
    fn append_outbox(&mut self, code: i64, key: i64, change: &Change) -> Result<()> {
        if !self.publishing {
            return Ok(());
        }
        let (replica, author) =
            super::codec::intern_write(&self.tx, &mut self.interned, &change.dot.replica, &change.author)?;
        let context = super::codec::encode_context(&self.tx, &mut self.interned, &change.context)?;
        let fields = super::codec::pack_fields(&change.fields)?;
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (replica, counter, collection, record, hlc, author, schema, context, fields)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(rusqlite::params![
                replica,
                change.dot.counter as i64,
                code,
                key,
                change.hlc.0 as i64,
                author,
                SCHEMA_VERSION,
                context,
                fields
            ])?;
        Ok(())
    }

    /// Take a new replica id for this store's next changes; the old one is
    /// retired (its unacknowledged changes stay in the outbox, under it).
    pub(super) fn take_new_id(&mut self) -> Result<(ReplicaId, ReplicaId)> {
        let (old, new) = (self.replica, ReplicaId::mint());
        let now = Timestamp::now().to_string();
        self.tx.execute(
            "INSERT OR IGNORE INTO retired_replicas (replica_id, retired_at) VALUES (?1, ?2)",
            [old.to_string(), now],
        )?;
        self.tx.execute(
            "UPDATE replica SET replica_id = ?1, counter = 0 WHERE singleton = 1",
            [new.to_string()],
        )?;
        self.replica = new;
        self.counter = 0;
        self.dirty = true;
        Ok((old, new))
    }

    /// [`WriteTx::take_new_id`], dropping every unacknowledged change (the
    /// caller publishes what they wrote again, see `Store::republish`).
    pub(super) fn rehome(&mut self) -> Result<(ReplicaId, ReplicaId)> {
        let ids = self.take_new_id()?;
        self.tx.execute("DELETE FROM outbox", [])?;
        Ok(ids)
    }

    /// The hub holds other changes than this store's under `from`'s dots
    /// from counter `at` on: move this store's changes there to a new
    /// replica id (see `waymark_sync::fork`), in its registers and its
    /// outbox. Returns how many changes moved.
    pub(super) fn fork_away(&mut self, from: ReplicaId, at: u64) -> Result<usize> {
        let Some(idx) = super::codec::interned_replica(&self.tx, &from)? else {
            return Ok(0);
        };
        let forked: Vec<(i64, i64, i64, i64, Option<String>)> = self
            .tx
            .prepare("SELECT seq, counter, collection, record, context FROM outbox WHERE replica = ?1 AND counter >= ?2 ORDER BY counter")?
            .query_map(rusqlite::params![idx, at as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if forked.is_empty() {
            return Ok(0);
        }
        let (_, to) = self.take_new_id()?;
        let fork = waymark_sync::fork::Fork {
            from,
            at,
            to,
            counters: forked
                .iter()
                .enumerate()
                .map(|(i, e)| (e.1 as u64, i as u64 + 1))
                .collect(),
        };
        self.counter = forked.len() as u64;
        let (to_idx, _) = super::codec::intern_write(&self.tx, &mut self.interned, &to, &self.author)?;
        let mut records = std::collections::BTreeSet::new();
        for (seq, counter, code, key, context) in &forked {
            let context = super::codec::decode_context(&self.tx, context.as_deref())?;
            let context = super::codec::encode_context(&self.tx, &mut self.interned, &fork.vv(&context))?;
            self.tx.execute(
                "UPDATE outbox SET replica = ?2, counter = ?3, context = ?4 WHERE seq = ?1",
                rusqlite::params![seq, to_idx, fork.counters[&(*counter as u64)] as i64, context],
            )?;
            records.insert((*code, *key));
        }
        for (code, key) in records {
            if code == 0 {
                let (name, id): (String, String) = self.tx.query_row(
                    "SELECT collection, record_id FROM opaque_records WHERE key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let renamed = fork.state(&load_opaque(&self.tx, &name, &id)?);
                let text = serde_json::to_string(&renamed)
                    .map_err(|e| Error::Corrupt(format!("opaque record {name}/{id}: {e}")))?;
                self.tx.execute(
                    "UPDATE opaque_records SET state = ?2 WHERE key = ?1",
                    rusqlite::params![key, text],
                )?;
                continue;
            }
            let collection = Collection::by_code(code)
                .ok_or_else(|| Error::Corrupt(format!("outbox names unknown collection {code}")))?;
            let Some((_, state)) = collection.load_by_key(&self.tx, key)? else {
                continue;
            };
            let renamed = fork.state(&state);
            let encoded = super::codec::encode(&self.tx, &mut self.interned, collection, &renamed)?;
            self.tx
                .prepare_cached(&format!("UPDATE {} SET state = ?2 WHERE key = ?1", collection.name))?
                .execute(rusqlite::params![key, encoded])?;
        }
        Ok(forked.len())
    }

    /// Write one value of a register again as its own local change, under
    /// `dot` of a helper replica, concurrent with every other change made
    /// with the same `context` (a republished conflict stays a conflict).
    pub(super) fn write_sibling(
        &mut self,
        collection: &'static Collection,
        id: &str,
        dot: Dot,
        context: waymark_sync::VersionVector,
        sibling: &waymark_sync::Sibling,
        field: &str,
    ) -> Result<()> {
        let old = collection.load(&self.tx, id)?;
        let change = Change {
            collection: collection.name.to_owned(),
            record_id: id.to_owned(),
            dot,
            context,
            fields: Fields::from([(field.to_owned(), sibling.value.clone())]),
            hlc: sibling.hlc,
            author: sibling.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.record_local(collection, old, &change).map(|_| ())
    }

    /// Apply a change that came from a peer (through the hub). No outbox
    /// entry; the clock observes the change's time. Returns the record's
    /// local version, or `None` when the change was already applied.
    pub fn apply_remote(&mut self, change: &Change) -> Result<Option<i64>> {
        if let Some(why) = change.malformed() {
            return Err(Error::Corrupt(format!("the hub sent a malformed change: {why}")));
        }
        let Some(collection) = Collection::named(&change.collection) else {
            return self.apply_opaque(change);
        };
        let old = collection.load(&self.tx, &change.record_id)?;
        if old.state.vv.covers(&change.dot) {
            return Ok(None);
        }
        if change.dot.replica == self.replica && change.dot.counter > self.counter {
            // A change of this store's own id that it never wrote: this store
            // was restored from an earlier state of itself (a machine
            // snapshot), and the hub holds what it wrote after. Its next
            // changes must not reuse those dots.
            let (old_id, new_id) = self.take_new_id()?;
            tracing::warn!(
                old_replica = %old_id, new_replica = %new_id,
                "the hub holds changes of this store's replica id that it never wrote (restored from a snapshot?); it takes a new replica id"
            );
        }
        self.observe(change)?;
        self.dirty = true;
        self.apply_to(collection, old, change).map(|(version, _)| Some(version))
    }

    /// Merge a change of a collection this build does not know into the
    /// record's opaque registers (see `0005_immutable_outbox.sql`).
    fn apply_opaque(&mut self, change: &Change) -> Result<Option<i64>> {
        let mut state = load_opaque(&self.tx, &change.collection, &change.record_id)?;
        if state.apply(change) == Applied::AlreadySeen {
            return Ok(None);
        }
        self.observe(change)?;
        self.dirty = true;
        let key = self.store_opaque(change, &state)?;
        self.note_changed(0, key)?;
        self.last_conflicted = false;
        Ok(Some(0))
    }

    /// Store the opaque registers of `change`'s record; returns its key.
    fn store_opaque(&mut self, change: &Change, state: &RecordState) -> Result<i64> {
        let text = serde_json::to_string(state)
            .map_err(|e| Error::Corrupt(format!("opaque record {}: {e}", change.record_id)))?;
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO opaque_records (collection, record_id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (collection, record_id) DO UPDATE SET state = excluded.state
                 RETURNING key",
            )?
            .query_row([&change.collection, &change.record_id, &text], |r| r.get(0))?)
    }

    /// The next dot of this store's own replica id.
    pub(super) fn next_dot(&mut self) -> Dot {
        self.counter += 1;
        Dot {
            replica: self.replica,
            counter: self.counter,
        }
    }

    /// A local change of a record of a collection this build does not know
    /// (a republished one): merged into its opaque registers, and appended
    /// to the outbox under collection code 0.
    pub(super) fn record_opaque(&mut self, change: &Change) -> Result<()> {
        let mut state = load_opaque(&self.tx, &change.collection, &change.record_id)?;
        if state.apply(change) == Applied::AlreadySeen {
            return Err(Error::Corrupt(format!("change {:?} applied twice", change.dot)));
        }
        self.dirty = true;
        self.wrote_local = true;
        let key = self.store_opaque(change, &state)?;
        self.note_changed(0, key)?;
        self.append_outbox(0, key, change)
    }

    fn apply_to(&mut self, collection: &'static Collection, mut old: Loaded, change: &Change) -> Result<(i64, i64)> {
        let mut state = std::mem::take(&mut old.state);
        if state.apply(change) == Applied::AlreadySeen {
            return Err(Error::Corrupt(format!("change {:?} applied twice", change.dot)));
        }
        self.store_state(collection, &change.record_id, old, state)
    }

    /// Join a snapshot the hub folded into the record's registers (see
    /// `RecordState::join`), through the same projection as a change.
    /// Returns the record's local version, or `None` when the snapshot
    /// held nothing new here.
    pub fn apply_snapshot(&mut self, snapshot: &waymark_sync::Snapshot) -> Result<Option<i64>> {
        if snapshot.collection.is_empty() || snapshot.record_id.is_empty() {
            return Err(Error::Corrupt("the hub sent a snapshot that names no record".into()));
        }
        let own = snapshot.state.vv.get(&self.replica);
        if own > self.counter {
            // As for a change (`apply_remote`): this store's own id wrote
            // more than it remembers, so it was restored from an earlier
            // state of itself.
            let (old_id, new_id) = self.take_new_id()?;
            tracing::warn!(
                old_replica = %old_id, new_replica = %new_id,
                "the hub holds changes of this store's replica id that it never wrote (restored from a snapshot?); it takes a new replica id"
            );
        }
        let Some(collection) = Collection::named(&snapshot.collection) else {
            let mut state = load_opaque(&self.tx, &snapshot.collection, &snapshot.record_id)?;
            if !state.join(&snapshot.state) {
                return Ok(None);
            }
            self.observe_snapshot(snapshot)?;
            self.dirty = true;
            let text = serde_json::to_string(&state)
                .map_err(|e| Error::Corrupt(format!("opaque record {}: {e}", snapshot.record_id)))?;
            let key: i64 = self
                .tx
                .prepare_cached(
                    "INSERT INTO opaque_records (collection, record_id, state) VALUES (?1, ?2, ?3)
                     ON CONFLICT (collection, record_id) DO UPDATE SET state = excluded.state
                     RETURNING key",
                )?
                .query_row([&snapshot.collection, &snapshot.record_id, &text], |r| r.get(0))?;
            self.note_changed(0, key)?;
            self.last_conflicted = false;
            return Ok(Some(0));
        };
        let mut old = collection.load(&self.tx, &snapshot.record_id)?;
        let mut state = std::mem::take(&mut old.state);
        if !state.join(&snapshot.state) {
            return Ok(None);
        }
        self.observe_snapshot(snapshot)?;
        self.dirty = true;
        self.store_state(collection, &snapshot.record_id, old, state)
            .map(|(version, _)| Some(version))
    }

    /// Follow the clock of a snapshot's latest write, like a change's.
    fn observe_snapshot(&mut self, snapshot: &waymark_sync::Snapshot) -> Result<()> {
        let Some(last) = snapshot.state.last_write() else {
            return Ok(());
        };
        let probe = Change {
            collection: snapshot.collection.clone(),
            record_id: snapshot.record_id.clone(),
            dot: last.dot,
            context: waymark_sync::VersionVector::new(),
            fields: Fields::new(),
            hlc: last.hlc,
            author: last.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        self.observe(&probe)
    }

    /// Store `state` as record `id`'s registers and rematerialize its row.
    fn store_state(
        &mut self,
        collection: &'static Collection,
        id: &str,
        old: Loaded,
        state: RecordState,
    ) -> Result<(i64, i64)> {
        if std::ptr::eq(collection, &super::WORK_ITEMS) {
            self.work_items_written += 1;
        }
        let encoded = super::codec::encode(&self.tx, &mut self.interned, collection, &state)?;
        self.last_conflicted = collection.raises_conflicts()
            && state
                .conflicts()
                .any(|(f, _)| !super::collections::QUIET_FIELDS.contains(&f));
        let (version, key) = collection.materialize(
            &self.tx,
            id,
            &old,
            &state,
            encoded,
            &mut self.orphans,
            self.republishing,
        )?;
        self.note_changed(collection.code, key)?;
        Ok((version, key))
    }

    /// Note the hub seq of a pulled change (see `claims.rs`); a claim whose
    /// holder it decides moves to the head of the change feed.
    pub(super) fn note_hub_seq(&mut self, seq: u64, change: &Change) -> Result<()> {
        if let Some(key) = super::claims::note_seq(&self.tx, seq, change)? {
            self.dirty = true;
            self.note_changed(super::CLAIMS.code, key)?;
        }
        Ok(())
    }

    /// Move record `key` of collection `code` to the head of the change
    /// feed: its one row there takes the next sequence number.
    fn note_changed(&mut self, code: i64, key: i64) -> Result<()> {
        self.feed_seq += 1;
        super::feed::note(&self.tx, code, key, self.feed_seq)
    }

    /// Whether the record of the last change written or applied holds a
    /// value conflict (concurrent, different values in one field).
    pub(crate) fn last_conflicted(&self) -> bool {
        self.last_conflicted
    }

    /// The stored registers of one record (empty for a record never written).
    pub fn state(&self, collection: &'static Collection, id: &str) -> Result<RecordState> {
        Ok(collection.load(&self.tx, id)?.state)
    }

    /// Commit; returns whether local changes were written, and whether
    /// the change feed moved.
    pub(super) fn commit(self) -> Result<(bool, bool)> {
        let wrote_local = self.wrote_local;
        let fed = self.feed_seq != self.feed_begin;
        if self.dirty {
            self.tx
                .prepare_cached("UPDATE replica SET counter = ?1, hlc = ?2, feed_seq = ?3 WHERE singleton = 1")?
                .execute(rusqlite::params![self.counter as i64, self.hlc.0 as i64, self.feed_seq])?;
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
        Ok((wrote_local, fed))
    }
}

/// The opaque registers of a record of a collection this build does not
/// know (empty for a record never seen).
pub(super) fn load_opaque(conn: &rusqlite::Connection, collection: &str, id: &str) -> Result<RecordState> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT state FROM opaque_records WHERE collection = ?1 AND record_id = ?2")?
        .query_row([collection, id], |r| r.get(0))
        .optional()?;
    match stored {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("opaque record {collection}/{id}: {e}")))
        }
        None => Ok(RecordState::default()),
    }
}

/// The stored registers of one record (empty for a record never written).
pub(crate) fn load_state(conn: &rusqlite::Connection, collection: &Collection, id: &str) -> Result<RecordState> {
    Ok(collection.load(conn, id)?.state)
}

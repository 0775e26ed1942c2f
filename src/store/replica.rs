//! The SQLite store as a replica of the hub protocol
//! ([`waymark_sync::Replica`]): the outbox, acknowledgements, the pull cursor,
//! and applying pulled pages through the one write path.
//!
//! Each method is one local transaction; none is held across network IO
//! (the sync round calls the hub between them).

use rusqlite::OptionalExtension;
use waymark_sync::{
    Change, Dot, Hlc, PageApplied, RecordState, RecordStates, Refusal, Replica, ReplicaError, ReplicaId, Snapshot,
};

use super::Store;
use super::collections::Collection;
use crate::error::Error;

/// Local-state key of the pull cursor (the last hub seq applied here).
pub(crate) const CURSOR_KEY: &str = "sync.cursor";

/// The author recorded for work the sync itself does (not a user's write).
const SYNC_AUTHOR: &str = "sync";

fn replica_error(e: Error) -> ReplicaError {
    let busy = matches!(&e, Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    if busy {
        ReplicaError::retryable(e.to_string())
    } else {
        ReplicaError::permanent(e.to_string())
    }
}

/// Where the store keeps the dot of the change at its cursor (`replica:counter`).
const CURSOR_DOT_KEY: &str = "sync.cursor_dot";

/// Keep `dot` as the change at the cursor (none: forget it).
fn set_cursor_dot(conn: &rusqlite::Connection, dot: Option<Dot>) -> Result<(), Error> {
    match dot {
        Some(d) => conn.execute(
            "INSERT INTO local_state (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [CURSOR_DOT_KEY, &d.to_string()],
        )?,
        None => conn.execute("DELETE FROM local_state WHERE key = ?1", [CURSOR_DOT_KEY])?,
    };
    Ok(())
}

fn read_cursor(conn: &rusqlite::Connection) -> Result<u64, Error> {
    local_number(conn, CURSOR_KEY)
}

/// A number kept in `local_state` (0 when absent).
fn local_number<N: std::str::FromStr + Default>(conn: &rusqlite::Connection, key: &str) -> Result<N, Error> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM local_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or_default())
}

/// Local-state key naming the hub and space this store syncs with.
const BOUND_TO: &str = "sync.cursor_for";

/// Local-state key naming the hub and space that last answered this store.
const SYNCED_WITH: &str = "sync.synced_with";

/// Local-state key present while this store has not published its state to
/// a hub: set when the store is created, removed in the transaction that
/// publishes its whole state (`Store::republish`, which its first hub's
/// first answer runs). While it is present, local changes get dots and
/// version vectors but no outbox entries, so a store that never syncs does
/// not keep every change it ever made. Stores created before it existed do
/// not have it: their outbox holds every change, and they go on as before.
const UNPUBLISHED: &str = "sync.unpublished";

/// Mark a store created just now as not yet published (see [`UNPUBLISHED`]).
pub(super) fn mark_unpublished(conn: &rusqlite::Connection) -> Result<(), Error> {
    conn.execute(
        "INSERT OR IGNORE INTO local_state (key, value) VALUES (?1, 'true')",
        [UNPUBLISHED],
    )?;
    Ok(())
}

/// Whether this store has not published its state to a hub yet (read inside
/// each write transaction: another process may publish it).
pub(super) fn unpublished(conn: &rusqlite::Connection) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM local_state WHERE key = ?1)")?
        .query_row([UNPUBLISHED], |r| r.get(0))?)
}

pub(super) fn set_published(conn: &rusqlite::Connection) -> Result<(), Error> {
    conn.execute("DELETE FROM local_state WHERE key = ?1", [UNPUBLISHED])?;
    Ok(())
}

fn local_text(conn: &rusqlite::Connection, key: &str) -> Result<Option<String>, Error> {
    Ok(conn
        .prepare_cached("SELECT value FROM local_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// How many changes wait for the hub: the outbox's, and for a store bound
/// to a hub that has not published its state yet, one per record (what the
/// publication will send at the least). A store with no hub waits for none.
pub(crate) fn waiting_changes(conn: &rusqlite::Connection) -> Result<i64, Error> {
    let outbox: i64 = conn
        .prepare_cached("SELECT count(*) FROM outbox")?
        .query_row([], |r| r.get(0))?;
    if !unpublished(conn)? || local_text(conn, BOUND_TO)?.is_none() {
        return Ok(outbox);
    }
    let opaque: i64 = conn
        .prepare_cached("SELECT count(*) FROM opaque_records")?
        .query_row([], |r| r.get(0))?;
    Ok(outbox + opaque + super::record_count(conn)?)
}

/// What the hub this store is bound to answering means for it.
#[derive(Debug, PartialEq)]
enum OnAnswer {
    /// Nothing (no hub bound, or it is the one that last answered).
    Nothing,
    /// Remember it answered: this store's outbox holds all it has to send.
    Remember(String),
    /// Publish the whole state there, then remember it: the store last
    /// synced with another hub or space, or never published its state.
    Publish(String),
}

fn on_answer(conn: &rusqlite::Connection) -> Result<OnAnswer, Error> {
    let Some(bound) = local_text(conn, BOUND_TO)? else {
        return Ok(OnAnswer::Nothing);
    };
    let synced = local_text(conn, SYNCED_WITH)?;
    Ok(if unpublished(conn)? || synced.as_ref().is_some_and(|s| *s != bound) {
        OnAnswer::Publish(bound)
    } else if synced.is_none() {
        OnAnswer::Remember(bound)
    } else {
        OnAnswer::Nothing
    })
}

impl Store {
    /// Bind this store to the hub and space named by `identity`
    /// (`hub#space`). The pull cursor belongs to one (hub, space): when
    /// either changes, the log is pulled again from the start. Returns
    /// whether the binding changed.
    pub fn bind_hub(&self, identity: &str) -> crate::Result<bool> {
        let before = self.local_get(BOUND_TO)?;
        if before.as_deref() == Some(identity) {
            return Ok(false);
        }
        // A store bound before `SYNCED_WITH` existed synced with what it was
        // bound to.
        if let Some(before) = &before
            && self.local_get(SYNCED_WITH)?.is_none()
        {
            self.local_set(SYNCED_WITH, before)?;
        }
        self.reset_cursor()?;
        self.local_set(BOUND_TO, identity)?;
        Ok(true)
    }

    /// Rename the binding to `identity` when the one recorded (and the
    /// hub it last synced with, when the same) names the same hub and
    /// space in an earlier spelling (`same`): no cursor reset, nothing
    /// published again.
    pub(crate) fn adopt_hub_identity(&self, identity: &str, same: impl Fn(&str) -> bool) -> crate::Result<()> {
        let Some(bound) = self.local_get(BOUND_TO)? else {
            return Ok(());
        };
        if bound == identity || !same(&bound) {
            return Ok(());
        }
        if self.local_get(SYNCED_WITH)?.as_deref() == Some(bound.as_str()) {
            self.local_set(SYNCED_WITH, identity)?;
        }
        self.local_set(BOUND_TO, identity)
    }

    /// Called once the hub this store is bound to has answered, before a
    /// round. A store that last synced with another hub or space holds
    /// changes the new one has never seen, under counters it cannot accept
    /// (it expects a replica's changes from counter 1); a store that never
    /// published its state has written its changes to no outbox. Either
    /// takes a new replica id and publishes its whole state there
    /// ([`Store::republish`]), and from then on writes its changes to the
    /// outbox. A hub that was only tried (unreachable, a typo) changes
    /// nothing. Returns how many records were published.
    ///
    /// Decided and done in one write transaction, so several processes
    /// serving one store publish it once, and no write of another process
    /// falls between the publication and the first outbox entry.
    pub fn hub_answered(&self) -> crate::Result<usize> {
        if self.read(on_answer)? == OnAnswer::Nothing {
            return Ok(0);
        }
        let records = self.write(SYNC_AUTHOR, |tx| {
            let (bound, records) = match on_answer(tx.conn())? {
                OnAnswer::Nothing => return Ok(0),
                OnAnswer::Remember(bound) => (bound, 0),
                OnAnswer::Publish(bound) => (bound, publish_state(tx)?),
            };
            tx.conn().execute(
                "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [SYNCED_WITH, &bound],
            )?;
            Ok(records)
        })?;
        if records > 0 {
            tracing::info!(
                records,
                "this store publishes its state to the hub it syncs with now, under a new replica id"
            );
        }
        Ok(records)
    }

    /// The hub refused this store's change `at` of `replica` because it
    /// holds another change under that dot: this store and another share
    /// the id (a machine restored from a snapshot). Move this store's
    /// changes from there on to a new replica id; returns how many moved.
    pub(crate) fn fork_away(&self, replica: ReplicaId, at: u64) -> crate::Result<usize> {
        self.write(SYNC_AUTHOR, move |tx| tx.fork_away(replica, at))
    }

    /// Take a new replica id and write every record's state again as new
    /// local changes, for a hub that lacks this store's history (another
    /// hub or space, a hub restored from an older backup, a store's first
    /// hub). Nothing is lost: each field's value is written again, each
    /// record's version vector is the context (so the new changes supersede
    /// exactly what this store had seen), and each value that stood in a
    /// conflict is written under a helper replica, concurrent with the
    /// others, so the conflict stays open everywhere; so does an edit that
    /// raced a delete. Records keep their times and authors. Returns how
    /// many records were written.
    pub(crate) fn republish(&self) -> crate::Result<usize> {
        self.write(SYNC_AUTHOR, publish_state)
    }

    /// How the hub lists this store (`waymark hub replicas`): the project
    /// directory's name (the one holding `.waymark/`) and the machine's
    /// host name, each cut to 100 characters.
    pub(crate) fn hub_label(&self) -> (String, String) {
        let dir = self.path().parent();
        let project = match dir {
            Some(d) if d.file_name().is_some_and(|n| n == ".waymark") => d.parent(),
            other => other,
        };
        let name = project
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let cut = |s: String| s.chars().take(100).collect::<String>();
        (cut(name), cut(host))
    }

    /// Forget the pull cursor: the next round pulls the hub's whole log
    /// again (changes already applied are skipped). Used when the hub or
    /// the space changes.
    pub(crate) fn reset_cursor(&self) -> crate::Result<()> {
        self.on_writer(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO local_state (key, value) VALUES (?1, '0')
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [CURSOR_KEY],
            )?;
            set_cursor_dot(&tx, None)?;
            // Seqs of another log order nothing in the next one.
            super::claims::forget_seqs(&tx)?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// [`Store::republish`] inside a write transaction. The store takes a new
/// replica id (dropping its outbox: everything in it is published again)
/// before its first record, and writes to the outbox from here on.
fn publish_state(tx: &mut super::WriteTx<'_>) -> Result<usize, Error> {
    tx.start_publishing()?;
    let mut rehomed = false;
    let mut rehome = |tx: &mut super::WriteTx<'_>| -> Result<(), Error> {
        if !rehomed {
            rehomed = true;
            tx.rehome()?;
        }
        Ok(())
    };
    let mut helpers: Vec<(ReplicaId, u64)> = Vec::new();
    let mut helper_dot = |rank: usize| {
        if helpers.len() <= rank {
            helpers.resize_with(rank + 1, || (ReplicaId::mint(), 0));
        }
        helpers[rank].1 += 1;
        Dot {
            replica: helpers[rank].0,
            counter: helpers[rank].1,
        }
    };
    let mut written = 0;
    for collection in Collection::all() {
        for (id, state) in collection.all_states(tx.conn())? {
            let Some(last) = state.last_write() else { continue };
            rehome(tx)?;
            let races = state.delete_conflict();
            let mut fields = super::write::Fields::new();
            let mut others = Vec::new();
            for (name, register) in &state.fields {
                let Some(winner) = register.winner() else { continue };
                if races && name == waymark_sync::merge::DELETE_FIELD {
                    others.push((name.clone(), winner.clone()));
                } else {
                    fields.insert(name.clone(), winner.value.clone());
                }
                if register.is_conflict() {
                    let losers = &register.siblings()[..register.siblings().len() - 1];
                    others.extend(losers.iter().map(|s| (name.clone(), s.clone())));
                }
            }
            if !fields.is_empty() {
                tx.set_author(last.author.clone());
                tx.set_time(Some(crate::time::Timestamp::from_millis(last.hlc.millis())));
                tx.write(collection, &id, fields)?;
            }
            for (rank, (name, sibling)) in others.iter().enumerate() {
                let dot = helper_dot(rank);
                tx.write_sibling(collection, &id, dot, state.vv.clone(), sibling, name)?;
            }
            written += 1;
        }
    }
    tx.set_time(None);
    // Records of collections this build does not know, the same way.
    for (collection, id, state) in opaque_states(tx.conn())? {
        let Some(last) = state.last_write().cloned() else {
            continue;
        };
        rehome(tx)?;
        let mut changes = Vec::new();
        let mut fields = super::write::Fields::new();
        let mut others = Vec::new();
        for (name, register) in &state.fields {
            let Some(winner) = register.winner() else { continue };
            fields.insert(name.clone(), winner.value.clone());
            let losers = &register.siblings()[..register.siblings().len() - 1];
            others.extend(losers.iter().map(|s| (name.clone(), s.clone())));
        }
        let change = |dot, fields, hlc, author| Change {
            collection: collection.clone(),
            record_id: id.clone(),
            dot,
            context: state.vv.clone(),
            fields,
            hlc,
            author,
            schema_version: waymark_sync::SCHEMA_VERSION,
        };
        if !fields.is_empty() {
            let dot = tx.next_dot();
            changes.push(change(dot, fields, last.hlc, last.author.clone()));
        }
        for (rank, (name, sibling)) in others.into_iter().enumerate() {
            let fields = super::write::Fields::from([(name, sibling.value)]);
            changes.push(change(helper_dot(rank), fields, sibling.hlc, sibling.author));
        }
        for c in &changes {
            tx.record_opaque(c)?;
        }
        written += 1;
    }
    Ok(written)
}

impl Replica for Store {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Store::replica_id(self).map_err(replica_error)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        // Entries are immutable: a plain read, and every read of an entry
        // gives the change exactly as written.
        self.read(move |conn| {
            let rows = {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, replica, counter, collection, record, hlc, author, schema, context, fields
                     FROM outbox ORDER BY seq LIMIT ?1",
                )?;
                stmt.query_map([limit as i64], Entry::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            rows.iter().map(|e| e.change(conn)).collect::<Result<Vec<_>, Error>>()
        })
        .map_err(replica_error)
    }

    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        let dots = dots.to_vec();
        self.on_writer(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM outbox WHERE counter = ?2 AND replica = (SELECT idx FROM replicas WHERE name = ?1)",
                )?;
                for d in &dots {
                    stmt.execute(rusqlite::params![d.replica.to_string(), d.counter as i64])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .map_err(replica_error)
    }

    fn cursor(&self) -> Result<u64, ReplicaError> {
        self.read(read_cursor).map_err(replica_error)
    }

    fn cursor_dot(&self) -> Result<Option<Dot>, ReplicaError> {
        self.read(|conn| {
            let text: Option<String> = conn
                .prepare_cached("SELECT value FROM local_state WHERE key = ?1")?
                .query_row([CURSOR_DOT_KEY], |r| r.get(0))
                .optional()?;
            Ok(text.and_then(|t| t.parse().ok()))
        })
        .map_err(replica_error)
    }

    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        let changes: Vec<(u64, Change)> = changes.to_vec();
        self.write(SYNC_AUTHOR, move |tx| {
            let mut report = PageApplied::default();
            for (seq, change) in &changes {
                let applied = tx.apply_remote(change)?;
                // A claim's holder is decided by the hub's order (its own
                // changes come back here too).
                tx.note_hub_seq(*seq, change)?;
                match applied {
                    None => report.already_seen += 1,
                    Some(_) => {
                        report.applied += 1;
                        let conflicted = tx.last_conflicted();
                        report.conflicts += usize::from(conflicted);
                    }
                }
            }
            let current = read_cursor(tx.conn())?;
            tx.conn().execute(
                "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [CURSOR_KEY, &current.max(new_cursor).to_string()],
            )?;
            if new_cursor > current {
                let dot = changes.iter().find(|(seq, _)| *seq == new_cursor).map(|(_, c)| c.dot);
                set_cursor_dot(tx.conn(), dot)?;
            }
            Ok(report)
        })
        .map_err(replica_error)
    }

    fn apply_snapshots(&self, snapshots: &[Snapshot]) -> Result<PageApplied, ReplicaError> {
        let snapshots = snapshots.to_vec();
        self.write(SYNC_AUTHOR, move |tx| {
            let mut report = PageApplied::default();
            for snapshot in &snapshots {
                match tx.apply_snapshot(snapshot)? {
                    None => report.already_seen += 1,
                    Some(_) => {
                        report.applied += 1;
                        report.conflicts += usize::from(tx.last_conflicted());
                    }
                }
            }
            Ok(report)
        })
        .map_err(replica_error)
    }

    fn label(&self) -> (String, String) {
        self.hub_label()
    }

    fn recover(&self, refusal: &Refusal) -> Result<bool, ReplicaError> {
        let done = match refusal {
            Refusal::Forked { replica, counter } => {
                let moved = self.fork_away(*replica, *counter);
                if let Ok(n) = moved {
                    tracing::warn!(
                        moved = n,
                        "another store wrote under this store's replica id (a machine restored from a snapshot?); this store's changes since moved to a new id"
                    );
                }
                moved.map(|n| n > 0)
            }
            // A hub that lost acknowledged changes was restored from an
            // older backup: its log was cut back too, and the changes pushed
            // since may sit at seqs this store's cursor has passed. Pull it
            // again from the start (what this store has is skipped).
            Refusal::HubLost => self.republish().and_then(|records| {
                tracing::warn!(
                    records,
                    "the hub lost changes of this store; it pulls the hub's log again and publishes its state"
                );
                self.reset_cursor().map(|_| true)
            }),
            Refusal::LogReset => self.republish().and_then(|records| {
                tracing::warn!(
                    records,
                    "the hub's log was reset; this store pulls it again and publishes its state"
                );
                self.reset_cursor().map(|_| true)
            }),
        };
        done.map_err(replica_error)
    }

    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        self.read(|tx| {
            let mut states = RecordStates::new();
            for collection in Collection::all() {
                for (id, state) in collection.all_states(tx)? {
                    states.insert((collection.name.to_owned(), id), state);
                }
            }
            for (collection, id, state) in opaque_states(tx)? {
                states.insert((collection, id), state);
            }
            Ok(states)
        })
        .map_err(replica_error)
    }
}

/// An outbox entry as stored: the change, with its replica and author
/// interned and its fields packed.
struct Entry {
    seq: i64,
    replica: i64,
    counter: i64,
    collection: i64,
    record: i64,
    hlc: i64,
    author: i64,
    schema: i64,
    context: Option<String>,
    fields: Option<Vec<u8>>,
}

impl Entry {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
        Ok(Entry {
            seq: r.get(0)?,
            replica: r.get(1)?,
            counter: r.get(2)?,
            collection: r.get(3)?,
            record: r.get(4)?,
            hlc: r.get(5)?,
            author: r.get(6)?,
            schema: r.get(7)?,
            context: r.get(8)?,
            fields: r.get(9)?,
        })
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::Corrupt(format!("outbox entry {}: {what}", self.seq))
    }

    /// The change as it was written.
    fn change(&self, conn: &rusqlite::Connection) -> Result<Change, Error> {
        let (replica, author) = super::codec::write_names(conn, self.replica, self.author)?;
        let (collection, record_id): (String, String) = if self.collection == 0 {
            // A record of a collection this build does not know.
            conn.prepare_cached("SELECT collection, record_id FROM opaque_records WHERE key = ?1")?
                .query_row([self.record], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| self.corrupt("its record is missing"))?
        } else {
            let collection = Collection::by_code(self.collection).ok_or_else(|| self.corrupt("unknown collection"))?;
            let id = conn
                .prepare_cached(&format!("SELECT id FROM {} WHERE key = ?1", collection.name))?
                .query_row([self.record], |r| super::id::get_id(r, 0))
                .optional()?
                .ok_or_else(|| self.corrupt("its record is missing"))?;
            (collection.name.to_owned(), id)
        };
        let fields = self
            .fields
            .as_deref()
            .and_then(super::codec::unpack_fields)
            .ok_or_else(|| self.corrupt("its fields are missing or malformed"))?;
        Ok(Change {
            collection,
            record_id,
            dot: Dot {
                replica,
                counter: self.counter as u64,
            },
            context: super::codec::decode_context(conn, self.context.as_deref())?,
            fields,
            hlc: Hlc(self.hlc as u64),
            author,
            schema_version: self.schema as u32,
        })
    }
}

/// Every record of a collection this build does not know, with its
/// registers.
fn opaque_states(conn: &rusqlite::Connection) -> Result<Vec<(String, String, RecordState)>, Error> {
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT collection, record_id, state FROM opaque_records ORDER BY collection, record_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(collection, id, text)| {
            let state = serde_json::from_str(&text)
                .map_err(|e| Error::Corrupt(format!("opaque record {collection}/{id}: {e}")))?;
            Ok((collection, id, state))
        })
        .collect()
}

/// Give every outbox entry of an older schema, which named its record and
/// kept only the values its record no longer showed, its fields as written
/// (rebuilt once, the way that schema rebuilt them at every push).
pub(super) fn fill_legacy_outbox(tx: &rusqlite::Transaction<'_>) -> Result<usize, Error> {
    type Legacy = (i64, i64, i64, i64, i64, i64, Option<String>);
    let legacy: Vec<Legacy> = tx
        .prepare(
            "SELECT seq, replica, author, counter, collection, record, overwritten FROM outbox WHERE fields IS NULL",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, replica, author, counter, code, key, overwritten) in &legacy {
        let corrupt = |what: &str| Error::Corrupt(format!("outbox entry {seq}: {what}"));
        let collection = Collection::by_code(*code).ok_or_else(|| corrupt("unknown collection"))?;
        let (replica, _) = super::codec::write_names(tx, *replica, *author)?;
        let dot = Dot {
            replica,
            counter: *counter as u64,
        };
        let (_, state) = collection
            .load_by_key(tx, *key)?
            .ok_or_else(|| corrupt("its record is missing"))?;
        let mut fields = std::collections::BTreeMap::new();
        for (name, register) in &state.fields {
            if let Some(s) = register.siblings().iter().find(|s| s.dot == dot) {
                fields.insert(name.clone(), s.value.clone());
            }
        }
        if let Some(text) = overwritten {
            let kept: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).map_err(|_| corrupt("malformed overwritten values"))?;
            fields.extend(kept);
        }
        tx.execute(
            "UPDATE outbox SET fields = ?2, overwritten = NULL WHERE seq = ?1",
            rusqlite::params![seq, super::codec::pack_fields(&fields)?],
        )?;
    }
    Ok(legacy.len())
}

//! The SQLite store as a replica of the hub protocol
//! ([`waymark_sync::Replica`]): the outbox, acknowledgements, the pull cursor,
//! and applying pulled pages through the one write path.
//!
//! Each method is one local transaction; none is held across network IO
//! (the sync round calls the hub between them).

use rusqlite::OptionalExtension;
use waymark_sync::{Change, Dot, Hlc, PageApplied, RecordStates, Replica, ReplicaError, ReplicaId};

use super::Store;
use super::collections::Collection;
use crate::error::Error;

/// Local-state key of the pull cursor (the last hub seq applied here).
pub const CURSOR_KEY: &str = "sync.cursor";

/// Local-state key of the last outbox entry (seq) handed to a push.
pub const HANDED_OUT_KEY: &str = "sync.handed_out";

/// The last outbox entry (seq) handed to a push; 0 when none ever was.
pub(super) fn handed_out(conn: &rusqlite::Connection) -> Result<i64, Error> {
    local_number(conn, HANDED_OUT_KEY)
}

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

impl Store {
    /// Bind this store to the hub and space named by `identity`
    /// (`hub#space`). The pull cursor belongs to one (hub, space): when
    /// either changes, the log is pulled again from the start.
    pub fn bind_hub(&self, identity: &str) -> crate::Result<()> {
        if self.local_get(BOUND_TO)?.as_deref() != Some(identity) {
            self.reset_cursor()?;
            self.local_set(BOUND_TO, identity)?;
        }
        Ok(())
    }

    /// Forget the pull cursor: the next round pulls the hub's whole log
    /// again (changes already applied are skipped). Used when the hub or
    /// the space changes.
    pub fn reset_cursor(&self) -> crate::Result<()> {
        self.local_set(CURSOR_KEY, "0")
    }
}

impl Replica for Store {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Store::replica_id(self).map_err(replica_error)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        // On the writer, in one transaction with the mark of what was handed
        // out: a write that replaces a value of a change handed out keeps the
        // value (see `WriteTx::keep_overwritten`), so a resend is identical.
        self.on_writer(move |conn| {
            let tx = conn.transaction()?;
            let rows = {
                let mut stmt = tx.prepare_cached(
                    "SELECT seq, replica, counter, collection, record, hlc, author, schema, context, overwritten
                     FROM outbox ORDER BY seq LIMIT ?1",
                )?;
                stmt.query_map([limit as i64], |r| {
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
                        overwritten: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let changes = rows
                .iter()
                .map(|e| rebuild(&tx, e))
                .collect::<Result<Vec<_>, Error>>()?;
            if let Some(last) = rows.last()
                && last.seq > handed_out(&tx)?
            {
                tx.execute(
                    "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [HANDED_OUT_KEY, &last.seq.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(changes)
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

    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        let changes: Vec<Change> = changes.iter().map(|(_, c)| c.clone()).collect();
        self.write(SYNC_AUTHOR, move |tx| {
            let mut report = PageApplied::default();
            for change in &changes {
                match tx.apply_remote(change)? {
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
            Ok(report)
        })
        .map_err(replica_error)
    }

    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        self.read(|tx| {
            let mut states = RecordStates::new();
            for collection in Collection::all() {
                for (id, state) in collection.all_states(tx)? {
                    states.insert((collection.name.to_owned(), id), state);
                }
            }
            Ok(states)
        })
        .map_err(replica_error)
    }
}

/// An outbox entry as stored: the change it names, without its fields.
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
    overwritten: Option<String>,
}

/// The change an outbox entry names, as it was written: the fields whose
/// registers still hold its dot, with the values later writes replaced
/// (kept in the entry when they replaced them).
fn rebuild(conn: &rusqlite::Connection, e: &Entry) -> Result<Change, Error> {
    let corrupt = |what: &str| Error::Corrupt(format!("outbox entry {}: {what}", e.seq));
    let collection = Collection::by_code(e.collection).ok_or_else(|| corrupt("unknown collection"))?;
    let (replica, author) = super::codec::write_names(conn, e.replica, e.author)?;
    let dot = Dot {
        replica,
        counter: e.counter as u64,
    };
    let (record_id, state) = collection
        .load_by_key(conn, e.record)?
        .ok_or_else(|| corrupt("its record is missing"))?;
    let mut fields = std::collections::BTreeMap::new();
    for (name, register) in &state.fields {
        if let Some(s) = register.siblings().iter().find(|s| s.dot == dot) {
            fields.insert(name.clone(), s.value.clone());
        }
    }
    if let Some(text) = &e.overwritten {
        let kept: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| corrupt("malformed overwritten values"))?;
        fields.extend(kept);
    }
    Ok(Change {
        collection: collection.name.to_owned(),
        record_id,
        dot,
        context: super::codec::decode_context(conn, e.context.as_deref())?,
        fields,
        hlc: Hlc(e.hlc as u64),
        author,
        schema_version: e.schema as u32,
    })
}

//! The SQLite store as a replica of the hub protocol
//! ([`waymark_sync::Replica`]): the outbox, acknowledgements, the pull cursor,
//! and applying pulled pages through the one write path.
//!
//! Each method is one local transaction; none is held across network IO
//! (the sync round calls the hub between them).

use rusqlite::OptionalExtension;
use waymark_sync::{Change, Dot, PageApplied, RecordState, RecordStates, Replica, ReplicaError, ReplicaId};

use super::Store;
use crate::error::Error;

/// Local-state key of the pull cursor (the last hub seq applied here).
pub const CURSOR_KEY: &str = "sync.cursor";

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
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM local_state WHERE key = ?1")?
        .query_row([CURSOR_KEY], |r| r.get(0))
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

impl Store {
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
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT replica_id, counter, change FROM outbox ORDER BY seq LIMIT ?1")?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter()
                .map(|(replica, counter, text)| super::codec::decode_change(tx, replica, *counter, text))
                .collect()
        })
        .map_err(replica_error)
    }

    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        let dots = dots.to_vec();
        self.on_writer(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE replica_id = ?1 AND counter = ?2")?;
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
        self.read(|tx| read_cursor(tx)).map_err(replica_error)
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
            let mut stmt = tx.prepare("SELECT collection, id, state FROM records ORDER BY collection, id")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(c, id, state)| {
                    let state: RecordState = super::codec::decode(tx, &state)
                        .map_err(|e| Error::Corrupt(format!("record {c}/{id}: {e}")))?;
                    Ok(((c, id), state))
                })
                .collect()
        })
        .map_err(replica_error)
    }
}

//! The local SQLite store: Waymark's primary store.
//!
//! Owns the connection setup (pragmas, migrations, replica identity), the one
//! write path ([`write::WriteTx`]) and read access. It knows SQL and the
//! replication state; it knows nothing of MCP, the CLI or the network.
//!
//! Writes run on one owner thread per process, fed through a channel, each in
//! a `BEGIN IMMEDIATE` transaction; other processes on the same file wait on
//! SQLite's busy handler. Reads use a small pool of connections and see every
//! committed write at once (WAL).

mod blockers;
pub(crate) mod claims;
mod codec;
mod collections;
mod derived;
pub mod feed;
pub mod id;
pub(crate) mod query;
pub mod replica;
mod search;
pub mod tree;
mod verify;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub use rusqlite::Connection;
use rusqlite::{OpenFlags, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{M, Migrations};
use waymark_sync::{Hlc, ReplicaId};

pub use collections::Collection;
pub(crate) use collections::{
    CLAIMS, CONFIGURATION, DEPENDENCIES, DEPLOYMENT_LINKS, DEPLOYMENTS, ENHANCEMENTS, VENDORS, WORK_ITEMS,
};
pub use write::WriteTx;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// The store file's name inside the data directory.
pub const DB_FILE: &str = "waymark.db";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema's migrations, in order: schema N is the first N applied.
const MIGRATIONS: [&str; 7] = [
    include_str!("../../sql/sqlite/0001_initial.sql"),
    include_str!("../../sql/sqlite/0002_compact.sql"),
    include_str!("../../sql/sqlite/0003_lean_writes.sql"),
    include_str!("../../sql/sqlite/0004_binary_ids.sql"),
    include_str!("../../sql/sqlite/0005_immutable_outbox.sql"),
    include_str!("../../sql/sqlite/0006_change_feed.sql"),
    include_str!("../../sql/sqlite/0007_claims.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long the writer thread watches for the next job after one ends,
/// before it sleeps; and how long a caller watches for the writer's answer
/// before it sleeps. A thread that sleeps must be woken, and on a virtual
/// machine whose idle CPUs halt a wake-up costs tens of microseconds on each
/// side: a write's whole budget. Callers that write in a row (an agent's
/// burst of creates) keep both threads awake; an idle store sleeps. The
/// writer's watch covers the gap between two calls of a client over stdio
/// (a round trip, 100-250 µs here): with 30 µs the MCP bench's creates ran
/// at 2,326/s, with 200 µs at 2,985/s, with 500 µs at 3,332/s.
const WRITER_WATCH: Duration = Duration::from_micros(500);
const CALLER_WATCH: Duration = Duration::from_millis(2);

/// Bring the full-text index up to date, on the writer's connection, if
/// any writes wait for it. Returns how many items it indexed.
fn catch_up_search_on(conn: &mut Connection) -> Result<usize> {
    if search::pending(conn)? == 0 {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let indexed = search::catch_up(&tx)?;
    tx.commit()?;
    Ok(indexed)
}

/// The writer thread, about to sleep: bring the full-text index up to date
/// with the writes it left noted. A failure (even a panic) leaves the notes
/// for later.
fn catch_up_when_idle(conn: &mut Connection) {
    if let Err(e) = on_writer_guarded(conn, catch_up_search_on) {
        tracing::warn!("the full-text index could not catch up yet: {e}");
    }
}

/// Run one job on the writer's connection behind a panic barrier: a panic
/// becomes [`Error::WriterPanicked`] for that job's caller, whatever
/// transaction the job left open is rolled back, and the writer thread
/// goes on serving the next job. Without it, one panicking job would end
/// the thread, and every later write of the process would fail.
fn on_writer_guarded<T>(conn: &mut Connection, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
    // Unwind safety: the only state the job shares with later jobs is the
    // connection, and its transaction is rolled back below (a
    // `rusqlite::Transaction` dropped while unwinding rolls back itself;
    // the explicit ROLLBACK covers a job that began one by hand).
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *conn)));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!("could not roll back after a write job panicked: {e}");
            }
            tracing::error!(panic = %message, "a write job panicked; its transaction was rolled back");
            Err(Error::WriterPanicked(message))
        }
    }
}

/// The next message on `rx`: watched for up to `watch`, then (after
/// `on_idle`) waited for. `None` once every sender is gone.
fn recv_soon<T>(rx: &mpsc::Receiver<T>, watch: Duration, on_idle: impl FnOnce()) -> Option<T> {
    let start = std::time::Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(message) => return Some(message),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            if start.elapsed() >= watch {
                on_idle();
                return rx.recv().ok();
            }
            // Let a thread that shares this CPU (perhaps the one this one
            // waits for) run.
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

thread_local! {
    static PATIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Make the calling thread wait for the writer's answers asleep, without
/// watching for them first: for a background thread (the sync worker) whose
/// latency matters less than the CPU its watching would take from the
/// writer and from tool calls on a small machine.
pub(crate) fn wait_patiently() {
    PATIENT.with(|p| p.set(true));
}

/// A handle on one store. Cheap to clone; every clone shares the owner
/// thread and the read pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    on_local_write: Mutex<Option<WriteHook>>,
    /// Wakes the waiters on the change feed after this process's writes.
    feed: feed::Signal,
    /// Milliseconds added to the wall clock for this store's new changes
    /// (tests model laptops whose clocks are wrong).
    clock_skew_ms: std::sync::atomic::AtomicI64,
}

/// Called after a transaction that wrote local changes commits (the sync
/// worker uses it to push soon). Must return at once.
pub(crate) type WriteHook = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Open a connection with the pragmas every connection must have.
fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| Error::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals and sorts in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 8 MiB of page cache per connection (SQLite's default is 2 MiB): the
    // indexes of a large store stay in memory between calls.
    conn.pragma_update(None, "cache_size", -8192)?;
    // Checkpoint every 4,000 pages (16 MiB of WAL), not SQLite's 1,000: each
    // small write dirties the same few index pages, and a longer WAL copies
    // each of them back once instead of four times. The file is cut back to
    // that size after a checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Where this store lives: `path@machine#file`. A copied, moved or
/// restored store file no longer matches: another path, another machine
/// (`/etc/machine-id`, else the host name), or another file at the same
/// path (device, inode and birth time: a restore from a backup, or a copy
/// put back in place, is a new file even on a machine whose id is absent,
/// as on macOS).
fn fingerprint(path: &Path) -> String {
    let place = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    format!("{}@{}#{}", place.display(), machine, file_identity(path))
}

#[cfg(unix)]
fn file_identity(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => {
            let born = m
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("{}:{}:{born}", m.dev(), m.ino())
        }
        Err(_) => String::new(),
    }
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.created())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default()
}

/// Whether a stored fingerprint names the place `here` names. One written
/// before fingerprints named the file (no `#`) is compared by path and
/// machine only, then brought up to date.
fn same_place(stored: &str, here: &str) -> bool {
    match stored.split_once('#') {
        Some(_) => stored == here,
        None => here.split_once('#').is_some_and(|(place, _)| place == stored),
    }
}

impl Store {
    /// Open (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::Open {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        Store::open_file(&data_dir.join(DB_FILE))
    }

    /// Open (creating if needed) the store file at `path`.
    pub(crate) fn open_file(path: &Path) -> Result<Store> {
        let mut conn = connect(path)?;
        let found = migrate(&mut conn, path)?;
        // Outbox entries of schema 4 or older get their fields once, on the
        // open that migrates them (a scan of the outbox at every open would
        // cost a large store tens of milliseconds).
        if found > 0 && found < 5 {
            fill_legacy_outbox(&mut conn)?;
        }
        // A new store writes no outbox until it publishes its state to a
        // hub (see `replica.rs`); one that existed before keeps its outbox.
        if found == 0 {
            replica::mark_unpublished(&conn)?;
        }
        ensure_replica(&mut conn, path)?;

        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("waymark-store-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Some(job) = recv_soon(&rx, WRITER_WATCH, || catch_up_when_idle(&mut conn)) {
                    job(&mut conn);
                }
            })
            .map_err(Error::Io)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: tx,
                readers: Mutex::new(Vec::new()),
                on_local_write: Mutex::new(None),
                feed: feed::Signal::default(),
                clock_skew_ms: std::sync::atomic::AtomicI64::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bring the full-text index up to date with every committed write (of
    /// any process) before a search; see `search.rs`.
    pub fn catch_up_search(&self) -> Result<()> {
        // Most searches find nothing waiting: a read, no trip to the writer.
        if self.read(search::pending)? == 0 {
            return Ok(());
        }
        self.on_writer(catch_up_search_on).map(|_| ())
    }

    /// Run `f` in one write transaction on the owner thread. Every change it
    /// writes is stamped and appended to the outbox; all of it commits or
    /// none of it does.
    pub fn write<T, F>(&self, author: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> Result<T> + Send + 'static,
    {
        let author = author.to_owned();
        let skew = self.clock_skew_ms();
        let (value, (wrote_local, fed)) = self.on_writer(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut wtx = WriteTx::begin(tx, author, skew)?;
            let value = f(&mut wtx)?;
            let committed = wtx.commit()?;
            Ok((value, committed))
        })?;
        if fed {
            self.inner.feed.committed();
        }
        if wrote_local {
            let hook = self
                .inner
                .on_local_write
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(hook) = hook {
                hook();
            }
        }
        Ok(value)
    }

    /// The change feed's head: the sequence number of the latest change
    /// applied to a record here (written or pulled), 0 for none.
    pub(crate) fn feed_head(&self) -> Result<i64> {
        self.read(feed::head)
    }

    /// Wait until a change numbered after `after` is committed (by this
    /// process or another on the same file) or `timeout` passes; returns
    /// the head then (not past `after` when the time ran out, or soon after
    /// `cancelled` is set). Blocks the calling thread.
    pub(crate) fn wait_for_feed(
        &self,
        after: i64,
        timeout: Duration,
        cancelled: &std::sync::atomic::AtomicBool,
    ) -> Result<i64> {
        let deadline = std::time::Instant::now() + timeout;
        self.inner.feed.wait(after, deadline, cancelled, || self.feed_head())
    }

    /// Run this store's wall clock `millis` ahead (or behind, when
    /// negative) of the machine's: a laptop whose clock is wrong, for tests.
    pub fn set_clock_skew(&self, millis: i64) {
        self.inner
            .clock_skew_ms
            .store(millis, std::sync::atomic::Ordering::Relaxed);
    }

    fn clock_skew_ms(&self) -> i64 {
        self.inner.clock_skew_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This store's time in milliseconds (the machine's, with the test skew).
    pub(crate) fn now_ms(&self) -> u64 {
        (Timestamp::now().millis() as i64)
            .saturating_add(self.clock_skew_ms())
            .max(0) as u64
    }

    /// Call `hook` after every committed transaction that wrote local
    /// changes (replacing any hook set before).
    pub fn set_write_hook(&self, hook: Option<WriteHook>) {
        *self.inner.on_local_write.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Run `f` with the owner thread's connection (for maintenance that is
    /// not a change: local state, the outbox).
    pub(crate) fn on_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(on_writer_guarded(conn, f));
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| Error::Corrupt("the store's writer thread has stopped".into()))?;
        let watch = if PATIENT.with(std::cell::Cell::get) {
            Duration::ZERO
        } else {
            CALLER_WATCH
        };
        recv_soon(&answer, watch, || {})
            .ok_or_else(|| Error::Corrupt("the store's writer thread stopped during a write".into()))?
    }

    /// Run `f` in a read transaction on a pooled connection: a consistent
    /// snapshot that includes every write committed before it began.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.inner.path)?,
        };
        // BEGIN and COMMIT as cached statements: parsed on every read, as
        // `Connection::transaction` does, they cost about as much as a
        // small read itself.
        let result = match conn.prepare_cached("BEGIN DEFERRED").and_then(|mut s| s.execute([])) {
            Err(e) => Err(e.into()),
            Ok(_) => {
                let value = f(&conn);
                let ended = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
                match (value, ended) {
                    (Ok(value), Ok(_)) => Ok(value),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.into()),
                }
            }
        };
        // A connection whose transaction did not end is closed (rolling it
        // back), never pooled.
        if conn.is_autocommit() {
            let mut pool = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        result
    }

    /// This replica's id.
    pub fn replica_id(&self) -> Result<ReplicaId> {
        self.read(|tx| read_replica(tx).map(|r| r.0))
    }

    /// A value of this replica's local state (never synced).
    pub fn local_get(&self, key: &str) -> Result<Option<String>> {
        self.read(|tx| {
            Ok(tx
                .query_row("SELECT value FROM local_state WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        })
    }

    /// Set a value of this replica's local state.
    pub(crate) fn local_set(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.on_writer(move |conn| {
            conn.execute(
                "INSERT INTO local_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
            Ok(())
        })
    }

    /// Rebuild the projection (typed rows, tree, blockers, conflicts) from
    /// the registers into a scratch copy and compare it with this store's:
    /// one line per difference, none when they agree.
    pub fn verify(&self) -> Result<Vec<String>> {
        let mut differences = self.read(verify::verify)?;
        differences.extend(self.on_writer(verify::check_search)?);
        Ok(differences)
    }

    /// Changes written here that the hub has not acknowledged.
    pub fn pending_changes(&self) -> Result<i64> {
        self.read(|tx| Ok(tx.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?))
    }
}

/// How many records (of every collection) the store holds.
pub(crate) fn record_count(conn: &Connection) -> Result<i64> {
    let mut total = 0;
    for c in Collection::all() {
        total += conn
            .prepare_cached(&format!("SELECT count(*) FROM {}", c.name))?
            .query_row([], |r| r.get::<_, i64>(0))?;
    }
    Ok(total)
}

fn read_replica(conn: &Connection) -> Result<(ReplicaId, u64, Hlc, String)> {
    let (id, counter, hlc, fp): (String, i64, i64, String) = conn
        .prepare_cached("SELECT replica_id, counter, hlc, fingerprint FROM replica WHERE singleton = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let id = id
        .parse()
        .map_err(|_| Error::Corrupt(format!("replica id {id:?} is not a UUID")))?;
    Ok((id, counter as u64, Hlc(hlc as u64), fp))
}

/// Bring the store to this build's schema; returns the version it had.
fn migrate(conn: &mut Connection, path: &Path) -> Result<i64> {
    let migrations = migrations();
    let supported = schema_version();
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > supported {
        return Err(Error::StoreTooNew {
            path: path.display().to_string(),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(found);
    }
    // Two processes may race to create a new store: the loser's migration
    // fails on the winner's tables, and then finds the store up to date.
    match migrations.to_latest(conn) {
        Ok(()) => Ok(found),
        Err(e) => {
            let now: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now == supported {
                Ok(supported)
            } else {
                Err(Error::Open {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        }
    }
}

/// Outbox entries written by schema 4 or older get their fields, once.
fn fill_legacy_outbox(conn: &mut Connection) -> Result<()> {
    let any: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM outbox WHERE fields IS NULL)", [], |r| {
        r.get(0)
    })?;
    if any {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let filled = replica::fill_legacy_outbox(&tx)?;
        tx.commit()?;
        tracing::info!(
            entries = filled,
            "outbox entries of an older schema now keep their fields"
        );
    }
    Ok(())
}

/// Mint the replica identity of a new store, or a new one for a store that
/// was copied from elsewhere (two stores must never share a replica id).
fn ensure_replica(conn: &mut Connection, path: &Path) -> Result<()> {
    let here = fingerprint(path);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing = tx
        .query_row(
            "SELECT replica_id, fingerprint FROM replica WHERE singleton = 1",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    let now = Timestamp::now().to_string();
    match existing {
        None => {
            tx.execute(
                "INSERT INTO replica (singleton, replica_id, counter, hlc, fingerprint, created_at)
                 VALUES (1, ?1, 0, 0, ?2, ?3)",
                rusqlite::params![ReplicaId::mint().to_string(), here, now],
            )?;
        }
        Some((_, fp)) if fp == here => {}
        Some((_, fp)) if same_place(&fp, &here) => {
            tx.execute("UPDATE replica SET fingerprint = ?1 WHERE singleton = 1", [&here])?;
        }
        Some((old, fp)) => {
            let new = ReplicaId::mint();
            tracing::warn!(
                old_replica = %old, new_replica = %new, was = %fp,
                "this store was copied or moved; it takes a new replica id before writing"
            );
            tx.execute(
                "INSERT OR IGNORE INTO retired_replicas (replica_id, retired_at) VALUES (?1, ?2)",
                [&old, &now],
            )?;
            tx.execute(
                "UPDATE replica SET replica_id = ?1, counter = 0, fingerprint = ?2 WHERE singleton = 1",
                [new.to_string(), here],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{NewVendor, Tracker};
    use waymark_sync::Replica as _;

    fn vendor(name: &str) -> NewVendor {
        NewVendor {
            name: name.into(),
            ..Default::default()
        }
    }

    /// A write job that panics after writing gets an error back, nothing it
    /// wrote is committed (no record, no outbox entry, no dot taken), and the
    /// writer thread keeps serving: a write right after it commits.
    /// A store that never published its state to a hub writes no outbox
    /// (each change would be a copy of what its first publication carries),
    /// across reopening; its first hub's answer publishes every record once
    /// (a second store handle on the file, as a second process, does not
    /// publish again), and from then on every write, of either handle, goes
    /// to the outbox. A store that existed before keeps its outbox.
    #[test]
    fn a_store_writes_no_outbox_until_it_publishes_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::open(dir.path()).unwrap();
        for name in ["a", "b", "c"] {
            tracker.create_vendor("test", vendor(name)).unwrap();
        }
        let store = tracker.store().clone();
        assert_eq!(store.pending_changes().unwrap(), 0);
        drop(tracker);
        let tracker = Tracker::open(dir.path()).unwrap();
        tracker.create_vendor("test", vendor("d")).unwrap();
        assert_eq!(
            tracker.store().pending_changes().unwrap(),
            0,
            "still none after a restart"
        );
        let other = Store::open(dir.path()).unwrap();

        other.bind_hub("hub#space").unwrap();
        store.bind_hub("hub#space").unwrap();
        assert_eq!(
            other.pending_changes().unwrap(),
            0,
            "bound, but the hub has not answered"
        );
        assert_eq!(other.hub_answered().unwrap(), 4, "every record published once");
        assert_eq!(store.hub_answered().unwrap(), 0, "and not again by another handle");
        assert_eq!(store.pending_changes().unwrap(), 4);
        tracker.create_vendor("test", vendor("e")).unwrap();
        assert_eq!(
            store.pending_changes().unwrap(),
            5,
            "a write of the other handle goes to the outbox"
        );
        let mut published: Vec<String> = store
            .outbox(10)
            .unwrap()
            .into_iter()
            .filter_map(|c| c.fields.get("name").and_then(|v| v.as_str()).map(str::to_owned))
            .collect();
        published[..4].sort();
        assert_eq!(published, ["a", "b", "c", "d", "e"]);
        drop((tracker, store, other));
        let tracker = Tracker::open(dir.path()).unwrap();
        tracker.create_vendor("test", vendor("f")).unwrap();
        assert_eq!(tracker.store().pending_changes().unwrap(), 6, "and after a restart");
    }

    #[test]
    fn a_panicking_write_job_is_rolled_back_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::open(dir.path()).unwrap();
        let store = tracker.store().clone();
        // Bound to a hub that answered: its writes go to the outbox.
        store.bind_hub("hub#space").unwrap();
        store.hub_answered().unwrap();
        let counter = || {
            store
                .read(|c| Ok(c.query_row("SELECT counter FROM replica", [], |r| r.get::<_, i64>(0))?))
                .unwrap()
        };
        let before = counter();

        let err = store
            .write("test", |tx| -> Result<()> {
                crate::ops::vendors::create_in(tx, vendor("half-written"))?;
                panic!("a bug in a write job");
            })
            .unwrap_err();
        assert!(
            matches!(&err, Error::WriterPanicked(m) if m == "a bug in a write job"),
            "{err}"
        );
        assert_eq!(err.code(), "internal");
        assert!(!err.is_user_error());

        assert_eq!(
            store.read(record_count).unwrap(),
            0,
            "nothing of the panicking job committed"
        );
        assert_eq!(store.pending_changes().unwrap(), 0, "no outbox entry");
        assert_eq!(counter(), before, "no dot taken");
        assert!(tracker.query_vendor_status("half-written").is_err());

        // The writer still serves, for writes and for maintenance jobs.
        tracker.create_vendor("test", vendor("after the panic")).unwrap();
        assert_eq!(
            tracker.query_vendor_status("after the panic").unwrap().name,
            "after the panic"
        );
        store.local_set("k", "v").unwrap();
        assert_eq!(store.local_get("k").unwrap().as_deref(), Some("v"));

        // A maintenance job that panics inside a transaction it began by
        // hand is rolled back too.
        let err = store
            .on_writer(|conn| -> Result<()> {
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO local_state (key, value) VALUES ('x', 'y');")?;
                panic!("{}", String::from("a formatted panic"));
            })
            .unwrap_err();
        assert!(
            matches!(&err, Error::WriterPanicked(m) if m == "a formatted panic"),
            "{err}"
        );
        assert_eq!(store.local_get("x").unwrap(), None);
        store.local_set("k", "w").unwrap();
        assert_eq!(store.pending_changes().unwrap(), 1);
    }
}

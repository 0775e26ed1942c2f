//! The Postgres hub: [`Hub`] over a Postgres database (the only IO in this
//! crate).
//!
//! Owns the hub schema's migrations (`sql/postgres/*.sql`), the connection
//! handling (a tiny pool of `tokio-postgres` connections, reconnected at the
//! next call after one breaks, TLS with rustls), the hub URL and its
//! redaction ([`HubUrl`]), and the push and pull transactions. It needs a
//! tokio runtime with IO and time enabled (`enable_all`).
//!
//! **Push** is one transaction: upsert-and-lock the space's `spaces` row
//! (which serialises pushes within the space and leaves other spaces alone),
//! read the batch's keys and each replica's highest stored counter, check the
//! batch in Rust exactly like [`crate::memory::MemoryHub`] does (idempotent
//! resend, gap, duplicate replica, retired schema), insert the new changes
//! with seqs `head + 1 ..` and move `head`, commit. Seq order is commit order,
//! so a reader never finds a change below a seq it has already seen.
//! Serialization failures and deadlocks are retried a few times, then
//! reported as [`HubError::Aborted`]; a broken or stalled connection is
//! [`HubError::Unreachable`] (resending is safe: push is idempotent).
//!
//! A push that stored something also announces the space's new head on
//! the space's channel ([`channel`], `pg_notify` before the commit): one
//! notification per push, sent by Postgres when the transaction commits,
//! and only a hint (a listener that missed it pulls at its next poll
//! anyway).
//!
//! **Pull** is one statement (one snapshot): the space's head and the
//! changes with `seq > after` in seq order.
//!
//! **Listen** ([`PostgresHub::listen`]) keeps one connection of its own
//! that `LISTEN`s on a space's channel: an idle session on the server
//! (a backend process, a few MB) per listening replica, and no work for
//! the hub until a push; each push then costs one notification per
//! listener of its space.
//!
//! **Credentials** live only inside [`HubUrl`], whose `Display` and `Debug`
//! print `***` for the password; every error message this module builds is
//! scrubbed of the password as well.
//!
//! **Security** (one role per team): the protocol only ever touches the rows
//! of the space it was called with (every statement filters on `space_id`,
//! and the conformance suite's `spaces_are_isolated` checks it), but a
//! replica that holds database credentials could issue any SQL those
//! credentials allow. A deployment that hosts several teams therefore gives
//! each team its own Postgres role and confines it, in one of two ways
//! (`docs/hub.md` has the SQL):
//! - a database (or schema, via the role's `search_path`) per team, which
//!   the role owns or has DML rights on, and nothing else; or
//! - one shared schema with row-level security on `space_id`: policies
//!   `USING (space_id = current_user)`-style (or a mapping table of role to
//!   spaces) on `spaces` and `changes`, `ALTER TABLE ... FORCE ROW LEVEL
//!   SECURITY`, and the team role granted only `SELECT, INSERT, UPDATE`.
//!
//! Migrations are run by an owner role, never by the teams' roles.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};
use uuid::Uuid;

use crate::change::Change;
use crate::clock::{Dot, ReplicaId};
use crate::protocol::{
    CompactOptions, CompactReport, Frontier, Hub, HubError, PullPage, PushAck, ReplicaInfo, SnapshotPage,
};
use crate::snapshot::RecordKey;

mod history;
mod pool;
mod tls;
mod url;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use pool::Conn;
use tokio_postgres_rustls::MakeRustlsConnect;
pub use url::{HubUrl, TlsMode};

/// The hub schema's migrations, in order: `(version, SQL)`. Each is applied
/// in its own transaction together with its row in `hub_migrations`.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../sql/postgres/0001_hub.sql")),
    (2, include_str!("../../../sql/postgres/0002_history.sql")),
];

/// The hub schema version this code works with (the last migration).
pub const HUB_SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The oldest change schema version this code's hub accepts (the schema's
/// `changes_schema_version_accepted` constraint says the same to every client).
pub const OLDEST_ACCEPTED_SCHEMA: u32 = 1;

/// The most changes one pull page carries, whatever the caller asks.
pub const MAX_PAGE: usize = 5_000;

/// Tuning of a [`PostgresHub`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubOptions {
    /// How long one push or pull (including connecting) may take before the
    /// connection is dropped and the call fails as unreachable.
    pub call_timeout: Duration,
    /// How long connecting may take (the URL's `connect_timeout` wins).
    pub connect_timeout: Duration,
    /// Idle connections kept for the next calls.
    pub max_idle: usize,
    /// How often a push whose transaction hit a serialization failure or a
    /// deadlock is tried again before it fails as aborted.
    pub retries: u32,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_idle: 4,
            retries: 4,
        }
    }
}

/// The Postgres hub. Cheap to share (`&self` everywhere); calls made at the
/// same time use separate connections.
pub struct PostgresHub {
    url: HubUrl,
    config: Config,
    tls: MakeRustlsConnect,
    opts: HubOptions,
    idle: Mutex<Vec<Conn>>,
}

impl fmt::Debug for PostgresHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresHub")
            .field("url", &self.url)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}
struct Stmts {
    lock_space: Statement,
    existing: Statement,
    last_counters: Statement,
    insert: Statement,
    announce: Statement,
    pull: Statement,
    snapshots: Statement,
    report: Statement,
}

const LOCK_SPACE: &str = "INSERT INTO spaces (space_id, head) VALUES ($1, 0) \
     ON CONFLICT (space_id) DO UPDATE SET head = spaces.head RETURNING head";
const EXISTING: &str = "SELECT c.replica_id, c.counter, c.body FROM changes c \
     JOIN unnest($2::uuid[], $3::bigint[]) AS k (replica_id, counter) \
     ON c.replica_id = k.replica_id AND c.counter = k.counter WHERE c.space_id = $1";
const LAST_COUNTERS: &str = "SELECT r.replica_id, (SELECT max(c.counter) FROM changes c \
     WHERE c.space_id = $1 AND c.replica_id = r.replica_id), (SELECT f.counter FROM folded f \
     WHERE f.space_id = $1 AND f.replica_id = r.replica_id) FROM unnest($2::uuid[]) AS r (replica_id)";
const INSERT: &str = "WITH inserted AS (INSERT INTO changes (space_id, seq, replica_id, counter, schema_version, body) \
     SELECT $1, t.seq, t.replica_id, t.counter, t.schema_version, t.body \
     FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::int[], $6::bytea[]) \
     AS t (seq, replica_id, counter, schema_version, body)) \
     UPDATE spaces SET head = $7 WHERE space_id = $1";
/// Runs where the client is connected (it reads no table), which is where
/// listeners are, even on a distributed hub.
const ANNOUNCE: &str = "SELECT pg_notify($1, $2)";
const PULL: &str = "SELECT 0 AS part, head AS seq, floor, NULL::bytea AS body, NULL::uuid AS replica_id, \
     NULL::bigint AS counter FROM spaces WHERE space_id = $1 \
     UNION ALL (SELECT 1, c.seq, 0, c.body, NULL, NULL FROM changes c WHERE c.space_id = $1 AND c.seq > $2 \
     AND $2 >= (SELECT s.floor FROM spaces s WHERE s.space_id = $1) ORDER BY c.seq LIMIT $3) \
     UNION ALL SELECT 2, c.seq, 0, NULL, c.replica_id, c.counter FROM changes c \
     WHERE c.space_id = $1 AND c.seq = $2 \
     ORDER BY part, seq";

/// One hub call, for [`PostgresHub::with_retries`].
#[derive(Clone, Copy)]
enum Op<'a> {
    Push {
        space: &'a str,
        changes: &'a [Change],
    },
    Pull {
        space: &'a str,
        after: i64,
        limit: i64,
    },
    Snapshots {
        space: &'a str,
        after: Option<&'a RecordKey>,
        limit: i64,
    },
    Report {
        space: &'a str,
        frontier: &'a Frontier,
    },
    Replicas {
        space: &'a str,
    },
    Forget {
        space: &'a str,
        replica: ReplicaId,
    },
    Retire {
        space: &'a str,
        retention_ms: i64,
    },
    CompactBatch {
        space: &'a str,
        opts: CompactOptions,
    },
}

enum Done {
    Push(PushAck),
    Pull(PullPage),
    Snapshots(SnapshotPage),
    Replicas(Vec<ReplicaInfo>),
    Count(u64),
    Compacted(CompactReport),
}

/// Why one attempt failed: a final answer, or a transaction to try again.
enum Failure {
    Final(HubError),
    Retry(HubError),
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        Failure::Final(e)
    }
}

fn to_i64(n: u64, what: &str) -> Result<i64, HubError> {
    i64::try_from(n).map_err(|_| HubError::Other(format!("{what} {n} is too large for the hub")))
}

impl PostgresHub {
    /// Parse `url`, connect, and check the hub schema: it must be exactly
    /// [`HUB_SCHEMA_VERSION`] (a newer one is refused; an older one asks for
    /// [`PostgresHub::migrate`]). Errors never contain the password.
    pub async fn connect(url: &str) -> Result<PostgresHub, HubError> {
        Self::connect_with(HubUrl::parse(url)?, HubOptions::default()).await
    }

    /// [`PostgresHub::connect`] with a parsed URL and options.
    pub async fn connect_with(url: HubUrl, opts: HubOptions) -> Result<PostgresHub, HubError> {
        let hub = Self::new(url, opts)?;
        let conn = hub.call(hub.checkout(true)).await?;
        hub.checkin(conn);
        Ok(hub)
    }

    /// A hub that connects at its first call (no IO here beyond reading CA
    /// certificates when TLS is on): for a worker that must start while the
    /// hub is unreachable.
    pub fn new(url: HubUrl, opts: HubOptions) -> Result<PostgresHub, HubError> {
        let tls = tls::tls(&url)?;
        Ok(PostgresHub {
            config: url.config(&opts),
            url,
            tls,
            opts,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The hub's URL (prints redacted).
    pub fn url(&self) -> &HubUrl {
        &self.url
    }

    /// Bring the hub schema up to [`HUB_SCHEMA_VERSION`]: apply each missing
    /// migration in its own transaction with its `hub_migrations` row. Safe
    /// to run from several processes at once, and cheap when the schema is
    /// current. Refuses a schema newer than this code. Returns the version.
    pub async fn migrate(&self) -> Result<u32, HubError> {
        let mut conn = self.call(self.checkout(false)).await?;
        let version = self.call(self.migrate_on(&mut conn)).await?;
        self.checkin(conn);
        if version > HUB_SCHEMA_VERSION {
            return Err(HubError::Other(format!(
                "the hub's schema is version {version}, newer than this waymark understands ({HUB_SCHEMA_VERSION}): upgrade waymark"
            )));
        }
        Ok(version)
    }

    async fn migrate_on(&self, conn: &mut Conn) -> Result<u32, HubError> {
        let mut attempts = 0;
        loop {
            match self.migrate_once(conn).await {
                Ok(v) => return Ok(v),
                // A concurrent migrator won the race: look again.
                Err(e)
                    if attempts < 3
                        && matches!(
                            e.code(),
                            Some(c) if *c == SqlState::UNIQUE_VIOLATION
                                || *c == SqlState::DUPLICATE_TABLE
                                || *c == SqlState::DUPLICATE_OBJECT
                                || *c == SqlState::DUPLICATE_COLUMN
                                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                        ) =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(self.map_error(e)),
            }
        }
    }

    async fn migrate_once(&self, conn: &mut Conn) -> Result<u32, tokio_postgres::Error> {
        conn.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS hub_migrations (version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        loop {
            let tx = conn.client.transaction().await?;
            let current: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM hub_migrations", &[])
                .await?
                .get(0);
            let current = current as u32;
            if current > HUB_SCHEMA_VERSION {
                return Ok(current);
            }
            let Some(&(version, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > current) else {
                return Ok(current);
            };
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO hub_migrations (version) VALUES ($1)", &[&(version as i32)])
                .await?;
            tx.commit().await?;
            conn.stmts = None;
        }
    }

    /// The hub schema version of the database (0: none installed).
    pub async fn schema_version(&self) -> Result<u32, HubError> {
        let conn = self.call(self.checkout(false)).await?;
        let version = self
            .call(async { read_schema_version(&conn.client).await.map_err(|e| self.map_error(e)) })
            .await?;
        self.checkin(conn);
        Ok(version)
    }
    async fn check_schema(&self, conn: &mut Conn) -> Result<(), HubError> {
        let version = read_schema_version(&conn.client).await.map_err(|e| self.map_error(e))?;
        match version {
            v if v == HUB_SCHEMA_VERSION => Ok(()),
            0 => Err(HubError::Other(format!(
                "the hub database {} has no waymark schema yet: migrate it (PostgresHub::migrate) with a role that may create tables",
                self.url
            ))),
            v if v < HUB_SCHEMA_VERSION => Err(HubError::Other(format!(
                "the hub's schema is version {v}, older than this waymark's ({HUB_SCHEMA_VERSION}): migrate it (PostgresHub::migrate)"
            ))),
            v => Err(HubError::Other(format!(
                "the hub's schema is version {v}, newer than this waymark understands ({HUB_SCHEMA_VERSION}): upgrade waymark"
            ))),
        }
    }
    async fn statements<'c>(&self, conn: &'c mut Conn) -> Result<&'c Stmts, tokio_postgres::Error> {
        if conn.stmts.is_none() {
            let c = &conn.client;
            conn.stmts = Some(Stmts {
                lock_space: c.prepare(LOCK_SPACE).await?,
                existing: c.prepare(EXISTING).await?,
                last_counters: c.prepare(LAST_COUNTERS).await?,
                insert: c.prepare(INSERT).await?,
                announce: c.prepare(ANNOUNCE).await?,
                pull: c.prepare(PULL).await?,
                snapshots: c.prepare(history::SNAPSHOTS).await?,
                report: c.prepare(history::REPORT).await?,
            });
        }
        Ok(conn.stmts.as_ref().expect("just prepared"))
    }

    /// Map a database error to the protocol's error, password scrubbed.
    fn map_error(&self, e: tokio_postgres::Error) -> HubError {
        let message = self.url.scrub(match e.as_db_error() {
            Some(db) => format!("{}: {} ({})", self.url, db.message(), db.code().code()),
            None => format!("{}: {e}", self.url),
        });
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection broke, or an IO error.
            return HubError::Unreachable(message);
        };
        let class = &code.code()[..2];
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
        {
            HubError::Aborted(message)
        } else if class == "08" || class == "57" || class == "53" || e.is_closed() {
            // Connection exceptions, operator intervention (shutdown,
            // restart), insufficient resources (too many connections).
            HubError::Unreachable(message)
        } else {
            HubError::Other(message)
        }
    }

    /// Run `op` on a connection, retrying aborted transactions, and once a
    /// reused connection that turned out broken (push is idempotent, so even
    /// a push that may have committed is safe to send again).
    async fn with_retries(&self, op: Op<'_>) -> Result<Done, HubError> {
        let mut tries = 0;
        let mut reconnected = false;
        loop {
            tries += 1;
            let outcome = self
                .call(async {
                    let mut conn = self.checkout(true).await?;
                    let result = match op {
                        Op::Push { space, changes } => self.push_once(&mut conn, space, changes).await.map(Done::Push),
                        Op::Pull { space, after, limit } => {
                            self.pull_once(&mut conn, space, after, limit).await.map(Done::Pull)
                        }
                        Op::Snapshots { space, after, limit } => self
                            .snapshots_once(&mut conn, space, after, limit)
                            .await
                            .map(Done::Snapshots),
                        Op::Report { space, frontier } => self
                            .report_once(&mut conn, space, frontier)
                            .await
                            .map(|()| Done::Count(1)),
                        Op::Replicas { space } => self.replicas_once(&mut conn, space).await.map(Done::Replicas),
                        Op::Forget { space, replica } => {
                            self.forget_once(&mut conn, space, replica).await.map(Done::Count)
                        }
                        Op::Retire { space, retention_ms } => {
                            self.retire_once(&mut conn, space, retention_ms).await.map(Done::Count)
                        }
                        Op::CompactBatch { space, opts } => self
                            .compact_batch_once(&mut conn, space, opts)
                            .await
                            .map(Done::Compacted),
                    };
                    Ok((conn, result))
                })
                .await;
            let (failure, reused) = match outcome {
                Err(e) => (Failure::Final(e), false),
                Ok((conn, Ok(value))) => {
                    self.checkin(conn);
                    return Ok(value);
                }
                Ok((conn, Err(f))) => {
                    let reused = conn.reused;
                    // Keep a connection that answered; drop one that broke.
                    if !matches!(&f, Failure::Final(HubError::Unreachable(_))) {
                        self.checkin(conn);
                    }
                    (f, reused)
                }
            };
            match failure {
                Failure::Retry(_) if tries <= self.opts.retries => {
                    tokio::time::sleep(Duration::from_millis(5 << tries.min(6))).await;
                }
                Failure::Final(HubError::Unreachable(_)) if reused && !reconnected => reconnected = true,
                Failure::Retry(e) | Failure::Final(e) => return Err(e),
            }
        }
    }

    async fn push_once(&self, conn: &mut Conn, space: &str, changes: &[Change]) -> Result<PushAck, Failure> {
        let db = |e| self.db_failure(e);
        let stmts = self.statements(conn).await.map_err(db)?;
        let (lock_space, existing, last_counters, insert, announce) = (
            stmts.lock_space.clone(),
            stmts.existing.clone(),
            stmts.last_counters.clone(),
            stmts.insert.clone(),
            stmts.announce.clone(),
        );
        let mut replicas: Vec<Uuid> = changes.iter().map(|c| c.dot.replica.0).collect();
        replicas.sort_unstable();
        replicas.dedup();
        let key_replicas: Vec<Uuid> = changes.iter().map(|c| c.dot.replica.0).collect();
        let key_counters = changes
            .iter()
            .map(|c| to_i64(c.dot.counter, "counter"))
            .collect::<Result<Vec<_>, _>>()?;

        let tx = conn.client.transaction().await.map_err(db)?;
        let head: i64 = tx.query_one(&lock_space, &[&space]).await.map_err(db)?.get(0);
        let stored_rows = tx
            .query(&existing, &[&space, &key_replicas, &key_counters])
            .await
            .map_err(db)?;
        let last_rows = tx.query(&last_counters, &[&space, &replicas]).await.map_err(db)?;

        let mut stored: std::collections::HashMap<(Uuid, i64), Vec<u8>> = stored_rows
            .into_iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect();
        let mut last: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
        let mut folded: std::collections::HashMap<Uuid, u64> = std::collections::HashMap::new();
        for row in last_rows {
            let replica: Uuid = row.get(0);
            let logged = row.get::<_, Option<i64>>(1).unwrap_or(0) as u64;
            let gone = row.get::<_, Option<i64>>(2).unwrap_or(0) as u64;
            last.insert(replica, logged.max(gone));
            folded.insert(replica, gone);
        }

        // Stage the batch exactly as the model hub does.
        let mut new = NewRows::default();
        let mut staged: std::collections::HashMap<(Uuid, i64), &Change> = std::collections::HashMap::new();
        let mut seq = head;
        for change in changes {
            if change.schema_version < OLDEST_ACCEPTED_SCHEMA {
                return Err(HubError::SchemaRejected {
                    schema_version: change.schema_version,
                    oldest_accepted: OLDEST_ACCEPTED_SCHEMA,
                }
                .into());
            }
            if let Some(why) = change.malformed() {
                return Err(HubError::Other(format!("malformed change {}: {why}", change.dot.counter)).into());
            }
            let dot = change.dot;
            let key = (dot.replica.0, to_i64(dot.counter, "counter")?);
            // A resend is compared byte for byte with what the hub holds.
            let body = change.body();
            let same = if let Some(stored) = stored.get(&key) {
                Some(*stored == body)
            } else {
                staged.get(&key).map(|theirs| theirs.body() == body)
            };
            match same {
                Some(true) => continue,
                Some(false) => {
                    return Err(HubError::DuplicateReplica {
                        replica: dot.replica,
                        counter: dot.counter,
                    }
                    .into());
                }
                None => {}
            }
            if dot.counter != 0 && dot.counter <= folded.get(&dot.replica.0).copied().unwrap_or(0) {
                // Folded into a snapshot: stored, as far as the snapshot can
                // still tell (its body can no longer be compared).
                let snapshot = self.snapshot_in(&tx, space, change).await?;
                if crate::snapshot::may_be_folded(snapshot.as_ref(), change) {
                    continue;
                }
                return Err(HubError::DuplicateReplica {
                    replica: dot.replica,
                    counter: dot.counter,
                }
                .into());
            }
            let expected = last.get(&dot.replica.0).copied().unwrap_or(0) + 1;
            if dot.counter != expected {
                return Err(if dot.counter == 0 {
                    HubError::Other(format!("change of replica {} has counter 0", dot.replica))
                } else {
                    HubError::Gap {
                        replica: dot.replica,
                        expected,
                    }
                }
                .into());
            }
            last.insert(dot.replica.0, dot.counter);
            staged.insert(key, change);
            seq += 1;
            new.push(seq, key, change.schema_version, body);
        }
        stored.clear();
        let inserted = new.seqs.len();
        if inserted > 0 {
            tx.execute(
                &insert,
                &[
                    &space,
                    &new.seqs,
                    &new.replicas,
                    &new.counters,
                    &new.schema_versions,
                    &new.bodies,
                    &seq,
                ],
            )
            .await
            .map_err(db)?;
            // Delivered at commit, and only then.
            tx.execute(&announce, &[&channel(space), &seq.to_string()])
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
        } else {
            tx.rollback().await.map_err(db)?;
        }
        Ok(PushAck {
            inserted,
            already_stored: changes.len() - inserted,
            head_seq: seq as u64,
        })
    }

    fn db_failure(&self, e: tokio_postgres::Error) -> Failure {
        if e.code() == Some(&SqlState::CHECK_VIOLATION)
            && e.as_db_error().and_then(|d| d.constraint()) == Some("changes_schema_version_accepted")
        {
            // A migration retired schema versions this code still accepts.
            return Failure::Final(HubError::SchemaRejected {
                schema_version: OLDEST_ACCEPTED_SCHEMA,
                oldest_accepted: OLDEST_ACCEPTED_SCHEMA + 1,
            });
        }
        match self.map_error(e) {
            e @ HubError::Aborted(_) => Failure::Retry(e),
            e => Failure::Final(e),
        }
    }

    async fn pull_once(&self, conn: &mut Conn, space: &str, after: i64, limit: i64) -> Result<PullPage, Failure> {
        let db = |e| self.db_failure(e);
        let pull = self.statements(conn).await.map_err(db)?.pull.clone();
        let rows = conn.client.query(&pull, &[&space, &after, &limit]).await.map_err(db)?;
        let mut page = PullPage::default();
        for row in rows {
            let part: i32 = row.get(0);
            let seq: i64 = row.get(1);
            if part == 0 {
                page.head_seq = seq as u64;
                page.floor = row.get::<_, i64>(2) as u64;
                continue;
            }
            if part == 2 {
                page.at_cursor = Some(Dot {
                    replica: ReplicaId(row.get::<_, Uuid>(4)),
                    counter: row.get::<_, i64>(5) as u64,
                });
                continue;
            }
            let body: Vec<u8> = row.get(3);
            let change: Change = serde_json::from_slice(&body).map_err(|e| {
                HubError::Other(format!(
                    "the hub's change at seq {seq} of space {space:?} is unreadable: {e}"
                ))
            })?;
            page.changes.push((seq as u64, change));
        }
        Ok(page)
    }
}

#[derive(Default)]
struct NewRows {
    seqs: Vec<i64>,
    replicas: Vec<Uuid>,
    counters: Vec<i64>,
    schema_versions: Vec<i32>,
    bodies: Vec<Vec<u8>>,
}

impl NewRows {
    fn push(&mut self, seq: i64, key: (Uuid, i64), schema_version: u32, body: Vec<u8>) {
        self.seqs.push(seq);
        self.replicas.push(key.0);
        self.counters.push(key.1);
        self.schema_versions.push(schema_version as i32);
        self.bodies.push(body);
    }
}
async fn read_schema_version(client: &Client) -> Result<u32, tokio_postgres::Error> {
    match client
        .query_one("SELECT coalesce(max(version), 0) FROM hub_migrations", &[])
        .await
    {
        Ok(row) => Ok(row.get::<_, i32>(0) as u32),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e),
    }
}

/// The channel a space's pushes are announced on: `waymark:SPACE` for a
/// plain name (letters, digits, `-`, `_`, `.`, at most 50 bytes), else
/// `waymark:` and a hash of the name (a channel is an identifier of at
/// most 63 bytes).
pub fn channel(space: &str) -> String {
    let plain = space.len() <= 50
        && space
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("waymark:{space}")
    } else {
        format!(
            "waymark:{}",
            Uuid::new_v5(&Uuid::NAMESPACE_OID, space.as_bytes()).simple()
        )
    }
}

/// A connection listening for a space's pushes ([`PostgresHub::listen`]);
/// dropping it closes the connection.
pub struct HubListener {
    _client: Client,
    task: tokio::task::AbortHandle,
    notifications: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Drop for HubListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HubListener {
    /// Wait for the next push to the space: the head it announced (`None`
    /// when the payload is not a seq). An error when the connection ended
    /// (listen again; pushes made meanwhile were not announced here).
    pub async fn next(&mut self) -> Result<Option<u64>, HubError> {
        match self.notifications.recv().await {
            Some(payload) => Ok(payload.parse().ok()),
            None => Err(HubError::Unreachable("the hub closed the listening connection".into())),
        }
    }
}

impl PostgresHub {
    /// Open a connection of its own that listens for pushes to `space`
    /// (the hub's schema is not checked: a push is announced whatever
    /// version made it).
    pub async fn listen(&self, space: &str) -> Result<HubListener, HubError> {
        let (sender, notifications) = tokio::sync::mpsc::unbounded_channel();
        let (client, task) = self.call(self.open(Some(sender))).await?;
        let listener = HubListener {
            _client: client,
            task,
            notifications,
        };
        self.call(async {
            listener
                ._client
                .batch_execute(&format!("LISTEN \"{}\"", channel(space)))
                .await
                .map_err(|e| self.map_error(e))
        })
        .await?;
        Ok(listener)
    }
}

impl Hub for PostgresHub {
    async fn push(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        if changes.is_empty() {
            let page = self.pull(space, u64::MAX >> 1, 1).await?;
            return Ok(PushAck {
                inserted: 0,
                already_stored: 0,
                head_seq: page.head_seq,
            });
        }
        match self.with_retries(Op::Push { space, changes }).await? {
            Done::Push(ack) => Ok(ack),
            _ => unreachable!("a push answers with an ack"),
        }
    }

    async fn pull(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        let after = to_i64(after_seq, "cursor")?;
        let limit = limit.clamp(1, MAX_PAGE) as i64;
        match self.with_retries(Op::Pull { space, after, limit }).await? {
            Done::Pull(page) => Ok(page),
            _ => unreachable!("a pull answers with a page"),
        }
    }

    async fn snapshots(&self, space: &str, after: Option<&RecordKey>, limit: usize) -> Result<SnapshotPage, HubError> {
        let limit = limit.clamp(1, MAX_PAGE) as i64;
        match self.with_retries(Op::Snapshots { space, after, limit }).await? {
            Done::Snapshots(page) => Ok(page),
            _ => unreachable!("snapshots answer with a page"),
        }
    }

    async fn report(&self, space: &str, frontier: &Frontier) -> Result<(), HubError> {
        self.with_retries(Op::Report { space, frontier }).await.map(drop)
    }
}

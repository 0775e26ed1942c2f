//! The speed figures of issue 4 (sync), each beside a floor measured in the
//! same run against the same local Postgres (a database of its own, created
//! by `TestDatabase` and dropped at the end). See BENCHMARKS.md.
//!
//! - `a_noop_round`: a sync round with nothing to do, on a store of 100,000
//!   records and on an empty store; floor: `SELECT 1` on a plain connection.
//! - `b_push_10k`: pushing 10,000 local changes (a whole round); floor: one
//!   multi-row `INSERT ... SELECT unnest(...)` of the same rows into a table
//!   shaped like the hub's.
//! - `c_pull_100k`: a new replica pulling 100,000 changes (a whole round);
//!   floor: `SELECT`ing the same rows. Its peak memory is measured in a child
//!   process (`VmHWM`), printed as `[c] peak RSS`.
//! - `d_merge_100k`: pulling the same 100,000 changes into a store that wrote
//!   the same records concurrently (every record ends with a title
//!   conflict); floor: a raw SQLite `INSERT` of the 100,000 change bodies in
//!   one transaction.
//!
//! Run with `cargo bench --bench sync`. Under `cargo test --benches` the
//! sizes are 100 times smaller.
//!
//! `WAYMARK_SYNC_BENCH=propagation cargo bench --bench sync` measures
//! instead how long a write on one store takes to show on another, each
//! with `serve`'s worker at the default interval (30 s): 50 writes a second
//! or so apart, with the hub's announcements (`listen`) and by polling
//! alone; the median, p95 and max of each ([`propagation`]).
//!
//! `WAYMARK_SYNC_BENCH=claims cargo bench --bench sync` measures a claim
//! (issue 14): online (`waymark::sync::claim`, the claim pushed and pulled
//! back in the call, against this Postgres), offline (no hub: tentative),
//! and, as the baseline in the same run, a local write of the item
//! ([`claims`]).
//! `WAYMARK_SYNC_BENCH=hub-load cargo bench --bench sync` measures the
//! hub's load (issue 13, [`hub_load`]): `WAYMARK_HUB_REPLICAS` replicas
//! (default 1,000) over `WAYMARK_HUB_SPACES` spaces (default 1), each
//! running a sync round every 30 s (spread evenly), most of them no-ops,
//! while 5 writers push a change a second; the no-op rounds' latency against
//! the same round with the hub otherwise idle, in the same run.
//!
//! `WAYMARK_SYNC_BENCH=history cargo bench --bench sync` measures bounded
//! history (issue 13, [`history`]): a fresh store's bootstrap of a space of
//! `WAYMARK_HISTORY_ITEMS` items (default 20,000) with
//! `WAYMARK_HISTORY_CHANGES` changes each (default 10), compacted, against
//! the same items with one change each (the floor), and the hub's storage
//! of each.

use std::cell::Cell;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use divan::Bencher;
use serde_json::{Value, json};
use uuid::Uuid;
use waymark::Tracker;
use waymark_sync::postgres::testing::{TestDatabase, runtime, server_url};
use waymark_sync::postgres::{HubOptions, PostgresHub};
use waymark_sync::round::{RoundReport, pull_log, push_outbox};
use waymark_sync::{Change, Dot, PageApplied, RecordStates, Replica, ReplicaError, ReplicaId, SyncOptions, sync_round};

/// Set in the child process that measures a pull's peak memory: the test
/// database's name and the space to pull.
const CHILD_ENV: &str = "WAYMARK_SYNC_BENCH_PULL_CHILD";

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        pull_child(&spec);
        return;
    }
    if std::env::var("WAYMARK_SYNC_BENCH").is_ok_and(|m| m == "propagation") {
        propagation();
        return;
    }
    if std::env::var("WAYMARK_SYNC_BENCH").is_ok_and(|m| m == "claims") {
        claims();
        return;
    }
    if std::env::var("WAYMARK_SYNC_BENCH").is_ok_and(|m| m == "hub-load") {
        hub_load();
        return;
    }
    if std::env::var("WAYMARK_SYNC_BENCH").is_ok_and(|m| m == "history") {
        history();
        return;
    }
    divan::main();
    // Drop the fixture's database (statics are never dropped).
    if let Some(fixture) = FIXTURE.lock().unwrap().take() {
        drop(fixture);
    }
}

const AUTHOR: &str = "bench";
const BIG: usize = 100_000;
const PUSH: usize = 10_000;

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn scale(n: usize) -> usize {
    if bench_mode() { n } else { (n / 100).max(10) }
}

/// `n` flat tasks with fixed ids (the same ids in every store built with
/// the same `n`), titles carrying `label`.
fn document(n: usize, label: &str) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + i as u128).to_string(),
                "item_type": "task",
                "title": format!("{label} task {i} of the sync bench"),
                "status": if i % 3 == 0 { "completed" } else { "active" },
                "priority": (i % 5) as i64,
            })
        })
        .collect();
    json!({ "work_items": items })
}

fn store_with(n: usize, label: &str) -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = Tracker::open(dir.path()).expect("open tracker");
    if n > 0 {
        tracker.import_json(AUTHOR, document(n, label)).expect("import");
    }
    (dir, tracker)
}

/// Everything the benches share, built once per process.
struct Fixture {
    rt: tokio::runtime::Runtime,
    db: TestDatabase,
    hub: PostgresHub,
    /// A plain connection to the same database (the floors).
    raw: waymark_sync::postgres::testing::tokio_postgres::Client,
    /// 100,000 records, all pushed to `BIG_SPACE`, cursor at its head.
    big: (tempfile::TempDir, Tracker),
    /// No records, synced with the empty space.
    empty: (tempfile::TempDir, Tracker),
}

const BIG_SPACE: &str = "big";
const EMPTY_SPACE: &str = "empty";

static FIXTURE: Mutex<Option<Arc<Fixture>>> = Mutex::new(None);

fn fixture() -> Arc<Fixture> {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let started = Instant::now();
        let rt = runtime();
        let db = rt.block_on(TestDatabase::create("sync_bench"));
        let hub = rt.block_on(db.hub());
        let raw = rt.block_on(db.raw_client());
        let big = store_with(scale(BIG), "hub's");
        let imported = started.elapsed();
        let store = big.1.store();
        // A store publishes its state (into its outbox) when a hub first answers it.
        store.bind_hub("bench#big").expect("bind");
        store.hub_answered().expect("publish");
        let mut report = RoundReport::default();
        rt.block_on(push_outbox(store, &hub, BIG_SPACE, SyncOptions::default(), &mut report))
            .expect("push the big store");
        assert_eq!(report.pushed, scale(BIG));
        let head = rt
            .block_on(waymark_sync::Hub::pull(&hub, BIG_SPACE, 0, 1))
            .unwrap()
            .head_seq;
        store.apply_page(&[], head).expect("cursor at the head");
        let empty = store_with(0, "");
        rt.block_on(sync_round(empty.1.store(), &hub, EMPTY_SPACE, SyncOptions::default()))
            .expect("sync the empty store");
        eprintln!(
            "[fixture] {} records imported in {imported:.1?}, pushed in {:.1?}",
            scale(BIG),
            started.elapsed() - imported
        );
        *FIXTURE.lock().unwrap() = Some(Arc::new(Fixture {
            rt,
            db,
            hub,
            raw,
            big,
            empty,
        }));
    });
    FIXTURE.lock().unwrap().clone().expect("fixture")
}

// ---------------------------------------------------------------------------
// (a) a round with nothing to do

#[divan::bench_group(sample_count = 200)]
mod a_noop_round {
    use super::*;

    fn noop(bencher: Bencher, store: impl Fn(&Fixture) -> &Tracker, space: &str) {
        let f = fixture();
        let tracker = store(&f);
        bencher.bench_local(|| {
            let report =
                f.rt.block_on(sync_round(tracker.store(), &f.hub, space, SyncOptions::default()))
                    .unwrap();
            assert_eq!(report.pushed + report.pulled, 0);
        });
    }

    #[divan::bench]
    fn waymark_100k_records(bencher: Bencher) {
        noop(bencher, |f| &f.big.1, BIG_SPACE);
    }

    #[divan::bench]
    fn waymark_empty_store(bencher: Bencher) {
        noop(bencher, |f| &f.empty.1, EMPTY_SPACE);
    }

    #[divan::bench]
    fn floor_select_1(bencher: Bencher) {
        let f = fixture();
        let stmt = f.rt.block_on(f.raw.prepare("SELECT 1")).unwrap();
        bencher.bench_local(|| {
            let row = f.rt.block_on(f.raw.query_one(&stmt, &[])).unwrap();
            assert_eq!(row.get::<_, i32>(0), 1);
        });
    }
}

// ---------------------------------------------------------------------------
// (b) pushing 10,000 local changes

#[divan::bench_group(sample_count = 3, sample_size = 1)]
mod b_push_10k {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = fixture();
        bencher
            .with_inputs(|| (store_with(scale(PUSH), "pushed"), format!("push-{}", Uuid::now_v7())))
            .bench_local_values(|((_dir, tracker), space)| {
                let report =
                    f.rt.block_on(sync_round(tracker.store(), &f.hub, &space, SyncOptions::default()))
                        .unwrap();
                assert_eq!(report.pushed, scale(PUSH));
                (_dir, tracker)
            });
    }

    /// The same rows (seq, replica, counter, schema version, JSON body) in
    /// one multi-row INSERT into a table shaped like `changes`.
    #[divan::bench]
    fn floor_multirow_insert(bencher: Bencher) {
        let f = fixture();
        let (_dir, tracker) = store_with(scale(PUSH), "pushed");
        let changes = tracker.store().outbox(usize::MAX).unwrap();
        let seqs: Vec<i64> = (1..=changes.len() as i64).collect();
        let replicas: Vec<Uuid> = changes.iter().map(|c| c.dot.replica.0).collect();
        let counters: Vec<i64> = changes.iter().map(|c| c.dot.counter as i64).collect();
        let versions: Vec<i32> = changes.iter().map(|c| c.schema_version as i32).collect();
        let bodies: Vec<Vec<u8>> = changes.iter().map(|c| serde_json::to_vec(c).unwrap()).collect();
        f.rt.block_on(f.raw.batch_execute(
            "CREATE TABLE IF NOT EXISTS floor_changes (space_id text NOT NULL, seq bigint NOT NULL, \
             replica_id uuid NOT NULL, counter bigint NOT NULL, schema_version integer NOT NULL, body bytea NOT NULL, \
             PRIMARY KEY (space_id, seq), UNIQUE (space_id, replica_id, counter))",
        ))
        .unwrap();
        let insert =
            f.rt.block_on(f.raw.prepare(
                "INSERT INTO floor_changes SELECT $1, t.* FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], \
                 $5::int[], $6::bytea[]) AS t",
            ))
            .unwrap();
        bencher
            .with_inputs(|| format!("floor-{}", Uuid::now_v7()))
            .bench_local_values(|space| {
                let n =
                    f.rt.block_on(
                        f.raw
                            .execute(&insert, &[&space, &seqs, &replicas, &counters, &versions, &bodies]),
                    )
                    .unwrap();
                assert_eq!(n as usize, scale(PUSH));
            });
    }
}

// ---------------------------------------------------------------------------
// (c) a new replica pulling 100,000 changes

#[divan::bench_group(sample_count = 3, sample_size = 1)]
mod c_pull_100k {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = fixture();
        bencher
            .with_inputs(|| store_with(0, ""))
            .bench_local_values(|(dir, tracker)| {
                let report =
                    f.rt.block_on(sync_round(tracker.store(), &f.hub, BIG_SPACE, SyncOptions::default()))
                        .unwrap();
                assert_eq!(report.pulled, scale(BIG));
                (dir, tracker)
            });
    }

    #[divan::bench]
    fn floor_select(bencher: Bencher) {
        let f = fixture();
        let select =
            f.rt.block_on(
                f.raw
                    .prepare("SELECT seq, body FROM changes WHERE space_id = $1 ORDER BY seq"),
            )
            .unwrap();
        bencher.bench_local(|| {
            let rows = f.rt.block_on(f.raw.query(&select, &[&BIG_SPACE])).unwrap();
            assert_eq!(rows.len(), scale(BIG));
            rows
        });
    }

    /// The same pull in a child process that reports its peak RSS.
    #[divan::bench(sample_count = 1)]
    fn peak_memory_in_a_child(bencher: Bencher) {
        let f = fixture();
        bencher.bench_local(|| {
            let output = Command::new(std::env::current_exe().unwrap())
                .env(CHILD_ENV, format!("{}\t{BIG_SPACE}", f.db.name()))
                .output()
                .expect("run the child");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            eprintln!("[c] {}", String::from_utf8_lossy(&output.stdout).trim());
        });
    }
}

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child of `peak_memory_in_a_child`: a new store pulls the whole space.
fn pull_child(spec: &str) {
    let (db, space) = spec.split_once('\t').expect("db\\tspace");
    let rt = runtime();
    let url = server_url().with_database(db);
    let hub = PostgresHub::new(url, HubOptions::default()).unwrap();
    let (_dir, tracker) = store_with(0, "");
    let before = status_kib("VmHWM:");
    let started = Instant::now();
    let timed = TimedApply {
        store: tracker.store(),
        applying: Cell::new(Duration::ZERO),
    };
    let report = rt
        .block_on(sync_round(&timed, &hub, space, SyncOptions::default()))
        .unwrap();
    let elapsed = started.elapsed();
    println!(
        "peak RSS {:.1} MiB after pulling {} changes in {elapsed:.2?}, {:.2?} of it in the store's apply_page \
         (peak before the pull: {:.1} MiB)",
        status_kib("VmHWM:") as f64 / 1024.0,
        report.pulled,
        timed.applying.get(),
        before as f64 / 1024.0
    );
}

/// The store as a replica, timing `apply_page` (the rest of a pull is the hub).
struct TimedApply<'a> {
    store: &'a waymark::store::Store,
    applying: Cell<Duration>,
}

impl Replica for TimedApply<'_> {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Replica::replica_id(self.store)
    }
    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        self.store.outbox(limit)
    }
    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        self.store.acknowledge(dots)
    }
    fn cursor(&self) -> Result<u64, ReplicaError> {
        self.store.cursor()
    }
    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        let started = Instant::now();
        let applied = self.store.apply_page(changes, new_cursor);
        self.applying.set(self.applying.get() + started.elapsed());
        applied
    }
    fn apply_snapshots(&self, snapshots: &[waymark_sync::Snapshot]) -> Result<PageApplied, ReplicaError> {
        let started = Instant::now();
        let applied = self.store.apply_snapshots(snapshots);
        self.applying.set(self.applying.get() + started.elapsed());
        applied
    }
    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        self.store.record_states()
    }
}

// ---------------------------------------------------------------------------
// (d) merging 100,000 remote changes into a store that edited the same records

#[divan::bench_group(sample_count = 1, sample_size = 1)]
mod d_merge_100k {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = fixture();
        bencher
            .with_inputs(|| store_with(scale(BIG), "local"))
            .bench_local_values(|(dir, tracker)| {
                let mut report = RoundReport::default();
                f.rt.block_on(pull_log(
                    tracker.store(),
                    &f.hub,
                    BIG_SPACE,
                    SyncOptions::default(),
                    &mut report,
                ))
                .unwrap();
                assert_eq!((report.pulled, report.conflicts), (scale(BIG), scale(BIG)));
                (dir, tracker)
            });
    }

    /// The 100,000 change bodies inserted raw into SQLite, one transaction.
    #[divan::bench(sample_count = 3)]
    fn floor_sqlite_insert(bencher: Bencher) {
        let f = fixture();
        let page =
            f.rt.block_on(waymark_sync::Hub::pull(&f.hub, BIG_SPACE, 0, usize::MAX))
                .unwrap();
        let mut rows: Vec<(String, String, String)> = page
            .changes
            .into_iter()
            .map(|(_, c)| {
                (
                    c.collection.clone(),
                    c.record_id.clone(),
                    serde_json::to_string(&c).unwrap(),
                )
            })
            .collect();
        let mut after = rows.len() as u64;
        while rows.len() < scale(BIG) {
            let more =
                f.rt.block_on(waymark_sync::Hub::pull(&f.hub, BIG_SPACE, after, usize::MAX))
                    .unwrap();
            after += more.changes.len() as u64;
            rows.extend(more.changes.into_iter().map(|(_, c)| {
                (
                    c.collection.clone(),
                    c.record_id.clone(),
                    serde_json::to_string(&c).unwrap(),
                )
            }));
        }
        bencher
            .with_inputs(|| {
                let dir = tempfile::tempdir().unwrap();
                let conn = raw_sqlite(&dir.path().join("floor.db"));
                (dir, conn)
            })
            .bench_local_values(|(dir, mut conn)| {
                let tx = conn.transaction().unwrap();
                {
                    let mut stmt = tx
                        .prepare("INSERT INTO records (collection, id, state) VALUES (?1, ?2, ?3)")
                        .unwrap();
                    for (c, id, body) in &rows {
                        stmt.execute([c, id, body]).unwrap();
                    }
                }
                tx.commit().unwrap();
                (dir, conn)
            });
    }
}

fn raw_sqlite(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE records (collection TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
                               PRIMARY KEY (collection, id)) WITHOUT ROWID;",
    )
    .unwrap();
    conn
}

// ---------------------------------------------------------------------------
// Propagation: a write on one `serve` seen by another

/// `serve`'s worker for `tracker` (as `waymark::mcp` starts it): bound,
/// running, and told of local writes.
fn serve_worker(tracker: &Tracker, settings: &waymark::config::Settings) -> waymark::sync::SyncHandle {
    let (hub, space) = waymark::sync::hub_for(settings).expect("hub");
    waymark::sync::bind_cursor(tracker.store(), settings).expect("bind");
    let handle = waymark::sync::spawn_worker(tracker.store().clone(), hub, space, settings);
    let notify = handle.clone();
    tracker
        .store()
        .set_write_hook(Some(Arc::new(move || notify.local_write())));
    handle
}

/// Writes on store A, about a second apart (0.5-1.5 s, so the writes do
/// not fall in step with a poll), each timed from its write until store B
/// reads it, B checked every 2 ms; both workers at the default interval.
fn propagation() {
    const WRITES: usize = 50;
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create("propagation"));
    let url = db.url().to_string();
    assert!(
        !url.contains("***"),
        "the propagation bench needs a test server without a password"
    );
    let mut rng = 0x5eed_u64;
    let mut gap = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_millis(500 + rng % 1000)
    };
    for listen in [true, false] {
        let mode = if listen { "listen" } else { "poll" };
        let mut settings = waymark::config::Settings::default().with_overrides(Some(url.clone()), Some(mode.into()));
        settings.sync_listen = Some(listen);
        let ((_a_dir, a), (_b_dir, b)) = (store_with(0, ""), store_with(0, ""));
        let (wa, wb) = (serve_worker(&a, &settings), serve_worker(&b, &settings));
        let started = Instant::now();
        while wa.status().last_success_at.is_none() || wb.status().last_success_at.is_none() {
            assert!(started.elapsed() < Duration::from_secs(30), "the workers did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the listeners connect (they start beside the first round).
        std::thread::sleep(Duration::from_millis(500));
        let mut pending: Vec<(String, Instant)> = Vec::new();
        let mut took: Vec<Duration> = Vec::new();
        let mut next_write = Instant::now();
        let mut written = 0;
        let deadline = Instant::now() + Duration::from_secs(WRITES as u64 * 2 + 60);
        while took.len() < WRITES {
            assert!(Instant::now() < deadline, "{mode}: writes did not arrive");
            if written < WRITES && Instant::now() >= next_write {
                let name = format!("{mode}-{written}");
                a.create_vendor(
                    AUTHOR,
                    waymark::ops::NewVendor {
                        name: name.clone(),
                        ..Default::default()
                    },
                )
                .expect("write");
                pending.push((name, Instant::now()));
                written += 1;
                next_write = Instant::now() + gap();
            }
            pending.retain(|(name, at)| {
                let arrived = b.query_vendor_status(name).is_ok();
                if arrived {
                    took.push(at.elapsed());
                }
                !arrived
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        wa.stop();
        wb.stop();
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "[propagation] {mode:>6} (interval {:?}): {WRITES} writes, median {:.0?}, p95 {:.0?}, max {:.0?}",
            settings.interval(),
            at(0.5),
            at(0.95),
            at(1.0)
        );
    }
}

// ---------------------------------------------------------------------------
// Claims: online (pushed and pulled back in the call), offline, and a local
// write beside them.

fn claims() {
    const N: usize = 200;
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create("claims"));
    let settings =
        waymark::config::Settings::default().with_overrides(Some(db.url().to_string()), Some("claims".into()));
    let (_online_dir, online) = store_with(0, "");
    let (_offline_dir, offline) = store_with(0, "");
    waymark::sync::sync_once_blocking(online.store(), &settings).expect("first round");
    let task = |t: &Tracker, n: usize| {
        t.create_work_item(
            AUTHOR,
            waymark::ops::NewWorkItem {
                item_type: "task".into(),
                title: format!("task {n}"),
                ..Default::default()
            },
        )
        .expect("create")
        .id
    };
    let mut took: [Vec<Duration>; 3] = Default::default();
    for n in 0..N {
        // A local write (the baseline): retitle an item.
        let id = task(&offline, n);
        let version = offline.get_work_item(&id).expect("get").version;
        let started = Instant::now();
        offline
            .update_work_item(
                AUTHOR,
                waymark::ops::WorkItemUpdate {
                    id: id.clone(),
                    version,
                    title: Some(format!("task {n}, retitled")),
                    ..Default::default()
                },
            )
            .expect("write");
        took[0].push(started.elapsed());
        // Offline: no hub configured.
        let started = Instant::now();
        let answer = waymark::sync::claim_blocking(
            &offline,
            None,
            "bench",
            waymark::ops::ClaimRequest {
                id: Some(id),
                ..Default::default()
            },
        )
        .expect("claim offline");
        took[1].push(started.elapsed());
        assert_eq!(answer.claim.expect("claim").state.as_str(), "tentative");
        // Online: `claim next` (the new item is the only ready one).
        let id = task(&online, n);
        let started = Instant::now();
        let answer = waymark::sync::claim_blocking(
            &online,
            Some(&settings),
            "bench",
            waymark::ops::ClaimRequest {
                next: true,
                ..Default::default()
            },
        )
        .expect("claim online");
        took[2].push(started.elapsed());
        assert_eq!(answer.item.id, id);
        assert_eq!(answer.claim.expect("claim").state.as_str(), "confirmed");
        // Completing it releases the claim, and leaves the next one ready.
        online
            .update_work_item(
                "bench",
                waymark::ops::WorkItemUpdate {
                    id: answer.item.id.clone(),
                    version: answer.item.version,
                    status: Some("completed".into()),
                    ..Default::default()
                },
            )
            .expect("complete");
        waymark::sync::sync_once_blocking(online.store(), &settings).expect("round");
    }
    for (name, t) in ["local write (baseline)", "claim offline", "claim next online"]
        .iter()
        .zip(took.iter_mut())
    {
        t.sort();
        let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "[claims] {name:>22}: {N} calls, p50 {:.2?}, p95 {:.2?}, max {:.2?}",
            at(0.5),
            at(0.95),
            at(1.0)
        );
    }
}

// ---------------------------------------------------------------------------
// Bounded history (issue 13)

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A fresh store's whole first round from `space`, timed.
fn bootstrap(rt: &tokio::runtime::Runtime, hub: &PostgresHub, space: &str) -> (Duration, RoundReport) {
    let (_dir, fresh) = store_with(0, "");
    let timed = TimedApply {
        store: fresh.store(),
        applying: Cell::new(Duration::ZERO),
    };
    let started = Instant::now();
    let report = rt
        .block_on(sync_round(&timed, hub, space, SyncOptions::default()))
        .expect("bootstrap");
    let took = started.elapsed();
    eprintln!(
        "[history]   {space}: {took:.2?}, {:.2?} of it in the store's apply",
        timed.applying.get()
    );
    (took, report)
}

/// The bytes a space's rows take on the hub (`pg_column_size` of each row
/// of `table`, which is the tuple as stored, compressed or not).
fn space_bytes(
    rt: &tokio::runtime::Runtime,
    raw: &waymark_sync::postgres::testing::tokio_postgres::Client,
    table: &str,
    space: &str,
) -> i64 {
    rt.block_on(raw.query_one(
        &format!("SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint FROM {table} t WHERE space_id = $1"),
        &[&space],
    ))
    .expect("size")
    .get(0)
}

/// Space `flat`: N items, one change each (a store's publication). Space
/// `deep`: the same N creations, then `K - 1` retitles of every item by
/// another replica (pushed straight to the hub, in the same form a store's
/// update takes: the title field, the record's version vector as context),
/// then compacted. A fresh store bootstraps from each, five times each,
/// alternating; the median of each and their ratio are printed, and the
/// hub's bytes for each space.
fn history() {
    let n = env_size("WAYMARK_HISTORY_ITEMS", 20_000);
    let k = env_size("WAYMARK_HISTORY_CHANGES", 10).max(1);
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create("history"));
    let hub = rt.block_on(db.hub());
    let raw = rt.block_on(db.raw_client());
    let started = Instant::now();

    // flat: a store's publication of N items.
    let (_dir, source) = store_with(n, "first");
    let store = source.store();
    store.bind_hub("bench#flat").expect("bind");
    store.hub_answered().expect("publish");
    rt.block_on(sync_round(store, &hub, "flat", SyncOptions::default()))
        .expect("push flat");
    let mut created: Vec<Change> = Vec::with_capacity(n);
    let mut after = 0;
    loop {
        let page = rt
            .block_on(waymark_sync::Hub::pull(&hub, "flat", after, 5_000))
            .expect("pull");
        let Some(&(last, _)) = page.changes.last() else { break };
        created.extend(page.changes.into_iter().map(|(_, c)| c));
        after = last;
    }
    assert_eq!(created.len(), n);

    // deep: the same creations, then K - 1 retitles of each item.
    let push = |batch: &[Change]| {
        rt.block_on(waymark_sync::Hub::push(&hub, "deep", batch))
            .expect("push deep");
    };
    for chunk in created.chunks(5_000) {
        push(chunk);
    }
    let writer = ReplicaId::mint();
    let mut counter = 0u64;
    let mut contexts: Vec<waymark_sync::VersionVector> = created
        .iter()
        .map(|c| {
            let mut vv = c.context.clone();
            vv.insert(c.dot);
            vv
        })
        .collect();
    let base_hlc = created.iter().map(|c| c.hlc).max().unwrap_or_default();
    for round in 1..k {
        let mut batch = Vec::with_capacity(5_000);
        for (i, c) in created.iter().enumerate() {
            counter += 1;
            let dot = Dot {
                replica: writer,
                counter,
            };
            batch.push(Change {
                collection: c.collection.clone(),
                record_id: c.record_id.clone(),
                dot,
                context: contexts[i].clone(),
                fields: [(
                    "title".to_owned(),
                    json!(format!("task {i}, revision {round} of the sync bench")),
                )]
                .into(),
                hlc: waymark_sync::Hlc(base_hlc.0 + counter),
                author: "bench writer".into(),
                schema_version: waymark_sync::SCHEMA_VERSION,
            });
            contexts[i].insert(dot);
            if batch.len() == 5_000 {
                push(&batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            push(&batch);
        }
    }
    let deep_log_bytes = space_bytes(&rt, &raw, "changes", "deep");
    let flat_bytes = space_bytes(&rt, &raw, "changes", "flat");
    eprintln!(
        "[history] built flat ({n} changes) and deep ({} changes) in {:.1?}",
        n * k,
        started.elapsed()
    );
    let (uncompacted, report) = bootstrap(&rt, &hub, "deep");
    assert_eq!(report.pulled, n * k);
    let compacting = Instant::now();
    let compacted = rt
        .block_on(waymark_sync::HubAdmin::compact(
            &hub,
            "deep",
            waymark_sync::CompactOptions::default(),
        ))
        .expect("compact");
    let compact_took = compacting.elapsed();
    assert_eq!(compacted.floor, (n * k) as u64);
    let deep_bytes = space_bytes(&rt, &raw, "snapshots", "deep")
        + space_bytes(&rt, &raw, "changes", "deep")
        + space_bytes(&rt, &raw, "folded", "deep");

    let mut flat_times = Vec::new();
    let mut deep_times = Vec::new();
    for _ in 0..5 {
        let (t, r) = bootstrap(&rt, &hub, "flat");
        assert_eq!(r.pulled, n);
        flat_times.push(t);
        let (t, r) = bootstrap(&rt, &hub, "deep");
        assert_eq!(r.pulled, n);
        deep_times.push(t);
    }
    flat_times.sort();
    deep_times.sort();
    let (flat, deep) = (flat_times[2], deep_times[2]);
    eprintln!(
        "[history] {n} items x {k} changes: compaction folded {} changes in {compact_took:.2?} ({} snapshots)",
        compacted.folded, compacted.snapshots
    );
    eprintln!(
        "[history] fresh-store bootstrap: compacted {deep:.2?} vs one change per item {flat:.2?} = {:.2}x \
         (medians of 5; uncompacted {} changes: {uncompacted:.2?})",
        deep.as_secs_f64() / flat.as_secs_f64(),
        n * k
    );
    eprintln!(
        "[history] hub bytes: compacted {deep_bytes} vs one change per item {flat_bytes} = {:.2}x \
         (uncompacted log {deep_log_bytes} = {:.2}x)",
        deep_bytes as f64 / flat_bytes as f64,
        deep_log_bytes as f64 / flat_bytes as f64
    );
}

// ---------------------------------------------------------------------------
// Hub load (issue 13): many replicas' rounds against one Postgres hub

fn hub_load() {
    use waymark_sync::memory::MemoryReplica;

    let replicas = env_size("WAYMARK_HUB_REPLICAS", 1_000);
    let spaces = env_size("WAYMARK_HUB_SPACES", 1).max(1);
    const PERIOD: Duration = Duration::from_secs(30);
    const WRITERS: usize = 5;
    let rt = runtime();
    let db = rt.block_on(TestDatabase::create("hub_load"));
    let hub = Arc::new(rt.block_on(db.hub_with(
        db.url(),
        HubOptions {
            max_idle: 16,
            ..HubOptions::default()
        },
    )));
    let space_of = |i: usize| format!("space-{}", i % spaces);
    let opts = SyncOptions::default();
    let field = |text: String| -> std::collections::BTreeMap<String, Value> {
        [("title".to_owned(), Value::String(text))].into_iter().collect()
    };
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };

    // Each space has a history of 200 records first; every replica pulls it
    // once (its frontier reaches the hub), so the rounds measured are no-ops
    // but for the writers' changes.
    for s in 0..spaces {
        let seed = MemoryReplica::new(ReplicaId::mint());
        for r in 0..200 {
            seed.write(
                "work_items",
                &format!("s{s}-r{r}"),
                field(format!("seed {r}")),
                now_ms(),
            );
        }
        rt.block_on(sync_round(&seed, hub.as_ref(), &space_of(s), opts))
            .expect("seed");
    }
    let started = Instant::now();
    let all: Vec<Arc<MemoryReplica>> = (0..replicas)
        .map(|_| Arc::new(MemoryReplica::new(ReplicaId::mint())))
        .collect();
    for (i, r) in all.iter().enumerate() {
        rt.block_on(sync_round(r.as_ref(), hub.as_ref(), &space_of(i), opts))
            .expect("first round");
    }
    eprintln!(
        "[hub-load] {replicas} replicas over {spaces} space(s) caught up in {:.1?}",
        started.elapsed()
    );

    // The baseline: one replica's no-op round with the hub otherwise idle.
    let mut idle: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            rt.block_on(sync_round(all[0].as_ref(), hub.as_ref(), &space_of(0), opts))
                .expect("idle round");
            t.elapsed()
        })
        .collect();

    let mut loaded: Vec<Duration> = Vec::new();
    rt.block_on(async {
        // The load: every replica's round once in a period of 30 s, spread
        // evenly (what 1,000 stores syncing every 30 s ask of the hub),
        // while the writers write and push once a second.
        let mut tasks = tokio::task::JoinSet::new();
        let begin = tokio::time::Instant::now();
        let step = PERIOD / replicas.max(1) as u32;
        let mut w_next = begin;
        for i in 0..replicas {
            let at = begin + step * i as u32;
            while w_next <= at {
                tokio::time::sleep_until(w_next).await;
                for (w, writer) in all.iter().take(WRITERS).enumerate() {
                    let (hub, replica, space) = (hub.clone(), writer.clone(), space_of(w));
                    replica.write("work_items", &format!("w{w}"), field(format!("at {at:?}")), now_ms());
                    tasks.spawn(async move {
                        sync_round(replica.as_ref(), hub.as_ref(), &space, opts)
                            .await
                            .expect("writer round");
                        None
                    });
                }
                w_next += Duration::from_secs(1);
            }
            tokio::time::sleep_until(at).await;
            if i < WRITERS {
                continue;
            }
            let (hub, replica, space) = (hub.clone(), all[i].clone(), space_of(i));
            tasks.spawn(async move {
                let t = Instant::now();
                sync_round(replica.as_ref(), hub.as_ref(), &space, opts)
                    .await
                    .expect("round");
                Some(t.elapsed())
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Some(took) = done.expect("a round task") {
                loaded.push(took);
            }
        }
    });
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99), at(1.0))
    };
    let (i50, i99, imax) = stats(&mut idle);
    let (l50, l99, lmax) = stats(&mut loaded);
    println!(
        "| {replicas} replicas, {spaces} space(s), a round each every 30 s, {WRITERS} writers at 1/s | rounds | p50 | p99 | max |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| a no-op round, hub otherwise idle (baseline) | {} | {i50:.2?} | {i99:.2?} | {imax:.2?} |",
        idle.len()
    );
    println!(
        "| a replica's round under the load (every replica once over 30 s) | {} | {l50:.2?} | {l99:.2?} | {lmax:.2?} |",
        loaded.len()
    );
    println!(
        "p99 under load / idle p99: {:.2}x (target: p99 under 50 ms)",
        l99.as_secs_f64() / i99.as_secs_f64()
    );
}

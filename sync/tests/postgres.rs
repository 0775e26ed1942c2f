//! The Postgres hub against a real Postgres (see
//! `waymark_sync::postgres::testing` for where the server comes from): the
//! conformance suite, migrations, credentials, concurrency, isolation of
//! spaces, and network faults through a proxy. Each test has a database of
//! its own, so they run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use waymark_sync::memory::MemoryReplica;
use waymark_sync::postgres::testing::{FaultProxy, TestDatabase, TestHub, block_on};
use waymark_sync::postgres::{HUB_SCHEMA_VERSION, HubOptions, HubUrl, PostgresHub};
use waymark_sync::round::{SyncOptions, sync_round};
use waymark_sync::testing::{change, run_of};
use waymark_sync::{Hub, HubError, Replica, ReplicaId};

mod conformance {
    waymark_sync::hub_conformance_tests!(
        block_on = waymark_sync::postgres::testing::block_on,
        hub = waymark_sync::postgres::testing::TestHub::create("conformance").await
    );
    waymark_sync::hub_admin_conformance_tests!(
        block_on = waymark_sync::postgres::testing::block_on,
        hub = waymark_sync::postgres::testing::TestHub::create("conformance").await
    );
}

const SPACE: &str = "team";

// ---------------------------------------------------------------------------
// Migrations and connecting
// ---------------------------------------------------------------------------

#[test]
fn migrate_is_idempotent_and_refuses_a_newer_schema() {
    block_on(async {
        let db = TestDatabase::create("migrate").await;
        let unmigrated = PostgresHub::connect(&db.url().to_string()).await.unwrap_err();
        assert!(
            matches!(&unmigrated, HubError::Other(m) if m.contains("no waymark schema")),
            "{unmigrated}"
        );
        let hub = PostgresHub::new(db.url().clone(), HubOptions::default()).unwrap();
        assert_eq!(hub.schema_version().await.unwrap(), 0);
        assert_eq!(hub.migrate().await.unwrap(), HUB_SCHEMA_VERSION);
        assert_eq!(hub.migrate().await.unwrap(), HUB_SCHEMA_VERSION, "again: nothing to do");
        let connected = PostgresHub::connect(&db.url().to_string()).await.unwrap();
        connected.push(SPACE, &run_of(ReplicaId::mint(), 2)).await.unwrap();

        let raw = db.raw_client().await;
        raw.batch_execute("INSERT INTO hub_migrations (version) VALUES (999)")
            .await
            .unwrap();
        let newer = hub.migrate().await.unwrap_err();
        assert!(matches!(&newer, HubError::Other(m) if m.contains("newer")), "{newer}");
        let newer = PostgresHub::connect(&db.url().to_string()).await.unwrap_err();
        assert!(
            matches!(&newer, HubError::Other(m) if m.contains("upgrade waymark")),
            "{newer}"
        );
    });
}

#[test]
fn concurrent_migrations_agree() {
    block_on(async {
        let db = TestDatabase::create("migrate_race").await;
        let hub = || PostgresHub::new(db.url().clone(), HubOptions::default()).unwrap();
        let (h1, h2, h3, h4) = (hub(), hub(), hub(), hub());
        let results = tokio::join!(h1.migrate(), h2.migrate(), h3.migrate(), h4.migrate());
        for r in [results.0, results.1, results.2, results.3] {
            assert_eq!(r.unwrap(), HUB_SCHEMA_VERSION);
        }
    });
}

#[test]
fn credentials_never_appear_in_errors_or_debug_output() {
    block_on(async {
        let secret = "s3cr3t-hunter2";
        let server = waymark_sync::postgres::testing::server_url();
        let (host, port) = server.hosts()[0].clone();
        // A role that does not exist (the server refuses it), and a port where nothing listens.
        let refused = format!("postgres://nobody_{port}:{secret}@{host}:{port}/postgres");
        let closed = format!("postgres://postgres:{secret}@127.0.0.1:{}/postgres", free_port());
        for url in [refused, closed] {
            let error = PostgresHub::connect(&url).await.unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("***"), "the URL is shown redacted: {shown}");
            let hub = PostgresHub::new(HubUrl::parse(&url).unwrap(), HubOptions::default()).unwrap();
            assert!(!format!("{hub:?} {}", hub.url()).contains(secret));
            let pushed = hub.push(SPACE, &run_of(ReplicaId::mint(), 1)).await.unwrap_err();
            assert!(!format!("{pushed} {pushed:?}").contains(secret));
        }
        let unreachable = PostgresHub::connect(&format!("postgres://u:{secret}@127.0.0.1:{}/x", free_port()))
            .await
            .unwrap_err();
        assert!(
            unreachable.is_unreachable() && unreachable.is_retryable(),
            "{unreachable}"
        );
    });
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Debian's self-signed "snakeoil" certificate (CN and SAN `localhost`): the
/// local server's certificate (`ssl_cert_file`), and the root the test trusts.
const SNAKEOIL: &str = waymark_sync::postgres::testing::SNAKEOIL_CERT;

/// A self-signed certificate also named `localhost`, with another key.
const OTHER_ROOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/other-ca-named-localhost.pem"
);

const HOW_TO_ENABLE_TLS: &str = "the TLS tests need the test server to speak TLS with Debian's snakeoil \
     certificate: `make-ssl-cert generate-default-snakeoil` (package ssl-cert), then in postgresql.conf \
     `ssl = on`, `ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'`, \
     `ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'`, and reload the server \
     (`SELECT pg_reload_conf()`); a throwaway test cluster enables it by itself when those files exist";

/// The test database reached by the certificate's host name, `localhost`,
/// with TLS required and verified against `root`. Panics, saying how to
/// enable TLS, when the server does not offer it.
async fn tls_url(db: &TestDatabase, root: &str) -> HubUrl {
    assert!(
        std::path::Path::new(SNAKEOIL).exists(),
        "no {SNAKEOIL}; {HOW_TO_ENABLE_TLS}"
    );
    let raw = db.raw_client().await;
    let ssl: String = raw.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "the test server has ssl = off; {HOW_TO_ENABLE_TLS}");
    let port = db.url().hosts()[0].1;
    db.url()
        .with_address("localhost", port)
        .with_tls("require", Some(root))
        .unwrap()
}

/// Connections of the test database that the server sees encrypted.
async fn tls_connections(db: &TestDatabase) -> i64 {
    let raw = db.raw_client().await;
    raw.query_one(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = $1 AND s.ssl",
        &[&db.name()],
    )
    .await
    .unwrap()
    .get(0)
}

#[test]
fn a_hub_over_verified_tls_pushes_and_pulls() {
    block_on(async {
        let db = TestDatabase::create("tls").await;
        let url = tls_url(&db, SNAKEOIL).await;
        assert_eq!(url.tls_mode(), waymark_sync::TlsMode::Require);
        db.hub().await; // migrated
        assert_eq!(tls_connections(&db).await, 0);
        let hub = PostgresHub::connect_with(url, HubOptions::default()).await.unwrap();
        let run = run_of(ReplicaId::mint(), 3);
        let ack = hub.push(SPACE, &run).await.unwrap();
        assert_eq!((ack.inserted, ack.head_seq), (3, 3));
        let page = hub.pull(SPACE, 0, 10).await.unwrap();
        assert_eq!(page.changes.into_iter().map(|(_, c)| c).collect::<Vec<_>>(), run);
        assert!(
            tls_connections(&db).await >= 1,
            "the server sees the hub's idle connection encrypted"
        );

        // A sync round over it, too.
        let replica = MemoryReplica::new(ReplicaId::mint());
        let report = sync_round(&replica, &hub, SPACE, SyncOptions::default()).await.unwrap();
        assert_eq!(report.pulled, 3);
    });
}

#[test]
fn a_hub_whose_certificate_is_not_trusted_or_not_for_its_name_is_refused() {
    block_on(async {
        let db = TestDatabase::create("tls_refused").await;
        db.hub().await; // migrated, so only TLS can fail
        let wrong_root = tls_url(&db, OTHER_ROOT).await;
        let refused = PostgresHub::connect_with(wrong_root, HubOptions::default())
            .await
            .unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("TLS certificate was refused") && message.contains("sslrootcert"),
            "{message}"
        );
        assert!(!refused.is_retryable(), "retrying does not make a certificate trusted");

        // The right root, but the server reached by an address the
        // certificate does not name: refused too (the host name is checked).
        let port = db.url().hosts()[0].1;
        let by_address = db
            .url()
            .with_address("127.0.0.1", port)
            .with_tls("require", Some(SNAKEOIL))
            .unwrap();
        let refused = PostgresHub::connect_with(by_address, HubOptions::default())
            .await
            .unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("TLS certificate was refused") && message.contains("name"),
            "{message}"
        );
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_hub_keeps_bodies_byte_exact_including_nul_characters() {
    block_on(async {
        let hub = TestHub::create("bodies").await;
        let mut odd = change(
            ReplicaId::mint(),
            1,
            "r",
            json!({"title": "a\u{0}b \u{1F600}", "n": 1.5e300}),
        );
        odd.fields
            .insert("nested".into(), json!({"z": [1, {"a": null}], "a": "x"}));
        hub.push(SPACE, std::slice::from_ref(&odd)).await.unwrap();
        let page = hub.pull(SPACE, 0, 10).await.unwrap();
        assert_eq!(page.changes, vec![(1, odd.clone())]);
        let again = hub.push(SPACE, &[odd]).await.unwrap();
        assert_eq!((again.inserted, again.already_stored), (0, 1));
    });
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// T writers x N pushes give exactly T*N changes with dense seqs, and a
/// reader pulling all along sees every seq exactly once, in order.
#[test]
fn concurrent_writers_get_dense_seqs_and_a_concurrent_reader_skips_nothing() {
    const WRITERS: u64 = 8;
    const PUSHES: u64 = 25;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hub = Arc::new(TestHub::create("concurrency").await);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let hub = hub.clone();
            tasks.spawn(async move {
                let replica = ReplicaId::mint();
                let run = run_of(replica, PUSHES * 2);
                let mut at = 0usize;
                let mut pushes = 0;
                // Batches of 1-3 changes, PUSHES pushes in all, then the rest.
                while pushes < PUSHES {
                    let size = if pushes == PUSHES - 1 {
                        run.len() - at
                    } else {
                        1 + ((w + pushes) % 3) as usize
                    };
                    let size = size.min(run.len() - at).max(1);
                    hub.push(SPACE, &run[at..at + size]).await.expect("push");
                    at += size;
                    pushes += 1;
                }
                assert_eq!(at, run.len());
                run
            });
        }
        let reader_hub = hub.clone();
        let total = WRITERS * PUSHES * 2;
        let reader = tokio::spawn(async move {
            let mut cursor = 0u64;
            let mut seen = Vec::new();
            let mut pulls = 0;
            while cursor < total {
                let page = reader_hub.pull(SPACE, cursor, 7).await.expect("pull");
                pulls += 1;
                for (i, (seq, c)) in page.changes.iter().enumerate() {
                    assert_eq!(*seq, cursor + 1 + i as u64, "a page after {cursor} skipped a seq");
                    seen.push((*seq, c.dot));
                }
                if let Some(&(last, _)) = page.changes.last() {
                    cursor = last;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            (seen, pulls)
        });
        let mut written = BTreeSet::new();
        while let Some(run) = tasks.join_next().await {
            written.extend(run.unwrap().into_iter().map(|c| c.dot));
        }
        let (seen, pulls) = reader.await.unwrap();
        let elapsed = started.elapsed();

        let log = hub.pull(SPACE, 0, usize::MAX).await.unwrap();
        assert_eq!(log.head_seq, total);
        let seqs: Vec<u64> = log.changes.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "dense seqs 1..=T*N");
        let stored: BTreeSet<_> = log.changes.iter().map(|(_, c)| c.dot).collect();
        assert_eq!(stored, written, "every change stored exactly once");
        // Per replica, counters appear in order in the log.
        let mut last: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        for (_, c) in &log.changes {
            let prev = last.insert(c.dot.replica, c.dot.counter).unwrap_or(0);
            assert_eq!(c.dot.counter, prev + 1);
        }
        let in_log: Vec<_> = log.changes.iter().map(|(s, c)| (*s, c.dot)).collect();
        assert_eq!(
            seen, in_log,
            "the reader saw every seq exactly once, in order, with the same change"
        );
        eprintln!("{WRITERS} writers x {PUSHES} pushes ({total} changes) with a reader ({pulls} pulls): {elapsed:?}");
    });
}

/// Compaction in small batches while writers push to the same space: every
/// push succeeds, seqs stay dense, the floor ends at the lowest reported
/// cursor, and the snapshots plus the tail hold every change exactly as the
/// whole log folded would (a fresh replica bootstraps to that state).
#[test]
fn compaction_in_batches_beside_concurrent_pushes_loses_nothing() {
    const WRITERS: u64 = 4;
    const PUSHES: u64 = 20;
    const BEFORE: u64 = 600;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use waymark_sync::{CompactOptions, Frontier, HubAdmin};
        let hub = Arc::new(TestHub::create("compact_concurrency").await);
        let early = ReplicaId::mint();
        let history = run_of(early, BEFORE);
        for chunk in history.chunks(200) {
            hub.push(SPACE, chunk).await.expect("push");
        }
        let frontier = Frontier {
            replica: early,
            cursor: BEFORE,
            name: "early".into(),
            host: "here".into(),
        };
        hub.report(SPACE, &frontier).await.expect("report");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..WRITERS {
            let hub = hub.clone();
            tasks.spawn(async move {
                let run = run_of(ReplicaId::mint(), PUSHES);
                let mut slowest = Duration::ZERO;
                for c in &run {
                    let started = Instant::now();
                    hub.push(SPACE, std::slice::from_ref(c)).await.expect("push beside compaction");
                    slowest = slowest.max(started.elapsed());
                }
                (run, slowest)
            });
        }
        let compactor = hub.clone();
        let compacted = tokio::spawn(async move {
            let opts = CompactOptions {
                batch: 50,
                ..CompactOptions::default()
            };
            compactor.compact(SPACE, opts).await.expect("compact")
        });
        let mut pushed = Vec::new();
        let mut slowest = Duration::ZERO;
        while let Some(done) = tasks.join_next().await {
            let (run, slow) = done.unwrap();
            pushed.extend(run);
            slowest = slowest.max(slow);
        }
        let report = compacted.await.unwrap();
        assert_eq!((report.folded, report.floor), (BEFORE as usize, BEFORE));
        let total = BEFORE + WRITERS * PUSHES;
        let tail = hub.pull(SPACE, BEFORE, usize::MAX).await.unwrap();
        assert_eq!(tail.head_seq, total);
        let seqs: Vec<u64> = tail.changes.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (BEFORE + 1..=total).collect::<Vec<_>>(), "dense seqs above the floor");
        let mut all = history.clone();
        all.extend(tail.changes.iter().map(|(_, c)| c.clone()));
        let tail_dots: BTreeSet<_> = tail.changes.iter().map(|(_, c)| c.dot).collect();
        assert_eq!(tail_dots, pushed.iter().map(|c| c.dot).collect(), "every concurrent push is in the tail");
        let fresh = MemoryReplica::new(ReplicaId::mint());
        sync_round(&fresh, &*hub, SPACE, SyncOptions::default()).await.expect("bootstrap");
        let mut expected = BTreeMap::new();
        waymark_sync::snapshot::fold(&mut expected, &all);
        assert_eq!(fresh.record_states().unwrap(), expected, "snapshots plus tail = the whole log");
        eprintln!(
            "compacted {BEFORE} changes in batches of 50 beside {} single-change pushes; the slowest push took {slowest:?}",
            WRITERS * PUSHES
        );
    });
}

/// A push transaction held open in space A delays pushes to A, not to B.
#[test]
fn a_long_push_in_one_space_does_not_block_another_space() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hub = Arc::new(TestHub::create("two_spaces").await);
        let (a, b) = (ReplicaId::mint(), ReplicaId::mint());
        hub.push("A", &run_of(a, 1)).await.unwrap();
        hub.push("B", &run_of(b, 1)).await.unwrap();

        // Another client holds A's head row, as a push in progress does.
        let mut raw = hub.db.raw_client().await;
        let tx = raw.transaction().await.unwrap();
        tx.execute("UPDATE spaces SET head = head WHERE space_id = 'A'", &[])
            .await
            .unwrap();

        let blocked_hub = hub.clone();
        let blocked = tokio::spawn(async move {
            let started = Instant::now();
            let ack = blocked_hub
                .push("A", &[change(a, 2, "r2", json!({"title": "t2"}))])
                .await
                .unwrap();
            (ack, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!blocked.is_finished(), "a push to A waits for A's open transaction");

        let started = Instant::now();
        let ack_b = hub
            .push("B", &[change(b, 2, "r2", json!({"title": "t2"}))])
            .await
            .unwrap();
        let b_took = started.elapsed();
        assert_eq!(ack_b.head_seq, 2);
        assert!(b_took < Duration::from_millis(250), "B was delayed by A: {b_took:?}");
        let pulled_a = hub.pull("A", 0, 10).await.unwrap();
        assert_eq!(pulled_a.head_seq, 1, "a pull of A is not blocked either");

        tx.commit().await.unwrap();
        let (ack_a, a_took) = blocked.await.unwrap();
        assert_eq!(ack_a.head_seq, 2);
        assert!(a_took >= Duration::from_millis(300));
        eprintln!("push to B while A was held: {b_took:?}; push to A waited {a_took:?}");
    });
}

// ---------------------------------------------------------------------------
// Faults through the proxy
// ---------------------------------------------------------------------------

fn write(replica: &MemoryReplica, record: &str, value: serde_json::Value) {
    replica.write("items", record, BTreeMap::from([("title".to_owned(), value)]), 1_000);
}

const SMALL: SyncOptions = SyncOptions {
    push_batch: 3,
    page_size: 4,
};

/// Check the end state: every replica equal, nothing pending, the hub holds
/// every write exactly once with dense seqs.
async fn assert_converged(hub: &PostgresHub, replicas: &[&MemoryReplica], writes: usize) {
    let log = hub.pull(SPACE, 0, usize::MAX).await.unwrap();
    assert_eq!(log.changes.len(), writes, "every write reached the hub exactly once");
    let seqs: Vec<u64> = log.changes.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=writes as u64).collect::<Vec<_>>());
    let dots: BTreeSet<_> = log.changes.iter().map(|(_, c)| c.dot).collect();
    assert_eq!(dots.len(), writes);
    let first = replicas[0].record_states().unwrap();
    for r in replicas {
        assert_eq!(r.pending(), 0);
        assert_eq!(r.cursor().unwrap(), writes as u64);
        assert_eq!(r.record_states().unwrap(), first);
    }
}

/// Sync until a round succeeds (the fault has healed), at most a few tries.
async fn sync_ok(replica: &MemoryReplica, hub: &PostgresHub) {
    let mut last = None;
    for _ in 0..5 {
        match sync_round(replica, hub, SPACE, SMALL).await {
            Ok(_) => return,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                last = Some(e);
            }
        }
    }
    panic!("sync did not recover: {last:?}");
}

/// Cut the connection at every server reply of a round in turn (mid-push,
/// after the commit before its reply, mid-pull), once with the hub back at
/// once (the hub reconnects within the call) and once with the hub staying
/// down (the round fails): every round either succeeds or fails retryably,
/// and after healing everything converges with nothing lost or doubled.
#[test]
fn cuts_at_every_reply_of_a_round_lose_nothing() {
    block_on(async {
        let db = TestDatabase::create("proxy_cuts").await;
        let proxy = FaultProxy::start(db.url());
        let hub = db.hub_at(&proxy.url()).await;
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        let mut writes = 0;
        let mut failures = 0;
        let started = Instant::now();
        for stays_down in [false, true] {
            for n in 1..=30u64 {
                for i in 0..4 {
                    write(&a, &format!("a{n}-{i}-{stays_down}"), json!(n));
                    write(&b, &format!("r{i}"), json!(format!("b{n}")));
                    writes += 2;
                }
                if stays_down {
                    proxy.cut_and_refuse_at_reply(n);
                } else {
                    proxy.cut_at_reply(n);
                }
                for replica in [&a, &b] {
                    if let Err(e) = sync_round(replica, &hub, SPACE, SMALL).await {
                        assert!(e.is_retryable(), "cut at reply {n}: {e}");
                        // With the hub back at once, a cut of a reused
                        // connection is absorbed by reconnecting; a cut while
                        // connecting is not.
                        failures += 1;
                    }
                }
                proxy.heal();
            }
        }
        assert!(
            proxy.cuts() >= 50,
            "the cuts landed inside rounds ({} fired)",
            proxy.cuts()
        );
        assert!(failures >= 25, "rounds failed while the hub stayed down ({failures})");
        for _ in 0..2 {
            sync_ok(&a, &hub).await;
            sync_ok(&b, &hub).await;
        }
        assert_converged(&hub, &[&a, &b], writes).await;
        eprintln!(
            "60 rounds x 2 replicas, {} cuts, {failures} failed rounds: {:?}",
            proxy.cuts(),
            started.elapsed()
        );
    });
}

/// A stalled connection times out as unreachable, a reset one fails
/// retryably, a refusing hub is unreachable; after healing all converges.
#[test]
fn stalls_resets_and_a_down_hub_heal_and_converge() {
    block_on(async {
        let db = TestDatabase::create("proxy_stalls").await;
        let proxy = FaultProxy::start(db.url());
        let hub = db.hub_at(&proxy.url()).await;
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        let mut writes = 0;
        for i in 0..10 {
            write(&a, &format!("a{i}"), json!(i));
            writes += 1;
        }
        sync_ok(&a, &hub).await;

        // Stall mid-push: the push times out; the space must not stay locked.
        for i in 0..5 {
            write(&b, &format!("b{i}"), json!(i));
            writes += 1;
        }
        proxy.stall_at_reply(2); // BEGIN answered, the space's row locked, then silence
        let started = Instant::now();
        let stalled = sync_round(&b, &hub, SPACE, SMALL).await.unwrap_err();
        assert!(stalled.is_unreachable(), "{stalled}");
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
        proxy.heal();
        // The stalled connection was dropped, and its transaction with it:
        // the space is not left locked.
        let direct = db.hub().await;
        let t = Instant::now();
        direct.push(SPACE, &run_of(ReplicaId::mint(), 1)).await.unwrap();
        writes += 1;
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

        // Stall mid-pull: b has nothing left to push... once its outbox is
        // drained; stall at its second pull reply.
        sync_ok(&b, &hub).await;
        for i in 10..24 {
            write(&a, &format!("a{i}"), json!(i));
            writes += 1;
        }
        sync_ok(&a, &hub).await;
        let cursor = b.cursor().unwrap();
        proxy.stall_at_reply(2);
        let stalled = sync_round(&b, &hub, SPACE, SMALL).await.unwrap_err();
        assert!(stalled.is_unreachable(), "{stalled}");
        let moved = b.cursor().unwrap();
        assert!(
            moved > cursor,
            "the pages before the stall were applied ({cursor} -> {moved})"
        );
        proxy.heal();

        // Reset everything while a round runs.
        for i in 5..9 {
            write(&b, &format!("b{i}"), json!(i));
            writes += 1;
        }
        let resetter = async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            proxy.reset();
        };
        let (round, ()) = tokio::join!(sync_round(&b, &hub, SPACE, SMALL), resetter);
        if let Err(e) = round {
            assert!(e.is_retryable(), "{e}");
        }
        proxy.reset();

        // The hub is down for a while.
        proxy.refuse();
        write(&a, "down", json!("written while the hub was down"));
        writes += 1;
        let down = sync_round(&a, &hub, SPACE, SMALL).await.unwrap_err();
        assert!(down.is_unreachable(), "{down}");
        assert_eq!(a.pending(), 1);
        proxy.heal();

        for _ in 0..2 {
            sync_ok(&a, &hub).await;
            sync_ok(&b, &hub).await;
        }
        assert_converged(&hub, &[&a, &b], writes).await;
    });
}

// ---------------------------------------------------------------------------
// One role per team (docs/hub.md): row-level security on space_id
// ---------------------------------------------------------------------------

/// The row-level security recipe of docs/hub.md confines a team's role to
/// its spaces: it reads and writes its own, reads nothing of another's, and
/// cannot push into another's.
#[test]
fn row_level_security_confines_a_team_role_to_its_spaces() {
    block_on(async {
        let keeper = TestDatabase::create("rls_admin").await;
        let db = TestDatabase::create("rls").await;
        let owner = db.hub().await;
        let role = format!("wm_team_{}", &db.name()[db.name().len() - 8..]);
        let raw = db.raw_client().await;
        raw.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT CONNECT ON DATABASE \"{db}\" TO {role};
             GRANT USAGE ON SCHEMA public TO {role};
             CREATE TABLE space_members (space_id text NOT NULL, role_name name NOT NULL,
                                         PRIMARY KEY (space_id, role_name));
             INSERT INTO space_members VALUES ('team-a', '{role}');
             ALTER TABLE spaces ENABLE ROW LEVEL SECURITY;
             ALTER TABLE changes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY member ON spaces USING (EXISTS (SELECT 1 FROM space_members m
                 WHERE m.space_id = spaces.space_id AND m.role_name = current_user));
             CREATE POLICY member ON changes USING (EXISTS (SELECT 1 FROM space_members m
                 WHERE m.space_id = changes.space_id AND m.role_name = current_user));
             ALTER TABLE replicas ENABLE ROW LEVEL SECURITY;
             ALTER TABLE folded ENABLE ROW LEVEL SECURITY;
             ALTER TABLE snapshots ENABLE ROW LEVEL SECURITY;
             CREATE POLICY member ON replicas USING (EXISTS (SELECT 1 FROM space_members m
                 WHERE m.space_id = replicas.space_id AND m.role_name = current_user));
             CREATE POLICY member ON folded USING (EXISTS (SELECT 1 FROM space_members m
                 WHERE m.space_id = folded.space_id AND m.role_name = current_user));
             CREATE POLICY member ON snapshots USING (EXISTS (SELECT 1 FROM space_members m
                 WHERE m.space_id = snapshots.space_id AND m.role_name = current_user));
             GRANT SELECT, INSERT, UPDATE, DELETE ON spaces, changes, replicas, folded, snapshots TO {role};
             GRANT SELECT ON hub_migrations, space_members TO {role};",
            db = db.name()
        ))
        .await
        .unwrap();
        let (host, port) = db.url().hosts()[0].clone();
        let team_url = format!("postgres://{role}@{host}:{}/{}", port, db.name());
        let team = PostgresHub::connect(&team_url).await.unwrap();

        let theirs = run_of(ReplicaId::mint(), 2);
        owner.push("team-b", &theirs).await.unwrap();
        let mine = run_of(ReplicaId::mint(), 3);
        assert_eq!(team.push("team-a", &mine).await.unwrap().head_seq, 3);
        assert_eq!(team.pull("team-a", 0, 10).await.unwrap().changes.len(), 3);

        let peek = team.pull("team-b", 0, 10).await.unwrap();
        assert!(
            peek.changes.is_empty() && peek.head_seq == 0,
            "another team's space reads as empty"
        );
        let refused = team.push("team-b", &run_of(ReplicaId::mint(), 1)).await.unwrap_err();
        assert!(!refused.is_retryable(), "{refused}");
        let refused = team.push("team-c", &run_of(ReplicaId::mint(), 1)).await.unwrap_err();
        assert!(!refused.is_retryable(), "{refused}");
        assert_eq!(owner.pull("team-b", 0, 10).await.unwrap().changes.len(), 2, "untouched");
        assert_eq!(owner.pull("team-c", 0, 10).await.unwrap().head_seq, 0);

        drop((team, owner, raw));
        drop(db);
        keeper
            .raw_client()
            .await
            .batch_execute(&format!("DROP ROLE {role}"))
            .await
            .unwrap();
    });
}

// ---------------------------------------------------------------------------
// Announcements (LISTEN/NOTIFY)
// ---------------------------------------------------------------------------

/// Each push that stores something is announced once on its space's
/// channel with the new head; a resend, an empty push and another space's
/// push are not; a dropped connection ends the listener with an error.
#[test]
fn a_push_is_announced_once_on_its_spaces_channel() {
    block_on(async {
        let db = TestDatabase::create("listen").await;
        let hub = db.hub().await;
        let other = "a space with spaces and a name far longer than fifty bytes, so its channel is hashed";
        let mut listener = hub.listen(SPACE).await.unwrap();
        let mut other_listener = hub.listen(other).await.unwrap();

        let run = run_of(ReplicaId::mint(), 3);
        hub.push(SPACE, &run).await.unwrap();
        assert_eq!(listener.next().await.unwrap(), Some(3));
        hub.push(SPACE, &run).await.unwrap(); // a resend stores nothing
        hub.push(SPACE, &[]).await.unwrap();
        assert!(
            quiet(&mut listener).await,
            "a push that stored nothing is not announced"
        );
        assert!(
            quiet(&mut other_listener).await,
            "another space's push is not announced"
        );

        hub.push(other, &run_of(ReplicaId::mint(), 2)).await.unwrap();
        assert_eq!(other_listener.next().await.unwrap(), Some(2));
        assert!(quiet(&mut listener).await);

        // The listening connection ends: the listener says so.
        let raw = db.raw_client().await;
        raw.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            &[&db.name()],
        )
        .await
        .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .unwrap();
        assert!(ended.unwrap_err().is_unreachable());
    });
}

/// Nothing announced on `listener` within 300 ms.
async fn quiet(listener: &mut waymark_sync::postgres::HubListener) -> bool {
    tokio::time::timeout(Duration::from_millis(300), listener.next())
        .await
        .is_err()
}

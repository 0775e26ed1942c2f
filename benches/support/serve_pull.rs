//! `cargo bench --bench mcp -- --sync-pull`: how long tool calls take in a
//! `waymark serve` whose sync worker pulls a big log meanwhile (issue 11).
//!
//! A source store of 100,000 work items (`WAYMARK_BENCH_PULL_CHANGES`
//! changes it) pushes its 100,000 changes into a space of a fresh Postgres
//! database (the tests' server, `WAYMARK_TEST_DATABASE_URL`). Then the
//! release binary serves an empty store (one vendor, one session) with that
//! hub configured: its worker starts at once and pulls the whole log, while
//! this process calls `query_vendor_status` and `create_work_item` in turn,
//! back to back, over stdio, until the worker reports its first successful
//! round (`sync` with action `status`, every 50 pairs, not timed). Then the
//! same calls again with the worker idle, on the same (now big) store: the
//! floor. `WAYMARK_BENCH_BIN` runs another binary (an older build, for a
//! before/after comparison).

use waymark_sync::SyncOptions;
use waymark_sync::postgres::testing::TestDatabase;
use waymark_sync::round::{RoundReport, push_outbox};

use super::*;

const PULL_CHANGES: usize = 100_000;
const SPACE: &str = "serve_pull";
const AFTER_PAIRS: usize = 1_000;
const STATUS_EVERY: usize = 50;

/// The test database's URL with its credentials, for the child process.
fn url_of(db: &TestDatabase) -> String {
    let shown = db.url().to_string();
    if !shown.contains("***") {
        return shown;
    }
    let raw = std::env::var("WAYMARK_TEST_DATABASE_URL").expect("a URL with a password comes from the environment");
    let (base, query) = raw.split_once('?').map_or((raw.as_str(), None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database in the URL");
    format!(
        "{server}/{}{}",
        db.name(),
        query.map(|q| format!("?{q}")).unwrap_or_default()
    )
}

/// `n` flat tasks.
fn document(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + i as u128).to_string(),
                "item_type": "task",
                "title": format!("hub's task {i} of the serve-pull bench"),
                "status": if i % 3 == 0 { "completed" } else { "active" },
                "priority": (i % 5) as i64,
            })
        })
        .collect();
    json!({ "work_items": items })
}

fn summary(label: &str, v: &mut [Duration]) -> String {
    if v.is_empty() {
        return format!("{label}: no calls");
    }
    let (m, p) = (median(v), p99(v));
    format!(
        "{label}: {} calls, median {}, p99 {}, max {}",
        v.len(),
        us(m),
        us(p),
        us(v[v.len() - 1])
    )
}

pub fn run(bin: &Path) {
    let n = std::env::var("WAYMARK_BENCH_PULL_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(scale(PULL_CHANGES));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = runtime.block_on(TestDatabase::create("serve_pull"));
    let url = url_of(&db);

    // The hub's log: n changes from another store.
    let started = Instant::now();
    let source_dir = tempfile::tempdir().expect("temp dir");
    let source = Tracker::open(source_dir.path()).expect("open source");
    source.import_json(AUTHOR, document(n)).expect("import");
    let hub = runtime.block_on(db.hub());
    let mut pushed = RoundReport::default();
    runtime
        .block_on(push_outbox(
            source.store(),
            &hub,
            SPACE,
            SyncOptions::default(),
            &mut pushed,
        ))
        .expect("push");
    assert_eq!(pushed.pushed, n);
    eprintln!(
        "[sync-pull] {n} changes in the hub's log, built in {:.1?}",
        started.elapsed()
    );

    // The serving store: a vendor to query and a session to create under.
    let dir = tempfile::tempdir().expect("temp dir");
    let session = {
        let t = Tracker::open(dir.path()).expect("open");
        t.create_vendor(
            AUTHOR,
            waymark::ops::NewVendor {
                name: "EPSON".into(),
                ..Default::default()
            },
        )
        .expect("vendor");
        t.create_work_item(
            AUTHOR,
            NewWorkItem {
                item_type: "session".into(),
                title: "serve-pull bench".into(),
                ..Default::default()
            },
        )
        .expect("session")
        .id
    };
    let vargs = json!({"name": "epson"});
    let status_args = json!({"action": "status"});

    let started = Instant::now();
    let mut server = StdioClient::spawn_with(bin, dir.path(), &[("WAYMARK_HUB_URL", &url), ("WAYMARK_SPACE", SPACE)]);
    server.handshake();
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let mut k = 0;
    let pulled_in = loop {
        for _ in 0..STATUS_EVERY {
            k += 1;
            reads.push(server.call("query_vendor_status", &vargs));
            writes.push(server.call("create_work_item", &create_args(&session, k)));
        }
        let health = server.call_value("sync", &status_args);
        let health = &health["result"]["structuredContent"];
        if let Some(e) = health["last_error"].as_str() {
            eprintln!("[sync-pull] the worker reports: {e}");
        }
        if health["last_sync_at"].is_string() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the worker did not finish its pull in 10 minutes: {health}"
        );
    };
    let (mut after_reads, mut after_writes) = (Vec::new(), Vec::new());
    for _ in 0..scale(AFTER_PAIRS) {
        k += 1;
        after_reads.push(server.call("query_vendor_status", &vargs));
        after_writes.push(server.call("create_work_item", &create_args(&session, k)));
    }
    server.close();
    let conn = rusqlite::Connection::open(dir.path().join(waymark::store::DB_FILE)).expect("open raw");
    let items: i64 = conn
        .query_row("SELECT count(*) FROM work_items", [], |r| r.get(0))
        .expect("count");
    assert!(items as usize >= n, "the pull arrived ({items} work items)");

    let mut during: Vec<Duration> = reads.iter().chain(&writes).copied().collect();
    let mut after: Vec<Duration> = after_reads.iter().chain(&after_writes).copied().collect();
    eprintln!("[sync-pull] binary {}", bin.display());
    eprintln!("[sync-pull] serve start to the worker's first successful round (pulling {n} changes): {pulled_in:.2?}");
    println!();
    println!("| tool calls, back to back over stdio | during the pull | after it (worker idle, same store) |");
    println!("|---|---|---|");
    for (label, d, a) in [
        ("all", &mut during, &mut after),
        ("query_vendor_status", &mut reads, &mut after_reads),
        ("create_work_item", &mut writes, &mut after_writes),
    ] {
        println!(
            "| {label} | {} | {} |",
            summary("", d).trim_start_matches(": "),
            summary("", a).trim_start_matches(": ")
        );
    }
    let p = p99(&mut during);
    println!();
    println!(
        "tool call p99 during a {n}-change pull: {} (target < 5 ms: {})",
        us(p),
        if p < Duration::from_millis(5) {
            "met"
        } else {
            "**not met**"
        }
    );
}

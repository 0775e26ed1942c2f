//! The speed figures of issue 2, each beside a floor: a raw rusqlite
//! statement of the same shape on the same database file, measured in the
//! same run. See BENCHMARKS.md for the table and how to read it.
//!
//! Run with `cargo bench --bench store`. Under `cargo test --benches` (no
//! `--bench` flag) the fixtures are built 100 times smaller, so the run stays
//! a quick smoke test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use divan::Bencher;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use uuid::Uuid;
use waymark::Tracker;
use waymark::ops::{NewWorkItem, ReadyQuery, WorkItemFilter, WorkItemUpdate};
use waymark::store::id::{get_id, get_opt_id, sql};
use waymark::time::Timestamp;

fn main() {
    divan::main();
}

/// The author of every benchmark write.
const AUTHOR: &str = "bench";

/// Sizes of the big fixture (divided by 100 outside `--bench` runs).
const WORK_ITEMS: usize = 100_000;
const VENDORS: usize = 1_000;
const DEPLOYMENTS: usize = 10_000;
const DEPENDENCIES: usize = 50_000;

/// Sizes of the status report's fixture.
const REPORT_ITEMS: usize = 1_200;
const REPORT_VENDORS: usize = 45;
const REPORT_DEPLOYMENTS: usize = 50;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::*;

// Fixtures.

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    tracker: Tracker,
    /// A vendor's name as stored, and as a user types it.
    vendor_name: String,
    vendor_query: String,
    /// A session whose subtree reaches depth 5.
    session: String,
    /// An item at depth 3 with descendants to depth 5.
    deep_item: String,
    /// A session the write benchmarks add items under (not `session`).
    write_parent: String,
    /// A task the update benchmark edits.
    update_target: String,
}

impl Fixture {
    fn db(&self) -> PathBuf {
        self.dir.join(waymark::store::DB_FILE)
    }
}

/// A raw connection with the same pragmas as the store's.
fn raw(db: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("open raw connection");
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("synchronous");
    conn.set_prepared_statement_cache_capacity(64);
    conn
}

fn count(conn: &Connection, sql: &str) -> usize {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql) as usize
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Build a store from a generated document; returns its directory and the
/// generated items.
fn build(seed: &str, sizes: (usize, usize, usize, usize)) -> (tempfile::TempDir, Tracker, Vec<Item>) {
    let (n_items, n_vendors, n_deployments, n_deps) = sizes;
    let started = Instant::now();
    let (doc, items) = document(seed, n_items, n_vendors, n_deployments, n_deps);
    let generated = started.elapsed();
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = Tracker::open(dir.path()).expect("open tracker");
    // WAYMARK_BENCH_PUBLISHED=1: a store bound to a hub from the start (that
    // never reaches it), whose every change waits in the outbox; otherwise
    // a store that never had a hub, which keeps no outbox.
    if std::env::var_os("WAYMARK_BENCH_PUBLISHED").is_some() {
        tracker.store().bind_hub("bench#space").expect("bind");
        tracker.store().hub_answered().expect("publish");
    }
    let summary = tracker.import_json(AUTHOR, doc).expect("import fixture");
    eprintln!(
        "[fixture {seed}] generated in {generated:.1?}, imported in {:.1?}: {summary:?}",
        started.elapsed() - generated
    );
    let conn = raw(&dir.path().join(waymark::store::DB_FILE));
    let live = "SELECT count(*) FROM work_items WHERE deleted_at IS NULL";
    assert_eq!(count(&conn, live), n_items, "work items");
    assert_eq!(count(&conn, "SELECT count(*) FROM vendors"), n_vendors, "vendors");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM deployments"),
        n_deployments,
        "deployments"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM dependencies WHERE removed = 0"),
        n_deps,
        "dependencies"
    );
    assert_eq!(count(&conn, "SELECT max(depth) FROM work_items"), 5, "deepest level");
    (dir, tracker, items)
}

/// The store's size on disk after a checkpoint, with the biggest tables.
fn report_size(db: &Path) {
    let conn = raw(db);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let (main, wal_len) = (file_len(db), file_len(&wal));
    eprintln!(
        "[store size] waymark.db {:.1} MiB + waymark.db-wal {:.1} MiB = {:.1} MiB ({} bytes; target < 100 MB)",
        mib(main),
        mib(wal_len),
        mib(main + wal_len),
        main + wal_len
    );
    let mut stmt = conn
        .prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC LIMIT 12")
        .expect("dbstat");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("dbstat rows");
    for row in rows {
        let (name, bytes) = row.expect("dbstat row");
        eprintln!("[store size]   {name:<32} {:>7.1} MiB", mib(bytes as u64));
    }
}

fn big() -> &'static Fixture {
    static BIG: OnceLock<Fixture> = OnceLock::new();
    BIG.get_or_init(|| {
        let sizes = (
            scale(WORK_ITEMS),
            scale(VENDORS),
            scale(DEPLOYMENTS),
            scale(DEPENDENCIES),
        );
        let (dir, tracker, items) = build("big", sizes);
        let db = dir.path().join(waymark::store::DB_FILE);
        report_size(&db);
        // WAYMARK_BENCH_KEEP=<dir>: keep a copy of the fresh store there
        // (for EXPLAIN QUERY PLAN and the like).
        if let Some(keep) = std::env::var_os("WAYMARK_BENCH_KEEP") {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).expect("keep dir");
            std::fs::copy(&db, keep.join(waymark::store::DB_FILE)).expect("keep a copy");
            eprintln!("[fixture big] copied to {}", keep.display());
        }
        // The first session (its subtree reaches depth 5), an item at depth 3
        // under it with the deepest chain, and another session for writes.
        let session = items.iter().position(|i| i.depth == 1).expect("a session");
        let deep5 = items.iter().position(|i| i.depth == 5).expect("an item at depth 5");
        let mut deep3 = deep5;
        while items[deep3].depth > 3 {
            deep3 = items[deep3].parent.expect("parent");
        }
        let write_parent = items.iter().rposition(|i| i.depth == 1).expect("a session");
        let update_target = items.iter().rposition(|i| i.depth == 2).expect("a task");
        let vendor_name: String = raw(&db)
            .query_row(
                "SELECT name FROM vendors ORDER BY name_key LIMIT 1 OFFSET ?1",
                [(sizes.1 / 2) as i64],
                |r| r.get(0),
            )
            .expect("a vendor");
        let vendor_query = format!("  {}  ", vendor_name.to_uppercase());
        Fixture {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            tracker,
            vendor_name,
            vendor_query,
            session: items[session].id.clone(),
            deep_item: items[deep3].id.clone(),
            write_parent: items[write_parent].id.clone(),
            update_target: items[update_target].id.clone(),
        }
    })
}

struct Small {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    tracker: Tracker,
}

fn small() -> &'static Small {
    static SMALL: OnceLock<Small> = OnceLock::new();
    SMALL.get_or_init(|| {
        let (dir, tracker, _) = build(
            "report",
            (REPORT_ITEMS, REPORT_VENDORS, REPORT_DEPLOYMENTS, REPORT_ITEMS / 4),
        );
        Small {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            tracker,
        }
    })
}

type RowTuple = (String, String, String, String, i64, Option<String>, String, i64);

fn row_tuple(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowTuple> {
    Ok((
        get_id(r, 0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        get_opt_id(r, 5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

const ROW_COLUMNS: &str = "id, title, item_type, status, priority, parent_id, updated_at, version";

// ---------------------------------------------------------------------------
// Vendor status by name, in any case.

#[divan::bench_group(sample_count = 200, max_time = 2)]
mod vendor_by_name {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = big();
        let v = f.tracker.query_vendor_status(&f.vendor_query).expect("vendor");
        assert_eq!(v.name, f.vendor_name);
        bencher.bench(|| f.tracker.query_vendor_status(&f.vendor_query).expect("vendor"));
    }

    /// `SELECT * FROM vendors WHERE name_key = ?` on a cached statement.
    #[divan::bench]
    fn floor(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| {
            let key = f.vendor_query.trim().to_lowercase();
            conn.prepare_cached(
                "SELECT id, name, status, extractor_version, metadata, deleted_at, created_at, created_by, \
                 updated_at, updated_by, version FROM vendors WHERE name_key = ?1 AND deleted_at IS NULL",
            )
            .expect("prepare")
            .query_row([key], |r| {
                let metadata: String = r.get(4)?;
                Ok((get_id(r, 0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, metadata))
            })
            .expect("vendor")
        });
    }
}

// ---------------------------------------------------------------------------
// A work item with its ancestors and descendants (to depth 5).

/// Raw: the item, its ancestors by a recursive query on parent_id, its
/// descendants by path range (at most 100 as `query_work_item` shows, in tree order).
fn raw_hierarchy(conn: &Connection, id: &str) -> (String, Vec<RowTuple>, Vec<RowTuple>) {
    let (item, path, key): (String, String, i64) = conn
        .prepare_cached(
            "SELECT id, item_type, title, description, status, priority, parent_id, path, depth, branch_name, \
             commit_hash, pr_number, metadata, deleted_at, archived_at, created_at, created_by, updated_at, \
             updated_by, version, key FROM work_items WHERE id = ?1",
        )
        .expect("prepare")
        .query_row([sql(id)], |r| Ok((r.get(2)?, r.get(7)?, r.get(20)?)))
        .expect("item");
    // The subtree: paths (the ancestors' keys) that start with this item's.
    let below = format!("{path}{key}/");
    let ancestors = conn
        .prepare_cached(&format!(
            "WITH RECURSIVE up(id, n) AS (
                 SELECT parent_id, 1 FROM work_items WHERE id = ?1
                 UNION ALL
                 SELECT w.parent_id, up.n + 1 FROM work_items w JOIN up ON w.id = up.id
             )
             SELECT {ROW_COLUMNS} FROM work_items WHERE id IN (SELECT id FROM up) ORDER BY depth"
        ))
        .expect("prepare")
        .query_map([sql(id)], row_tuple)
        .expect("ancestors")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("ancestors");
    let descendants = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM work_items WHERE path >= ?1 AND path < substr(?1, 1, length(?1) - 1) || '0'
             ORDER BY path, key LIMIT 100"
        ))
        .expect("prepare")
        .query_map([&below], row_tuple)
        .expect("descendants")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("descendants");
    (item, ancestors, descendants)
}

#[divan::bench_group(sample_count = 200, max_time = 2)]
mod item_with_tree {
    use super::*;

    /// A session: 1 ancestor, ~100 descendants down to depth 5.
    #[divan::bench]
    fn waymark_session(bencher: Bencher) {
        let f = big();
        let d = f.tracker.query_work_item(&f.session, true, false).expect("query");
        let (_, a, desc) = raw_hierarchy(&raw(&f.db()), &f.session);
        assert_eq!((d.ancestors.len(), d.descendants.len()), (a.len(), desc.len()));
        assert_eq!(
            d.descendants.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            desc.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()
        );
        assert!(d.descendants.len() >= 50, "session subtree: {}", d.descendants.len());
        bencher.bench(|| f.tracker.query_work_item(&f.session, true, false).expect("query"));
    }

    #[divan::bench]
    fn floor_session(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| raw_hierarchy(&conn, &f.session));
    }

    /// An item at depth 3: 3 ancestors, descendants at depths 4 and 5.
    #[divan::bench]
    fn waymark_depth3(bencher: Bencher) {
        let f = big();
        let d = f.tracker.query_work_item(&f.deep_item, true, false).expect("query");
        assert_eq!(d.ancestors.len(), 3);
        assert!(!d.descendants.is_empty());
        bencher.bench(|| f.tracker.query_work_item(&f.deep_item, true, false).expect("query"));
    }

    #[divan::bench]
    fn floor_depth3(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        let (_, a, _) = raw_hierarchy(&conn, &f.deep_item);
        assert_eq!(a.len(), 3);
        bencher.bench_local(|| raw_hierarchy(&conn, &f.deep_item));
    }

    /// The session again, with its dependencies too (what `item show` asks).
    #[divan::bench]
    fn waymark_session_with_dependencies(bencher: Bencher) {
        let f = big();
        bencher.bench(|| f.tracker.query_work_item(&f.session, true, true).expect("query"));
    }
}

// ---------------------------------------------------------------------------
// Create and update a work item, committed.

#[divan::bench_group(sample_count = 100, sample_size = 10, max_time = 5)]
mod write {
    use super::*;

    #[divan::bench]
    fn waymark_create(bencher: Bencher) {
        let f = big();
        let mut n = 0u64;
        bencher.bench_local(|| {
            n += 1;
            f.tracker
                .create_work_item(
                    AUTHOR,
                    NewWorkItem {
                        item_type: "task".into(),
                        title: format!("benchmark task {n}"),
                        parent_id: Some(f.write_parent.clone()),
                        ..NewWorkItem::default()
                    },
                )
                .expect("create")
        });
    }

    /// `BEGIN IMMEDIATE; INSERT INTO work_items ...; COMMIT`.
    #[divan::bench]
    fn floor_create(bencher: Bencher) {
        let f = big();
        let mut conn = raw(&f.db());
        let parent_path: String = conn
            .query_row(
                "SELECT path || key || '/' FROM work_items WHERE id = ?1",
                [sql(&f.write_parent)],
                |r| r.get(0),
            )
            .expect("parent");
        let mut n = 0u64;
        bencher.bench_local(|| {
            n += 1;
            let id = Uuid::now_v7().to_string();
            let now = Timestamp::now().to_string();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begin");
            tx.prepare_cached(
                "INSERT INTO work_items (id, item_type, title, status, priority, parent_id, path, depth, metadata,
                     created_at, created_by, updated_at, updated_by, version, state)
                 VALUES (?1, 'task', ?2, 'active', 2, ?3, ?4, 2, '{}', ?5, 'bench', ?5, 'bench', 1, '{}')",
            )
            .expect("prepare")
            .execute(rusqlite::params![
                sql(&id),
                format!("floor task {n}"),
                sql(&f.write_parent),
                parent_path,
                now
            ])
            .expect("insert");
            tx.commit().expect("commit");
        });
    }

    #[divan::bench]
    fn waymark_update(bencher: Bencher) {
        let f = big();
        let mut version = f.tracker.get_work_item(&f.update_target).expect("item").version;
        let mut n = 0u64;
        bencher.bench_local(|| {
            n += 1;
            let item = f
                .tracker
                .update_work_item(
                    AUTHOR,
                    WorkItemUpdate {
                        id: f.update_target.clone(),
                        version,
                        title: Some(format!("updated benchmark title {}", n % 2)),
                        ..WorkItemUpdate::default()
                    },
                )
                .expect("update");
            version = item.version;
            item
        });
    }

    /// `BEGIN IMMEDIATE; UPDATE work_items SET title, updated_*, version; COMMIT`.
    #[divan::bench]
    fn floor_update(bencher: Bencher) {
        let f = big();
        let mut conn = raw(&f.db());
        let mut n = 0u64;
        bencher.bench_local(|| {
            n += 1;
            let now = Timestamp::now().to_string();
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begin");
            tx.prepare_cached(
                "UPDATE work_items SET title = ?2, updated_at = ?3, updated_by = 'bench', version = version + 1
                 WHERE id = ?1",
            )
            .expect("prepare")
            .execute(rusqlite::params![
                sql(&f.update_target),
                format!("floor title {}", n % 2),
                now
            ])
            .expect("update");
            tx.commit().expect("commit");
        });
    }
}

// ---------------------------------------------------------------------------
// A filtered page of 50 work items, and a full-text query.

fn raw_page(conn: &Connection, filters: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<RowTuple> {
    conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM work_items WHERE {filters} AND archived_at IS NULL AND deleted_at IS NULL
         ORDER BY key LIMIT 51"
    ))
    .expect("prepare")
    .query_map(rusqlite::params_from_iter(args), row_tuple)
    .expect("page")
    .collect::<rusqlite::Result<Vec<_>>>()
    .expect("page")
}

#[divan::bench_group(sample_count = 100, max_time = 3)]
mod list_page {
    use super::*;

    fn active_tasks() -> WorkItemFilter {
        WorkItemFilter {
            item_type: Some("task".into()),
            status: Some("active".into()),
            limit: Some(50),
            ..WorkItemFilter::default()
        }
    }

    /// Active tasks (about a third of the store match), first page.
    #[divan::bench]
    fn waymark_type_status(bencher: Bencher) {
        let f = big();
        let page = f.tracker.list_work_items(active_tasks()).expect("list");
        assert_eq!(page.items.len(), 50);
        eprintln!("[list] active tasks: total_count {}", page.total_count);
        bencher.bench(|| f.tracker.list_work_items(active_tasks()).expect("list"));
    }

    #[divan::bench]
    fn floor_type_status(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        assert_eq!(
            raw_page(&conn, "item_type = ?1 AND status = ?2", &[&"task", &"active"]).len(),
            51
        );
        bencher.bench_local(|| raw_page(&conn, "item_type = ?1 AND status = ?2", &[&"task", &"active"]));
    }

    /// The children of one session.
    #[divan::bench]
    fn waymark_parent(bencher: Bencher) {
        let f = big();
        let filter = || WorkItemFilter {
            parent_id: Some(f.session.clone()),
            limit: Some(50),
            ..WorkItemFilter::default()
        };
        bencher.bench(|| f.tracker.list_work_items(filter()).expect("list"));
    }

    #[divan::bench]
    fn floor_parent(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| raw_page(&conn, "parent_id = ?1", &[&sql(&f.session)]));
    }
}

#[divan::bench_group(sample_count = 100, max_time = 3)]
mod full_text {
    use super::*;

    fn search(text: &str) -> WorkItemFilter {
        WorkItemFilter {
            text: Some(text.into()),
            limit: Some(50),
            ..WorkItemFilter::default()
        }
    }

    fn raw_search(conn: &Connection, query: &str) -> Vec<RowTuple> {
        conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM work_items WHERE rowid IN
                 (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH ?1)
               AND archived_at IS NULL AND deleted_at IS NULL
             ORDER BY key LIMIT 51"
        ))
        .expect("prepare")
        .query_map([query], row_tuple)
        .expect("search")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("search")
    }

    /// One common word (about 4% of items match).
    #[divan::bench]
    fn waymark_one_word(bencher: Bencher) {
        let f = big();
        let page = f.tracker.list_work_items(search("parser")).expect("search");
        eprintln!("[fts] \"parser\": total_count {}", page.total_count);
        assert_eq!(page.items.len(), 50);
        bencher.bench(|| f.tracker.list_work_items(search("parser")).expect("search"));
    }

    #[divan::bench]
    fn floor_one_word(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| raw_search(&conn, "\"parser\"*"));
    }

    /// Two words that must both appear (a few hundred items match).
    #[divan::bench]
    fn waymark_two_words(bencher: Bencher) {
        let f = big();
        let page = f.tracker.list_work_items(search("timeout retry")).expect("search");
        eprintln!("[fts] \"timeout retry\": total_count {}", page.total_count);
        bencher.bench(|| f.tracker.list_work_items(search("timeout retry")).expect("search"));
    }

    #[divan::bench]
    fn floor_two_words(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| raw_search(&conn, "\"timeout\"* \"retry\"*"));
    }
}

// ---------------------------------------------------------------------------
// The first 50 ready items, with 50,000 dependencies in the store.

/// The ready filter, as the operation writes it.
const READY: &str = "w.status = 'active' AND w.deleted_at IS NULL AND w.archived_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM dependencies d JOIN work_items b ON b.id = d.target_id
        WHERE d.source_id = w.id AND d.removed = 0 AND d.dependency_type = 'depends_on'
          AND b.status != 'completed' AND b.deleted_at IS NULL)
    AND NOT EXISTS (SELECT 1 FROM dependencies d JOIN work_items b ON b.id = d.source_id
        WHERE d.target_id = w.id AND d.removed = 0 AND d.dependency_type = 'blocks'
          AND b.status != 'completed' AND b.deleted_at IS NULL)";

#[divan::bench_group(sample_count = 100, max_time = 3)]
mod ready {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = big();
        let page = f
            .tracker
            .ready_work(ReadyQuery {
                limit: Some(50),
                ..ReadyQuery::default()
            })
            .expect("ready");
        assert_eq!(page.items.len(), 50);
        eprintln!("[ready] total_count {}", page.total_count);
        bencher.bench(|| {
            f.tracker
                .ready_work(ReadyQuery {
                    limit: Some(50),
                    ..ReadyQuery::default()
                })
                .expect("ready")
        });
    }

    /// The page query alone, as the store answers it: active, live, no open
    /// blockers (the derived count), ORDER BY priority, created_at, id LIMIT 51.
    #[divan::bench]
    fn floor(bencher: Bencher) {
        let f = big();
        let conn = raw(&f.db());
        bencher.bench_local(|| {
            conn.prepare_cached(
                "SELECT w.id, w.title, w.item_type, w.status, w.priority, w.parent_id, w.updated_at, w.version
                 FROM work_items w INDEXED BY work_items_ready
                 WHERE w.status = 'active' AND w.deleted_at IS NULL AND w.archived_at IS NULL
                   AND w.open_blockers = 0 ORDER BY w.priority, w.created_at, w.id LIMIT 51",
            )
            .expect("prepare")
            .query_map([], row_tuple)
            .expect("ready")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("ready")
        });
    }
}

// ---------------------------------------------------------------------------
// Ready work with claims (issue 14): 10,000 ready tasks, 1,000 of them held
// by live claims of ten agents, against the same store shape without claims.

/// A store of `items` ready tasks, every tenth claimed (when `claims`) by
/// one of ten agents, through the operation (tentative: no hub).
fn claims_store(items: usize, claims: bool) -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = Tracker::open(dir.path()).expect("open");
    let mut ids = Vec::with_capacity(items);
    for n in 0..items {
        let item = tracker
            .create_work_item(
                AUTHOR,
                NewWorkItem {
                    item_type: "task".into(),
                    title: format!("task {n}"),
                    priority: Some((n % 5) as i64),
                    ..Default::default()
                },
            )
            .expect("create");
        ids.push(item.id);
    }
    if claims {
        for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 10 == 0) {
            tracker
                .claim_work_item(
                    &format!("agent-{}", n % 100 / 10),
                    waymark::ops::ClaimRequest {
                        id: Some(id.clone()),
                        minutes: Some(1440),
                        ..Default::default()
                    },
                )
                .expect("claim");
        }
    }
    (dir, tracker)
}

#[divan::bench_group(sample_count = 200, max_time = 3)]
mod ready_with_claims {
    use super::*;

    fn store(claims: bool) -> &'static (tempfile::TempDir, Tracker) {
        static WITH: OnceLock<(tempfile::TempDir, Tracker)> = OnceLock::new();
        static WITHOUT: OnceLock<(tempfile::TempDir, Tracker)> = OnceLock::new();
        let cell = if claims { &WITH } else { &WITHOUT };
        cell.get_or_init(|| claims_store(scale(10_000), claims))
    }

    fn page(t: &Tracker) -> waymark::ops::ReadyWork {
        t.ready_work_for("bench", ReadyQuery::default()).expect("ready")
    }

    /// 1,000 live claims of others: the page walks past the claimed items.
    #[divan::bench]
    fn with_1000_claims(bencher: Bencher) {
        let (_, t) = store(true);
        let first = page(t);
        assert_eq!(first.page.items.len(), 20);
        assert!(first.page.items.iter().all(|r| r.claimed_by.is_none()));
        bencher.bench(|| page(t));
    }

    /// The baseline: the same store shape, no claims.
    #[divan::bench]
    fn without_claims(bencher: Bencher) {
        let (_, t) = store(false);
        assert_eq!(page(t).page.items.len(), 20);
        bencher.bench(|| page(t));
    }
}

/// What the page of ready work costs beyond the page: the exact count of
/// every ready item (`total_count`), raw.
#[divan::bench(sample_count = 10, max_time = 10)]
fn ready_floor_count(bencher: Bencher) {
    let f = big();
    let conn = raw(&f.db());
    bencher.bench_local(|| {
        conn.prepare_cached(&format!("SELECT count(*) FROM work_items w WHERE {READY}"))
            .expect("prepare")
            .query_row([], |r| r.get::<_, i64>(0))
            .expect("count")
    });
}

/// The exact counts behind `total_count` of the list and search pages, raw.
#[divan::bench(sample_count = 50, max_time = 5, args = ["type_status", "one_word"])]
fn list_floor_count(bencher: Bencher, which: &str) {
    let f = big();
    let conn = raw(&f.db());
    let sql = match which {
        "type_status" => {
            "SELECT count(*) FROM work_items WHERE item_type = 'task' AND status = 'active'
               AND archived_at IS NULL AND deleted_at IS NULL"
        }
        _ => {
            "SELECT count(*) FROM work_items WHERE rowid IN
                 (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH '\"parser\"*')
               AND archived_at IS NULL AND deleted_at IS NULL"
        }
    };
    bencher.bench_local(|| {
        conn.prepare_cached(sql)
            .expect("prepare")
            .query_row([], |r| r.get::<_, i64>(0))
            .expect("count")
    });
}

// ---------------------------------------------------------------------------
// The status report: 1,200 items, 45 vendors, 50 deployments.

#[divan::bench_group(sample_count = 100, max_time = 3)]
mod status_report {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let s = small();
        let md = waymark::report::render_markdown(&s.tracker.status_report().expect("report"), None).expect("render");
        assert!(md.contains("## Operational Vendors") && md.contains("## Recent Deployments (Last 10)"));
        bencher.bench(|| {
            let report = s.tracker.status_report().expect("report");
            waymark::report::render_markdown(&report, None).expect("render")
        });
    }

    /// Gathering the report only (no rendering).
    #[divan::bench]
    fn waymark_gather_only(bencher: Bencher) {
        let s = small();
        bencher.bench(|| s.tracker.status_report().expect("report"));
    }

    /// `get_project_status` as it answered by default before the summary:
    /// the report cut to its first rows, as markdown.
    #[divan::bench]
    fn answer_markdown(bencher: Bencher) {
        let s = small();
        bencher.bench(|| waymark::report::bounded_markdown(&s.tracker).expect("answer"));
    }

    /// `get_project_status` as it answers by default: the summary, as the
    /// JSON text a tool result carries.
    #[divan::bench]
    fn answer_summary(bencher: Bencher) {
        let s = small();
        let request = waymark::ops::StatusRequest::default();
        bencher.bench(|| {
            let answer = s.tracker.project_status(&request).expect("answer");
            serde_json::to_string(&answer).expect("json")
        });
    }

    /// The report's three reads (vendors, open items in tree order with
    /// their parent's title, the last 10 deployments with vendor names),
    /// without building or rendering anything.
    #[divan::bench]
    fn floor(bencher: Bencher) {
        let s = small();
        let conn = raw(&s.dir.join(waymark::store::DB_FILE));
        bencher.bench_local(|| {
            let vendors = conn
                .prepare_cached("SELECT name, status, metadata FROM vendors WHERE deleted_at IS NULL ORDER BY name_key")
                .expect("prepare")
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                .expect("vendors")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("vendors");
            let items = conn
                .prepare_cached(
                    "SELECT w.id, w.title, w.item_type, w.status, w.depth, w.created_at, w.branch_name, p.title
                     FROM work_items w LEFT JOIN work_items p ON p.id = w.parent_id
                     WHERE w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL
                     ORDER BY w.path",
                )
                .expect("prepare")
                .query_map([], |r| {
                    Ok((
                        get_id(r, 0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })
                .expect("items")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("items");
            let deployments = conn
                .prepare_cached(
                    "SELECT d.id, d.deployed_at, d.commit_hash, d.metadata,
                        (SELECT group_concat(v.name, char(31)) FROM deployment_links l JOIN vendors v ON v.id = l.target_id
                          WHERE l.deployment_id = d.id AND l.removed = 0 AND l.link_type = 'vendor')
                     FROM deployments d WHERE d.deleted_at IS NULL
                     ORDER BY d.deployed_at DESC, d.id DESC LIMIT 10",
                )
                .expect("prepare")
                .query_map([], |r| {
                    Ok((
                        get_id(r, 0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .expect("deployments")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("deployments");
            (vendors, items, deployments)
        });
    }
}

// ---------------------------------------------------------------------------
// A CLI command that reads one item, from process start.

/// The release binary cargo built beside this benchmark.
fn waymark_bin() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_waymark"));
    if built.exists() {
        return built;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("waymark")
}

fn run(program: &Path, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{} {args:?} failed", program.display());
}

#[divan::bench_group(sample_count = 40, sample_size = 1, max_time = 10)]
mod cli_item_show {
    use super::*;

    #[divan::bench]
    fn waymark(bencher: Bencher) {
        let f = big();
        let bin = waymark_bin();
        let dir = f.dir.display().to_string();
        let args = ["--data-dir", dir.as_str(), "item", "show", f.session.as_str(), "--json"];
        let out = Command::new(&bin).args(args).output().expect("spawn");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(shown["item"]["id"], f.session.as_str());
        bencher.bench(|| run(&bin, &args));
    }

    /// The same binary, doing nothing but printing its version.
    #[divan::bench]
    fn floor_version(bencher: Bencher) {
        let bin = waymark_bin();
        bencher.bench(|| run(&bin, &["--version"]));
    }

    /// Spawning a process that does nothing.
    #[divan::bench]
    fn floor_true(bencher: Bencher) {
        bencher.bench(|| run(Path::new("/bin/true"), &[]));
    }
}

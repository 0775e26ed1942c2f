//! The SQLite store as a replica of the hub protocol: the same conformance
//! suite the in-memory model passes, and sync rounds between stores.

use tempfile::TempDir;
use waymark::Tracker;
use waymark::ops::{NewVendor, VendorUpdate};
use waymark_sync::testing::ReplicaFixture;
use waymark_sync::{Change, Dot, PageApplied, RecordStates, Replica, ReplicaError, ReplicaId};

/// A fresh store in a temporary directory, seen through the `Replica` trait.
pub struct SqliteReplica {
    _dir: TempDir,
    pub tracker: Tracker,
}

impl SqliteReplica {
    pub fn new() -> SqliteReplica {
        let (dir, tracker) = crate::tracker();
        SqliteReplica { _dir: dir, tracker }
    }
}

impl Replica for SqliteReplica {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Replica::replica_id(self.tracker.store())
    }
    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        self.tracker.store().outbox(limit)
    }
    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        self.tracker.store().acknowledge(dots)
    }
    fn cursor(&self) -> Result<u64, ReplicaError> {
        self.tracker.store().cursor()
    }
    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        self.tracker.store().apply_page(changes, new_cursor)
    }
    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        self.tracker.store().record_states()
    }
}

impl ReplicaFixture for SqliteReplica {
    /// Record `n` is the vendor `r{n}`; the label is its extractor version.
    fn write_record(&self, record: u32, label: &str) -> Result<(), ReplicaError> {
        let name = format!("r{record}");
        let result = match self.tracker.query_vendor_status(&name) {
            Ok(v) => self
                .tracker
                .update_vendor_status(
                    "test",
                    VendorUpdate {
                        name,
                        version: v.version,
                        extractor_version: Some(label.into()),
                        ..Default::default()
                    },
                )
                .map(drop),
            Err(_) => self
                .tracker
                .create_vendor(
                    "test",
                    NewVendor {
                        name,
                        extractor_version: Some(label.into()),
                        metadata: None,
                    },
                )
                .map(drop),
        };
        result.map_err(|e| ReplicaError::permanent(e.to_string()))
    }
}

mod conformance {
    waymark_sync::replica_conformance_tests!(super::SqliteReplica::new());
}

mod convergence {
    use serde_json::{Value, json};
    use waymark::ops::*;
    use waymark_sync::memory::MemoryHub;
    use waymark_sync::testing::block_on;
    use waymark_sync::{SyncOptions, sync_round};

    use super::SqliteReplica;

    fn round(replica: &SqliteReplica, hub: &MemoryHub) {
        let opts = SyncOptions {
            push_batch: 3,
            page_size: 4,
        };
        block_on(sync_round(replica, hub, "team", opts)).expect("sync round");
    }

    fn export(r: &SqliteReplica) -> String {
        serde_json::to_string_pretty(&r.tracker.export_json().unwrap()).unwrap()
    }

    /// An outbox entry is the change as written: a change whose
    /// acknowledgement was lost is resent exactly as first sent, even after a
    /// later write replaced one of its values (the hub refuses a replica's
    /// change that differs), and a change never handed out is sent as
    /// written too, and the stores still converge.
    #[test]
    fn a_resent_change_is_the_change_first_sent() {
        use waymark_sync::Replica;
        use waymark_sync::testing::ReplicaFixture;
        let (a, b, hub) = (SqliteReplica::new(), SqliteReplica::new(), MemoryHub::new());
        a.write_record(1, "first").unwrap();
        let sent = a.outbox(10).unwrap();
        block_on(waymark_sync::Hub::push(&hub, "team", &sent)).expect("push");
        // The acknowledgement is lost; then a write replaces the value.
        a.write_record(1, "second").unwrap();
        let again = a.outbox(10).unwrap();
        assert_eq!(again[0], sent[0], "resent as first sent");
        assert!(again[0].fields.values().any(|v| v == "first"));

        // Not handed out yet, then replaced: still sent as written.
        a.write_record(2, "draft").unwrap();
        a.write_record(2, "final").unwrap();
        let pending = a.outbox(10).unwrap();
        let draft = &pending[2];
        assert!(draft.fields.values().any(|v| v == "draft"), "{draft:?}");
        assert!(pending[3].context.covers(&draft.dot));

        round(&a, &hub);
        round(&b, &hub);
        assert_eq!(a.outbox(10).unwrap(), vec![], "everything acknowledged");
        assert_eq!(export(&a), export(&b));
        assert_eq!(b.tracker.query_vendor_status("r2").unwrap().extractor_version, "final");
        assert_eq!(a.record_states().unwrap(), b.record_states().unwrap());
    }

    /// Three stores edit offline — the same vendor created on two, different
    /// fields and the same field of one item changed on two — then sync in
    /// any order: identical exports, one vendor, the same open conflicts.
    #[test]
    fn three_offline_stores_converge_and_keep_the_true_conflict() {
        let hub = MemoryHub::new();
        let [a, b, c] = [SqliteReplica::new(), SqliteReplica::new(), SqliteReplica::new()];
        let item = a
            .tracker
            .create_work_item("alice", crate::new_item("task", "shared task", None))
            .unwrap();
        round(&a, &hub);
        round(&b, &hub);
        round(&c, &hub);
        assert_eq!(export(&b), export(&a));

        // Offline: the same vendor on two stores; the item edited on all three.
        a.tracker
            .create_vendor(
                "alice",
                NewVendor {
                    name: "EPSON".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        b.tracker
            .create_vendor(
                "bob",
                NewVendor {
                    name: "epson".into(),
                    extractor_version: Some("2.0.0".into()),
                    metadata: None,
                },
            )
            .unwrap();
        let upd = |r: &SqliteReplica, who: &str, u: WorkItemUpdate| r.tracker.update_work_item(who, u).unwrap();
        upd(
            &a,
            "alice",
            WorkItemUpdate {
                id: item.id.clone(),
                version: 1,
                title: Some("alice's title".into()),
                ..Default::default()
            },
        );
        upd(
            &b,
            "bob",
            WorkItemUpdate {
                id: item.id.clone(),
                version: 1,
                title: Some("bob's title".into()),
                ..Default::default()
            },
        );
        upd(
            &c,
            "carol",
            WorkItemUpdate {
                id: item.id.clone(),
                version: 1,
                priority: Some(0),
                ..Default::default()
            },
        );

        for order in [[&c, &a, &b], [&b, &c, &a], [&a, &b, &c]] {
            for r in order {
                round(r, &hub);
            }
        }
        let (ea, eb, ec) = (export(&a), export(&b), export(&c));
        assert_eq!(ea, eb);
        assert_eq!(ea, ec);
        let doc: Value = serde_json::from_str(&ea).unwrap();
        assert_eq!(doc["vendors"].as_array().unwrap().len(), 1, "one vendor, not two");
        let merged = &doc["work_items"][0];
        assert_eq!(
            merged["priority"], 0,
            "concurrent writes to different fields both survive"
        );
        let conflicts = doc["conflicts"].as_array().unwrap();
        let fields: Vec<(&str, &str)> = conflicts
            .iter()
            .map(|c| (c["collection"].as_str().unwrap(), c["field"].as_str().unwrap()))
            .collect();
        assert!(fields.contains(&("work_items", "title")), "{conflicts:#?}");
        assert!(fields.contains(&("vendors", "extractor_version")), "{conflicts:#?}");
        let title = conflicts.iter().find(|c| c["field"] == "title").unwrap();
        let values: Vec<&str> = title["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_str().unwrap())
            .collect();
        assert_eq!(values.len(), 2);
        assert!(values.contains(&"alice's title") && values.contains(&"bob's title"));
        assert_eq!(merged["title"], title["winner"], "every replica shows the same winner");
        assert!(a.tracker.store().pending_changes().unwrap() == 0);

        // Resolving is an ordinary write that covers both values: after a
        // sync, the conflict is gone everywhere and the choice stands.
        let err = c
            .tracker
            .resolve_conflict("carol", title["id"].as_str().unwrap(), json!("neither"))
            .unwrap_err();
        assert!(err.to_string().contains("one of the conflicting values"), "{err}");
        c.tracker
            .resolve_conflict("carol", title["id"].as_str().unwrap(), json!("bob's title"))
            .unwrap();
        assert!(
            c.tracker
                .resolve_conflict("carol", title["id"].as_str().unwrap(), json!("bob's title"))
                .is_err()
        );
        for r in [&c, &a, &b] {
            round(r, &hub);
        }
        for r in [&a, &b, &c] {
            let doc = r.tracker.export_json().unwrap();
            assert_eq!(doc["work_items"][0]["title"], "bob's title");
            assert!(
                doc["conflicts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["field"] != "title")
            );
        }
        assert_eq!(export(&a), export(&c));
    }

    /// An edit made offline while another store deleted the record is kept
    /// and shown as a `delete_vs_update` conflict everywhere, until someone
    /// decides (here: restores the record).
    #[test]
    fn an_edit_racing_a_delete_is_a_conflict_until_resolved() {
        let hub = MemoryHub::new();
        let [a, b] = [SqliteReplica::new(), SqliteReplica::new()];
        let item = a
            .tracker
            .create_work_item("a", crate::new_item("task", "doomed?", None))
            .unwrap();
        round(&a, &hub);
        round(&b, &hub);
        a.tracker
            .update_work_item(
                "a",
                WorkItemUpdate {
                    id: item.id.clone(),
                    version: 1,
                    deleted: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
        b.tracker
            .update_work_item(
                "b",
                WorkItemUpdate {
                    id: item.id.clone(),
                    version: 1,
                    title: Some("still needed".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        for r in [&a, &b, &a] {
            round(r, &hub);
        }
        assert_eq!(export(&a), export(&b));
        for r in [&a, &b] {
            let conflicts = r.tracker.list_conflicts().unwrap();
            assert_eq!(conflicts.len(), 1, "{conflicts:#?}");
            assert_eq!(conflicts[0].kind, "delete_vs_update");
            let kept = r.tracker.get_work_item(&item.id).unwrap();
            assert_eq!(kept.title, "still needed", "the edit is not lost");
        }
        // Restoring (a write that saw both) ends the conflict everywhere.
        let current = b.tracker.get_work_item(&item.id).unwrap();
        b.tracker
            .update_work_item(
                "b",
                WorkItemUpdate {
                    id: item.id.clone(),
                    version: current.version,
                    deleted: Some(false),
                    ..Default::default()
                },
            )
            .unwrap();
        for r in [&b, &a] {
            round(r, &hub);
        }
        for r in [&a, &b] {
            assert!(r.tracker.list_conflicts().unwrap().is_empty());
            assert!(r.tracker.get_work_item(&item.id).unwrap().deleted_at.is_none());
        }
        assert_eq!(export(&a), export(&b));
    }

    /// Moves on two stores that together form a cycle are broken the same
    /// way everywhere, without new writes, and reported.
    #[test]
    fn concurrent_moves_that_form_a_cycle_resolve_identically() {
        let hub = MemoryHub::new();
        let [a, b] = [SqliteReplica::new(), SqliteReplica::new()];
        let x = a
            .tracker
            .create_work_item("a", crate::new_item("task", "x", None))
            .unwrap();
        let y = a
            .tracker
            .create_work_item("a", crate::new_item("task", "y", None))
            .unwrap();
        round(&a, &hub);
        round(&b, &hub);
        a.tracker
            .update_work_item(
                "a",
                WorkItemUpdate {
                    id: x.id.clone(),
                    version: 1,
                    parent_id: Some(y.id.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        b.tracker
            .update_work_item(
                "b",
                WorkItemUpdate {
                    id: y.id.clone(),
                    version: 1,
                    parent_id: Some(x.id.clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        let pending = a.tracker.store().pending_changes().unwrap() + b.tracker.store().pending_changes().unwrap();
        for _ in 0..2 {
            round(&a, &hub);
            round(&b, &hub);
        }
        assert_eq!(export(&a), export(&b));
        let doc = a.tracker.export_json().unwrap();
        let cycle: Vec<&Value> = doc["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "cycle")
            .collect();
        assert_eq!(cycle.len(), 1, "{doc:#}");
        let breaker = std::cmp::min(&x.id, &y.id);
        assert_eq!(
            cycle[0]["record_id"],
            json!(breaker),
            "the cycle is cut above its smallest id"
        );
        let root = a.tracker.get_work_item(breaker).unwrap();
        assert_eq!((root.depth, root.path.clone()), (0, format!("/{breaker}")));
        assert_eq!(
            hub.log("team").len() as i64,
            2 + pending,
            "two creations, two moves: resolving wrote nothing"
        );
    }
}

pub(crate) mod end_to_end {
    //! The built binary against a real Postgres hub: three stores edit
    //! offline, then sync in any order.

    use std::path::Path;
    use std::process::{Command, Output};

    use serde_json::Value;
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    fn waymark(dir: &Path, hub: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("WAYMARK_HUB_URL", hub)
            .env("WAYMARK_SPACE", "e2e")
            .output()
            .expect("run waymark")
    }

    fn ok(dir: &Path, hub: &str, args: &[&str]) -> String {
        let out = waymark(dir, hub, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The test database's URL with its credentials, for child processes.
    pub(crate) fn url_of(db: &TestDatabase) -> String {
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

    #[test]
    fn three_stores_converge_through_postgres() {
        let db = block_on(TestDatabase::create("e2e"));
        let hub = url_of(&db);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let [a, b, c] = [dirs[0].path(), dirs[1].path(), dirs[2].path()];
        let created: Value = serde_json::from_str(&ok(
            a,
            &hub,
            &["item", "create", "--type", "task", "--title", "shared", "--json"],
        ))
        .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        for d in [a, b, c] {
            ok(d, &hub, &["sync"]);
        }
        // Offline: the same vendor on two stores, the same field of one item on
        // two, another field on the third.
        ok(a, &hub, &["vendor", "create", "EPSON"]);
        ok(b, &hub, &["vendor", "create", "Epson", "--extractor-version", "2.0.0"]);
        ok(b, &hub, &["item", "update", &id, "--version", "1", "--title", "from b"]);
        ok(c, &hub, &["item", "update", &id, "--version", "1", "--title", "from c"]);
        ok(a, &hub, &["item", "update", &id, "--version", "1", "--priority", "0"]);
        for d in [c, a, b, c, a] {
            ok(d, &hub, &["sync"]);
        }
        let exports: Vec<String> = [a, b, c].iter().map(|d| ok(d, &hub, &["export", "json"])).collect();
        assert_eq!(exports[0], exports[1]);
        assert_eq!(exports[0], exports[2]);
        let doc: Value = serde_json::from_str(&exports[0]).unwrap();
        assert_eq!(doc["vendors"].as_array().unwrap().len(), 1);
        assert_eq!(doc["work_items"][0]["priority"], 0);
        let conflicts: Vec<String> = [a, b, c].iter().map(|d| ok(d, &hub, &["conflicts"])).collect();
        assert_eq!(conflicts[0], conflicts[1]);
        assert_eq!(conflicts[0], conflicts[2]);
        assert!(conflicts[0].contains("/title") && conflicts[0].contains("from b") && conflicts[0].contains("from c"));

        // An unreachable hub: a clear error, non-zero exit, nothing lost.
        ok(
            a,
            &hub,
            &["item", "create", "--type", "task", "--title", "written offline"],
        );
        let down = waymark(a, "postgres://postgres:s3cret@127.0.0.1:1/nowhere", &["sync"]);
        assert!(!down.status.success());
        let err = String::from_utf8_lossy(&down.stderr);
        assert!(err.contains("unreachable") && !err.contains("s3cret"), "{err}");
        let health: Value = serde_json::from_str(&ok(a, &hub, &["config", "show", "--json"])).unwrap();
        assert_eq!(health["sync"]["pending_changes"], 1);
        assert!(!health["sync"]["last_error"].as_str().unwrap().contains("s3cret"));
        let report = ok(a, &hub, &["status"]);
        assert!(report.contains("- **Sync**: last success 2"), "{report}");
        assert!(
            report.contains("1 change(s) waiting to be pushed") && !report.contains("s3cret"),
            "{report}"
        );
        ok(a, &hub, &["sync"]);
        ok(b, &hub, &["sync"]);
        assert!(ok(b, &hub, &["item", "list", "--text", "offline"]).contains("written offline"));
    }
}

mod killed {
    //! A sync process killed with SIGKILL at random points: afterwards
    //! everything converges, nothing doubles and nothing acknowledged is lost.

    use std::process::{Command, Stdio};
    use std::time::Duration;

    use serde_json::{Value, json};
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    #[test]
    fn sync_killed_mid_round_loses_and_doubles_nothing() {
        let db = block_on(TestDatabase::create("sigkill"));
        let hub = super::end_to_end::url_of(&db);
        let run = |dir: &std::path::Path, args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_waymark"));
            command
                .arg("--data-dir")
                .arg(dir)
                .args(args)
                .env("WAYMARK_HUB_URL", &hub)
                .env("WAYMARK_SPACE", "kill")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command
        };
        let a = tempfile::tempdir().unwrap();
        // Many pending changes, written in one go.
        let items: Vec<Value> = (0..3000)
            .map(|i| {
                json!({"id": uuid::Uuid::now_v7().to_string(), "item_type": "task", "title": format!("task {i}"),
                       "status": "active", "priority": 2, "metadata": {}, "created_at": "2026-01-01T00:00:00Z",
                       "created_by": "test", "updated_at": "2026-01-01T00:00:00Z", "updated_by": "test"})
            })
            .collect();
        let file = a.path().join("doc.json");
        std::fs::write(&file, json!({ "work_items": items }).to_string()).unwrap();
        assert!(
            run(a.path(), &["import", "json", file.to_str().unwrap()])
                .status()
                .unwrap()
                .success()
        );

        let mut seed = 0x5eed_u64;
        for _ in 0..10 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut child = run(a.path(), &["sync"]).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(5 + (seed >> 33) % 120));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        assert!(run(a.path(), &["sync"]).status().unwrap().success());
        let b = tempfile::tempdir().unwrap();
        assert!(run(b.path(), &["sync"]).status().unwrap().success());
        let export = |dir: &std::path::Path| {
            run(dir, &["export", "json"])
                .stdout(Stdio::piped())
                .output()
                .unwrap()
                .stdout
        };
        assert_eq!(export(a.path()), export(b.path()));
        let doc: Value = serde_json::from_slice(&export(b.path())).unwrap();
        assert_eq!(doc["work_items"].as_array().unwrap().len(), 3000);
        let (rows, distinct, max_seq): (i64, i64, i64) = block_on(async {
            let client = db.raw_client().await;
            let row = client
                .query_one(
                    "SELECT count(*), count(DISTINCT (replica_id, counter)), max(seq) FROM changes",
                    &[],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1), row.get(2))
        });
        assert_eq!(
            (rows, distinct, max_seq),
            (3000, 3000, 3000),
            "every change once, seqs dense"
        );
    }
}

mod worker_in_serve {
    //! `serve` with a hub configured pushes soon after a tool writes,
    //! without anyone running `waymark sync`.

    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    #[test]
    fn a_tool_write_reaches_the_hub_without_a_sync_command() {
        let db = block_on(TestDatabase::create("serve-worker"));
        let hub = super::end_to_end::url_of(&db);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut server = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("--data-dir")
            .arg(a.path())
            .arg("serve")
            .current_dir(a.path())
            .env("WAYMARK_HUB_URL", &hub)
            .env("WAYMARK_SPACE", "worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = server.stdin.take().unwrap();
        let mut stdout = BufReader::new(server.stdout.take().unwrap());
        let mut call = |msg: Value, answer: bool| -> Option<Value> {
            writeln!(stdin, "{msg}").unwrap();
            stdin.flush().unwrap();
            answer.then(|| {
                let mut line = String::new();
                stdout.read_line(&mut line).unwrap();
                serde_json::from_str(&line).unwrap()
            })
        };
        call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
                   "capabilities": {}, "clientInfo": {"name": "worker-test", "version": "1"}}}),
            true,
        );
        call(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), false);
        let created = call(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_work_item",
                   "arguments": {"item_type": "task", "title": "pushed by the worker"}}}),
            true,
        )
        .unwrap();
        assert_eq!(created["result"]["isError"], json!(false), "{created}");

        // The other store pulls until the item arrives (the worker pushes
        // about half a second after the write).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
                .arg("--data-dir")
                .arg(b.path())
                .args(["sync"])
                .env("WAYMARK_HUB_URL", &hub)
                .env("WAYMARK_SPACE", "worker")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let listed = Command::new(env!("CARGO_BIN_EXE_waymark"))
                .arg("--data-dir")
                .arg(b.path())
                .args(["item", "list", "--json"])
                .output()
                .unwrap();
            let page: Value = serde_json::from_slice(&listed.stdout).unwrap();
            if page["total_count"] == 1 {
                assert_eq!(page["items"][0]["title"], "pushed by the worker");
                break;
            }
            assert!(Instant::now() < deadline, "the worker never pushed the change");
            std::thread::sleep(Duration::from_millis(300));
        }
        let health = call(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "sync",
                   "arguments": {"action": "status"}}}),
            true,
        )
        .unwrap();
        assert_eq!(health["result"]["structuredContent"]["pending_changes"], 0, "{health}");
        assert_eq!(
            health["result"]["structuredContent"]["hub_configured"], true,
            "{health}"
        );
        drop(stdin);
        assert!(server.wait().unwrap().success());
    }
}

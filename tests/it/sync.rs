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

//! The SQLite store as a replica of the hub protocol: the same conformance
//! suite the in-memory model passes, and sync rounds between stores.

use tempfile::TempDir;
use waymark::Tracker;
use waymark::ops::{NewVendor, VendorUpdate};
use waymark::sync::PacedReplica;
use waymark_sync::testing::ReplicaFixture;
use waymark_sync::{Change, Dot, PageApplied, RecordStates, Replica, ReplicaError, ReplicaId};

/// A fresh store in a temporary directory (published to a hub from the
/// start), seen through the `Replica` trait: the store itself, or the store
/// as the sync worker sees it ([`PacedReplica`]).
pub struct SqliteReplica {
    _dir: TempDir,
    pub tracker: Tracker,
    paced: Option<PacedReplica>,
}

impl SqliteReplica {
    pub fn new() -> SqliteReplica {
        let (dir, tracker) = crate::published_tracker();
        SqliteReplica {
            _dir: dir,
            tracker,
            paced: None,
        }
    }

    pub fn paced() -> SqliteReplica {
        let mut r = SqliteReplica::new();
        r.paced = Some(PacedReplica::new(r.tracker.store().clone()));
        r
    }
}

/// Each call through the paced replica when there is one, else the store.
macro_rules! via {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &$self.paced {
            Some(p) => p.$method($($arg),*),
            None => $self.tracker.store().$method($($arg),*),
        }
    };
}

impl Replica for SqliteReplica {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Replica::replica_id(self.tracker.store())
    }
    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        via!(self.outbox(limit))
    }
    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        via!(self.acknowledge(dots))
    }
    fn cursor_dot(&self) -> Result<Option<Dot>, ReplicaError> {
        via!(self.cursor_dot())
    }

    fn cursor(&self) -> Result<u64, ReplicaError> {
        via!(self.cursor())
    }
    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        via!(self.apply_page(changes, new_cursor))
    }
    fn apply_snapshots(&self, snapshots: &[waymark_sync::Snapshot]) -> Result<PageApplied, ReplicaError> {
        via!(self.apply_snapshots(snapshots))
    }
    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        via!(self.record_states())
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

/// The store as the sync worker sees it ([`PacedReplica`]).
mod paced {
    use waymark_sync::testing::ReplicaFixture;
    use waymark_sync::{Change, Dot, Replica};

    use super::SqliteReplica;

    /// Of the replica suite, what [`PacedReplica`] keeps as it is. The
    /// suite's outbox tests read the outbox again after writing, as if each
    /// read began a round (a paced push ends with what waited when it began:
    /// `a_push_hands_out_what_waited_when_it_began`), and a paced page is
    /// atomic per slice, not as a whole
    /// (`a_big_page_is_applied_in_slices_each_with_its_cursor`).
    mod conformance {
        waymark_sync::replica_conformance_tests!(@tests super::SqliteReplica::paced();
            apply_page_is_idempotent,
        );
    }

    /// A page longer than a slice is applied in several transactions, each
    /// with its own cursor: a change that fails midway keeps the slices
    /// before it (the cursor at the last of them, covering exactly what was
    /// kept), and the page pulled again from there completes the store.
    #[test]
    fn a_big_page_is_applied_in_slices_each_with_its_cursor() {
        let there = SqliteReplica::paced();
        for i in 0..300 {
            there.write_record(i, "x").unwrap();
        }
        let log: Vec<(u64, Change)> = there
            .outbox(usize::MAX)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i as u64 + 1, c))
            .collect();

        let here = SqliteReplica::paced();
        let mut poisoned = log.clone();
        poisoned[250].1 = here.poison_change();
        assert!(here.apply_page(&poisoned, 300).is_err());
        let kept = here.cursor().unwrap();
        assert!(
            kept > 0 && kept < 251,
            "slices before the failure are kept (cursor {kept})"
        );
        assert_eq!(
            here.record_states().unwrap().len(),
            kept as usize,
            "exactly what the cursor covers"
        );

        let applied = here.apply_page(&log[kept as usize..], 300).unwrap();
        assert_eq!(applied.applied, 300 - kept as usize);
        assert_eq!(here.cursor().unwrap(), 300);
        assert_eq!(here.record_states().unwrap(), there.record_states().unwrap());
        assert!(
            here.paced.as_ref().unwrap().apply_slice() < 300,
            "the page was cut into slices"
        );
    }

    /// A round's push ends with what waited when it began: writes made
    /// meanwhile go with the next round (whose first read sees them).
    #[test]
    fn a_push_hands_out_what_waited_when_it_began() {
        let r = SqliteReplica::paced();
        for i in 0..3 {
            r.write_record(i, "before").unwrap();
        }
        let first = r.outbox(10).unwrap();
        assert_eq!(first.len(), 3);
        let store_order: Vec<Dot> = r.tracker.store().outbox(10).unwrap().iter().map(|c| c.dot).collect();
        assert_eq!(
            first.iter().map(|c| c.dot).collect::<Vec<_>>(),
            store_order,
            "in write order"
        );
        r.acknowledge(&first.iter().map(|c| c.dot).collect::<Vec<_>>()).unwrap();
        assert_eq!(r.tracker.store().pending_changes().unwrap(), 0, "acknowledged");
        r.write_record(7, "during the round").unwrap();
        assert_eq!(r.outbox(10).unwrap(), vec![], "this round's push is over");
        let next = r.outbox(10).unwrap();
        assert_eq!(next.len(), 1, "the next round takes it");
    }
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
        assert_verified(&[&a, &b]);
    }

    /// Every store's projection is what its registers derive.
    fn assert_verified(stores: &[&SqliteReplica]) {
        for (i, r) in stores.iter().enumerate() {
            assert_eq!(r.tracker.store().verify().unwrap(), Vec::<String>::new(), "store {i}");
        }
    }

    /// Sync every store until nothing moves, then check they all export the
    /// same bytes and pass `verify`; returns the export.
    fn converge(hub: &MemoryHub, stores: &[&SqliteReplica]) -> Value {
        for _ in 0..2 {
            for r in stores {
                round(r, hub);
            }
        }
        let first = export(stores[0]);
        for (i, r) in stores.iter().enumerate() {
            assert_eq!(export(r), first, "store {i} exports the same bytes");
        }
        assert_verified(stores);
        serde_json::from_str(&first).unwrap()
    }

    fn conflicts_of_kind(doc: &Value, kind: &str) -> Vec<Value> {
        doc["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == kind)
            .cloned()
            .collect()
    }

    fn update(r: &SqliteReplica, id: &str, change: impl FnOnce(&mut WorkItemUpdate)) -> WorkItem {
        let current = r.tracker.get_work_item(id).unwrap();
        let mut u = WorkItemUpdate {
            id: id.to_owned(),
            version: current.version,
            ..Default::default()
        };
        change(&mut u);
        r.tracker.update_work_item("test", u).unwrap()
    }

    /// Three chains p0<-p1<-p2, q0<-q1<-q2, r0<-r1<-r2; three stores move
    /// p0 under q2, q0 under r2 and r0 under p2 at once (each valid where it
    /// was made). The nine items form one cycle, longer than the depth
    /// limit: it is found by the links (not the stored paths, which the
    /// depth rule cuts), cut above its smallest id, and the same tree and
    /// conflicts come out on every store.
    #[test]
    fn a_cycle_longer_than_the_depth_limit_is_cut_the_same_everywhere() {
        let hub = MemoryHub::new();
        let [a, b, c] = [SqliteReplica::new(), SqliteReplica::new(), SqliteReplica::new()];
        let mut chains: Vec<Vec<WorkItem>> = Vec::new();
        for name in ["p", "q", "r"] {
            let mut chain: Vec<WorkItem> = Vec::new();
            for i in 0..3 {
                let parent = chain.last().map(|p| p.id.clone());
                let item = a
                    .tracker
                    .create_work_item("a", crate::new_item("task", &format!("{name}{i}"), parent.as_deref()))
                    .unwrap();
                chain.push(item);
            }
            chains.push(chain);
        }
        converge(&hub, &[&a, &b, &c]);
        for (store, (moved, under)) in [&a, &b, &c].into_iter().zip([(0, 1), (1, 2), (2, 0)]) {
            let under = chains[under][2].id.clone();
            update(store, &chains[moved][0].id, |u| u.parent_id = Some(under));
        }
        let doc = converge(&hub, &[&a, &b, &c]);
        let all: Vec<&WorkItem> = chains.iter().flatten().collect();
        let smallest = all.iter().map(|i| i.id.clone()).min().unwrap();
        let cycle = conflicts_of_kind(&doc, "cycle");
        assert_eq!(cycle.len(), 1, "{doc:#}");
        assert_eq!(cycle[0]["record_id"], json!(smallest), "cut above its smallest id");
        // Nine in a line below the cut: the one at depth 6 starts a new root.
        let depth = conflicts_of_kind(&doc, "depth");
        assert_eq!(depth.len(), 1, "{doc:#}");
        for store in [&a, &b, &c] {
            let cut = store.tracker.get_work_item(&smallest).unwrap();
            assert_eq!((cut.depth, cut.path.clone()), (0, format!("/{smallest}")));
            let depths: std::collections::BTreeSet<i64> = all
                .iter()
                .map(|i| store.tracker.get_work_item(&i.id).unwrap().depth)
                .collect();
            assert_eq!(
                depths,
                (0..=5).collect(),
                "the nine hang below the cut within the limit"
            );
        }
        // Moving the item above the depth cut (at depth 5, nothing below it
        // by path) under the cut item's child (depth 1) passes the depth
        // check, and is still refused as a cycle: the check follows links,
        // not the paths, which start again at the cut.
        let cut_by_depth = a
            .tracker
            .get_work_item(depth[0]["record_id"].as_str().unwrap())
            .unwrap();
        let below = all
            .iter()
            .find(|i| a.tracker.get_work_item(&i.id).unwrap().parent_id.as_deref() == Some(&cut_by_depth.id))
            .unwrap();
        let above = cut_by_depth.parent_id.unwrap();
        let current = a.tracker.get_work_item(&above).unwrap();
        assert_eq!(current.depth, 5);
        let refused = a.tracker.update_work_item(
            "a",
            WorkItemUpdate {
                id: above.clone(),
                version: current.version,
                parent_id: Some(below.id.clone()),
                ..Default::default()
            },
        );
        assert!(matches!(refused, Err(waymark::Error::Cycle(_))), "{refused:?}");
    }

    /// `a depends_on b` on one store, `b depends_on a` on another: local
    /// operations refuse a cycle, a merge cannot. Both edges carry a
    /// `dependency_cycle` conflict on every store until one is removed.
    #[test]
    fn a_dependency_cycle_made_by_two_stores_is_a_conflict_until_removed() {
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
        let z = a
            .tracker
            .create_work_item("a", crate::new_item("task", "z", None))
            .unwrap();
        converge(&hub, &[&a, &b]);
        let dep = |r: &SqliteReplica, action, s: &WorkItem, t: &WorkItem| {
            r.tracker
                .manage_dependency(
                    "test",
                    DependencyChange {
                        action,
                        source_id: s.id.clone(),
                        target_id: t.id.clone(),
                        dependency_type: "depends_on".into(),
                    },
                )
                .unwrap()
        };
        // z waits for x: off the cycle, never flagged.
        dep(&a, DependencyAction::Add, &z, &x);
        dep(&a, DependencyAction::Add, &x, &y);
        dep(&b, DependencyAction::Add, &y, &x);
        let doc = converge(&hub, &[&a, &b]);
        let flagged = conflicts_of_kind(&doc, "dependency_cycle");
        assert_eq!(flagged.len(), 2, "{doc:#}");
        for r in [&a, &b] {
            let ready = r.tracker.ready_work(ReadyQuery::default()).unwrap();
            assert!(ready.items.is_empty(), "x and y wait for each other, z for x");
        }
        dep(&b, DependencyAction::Remove, &y, &x);
        let doc = converge(&hub, &[&a, &b]);
        assert_eq!(
            conflicts_of_kind(&doc, "dependency_cycle"),
            Vec::<Value>::new(),
            "{doc:#}"
        );
        let ready = a.tracker.ready_work(ReadyQuery::default()).unwrap();
        assert_eq!(ready.items.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&y.id]);
    }

    /// An item reopened and retitled on one store while another archives
    /// it ends archived and active: in no list. It is reported
    /// (`archived_while_open`) on every store, and resolving it with null
    /// un-archives it everywhere.
    #[test]
    fn an_archive_racing_a_reopen_is_a_conflict_until_resolved() {
        let hub = MemoryHub::new();
        let [a, b] = [SqliteReplica::new(), SqliteReplica::new()];
        let item = a
            .tracker
            .create_work_item("a", crate::new_item("task", "done?", None))
            .unwrap();
        update(&a, &item.id, |u| u.status = Some("completed".into()));
        converge(&hub, &[&a, &b]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let archived = b
            .tracker
            .archive_work_items(
                "b",
                ArchiveRequest {
                    older_than_days: Some(0),
                    dry_run: false,
                },
            )
            .unwrap();
        assert_eq!(archived.count, 1);
        update(&a, &item.id, |u| {
            u.status = Some("active".into());
            u.title = Some("not done after all".into());
        });
        let doc = converge(&hub, &[&a, &b]);
        let open = conflicts_of_kind(&doc, "archived_while_open");
        assert_eq!(open.len(), 1, "{doc:#}");
        let conflict_id = open[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(conflict_id, format!("work_items/{}/archived_at", item.id));
        for r in [&a, &b] {
            let listed = r.tracker.list_conflicts().unwrap();
            assert!(listed.iter().any(|c| c.kind == "archived_while_open"), "{listed:#?}");
            assert!(r.tracker.ready_work(ReadyQuery::default()).unwrap().items.is_empty());
        }
        a.tracker.resolve_conflict("a", &conflict_id, Value::Null).unwrap();
        let doc = converge(&hub, &[&a, &b]);
        assert_eq!(doc["conflicts"], json!([]), "{doc:#}");
        for r in [&a, &b] {
            let ready = r.tracker.ready_work(ReadyQuery::default()).unwrap();
            assert_eq!(ready.items.len(), 1);
            assert_eq!(ready.items[0].title, "not done after all");
        }
    }

    /// A child created on one store under a parent that another deletes at
    /// the same time is kept and reported (`parent_deleted`) everywhere,
    /// until the parent is restored.
    #[test]
    fn a_child_created_under_a_concurrently_deleted_parent_is_a_conflict() {
        let hub = MemoryHub::new();
        let [a, b] = [SqliteReplica::new(), SqliteReplica::new()];
        let parent = a
            .tracker
            .create_work_item("a", crate::new_item("task", "parent", None))
            .unwrap();
        converge(&hub, &[&a, &b]);
        update(&a, &parent.id, |u| u.deleted = Some(true));
        let child = b
            .tracker
            .create_work_item("b", crate::new_item("task", "child", Some(&parent.id)))
            .unwrap();
        let doc = converge(&hub, &[&a, &b]);
        let orphaned = conflicts_of_kind(&doc, "parent_deleted");
        assert_eq!(orphaned.len(), 1, "{doc:#}");
        assert_eq!(orphaned[0]["record_id"], json!(child.id));
        assert_eq!(orphaned[0]["field"], "parent_id");
        update(&b, &parent.id, |u| u.deleted = Some(false));
        let doc = converge(&hub, &[&a, &b]);
        assert_eq!(doc["conflicts"], json!([]), "{doc:#}");
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

mod hub_admin {
    //! `waymark hub replicas|forget|compact` through the binary.

    use serde_json::Value;
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    use super::end_to_end::url_of;

    fn waymark(dir: &std::path::Path, hub: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("WAYMARK_HUB_URL", hub)
            .env("WAYMARK_SPACE", "admin")
            .output()
            .expect("run waymark")
    }

    fn ok(dir: &std::path::Path, hub: &str, args: &[&str]) -> String {
        let out = waymark(dir, hub, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn replicas_forget_and_compact() {
        let db = block_on(TestDatabase::create("hub_admin"));
        let hub = url_of(&db);
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let [a, b, c] = [dirs[0].path(), dirs[1].path(), dirs[2].path()];
        ok(a, &hub, &["item", "create", "--type", "task", "--title", "first"]);
        ok(a, &hub, &["sync"]);
        ok(b, &hub, &["sync"]);
        ok(a, &hub, &["item", "create", "--type", "task", "--title", "second"]);
        ok(a, &hub, &["sync"]);

        let listed: Value = serde_json::from_str(&ok(a, &hub, &["hub", "replicas", "--json"])).unwrap();
        let replicas = listed["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 2, "{listed}");
        assert_eq!(listed["head"], 2);
        let mine = replicas.iter().find(|r| r["this_store"] == true).unwrap();
        assert_eq!(mine["cursor"], 2);
        let theirs = replicas.iter().find(|r| r["this_store"] == false).unwrap();
        assert_eq!(theirs["cursor"], 1);
        let b_id = theirs["replica"].as_str().unwrap().to_owned();
        let human = ok(a, &hub, &["hub", "replicas"]);
        assert!(human.contains(&b_id) && human.contains("(this store)"), "{human}");

        // b holds the floor at 1 until it is forgotten.
        let held: Value = serde_json::from_str(&ok(a, &hub, &["hub", "compact", "--json"])).unwrap();
        assert_eq!((held["floor"].as_u64(), held["folded"].as_u64()), (Some(1), Some(1)));
        let bad = waymark(a, &hub, &["hub", "forget", "nobody"]);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("not a replica id"));
        let forgot: Value = serde_json::from_str(&ok(a, &hub, &["hub", "forget", &b_id, "--json"])).unwrap();
        assert_eq!(forgot["forgotten"], b_id.as_str());
        assert_eq!(
            (forgot["floor"].as_u64(), forgot["snapshots"].as_u64()),
            (Some(2), Some(2))
        );
        let again = waymark(a, &hub, &["hub", "forget", &b_id]);
        assert!(!again.status.success(), "b is retired already");

        // b and a new store catch up from the snapshots.
        ok(b, &hub, &["sync"]);
        ok(c, &hub, &["sync"]);
        let exports: Vec<String> = [a, b, c].iter().map(|d| ok(d, &hub, &["export", "json"])).collect();
        assert_eq!(exports[0], exports[1]);
        assert_eq!(exports[0], exports[2]);
        assert!(exports[2].contains("second"));
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
        for _ in 0..crate::kills(10) {
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

    /// `serve` killed with SIGKILL while an agent writes through it: every
    /// write whose answer the agent received is in the store afterwards.
    #[test]
    fn serve_killed_mid_write_loses_no_acknowledged_write() {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let mut acknowledged: Vec<String> = Vec::new();
        let mut seed = 0x6b1_u64;
        let mut n = 0u64;
        for _ in 0..crate::kills(10) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
                .arg("--data-dir")
                .arg(dir.path())
                .arg("serve")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "killer", "version": "1"}}});
            let _ = writeln!(stdin, "{init}");
            let _ = writeln!(stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#);
            // The server is up once it answers `initialize`; the kill lands
            // while writes are in flight.
            rx.recv_timeout(Duration::from_secs(30))
                .expect("serve answers initialize");
            // Writes in flight when the kill lands, acknowledged or not.
            let writer = std::thread::spawn(move || {
                let mut titles = Vec::new();
                for _ in 0..400 {
                    n += 1;
                    let title = format!("kill {n}");
                    let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
                        "name": "create_work_item", "arguments": {"item_type": "task", "title": title}}});
                    if writeln!(stdin, "{call}").is_err() {
                        break;
                    }
                    titles.push((n, title));
                }
                (titles, n)
            });
            // The kill lands 0-60 ms after the first write is answered: some
            // writes answered and some in flight, however loaded the machine.
            let first = rx.recv_timeout(Duration::from_secs(30)).ok();
            std::thread::sleep(Duration::from_millis((seed >> 33) % 60));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            let (titles, last) = writer.join().unwrap();
            n = last;
            let _ = reader.join();
            for line in first.into_iter().chain(rx.try_iter()) {
                let Ok(reply) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let answered = reply["id"].as_u64();
                let ok = reply["result"]["isError"] != json!(true) && reply.get("result").is_some();
                if let (Some(id), true) = (answered, ok)
                    && let Some((_, title)) = titles.iter().find(|(k, _)| *k == id)
                {
                    acknowledged.push(title.clone());
                }
            }
        }
        let tracker = waymark::Tracker::open(dir.path()).unwrap();
        let mut stored = std::collections::HashSet::new();
        let mut cursor = None;
        loop {
            let page = tracker
                .list_work_items(waymark::ops::WorkItemFilter {
                    limit: Some(100),
                    cursor: cursor.take(),
                    ..Default::default()
                })
                .unwrap();
            stored.extend(page.items.into_iter().map(|w| w.title));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let lost: Vec<&String> = acknowledged.iter().filter(|t| !stored.contains(*t)).collect();
        assert!(!acknowledged.is_empty(), "some writes were answered before the kills");
        assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:?}", lost.len());
        assert!(tracker.store().verify().unwrap().is_empty());
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
            .args(["serve", "--toolset", "all"])
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
                assert_eq!(page["rows"][0][1], "pushed by the worker");
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

/// Stores and a real Postgres hub through `waymark::sync`, the path `waymark
/// sync` and the worker take (bind, the hub's answer, a round that recovers
/// from the hub's refusals): a store that joins late, a hub restored from an
/// older backup.
mod republication {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::{Value, json};
    use waymark::Tracker;
    use waymark::config::Settings;
    use waymark::ops::*;
    use waymark::sync::{RoundSummary, bind_cursor, sync_once_blocking};
    use waymark_sync::Replica;
    use waymark_sync::postgres::testing::{TestDatabase, block_on};

    fn settings(db: &TestDatabase, space: &str) -> Settings {
        Settings::default().with_overrides(Some(super::end_to_end::url_of(db)), Some(space.into()))
    }

    fn sync(t: &Tracker, s: &Settings) -> RoundSummary {
        sync_once_blocking(t.store(), s).unwrap_or_else(|e| panic!("sync: {e}"))
    }

    fn open(dir: &Path) -> Tracker {
        Tracker::open(dir).expect("open store")
    }

    fn item(t: &Tracker, title: &str, parent: Option<&str>) -> String {
        let kind = if parent.is_some() { "task" } else { "project" };
        t.create_work_item("test", crate::new_item(kind, title, parent))
            .unwrap()
            .id
    }

    fn update(t: &Tracker, id: &str, change: impl FnOnce(&mut WorkItemUpdate)) {
        let mut u = WorkItemUpdate {
            id: id.to_owned(),
            version: t.get_work_item(id).unwrap().version,
            ..Default::default()
        };
        change(&mut u);
        t.update_work_item("test", u).unwrap();
    }

    fn doc(t: &Tracker) -> Value {
        t.export_json().unwrap()
    }

    /// Every work item's title, with whether it is deleted.
    fn titles(t: &Tracker) -> BTreeSet<(String, bool)> {
        doc(t)["work_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["title"].as_str().unwrap().to_owned(), !w["deleted_at"].is_null()))
            .collect()
    }

    /// Each record's registers (its values, with their dots, and its delete
    /// races), leaving out its version vector: a store that published its
    /// state again has also seen its own changes under the id it retired,
    /// which no other store ever receives.
    fn registers(t: &Tracker) -> Vec<(String, String, String)> {
        t.store()
            .record_states()
            .unwrap()
            .into_iter()
            .map(|((collection, id), state)| {
                let fields = serde_json::to_string(&(&state.fields, &state.delete_races)).unwrap();
                (collection, id, fields)
            })
            .collect()
    }

    /// The same export, registers and conflicts everywhere, nothing left to
    /// push, and `verify` clean.
    fn assert_converged(stores: &[&Tracker]) {
        let first = stores[0];
        for t in stores {
            assert_eq!(doc(t), doc(first));
            assert!(registers(t) == registers(first), "the stores hold different registers");
            assert_eq!(t.list_conflicts().unwrap().len(), first.list_conflicts().unwrap().len());
            assert_eq!(t.store().pending_changes().unwrap(), 0);
            assert_eq!(t.store().verify().unwrap(), Vec::<String>::new());
        }
    }

    /// The hub's log of `space`: its head, and (seq, replica, counter) rows.
    fn log(db: &TestDatabase, space: &str) -> (i64, Vec<(i64, String, i64)>) {
        block_on(async {
            let c = db.raw_client().await;
            let head: i64 = c
                .query_one("SELECT head FROM spaces WHERE space_id = $1", &[&space])
                .await
                .unwrap()
                .get(0);
            let rows = c
                .query(
                    "SELECT seq, replica_id::text, counter FROM changes WHERE space_id = $1 ORDER BY seq",
                    &[&space],
                )
                .await
                .unwrap();
            (head, rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        })
    }

    /// The hub restored from a backup taken when its log ended at `head`:
    /// what came after is gone.
    fn restore(db: &TestDatabase, space: &str, head: i64) {
        block_on(async {
            let c = db.raw_client().await;
            c.execute("DELETE FROM changes WHERE space_id = $1 AND seq > $2", &[&space, &head])
                .await
                .unwrap();
            c.execute("UPDATE spaces SET head = $2 WHERE space_id = $1", &[&space, &head])
                .await
                .unwrap();
        });
    }

    /// A store written offline for a while (a tree, edits, a delete, a
    /// dependency, a vendor, a restart) keeps no outbox; bound to a hub, by
    /// two processes at once, it publishes every record once, its later
    /// writes (of either process) go to the outbox, and it converges with a
    /// store that synced from the start, with nothing lost.
    #[test]
    fn a_store_written_offline_then_bound_converges_with_nothing_lost() {
        let db = block_on(TestDatabase::create("late_bind"));
        let s = settings(&db, "late");
        let (_b_dir, b) = crate::tracker();
        sync(&b, &s);
        item(&b, "from b", None);
        assert_eq!(
            b.store().pending_changes().unwrap(),
            1,
            "bound from the start: an outbox"
        );
        sync(&b, &s);

        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        let p = item(&a, "P", None);
        let t1 = item(&a, "t1", Some(&p));
        let t2 = item(&a, "t2", Some(&p));
        let t3 = item(&a, "t3", Some(&p));
        update(&a, &t1, |u| u.title = Some("t1 renamed".into()));
        update(&a, &t1, |u| u.priority = Some(0));
        update(&a, &t2, |u| u.deleted = Some(true));
        a.manage_dependency(
            "test",
            DependencyChange {
                action: DependencyAction::Add,
                source_id: t3.clone(),
                target_id: t1.clone(),
                dependency_type: "depends_on".into(),
            },
        )
        .unwrap();
        let metadata = json!({"ratio": 0.300_000_000_000_000_04}).as_object().cloned();
        a.create_vendor(
            "test",
            NewVendor {
                name: "EPSON".into(),
                extractor_version: None,
                metadata,
            },
        )
        .unwrap();
        assert_eq!(a.store().pending_changes().unwrap(), 0, "never bound: no outbox");
        drop(a);
        let a = open(dir.path());
        update(&a, &t3, |u| u.title = Some("t3 after a restart".into()));
        assert_eq!(a.store().pending_changes().unwrap(), 0);

        // Bound, the hub not reached yet: what waits is its publication.
        bind_cursor(a.store(), &s).unwrap();
        assert_eq!(a.store().pending_changes().unwrap(), 0);
        assert_eq!(a.get_project_configuration().unwrap().1.pending_changes, 6);

        // Two processes serving the store reach the hub at once.
        let a2 = open(dir.path());
        let published: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&a, &a2]
                .map(|t| {
                    let (store, s) = (t.store().clone(), s.clone());
                    scope.spawn(move || {
                        bind_cursor(&store, &s).unwrap();
                        store.hub_answered().unwrap()
                    })
                })
                .into_iter()
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = published.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 6], "six records, published once: {published:?}");
        let version = a.get_work_item(&t1).unwrap().version;
        assert_eq!(
            version, 3,
            "a publication keeps versions: an update based on a read still applies"
        );
        item(&a, "after the binding", Some(&p));
        assert_eq!(
            a2.store().pending_changes().unwrap(),
            7,
            "six published, one written since"
        );

        assert_eq!(sync(&a2, &s).pushed, 7);
        sync(&b, &s);
        sync(&a, &s);
        assert_converged(&[&a, &a2, &b]);
        let expected: BTreeSet<(String, bool)> = [
            ("from b", false),
            ("P", false),
            ("t1 renamed", false),
            ("t2", true),
            ("t3 after a restart", false),
            ("after the binding", false),
        ]
        .map(|(t, d)| (t.to_owned(), d))
        .into();
        assert_eq!(titles(&b), expected);
        let on_b = doc(&b);
        assert_eq!(on_b["dependencies"].as_array().unwrap().len(), 1, "{on_b:#}");
        let epson = b.query_vendor_status("epson").unwrap();
        assert_eq!(
            epson.metadata["ratio"].as_f64().map(f64::to_bits),
            Some(0.300_000_000_000_000_04f64.to_bits())
        );
        assert_eq!(b.get_work_item(&t1).unwrap().priority, 0);
        let (head, rows) = log(&db, "late");
        assert_eq!((head, rows.len()), (8, 8), "one change of b, seven of a: {rows:?}");
    }

    /// The hub restored from a backup taken before some pushes: a store
    /// with nothing to push finds the log ending below its cursor
    /// (`LogReset`), stores whose acknowledged changes are gone find the hub
    /// expecting them (`HubLost`); each publishes its state again under a
    /// new replica id and pulls the log again, and the three converge with
    /// every write, including those only the lost part of the log held.
    #[test]
    fn a_hub_restored_from_an_older_backup_gets_every_stores_state_again() {
        let db = block_on(TestDatabase::create("restored"));
        let s = settings(&db, "restored");
        let ((_a_dir, a), (_b_dir, b), (_c_dir, c)) = (crate::tracker(), crate::tracker(), crate::tracker());
        for t in [&a, &b, &c] {
            sync(t, &s);
        }
        let a1 = item(&a, "a1", None);
        a.create_vendor(
            "test",
            NewVendor {
                name: "V".into(),
                ..Default::default()
            },
        )
        .unwrap();
        sync(&a, &s);
        let (backup, _) = log(&db, "restored");
        assert_eq!(backup, 2);

        update(&a, &a1, |u| u.title = Some("a1 after the backup".into()));
        sync(&a, &s);
        item(&b, "b1", None);
        for t in [&b, &c, &a] {
            sync(t, &s);
        }
        assert_eq!(log(&db, "restored").0, 4);
        let ids = |ts: [&Tracker; 3]| ts.map(|t| t.store().replica_id().unwrap());
        let before = ids([&a, &b, &c]);

        restore(&db, "restored", backup);
        // c has nothing to push, and its cursor (4) is past the log's end (2).
        let on_c = sync(&c, &s);
        assert_eq!(on_c.pushed, 3, "c published a1, b1 and V again: {on_c:?}");
        // b wrote since: the hub expects b's change b1 first, which it lost.
        item(&b, "b2", None);
        let on_b = sync(&b, &s);
        assert_eq!(on_b.pushed, 4, "{on_b:?}");
        // a too (its retitle of a1 is gone from the hub).
        item(&a, "a2", None);
        sync(&a, &s);
        for t in [&c, &b, &a, &c] {
            sync(t, &s);
        }
        let after = ids([&a, &b, &c]);
        for i in 0..3 {
            assert_ne!(before[i], after[i], "store {i} took a new replica id");
        }
        assert_converged(&[&a, &b, &c]);
        let expected: BTreeSet<(String, bool)> = ["a1 after the backup", "b1", "b2", "a2"]
            .map(|t| (t.to_owned(), false))
            .into();
        assert_eq!(titles(&c), expected);
        assert!(c.query_vendor_status("V").is_ok());
        assert_eq!(
            c.list_conflicts().unwrap().len(),
            0,
            "republished values agree: no conflict"
        );
        let (head, rows) = log(&db, "restored");
        let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "dense seqs");
    }

    /// A hub restored from an older backup and written past a store's cursor
    /// before that store syncs again: the store's cursor is no longer past
    /// the log's end, yet the seqs below it now name other changes. The
    /// store sees that the change at its cursor is not the one it applied
    /// there, pulls the log again and publishes its state: the three
    /// converge, nothing skipped.
    #[test]
    fn a_restored_hub_written_past_a_stores_cursor_is_noticed() {
        let db = block_on(TestDatabase::create("restored_past"));
        let s = settings(&db, "restored");
        let ((_a_dir, a), (_b_dir, b), (_c_dir, c)) = (crate::tracker(), crate::tracker(), crate::tracker());
        for t in [&a, &b, &c] {
            sync(t, &s);
        }
        item(&a, "a1", None);
        sync(&a, &s);
        let (backup, _) = log(&db, "restored");
        item(&a, "a2", None);
        item(&b, "b1", None);
        for t in [&a, &b, &c, &a] {
            sync(t, &s);
        }
        restore(&db, "restored", backup);
        // b and a write and sync first: each publishes its state again (the
        // hub lost what it acknowledged), which carries the log past c's
        // cursor with changes c never saw under seqs it thinks it has.
        item(&b, "b2", None);
        sync(&b, &s);
        item(&a, "a3", None);
        sync(&a, &s);
        let (head, _) = log(&db, "restored");
        let c_cursor = c.store().cursor().unwrap() as i64;
        assert!(
            head >= c_cursor,
            "the log ({head}) reaches c's cursor ({c_cursor}) again"
        );
        for t in [&c, &b, &a, &c] {
            sync(t, &s);
        }
        assert_converged(&[&a, &b, &c]);
        let expected: BTreeSet<(String, bool)> = ["a1", "a2", "a3", "b1", "b2"].map(|t| (t.to_owned(), false)).into();
        assert_eq!(titles(&c), expected);
    }

    /// Bounded history (issue 13), nothing lost: b goes offline and keeps
    /// writing (a retitle that races a's, a new item, a delete); a goes on,
    /// b is forgotten (`waymark hub forget`) and the history compacted past
    /// b's cursor. When b comes back, its round pushes its unpushed writes
    /// as they are, joins the hub's snapshots into its store (it is behind
    /// the floor) and pulls the tail: b's writes all survive, the race is a
    /// conflict on both stores, and a fresh store that bootstraps from the
    /// snapshots plus the tail holds the same.
    #[test]
    fn a_store_behind_the_compaction_floor_catches_up_keeping_its_unpushed_writes() {
        let db = block_on(TestDatabase::create("behind_floor"));
        let s = settings(&db, "floor");
        let ((_a_dir, a), (_b_dir, b)) = (crate::tracker(), crate::tracker());
        let shared = item(&a, "shared", None);
        let doomed = item(&a, "doomed", None);
        sync(&a, &s);
        sync(&b, &s);
        let b_id = b.store().replica_id().unwrap();

        // b offline: three writes wait in its outbox.
        update(&b, &shared, |u| u.title = Some("b's title, offline".into()));
        item(&b, "b's item, offline", None);
        update(&b, &doomed, |u| u.deleted = Some(true));
        assert_eq!(b.store().pending_changes().unwrap(), 3);
        // a goes on, many times over.
        for n in 0..20 {
            update(&a, &shared, |u| u.description = Some(format!("revision {n}")));
            sync(&a, &s);
        }
        update(&a, &shared, |u| u.title = Some("a's title".into()));
        sync(&a, &s);

        let listed = waymark::sync::hub_replicas(a.store(), &s).unwrap();
        assert_eq!(listed.replicas.len(), 2);
        assert!(listed.replicas.iter().any(|r| r.this_store && r.cursor == listed.head));
        let compacted = waymark::sync::hub_forget(&s, &b_id.to_string()).unwrap();
        assert_eq!(compacted.forgotten.as_deref(), Some(b_id.to_string().as_str()));
        assert_eq!(
            compacted.floor, compacted.head,
            "a pulled everything; b no longer counts"
        );
        assert_eq!(compacted.snapshots, 2);
        assert_eq!(log(&db, "floor").1.len(), 0, "the log holds no change below the floor");
        let b_cursor = b.store().cursor().unwrap();
        assert!(b_cursor < compacted.floor, "b is behind the floor");
        // A bad replica id is a clear error that changes nothing.
        let bad = waymark::sync::hub_forget(&s, "not-a-replica").unwrap_err();
        assert!(bad.to_string().contains("not a replica id"), "{bad}");

        // b comes back.
        let back = sync(&b, &s);
        assert_eq!(back.pushed, 3, "its unpushed writes went out as they were: {back:?}");
        sync(&a, &s);
        assert_converged(&[&a, &b]);
        let expected: BTreeSet<(String, bool)> = [("a's title", false), ("b's item, offline", false), ("doomed", true)]
            .map(|(t, d)| (t.to_owned(), d))
            .into();
        assert_eq!(titles(&a), expected);
        let conflicts = a.list_conflicts().unwrap();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let values: BTreeSet<String> = conflicts[0].values.iter().map(|v| v.value.to_string()).collect();
        assert!(
            values.contains("\"b's title, offline\"") && values.contains("\"a's title\""),
            "both titles kept: {values:?}"
        );
        assert_eq!(
            doc(&b)["work_items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["id"] == shared.as_str())
                .unwrap()["description"],
            "revision 19",
            "b has a's edits it never pulled as changes"
        );

        // b reported again: live, and the next compaction folds its writes too.
        let again = waymark::sync::hub_compact(&s).unwrap();
        assert_eq!(again.floor, again.head);
        let (_c_dir, c) = crate::tracker();
        let fresh = sync(&c, &s);
        assert_eq!(fresh.pulled, 3, "three records from snapshots: {fresh:?}");
        assert_converged(&[&a, &b, &c]);
    }
}

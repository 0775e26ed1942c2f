//! The model-based property test of `spec/sync.md`.
//!
//! 2-6 in-memory replicas (more when a store file is copied) and one
//! in-memory hub run random scripts: writes to random field subsets of a few
//! records (`deleted_at` included), concurrent writes to the same field,
//! conflict resolutions, whole and partial rounds, short pages, pulls that
//! stop midway, duplicate pushes, lost replies, failed commits, crashes and
//! copied stores. After a final full sync of every replica:
//! - every replica holds the same state;
//! - it equals the state built from the hub's log in seq order, and in
//!   another causal order of the same changes;
//! - the hub holds every write exactly once, in dense seqs;
//! - no write is lost unless a later write saw it: a value survives in a
//!   field exactly when no other change to that field's record covers it.
//!
//! The world runs over any [`Hub`] wrapped in a [`FaultyHub`] (which injects
//! the failed commits, lost replies and short pages): the in-memory hub for
//! many cases, and the real Postgres hub (one database, a fresh space per
//! case) for fewer, with the same scenarios and the same checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};
use waymark_sync::memory::{Fault, MemoryHub, MemoryReplica};
use waymark_sync::postgres::testing::{TestDatabase, runtime};
use waymark_sync::postgres::{HubOptions, PostgresHub};
use waymark_sync::round::{RoundReport, SyncOptions, sync_round};
use waymark_sync::testing::{FaultyHub, block_on};
use waymark_sync::{Change, Dot, Hub, RecordStates, Replica, ReplicaId};

const COLLECTION: &str = "items";
const RECORDS: usize = 3;
const FIELDS: [&str; 4] = ["title", "status", "parent", "deleted_at"];
const MAX_REPLICAS: usize = 8;

#[derive(Clone, Debug)]
enum Action {
    /// A local write of the fields in `fields` (a bit mask over [`FIELDS`]).
    Write {
        replica: usize,
        record: usize,
        fields: u8,
        value: u8,
    },
    /// Resolve every open conflict of a record by writing its winner back.
    Resolve { replica: usize, record: usize },
    /// A sync round, possibly cut by a fault at one of its hub calls.
    Round {
        replica: usize,
        batch: usize,
        page: usize,
        fault: Option<(u64, bool)>,
    },
    /// Push one batch of at most `n` outbox changes, and nothing else.
    PushSome { replica: usize, n: usize },
    /// Pull and apply at most `pages` pages, then stop.
    PullSome { replica: usize, pages: usize, page: usize },
    /// Push again a batch the hub already committed.
    Repush { which: usize },
    /// The process dies and restarts: only durable state survives.
    Crash { replica: usize },
    /// The store file is copied; the copy notices and takes a new id.
    Copy { replica: usize },
}

fn action() -> impl Strategy<Value = Action> {
    let r = 0..MAX_REPLICAS;
    prop_oneof![
        6 => (r.clone(), 0..RECORDS, 1u8..16, 0u8..4)
            .prop_map(|(replica, record, fields, value)| Action::Write { replica, record, fields, value }),
        1 => (r.clone(), 0..RECORDS).prop_map(|(replica, record)| Action::Resolve { replica, record }),
        3 => (r.clone(), 1usize..4, 1usize..4, proptest::option::of((0u64..6, any::<bool>())))
            .prop_map(|(replica, batch, page, fault)| Action::Round { replica, batch, page, fault }),
        1 => (r.clone(), 1usize..4).prop_map(|(replica, n)| Action::PushSome { replica, n }),
        1 => (r.clone(), 1usize..3, 1usize..4)
            .prop_map(|(replica, pages, page)| Action::PullSome { replica, pages, page }),
        1 => any::<usize>().prop_map(|which| Action::Repush { which }),
        1 => r.clone().prop_map(|replica| Action::Crash { replica }),
        1 => r.prop_map(|replica| Action::Copy { replica }),
    ]
}

/// The world of one scenario, and what the test remembers of it.
struct World<H: Hub> {
    hub: FaultyHub<H>,
    /// The space this scenario uses on the hub.
    space: String,
    /// The runtime the hub needs (none: the hub needs no runtime).
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    replicas: Vec<MemoryReplica>,
    /// Each replica's clock offset (clocks disagree, and may go backwards).
    skews: Vec<i64>,
    step: u64,
    /// Every local write ever made.
    writes: Vec<Change>,
    /// Batches the hub committed and acknowledged, for resending.
    committed_batches: Vec<Vec<Change>>,
}

impl World<MemoryHub> {
    fn in_memory(replicas: usize, skews: Vec<i64>) -> Self {
        World::new(MemoryHub::new(), "model".into(), None, replicas, skews)
    }
}

impl<H: Hub> World<H> {
    fn new(
        hub: H,
        space: String,
        runtime: Option<Arc<tokio::runtime::Runtime>>,
        replicas: usize,
        skews: Vec<i64>,
    ) -> Self {
        World {
            hub: FaultyHub::new(hub),
            space,
            runtime,
            replicas: (0..replicas).map(|_| MemoryReplica::new(ReplicaId::mint())).collect(),
            skews,
            step: 0,
            writes: Vec::new(),
            committed_batches: Vec::new(),
        }
    }

    fn block<F: Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(future),
            None => block_on(future),
        }
    }

    /// The hub's whole log of the scenario's space.
    fn log(&self) -> Vec<(u64, Change)> {
        self.block(self.hub.log(&self.space)).expect("read the hub's log")
    }

    fn now(&self, replica: usize) -> u64 {
        let skew = self.skews[replica % self.skews.len()];
        (1_000_000 + self.step as i64 * 10 + skew) as u64
    }

    fn write(&mut self, replica: usize, record: usize, fields: BTreeMap<String, Value>) {
        let now = self.now(replica);
        let change = self.replicas[replica].write(COLLECTION, &format!("r{record}"), fields, now);
        self.writes.push(change);
    }

    fn perform(&mut self, action: &Action) {
        self.step += 1;
        let n = self.replicas.len();
        match *action {
            Action::Write {
                replica,
                record,
                fields,
                value,
            } => {
                let fields = FIELDS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| fields & (1 << i) != 0)
                    .map(|(_, &name)| {
                        let value = match (name, value % 2) {
                            ("deleted_at", 0) => Value::Null,
                            ("deleted_at", _) => json!(self.step),
                            _ => json!(value),
                        };
                        (name.to_owned(), value)
                    })
                    .collect();
                self.write(replica % n, record, fields);
            }
            Action::Resolve { replica, record } => {
                let state = self.replicas[replica % n].record(COLLECTION, &format!("r{record}"));
                let fields: BTreeMap<_, _> = state
                    .conflicts()
                    .map(|(name, register)| (name.to_owned(), register.winner().unwrap().value.clone()))
                    .collect();
                if !fields.is_empty() {
                    self.write(replica % n, record, fields);
                }
            }
            Action::Round {
                replica,
                batch,
                page,
                fault,
            } => {
                if let Some((at, lose_reply)) = fault {
                    let kind = if lose_reply {
                        Fault::DropReplyAfterCommit
                    } else {
                        Fault::FailBeforeCommit
                    };
                    self.hub.inject(at, kind);
                }
                let opts = SyncOptions {
                    push_batch: batch,
                    page_size: page,
                };
                let result = self.block(sync_round(&self.replicas[replica % n], &self.hub, &self.space, opts));
                self.hub.clear_faults();
                if let Err(e) = result {
                    assert!(fault.is_some() && e.is_retryable(), "round failed without a fault: {e}");
                }
            }
            Action::PushSome { replica, n: limit } => {
                let replica = &self.replicas[replica % n];
                let batch = replica.outbox(limit).unwrap();
                if !batch.is_empty() {
                    self.block(self.hub.push(&self.space, &batch))
                        .expect("a batch from the outbox head is accepted");
                    replica
                        .acknowledge(&batch.iter().map(|c| c.dot).collect::<Vec<_>>())
                        .unwrap();
                    self.committed_batches.push(batch);
                }
            }
            Action::PullSome { replica, pages, page } => {
                let replica = &self.replicas[replica % n];
                for _ in 0..pages {
                    let cursor = replica.cursor().unwrap();
                    let page = self.block(self.hub.pull(&self.space, cursor, page)).unwrap();
                    let Some(&(last, _)) = page.changes.last() else { break };
                    replica.apply_page(&page.changes, last).unwrap();
                }
            }
            Action::Repush { which } => {
                if !self.committed_batches.is_empty() {
                    let batch = &self.committed_batches[which % self.committed_batches.len()];
                    let ack = self
                        .block(self.hub.push(&self.space, batch))
                        .expect("a resent batch is accepted");
                    assert_eq!(ack.inserted, 0, "a resent batch stores nothing new");
                }
            }
            Action::Crash { replica } => {
                let restarted = self.replicas[replica % n].reopen();
                self.replicas[replica % n] = restarted;
            }
            Action::Copy { replica } => {
                if n < MAX_REPLICAS {
                    let copy = self.replicas[replica % n].copy_file();
                    copy.take_new_id(ReplicaId::mint());
                    self.replicas.push(copy);
                }
            }
        }
    }

    /// Sync every replica, whole rounds without faults, until a pass does nothing.
    fn sync_until_quiet(&self) {
        for _ in 0..=MAX_REPLICAS + 1 {
            let mut quiet = true;
            for replica in &self.replicas {
                let report: RoundReport = self
                    .block(sync_round(replica, &self.hub, &self.space, SyncOptions::default()))
                    .expect("final sync");
                quiet &= report.pushed == 0 && report.pulled == 0;
            }
            if quiet {
                return;
            }
        }
        panic!("sync did not settle");
    }
}

fn key(change: &Change) -> (String, String) {
    (change.collection.clone(), change.record_id.clone())
}

fn fold<'a>(changes: impl IntoIterator<Item = &'a Change>) -> RecordStates {
    let mut states = RecordStates::new();
    for change in changes {
        states.entry(key(change)).or_default().apply(change);
    }
    states
}

/// A random causal order of `changes`: a change comes after every change of
/// its record that its context covers, and otherwise anywhere.
fn shuffled_causal_order(changes: &[Change], mut seed: u64) -> Vec<&Change> {
    let mut next = move || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB) ^ (z >> 31)
    };
    let depends = |later: &Change, earlier: &Change| {
        key(later) == key(earlier) && later.dot != earlier.dot && later.context.covers(&earlier.dot)
    };
    let mut waiting: Vec<&Change> = changes.iter().collect();
    let mut order = Vec::with_capacity(changes.len());
    let mut done: BTreeSet<Dot> = BTreeSet::new();
    while !waiting.is_empty() {
        let ready: Vec<usize> = (0..waiting.len())
            .filter(|&i| {
                waiting
                    .iter()
                    .all(|other| !depends(waiting[i], other) || done.contains(&other.dot))
            })
            .collect();
        assert!(!ready.is_empty(), "the changes' contexts form a cycle");
        let pick = ready[(next() % ready.len() as u64) as usize];
        let change = waiting.swap_remove(pick);
        done.insert(change.dot);
        order.push(change);
    }
    order
}

fn check_converged<H: Hub>(world: &World<H>, order_seed: u64) {
    let log = world.log();

    // The hub holds every write exactly once, as written, in dense seqs.
    let seqs: Vec<u64> = log.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "dense seqs");
    let stored: HashMap<Dot, &Change> = log.iter().map(|(_, c)| (c.dot, c)).collect();
    assert_eq!(stored.len(), log.len(), "no change stored twice");
    assert_eq!(log.len(), world.writes.len(), "every write reached the hub");
    for write in &world.writes {
        assert_eq!(
            stored.get(&write.dot),
            Some(&write),
            "write {:?} stored as written",
            write.dot
        );
    }

    // Every replica holds the same state, and nothing is left to exchange.
    let expected = world.replicas[0].record_states().unwrap();
    for (i, replica) in world.replicas.iter().enumerate() {
        assert_eq!(
            replica.record_states().unwrap(),
            expected,
            "replica {i} differs from replica 0"
        );
        assert_eq!(replica.pending(), 0, "replica {i} still has changes to push");
        assert_eq!(replica.cursor().unwrap(), log.len() as u64);
    }

    // It is the state of the log, in hub order and in another causal order.
    let changes: Vec<Change> = log.into_iter().map(|(_, c)| c).collect();
    assert_eq!(fold(&changes), expected, "replicas equal the log applied in hub order");
    let shuffled = shuffled_causal_order(&changes, order_seed);
    assert_eq!(
        fold(shuffled),
        expected,
        "replicas equal the log applied in another causal order"
    );

    // A value survives exactly when no other change to its field saw it.
    for change in &changes {
        let record = &expected[&key(change)];
        for (field, value) in &change.fields {
            let covered = changes.iter().any(|later| {
                later.dot != change.dot
                    && key(later) == key(change)
                    && later.fields.contains_key(field)
                    && later.context.covers(&change.dot)
            });
            let survivor = record.fields[field].siblings().iter().find(|s| s.dot == change.dot);
            match (covered, survivor) {
                (false, None) => panic!("write {:?} to {field} was lost though no write saw it", change.dot),
                (true, Some(_)) => panic!("write {:?} to {field} survives though a later write saw it", change.dot),
                (false, Some(s)) => assert_eq!(&s.value, value),
                (true, None) => {}
            }
        }
    }
}

/// One scenario: replicas, their clock skews, a script, and the seed of the
/// other causal order the final check folds the log in.
type Scenario = (usize, Vec<i64>, Vec<Action>, u64);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        2usize..=6,
        proptest::collection::vec(-500i64..500, 6),
        proptest::collection::vec(action(), 0..80),
        any::<u64>(),
    )
}

fn play<H: Hub>(mut world: World<H>, actions: &[Action], order_seed: u64) {
    for action in actions {
        world.perform(action);
    }
    world.sync_until_quiet();
    check_converged(&world, order_seed);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_nothing(
        (replicas, skews, actions, order_seed) in scenario(),
    ) {
        play(World::in_memory(replicas, skews), &actions, order_seed);
    }
}

/// Cases of [`over_postgres_replicas_converge_and_lose_nothing`]
/// (`WAYMARK_MODEL_PG_CASES` overrides).
const POSTGRES_CASES: u32 = 32;

/// The same scenarios against the real Postgres hub: one database, a fresh
/// space and a fresh hub (new connections) per case, faults injected in
/// front of it by [`FaultyHub`].
#[test]
fn over_postgres_replicas_converge_and_lose_nothing() {
    let rt = Arc::new(runtime());
    let db = rt.block_on(TestDatabase::create("model"));
    rt.block_on(db.hub()); // migrated once
    let cases = std::env::var("WAYMARK_MODEL_PG_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(POSTGRES_CASES);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&scenario(), |(replicas, skews, actions, order_seed)| {
        let hub = PostgresHub::new(db.url().clone(), HubOptions::default()).expect("a hub");
        let space = format!("model-{}", uuid::Uuid::now_v7());
        let world = World::new(hub, space, Some(rt.clone()), replicas, skews);
        play(world, &actions, order_seed);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    eprintln!(
        "model over Postgres: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The scenario of the issue, by hand: offline edits on three replicas, then
/// rounds in an unusual order.
#[test]
fn three_offline_replicas_converge_with_the_same_conflicts() {
    let mut world = World::in_memory(3, vec![0, -300, 200]);
    let fields = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    world.write(0, 0, fields(&[("title", json!("base")), ("status", json!("open"))]));
    world.sync_until_quiet();
    world.write(0, 0, fields(&[("title", json!("from a"))]));
    world.write(1, 0, fields(&[("title", json!("from b")), ("priority", json!(1))]));
    world.write(2, 0, fields(&[("deleted_at", json!(5))]));
    for i in [2, 0, 1, 2, 0] {
        world
            .block(sync_round(
                &world.replicas[i],
                &world.hub,
                &world.space,
                SyncOptions::default(),
            ))
            .unwrap();
    }
    world.sync_until_quiet();
    check_converged(&world, 7);
    let record = world.replicas[1].record(COLLECTION, "r0");
    let conflicts: Vec<_> = record.conflicts().map(|(n, _)| n).collect();
    assert_eq!(conflicts, ["title"]);
    assert_eq!(record.value("deleted_at"), Some(&json!(5)));
    assert_eq!(record.value("priority"), Some(&json!(1)));

    world.perform(&Action::Resolve { replica: 2, record: 0 });
    world.sync_until_quiet();
    check_converged(&world, 8);
    assert_eq!(world.replicas[0].record(COLLECTION, "r0").conflicts().count(), 0);
}

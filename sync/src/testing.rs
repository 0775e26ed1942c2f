//! The conformance suite of the protocol: one set of tests that every
//! [`Hub`] and every [`Replica`] must pass, instantiated per implementation
//! by a macro (TaskChampion's storage-test style).
//!
//! ```text
//! waymark_sync::hub_conformance_tests!(block_on = my_block_on, hub = PgHub::connect(&url()).await?);
//! waymark_sync::replica_conformance_tests!(SqliteFixture::new());
//! ```
//!
//! The hub expression is evaluated inside the test's async block, so it may
//! `.await`; each test uses its own freshly named space and fresh replica
//! ids, so the tests can share one database. Compiled for this crate's tests
//! and behind the `testing` feature; never part of a release build.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake};
use std::thread::{self, Thread};

use serde_json::{Value, json};

use crate::change::{Change, SCHEMA_VERSION};
use crate::clock::{Dot, Hlc, ReplicaId, VersionVector};
use crate::memory::{Fault, MemoryReplica};
use crate::protocol::{
    CompactOptions, CompactReport, Frontier, Hub, HubAdmin, HubError, PullPage, PushAck, Replica, ReplicaError,
    ReplicaInfo, SnapshotPage,
};
use crate::snapshot::RecordKey;

/// Run a future to completion on this thread (enough for hubs that need no
/// runtime of their own, like [`crate::memory::MemoryHub`]).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => return value,
            Poll::Pending => thread::park(),
        }
    }
}

/// A space name no other test uses.
pub fn fresh_space(test: &str) -> String {
    format!("conformance-{test}-{}", uuid::Uuid::now_v7())
}

/// A change of `replica` with the given counter, to record `record`.
pub fn change(replica: ReplicaId, counter: u64, record: &str, fields: Value) -> Change {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields).expect("fields are an object");
    Change {
        collection: "items".into(),
        record_id: record.into(),
        dot: Dot { replica, counter },
        context: VersionVector::new(),
        fields,
        hlc: Hlc::from_parts(1_000 + counter, 0),
        author: "conformance".into(),
        schema_version: SCHEMA_VERSION,
    }
}

/// Changes 1..=n of `replica`, each to its own record.
pub fn run_of(replica: ReplicaId, n: u64) -> Vec<Change> {
    (1..=n)
        .map(|c| change(replica, c, &format!("r{c}"), json!({"title": format!("t{c}")})))
        .collect()
}

/// A replica under test, with a way to make local writes as a tool would.
pub trait ReplicaFixture: Replica {
    /// Make one local write to record number `record` (creating it when
    /// new), carrying `label` somewhere in its fields: exactly one change
    /// lands in the outbox.
    fn write_record(&self, record: u32, label: &str) -> Result<(), ReplicaError>;

    /// A change this replica refuses to apply (the default names no
    /// collection and no record).
    fn poison_change(&self) -> Change {
        let mut poison = change(ReplicaId::mint(), 1, "", json!({"title": "poison"}));
        poison.collection = String::new();
        poison
    }
}

impl ReplicaFixture for MemoryReplica {
    fn write_record(&self, record: u32, label: &str) -> Result<(), ReplicaError> {
        let fields = BTreeMap::from([("title".to_owned(), json!(label))]);
        self.write("items", &format!("r{record}"), fields, 1_000);
        Ok(())
    }
}

/// Any [`Hub`] with injected faults: the model-based test runs the same
/// scenarios over the in-memory hub and over the Postgres hub through this.
///
/// Calls (push and pull alike) are counted from 0. A fault armed for a call
/// replaces it: [`Fault::FailBeforeCommit`] answers
/// [`HubError::Unreachable`] without calling the inner hub;
/// [`Fault::DropReplyAfterCommit`] calls it (a push commits, a pull reads its
/// page) and then loses the reply ([`HubError::Unreachable`] too, unless the
/// inner hub failed by itself, whose error then stands). A page limit caps
/// every page whatever the caller asks.
#[derive(Debug)]
pub struct FaultyHub<H> {
    inner: H,
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Hub calls made so far.
    calls: u64,
    /// Call number -> the fault injected into that call.
    faults: BTreeMap<u64, Fault>,
    page_limit: Option<usize>,
}

impl<H: Hub> FaultyHub<H> {
    pub fn new(inner: H) -> Self {
        FaultyHub {
            inner,
            state: Mutex::new(FaultState::default()),
        }
    }

    /// The hub behind the faults.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inject `fault` into the call `calls_from_now` calls ahead (0: the next).
    pub fn inject(&self, calls_from_now: u64, fault: Fault) {
        let mut state = self.state();
        let at = state.calls + calls_from_now;
        state.faults.insert(at, fault);
    }

    /// Forget every injected fault not yet triggered.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Serve at most `limit` changes per page (`None`: what the caller asks).
    pub fn set_page_limit(&self, limit: Option<usize>) {
        self.state().page_limit = limit;
    }

    /// Hub calls made so far.
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    fn take_fault(&self) -> (Option<Fault>, Option<usize>) {
        let mut state = self.state();
        let call = state.calls;
        state.calls += 1;
        (state.faults.remove(&call), state.page_limit)
    }

    /// The whole log of `space` (above its floor), paged through the inner
    /// hub (no faults).
    pub async fn log(&self, space: &str) -> Result<Vec<(u64, Change)>, HubError> {
        let floor = self.inner.pull(space, u64::MAX >> 1, 1).await?.floor;
        self.log_after(space, floor).await
    }

    /// The log of `space` after seq `after`, paged through the inner hub
    /// (no faults).
    pub async fn log_after(&self, space: &str, after: u64) -> Result<Vec<(u64, Change)>, HubError> {
        let mut log: Vec<(u64, Change)> = Vec::new();
        loop {
            let after = log.last().map_or(after, |(seq, _)| *seq);
            let page = self.inner.pull(space, after, usize::MAX).await?;
            if page.changes.is_empty() {
                return Ok(log);
            }
            log.extend(page.changes);
        }
    }
}

impl<H: Hub> Hub for FaultyHub<H> {
    async fn push(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        let (fault, _) = self.take_fault();
        if fault == Some(Fault::FailBeforeCommit) {
            return Err(HubError::Unreachable("injected: connection reset before commit".into()));
        }
        let ack = self.inner.push(space, changes).await?;
        if fault == Some(Fault::DropReplyAfterCommit) {
            return Err(HubError::Unreachable("injected: reply lost after commit".into()));
        }
        Ok(ack)
    }

    async fn pull(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        let (fault, page_limit) = self.take_fault();
        if fault == Some(Fault::FailBeforeCommit) {
            return Err(HubError::Unreachable(
                "injected: connection reset before the pull".into(),
            ));
        }
        let limit = page_limit.map_or(limit, |l| l.min(limit));
        let page = self.inner.pull(space, after_seq, limit).await?;
        if fault == Some(Fault::DropReplyAfterCommit) {
            return Err(HubError::Unreachable("injected: pull reply lost".into()));
        }
        Ok(page)
    }

    async fn snapshots(&self, space: &str, after: Option<&RecordKey>, limit: usize) -> Result<SnapshotPage, HubError> {
        let (fault, page_limit) = self.take_fault();
        if fault == Some(Fault::FailBeforeCommit) {
            return Err(HubError::Unreachable(
                "injected: connection reset before the snapshots".into(),
            ));
        }
        let limit = page_limit.map_or(limit, |l| l.min(limit));
        let page = self.inner.snapshots(space, after, limit).await?;
        if fault == Some(Fault::DropReplyAfterCommit) {
            return Err(HubError::Unreachable("injected: snapshot reply lost".into()));
        }
        Ok(page)
    }

    async fn report(&self, space: &str, frontier: &Frontier) -> Result<(), HubError> {
        let (fault, _) = self.take_fault();
        if fault == Some(Fault::FailBeforeCommit) {
            return Err(HubError::Unreachable(
                "injected: connection reset before the report".into(),
            ));
        }
        self.inner.report(space, frontier).await?;
        if fault == Some(Fault::DropReplyAfterCommit) {
            return Err(HubError::Unreachable("injected: report reply lost".into()));
        }
        Ok(())
    }
}

/// Administration goes straight to the inner hub (no faults, not counted).
impl<H: HubAdmin> HubAdmin for FaultyHub<H> {
    async fn replicas(&self, space: &str) -> Result<Vec<ReplicaInfo>, HubError> {
        self.inner.replicas(space).await
    }

    async fn forget(&self, space: &str, replica: ReplicaId) -> Result<bool, HubError> {
        self.inner.forget(space, replica).await
    }

    async fn compact(&self, space: &str, opts: CompactOptions) -> Result<CompactReport, HubError> {
        self.inner.compact(space, opts).await
    }
}

/// The hub half of the suite. Each test takes a hub and a space of its own.
pub mod hub {
    use serde_json::json;

    use super::{change, run_of};
    use crate::clock::ReplicaId;
    use crate::protocol::{Hub, HubError, PushAck};

    async fn pull_all<H: Hub>(hub: &H, space: &str) -> Vec<(u64, crate::Change)> {
        hub.pull(space, 0, usize::MAX).await.expect("pull").changes
    }

    /// A resent batch is accepted again without duplicating anything.
    pub async fn push_is_idempotent<H: Hub>(hub: &H, space: &str) {
        let a = ReplicaId::mint();
        let run = run_of(a, 3);
        let ack = hub.push(space, &run[..2]).await.expect("first push");
        assert_eq!(
            ack,
            PushAck {
                inserted: 2,
                already_stored: 0,
                head_seq: 2
            }
        );
        let again = hub.push(space, &run[..2]).await.expect("resent push");
        assert_eq!(
            again,
            PushAck {
                inserted: 0,
                already_stored: 2,
                head_seq: 2
            }
        );
        let overlapping = hub.push(space, &run).await.expect("overlapping push");
        assert_eq!(
            overlapping,
            PushAck {
                inserted: 1,
                already_stored: 2,
                head_seq: 3
            }
        );
        let log = pull_all(hub, space).await;
        let stored: Vec<_> = log.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(stored, run, "each change stored once, with its body intact");
    }

    /// A counter above the last stored + 1 is refused with the counter the
    /// hub expects, and the whole batch is refused with it.
    pub async fn push_rejects_a_gap_with_the_expected_counter<H: Hub>(hub: &H, space: &str) {
        let a = ReplicaId::mint();
        let run = run_of(a, 4);
        hub.push(space, &run[..1]).await.expect("push 1");
        let gap = hub.push(space, &run[2..3]).await;
        assert_eq!(
            gap,
            Err(HubError::Gap {
                replica: a,
                expected: 2
            })
        );
        let holey = hub.push(space, &[run[1].clone(), run[3].clone()]).await;
        assert_eq!(
            holey,
            Err(HubError::Gap {
                replica: a,
                expected: 3
            })
        );
        assert_eq!(pull_all(hub, space).await.len(), 1, "a refused batch stores nothing");
        let b = ReplicaId::mint();
        let late_start = hub.push(space, &[change(b, 2, "x", json!({"title": "x"}))]).await;
        assert_eq!(
            late_start,
            Err(HubError::Gap {
                replica: b,
                expected: 1
            })
        );
        assert!(!late_start.unwrap_err().is_retryable());
        hub.push(space, &run[1..]).await.expect("the gap filled");
        assert_eq!(pull_all(hub, space).await.len(), 4);
    }

    /// The same `(replica, counter)` with a different body means two stores
    /// share an id: an error, never an overwrite.
    pub async fn push_refuses_a_duplicate_replica<H: Hub>(hub: &H, space: &str) {
        let a = ReplicaId::mint();
        let original = change(a, 1, "r", json!({"title": "mine"}));
        hub.push(space, std::slice::from_ref(&original)).await.expect("push");
        let twin = change(a, 1, "r", json!({"title": "theirs"}));
        let refused = hub.push(space, &[twin]).await;
        assert_eq!(refused, Err(HubError::DuplicateReplica { replica: a, counter: 1 }));
        assert!(!refused.unwrap_err().is_retryable());
        let next = change(a, 2, "r", json!({"title": "next"}));
        let twin_behind = change(a, 1, "q", json!({"title": "theirs"}));
        let mixed = hub.push(space, &[next, twin_behind]).await;
        assert_eq!(mixed, Err(HubError::DuplicateReplica { replica: a, counter: 1 }));
        let log = pull_all(hub, space).await;
        assert_eq!(
            log,
            vec![(1, original)],
            "nothing overwritten, nothing of the refused batch stored"
        );
    }

    /// A change of a schema version the hub no longer accepts is refused.
    pub async fn push_refuses_a_retired_schema_version<H: Hub>(hub: &H, space: &str) {
        let mut old = change(ReplicaId::mint(), 1, "r", json!({"title": "old"}));
        old.schema_version = 0;
        let refused = hub.push(space, &[old]).await;
        assert!(
            matches!(refused, Err(HubError::SchemaRejected { schema_version: 0, .. })),
            "{refused:?}"
        );
        assert!(pull_all(hub, space).await.is_empty());
    }

    /// Seqs are 1, 2, 3, ... per space, in push order, across replicas and batches.
    pub async fn seqs_are_dense_and_increasing<H: Hub>(hub: &H, space: &str) {
        let replicas = [ReplicaId::mint(), ReplicaId::mint(), ReplicaId::mint()];
        let runs: Vec<_> = replicas.iter().map(|&r| run_of(r, 4)).collect();
        let mut pushed = Vec::new();
        for round in 0..2 {
            for run in &runs {
                let batch = &run[round * 2..round * 2 + 2];
                let ack = hub.push(space, batch).await.expect("push");
                pushed.extend_from_slice(batch);
                assert_eq!(ack.head_seq, pushed.len() as u64);
            }
        }
        let log = pull_all(hub, space).await;
        let seqs: Vec<u64> = log.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
        let stored: Vec<_> = log.into_iter().map(|(_, c)| c).collect();
        assert_eq!(stored, pushed, "seq order is push order");
    }

    /// Pull pages through the log from any cursor, in order, and ends empty.
    pub async fn pull_pages_through_the_log<H: Hub>(hub: &H, space: &str) {
        let run = run_of(ReplicaId::mint(), 10);
        hub.push(space, &run).await.expect("push");
        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let page = hub.pull(space, cursor, 3).await.expect("pull");
            assert_eq!(page.head_seq, 10);
            assert!(page.changes.len() <= 3);
            let Some(&(last, _)) = page.changes.last() else { break };
            for (i, (seq, _)) in page.changes.iter().enumerate() {
                assert_eq!(
                    *seq,
                    cursor + 1 + i as u64,
                    "pages are dense and start after the cursor"
                );
            }
            seen.extend(page.changes.into_iter().map(|(_, c)| c));
            cursor = last;
        }
        assert_eq!(seen, run);
        let middle = hub.pull(space, 4, 100).await.expect("pull");
        assert_eq!(middle.changes.first().map(|(s, _)| *s), Some(5));
        assert_eq!(middle.changes.len(), 6);
        // Each page names the change at the cursor it was read after.
        assert_eq!(middle.at_cursor, Some(run[3].dot), "the change at seq 4");
        assert_eq!(
            hub.pull(space, 0, 1).await.expect("pull").at_cursor,
            None,
            "no change at 0"
        );
        let beyond = hub.pull(space, 10, 100).await.expect("pull");
        assert!(beyond.changes.is_empty());
        assert_eq!(beyond.head_seq, 10);
    }

    /// Nothing crosses spaces: not changes, not seqs, not keys.
    pub async fn spaces_are_isolated<H: Hub>(hub: &H, space: &str) {
        let other = format!("{space}-other");
        let a = ReplicaId::mint();
        let here = change(a, 1, "r", json!({"title": "here"}));
        let there = change(a, 1, "r", json!({"title": "there"}));
        hub.push(space, std::slice::from_ref(&here)).await.expect("push here");
        let empty = hub.pull(&other, 0, 100).await.expect("pull other");
        assert!(empty.changes.is_empty());
        assert_eq!(empty.head_seq, 0);
        let ack = hub
            .push(&other, std::slice::from_ref(&there))
            .await
            .expect("same key in another space");
        assert_eq!(ack.head_seq, 1);
        assert_eq!(pull_all(hub, space).await, vec![(1, here)]);
        assert_eq!(pull_all(hub, &other).await, vec![(1, there)]);
    }
}

/// The administration half of the suite ([`HubAdmin`]): frontiers,
/// retiring replicas, compaction and snapshots.
pub mod admin {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::{change, run_of};
    use crate::change::Change;
    use crate::clock::{Dot, ReplicaId};
    use crate::protocol::{CompactOptions, Frontier, HubAdmin, PushAck};
    use crate::snapshot::fold;

    fn frontier(replica: ReplicaId, cursor: u64) -> Frontier {
        Frontier {
            replica,
            cursor,
            name: format!("project-{cursor}"),
            host: "laptop".into(),
        }
    }

    /// The hub lists what each replica reported; a forgotten one is
    /// retired until it reports again.
    pub async fn replicas_report_their_frontier<H: HubAdmin>(hub: &H, space: &str) {
        let (a, b) = (ReplicaId::mint(), ReplicaId::mint());
        hub.push(space, &run_of(a, 3)).await.expect("push");
        assert!(hub.replicas(space).await.expect("replicas").is_empty());
        hub.report(space, &frontier(a, 3)).await.expect("report a");
        hub.report(space, &frontier(b, 1)).await.expect("report b");
        hub.report(space, &frontier(b, 2)).await.expect("report b again");
        let mut listed = hub.replicas(space).await.expect("replicas");
        listed.sort_by_key(|r| r.cursor);
        let seen: Vec<_> = listed
            .iter()
            .map(|r| (r.replica, r.cursor, r.name.as_str(), r.host.as_str(), r.retired))
            .collect();
        assert_eq!(
            seen,
            vec![
                (b, 2, "project-2", "laptop", false),
                (a, 3, "project-3", "laptop", false)
            ]
        );
        assert!(hub.forget(space, b).await.expect("forget"), "b was live");
        assert!(
            !hub.forget(space, b).await.expect("forget again"),
            "b is retired already"
        );
        assert!(!hub.forget(space, ReplicaId::mint()).await.expect("forget unknown"));
        let retired: Vec<_> = hub
            .replicas(space)
            .await
            .expect("replicas")
            .into_iter()
            .filter(|r| r.retired)
            .map(|r| r.replica)
            .collect();
        assert_eq!(retired, vec![b]);
        hub.report(space, &frontier(b, 3)).await.expect("b is back");
        assert!(hub.replicas(space).await.expect("replicas").iter().all(|r| !r.retired));
        let other = format!("{space}-other");
        assert!(
            hub.replicas(&other).await.expect("replicas").is_empty(),
            "spaces are isolated"
        );
    }

    /// Compaction folds up to the lowest live cursor, in batches; the log
    /// keeps the tail; snapshots hold the folded state; a resend of a folded
    /// change is already stored and counters go on after it; a second run
    /// folds nothing.
    pub async fn compaction_folds_below_the_lowest_live_cursor<H: HubAdmin>(hub: &H, space: &str) {
        let (a, b) = (ReplicaId::mint(), ReplicaId::mint());
        let mut log = run_of(a, 5);
        let mut edit = change(b, 1, "r1", json!({"title": "b's"}));
        edit.context.insert(log[0].dot);
        log.push(edit);
        hub.push(space, &log[..5]).await.expect("push a");
        hub.push(space, &log[5..]).await.expect("push b");
        hub.report(space, &frontier(a, 6)).await.expect("report a");
        hub.report(space, &frontier(b, 3)).await.expect("report b");
        let none = CompactOptions {
            up_to: Some(0),
            ..CompactOptions::default()
        };
        assert_eq!(hub.compact(space, none).await.expect("compact").folded, 0);
        let report = hub.compact(space, CompactOptions::default()).await.expect("compact");
        assert_eq!(
            (report.folded, report.floor, report.head, report.snapshots),
            (3, 3, 6, 3)
        );
        let below = hub.pull(space, 0, 100).await.expect("pull below the floor");
        assert!(below.changes.is_empty(), "nothing below the floor");
        assert_eq!((below.floor, below.head_seq), (3, 6));
        let tail = hub.pull(space, 3, 100).await.expect("pull the tail");
        let tail: Vec<_> = tail.changes.into_iter().map(|(s, c)| (s, c.dot)).collect();
        assert_eq!(tail, vec![(4, log[3].dot), (5, log[4].dot), (6, log[5].dot)]);

        // Resends of folded changes are stored already; counters go on.
        let again = hub.push(space, &log[..5]).await.expect("resend");
        assert_eq!(
            again,
            PushAck {
                inserted: 0,
                already_stored: 5,
                head_seq: 6
            }
        );
        let gap = hub.push(space, &[change(a, 7, "r7", json!({"title": "t7"}))]).await;
        assert_eq!(
            gap,
            Err(crate::HubError::Gap {
                replica: a,
                expected: 6
            })
        );

        // b is forgotten: everything folds, in batches of two.
        assert!(hub.forget(space, b).await.expect("forget"));
        let batched = CompactOptions {
            batch: 2,
            ..CompactOptions::default()
        };
        let report = hub.compact(space, batched).await.expect("compact");
        assert_eq!((report.folded, report.floor, report.snapshots), (3, 6, 5));
        assert_eq!(
            hub.compact(space, batched).await.expect("again").folded,
            0,
            "idempotent"
        );

        let mut expected = BTreeMap::new();
        fold(&mut expected, &log);
        // Each snapshot keeps the seq of every write it shows (the log was
        // pushed in order: seq n is log[n - 1]).
        let mut expected_seqs = BTreeMap::new();
        let numbered: Vec<(u64, &Change)> = log.iter().enumerate().map(|(i, c)| (i as u64 + 1, c)).collect();
        crate::snapshot::fold_seqs(&mut expected_seqs, &expected, &numbered);
        let mut got_seqs = BTreeMap::new();
        let mut got = BTreeMap::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = hub.snapshots(space, after.as_ref(), 2).await.expect("snapshots");
            assert_eq!(page.floor, 6);
            assert!(page.records.len() <= 2);
            pages += 1;
            for s in page.records {
                for dot in crate::snapshot::kept_dots(&s.state) {
                    assert!(s.seqs.contains_key(&dot), "{dot:?} of {:?} has its seq", s.key());
                }
                got_seqs.insert(s.key(), s.seqs.clone());
                assert!(got.insert(s.key(), s.state).is_none(), "each record once");
            }
            match page.next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        assert!(pages >= 3);
        assert_eq!(got, expected, "the snapshots are the folded log");
        got_seqs.retain(|_, seqs: &mut BTreeMap<Dot, u64>| !seqs.is_empty());
        assert_eq!(got_seqs, expected_seqs, "with the hub seqs of what they show");
        let next = change(a, 6, "r1", json!({"title": "after"}));
        let ack = hub.push(space, &[next]).await.expect("the next change");
        assert_eq!((ack.inserted, ack.head_seq), (1, 7));

        // Another store under a's id (restored from a machine snapshot)
        // pushes its own change 2: folded, but its record's snapshot tells
        // it is not the change folded there.
        for twin in [
            change(a, 2, "r2", json!({"title": "theirs"})),
            change(a, 2, "r9", json!({"title": "t2"})),
        ] {
            let refused = hub.push(space, &[twin]).await;
            assert_eq!(
                refused,
                Err(crate::HubError::DuplicateReplica { replica: a, counter: 2 })
            );
        }
    }

    /// Replicas silent past the retention are retired, so they no longer
    /// hold the floor.
    pub async fn retention_retires_silent_replicas<H: HubAdmin>(hub: &H, space: &str) {
        let a = ReplicaId::mint();
        hub.push(space, &run_of(a, 4)).await.expect("push");
        hub.report(space, &frontier(a, 1)).await.expect("report");
        let keep = CompactOptions {
            retention_ms: Some(86_400_000),
            ..CompactOptions::default()
        };
        let kept = hub.compact(space, keep).await.expect("compact");
        assert_eq!((kept.retired, kept.floor), (0, 1));
        let retire = CompactOptions {
            retention_ms: Some(0),
            ..CompactOptions::default()
        };
        let retired = hub.compact(space, retire).await.expect("compact");
        assert_eq!((retired.retired, retired.floor, retired.folded), (1, 4, 3));
        assert!(hub.replicas(space).await.expect("replicas")[0].retired);
    }
}

/// The replica half of the suite. Each test takes a constructor of fresh,
/// empty replicas.
pub mod replica {
    use super::ReplicaFixture;
    use crate::change::Change;
    use crate::clock::Dot;

    fn page(changes: &[Change], first_seq: u64) -> Vec<(u64, Change)> {
        changes.iter().cloned().zip(first_seq..).map(|(c, s)| (s, c)).collect()
    }

    /// The outbox holds local writes in write order, with dense counters.
    pub fn outbox_keeps_write_order<R: ReplicaFixture>(make: impl Fn() -> R) {
        let replica = make();
        assert!(replica.outbox(10).unwrap().is_empty());
        for (record, label) in [(1, "a"), (2, "b"), (1, "c")] {
            replica.write_record(record, label).unwrap();
        }
        let id = replica.replica_id().unwrap();
        let outbox = replica.outbox(10).unwrap();
        assert_eq!(outbox.len(), 3);
        let counters: Vec<u64> = outbox.iter().map(|c| c.dot.counter).collect();
        assert!(outbox.iter().all(|c| c.dot.replica == id));
        assert!(
            counters.windows(2).all(|w| w[1] == w[0] + 1),
            "dense and increasing: {counters:?}"
        );
        assert_eq!(outbox[2].record_id, outbox[0].record_id);
        assert!(
            outbox[2].context.covers(&outbox[0].dot),
            "a write's context is what the record had seen"
        );
        assert_eq!(replica.outbox(2).unwrap(), outbox[..2]);
    }

    /// Acknowledging removes exactly the given changes, and is harmless twice.
    pub fn acknowledge_removes_what_the_hub_stored<R: ReplicaFixture>(make: impl Fn() -> R) {
        let replica = make();
        for record in 1..=3 {
            replica.write_record(record, "x").unwrap();
        }
        let outbox = replica.outbox(10).unwrap();
        replica.acknowledge(&[outbox[0].dot]).unwrap();
        assert_eq!(replica.outbox(10).unwrap(), outbox[1..]);
        let unknown = Dot {
            replica: crate::ReplicaId::mint(),
            counter: 7,
        };
        replica.acknowledge(&[outbox[0].dot, unknown]).unwrap();
        assert_eq!(replica.outbox(10).unwrap(), outbox[1..]);
        replica.acknowledge(&[outbox[1].dot, outbox[2].dot]).unwrap();
        assert!(replica.outbox(10).unwrap().is_empty());
        assert_eq!(
            replica.record_states().unwrap().len(),
            3,
            "acknowledging keeps the records"
        );
    }

    /// Applying a page twice (or one's own changes) changes nothing the second time.
    pub fn apply_page_is_idempotent<R: ReplicaFixture>(make: impl Fn() -> R) {
        let (here, there) = (make(), make());
        here.write_record(1, "here").unwrap();
        there.write_record(2, "there").unwrap();
        there.write_record(1, "there too").unwrap();
        let mut log = here.outbox(10).unwrap();
        log.extend(there.outbox(10).unwrap());
        let log = page(&log, 1);
        assert_eq!(here.cursor().unwrap(), 0);

        let first = here.apply_page(&log, 3).unwrap();
        assert_eq!((first.applied, first.already_seen), (2, 1), "its own change is skipped");
        assert_eq!(first.conflicts, 1, "record 1 was written on both sides");
        assert_eq!(here.cursor().unwrap(), 3);
        let after_once = here.record_states().unwrap();
        assert_eq!(after_once.len(), 2);

        let again = here.apply_page(&log, 3).unwrap();
        assert_eq!((again.applied, again.already_seen), (0, 3));
        assert_eq!(here.record_states().unwrap(), after_once);

        there.apply_page(&log[..1], 1).unwrap();
        there.apply_page(&log[1..], 3).unwrap();
        assert_eq!(
            there.record_states().unwrap(),
            after_once,
            "the same log gives the same state"
        );
    }

    /// Snapshots join into what a replica holds exactly as their changes
    /// would apply, its own unpushed writes kept; the cursor stays.
    pub fn apply_snapshots_joins_what_the_changes_would<R: ReplicaFixture>(make: impl Fn() -> R) {
        let (here, there, witness) = (make(), make(), make());
        there.write_record(1, "first").unwrap();
        there.write_record(2, "second").unwrap();
        there.write_record(1, "third").unwrap();
        here.write_record(1, "mine").unwrap();
        let theirs = there.outbox(10).unwrap();
        let mut folded = std::collections::BTreeMap::new();
        crate::snapshot::fold(&mut folded, &theirs);
        let snapshots: Vec<crate::Snapshot> = folded
            .into_iter()
            .map(|((collection, record_id), state)| crate::Snapshot {
                collection,
                record_id,
                state,
                seqs: Default::default(),
            })
            .collect();
        let applied = here.apply_snapshots(&snapshots).unwrap();
        assert_eq!(
            (applied.applied, applied.conflicts),
            (2, 1),
            "record 1 was written on both sides"
        );
        assert_eq!(here.cursor().unwrap(), 0, "the cursor did not move");
        assert_eq!(here.outbox(10).unwrap().len(), 1, "its own write waits to be pushed");
        let again = here.apply_snapshots(&snapshots).unwrap();
        assert_eq!((again.applied, again.already_seen), (0, 2));
        let mut log = here.outbox(10).unwrap();
        log.extend(theirs);
        witness.apply_page(&page(&log, 1), 4).unwrap();
        assert_eq!(
            here.record_states().unwrap(),
            witness.record_states().unwrap(),
            "the same state as the changes applied one by one"
        );
    }

    /// A page and its cursor commit together: a page that fails leaves
    /// neither its changes nor the new cursor behind.
    pub fn apply_page_moves_the_cursor_atomically<R: ReplicaFixture>(make: impl Fn() -> R) {
        let (here, there) = (make(), make());
        there.write_record(1, "first").unwrap();
        there.write_record(2, "second").unwrap();
        let log = page(&there.outbox(10).unwrap(), 1);
        here.apply_page(&log[..1], 1).unwrap();
        let before = here.record_states().unwrap();

        let poisoned = vec![log[1].clone(), (3, here.poison_change())];
        assert!(here.apply_page(&poisoned, 3).is_err());
        assert_eq!(here.cursor().unwrap(), 1, "the cursor did not move");
        assert_eq!(
            here.record_states().unwrap(),
            before,
            "no change of the failed page was kept"
        );

        here.apply_page(&log[1..], 2).unwrap();
        assert_eq!(here.cursor().unwrap(), 2);
        assert_eq!(here.record_states().unwrap(), there.record_states().unwrap());
        // With the cursor, the dot of the change applied there (what a round
        // checks the hub's log against).
        assert_eq!(here.cursor_dot().unwrap(), Some(log[1].1.dot));
    }
}

/// Instantiate the hub half of the conformance suite.
///
/// `block_on` runs a future to completion; `hub` is an expression evaluated
/// inside the test's async block (it may `.await`) that yields the hub.
#[macro_export]
macro_rules! hub_conformance_tests {
    (block_on = $block_on:path, hub = $hub:expr $(,)?) => {
        $crate::hub_conformance_tests!(@tests $block_on, $hub;
            push_is_idempotent,
            push_rejects_a_gap_with_the_expected_counter,
            push_refuses_a_duplicate_replica,
            push_refuses_a_retired_schema_version,
            seqs_are_dense_and_increasing,
            pull_pages_through_the_log,
            spaces_are_isolated,
        );
    };
    (@tests $block_on:path, $hub:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $block_on(async {
                    let hub = $hub;
                    let space = $crate::testing::fresh_space(stringify!($test));
                    $crate::testing::hub::$test(&hub, &space).await;
                })
            }
        )*
    };
}

/// Instantiate the administration half of the conformance suite (for hubs
/// that implement [`HubAdmin`]), like [`hub_conformance_tests!`].
#[macro_export]
macro_rules! hub_admin_conformance_tests {
    (block_on = $block_on:path, hub = $hub:expr $(,)?) => {
        $crate::hub_admin_conformance_tests!(@tests $block_on, $hub;
            replicas_report_their_frontier,
            compaction_folds_below_the_lowest_live_cursor,
            retention_retires_silent_replicas,
        );
    };
    (@tests $block_on:path, $hub:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $block_on(async {
                    let hub = $hub;
                    let space = $crate::testing::fresh_space(stringify!($test));
                    $crate::testing::admin::$test(&hub, &space).await;
                })
            }
        )*
    };
}

/// Instantiate the replica half of the conformance suite. `make` is an
/// expression that yields a fresh, empty [`ReplicaFixture`] each time it is
/// evaluated.
#[macro_export]
macro_rules! replica_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::replica_conformance_tests!(@tests $make;
            outbox_keeps_write_order,
            acknowledge_removes_what_the_hub_stored,
            apply_page_is_idempotent,
            apply_page_moves_the_cursor_atomically,
            apply_snapshots_joins_what_the_changes_would,
        );
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::testing::replica::$test(|| $make);
            }
        )*
    };
}

#[cfg(test)]
mod memory_hub {
    crate::hub_conformance_tests!(
        block_on = crate::testing::block_on,
        hub = crate::memory::MemoryHub::new()
    );
}

#[cfg(test)]
mod memory_hub_admin {
    crate::hub_admin_conformance_tests!(
        block_on = crate::testing::block_on,
        hub = crate::memory::MemoryHub::new()
    );
}

#[cfg(test)]
mod memory_replica {
    crate::replica_conformance_tests!(crate::memory::MemoryReplica::new(crate::ReplicaId::mint()));
}

#[cfg(test)]
mod faulty_memory_hub {
    crate::hub_conformance_tests!(
        block_on = crate::testing::block_on,
        hub = crate::testing::FaultyHub::new(crate::memory::MemoryHub::new())
    );
}

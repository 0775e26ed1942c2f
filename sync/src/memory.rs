//! The in-memory model of the protocol: a [`MemoryHub`] and a
//! [`MemoryReplica`] that keep every promise of [`crate::protocol`] with
//! plain maps.
//!
//! They are the reference the real implementations are tested against (the
//! same conformance suite runs on both) and the actors of the model-based
//! property test. The hub can inject faults: fail a call before it commits,
//! lose a reply after it committed, serve short pages. Nothing here does IO
//! or reads a clock; callers pass the time in.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::change::{Change, SCHEMA_VERSION};
use crate::clock::{Dot, Hlc, ReplicaId};
use crate::merge::{Applied, RecordState};
use crate::protocol::{
    CompactOptions, CompactReport, Frontier, Hub, HubAdmin, HubError, PageApplied, PullPage, PushAck, RecordStates,
    Replica, ReplicaError, ReplicaInfo, SnapshotPage,
};
use crate::snapshot::{RecordKey, Snapshot};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fault the [`MemoryHub`] injects into one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before anything commits (a connection reset, an
    /// aborted transaction): the caller sees [`HubError::Unreachable`].
    FailBeforeCommit,
    /// The call commits (a push stores its batch; a pull reads its page),
    /// then the reply is lost: the caller sees [`HubError::Unreachable`].
    DropReplyAfterCommit,
}

/// An in-memory hub: one ordered log per space. It accepts schema versions
/// from [`SCHEMA_VERSION`] on, like a hub deployed with this code.
#[derive(Debug)]
pub struct MemoryHub {
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    spaces: HashMap<String, Space>,
    /// Hub calls served so far (push and pull alike).
    calls: u64,
    /// Call number -> the fault injected into that call.
    faults: BTreeMap<u64, Fault>,
    /// Serve at most this many changes per page, whatever the caller asks.
    page_limit: Option<usize>,
    /// Refuse changes of a schema version below this.
    oldest_schema: u32,
    /// The hub's clock (milliseconds since the epoch), set by the caller.
    now_ms: u64,
}

#[derive(Clone, Debug, Default)]
struct Space {
    /// The log above the floor: the change at index `i` has seq `floor + i + 1`.
    log: Vec<Change>,
    /// Changes at or below this seq are folded into `snapshots`.
    floor: u64,
    /// The seq of each change the log holds.
    index: HashMap<Dot, u64>,
    /// Replica -> its highest stored counter (folded or not).
    last: HashMap<ReplicaId, u64>,
    snapshots: BTreeMap<RecordKey, RecordState>,
    /// The hub seqs each snapshot keeps (`snapshot::fold_seqs`).
    snapshot_seqs: BTreeMap<RecordKey, BTreeMap<Dot, u64>>,
    replicas: BTreeMap<ReplicaId, ReplicaInfo>,
}

impl Space {
    fn head(&self) -> u64 {
        self.floor + self.log.len() as u64
    }

    /// Check and stage one change; `Ok(true)` when it is new.
    fn stage(&mut self, change: &Change, oldest_schema: u32) -> Result<bool, HubError> {
        if change.schema_version < oldest_schema {
            return Err(HubError::SchemaRejected {
                schema_version: change.schema_version,
                oldest_accepted: oldest_schema,
            });
        }
        if let Some(why) = change.malformed() {
            return Err(HubError::Other(format!(
                "malformed change {}: {why}",
                change.dot.counter
            )));
        }
        let dot = change.dot;
        let last = self.last.get(&dot.replica).copied().unwrap_or(0);
        if let Some(&seq) = self.index.get(&dot) {
            return if self.log[(seq - self.floor - 1) as usize].body() == change.body() {
                Ok(false)
            } else {
                Err(HubError::DuplicateReplica {
                    replica: dot.replica,
                    counter: dot.counter,
                })
            };
        }
        if dot.counter != 0 && dot.counter <= last {
            // Folded into a snapshot: stored, as far as the snapshot can
            // still tell (its body can no longer be compared).
            let key = (change.collection.clone(), change.record_id.clone());
            return if crate::snapshot::may_be_folded(self.snapshots.get(&key), change) {
                Ok(false)
            } else {
                Err(HubError::DuplicateReplica {
                    replica: dot.replica,
                    counter: dot.counter,
                })
            };
        }
        let expected = last + 1;
        if dot.counter != expected {
            return if dot.counter == 0 {
                Err(HubError::Other(format!(
                    "change of replica {} has counter 0",
                    dot.replica
                )))
            } else {
                Err(HubError::Gap {
                    replica: dot.replica,
                    expected,
                })
            };
        }
        self.index.insert(dot, self.head() + 1);
        self.last.insert(dot.replica, dot.counter);
        self.log.push(change.clone());
        Ok(true)
    }
}

impl Default for MemoryHub {
    fn default() -> Self {
        let inner = HubInner {
            oldest_schema: SCHEMA_VERSION,
            ..HubInner::default()
        };
        MemoryHub {
            inner: Mutex::new(inner),
        }
    }
}

impl MemoryHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inject `fault` into the hub call `calls_from_now` calls ahead (0: the
    /// next call).
    pub fn inject(&self, calls_from_now: u64, fault: Fault) {
        let mut inner = lock(&self.inner);
        let at = inner.calls + calls_from_now;
        inner.faults.insert(at, fault);
    }

    /// Forget every injected fault not yet triggered.
    pub fn clear_faults(&self) {
        lock(&self.inner).faults.clear();
    }

    /// Serve at most `limit` changes per page (`None`: what the caller asks).
    pub fn set_page_limit(&self, limit: Option<usize>) {
        lock(&self.inner).page_limit = limit;
    }

    /// Refuse changes whose schema version is below `version`.
    pub fn set_oldest_schema(&self, version: u32) {
        lock(&self.inner).oldest_schema = version;
    }

    /// The log of `space` above its floor, as `(seq, change)`.
    pub fn log(&self, space: &str) -> Vec<(u64, Change)> {
        let inner = lock(&self.inner);
        inner.spaces.get(space).map_or_else(Vec::new, |s| {
            s.log
                .iter()
                .enumerate()
                .map(|(i, c)| (s.floor + i as u64 + 1, c.clone()))
                .collect()
        })
    }

    /// Set the hub's clock (milliseconds since the Unix epoch): the last
    /// contact of replicas that report, and what retention compares with.
    pub fn set_time(&self, now_ms: u64) {
        lock(&self.inner).now_ms = now_ms;
    }

    /// Hub calls served so far.
    pub fn calls(&self) -> u64 {
        lock(&self.inner).calls
    }

    fn take_fault(inner: &mut HubInner) -> Option<Fault> {
        let call = inner.calls;
        inner.calls += 1;
        inner.faults.remove(&call)
    }

    fn push_now(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        let mut inner = lock(&self.inner);
        let fault = Self::take_fault(&mut inner);
        if fault == Some(Fault::FailBeforeCommit) {
            return Err(HubError::Unreachable("injected: connection reset before commit".into()));
        }
        let oldest_schema = inner.oldest_schema;
        // The transaction: stage on a copy, keep it only if every change passes.
        let mut staged = inner.spaces.get(space).cloned().unwrap_or_default();
        let mut inserted = 0;
        for change in changes {
            if staged.stage(change, oldest_schema)? {
                inserted += 1;
            }
        }
        let head_seq = staged.head();
        inner.spaces.insert(space.to_owned(), staged);
        if fault == Some(Fault::DropReplyAfterCommit) {
            return Err(HubError::Unreachable("injected: reply lost after commit".into()));
        }
        Ok(PushAck {
            inserted,
            already_stored: changes.len() - inserted,
            head_seq,
        })
    }

    fn pull_now(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        let mut inner = lock(&self.inner);
        if Self::take_fault(&mut inner).is_some() {
            return Err(HubError::Unreachable("injected: pull reply lost".into()));
        }
        let limit = inner.page_limit.map_or(limit, |l| l.min(limit));
        let Some(space) = inner.spaces.get(space) else {
            return Ok(PullPage::default());
        };
        let (head_seq, floor) = (space.head(), space.floor);
        if after_seq < floor {
            return Ok(PullPage {
                changes: Vec::new(),
                head_seq,
                floor,
                at_cursor: None,
            });
        }
        let at_cursor = (after_seq > floor)
            .then(|| space.log.get((after_seq - floor - 1) as usize).map(|c| c.dot))
            .flatten();
        let from = usize::try_from(after_seq - floor)
            .unwrap_or(usize::MAX)
            .min(space.log.len());
        let changes = space.log[from..]
            .iter()
            .take(limit)
            .enumerate()
            .map(|(i, c)| (floor + (from + i) as u64 + 1, c.clone()))
            .collect();
        Ok(PullPage {
            changes,
            head_seq,
            floor,
            at_cursor,
        })
    }

    fn snapshots_now(&self, space: &str, after: Option<&RecordKey>, limit: usize) -> Result<SnapshotPage, HubError> {
        let mut inner = lock(&self.inner);
        if Self::take_fault(&mut inner).is_some() {
            return Err(HubError::Unreachable("injected: snapshot reply lost".into()));
        }
        let limit = inner.page_limit.map_or(limit, |l| l.min(limit)).max(1);
        let Some(space) = inner.spaces.get(space) else {
            return Ok(SnapshotPage::default());
        };
        let range = match after {
            Some(key) => space
                .snapshots
                .range::<RecordKey, _>((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded)),
            None => space.snapshots.range::<RecordKey, _>(..),
        };
        let mut records: Vec<Snapshot> = Vec::new();
        let mut more = false;
        for ((collection, record_id), state) in range {
            if records.len() == limit {
                more = true;
                break;
            }
            let key = (collection.clone(), record_id.clone());
            records.push(Snapshot {
                seqs: space.snapshot_seqs.get(&key).cloned().unwrap_or_default(),
                collection: collection.clone(),
                record_id: record_id.clone(),
                state: state.clone(),
            });
        }
        let next = more.then(|| records.last().map(Snapshot::key)).flatten();
        Ok(SnapshotPage {
            records,
            floor: space.floor,
            next,
        })
    }

    fn report_now(&self, space: &str, frontier: &Frontier) -> Result<(), HubError> {
        let mut inner = lock(&self.inner);
        if Self::take_fault(&mut inner).is_some() {
            return Err(HubError::Unreachable("injected: report lost".into()));
        }
        let now_ms = inner.now_ms;
        let space = inner.spaces.entry(space.to_owned()).or_default();
        let cursor = frontier.cursor;
        space.replicas.insert(
            frontier.replica,
            ReplicaInfo {
                replica: frontier.replica,
                name: frontier.name.clone(),
                host: frontier.host.clone(),
                cursor,
                last_seen_ms: now_ms,
                retired: false,
            },
        );
        Ok(())
    }
}

impl Hub for MemoryHub {
    async fn push(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        self.push_now(space, changes)
    }

    async fn pull(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        self.pull_now(space, after_seq, limit)
    }

    async fn snapshots(&self, space: &str, after: Option<&RecordKey>, limit: usize) -> Result<SnapshotPage, HubError> {
        self.snapshots_now(space, after, limit)
    }

    async fn report(&self, space: &str, frontier: &Frontier) -> Result<(), HubError> {
        self.report_now(space, frontier)
    }
}

impl HubAdmin for MemoryHub {
    async fn replicas(&self, space: &str) -> Result<Vec<ReplicaInfo>, HubError> {
        let inner = lock(&self.inner);
        let mut all: Vec<ReplicaInfo> = inner
            .spaces
            .get(space)
            .map(|s| s.replicas.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.replica.cmp(&b.replica)));
        Ok(all)
    }

    async fn forget(&self, space: &str, replica: ReplicaId) -> Result<bool, HubError> {
        let mut inner = lock(&self.inner);
        let Some(info) = inner.spaces.get_mut(space).and_then(|s| s.replicas.get_mut(&replica)) else {
            return Ok(false);
        };
        let was_live = !info.retired;
        info.retired = true;
        Ok(was_live)
    }

    async fn compact(&self, space: &str, opts: CompactOptions) -> Result<CompactReport, HubError> {
        let mut inner = lock(&self.inner);
        let now_ms = inner.now_ms;
        let Some(space) = inner.spaces.get_mut(space) else {
            return Ok(CompactReport::default());
        };
        let mut report = CompactReport::default();
        if let Some(retention) = opts.retention_ms {
            for info in space.replicas.values_mut() {
                if !info.retired && info.last_seen_ms.saturating_add(retention) <= now_ms {
                    info.retired = true;
                    report.retired += 1;
                }
            }
        }
        let live = space.replicas.values().filter(|r| !r.retired).map(|r| r.cursor).min();
        let target = live
            .unwrap_or(u64::MAX)
            .min(opts.up_to.unwrap_or(u64::MAX))
            .min(space.head());
        // Batch by batch, each one atomic step (like one transaction).
        while space.floor < target {
            let n = (target - space.floor).min(opts.batch.max(1) as u64) as usize;
            let folded: Vec<Change> = space.log.drain(..n).collect();
            crate::snapshot::fold(&mut space.snapshots, &folded);
            let with_seqs: Vec<(u64, &Change)> = folded
                .iter()
                .enumerate()
                .map(|(i, c)| (space.floor + i as u64 + 1, c))
                .collect();
            crate::snapshot::fold_seqs(&mut space.snapshot_seqs, &space.snapshots, &with_seqs);
            for c in &folded {
                space.index.remove(&c.dot);
            }
            space.floor += n as u64;
            report.folded += n;
        }
        report.floor = space.floor;
        report.head = space.head();
        report.snapshots = space.snapshots.len() as u64;
        Ok(report)
    }
}

/// An in-memory replica: records, an outbox, a counter, a clock and a
/// cursor. Every method is one atomic step, like one SQLite transaction, and
/// everything it holds is durable: [`MemoryReplica::reopen`] is a crash and
/// restart.
#[derive(Debug)]
pub struct MemoryReplica {
    state: Mutex<Durable>,
}

#[derive(Clone, Debug)]
struct Durable {
    id: ReplicaId,
    counter: u64,
    hlc: Hlc,
    author: String,
    records: RecordStates,
    outbox: Vec<Change>,
    cursor: u64,
    /// The dot of the change applied at `cursor`, when a page brought it.
    cursor_dot: Option<Dot>,
}

impl MemoryReplica {
    /// A new, empty store with replica id `id`.
    pub fn new(id: ReplicaId) -> Self {
        let state = Durable {
            id,
            counter: 0,
            hlc: Hlc::default(),
            author: "model".into(),
            records: RecordStates::new(),
            outbox: Vec::new(),
            cursor: 0,
            cursor_dot: None,
        };
        MemoryReplica {
            state: Mutex::new(state),
        }
    }

    /// Write `fields` of one record as a local change, like the store's one
    /// write path: take the next dot, use the record's version vector as the
    /// context, tick the clock, apply, append to the outbox. Returns the change.
    pub fn write(&self, collection: &str, id: &str, fields: BTreeMap<String, Value>, now_millis: u64) -> Change {
        let mut s = lock(&self.state);
        s.counter += 1;
        s.hlc = s.hlc.tick(now_millis);
        let key = (collection.to_owned(), id.to_owned());
        let record = s.records.get(&key).cloned().unwrap_or_default();
        let change = Change {
            collection: key.0.clone(),
            record_id: key.1.clone(),
            dot: Dot {
                replica: s.id,
                counter: s.counter,
            },
            context: record.vv.clone(),
            fields,
            hlc: s.hlc,
            author: s.author.clone(),
            schema_version: SCHEMA_VERSION,
        };
        let mut record = record;
        record.apply(&change);
        s.records.insert(key, record);
        s.outbox.push(change.clone());
        change
    }

    /// The state of one record (empty when never written or received).
    pub fn record(&self, collection: &str, id: &str) -> RecordState {
        let s = lock(&self.state);
        s.records
            .get(&(collection.to_owned(), id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Unacknowledged local changes.
    pub fn pending(&self) -> usize {
        lock(&self.state).outbox.len()
    }

    /// A crash and restart: a new handle on what was durably stored, with
    /// nothing of any in-flight work.
    pub fn reopen(&self) -> MemoryReplica {
        MemoryReplica {
            state: Mutex::new(lock(&self.state).clone()),
        }
    }

    /// A byte-for-byte copy of the store file, replica id included (what a
    /// user's `cp` produces before the copy notices it moved).
    pub fn copy_file(&self) -> MemoryReplica {
        self.reopen()
    }

    /// The store noticed it was copied: write under a new replica id from
    /// now on, counting from 1. Its outbox keeps the changes written under
    /// the old id; they are pushed as they are.
    pub fn take_new_id(&self, id: ReplicaId) {
        let mut s = lock(&self.state);
        s.id = id;
        s.counter = 0;
    }
}

impl Replica for MemoryReplica {
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError> {
        Ok(lock(&self.state).id)
    }

    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError> {
        Ok(lock(&self.state).outbox.iter().take(limit).cloned().collect())
    }

    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError> {
        let mut s = lock(&self.state);
        s.outbox.retain(|c| !dots.contains(&c.dot));
        Ok(())
    }

    fn cursor(&self) -> Result<u64, ReplicaError> {
        Ok(lock(&self.state).cursor)
    }

    fn cursor_dot(&self) -> Result<Option<Dot>, ReplicaError> {
        Ok(lock(&self.state).cursor_dot)
    }

    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError> {
        let mut s = lock(&self.state);
        // The transaction: work on a copy, keep it only if the whole page applies.
        let mut next = s.clone();
        let mut report = PageApplied::default();
        for (seq, change) in changes {
            if change.collection.is_empty() || change.record_id.is_empty() {
                return Err(ReplicaError::permanent(format!(
                    "change {seq} names no collection or record; the page was not applied"
                )));
            }
            let key = (change.collection.clone(), change.record_id.clone());
            let record = next.records.entry(key).or_default();
            match record.apply(change) {
                Applied::AlreadySeen => report.already_seen += 1,
                Applied::Changed => {
                    report.applied += 1;
                    if record.conflicts().next().is_some() {
                        report.conflicts += 1;
                    }
                    next.hlc = next.hlc.observe(change.hlc);
                }
            }
        }
        if new_cursor != next.cursor {
            next.cursor_dot = changes.iter().find(|(seq, _)| *seq == new_cursor).map(|(_, c)| c.dot);
        }
        next.cursor = new_cursor;
        *s = next;
        Ok(report)
    }

    fn apply_snapshots(&self, snapshots: &[Snapshot]) -> Result<PageApplied, ReplicaError> {
        let mut s = lock(&self.state);
        let mut next = s.clone();
        let mut report = PageApplied::default();
        for snapshot in snapshots {
            let record = next.records.entry(snapshot.key()).or_default();
            if record.join(&snapshot.state) {
                report.applied += 1;
                if record.conflicts().next().is_some() {
                    report.conflicts += 1;
                }
                if let Some(last) = snapshot.state.last_write() {
                    next.hlc = next.hlc.observe(last.hlc);
                }
            } else {
                report.already_seen += 1;
            }
        }
        *s = next;
        Ok(report)
    }

    fn record_states(&self) -> Result<RecordStates, ReplicaError> {
        Ok(lock(&self.state).records.clone())
    }
}

//! The hub protocol: what a replica and a hub promise each other.
//!
//! Owns the two traits a sync round is written against ([`Hub`] and
//! [`Replica`]), their errors and the values they exchange. Implementations
//! live elsewhere: the in-memory model in [`crate::memory`], the Postgres hub
//! in this crate, the SQLite replica in the agent's store. This module must
//! never do IO itself, read a clock, or know SQL: it only states contracts,
//! and [`crate::testing`] checks every implementation against them.

use std::collections::BTreeMap;
use std::future::Future;

use crate::change::Change;
use crate::clock::{Dot, ReplicaId};
use crate::merge::RecordState;
use crate::snapshot::{RecordKey, Snapshot};

/// A shared, ordered log of changes per space. Not a merge authority: it
/// stores and orders; replicas merge.
///
/// Contract (checked by [`crate::hub_conformance_tests`]):
/// - **push** is one transaction: every change of the batch is stored, or
///   none is. Changes are keyed by `(space, replica, counter)`. A change
///   already stored with the same body is accepted again and not duplicated
///   (a resent batch after a lost reply). The same key with a different body
///   is [`HubError::DuplicateReplica`]. A replica's counters must be dense:
///   a counter above the stored last + 1 is [`HubError::Gap`] with the
///   counter the hub expects. A change whose `schema_version` the hub no
///   longer accepts is [`HubError::SchemaRejected`].
/// - Each newly stored change gets a `server_seq`: dense (1, 2, 3, ...) and
///   increasing per space, in commit order, so a reader that has seen seq
///   `n` can never later find a change at or below `n` that it missed.
/// - **pull** returns changes with `seq > after_seq`, in seq order, at most
///   `limit` of them (a hub may serve fewer), and the space's head seq.
/// - Spaces are isolated: nothing pushed to one space is visible in another,
///   and the keys of one space never collide with another's.
pub trait Hub: Send + Sync {
    /// Store `changes` (in order) in `space`, in one transaction.
    fn push(&self, space: &str, changes: &[Change]) -> impl Future<Output = Result<PushAck, HubError>> + Send;

    /// Read up to `limit` changes of `space` with `seq > after_seq`, in seq
    /// order. Below the space's compaction floor there are none: the page
    /// carries the floor, and the reader bootstraps from
    /// [`Hub::snapshots`] first.
    fn pull(
        &self,
        space: &str,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<PullPage, HubError>> + Send;

    /// Read up to `limit` snapshots of `space` after record `after` (from
    /// the first when `None`), in record order, with the floor they were
    /// folded to. One consistent read: every snapshot of a page is folded
    /// to the page's floor.
    fn snapshots(
        &self,
        space: &str,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> impl Future<Output = Result<SnapshotPage, HubError>> + Send;

    /// A replica tells the hub what it has pulled and applied (its cursor),
    /// its name and host: the hub notes its last contact, and a replica it
    /// had retired is live again.
    fn report(&self, space: &str, frontier: &Frontier) -> impl Future<Output = Result<(), HubError>> + Send;
}

/// What an administrator asks of a hub: the replicas of a space, retiring
/// one, and compacting the space's history. Not used by sync rounds.
///
/// Contract (checked by [`crate::hub_conformance_tests`]):
/// - **compact** folds the changes at or below the lowest cursor of the
///   space's live replicas (and at most `up_to`) into per-record snapshots,
///   in transactions of at most `batch` changes, each of which moves the
///   floor with the snapshots it wrote (crash-safe, and idempotent: a second
///   run finds nothing to fold). A space with no live replica folds up to
///   its head. Replicas silent for longer than `retention_ms` are retired
///   first. Pushes go on around it: a push waits at most one batch.
/// - After compaction, a resend of a folded change is already stored, and
///   each replica's next counter follows its last folded one.
pub trait HubAdmin: Hub {
    /// Every replica that ever reported to `space`, most recent contact first.
    fn replicas(&self, space: &str) -> impl Future<Output = Result<Vec<ReplicaInfo>, HubError>> + Send;

    /// Retire `replica` (it will not come back, or may bootstrap again if it
    /// does): its cursor no longer holds the floor. Whether it was live.
    fn forget(&self, space: &str, replica: ReplicaId) -> impl Future<Output = Result<bool, HubError>> + Send;

    /// Compact the history of `space` (see the trait's contract).
    fn compact(
        &self,
        space: &str,
        opts: CompactOptions,
    ) -> impl Future<Output = Result<CompactReport, HubError>> + Send;
}

/// What a replica reports to the hub after a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    pub replica: ReplicaId,
    /// The seq of the last change it applied (its cursor).
    pub cursor: u64,
    /// A name people recognise it by (the project directory).
    pub name: String,
    /// The machine it runs on.
    pub host: String,
}

/// A replica as the hub knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub replica: ReplicaId,
    pub name: String,
    pub host: String,
    /// The cursor it last reported.
    pub cursor: u64,
    /// Its last contact, in milliseconds since the Unix epoch (the hub's clock;
    /// a hub may note it to within minutes, so an idle round writes nothing).
    pub last_seen_ms: u64,
    /// Retired (`hub forget`, or silent past the retention): its cursor no
    /// longer holds the compaction floor.
    pub retired: bool,
}

/// How a compaction runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactOptions {
    /// Changes folded per transaction (the longest a push waits).
    pub batch: usize,
    /// Fold no further than this seq.
    pub up_to: Option<u64>,
    /// Retire replicas silent for longer than this first.
    pub retention_ms: Option<u64>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            batch: 2_000,
            up_to: None,
            retention_ms: None,
        }
    }
}

/// What a compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Replicas retired for silence.
    pub retired: usize,
    /// Changes folded into snapshots.
    pub folded: usize,
    /// The space's floor and head afterwards.
    pub floor: u64,
    pub head: u64,
    /// Snapshots the space holds afterwards.
    pub snapshots: u64,
}

/// One page of snapshots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotPage {
    pub records: Vec<Snapshot>,
    /// The floor these snapshots were folded to: a reader that applied
    /// every page pulls the log after it.
    pub floor: u64,
    /// The record to read the next page after; `None` on the last page.
    pub next: Option<RecordKey>,
}

/// The hub's answer to a successful push: every change of the batch is now
/// stored (all or nothing), so the replica may acknowledge all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushAck {
    /// Changes stored by this push, each with a new seq.
    pub inserted: usize,
    /// Changes that were already stored with the same body (a resend).
    pub already_stored: usize,
    /// The space's highest seq after the push.
    pub head_seq: u64,
}

/// One page of a pull.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullPage {
    /// `(seq, change)` in increasing, dense seq order, starting at
    /// `after_seq + 1`; empty when the reader is up to date.
    pub changes: Vec<(u64, Change)>,
    /// The space's highest seq when the page was read: a reader whose cursor
    /// reached it can stop without asking again.
    pub head_seq: u64,
    /// The space's compaction floor: changes at or below it are folded into
    /// snapshots, and a pull after a seq below it returns none.
    pub floor: u64,
    /// The dot of the change at `after_seq`, when the log holds it (above
    /// the floor): a reader that applied another change there knows the
    /// log was rewritten under it (a hub restored from a backup, then
    /// written past the reader's cursor).
    pub at_cursor: Option<Dot>,
}

/// Why the hub refused or failed a request. [`HubError::is_retryable`] says
/// whether sending the same request later may succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Not retryable as is: the batch skipped counters of `replica`; the hub
    /// stored nothing and expects counter `expected` next.
    #[error("the hub expects change {expected} of replica {replica} next, and the push skipped it; nothing was stored")]
    Gap { replica: ReplicaId, expected: u64 },
    /// Not retryable: the hub already holds a different change under
    /// `(replica, counter)`, so two stores share one replica id (a store
    /// file was copied). Never overwritten.
    #[error(
        "the hub already holds a different change {counter} of replica {replica}: two stores share this replica id (was a store file copied?); nothing was stored"
    )]
    DuplicateReplica { replica: ReplicaId, counter: u64 },
    /// Not retryable: the hub no longer accepts changes of this schema version.
    #[error(
        "the hub no longer accepts changes of schema version {schema_version} (oldest accepted: {oldest_accepted}); upgrade waymark and sync again"
    )]
    SchemaRejected { schema_version: u32, oldest_accepted: u32 },
    /// Retryable: the hub could not be reached, or the connection broke or
    /// timed out. A push may or may not have committed; resending is safe.
    #[error("the hub is unreachable: {0}")]
    Unreachable(String),
    /// Retryable: the hub is reachable but aborted the transaction (a
    /// serialization failure it did not resolve by itself, a deadlock, a
    /// restart). Nothing of the push was committed.
    #[error("the hub aborted the transaction: {0}")]
    Aborted(String),
    /// Not retryable: anything else (a malformed request, a permission the
    /// hub's role lacks, a broken invariant).
    #[error("the hub failed: {0}")]
    Other(String),
}

impl HubError {
    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HubError::Unreachable(_) | HubError::Aborted(_))
    }

    /// Whether this error means the hub could not be talked to at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HubError::Unreachable(_))
    }
}

/// A local store, as the sync round sees it. Methods are blocking and each
/// is one local transaction: the SQLite store answers in microseconds, and
/// no method is ever called with a transaction left open across a network
/// call.
///
/// Contract (checked by [`crate::replica_conformance_tests`]):
/// - [`Replica::outbox`] returns unacknowledged local changes in the order
///   they were written. They may carry more than one replica id when the
///   store took a new id after noticing it was copied; per replica id, the
///   counters are dense and increasing.
/// - [`Replica::acknowledge`] removes the given changes from the outbox
///   (unknown dots are ignored: acknowledging twice is harmless).
/// - [`Replica::apply_page`] applies a page of the hub's log and sets the
///   cursor to `new_cursor` atomically: on error neither any change of the
///   page nor the cursor is kept. Changes already applied (the replica's
///   own, or a page fetched twice) are skipped.
/// - The cursor belongs to the (hub, space) the replica syncs with; the
///   store resets it when either changes.
pub trait Replica {
    /// The id this store writes new changes under.
    fn replica_id(&self) -> Result<ReplicaId, ReplicaError>;

    /// Up to `limit` unacknowledged local changes, oldest first.
    fn outbox(&self, limit: usize) -> Result<Vec<Change>, ReplicaError>;

    /// The hub stored these changes: drop them from the outbox.
    fn acknowledge(&self, dots: &[Dot]) -> Result<(), ReplicaError>;

    /// The seq of the last hub change applied here (0 for none).
    fn cursor(&self) -> Result<u64, ReplicaError>;

    /// The dot of the change applied at the cursor, when a page brought it
    /// ([`Replica::apply_page`] keeps it with the cursor): what the round
    /// checks the hub's [`PullPage::at_cursor`] against.
    fn cursor_dot(&self) -> Result<Option<Dot>, ReplicaError> {
        Ok(None)
    }

    /// Apply `changes` (in order) and set the cursor to `new_cursor`, in one
    /// local transaction.
    fn apply_page(&self, changes: &[(u64, Change)], new_cursor: u64) -> Result<PageApplied, ReplicaError>;

    /// Join a page of the hub's snapshots into this replica's records, in
    /// one local transaction (the cursor does not move: the round moves it
    /// to the snapshots' floor once every page is applied). What a fresh
    /// store bootstraps from, and what a store behind the floor catches up
    /// with, keeping every change it has not pushed yet.
    fn apply_snapshots(&self, snapshots: &[Snapshot]) -> Result<PageApplied, ReplicaError> {
        let _ = snapshots;
        Err(ReplicaError::permanent(
            "this replica cannot apply the hub's snapshots (the space was compacted)",
        ))
    }

    /// How the hub should name this replica: `(name, host)`.
    fn label(&self) -> (String, String) {
        (String::new(), String::new())
    }

    /// Every record's replication state, for tests that compare replicas.
    fn record_states(&self) -> Result<RecordStates, ReplicaError>;

    /// The hub refused this replica's history (see [`Refusal`]): change
    /// what the replica holds so that the next round can succeed, with
    /// nothing lost. Returns whether it changed anything; the round then
    /// runs once more. A replica that cannot recover answers `false` and
    /// the round fails with the hub's refusal.
    fn recover(&self, refusal: &Refusal) -> Result<bool, ReplicaError> {
        let _ = refusal;
        Ok(false)
    }
}

/// Why the hub cannot take a replica's history as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hub holds another change under `(replica, counter)`: another
    /// store wrote under this replica's id. This replica's changes from
    /// `counter` on must move to a new id.
    Forked { replica: ReplicaId, counter: u64 },
    /// The hub lacks changes of this replica that it once acknowledged (it
    /// was restored from an older backup): this replica's state must be
    /// published again.
    HubLost,
    /// The hub's log ends below this replica's cursor (the space was reset
    /// or restored): pull it again from the start, and publish this
    /// replica's state again.
    LogReset,
}

/// `(collection, record id)` -> state: a replica's whole replicated content.
pub type RecordStates = BTreeMap<(String, String), RecordState>;

/// What applying one page did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageApplied {
    /// Changes that were new here.
    pub applied: usize,
    /// Changes already reflected here (skipped).
    pub already_seen: usize,
    /// New changes that left their record with an open conflict.
    pub conflicts: usize,
}

/// A local store failed. `retryable` says whether trying again later may
/// succeed (a busy database) or not (a corrupt record, an unknown
/// collection).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReplicaError {
    pub message: String,
    pub retryable: bool,
}

impl ReplicaError {
    pub fn retryable(message: impl Into<String>) -> Self {
        ReplicaError {
            message: message.into(),
            retryable: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ReplicaError {
            message: message.into(),
            retryable: false,
        }
    }
}

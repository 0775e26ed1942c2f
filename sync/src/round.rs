//! One sync round: push the outbox, then pull the hub's log.
//!
//! Owns the order of the exchange and what a round does when the hub
//! answers with an error. It talks only through [`Replica`] and [`Hub`]:
//! it never opens a connection, reads a clock or sleeps, and it never calls
//! the hub while a replica call is in progress (each replica call is its own
//! short local transaction, so no local transaction spans a network call).
//!
//! Safety rests on three facts: a change leaves the outbox only after the
//! hub said it is stored; the cursor moves only together with the page it
//! covers; and both the hub's push and the replica's apply are idempotent,
//! so a round cut anywhere can simply run again.

use crate::clock::ReplicaId;
use crate::protocol::{Frontier, Hub, HubError, Refusal, Replica, ReplicaError};

/// How a round batches its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// Changes per push (one hub transaction each).
    pub push_batch: usize,
    /// Changes asked for per pull page (one local transaction each).
    pub page_size: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            push_batch: 500,
            page_size: 1000,
        }
    }
}

/// What one successful round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Local changes the hub now holds and the outbox let go of.
    pub pushed: usize,
    /// Of those, the ones the hub already had (a resend after a lost reply).
    pub resent: usize,
    /// Remote changes that were new here.
    pub pulled: usize,
    /// Of those, the ones that left their record with an open conflict.
    pub conflicts: usize,
    /// The replica's cursor after the round.
    pub cursor: u64,
}

/// Why a round stopped. Whatever it did before stopping is kept and safe:
/// the next round continues from there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the local store failed during sync: {0}")]
    Replica(#[from] ReplicaError),
    /// The hub's log ends below this replica's cursor.
    #[error(
        "the hub's log of space {space:?} ends at seq {head}, but this store already read up to {cursor}: the space was reset or restored; the next round pulls it again from the start and publishes this store's state there"
    )]
    LogReset { space: String, head: u64, cursor: u64 },
    /// The hub's log holds another change at this replica's cursor than the
    /// one it applied there.
    #[error(
        "the hub's log of space {space:?} holds another change at seq {cursor} than the one this store read there: the space was restored from an older backup and written since; the next round pulls it again from the start and publishes this store's state there"
    )]
    LogRewritten { space: String, cursor: u64 },
    /// The hub expects a counter this replica no longer has: changes it once
    /// acknowledged are gone from the hub.
    #[error(
        "the hub expects change {expected} of replica {replica} next, but this store no longer has it (the oldest change waiting here is {oldest_waiting}): the hub lost changes it had acknowledged, probably restored from an older backup; the next round publishes this store's state to it again under a new replica id"
    )]
    HubLostChanges {
        replica: ReplicaId,
        expected: u64,
        oldest_waiting: String,
    },
    /// The hub broke its side of the protocol (a page out of order, a log
    /// shorter than what this replica already read).
    #[error("the hub answered out of protocol: {0}")]
    Protocol(String),
}

impl SyncError {
    /// Whether running the round again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Hub(e) => e.is_retryable(),
            SyncError::Replica(e) => e.retryable,
            SyncError::HubLostChanges { .. }
            | SyncError::LogReset { .. }
            | SyncError::LogRewritten { .. }
            | SyncError::Protocol(_) => false,
        }
    }

    /// Whether the hub could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SyncError::Hub(e) if e.is_unreachable())
    }

    /// The hub's refusal of this replica's history, when that is what this
    /// error is.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            SyncError::Hub(HubError::DuplicateReplica { replica, counter }) => Some(Refusal::Forked {
                replica: *replica,
                counter: *counter,
            }),
            SyncError::HubLostChanges { .. } => Some(Refusal::HubLost),
            SyncError::LogReset { .. } | SyncError::LogRewritten { .. } => Some(Refusal::LogReset),
            _ => None,
        }
    }
}

/// How often a round resends after a gap the outbox can fill before it
/// gives up (a gap that persists means the hub and the outbox disagree).
const GAP_RESENDS: usize = 2;

/// Push the whole outbox, then pull until up to date.
pub async fn sync_round<R: Replica, H: Hub>(
    replica: &R,
    hub: &H,
    space: &str,
    opts: SyncOptions,
) -> Result<RoundReport, SyncError> {
    let mut report = RoundReport::default();
    let mut recovered = false;
    loop {
        let result = match push_outbox(replica, hub, space, opts, &mut report).await {
            Ok(()) => pull_log(replica, hub, space, opts, &mut report).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(report),
            // The hub refused this replica's history: the replica changes
            // what it holds (a new id for a fork, its state published again
            // for a hub that lost it) and the round runs once more.
            Err(e) => match e.refusal() {
                Some(refusal) if !recovered && replica.recover(&refusal)? => recovered = true,
                _ => return Err(e),
            },
        }
    }
}

/// Push the outbox in batches until it is empty (local writes made during
/// the round are pushed too).
pub async fn push_outbox<R: Replica, H: Hub>(
    replica: &R,
    hub: &H,
    space: &str,
    opts: SyncOptions,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let mut gap_resends = 0;
    loop {
        let batch = replica.outbox(opts.push_batch.max(1))?;
        if batch.is_empty() {
            return Ok(());
        }
        match hub.push(space, &batch).await {
            Ok(ack) => {
                let dots: Vec<_> = batch.iter().map(|c| c.dot).collect();
                replica.acknowledge(&dots)?;
                report.pushed += batch.len();
                report.resent += ack.already_stored;
                gap_resends = 0;
            }
            Err(HubError::Gap { replica: id, expected }) => {
                // Resend from the expected counter when the outbox still has
                // it (its content changed under us); otherwise the hub lost
                // changes it had acknowledged, and no resend can fill them.
                let waiting = replica.outbox(usize::MAX)?;
                let first = waiting.iter().find(|c| c.dot.replica == id).map(|c| c.dot.counter);
                if first == Some(expected) && gap_resends < GAP_RESENDS {
                    gap_resends += 1;
                    continue;
                }
                return Err(match first {
                    Some(c) if c <= expected => SyncError::Protocol(format!(
                        "the hub expects change {expected} of replica {id}, which this store's outbox holds, \
                         yet rejected the batch that carried it"
                    )),
                    _ => SyncError::HubLostChanges {
                        replica: id,
                        expected,
                        oldest_waiting: first.map_or("none".into(), |c| c.to_string()),
                    },
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Pull pages from the replica's cursor and apply each one, with its
/// cursor, in one local transaction, until the replica is up to date.
pub async fn pull_log<R: Replica, H: Hub>(
    replica: &R,
    hub: &H,
    space: &str,
    opts: SyncOptions,
    report: &mut RoundReport,
) -> Result<(), SyncError> {
    let mut cursor = replica.cursor()?;
    let mut bootstraps = 0;
    let mut checked = false;
    loop {
        let page = hub.pull(space, cursor, opts.page_size.max(1)).await?;
        if !checked {
            checked = true;
            // The change at the cursor must be the one applied there: a
            // log restored from a backup and written past the cursor since
            // holds other changes under the seqs this replica read.
            if let (Some(theirs), Some(mine)) = (page.at_cursor, replica.cursor_dot()?)
                && theirs != mine
            {
                return Err(SyncError::LogRewritten {
                    space: space.to_owned(),
                    cursor,
                });
            }
        }
        if cursor < page.floor {
            // The changes this replica lacks below the floor are folded
            // into snapshots: join them, then pull the log after them. A
            // compaction that moves the floor meanwhile means another pass
            // (joining is idempotent); one on every pass means trouble.
            if bootstraps == MAX_BOOTSTRAPS {
                return Err(SyncError::Protocol(format!(
                    "the floor of space {space:?} moved during each of {MAX_BOOTSTRAPS} bootstraps"
                )));
            }
            bootstraps += 1;
            cursor = bootstrap(replica, hub, space, opts, report).await?;
            continue;
        }
        let Some(&(last, _)) = page.changes.last() else {
            if page.head_seq < cursor {
                return Err(SyncError::LogReset {
                    space: space.to_owned(),
                    head: page.head_seq,
                    cursor,
                });
            }
            break;
        };
        for (i, (seq, _)) in page.changes.iter().enumerate() {
            if *seq != cursor + 1 + i as u64 {
                return Err(SyncError::Protocol(format!(
                    "a page after seq {cursor} holds seq {seq} at position {i}: seqs must be dense and in order"
                )));
            }
        }
        let applied = replica.apply_page(&page.changes, last)?;
        report.pulled += applied.applied;
        report.conflicts += applied.conflicts;
        cursor = last;
        if cursor >= page.head_seq {
            break;
        }
    }
    report.cursor = cursor;
    let (name, host) = replica.label();
    let frontier = Frontier {
        replica: replica.replica_id()?,
        cursor,
        name,
        host,
    };
    hub.report(space, &frontier).await?;
    Ok(())
}

/// How often one pull bootstraps before it gives up.
const MAX_BOOTSTRAPS: usize = 4;

/// Join every snapshot of the space into the replica, page by page, then
/// move its cursor to the lowest floor the pages were folded to (every
/// record holds at least that much). Returns the new cursor.
async fn bootstrap<R: Replica, H: Hub>(
    replica: &R,
    hub: &H,
    space: &str,
    opts: SyncOptions,
    report: &mut RoundReport,
) -> Result<u64, SyncError> {
    let mut after = None;
    let mut floor = u64::MAX;
    loop {
        let page = hub.snapshots(space, after.as_ref(), opts.page_size.max(1)).await?;
        floor = floor.min(page.floor);
        let applied = replica.apply_snapshots(&page.records)?;
        report.pulled += applied.applied;
        report.conflicts += applied.conflicts;
        match page.next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let floor = if floor == u64::MAX { 0 } else { floor };
    replica.apply_page(&[], floor)?;
    Ok(replica.cursor()?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::memory::{Fault, MemoryHub, MemoryReplica};
    use crate::testing::block_on;

    const SPACE: &str = "team";
    const SMALL: SyncOptions = SyncOptions {
        push_batch: 2,
        page_size: 2,
    };

    fn write(replica: &MemoryReplica, record: &str, field: &str, value: serde_json::Value) {
        replica.write("items", record, BTreeMap::from([(field.to_owned(), value)]), 1_000);
    }

    fn round(replica: &MemoryReplica, hub: &MemoryHub) -> Result<RoundReport, SyncError> {
        block_on(sync_round(replica, hub, SPACE, SMALL))
    }

    #[test]
    fn two_replicas_converge_through_short_pages() {
        let hub = MemoryHub::new();
        hub.set_page_limit(Some(1));
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        for i in 0..5 {
            write(&a, &format!("r{i}"), "title", json!(i));
        }
        write(&b, "r0", "title", json!("b's title"));
        write(&b, "r0", "status", json!("active"));
        let pushed = round(&a, &hub).unwrap();
        assert_eq!((pushed.pushed, pushed.pulled, pushed.cursor), (5, 0, 5));
        let report = round(&b, &hub).unwrap();
        assert_eq!(
            (report.pushed, report.pulled, report.conflicts, report.cursor),
            (2, 5, 1, 7)
        );
        round(&a, &hub).unwrap();
        assert_eq!(a.record_states().unwrap(), b.record_states().unwrap());
        assert_eq!(a.record("items", "r0").conflicts().count(), 1, "both titles kept");
        assert_eq!(a.pending() + b.pending(), 0);
    }

    #[test]
    fn a_lost_reply_is_resent_and_not_duplicated() {
        let hub = MemoryHub::new();
        let a = MemoryReplica::new(ReplicaId::mint());
        write(&a, "r", "title", json!("one"));
        write(&a, "r", "title", json!("two"));
        hub.inject(0, Fault::DropReplyAfterCommit);
        let lost = round(&a, &hub).unwrap_err();
        assert!(lost.is_retryable() && lost.is_unreachable(), "{lost}");
        assert_eq!(a.pending(), 2, "not acknowledged without a reply");
        assert_eq!(hub.log(SPACE).len(), 2, "but the hub kept them");
        let report = round(&a, &hub).unwrap();
        assert_eq!((report.pushed, report.resent), (2, 2));
        assert_eq!(hub.log(SPACE).len(), 2);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn a_push_that_failed_before_commit_is_pushed_later() {
        let hub = MemoryHub::new();
        let a = MemoryReplica::new(ReplicaId::mint());
        write(&a, "r", "title", json!("one"));
        hub.inject(0, Fault::FailBeforeCommit);
        assert!(round(&a, &hub).unwrap_err().is_retryable());
        assert!(hub.log(SPACE).is_empty());
        assert_eq!(round(&a, &hub).unwrap().pushed, 1);
        assert_eq!(hub.log(SPACE).len(), 1);
    }

    #[test]
    fn a_pull_cut_midway_resumes_from_the_last_applied_page() {
        let hub = MemoryHub::new();
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        for i in 0..5 {
            write(&a, &format!("r{i}"), "title", json!(i));
        }
        round(&a, &hub).unwrap();
        hub.inject(1, Fault::DropReplyAfterCommit); // b's second pull (b has nothing to push)
        assert!(round(&b, &hub).unwrap_err().is_retryable());
        assert_eq!(b.cursor().unwrap(), 2, "the first page and its cursor were kept");
        let b = b.reopen();
        assert_eq!(round(&b, &hub).unwrap().pulled, 3);
        assert_eq!(a.record_states().unwrap(), b.record_states().unwrap());
    }

    #[test]
    fn a_copied_store_that_keeps_its_id_is_refused() {
        let hub = MemoryHub::new();
        let original = MemoryReplica::new(ReplicaId::mint());
        write(&original, "r", "title", json!("before the copy"));
        let copy = original.copy_file();
        write(&original, "r", "title", json!("original"));
        write(&copy, "r", "title", json!("copy"));
        round(&original, &hub).unwrap();
        let refused = round(&copy, &hub).unwrap_err();
        assert!(
            matches!(refused, SyncError::Hub(HubError::DuplicateReplica { counter: 2, .. })),
            "{refused}"
        );
        assert!(!refused.is_retryable());
        assert_eq!(hub.log(SPACE).len(), 2, "the original's changes were not overwritten");
    }

    #[test]
    fn a_copied_store_that_took_a_new_id_converges() {
        let hub = MemoryHub::new();
        let original = MemoryReplica::new(ReplicaId::mint());
        write(&original, "r", "title", json!("before the copy"));
        let copy = original.copy_file();
        copy.take_new_id(ReplicaId::mint());
        write(&original, "r", "title", json!("original"));
        write(&copy, "r", "status", json!("copy"));
        let from_copy = round(&copy, &hub).unwrap();
        assert_eq!(from_copy.pushed, 2, "the shared change under the old id, then its own");
        let from_original = round(&original, &hub).unwrap();
        assert_eq!((from_original.pushed, from_original.resent), (2, 1));
        round(&copy, &hub).unwrap();
        assert_eq!(copy.record_states().unwrap(), original.record_states().unwrap());
        assert_eq!(hub.log(SPACE).len(), 3);
    }

    #[test]
    fn a_hub_that_lost_acknowledged_changes_is_reported() {
        let hub = MemoryHub::new();
        let a = MemoryReplica::new(ReplicaId::mint());
        write(&a, "r", "title", json!("one"));
        write(&a, "r", "title", json!("two"));
        let first = a.outbox(1).unwrap()[0].dot;
        a.acknowledge(&[first]).unwrap(); // as if pushed to a hub later restored from a backup
        let error = round(&a, &hub).unwrap_err();
        assert_eq!(
            error,
            SyncError::HubLostChanges {
                replica: first.replica,
                expected: 1,
                oldest_waiting: "2".into()
            }
        );
        assert!(!error.is_retryable());
    }

    fn compact(hub: &MemoryHub, opts: crate::CompactOptions) -> crate::CompactReport {
        use crate::HubAdmin;
        block_on(hub.compact(SPACE, opts)).unwrap()
    }

    #[test]
    fn a_fresh_replica_bootstraps_from_snapshots_then_the_tail() {
        let hub = MemoryHub::new();
        let a = MemoryReplica::new(ReplicaId::mint());
        for round_no in 0..4 {
            for i in 0..5 {
                write(&a, &format!("r{i}"), "title", json!(format!("{round_no}-{i}")));
            }
            round(&a, &hub).unwrap();
        }
        let folded = compact(&hub, crate::CompactOptions::default());
        assert_eq!((folded.folded, folded.floor, folded.snapshots), (20, 20, 5));
        write(&a, "r0", "status", json!("active"));
        round(&a, &hub).unwrap();
        let fresh = MemoryReplica::new(ReplicaId::mint());
        let report = round(&fresh, &hub).unwrap();
        assert_eq!((report.pulled, report.cursor), (6, 21), "5 snapshots, then 1 change");
        assert_eq!(fresh.record_states().unwrap(), a.record_states().unwrap());
    }

    #[test]
    fn a_replica_behind_the_floor_catches_up_keeping_its_unpushed_writes() {
        use crate::HubAdmin;
        let hub = MemoryHub::new();
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        write(&a, "r", "title", json!("base"));
        round(&a, &hub).unwrap();
        round(&b, &hub).unwrap();
        // b goes offline and writes; a goes on and b is forgotten.
        write(&b, "r", "title", json!("b offline"));
        write(&b, "s", "title", json!("b's new record"));
        write(&a, "r", "title", json!("a online"));
        write(&a, "r", "status", json!("active"));
        round(&a, &hub).unwrap();
        assert!(block_on(hub.forget(SPACE, b.replica_id().unwrap())).unwrap());
        assert_eq!(compact(&hub, crate::CompactOptions::default()).floor, 3);
        assert!(hub.log(SPACE).is_empty());
        let report = round(&b, &hub).unwrap();
        assert_eq!(report.pushed, 2, "its unpushed writes went out");
        assert_eq!(b.pending(), 0);
        round(&a, &hub).unwrap();
        assert_eq!(a.record_states().unwrap(), b.record_states().unwrap());
        let r = a.record("items", "r");
        assert_eq!(r.conflicts().count(), 1, "a's title and b's offline title both kept");
        assert_eq!(r.value("status"), Some(&json!("active")));
        assert_eq!(a.record("items", "s").value("title"), Some(&json!("b's new record")));
        let fresh = MemoryReplica::new(ReplicaId::mint());
        round(&fresh, &hub).unwrap();
        assert_eq!(fresh.record_states().unwrap(), a.record_states().unwrap());
    }

    #[test]
    fn a_hub_log_shorter_than_the_cursor_is_reported() {
        let (old_hub, new_hub) = (MemoryHub::new(), MemoryHub::new());
        let (a, b) = (
            MemoryReplica::new(ReplicaId::mint()),
            MemoryReplica::new(ReplicaId::mint()),
        );
        write(&a, "r", "title", json!("one"));
        round(&a, &old_hub).unwrap();
        round(&b, &old_hub).unwrap();
        let error = round(&b, &new_hub).unwrap_err();
        assert!(
            matches!(error, SyncError::LogReset { cursor: 1, head: 0, .. }),
            "{error}"
        );
        assert_eq!(error.refusal(), Some(Refusal::LogReset));
    }
}

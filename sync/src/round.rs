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
use crate::protocol::{Hub, HubError, Replica, ReplicaError};

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
    /// The hub expects a counter this replica no longer has: changes it once
    /// acknowledged are gone from the hub.
    #[error(
        "the hub expects change {expected} of replica {replica} next, but this store no longer has it (the oldest change waiting here is {oldest_waiting}): the hub lost changes it had acknowledged, probably restored from a backup; restore the hub or sync this store into a new space"
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
            SyncError::HubLostChanges { .. } | SyncError::Protocol(_) => false,
        }
    }

    /// Whether the hub could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SyncError::Hub(e) if e.is_unreachable())
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
    push_outbox(replica, hub, space, opts, &mut report).await?;
    pull_log(replica, hub, space, opts, &mut report).await?;
    Ok(report)
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
    loop {
        let page = hub.pull(space, cursor, opts.page_size.max(1)).await?;
        let Some(&(last, _)) = page.changes.last() else {
            if page.head_seq < cursor {
                return Err(SyncError::Protocol(format!(
                    "the hub's log of space {space:?} ends at seq {}, but this store already read up to {cursor}: \
                     the space was reset or restored; sync this store into a new space",
                    page.head_seq
                )));
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
    Ok(())
}

//! Waymark's replication layer.
//!
//! This crate owns the semantics of `spec/sync.md`: dots, version vectors and
//! the hybrid logical clock ([`clock`]), the change record ([`change`]), the
//! field-level merge ([`merge`]), the hub protocol ([`protocol`]) with its
//! in-memory model ([`memory`]), one sync round ([`round`]) and the worker's
//! schedule ([`worker`]). Everything here is pure: no IO, no clock reads, no
//! SQL, no async runtime, except [`postgres`], the Postgres hub, which holds
//! all of this crate's IO. The agent's store uses these types on its one write
//! path, so a local write and a merged remote change go through the same
//! [`merge::RecordState::apply`]; it implements [`protocol::Replica`], and the
//! hubs implement [`protocol::Hub`]. [`testing`] holds the conformance suite
//! every implementation of either trait must pass.

pub mod change;
pub mod clock;
pub mod fork;
pub mod memory;
pub mod merge;
pub mod postgres;
pub mod protocol;
pub mod round;
pub mod snapshot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod worker;

pub use change::{Change, SCHEMA_VERSION};
pub use clock::{Dot, Hlc, ReplicaId, VersionVector};
pub use merge::{Applied, RecordState, Register, Sibling};
pub use postgres::{HubOptions, HubUrl, PostgresHub, TlsMode};
pub use protocol::{
    CompactOptions, CompactReport, Frontier, Hub, HubAdmin, HubError, PageApplied, PullPage, PushAck, RecordStates,
    Refusal, Replica, ReplicaError, ReplicaInfo, SnapshotPage,
};
pub use round::{RoundReport, SyncError, SyncOptions, sync_round};
pub use snapshot::{RecordKey, Snapshot};
pub use worker::{SyncStatus, Worker, WorkerConfig, WorkerState};

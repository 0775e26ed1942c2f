//! Waymark's replication layer.
//!
//! This crate owns the semantics of `spec/sync.md`: dots, version vectors and
//! the hybrid logical clock ([`clock`]), the change record ([`change`]) and
//! the field-level merge ([`merge`]). Everything here is pure: no IO, no
//! clock reads, no SQL. The agent's store uses these types on its one write
//! path, so a local write and a merged remote change go through the same
//! [`merge::RecordState::apply`].

pub mod change;
pub mod clock;
pub mod merge;

pub use change::{Change, SCHEMA_VERSION};
pub use clock::{Dot, Hlc, ReplicaId, VersionVector};
pub use merge::{Applied, RecordState, Register, Sibling};

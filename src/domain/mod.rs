//! The domain of `spec/domain.md`: the value types, their rules and the
//! deterministic ids of natural keys. Pure: no IO, no SQL.
//!
//! Every rule a tool or the CLI enforces lives here once; the operations
//! (`crate::ops`) call these before they write.

pub mod claim;
pub mod ids;
mod rules;

pub use rules::*;

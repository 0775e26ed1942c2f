//! Waymark: an offline-first project tracker for coding agents.
//!
//! The library is the agent: the domain ([`domain`]), the local SQLite store
//! ([`store`]), the operations both faces call ([`ops`]) and the status
//! report ([`report`]). The binary adds the command line.

pub mod board;
pub mod config;
pub mod domain;
pub mod error;
pub mod import;
pub mod mcp;
pub mod ops;
pub mod progress;
pub mod report;
pub mod store;
pub mod sync;
pub mod time;
pub mod watch;

pub use error::{Error, Result};
pub use ops::Tracker;

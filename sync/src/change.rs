//! A change: the unit a replica writes, pushes and pulls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{Dot, Hlc, VersionVector};

/// The schema version of the changes this code writes. Fields it does not
/// know, from a newer version, are kept and forwarded untouched.
pub const SCHEMA_VERSION: u32 = 1;

/// One write to one record: the fields it set, the dot that names it and the
/// version vector of the record when it was written (its causal context).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub collection: String,
    pub record_id: String,
    pub dot: Dot,
    pub context: VersionVector,
    pub fields: BTreeMap<String, Value>,
    pub hlc: Hlc,
    /// Who wrote it: the MCP client's name, or `cli`.
    pub author: String,
    pub schema_version: u32,
}

impl Change {
    /// The change as the hub stores it, and as a resend is compared with
    /// what the hub holds: byte for byte, never by parsing the stored body
    /// back (a parse may not give back every float's last bit).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a change of JSON values always serializes")
    }
}

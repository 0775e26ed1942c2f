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

/// How deep a change's values may nest (hubs refuse deeper ones, so a
/// replica never has to store a value it could not read back).
pub const MAX_NESTING: usize = 32;

fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

impl Change {
    /// Why this change is malformed, if it is: a collection or record id
    /// that is empty, or a value nested deeper than [`MAX_NESTING`]. Hubs
    /// refuse such a change, and replicas never apply one.
    pub fn malformed(&self) -> Option<String> {
        if self.collection.is_empty() {
            return Some("a change names no collection".into());
        }
        if self.record_id.is_empty() {
            return Some("a change names no record".into());
        }
        self.fields
            .iter()
            .find(|(_, v)| nesting(v) > MAX_NESTING)
            .map(|(name, _)| format!("field {name:?} nests deeper than {MAX_NESTING} levels"))
    }

    /// The change as the hub stores it, and as a resend is compared with
    /// what the hub holds: byte for byte, never by parsing the stored body
    /// back (a parse may not give back every float's last bit).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a change of JSON values always serializes")
    }
}

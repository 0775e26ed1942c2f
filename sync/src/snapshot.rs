//! Snapshots: a record's registers as the hub keeps them once the changes
//! that made them are causally stable (every live replica has pulled
//! them), and the compaction that folds the log into them.
//!
//! Pure: the in-memory hub and the Postgres hub fold with the same code
//! ([`fold`]), and a replica joins a snapshot into what it holds with
//! [`RecordState::join`]. The stored and wire form ([`Snapshot::body`])
//! groups a record's values by the write that left them: one entry per
//! surviving write (its dot, clock, author and the fields it still shows),
//! about the size of the changes that survive, not one per field.
//!
//! A snapshot also keeps the hub seq of each write it still shows, and of
//! each write its values name by dot (`replica:counter` text, as a claim's
//! value names the write that began its turn): what a replica that
//! bootstraps from it needs to derive what depends on the hub's order (who
//! holds a claim), the same as a replica that pulled the log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::Change;
use crate::clock::{Dot, Hlc, VersionVector};
use crate::merge::{RecordState, Register, Sibling};

/// `(collection, record id)`: where a snapshot sits in a space (pages of
/// snapshots follow this order).
pub type RecordKey = (String, String);

/// One record's folded state: the merge of every change of the record at
/// or below the space's compaction floor, conflicts and delete races kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub collection: String,
    pub record_id: String,
    pub state: RecordState,
    /// The hub seq of each write the state shows or its values name.
    pub seqs: BTreeMap<Dot, u64>,
}

/// The stored form: values grouped by the write that left them.
#[derive(Serialize, Deserialize)]
struct Packed {
    #[serde(rename = "c")]
    collection: String,
    #[serde(rename = "r")]
    record_id: String,
    #[serde(rename = "vv")]
    vv: VersionVector,
    #[serde(rename = "w")]
    writes: Vec<PackedWrite>,
    #[serde(rename = "x", default, skip_serializing_if = "BTreeSet::is_empty")]
    races: BTreeSet<(Dot, Dot)>,
    #[serde(rename = "q", default, skip_serializing_if = "Vec::is_empty")]
    seqs: Vec<(Dot, u64)>,
}

#[derive(Serialize, Deserialize)]
struct PackedWrite {
    #[serde(rename = "d")]
    dot: Dot,
    #[serde(rename = "h")]
    hlc: Hlc,
    #[serde(rename = "a")]
    author: String,
    #[serde(rename = "f")]
    fields: BTreeMap<String, Value>,
}

impl Snapshot {
    /// The snapshot as the hub stores and sends it (JSON, values grouped by
    /// write).
    pub fn body(&self) -> Vec<u8> {
        let mut writes: BTreeMap<(Dot, Hlc, &str), BTreeMap<String, Value>> = BTreeMap::new();
        for (name, register) in &self.state.fields {
            for s in register.siblings() {
                writes
                    .entry((s.dot, s.hlc, s.author.as_str()))
                    .or_default()
                    .insert(name.clone(), s.value.clone());
            }
        }
        let packed = Packed {
            collection: self.collection.clone(),
            record_id: self.record_id.clone(),
            vv: self.state.vv.clone(),
            writes: writes
                .into_iter()
                .map(|((dot, hlc, author), fields)| PackedWrite {
                    dot,
                    hlc,
                    author: author.to_owned(),
                    fields,
                })
                .collect(),
            races: self.state.delete_races.clone(),
            seqs: self.seqs.iter().map(|(d, s)| (*d, *s)).collect(),
        };
        serde_json::to_vec(&packed).expect("a snapshot of JSON values always serializes")
    }

    /// Read a snapshot back from [`Snapshot::body`].
    pub fn from_body(body: &[u8]) -> Result<Snapshot, String> {
        let packed: Packed = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let mut fields: BTreeMap<String, Vec<Sibling>> = BTreeMap::new();
        for w in packed.writes {
            for (name, value) in w.fields {
                fields.entry(name).or_default().push(Sibling {
                    dot: w.dot,
                    hlc: w.hlc,
                    author: w.author.clone(),
                    value,
                });
            }
        }
        Ok(Snapshot {
            collection: packed.collection,
            record_id: packed.record_id,
            state: RecordState {
                vv: packed.vv,
                fields: fields
                    .into_iter()
                    .map(|(n, s)| (n, Register::from_siblings(s)))
                    .collect(),
                delete_races: packed.races,
            },
            seqs: packed.seqs.into_iter().collect(),
        })
    }

    pub fn key(&self) -> RecordKey {
        (self.collection.clone(), self.record_id.clone())
    }
}

/// Fold `changes` (a run of the log, in seq order, all above the floor the
/// `snapshots` were folded to) into `snapshots`: each change applied to its
/// record's state. Returns the highest counter folded per replica (what
/// the hub remembers of the changes it no longer holds: a resend of one
/// is already stored, and a replica's next counter follows it).
pub fn fold(snapshots: &mut BTreeMap<RecordKey, RecordState>, changes: &[Change]) -> VersionVector {
    let mut folded = VersionVector::new();
    for change in changes {
        snapshots
            .entry((change.collection.clone(), change.record_id.clone()))
            .or_default()
            .apply(change);
        folded.insert(change.dot);
    }
    folded
}

/// Note the hub seqs of folded `changes` (`(seq, change)`, folded into
/// `snapshots` already) in `seqs`, and keep for each record they touched
/// only the seqs of the writes its snapshot shows or its values name
/// ([`kept_dots`]).
pub fn fold_seqs(
    seqs: &mut BTreeMap<RecordKey, BTreeMap<Dot, u64>>,
    snapshots: &BTreeMap<RecordKey, RecordState>,
    changes: &[(u64, &Change)],
) {
    let mut touched = BTreeSet::new();
    for (seq, change) in changes {
        let key = (change.collection.clone(), change.record_id.clone());
        seqs.entry(key.clone()).or_default().insert(change.dot, *seq);
        touched.insert(key);
    }
    for key in touched {
        let keep = snapshots.get(&key).map(kept_dots).unwrap_or_default();
        if let Some(record) = seqs.get_mut(&key) {
            record.retain(|dot, _| keep.contains(dot));
            if record.is_empty() {
                seqs.remove(&key);
            }
        }
    }
}

/// The writes whose seqs a record's snapshot keeps: those it shows, and
/// those its values name as `replica:counter` text (at any depth).
pub fn kept_dots(state: &RecordState) -> BTreeSet<Dot> {
    fn named(value: &Value, out: &mut BTreeSet<Dot>, depth: usize) {
        match value {
            Value::String(text) => {
                if let Ok(dot) = text.parse() {
                    out.insert(dot);
                }
            }
            Value::Array(items) if depth < 8 => items.iter().for_each(|v| named(v, out, depth + 1)),
            Value::Object(map) if depth < 8 => map.values().for_each(|v| named(v, out, depth + 1)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for register in state.fields.values() {
        for s in register.siblings() {
            out.insert(s.dot);
            named(&s.value, &mut out, 0);
        }
    }
    out
}

/// Whether `change`, whose dot is at or below its replica's highest folded
/// counter, can be the change the hub folded under that dot, as far as its
/// record's snapshot (`None`: the record has none) still tells: the
/// snapshot saw the dot, and every value of that dot it still shows is the
/// change's. A resend of the folded change always passes; another change
/// under the same dot (two stores sharing an id, one restored from a
/// machine snapshot) fails unless the values it could be compared with are
/// all gone.
pub fn may_be_folded(snapshot: Option<&RecordState>, change: &Change) -> bool {
    let Some(state) = snapshot else { return false };
    if !state.vv.covers(&change.dot) {
        return false;
    }
    change.fields.iter().all(|(name, value)| {
        state
            .fields
            .get(name)
            .and_then(|r| r.siblings().iter().find(|s| s.dot == change.dot))
            .is_none_or(|s| s.value == *value && s.hlc == change.hlc && s.author == change.author)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::ReplicaId;

    #[test]
    fn the_stored_form_gives_back_the_registers() {
        let (a, b) = (ReplicaId::mint(), ReplicaId::mint());
        let mut state = RecordState::default();
        let base = crate::testing::change(a, 1, "r", json!({"title": "t", "status": "active", "x": 0.1f64 + 0.2}));
        state.apply(&base);
        let mut seen = VersionVector::new();
        seen.insert(base.dot);
        let mut edit = crate::testing::change(b, 1, "r", json!({"title": "b's"}));
        edit.context = seen.clone();
        let mut delete = crate::testing::change(a, 2, "r", json!({"deleted_at": "2026-01-01T00:00:00Z"}));
        delete.context = seen;
        state.apply(&edit);
        state.apply(&delete);
        assert!(state.delete_conflict());
        let snapshot = Snapshot {
            collection: "items".into(),
            record_id: "r".into(),
            state,
            seqs: [(base.dot, 1), (delete.dot, 3)].into_iter().collect(),
        };
        let back = Snapshot::from_body(&snapshot.body()).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn folded_seqs_keep_the_writes_shown_and_named() {
        let a = ReplicaId::mint();
        let first = crate::testing::change(a, 1, "r", json!({"holder": "x"}));
        let mut second = crate::testing::change(a, 2, "r", json!({"holder": "x", "tenure": format!("{}:1", a.0)}));
        second.context.insert(first.dot);
        let mut third = crate::testing::change(a, 3, "r", json!({"holder": "y", "tenure": null}));
        third.context.insert(second.dot);
        let mut states = BTreeMap::new();
        let mut seqs = BTreeMap::new();
        fold(&mut states, &[first.clone(), second.clone()]);
        fold_seqs(&mut seqs, &states, &[(1, &first), (2, &second)]);
        let key = ("items".to_owned(), "r".to_owned());
        // The first write is replaced, but the second names it.
        assert_eq!(seqs[&key], [(first.dot, 1), (second.dot, 2)].into_iter().collect());
        fold(&mut states, std::slice::from_ref(&third));
        fold_seqs(&mut seqs, &states, &[(3, &third)]);
        assert_eq!(
            seqs[&key],
            [(third.dot, 3)].into_iter().collect(),
            "nothing names the others"
        );
    }
}

//! Field-level merge: a record is a map of multi-value registers.
//!
//! Pure: no IO, no clock reads. Applying a change drops, for each field it
//! writes, every value whose dot the change's context covers, and adds its
//! own. Values written concurrently survive side by side (a conflict); every
//! replica picks the same winner for display: the greatest `(hlc, dot)`.
//!
//! Precondition (kept by the hub's log, which is a causal order): a change
//! is applied after every change its context covers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::change::Change;
use crate::clock::{Dot, Hlc, VersionVector};

/// One value of a register, with the write that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sibling {
    #[serde(rename = "d")]
    pub dot: Dot,
    #[serde(rename = "h")]
    pub hlc: Hlc,
    #[serde(rename = "a")]
    pub author: String,
    #[serde(rename = "v")]
    pub value: Value,
}

impl Sibling {
    fn order_key(&self) -> (Hlc, Dot) {
        (self.hlc, self.dot)
    }
}

/// The values of one field that no later write has seen, in ascending
/// `(hlc, dot)` order: the last one is the winner shown to users.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Register(Vec<Sibling>);

impl Register {
    /// A register holding `siblings` (in any order; kept sorted by
    /// `(hlc, dot)`), as a store reads it back from its own encoding.
    pub fn from_siblings(mut siblings: Vec<Sibling>) -> Register {
        siblings.sort_by_key(Sibling::order_key);
        Register(siblings)
    }

    pub fn winner(&self) -> Option<&Sibling> {
        self.0.last()
    }

    pub fn siblings(&self) -> &[Sibling] {
        &self.0
    }

    /// Concurrent writes left different values.
    pub fn is_conflict(&self) -> bool {
        match self.0.split_last() {
            Some((last, rest)) => rest.iter().any(|s| s.value != last.value),
            None => false,
        }
    }

    /// Rename the dots of its values (see [`crate::fork`]).
    pub fn rename(&mut self, rename: impl Fn(Dot) -> Dot) {
        for s in &mut self.0 {
            s.dot = rename(s.dot);
        }
        self.0.sort_by_key(Sibling::order_key);
    }

    fn write(&mut self, context: &VersionVector, sibling: Sibling) {
        self.0.retain(|s| !context.covers(&s.dot));
        let at = self.0.partition_point(|s| s.order_key() < sibling.order_key());
        self.0.insert(at, sibling);
    }
}

/// The field whose non-null value marks a record deleted.
pub const DELETE_FIELD: &str = "deleted_at";

/// Fields written once, at creation: an edit of the record never touches them.
const CREATION_FIELDS: [&str; 2] = ["created_at", "created_by"];

fn is_edit_field(name: &str) -> bool {
    name != DELETE_FIELD && !CREATION_FIELDS.contains(&name)
}

/// What a replica knows of one record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// Every change applied to this record.
    pub vv: VersionVector,
    /// Field name -> register. Fields this code does not know are kept too.
    pub fields: BTreeMap<String, Register>,
    /// `(edit, delete)`: an edit and a delete of this record made without
    /// seeing each other, both still visible. While one remains the record
    /// has a `delete_vs_update` conflict, so nobody's edit vanishes silently
    /// into a deleted record.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub delete_races: BTreeSet<(Dot, Dot)>,
}

/// Whether applying a change did anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The change was new; the record changed.
    Changed,
    /// The change was already reflected (a duplicate delivery).
    AlreadySeen,
}

impl RecordState {
    /// Apply one change. Idempotent: a change already seen does nothing.
    pub fn apply(&mut self, change: &Change) -> Applied {
        if self.vv.covers(&change.dot) {
            return Applied::AlreadySeen;
        }
        // Races between this change and what is visible, decided before
        // the change replaces anything (causality, not arrival order).
        let deletes = change.fields.get(DELETE_FIELD).is_some_and(|v| !v.is_null());
        let edits = change.fields.keys().any(|k| is_edit_field(k));
        let unseen = |dot: &Dot| !change.context.covers(dot);
        let mut races: Vec<(Dot, Dot)> = Vec::new();
        if deletes {
            races.extend(
                self.edit_dots()
                    .into_iter()
                    .filter(|d| unseen(d))
                    .map(|e| (e, change.dot)),
            );
        }
        if edits {
            races.extend(
                self.delete_dots()
                    .into_iter()
                    .filter(|d| unseen(d))
                    .map(|d| (change.dot, d)),
            );
        }
        for (name, value) in &change.fields {
            let sibling = Sibling {
                dot: change.dot,
                hlc: change.hlc,
                author: change.author.clone(),
                value: value.clone(),
            };
            self.fields
                .entry(name.clone())
                .or_default()
                .write(&change.context, sibling);
        }
        self.vv.insert(change.dot);
        self.delete_races.extend(races);
        let (edits, deletes) = (self.edit_dots(), self.delete_dots());
        self.delete_races
            .retain(|(e, d)| edits.contains(e) && deletes.contains(d));
        Applied::Changed
    }

    /// Merge another state of this record into this one (a snapshot the
    /// hub folded, joined into what a replica holds): the result is the
    /// state of the union of the changes both have applied, as if every
    /// one of them had been applied here. A value survives when this side
    /// and the other both keep it, or when the side that lacks it never saw
    /// its write; an edit and a delete that only one side each saw, and that
    /// neither saw the other, race. Returns whether anything changed.
    ///
    /// Precondition (kept by the hub's causal log): each state holds
    /// everything its version vector covers (its values and the writes
    /// that replaced them), so a version vector that covers a dot whose
    /// value it lacks means that value was replaced.
    pub fn join(&mut self, other: &RecordState) -> bool {
        let news = other.vv.iter().any(|(r, &c)| self.vv.get(r) < c);
        if !news {
            return false;
        }
        if self.vv.is_empty() && self.fields.is_empty() {
            // A record this replica never saw (a bootstrap): the other's.
            *self = other.clone();
            return true;
        }
        let mut races: Vec<(Dot, Dot)> = Vec::new();
        let (mine_edits, mine_deletes) = (self.edit_dots(), self.delete_dots());
        let (their_edits, their_deletes) = (other.edit_dots(), other.delete_dots());
        for e in mine_edits.iter().filter(|e| !other.vv.covers(e)) {
            for d in their_deletes.iter().filter(|d| !self.vv.covers(d)) {
                races.push((*e, *d));
            }
        }
        for e in their_edits.iter().filter(|e| !self.vv.covers(e)) {
            for d in mine_deletes.iter().filter(|d| !other.vv.covers(d)) {
                races.push((*e, *d));
            }
        }
        let names: BTreeSet<String> = self.fields.keys().chain(other.fields.keys()).cloned().collect();
        for name in names {
            let empty = Register::default();
            let mine = self.fields.get(&name).unwrap_or(&empty);
            let theirs = other.fields.get(&name).unwrap_or(&empty);
            let has = |r: &Register, dot: &Dot| r.0.iter().any(|s| s.dot == *dot);
            let mut kept: Vec<Sibling> = mine
                .0
                .iter()
                .filter(|s| has(theirs, &s.dot) || !other.vv.covers(&s.dot))
                .cloned()
                .collect();
            kept.extend(
                theirs
                    .0
                    .iter()
                    .filter(|s| !has(mine, &s.dot) && !self.vv.covers(&s.dot))
                    .cloned(),
            );
            if kept.is_empty() {
                self.fields.remove(&name);
            } else {
                self.fields.insert(name, Register::from_siblings(kept));
            }
        }
        self.vv.join(&other.vv);
        self.delete_races.extend(other.delete_races.iter().copied());
        self.delete_races.extend(races);
        let (edits, deletes) = (self.edit_dots(), self.delete_dots());
        self.delete_races
            .retain(|(e, d)| edits.contains(e) && deletes.contains(d));
        true
    }

    /// The writes visible in the fields an edit changes.
    fn edit_dots(&self) -> BTreeSet<Dot> {
        self.fields
            .iter()
            .filter(|(name, _)| is_edit_field(name))
            .flat_map(|(_, r)| r.siblings().iter().map(|s| s.dot))
            .collect()
    }

    /// The deletes visible in the record's delete field.
    fn delete_dots(&self) -> BTreeSet<Dot> {
        self.fields
            .get(DELETE_FIELD)
            .map(|r| {
                r.siblings()
                    .iter()
                    .filter(|s| !s.value.is_null())
                    .map(|s| s.dot)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An edit and a delete were made without seeing each other, and both
    /// still stand.
    pub fn delete_conflict(&self) -> bool {
        !self.delete_races.is_empty()
    }

    /// The displayed value of a field.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).and_then(Register::winner).map(|s| &s.value)
    }

    /// The latest write still visible in any field: who last changed the
    /// record, and when.
    pub fn last_write(&self) -> Option<&Sibling> {
        self.fields
            .values()
            .filter_map(Register::winner)
            .max_by_key(|s| s.order_key())
    }

    /// The earliest write still visible in any field.
    pub fn first_write(&self) -> Option<&Sibling> {
        self.fields
            .values()
            .flat_map(|r| r.siblings().iter())
            .min_by_key(|s| s.order_key())
    }

    /// Fields whose register holds concurrent, different values.
    pub fn conflicts(&self) -> impl Iterator<Item = (&str, &Register)> {
        self.fields
            .iter()
            .filter(|(_, r)| r.is_conflict())
            .map(|(n, r)| (n.as_str(), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ReplicaId;
    use serde_json::json;
    use uuid::Uuid;

    fn replica(n: u128) -> ReplicaId {
        ReplicaId(Uuid::from_u128(n))
    }

    fn change(r: u128, counter: u64, hlc: u64, context: &VersionVector, fields: Value) -> Change {
        Change {
            collection: "work_items".into(),
            record_id: "r".into(),
            dot: Dot {
                replica: replica(r),
                counter,
            },
            context: context.clone(),
            fields: serde_json::from_value(fields).unwrap(),
            hlc: Hlc(hlc),
            author: format!("replica-{r}"),
            schema_version: 1,
        }
    }

    #[test]
    fn a_later_write_replaces_what_it_saw() {
        let mut state = RecordState::default();
        let c1 = change(
            1,
            1,
            10,
            &VersionVector::new(),
            json!({"title": "a", "status": "active"}),
        );
        state.apply(&c1);
        let c2 = change(1, 2, 11, &state.vv.clone(), json!({"title": "b"}));
        state.apply(&c2);
        assert_eq!(state.value("title"), Some(&json!("b")));
        assert_eq!(state.value("status"), Some(&json!("active")));
        assert_eq!(state.conflicts().count(), 0);
    }

    #[test]
    fn concurrent_writes_to_one_field_conflict_with_the_same_winner_in_any_order() {
        let base = change(1, 1, 10, &VersionVector::new(), json!({"title": "a"}));
        let mut seen = VersionVector::new();
        seen.insert(base.dot);
        let left = change(1, 2, 20, &seen, json!({"title": "left"}));
        let right = change(2, 1, 15, &seen, json!({"title": "right", "priority": 1}));

        let mut one = RecordState::default();
        for c in [&base, &left, &right] {
            one.apply(c);
        }
        let mut two = RecordState::default();
        for c in [&base, &right, &left, &right] {
            two.apply(c);
        }
        assert_eq!(one, two);
        assert_eq!(one.value("title"), Some(&json!("left")));
        assert_eq!(one.value("priority"), Some(&json!(1)));
        let conflicts: Vec<_> = one.conflicts().map(|(n, _)| n).collect();
        assert_eq!(conflicts, ["title"]);
    }

    #[test]
    fn equal_concurrent_values_are_not_a_conflict() {
        let mut state = RecordState::default();
        state.apply(&change(1, 1, 10, &VersionVector::new(), json!({"status": "broken"})));
        state.apply(&change(2, 1, 11, &VersionVector::new(), json!({"status": "broken"})));
        assert_eq!(state.conflicts().count(), 0);
        assert_eq!(state.fields["status"].siblings().len(), 2);
    }

    #[test]
    fn an_edit_concurrent_with_a_delete_is_a_conflict_in_any_order() {
        let base = change(
            1,
            1,
            10,
            &VersionVector::new(),
            json!({"title": "a", "created_at": "t"}),
        );
        let mut seen = VersionVector::new();
        seen.insert(base.dot);
        let edit = change(2, 1, 20, &seen, json!({"title": "edited offline"}));
        let delete = change(1, 2, 15, &seen, json!({"deleted_at": "2026-01-01T00:00:00Z"}));
        let mut one = RecordState::default();
        for c in [&base, &edit, &delete] {
            one.apply(c);
        }
        let mut two = RecordState::default();
        for c in [&base, &delete, &edit] {
            two.apply(c);
        }
        assert_eq!(one, two);
        assert!(one.delete_conflict());
        // Restoring with a write that saw both ends it.
        let restore = change(1, 3, 30, &one.vv.clone(), json!({"deleted_at": null}));
        one.apply(&restore);
        assert!(!one.delete_conflict());
        // A delete that saw the edit is no conflict.
        let mut three = RecordState::default();
        three.apply(&base);
        three.apply(&edit);
        three.apply(&change(
            1,
            2,
            40,
            &three.vv.clone(),
            json!({"deleted_at": "2026-01-02T00:00:00Z"}),
        ));
        assert!(!three.delete_conflict());
    }

    /// Joining the states of two replicas gives the state of the union of
    /// their changes, applied one by one (random histories of three
    /// replicas writing, deleting and restoring one record, exchanging
    /// changes in causal order).
    #[test]
    fn join_equals_applying_the_union() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let fields = ["title", "status", "deleted_at", "created_at"];
        for case in 0..3000 {
            // Each replica: its state and the indexes into `log` it applied.
            let mut states: Vec<(RecordState, Vec<usize>)> = vec![Default::default(); 3];
            let mut log: Vec<Change> = Vec::new();
            let mut counters = [0u64; 3];
            for step in 0..(4 + next(14)) {
                let r = next(3) as usize;
                if next(3) > 0 {
                    counters[r] += 1;
                    let mut written = serde_json::Map::new();
                    for f in fields {
                        if next(3) == 0 {
                            let v = if f == "deleted_at" && next(2) == 0 {
                                Value::Null
                            } else {
                                json!(next(3))
                            };
                            written.insert(f.into(), v);
                        }
                    }
                    if written.is_empty() {
                        written.insert("title".into(), json!(step));
                    }
                    let c = change(
                        r as u128 + 1,
                        counters[r],
                        next(50),
                        &states[r].0.vv.clone(),
                        Value::Object(written),
                    );
                    states[r].0.apply(&c);
                    states[r].1.push(log.len());
                    log.push(c);
                } else {
                    // Deliver the earliest change r lacks whose context r has seen.
                    let (state, seen) = &mut states[r];
                    let next_one = (0..log.len())
                        .find(|i| !seen.contains(i) && log[*i].context.iter().all(|(rep, &n)| state.vv.get(rep) >= n));
                    if let Some(i) = next_one {
                        state.apply(&log[i]);
                        seen.push(i);
                    }
                }
            }
            let (a, b) = (next(3) as usize, next(3) as usize);
            let mut joined = states[a].0.clone();
            joined.join(&states[b].0);
            let mut union: Vec<usize> = states[a].1.iter().chain(&states[b].1).copied().collect();
            union.sort_unstable();
            union.dedup();
            let mut folded = RecordState::default();
            for i in union {
                folded.apply(&log[i]);
            }
            assert_eq!(joined, folded, "case {case}: {a} joined with {b}");
            // Idempotent, and the other way round gives the same.
            let mut again = joined.clone();
            assert!(!again.join(&states[b].0));
            let mut other_way = states[b].0.clone();
            other_way.join(&states[a].0);
            assert_eq!(other_way, folded, "case {case}: {b} joined with {a}");
        }
    }

    #[test]
    fn a_duplicate_change_is_ignored() {
        let mut state = RecordState::default();
        let c = change(1, 1, 10, &VersionVector::new(), json!({"title": "a"}));
        assert_eq!(state.apply(&c), Applied::Changed);
        assert_eq!(state.apply(&c), Applied::AlreadySeen);
    }
}

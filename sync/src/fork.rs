//! Moving a replica's forked changes to a new replica id.
//!
//! Two stores that share a replica id without knowing it (a store restored
//! from a snapshot of its whole machine: same path, same file, same machine
//! id) write different changes under the same dots. The hub keeps the first
//! it receives and refuses the other ([`crate::HubError::DuplicateReplica`]):
//! from that counter on, the refused store's changes are a fork. They are
//! renamed under a fresh replica id, in order, everywhere the store holds
//! them (registers, version vectors, delete races, unacknowledged changes
//! and their contexts), as if written under the new id from the start; the
//! hub's changes under the old dots are then received as the peer's they
//! are. Pure: no IO.

use std::collections::BTreeMap;

use crate::change::Change;
use crate::clock::{Dot, ReplicaId, VersionVector};
use crate::merge::RecordState;

/// The renaming of one fork: `from`'s changes from counter `at` on become
/// `to`'s, counter `k` becoming `counters[k]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    pub from: ReplicaId,
    pub at: u64,
    pub to: ReplicaId,
    pub counters: BTreeMap<u64, u64>,
}

impl Fork {
    /// Whether `dot` is one of the forked changes.
    pub fn forked(&self, dot: &Dot) -> bool {
        dot.replica == self.from && dot.counter >= self.at
    }

    /// The name of `dot` after the renaming.
    pub fn dot(&self, dot: Dot) -> Dot {
        match self.counters.get(&dot.counter) {
            Some(&counter) if self.forked(&dot) => Dot {
                replica: self.to,
                counter,
            },
            _ => dot,
        }
    }

    /// A version vector after the renaming: what it saw of `from` at or
    /// past the fork is what it saw of `to` instead.
    pub fn vv(&self, vv: &VersionVector) -> VersionVector {
        let seen = vv.get(&self.from);
        if seen < self.at {
            return vv.clone();
        }
        let mut out = VersionVector::new();
        for (&replica, &counter) in vv.iter() {
            if replica != self.from {
                out.insert(Dot { replica, counter });
            }
        }
        if self.at > 1 {
            out.insert(Dot {
                replica: self.from,
                counter: self.at - 1,
            });
        }
        if let Some((_, &to)) = self.counters.range(..=seen).next_back() {
            out.insert(Dot {
                replica: self.to,
                counter: to,
            });
        }
        out
    }

    /// A record's state after the renaming.
    pub fn state(&self, state: &RecordState) -> RecordState {
        let mut out = state.clone();
        out.vv = self.vv(&state.vv);
        for register in out.fields.values_mut() {
            register.rename(|dot| self.dot(dot));
        }
        out.delete_races = state
            .delete_races
            .iter()
            .map(|(e, d)| (self.dot(*e), self.dot(*d)))
            .collect();
        out
    }

    /// An unacknowledged change after the renaming.
    pub fn change(&self, change: &Change) -> Change {
        Change {
            dot: self.dot(change.dot),
            context: self.vv(&change.context),
            ..change.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Hlc;
    use serde_json::json;

    fn change(replica: ReplicaId, counter: u64, context: &VersionVector, title: &str) -> Change {
        Change {
            collection: "items".into(),
            record_id: "r".into(),
            dot: Dot { replica, counter },
            context: context.clone(),
            fields: [("title".to_owned(), json!(title))].into(),
            hlc: Hlc::from_parts(1_000 + counter, 0),
            author: "a".into(),
            schema_version: 1,
        }
    }

    /// The renamed fork, applied after the hub's changes under the old
    /// dots, ends where a replica that received both as separate writers
    /// ends: the hub's write and the fork's are concurrent, both kept.
    #[test]
    fn a_renamed_fork_merges_with_the_changes_it_collided_with() {
        let (r, new) = (ReplicaId::mint(), ReplicaId::mint());
        let base = change(r, 1, &VersionVector::new(), "base");
        let mut mine = RecordState::default();
        mine.apply(&base);
        // The fork: counters 2 and 3 here; the hub holds another 2.
        let c2 = change(r, 2, &mine.vv, "fork 2");
        mine.apply(&c2);
        let c3 = change(r, 3, &mine.vv, "fork 3");
        mine.apply(&c3);
        let mut theirs = RecordState::default();
        theirs.apply(&base);
        let hub2 = change(r, 2, &theirs.vv, "hub 2");

        let fork = Fork {
            from: r,
            at: 2,
            to: new,
            counters: [(2, 1), (3, 2)].into(),
        };
        let mut renamed = fork.state(&mine);
        assert!(!renamed.vv.covers(&hub2.dot), "the hub's change is news");
        renamed.apply(&hub2);
        let (f2, f3) = (fork.change(&c2), fork.change(&c3));
        assert_eq!(f3.context.get(&new), 1);
        assert!(f3.context.covers(&f2.dot) && !f3.context.covers(&hub2.dot));

        let mut elsewhere = RecordState::default();
        for c in [&base, &hub2, &f2, &f3] {
            elsewhere.apply(c);
        }
        assert_eq!(renamed, elsewhere);
        let titles: Vec<_> = elsewhere.fields["title"]
            .siblings()
            .iter()
            .map(|s| s.value.clone())
            .collect();
        assert_eq!(titles, vec![json!("hub 2"), json!("fork 3")]);
    }
}

//! Causality and time: replica ids, dots, version vectors and the hybrid
//! logical clock.
//!
//! Pure values with no IO. Causality (dots and version vectors) decides what
//! a merge keeps; the hybrid logical clock only orders concurrent values for
//! display and breaks ties deterministically.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one replica (one local store). Minted when the store is
/// created, and again when the store notices it was copied.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub Uuid);

impl ReplicaId {
    /// A fresh, time-ordered replica id.
    pub fn mint() -> ReplicaId {
        ReplicaId(Uuid::now_v7())
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplicaId({})", self.0)
    }
}

impl std::str::FromStr for ReplicaId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ReplicaId)
    }
}

/// One change's identity: the replica that wrote it and that replica's
/// counter at the time. Counters are dense per replica, starting at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub replica: ReplicaId,
    pub counter: u64,
}

/// A dot as text, `replica:counter` (the replica's id hyphenated): how a
/// conflict names the write of each value, a claim the write that began
/// its turn, and a store the change at its cursor.
impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}

impl std::str::FromStr for Dot {
    type Err = String;

    /// Exactly the text [`Dot`]'s `Display` writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a dot (replica:counter)");
        let (replica, counter) = text.rsplit_once(':').ok_or_else(bad)?;
        if replica.len() != 36 {
            return Err(bad());
        }
        Ok(Dot {
            replica: replica.parse().map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
        })
    }
}

/// For one record: replica -> highest counter of that replica's changes to
/// the record that this replica has applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionVector(BTreeMap<ReplicaId, u64>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the change identified by `dot` is already reflected here.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.0.get(&dot.replica).is_some_and(|&c| c >= dot.counter)
    }

    /// Record that `dot` has been applied.
    pub fn insert(&mut self, dot: Dot) {
        let entry = self.0.entry(dot.replica).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for (&replica, &counter) in &other.0 {
            self.insert(Dot { replica, counter });
        }
    }

    pub fn get(&self, replica: &ReplicaId) -> u64 {
        self.0.get(replica).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ReplicaId, &u64)> {
        self.0.iter()
    }
}

/// A hybrid logical clock reading: wall-clock milliseconds in the high 48
/// bits, a logical counter in the low 16. Monotonic per replica, and never
/// behind any reading the replica has observed from a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hlc(pub u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

impl Hlc {
    pub fn from_parts(millis: u64, logical: u16) -> Hlc {
        Hlc((millis << LOGICAL_BITS) | u64::from(logical))
    }

    /// The wall-clock part, in milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The next reading after `self` for a local event at wall time
    /// `now_millis`: the wall clock when it is ahead, otherwise one logical
    /// step past the last reading (so a clock set back never reorders events).
    pub fn tick(self, now_millis: u64) -> Hlc {
        if now_millis > self.millis() {
            Hlc::from_parts(now_millis, 0)
        } else if self.logical() < u16::MAX {
            Hlc(self.0 + 1)
        } else {
            Hlc::from_parts(self.millis() + 1, 0)
        }
    }

    /// Take a peer's reading into account, so later local readings sort after it.
    pub fn observe(self, remote: Hlc) -> Hlc {
        self.max(remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(n: u128) -> ReplicaId {
        ReplicaId(Uuid::from_u128(n))
    }

    #[test]
    fn version_vector_covers_what_it_joined() {
        let (a, b) = (replica(1), replica(2));
        let mut vv = VersionVector::new();
        vv.insert(Dot { replica: a, counter: 3 });
        assert!(vv.covers(&Dot { replica: a, counter: 2 }));
        assert!(!vv.covers(&Dot { replica: a, counter: 4 }));
        assert!(!vv.covers(&Dot { replica: b, counter: 1 }));
        let mut other = VersionVector::new();
        other.insert(Dot { replica: b, counter: 5 });
        other.insert(Dot { replica: a, counter: 1 });
        vv.join(&other);
        assert_eq!(vv.get(&a), 3);
        assert_eq!(vv.get(&b), 5);
    }

    #[test]
    fn hlc_is_monotonic_when_the_wall_clock_goes_back() {
        let t0 = Hlc::default().tick(1_000);
        assert_eq!((t0.millis(), t0.logical()), (1_000, 0));
        let t1 = t0.tick(900);
        assert!(t1 > t0);
        assert_eq!((t1.millis(), t1.logical()), (1_000, 1));
        let t2 = t1.tick(2_000);
        assert_eq!((t2.millis(), t2.logical()), (2_000, 0));
        let observed = t2.observe(Hlc::from_parts(5_000, 7));
        assert!(observed.tick(2_000) > Hlc::from_parts(5_000, 7));
    }

    #[test]
    fn hlc_logical_overflow_carries_into_millis() {
        let t = Hlc::from_parts(10, u16::MAX).tick(10);
        assert_eq!((t.millis(), t.logical()), (11, 0));
    }
}

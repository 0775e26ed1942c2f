//! Claims with leases: who works on an item, decided by the hub's order.
//! Pure: the store feeds it a claim record's values and the hub seqs it
//! knows; no IO.
//!
//! A claim is the record of collection `claims` whose id is the work item's
//! id, with one field, `claim`, a multi-value register like any other. Each
//! value is [`ClaimValue`]: the holder, the lease's end, and where the
//! value sits in the item's history of claims (its *tenure*: the change that
//! started this holder's turn; its *origin*: the first tenure of the chain
//! it continues, and `gen`, how many turns came between). A renewal or a
//! release keeps its tenure; a claim of a free item, of an expired lease or
//! a forced one starts a new tenure after the one it saw.
//!
//! Concurrent values (no write saw the other) are ordered by the hub seqs
//! of their origin, then `gen`, then their tenure, values whose seqs this
//! store does not know yet last; walking that order, a value takes the item
//! when it is free (nobody before, or the lease before ended when it was
//! written) or when it is the same holder's; otherwise it **lost**. Every
//! replica that has pulled the same changes derives the same holder, and a
//! value that lost stays lost whatever is written later without seeing it
//! (a renewal or release keeps its place in the order). So concurrent
//! claims never raise a `value` conflict: the hub's order resolves them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use waymark_sync::{Dot, Hlc};

/// The lease a claim takes unless told otherwise.
pub const DEFAULT_LEASE_MINUTES: u64 = 30;
/// The longest lease a claim may take.
pub const MAX_LEASE_MINUTES: u64 = 24 * 60;

/// One value of a claim register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimValue {
    pub holder: String,
    /// The lease's end, in milliseconds since the epoch (a release sets it
    /// to the release's time).
    pub expires_at: u64,
    /// The change that started this holder's turn (`replica:counter`);
    /// absent: this value's own change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure: Option<String>,
    /// The first tenure of the chain of turns this one continues; absent:
    /// the tenure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Turns between the origin and this one.
    #[serde(default)]
    pub generation: u64,
    /// Set by a release (or by completing the item).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl ClaimValue {
    pub fn parse(value: &Value) -> Option<ClaimValue> {
        serde_json::from_value(value.clone())
            .ok()
            .filter(|c: &ClaimValue| !c.holder.is_empty())
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A dot as a claim value names it.
pub fn dot_text(dot: &Dot) -> String {
    dot.to_string()
}

/// The dot a claim value names.
pub fn parse_dot(text: &str) -> Option<Dot> {
    text.parse().ok()
}

/// One value of the register, as the derivation sees it.
#[derive(Clone, Debug)]
pub struct Sibling {
    pub dot: Dot,
    pub hlc: Hlc,
    pub value: ClaimValue,
}

/// Where a claim stands for its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// First in the hub's order: the holder's.
    Confirmed,
    /// Not on the hub yet (or not pulled back): decided at the next sync.
    Tentative,
    /// Another claim came first in the hub's order.
    Lost,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Confirmed => "confirmed",
            ClaimState::Tentative => "tentative",
            ClaimState::Lost => "lost",
        }
    }
}

/// What a claim register derives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived {
    /// The value holding the item (or that last held it: released or
    /// expired ones too; see [`Derived::holds`]).
    pub current: Option<ClaimValue>,
    /// Where `current` sits: its dot (the one of its latest renewal) and
    /// whether the hub's order of it is known.
    pub current_dot: Option<Dot>,
    pub tentative: bool,
    /// Values that lost: (holder, lease end), in order.
    pub lost: Vec<(String, u64)>,
    /// Values undecided behind a tentative current: (holder, lease end).
    pub pending: Vec<(String, u64)>,
}

impl Derived {
    /// The holder of a live lease at `now` (milliseconds), if any.
    pub fn holds(&self, now: u64) -> Option<&ClaimValue> {
        self.current.as_ref().filter(|c| !c.released && c.expires_at > now)
    }

    /// Where `agent`'s claim stands, if it has one that is not over.
    pub fn state_of(&self, agent: &str, now: u64) -> Option<ClaimState> {
        if let Some(c) = self.holds(now)
            && c.holder == agent
        {
            return Some(if self.tentative {
                ClaimState::Tentative
            } else {
                ClaimState::Confirmed
            });
        }
        if self.pending.iter().any(|(h, e)| h == agent && *e > now) {
            return Some(ClaimState::Tentative);
        }
        if self.lost.iter().any(|(h, e)| h == agent && *e > now) {
            return Some(ClaimState::Lost);
        }
        None
    }
}

/// The tenure and origin dots of a sibling, resolved.
fn place(s: &Sibling) -> (Dot, Dot) {
    let tenure = s.value.tenure.as_deref().and_then(parse_dot).unwrap_or(s.dot);
    let origin = s.value.origin.as_deref().and_then(parse_dot).unwrap_or(tenure);
    (origin, tenure)
}

/// Derive the holder of one claim register from its values and the hub
/// seqs this store knows (`seq_of`).
pub fn derive(siblings: &[Sibling], seq_of: impl Fn(&Dot) -> Option<u64>) -> Derived {
    // (origin seq, generation, tenure seq, tenure, clock, dot): the hub's
    // order of the values' places, unknown seqs last.
    type Place = (u64, u64, u64, Dot, u64, Dot);
    let mut ordered: Vec<(Place, bool, &Sibling)> = siblings
        .iter()
        .map(|s| {
            let (origin, tenure) = place(s);
            let (o, t) = (seq_of(&origin), seq_of(&tenure));
            let known = o.is_some() && t.is_some();
            (
                (
                    o.unwrap_or(u64::MAX),
                    s.value.generation,
                    t.unwrap_or(u64::MAX),
                    tenure,
                    s.hlc.0,
                    s.dot,
                ),
                known,
                s,
            )
        })
        .collect();
    ordered.sort_by_key(|a| a.0);
    let mut out = Derived::default();
    let mut current: Option<(&Sibling, bool)> = None;
    for (_, known, s) in ordered {
        match current {
            None => current = Some((s, known)),
            Some((c, c_known)) => {
                if c.value.holder == s.value.holder && !c.value.released && !s.value.released {
                    // The same holder's turn: the later lease counts.
                    if s.value.expires_at > c.value.expires_at {
                        current = Some((s, c_known));
                    }
                } else if c.value.holder == s.value.holder && s.value.released {
                    // Its own release ends the turn.
                    current = Some((s, c_known));
                } else if s.hlc.millis() >= c.value.expires_at {
                    // Written after the lease before it ended: a new turn.
                    current = Some((s, known));
                } else if !c_known && !known {
                    out.pending.push((s.value.holder.clone(), s.value.expires_at));
                } else if !s.value.released {
                    out.lost.push((s.value.holder.clone(), s.value.expires_at));
                }
            }
        }
    }
    if let Some((c, known)) = current {
        out.current = Some(c.value.clone());
        out.current_dot = Some(c.dot);
        out.tentative = !known;
    }
    out
}

/// The value a claim by `agent` writes over the register as derived: a
/// renewal of its own live turn, or a new turn after the one it saw.
pub fn next_value(derived: &Derived, agent: &str, now: u64, expires_at: u64) -> ClaimValue {
    match (&derived.current, derived.current_dot) {
        (Some(c), Some(dot)) => {
            let tenure = c.tenure.clone().unwrap_or_else(|| dot_text(&dot));
            let origin = c.origin.clone().unwrap_or_else(|| tenure.clone());
            if c.holder == agent && !c.released && c.expires_at > now {
                ClaimValue {
                    holder: agent.to_owned(),
                    expires_at: expires_at.max(c.expires_at),
                    tenure: Some(tenure),
                    origin: Some(origin),
                    generation: c.generation,
                    released: false,
                }
            } else {
                ClaimValue {
                    holder: agent.to_owned(),
                    expires_at,
                    tenure: None,
                    origin: Some(origin),
                    generation: c.generation + 1,
                    released: false,
                }
            }
        }
        _ => ClaimValue {
            holder: agent.to_owned(),
            expires_at,
            tenure: None,
            origin: None,
            generation: 0,
            released: false,
        },
    }
}

/// The value a release of the current turn writes (at `now`).
pub fn release_value(derived: &Derived, now: u64) -> Option<ClaimValue> {
    let c = derived.current.as_ref()?;
    let dot = derived.current_dot?;
    let tenure = c.tenure.clone().unwrap_or_else(|| dot_text(&dot));
    let origin = c.origin.clone().unwrap_or_else(|| tenure.clone());
    Some(ClaimValue {
        holder: c.holder.clone(),
        expires_at: now.min(c.expires_at),
        tenure: Some(tenure),
        origin: Some(origin),
        generation: c.generation,
        released: true,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use waymark_sync::ReplicaId;

    use super::*;

    fn sib(r: ReplicaId, n: u64, at: u64, v: ClaimValue) -> Sibling {
        Sibling {
            dot: Dot { replica: r, counter: n },
            hlc: Hlc::from_parts(at, 0),
            value: v,
        }
    }

    fn fresh(holder: &str, exp: u64) -> ClaimValue {
        ClaimValue {
            holder: holder.into(),
            expires_at: exp,
            tenure: None,
            origin: None,
            generation: 0,
            released: false,
        }
    }

    #[test]
    fn the_first_in_the_hubs_order_holds_and_a_renewal_or_release_keeps_its_place() {
        let (ra, rb) = (ReplicaId::mint(), ReplicaId::mint());
        let a = sib(ra, 1, 100, fresh("a", 1000));
        let b = sib(rb, 1, 100, fresh("b", 1000));
        let mut seqs = HashMap::new();
        // Neither on the hub: both undecided.
        let d = derive(&[a.clone(), b.clone()], |d| seqs.get(d).copied());
        assert!(d.tentative);
        seqs.insert(b.dot, 10);
        seqs.insert(a.dot, 11);
        let d = derive(&[a.clone(), b.clone()], |d| seqs.get(d).copied());
        assert_eq!(d.holds(500).unwrap().holder, "b");
        assert_eq!(d.state_of("b", 500), Some(ClaimState::Confirmed));
        assert_eq!(d.state_of("a", 500), Some(ClaimState::Lost));
        // b renews without having seen a: b still holds.
        let renewed = sib(
            rb,
            2,
            200,
            next_value(
                &derive(std::slice::from_ref(&b), |d| seqs.get(d).copied()),
                "b",
                200,
                2000,
            ),
        );
        seqs.insert(renewed.dot, 12);
        let d = derive(&[a.clone(), renewed.clone()], |d| seqs.get(d).copied());
        assert_eq!(d.holds(500).unwrap().holder, "b");
        assert_eq!(d.state_of("a", 500), Some(ClaimState::Lost));
        // b releases without having seen a: the item is free, a still lost.
        let released = sib(
            rb,
            3,
            300,
            release_value(&derive(&[renewed], |d| seqs.get(d).copied()), 300).unwrap(),
        );
        let d = derive(&[a.clone(), released], |d| seqs.get(d).copied());
        assert!(d.holds(500).is_none());
        assert_eq!(d.state_of("a", 500), Some(ClaimState::Lost));
        // A claim after the lease ended takes the item.
        let late = sib(ra, 2, 1500, fresh("a", 3000));
        let d = derive(&[b, late], |d| seqs.get(d).copied());
        assert_eq!(d.holds(1600).unwrap().holder, "a");
    }
}

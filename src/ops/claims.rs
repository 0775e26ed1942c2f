//! Claims with leases (issue 14): an agent claims a work item for a lease,
//! renews it by writing the item (or claiming again), releases it or
//! completes the item. Ready work leaves out what others hold; a write by
//! another agent to a held item is refused. Who holds an item across
//! machines is decided by the hub's order (`crate::domain::claim`); this
//! module is the local half, `crate::sync::claim` confirms online.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::work_items::{WorkItem, require};
use crate::domain::claim::{self, ClaimState, DEFAULT_LEASE_MINUTES, Derived, MAX_LEASE_MINUTES};
use crate::domain::{ItemType, ids};
use crate::error::{Error, Result};
use crate::store::write::Fields;
use crate::store::{CLAIMS, Connection, WriteTx, query};
use crate::time::Timestamp;

/// What `claim_work_item` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    // The field notes are the tool's description (tools/list is budgeted).
    pub id: Option<String>,
    // Claim the first ready item instead of id.
    #[serde(default)]
    pub next: bool,
    // With next: only ready items of this type.
    pub item_type: Option<String>,
    // The lease, default 30, at most 1440 (checked by the operation).
    pub minutes: Option<u64>,
    // Take it from another agent's live claim.
    #[serde(default)]
    pub force: bool,
    // Release the claim instead.
    #[serde(default)]
    pub release: bool,
}

/// A claim as its asker sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClaimView {
    /// Who holds the item: the asker, or (when the asker lost) the winner.
    pub holder: String,
    /// Where the asker's claim stands.
    pub state: ClaimState,
    /// The holder's lease end.
    pub expires_at: String,
}

/// `claim_work_item`'s answer: the item and the claim (none once released).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClaimAnswer {
    pub item: WorkItem,
    pub claim: Option<ClaimView>,
}

fn time(ms: u64) -> String {
    Timestamp::from_millis(ms).to_string()
}

/// The claim `agent` sees on an item, as derived.
pub(crate) fn view(d: &Derived, agent: &str, now: u64) -> Option<ClaimView> {
    let state = d.state_of(agent, now)?;
    let live = d.holds(now);
    let (holder, expires_at) = match (state, live) {
        (ClaimState::Lost, Some(c)) => (c.holder.clone(), c.expires_at),
        (_, Some(c)) if c.holder == agent => (c.holder.clone(), c.expires_at),
        _ => {
            let own = d.pending.iter().chain(&d.lost).find(|(h, _)| h == agent);
            (agent.to_owned(), own.map_or(now, |(_, e)| *e))
        }
    };
    Some(ClaimView {
        holder,
        state,
        expires_at: time(expires_at),
    })
}

/// The refusal of a write to an item `holder` holds.
fn held(id: &str, c: &claim::ClaimValue) -> Error {
    Error::Conflict(format!(
        "work item {id} is claimed by {} until {}; wait for its release, or claim_work_item with force to take it over",
        crate::error::quote(&c.holder),
        time(c.expires_at)
    ))
}

/// Refuse a write of the transaction's author to item `id` while another
/// agent holds it; after the write, [`after_item_write`].
pub(crate) fn check_write(tx: &WriteTx<'_>, id: &str) -> Result<Option<Derived>> {
    if !query::claims::exists(tx.conn(), id)? {
        return Ok(None);
    }
    let d = query::claims::of(tx.conn(), id)?;
    if let Some(c) = d.holds(tx.now().millis())
        && c.holder != tx.author()
    {
        return Err(held(id, c));
    }
    Ok(Some(d))
}

/// A write of the holder to its item renews the lease; one that completes
/// or deletes the item releases it.
pub(crate) fn after_item_write(tx: &mut WriteTx<'_>, id: &str, d: Option<Derived>, closed: bool) -> Result<()> {
    let Some(d) = d else { return Ok(()) };
    let now = tx.now().millis();
    let Some(c) = d.holds(now) else { return Ok(()) };
    if c.holder != tx.author() {
        return Ok(());
    }
    let value = if closed {
        claim::release_value(&d, now)
    } else {
        Some(claim::next_value(
            &d,
            tx.author(),
            now,
            now + DEFAULT_LEASE_MINUTES * 60_000,
        ))
    };
    if let Some(value) = value
        && Some(&value) != d.current.as_ref()
    {
        write_claim(tx, id, value)?;
    }
    Ok(())
}

fn write_claim(tx: &mut WriteTx<'_>, id: &str, value: claim::ClaimValue) -> Result<()> {
    tx.write(&CLAIMS, id, Fields::from([("claim".to_owned(), value.to_value())]))?;
    Ok(())
}

/// Whether an item can be worked on at all.
fn open(item: &WorkItem) -> Result<()> {
    if item.status == "completed" || item.deleted_at.is_some() || item.archived_at.is_some() {
        let what = if item.deleted_at.is_some() {
            "deleted"
        } else if item.archived_at.is_some() {
            "archived"
        } else {
            "completed"
        };
        return Err(Error::Conflict(format!(
            "work item {} is {what}; there is nothing to claim",
            item.id
        )));
    }
    Ok(())
}

/// The item a request names, or the first ready one for `agent`.
fn target(tx: &WriteTx<'_>, request: &ClaimRequest) -> Result<String> {
    match (&request.id, request.next) {
        (Some(_), true) => Err(Error::invalid("next", "give either id or next, not both")),
        (None, false) => Err(Error::invalid("id", "give the id of the item to claim, or next: true")),
        (Some(id), false) => {
            if request.item_type.is_some() {
                return Err(Error::invalid("item_type", "filters the ready work of next only"));
            }
            ids::parse("id", id)
        }
        (None, true) => {
            if request.release {
                return Err(Error::invalid("next", "a release names its item by id"));
            }
            let item_type = request.item_type.as_deref().map(ItemType::parse).transpose()?;
            let (rows, _) =
                query::work_items::ready(tx.conn(), item_type, None, 1, tx.author(), tx.now().millis() as i64)?;
            // Its own claims come first: claiming next again renews.
            rows.into_iter()
                .next()
                .map(|(row, _)| row.id)
                .ok_or_else(|| Error::Conflict("nothing is ready to claim".into()))
        }
    }
}

fn lease_ms(minutes: Option<u64>) -> Result<u64> {
    let m = minutes.unwrap_or(DEFAULT_LEASE_MINUTES);
    if !(1..=MAX_LEASE_MINUTES).contains(&m) {
        return Err(Error::invalid(
            "minutes",
            format!("must be 1 to {MAX_LEASE_MINUTES} (got {m})"),
        ));
    }
    Ok(m * 60_000)
}

/// Claim (or release) in one write transaction; returns the item's id.
pub(crate) fn claim_in(tx: &mut WriteTx<'_>, request: &ClaimRequest) -> Result<String> {
    let lease = lease_ms(request.minutes)?;
    let id = target(tx, request)?;
    let item = require(tx.conn(), &id)?;
    let now = tx.now().millis();
    let d = query::claims::of(tx.conn(), &id)?;
    let agent = tx.author().to_owned();
    let live = d.holds(now);
    if request.release {
        match live {
            Some(c) if c.holder == agent || request.force => {
                if let Some(v) = claim::release_value(&d, now) {
                    write_claim(tx, &id, v)?;
                }
            }
            Some(c) => return Err(held(&id, c)),
            None => {}
        }
        return Ok(id);
    }
    open(&item)?;
    if let Some(c) = live
        && c.holder != agent
        && !request.force
    {
        return Err(held(&id, c));
    }
    write_claim(tx, &id, claim::next_value(&d, &agent, now, now + lease))?;
    Ok(id)
}

/// A claim that lost to one that came first in the hub's order: the item,
/// who lost it, and who holds the item now.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LostClaim {
    pub id: String,
    pub title: String,
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// The most lost claims an answer lists.
pub(crate) const MAX_LOST: usize = 10;

/// The claims that lost and whose lease is not over (`agent`'s only, when given).
pub(crate) fn lost_claims(conn: &Connection, agent: Option<&str>, now: u64) -> Result<Vec<LostClaim>> {
    Ok(query::claims::lost(conn, agent, now as i64, MAX_LOST)?
        .into_iter()
        .map(|l| LostClaim {
            id: l.item_id,
            title: l.title,
            agent: l.loser,
            held_by: l.held_by.map(|(h, _)| h),
        })
        .collect())
}

/// A live claim, as the status report shows it ("in progress, by agent").
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReportClaim {
    pub agent: String,
    pub id: String,
    pub title: String,
    pub expires_at: String,
    pub state: ClaimState,
}

/// The live claims of open items, by agent, at most `limit`, and how many.
pub(crate) fn live_claims(conn: &Connection, now: u64, limit: i64) -> Result<(Vec<ReportClaim>, i64)> {
    let (rows, count) = query::claims::live(conn, now as i64, limit)?;
    Ok((
        rows.into_iter()
            .map(|c| ReportClaim {
                agent: c.holder,
                id: c.item_id,
                title: c.title,
                expires_at: time(c.expires_at.max(0) as u64),
                state: if c.tentative {
                    ClaimState::Tentative
                } else {
                    ClaimState::Confirmed
                },
            })
            .collect(),
        count,
    ))
}

impl Tracker {
    /// Claim a work item (or the first ready one) for `agent`, renew its
    /// claim, or release it. Offline the claim is `tentative`; see
    /// `crate::sync::claim` for the online call that confirms it.
    pub fn claim_work_item(&self, agent: &str, request: ClaimRequest) -> Result<ClaimAnswer> {
        let agent_name = agent.to_owned();
        self.store.write(agent, move |tx| {
            let id = claim_in(tx, &request)?;
            // The answer, read in the claim's own transaction.
            let now = tx.now().millis();
            Ok(ClaimAnswer {
                item: require(tx.conn(), &id)?,
                claim: view(&query::claims::of(tx.conn(), &id)?, &agent_name, now),
            })
        })
    }

    /// Item `id` and the claim `agent` sees on it.
    pub fn claim_of(&self, agent: &str, id: &str) -> Result<ClaimAnswer> {
        let id = ids::parse("id", id)?;
        let now = self.store.now_ms();
        self.store.read(|tx| {
            let item = require(tx, &id)?;
            let d = query::claims::of(tx, &id)?;
            Ok(ClaimAnswer {
                item,
                claim: view(&d, agent, now),
            })
        })
    }
}

/// The live claim on an item, shown with it (`query_work_item`): its
/// holder, whether the hub's order of it is known yet, and the lease's end.
pub(crate) fn shown(d: &Derived, now: u64) -> Option<ClaimView> {
    let c = d.holds(now)?;
    Some(ClaimView {
        holder: c.holder.clone(),
        state: if d.tentative {
            ClaimState::Tentative
        } else {
            ClaimState::Confirmed
        },
        expires_at: time(c.expires_at),
    })
}

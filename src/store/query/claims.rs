//! Claims as the operations read them: who holds an item, the live claims,
//! and the claims an agent lost (see `store::claims` for how they are derived).

use rusqlite::{Connection, OptionalExtension};

use crate::domain::claim::Derived;
use crate::error::Result;
use crate::store::id::{self, get_id};

/// The claim of item `id` as derived here.
pub(crate) fn of(conn: &Connection, id: &str) -> Result<Derived> {
    crate::store::claims::load(conn, id)
}

/// Whether item `id` has a claim record at all (cheap: no derivation).
pub(crate) fn exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM claims WHERE id = ?1")?
        .query_row([id::sql(id)], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A live claim: the item, its title and status, the holder, the lease's
/// end (ms) and whether the hub's order of it is still unknown here.
#[derive(Clone, Debug)]
pub(crate) struct LiveClaim {
    pub item_id: String,
    pub title: String,
    pub holder: String,
    pub expires_at: i64,
    pub tentative: bool,
}

/// Live claims of open items (lease not over at `now`), soonest lease end
/// first, at most `limit`, and how many there are.
pub(crate) fn live(conn: &Connection, now: i64, limit: i64) -> Result<(Vec<LiveClaim>, i64)> {
    const FROM: &str = "FROM claims c JOIN work_items w ON w.id = c.id
         WHERE c.holder IS NOT NULL AND c.expires_at > ?1
           AND w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL";
    let rows = conn
        .prepare_cached(&format!(
            "SELECT c.id, w.title, c.holder, c.expires_at, c.tentative {FROM} ORDER BY c.holder, c.expires_at LIMIT ?2"
        ))?
        .query_map(rusqlite::params![now, limit], |r| {
            Ok(LiveClaim {
                item_id: get_id(r, 0)?,
                title: r.get(1)?,
                holder: r.get(2)?,
                expires_at: r.get(3)?,
                tentative: r.get::<_, i64>(4)? != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let count = if (rows.len() as i64) < limit {
        rows.len() as i64
    } else {
        conn.prepare_cached(&format!("SELECT count(*) {FROM}"))?
            .query_row([now], |r| r.get(0))?
    };
    Ok((rows, count))
}

/// A claim that lost: the item, its title, who lost it, and who holds
/// the item now (with the lease's end, ms), if anyone.
#[derive(Clone, Debug)]
pub(crate) struct LostClaim {
    pub item_id: String,
    pub title: String,
    pub loser: String,
    pub held_by: Option<(String, i64)>,
}

/// The claims that lost (those of `agent` only, when given) whose own lease
/// is not over at `now`, on live items, at most `limit` (a claim that lost
/// stays in its register until a write that saw it; `lost` is the derived
/// list of them, rarely set).
pub(crate) fn lost(conn: &Connection, agent: Option<&str>, now: i64, limit: usize) -> Result<Vec<LostClaim>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, w.title, c.holder, c.expires_at, c.lost FROM claims c INDEXED BY claims_lost
           JOIN work_items w ON w.id = c.id
         WHERE c.lost IS NOT NULL AND w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL
         ORDER BY c.key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            get_id(r, 0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (item_id, title, holder, expires_at, lost) = row?;
        let lost: Vec<(String, i64)> = serde_json::from_str(&lost).unwrap_or_default();
        let live_holder = match (holder, expires_at) {
            (Some(h), Some(e)) if e > now => Some((h, e)),
            _ => None,
        };
        for (loser, until) in lost {
            if until <= now
                || agent.is_some_and(|a| a != loser)
                || live_holder.as_ref().is_some_and(|(h, _)| *h == loser)
                || out.iter().any(|l: &LostClaim| l.item_id == item_id && l.loser == loser)
            {
                continue;
            }
            out.push(LostClaim {
                item_id: item_id.clone(),
                title: title.clone(),
                loser,
                held_by: live_holder.clone(),
            });
            if out.len() == limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

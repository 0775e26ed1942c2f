//! The derived side of claims (see `crate::domain::claim` and
//! `0007_claims.sql`): a claim record's holder from its registers and the
//! hub seqs of its changes, which this store learns as it pulls pages.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension};
use waymark_sync::{Change, Dot, RecordState};

use super::collections::CLAIMS;
use crate::domain::claim::{self, ClaimValue, Derived};
use crate::error::Result;

/// The register a claim record keeps its values in.
pub(crate) const FIELD: &str = "claim";

/// The hub seq of change `dot`, if this store has pulled it.
fn seq_of(conn: &Connection, dot: &Dot) -> Option<u64> {
    conn.prepare_cached("SELECT seq FROM claim_seqs WHERE replica = ?1 AND counter = ?2")
        .and_then(|mut s| {
            s.query_row(rusqlite::params![dot.replica.to_string(), dot.counter as i64], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
        })
        .ok()
        .flatten()
        .map(|s| s as u64)
}

/// What a claim record's registers derive, with the seqs this store knows.
pub(crate) fn derive(conn: &Connection, state: &RecordState) -> Derived {
    let siblings: Vec<claim::Sibling> = state
        .fields
        .get(FIELD)
        .map(|r| {
            r.siblings()
                .iter()
                .filter_map(|s| {
                    Some(claim::Sibling {
                        dot: s.dot,
                        hlc: s.hlc,
                        value: ClaimValue::parse(&s.value)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    claim::derive(&siblings, |d| seq_of(conn, d))
}

/// The claim of work item `id` as derived here (nothing for an item never claimed).
pub(crate) fn load(conn: &Connection, id: &str) -> Result<Derived> {
    let state = super::write::load_state(conn, &CLAIMS, id)?;
    Ok(derive(conn, &state))
}

/// The derived columns of a claim row: holder, expires_at, tentative, lost.
pub(super) fn derived_columns(conn: &Connection, state: &RecordState) -> [Sql; 4] {
    columns_of(&derive(conn, state))
}

fn columns_of(d: &Derived) -> [Sql; 4] {
    let holder = d.current.as_ref().filter(|c| !c.released);
    let lost = (!d.lost.is_empty()).then(|| serde_json::to_string(&d.lost).unwrap_or_default());
    [
        holder.map_or(Sql::Null, |c| Sql::Text(c.holder.clone())),
        d.current
            .as_ref()
            .map_or(Sql::Null, |c| Sql::Integer(c.expires_at as i64)),
        Sql::Integer(i64::from(d.tentative && holder.is_some())),
        lost.map_or(Sql::Null, Sql::Text),
    ]
}

/// Note the hub seq of a pulled change; for a claim's change, derive its
/// record's holder again. Returns the claim row's key when that changed.
pub(super) fn note_seq(conn: &Connection, seq: u64, change: &Change) -> Result<Option<i64>> {
    if change.collection != CLAIMS.name {
        return Ok(None);
    }
    let added = conn
        .prepare_cached("INSERT OR IGNORE INTO claim_seqs (replica, counter, seq) VALUES (?1, ?2, ?3)")?
        .execute(rusqlite::params![
            change.dot.replica.to_string(),
            change.dot.counter as i64,
            seq as i64
        ])?;
    if added == 0 {
        return Ok(None);
    }
    let Some(key) = conn
        .prepare_cached("SELECT key FROM claims WHERE id = ?1")?
        .query_row([super::id::sql(&change.record_id)], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let state = super::write::load_state(conn, &CLAIMS, &change.record_id)?;
    let [holder, expires_at, tentative, lost] = derived_columns(conn, &state);
    let changed = conn
        .prepare_cached(
            "UPDATE claims SET holder = ?2, expires_at = ?3, tentative = ?4, lost = ?5
             WHERE key = ?1 AND (holder IS NOT ?2 OR expires_at IS NOT ?3 OR tentative IS NOT ?4 OR lost IS NOT ?5)",
        )?
        .execute(rusqlite::params![key, holder, expires_at, tentative, lost])?;
    Ok((changed > 0).then_some(key))
}

/// Forget the hub seqs learnt (the store pulls a log again from 0), and
/// derive every claim again.
pub(super) fn forget_seqs(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM claim_seqs", [])?;
    for (id, state) in CLAIMS.all_states(conn)? {
        let [holder, expires_at, tentative, lost] = derived_columns(conn, &state);
        conn.execute(
            "UPDATE claims SET holder = ?2, expires_at = ?3, tentative = ?4, lost = ?5 WHERE id = ?1",
            rusqlite::params![super::id::sql(&id), holder, expires_at, tentative, lost],
        )?;
    }
    Ok(())
}

/// Copy the hub seqs learnt into another store (`verify`'s scratch one).
pub(super) fn copy_seqs(from: &Connection, to: &Connection) -> Result<()> {
    let mut stmt = from.prepare("SELECT replica, counter, seq FROM claim_seqs")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    let mut insert = to.prepare("INSERT INTO claim_seqs (replica, counter, seq) VALUES (?1, ?2, ?3)")?;
    for row in rows {
        let (replica, counter, seq) = row?;
        insert.execute(rusqlite::params![replica, counter, seq])?;
    }
    Ok(())
}

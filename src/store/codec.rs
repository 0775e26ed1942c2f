//! The compact on-disk form of a record's replication state.
//!
//! `waymark_sync::RecordState` serialized as is repeats, for every value of
//! every field, the writer's 36-character replica id, its clock reading and
//! its author: about a kilobyte per record. Stored here instead as
//! `{"v":[[r,c],..],"c":[[r,c,h,a],..],"f":{"name":[[k,value],..],..}}`: the
//! version vector, the writes still visible (replica and author as small
//! integers interned per store in `replicas` and `authors`), and per field the
//! index of the write and its value. Interned numbers are local to one store
//! and never leave it: changes on the wire carry the full ids.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value, json};
use waymark_sync::{Dot, Hlc, RecordState, Register, ReplicaId, Sibling, VersionVector};

use crate::error::{Error, Result};

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("a stored record state is malformed ({what})"))
}

/// Interned numbers already looked up in one write transaction. It lives
/// and dies with the transaction, so a number whose insert was rolled back
/// is never remembered.
#[derive(Default)]
pub struct Interned(std::collections::HashMap<(&'static str, String), i64>);

/// The small number of `value` in `table` (`replicas` or `authors`),
/// assigned on first use.
fn intern(conn: &Connection, cache: &mut Interned, table: &'static str, value: &str) -> Result<i64> {
    if let Some(idx) = cache.0.get(&(table, value.to_owned())) {
        return Ok(*idx);
    }
    let idx = intern_uncached(conn, table, value)?;
    cache.0.insert((table, value.to_owned()), idx);
    Ok(idx)
}

fn intern_uncached(conn: &Connection, table: &str, value: &str) -> Result<i64> {
    let select = format!("SELECT idx FROM {table} WHERE name = ?1");
    if let Some(idx) = conn
        .prepare_cached(&select)?
        .query_row([value], |r| r.get(0))
        .optional()?
    {
        return Ok(idx);
    }
    conn.prepare_cached(&format!("INSERT INTO {table} (name) VALUES (?1)"))?
        .execute([value])?;
    Ok(conn.last_insert_rowid())
}

fn lookup(conn: &Connection, table: &str, idx: i64) -> Result<String> {
    conn.prepare_cached(&format!("SELECT name FROM {table} WHERE idx = ?1"))?
        .query_row([idx], |r| r.get(0))
        .optional()?
        .ok_or_else(|| corrupt(&format!("{table} #{idx} is unknown")))
}

/// Memoize lookups within one encode or decode.
struct Names<'c> {
    conn: &'c Connection,
    replicas: BTreeMap<i64, ReplicaId>,
    authors: BTreeMap<i64, String>,
}

impl Names<'_> {
    fn replica(&mut self, idx: i64) -> Result<ReplicaId> {
        if let Some(r) = self.replicas.get(&idx) {
            return Ok(*r);
        }
        let text = lookup(self.conn, "replicas", idx)?;
        let r: ReplicaId = text.parse().map_err(|_| corrupt("a replica id is not a UUID"))?;
        self.replicas.insert(idx, r);
        Ok(r)
    }

    fn author(&mut self, idx: i64) -> Result<String> {
        if let Some(a) = self.authors.get(&idx) {
            return Ok(a.clone());
        }
        let a = lookup(self.conn, "authors", idx)?;
        self.authors.insert(idx, a.clone());
        Ok(a)
    }
}

/// Encode a state for the `records` table (inside a write transaction:
/// new replica ids and authors are interned).
pub fn encode(conn: &Connection, cache: &mut Interned, state: &RecordState) -> Result<String> {
    let vv: Vec<Value> = state
        .vv
        .iter()
        .map(|(r, c)| Ok(json!([intern(conn, cache, "replicas", &r.to_string())?, c])))
        .collect::<Result<_>>()?;
    let mut writes: Vec<Value> = Vec::new();
    let mut write_idx: BTreeMap<Dot, usize> = BTreeMap::new();
    let mut fields = Map::new();
    for (name, register) in &state.fields {
        let mut siblings = Vec::with_capacity(register.siblings().len());
        for s in register.siblings() {
            let k = match write_idx.get(&s.dot) {
                Some(k) => *k,
                None => {
                    let r = intern(conn, cache, "replicas", &s.dot.replica.to_string())?;
                    let a = intern(conn, cache, "authors", &s.author)?;
                    writes.push(json!([r, s.dot.counter, s.hlc.0, a]));
                    write_idx.insert(s.dot, writes.len() - 1);
                    writes.len() - 1
                }
            };
            siblings.push(json!([k, s.value]));
        }
        fields.insert(name.clone(), Value::Array(siblings));
    }
    let mut doc = json!({ "v": vv, "c": writes, "f": fields });
    if !state.delete_races.is_empty() {
        let races: Vec<Value> = state
            .delete_races
            .iter()
            .filter_map(|(e, d)| Some(json!([write_idx.get(e)?, write_idx.get(d)?])))
            .collect();
        doc["d"] = Value::Array(races);
    }
    Ok(doc.to_string())
}

/// Decode a state read from the `records` table.
pub fn decode(conn: &Connection, text: &str) -> Result<RecordState> {
    let doc: Value = serde_json::from_str(text).map_err(|_| corrupt("not JSON"))?;
    let mut names = Names {
        conn,
        replicas: BTreeMap::new(),
        authors: BTreeMap::new(),
    };
    let int = |v: &Value, what: &str| v.as_i64().ok_or_else(|| corrupt(what));
    let mut vv = VersionVector::new();
    for pair in doc["v"].as_array().ok_or_else(|| corrupt("no version vector"))? {
        let replica = names.replica(int(&pair[0], "vv replica")?)?;
        vv.insert(Dot {
            replica,
            counter: int(&pair[1], "vv counter")? as u64,
        });
    }
    let mut writes = Vec::new();
    for w in doc["c"].as_array().ok_or_else(|| corrupt("no writes"))? {
        let replica = names.replica(int(&w[0], "write replica")?)?;
        let dot = Dot {
            replica,
            counter: int(&w[1], "write counter")? as u64,
        };
        let hlc = Hlc(w[2].as_u64().ok_or_else(|| corrupt("write clock"))?);
        let author = names.author(int(&w[3], "write author")?)?;
        writes.push((dot, hlc, author));
    }
    let mut fields = BTreeMap::new();
    for (name, siblings) in doc["f"].as_object().ok_or_else(|| corrupt("no fields"))? {
        let mut out = Vec::new();
        for s in siblings.as_array().ok_or_else(|| corrupt("a field is not a list"))? {
            let k = int(&s[0], "sibling write")? as usize;
            let (dot, hlc, author) = writes.get(k).ok_or_else(|| corrupt("a sibling names no write"))?;
            out.push(Sibling {
                dot: *dot,
                hlc: *hlc,
                author: author.clone(),
                value: s[1].clone(),
            });
        }
        fields.insert(name.clone(), Register::from_siblings(out));
    }
    let mut delete_races = std::collections::BTreeSet::new();
    for pair in doc["d"].as_array().into_iter().flatten() {
        let at = |v: &Value| -> Result<Dot> {
            let k = v.as_u64().ok_or_else(|| corrupt("a delete race"))? as usize;
            writes
                .get(k)
                .map(|w| w.0)
                .ok_or_else(|| corrupt("a delete race names no write"))
        };
        delete_races.insert((at(&pair[0])?, at(&pair[1])?));
    }
    Ok(RecordState {
        vv,
        fields,
        delete_races,
    })
}

/// Encode a local change for the outbox, whose row already holds its
/// replica id and counter: `[collection, record, [[r,c],..] (context),
/// fields, hlc, author, schema_version]`.
pub fn encode_change(conn: &Connection, cache: &mut Interned, change: &waymark_sync::Change) -> Result<String> {
    let context: Vec<Value> = change
        .context
        .iter()
        .map(|(r, c)| Ok(json!([intern(conn, cache, "replicas", &r.to_string())?, c])))
        .collect::<Result<_>>()?;
    let author = intern(conn, cache, "authors", &change.author)?;
    Ok(json!([
        change.collection,
        change.record_id,
        context,
        change.fields,
        change.hlc.0,
        author,
        change.schema_version
    ])
    .to_string())
}

/// Decode an outbox entry written by [`encode_change`].
pub fn decode_change(conn: &Connection, replica: &str, counter: i64, text: &str) -> Result<waymark_sync::Change> {
    let doc: Value = serde_json::from_str(text).map_err(|_| corrupt("an outbox entry is not JSON"))?;
    let mut names = Names {
        conn,
        replicas: BTreeMap::new(),
        authors: BTreeMap::new(),
    };
    let replica: ReplicaId = replica
        .parse()
        .map_err(|_| corrupt("an outbox replica id is not a UUID"))?;
    let mut context = VersionVector::new();
    for pair in doc[2].as_array().ok_or_else(|| corrupt("an outbox context"))? {
        let r = names.replica(pair[0].as_i64().ok_or_else(|| corrupt("an outbox context replica"))?)?;
        context.insert(Dot {
            replica: r,
            counter: pair[1].as_u64().ok_or_else(|| corrupt("an outbox context counter"))?,
        });
    }
    let fields = serde_json::from_value(doc[3].clone()).map_err(|_| corrupt("outbox fields"))?;
    Ok(waymark_sync::Change {
        collection: doc[0].as_str().ok_or_else(|| corrupt("outbox collection"))?.to_owned(),
        record_id: doc[1].as_str().ok_or_else(|| corrupt("outbox record id"))?.to_owned(),
        dot: Dot {
            replica,
            counter: counter as u64,
        },
        context,
        fields,
        hlc: Hlc(doc[4].as_u64().ok_or_else(|| corrupt("outbox clock"))?),
        author: names.author(doc[5].as_i64().ok_or_else(|| corrupt("outbox author"))?)?,
        schema_version: doc[6].as_u64().ok_or_else(|| corrupt("outbox schema version"))? as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_sync::Change;

    #[test]
    fn a_state_survives_the_round_trip() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE replicas (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE authors (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
        )
        .unwrap();
        let (a, b) = (ReplicaId::mint(), ReplicaId::mint());
        let change = |r, counter, hlc, context: &VersionVector, fields: Value| Change {
            collection: "work_items".into(),
            record_id: "x".into(),
            dot: Dot { replica: r, counter },
            context: context.clone(),
            fields: serde_json::from_value(fields).unwrap(),
            hlc: Hlc(hlc),
            author: format!("author of {counter}"),
            schema_version: 1,
        };
        let mut state = RecordState::default();
        state.apply(&change(
            a,
            1,
            10,
            &VersionVector::new(),
            json!({"title": "t", "metadata.x": {"deep": [1, 2]}}),
        ));
        let seen = state.vv.clone();
        state.apply(&change(a, 2, 20, &seen, json!({"title": "left"})));
        state.apply(&change(b, 1, 15, &seen, json!({"title": "right", "status": null})));
        let text = encode(&conn, &mut Interned::default(), &state).unwrap();
        assert!(!text.contains(&a.to_string()), "replica ids are interned: {text}");
        assert_eq!(decode(&conn, &text).unwrap(), state);
        let c = change(b, 7, 99, &seen, json!({"title": "x", "metadata.k": [1]}));
        let text = encode_change(&conn, &mut Interned::default(), &c).unwrap();
        assert_eq!(decode_change(&conn, &b.to_string(), 7, &text).unwrap(), c);
        assert!(decode(&conn, "{}").is_err());
        assert!(decode(&conn, r#"{"v":[[99,1]],"c":[],"f":{}}"#).is_err());
    }
}

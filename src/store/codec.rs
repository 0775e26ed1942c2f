//! The compact on-disk form of a record's replication state.
//!
//! `waymark_sync::RecordState` serialized as is repeats, for every value of
//! every field, the writer's 36-character replica id, its clock reading and
//! its author, and then the value the typed row holds anyway. Stored here
//! instead, in the row's `state` column (see [`encode`]): the writes still
//! visible (replica and author as small integers interned per store in
//! `replicas` and `authors`), and per field the index of its write, with the
//! value only where the row does not show it exactly (a conflict, a null, a
//! field without a column). Interned numbers are local to one store and
//! never leave it: changes on the wire carry the full ids.

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value, json};
use waymark_sync::{Dot, Hlc, RecordState, Register, ReplicaId, Sibling, VersionVector};

use super::collections::Collection;
use crate::error::{Error, Result};

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("a stored record state is malformed ({what})"))
}

/// Interned numbers already looked up in one write transaction. It lives
/// and dies with the transaction, so a number whose insert was rolled back
/// is never remembered.
#[derive(Default)]
pub(crate) struct Interned(std::collections::HashMap<(&'static str, String), i64>);

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

/// The replica and author numbers of a write, interned.
pub(crate) fn intern_write(
    conn: &Connection,
    cache: &mut Interned,
    replica: &ReplicaId,
    author: &str,
) -> Result<(i64, i64)> {
    Ok((
        intern(conn, cache, "replicas", &replica.to_string())?,
        intern(conn, cache, "authors", author)?,
    ))
}

/// The number a replica id is interned under here (None: never seen).
pub(crate) fn interned_replica(conn: &Connection, replica: &ReplicaId) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT idx FROM replicas WHERE name = ?1")?
        .query_row([replica.to_string()], |r| r.get(0))
        .optional()?)
}

/// The replica and author behind interned numbers.
pub(crate) fn write_names(conn: &Connection, replica: i64, author: i64) -> Result<(ReplicaId, String)> {
    let mut names = Names {
        conn,
        replicas: BTreeMap::new(),
        authors: BTreeMap::new(),
    };
    Ok((names.replica(replica)?, names.author(author)?))
}

fn encode_vv(conn: &Connection, cache: &mut Interned, vv: &VersionVector) -> Result<Vec<Value>> {
    vv.iter()
        .map(|(r, c)| Ok(json!([intern(conn, cache, "replicas", &r.to_string())?, c])))
        .collect()
}

fn decode_vv(names: &mut Names<'_>, v: &Value) -> Result<VersionVector> {
    let mut vv = VersionVector::new();
    for pair in v.as_array().ok_or_else(|| corrupt("a version vector is not a list"))? {
        let replica = names.replica(pair[0].as_i64().ok_or_else(|| corrupt("a version vector's replica"))?)?;
        vv.insert(Dot {
            replica,
            counter: pair[1].as_u64().ok_or_else(|| corrupt("a version vector's counter"))?,
        });
    }
    Ok(vv)
}

/// A change's context for the outbox: `[[r,c],..]`, or None when empty.
pub(crate) fn encode_context(conn: &Connection, cache: &mut Interned, vv: &VersionVector) -> Result<Option<String>> {
    if vv.is_empty() {
        return Ok(None);
    }
    Ok(Some(Value::Array(encode_vv(conn, cache, vv)?).to_string()))
}

/// A context written by [`encode_context`].
pub(crate) fn decode_context(conn: &Connection, text: Option<&str>) -> Result<VersionVector> {
    let Some(text) = text else {
        return Ok(VersionVector::new());
    };
    let v: Value = serde_json::from_str(text).map_err(|_| corrupt("an outbox context is not JSON"))?;
    let mut names = Names {
        conn,
        replicas: BTreeMap::new(),
        authors: BTreeMap::new(),
    };
    decode_vv(&mut names, &v)
}

/// The version vector a state's visible writes imply: stored states omit
/// theirs when it is this one (the common case).
fn implied_vv(state: &RecordState) -> VersionVector {
    let mut vv = VersionVector::new();
    for register in state.fields.values() {
        for s in register.siblings() {
            vv.insert(s.dot);
        }
    }
    vv
}

/// Encode the state of a record of `collection` for its row's `state`
/// column (inside a write transaction: new replica ids and authors are
/// interned).
///
/// `{"v":[[r,c],..],"c":[[r,c,h,a],..],"f":{name:[[k,value],..]},"g":[[k,mask,[name,..]],..],"m":k}`:
/// - `v`: the version vector, absent when the writes in `c` imply it;
/// - `c`: the writes still visible, replica and author as interned numbers;
/// - `f`: the registers stored with their values, each value tagged with the
///   index of its write in `c`;
/// - `g`: per write, the fields whose register holds that write's value
///   alone, exactly as the row shows it, read back from the row: those with
///   a column as a bit mask of their codes, the `metadata.*` ones by name;
/// - `m`: the write that the row's remaining `metadata` keys (those neither
///   in `f` nor named in `g`) belong to;
/// - `d`: delete races, as pairs of indexes into `c`.
pub(crate) fn encode(
    conn: &Connection,
    cache: &mut Interned,
    collection: &Collection,
    state: &RecordState,
) -> Result<Vec<u8>> {
    let mut writes: Vec<Value> = Vec::new();
    let mut write_idx: BTreeMap<Dot, usize> = BTreeMap::new();
    let mut fields = Map::new();
    // Per write: the mask of coded fields and the metadata fields.
    let mut elided: BTreeMap<usize, (u64, Vec<&str>)> = BTreeMap::new();
    for (name, register) in &state.fields {
        let mut siblings = Vec::with_capacity(register.siblings().len());
        for s in register.siblings() {
            let k = match write_idx.get(&s.dot) {
                Some(k) => *k,
                None => {
                    let (r, a) = intern_write(conn, cache, &s.dot.replica, &s.author)?;
                    writes.push(json!([r, s.dot.counter, s.hlc.0, a]));
                    write_idx.insert(s.dot, writes.len() - 1);
                    writes.len() - 1
                }
            };
            siblings.push((k, &s.value));
        }
        if let [(k, value)] = siblings[..]
            && collection.row_shows(name, value)
        {
            let group = elided.entry(k).or_default();
            match collection.field_code(name) {
                Some(code) if code < 64 => group.0 |= 1 << code,
                _ => group.1.push(name),
            }
            continue;
        }
        let siblings = siblings.into_iter().map(|(k, v)| json!([k, v])).collect();
        fields.insert(name.clone(), Value::Array(siblings));
    }
    let mut doc = Map::new();
    if implied_vv(state) != state.vv {
        doc.insert("v".into(), Value::Array(encode_vv(conn, cache, &state.vv)?));
    }
    doc.insert("c".into(), Value::Array(writes));
    if !fields.is_empty() {
        doc.insert("f".into(), Value::Object(fields));
    }
    // The write with the most metadata fields claims the row's remaining
    // metadata keys instead of naming them.
    let claim = elided
        .iter()
        .filter(|(_, g)| !g.1.is_empty())
        .max_by_key(|(k, g)| (g.1.len(), std::cmp::Reverse(**k)))
        .map(|(k, _)| *k);
    if let Some(k) = claim {
        doc.insert("m".into(), json!(k));
    }
    if !elided.is_empty() {
        let groups = elided
            .into_iter()
            .map(|(k, (mask, names))| {
                if Some(k) == claim || names.is_empty() {
                    json!([k, mask])
                } else {
                    json!([k, mask, names])
                }
            })
            .collect();
        doc.insert("g".into(), Value::Array(groups));
    }
    if !state.delete_races.is_empty() {
        let races: Vec<Value> = state
            .delete_races
            .iter()
            .filter_map(|(e, d)| Some(json!([write_idx.get(e)?, write_idx.get(d)?])))
            .collect();
        doc.insert("d".into(), Value::Array(races));
    }
    let mut packed = Vec::with_capacity(64);
    pack(&Value::Object(doc), &mut packed);
    Ok(packed)
}

/// Decode a state stored by [`encode`] (packed; or, as schemas 1 and 2
/// stored it, as JSON text, schema 1's with every value and always `v`),
/// with the row it was stored in.
pub(crate) fn decode(conn: &Connection, collection: &Collection, stored: &Sql, row: &[Sql]) -> Result<RecordState> {
    let doc: Value = match stored {
        Sql::Blob(bytes) => unpack(bytes).ok_or_else(|| corrupt("not a packed state"))?,
        Sql::Text(text) => serde_json::from_str(text).map_err(|_| corrupt("not JSON"))?,
        _ => return Err(corrupt("neither packed nor JSON")),
    };
    let mut names = Names {
        conn,
        replicas: BTreeMap::new(),
        authors: BTreeMap::new(),
    };
    let int = |v: &Value, what: &str| v.as_i64().ok_or_else(|| corrupt(what));
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
    let sibling = |k: usize, value: Value| -> Result<Register> {
        let (dot, hlc, author) = writes.get(k).ok_or_else(|| corrupt("a value names no write"))?;
        Ok(Register::from_siblings(vec![Sibling {
            dot: *dot,
            hlc: *hlc,
            author: author.clone(),
            value,
        }]))
    };
    let mut fields = BTreeMap::new();
    if let Some(stored) = doc.get("f") {
        for (name, siblings) in stored.as_object().ok_or_else(|| corrupt("fields are not an object"))? {
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
    }
    let metadata = || {
        collection
            .metadata_in_row(row)
            .ok_or_else(|| corrupt("the row has no metadata"))
    };
    let mut row_metadata: Option<Map<String, Value>> = None;
    for group in doc.get("g").and_then(Value::as_array).into_iter().flatten() {
        let k = int(&group[0], "row fields' write")? as usize;
        let mask = group[1].as_u64().ok_or_else(|| corrupt("row fields' mask"))?;
        for code in (0..64).filter(|c| mask & (1 << c) != 0) {
            let (name, value) = collection
                .field_in_row(code, row)
                .ok_or_else(|| corrupt(&format!("field #{code} is not in its row")))?;
            fields.insert(name.to_owned(), sibling(k, value)?);
        }
        for name in group.get(2).and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().ok_or_else(|| corrupt("a row field's name"))?;
            let key = name
                .strip_prefix("metadata.")
                .ok_or_else(|| corrupt("a row field's name"))?;
            if row_metadata.is_none() {
                row_metadata = Some(metadata()?);
            }
            let value = row_metadata
                .as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .ok_or_else(|| corrupt(&format!("{name} is not in its row")))?;
            fields.insert(name.to_owned(), sibling(k, value)?);
        }
    }
    if let Some(k) = doc.get("m") {
        let k = int(k, "metadata's write")? as usize;
        for (key, value) in row_metadata.map_or_else(metadata, Ok)? {
            let name = format!("metadata.{key}");
            if let std::collections::btree_map::Entry::Vacant(slot) = fields.entry(name) {
                slot.insert(sibling(k, value)?);
            }
        }
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
    let mut state = RecordState {
        vv: VersionVector::new(),
        fields,
        delete_races,
    };
    state.vv = match doc.get("v") {
        Some(v) => decode_vv(&mut names, v)?,
        None => implied_vv(&state),
    };
    Ok(state)
}

// The packed form: the JSON document above, written the way a varint-based
// binary JSON writes it, about half its text's size. Each value is a tag
// byte, then what the tag says:
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
/// A varint: the number.
const UINT: u8 = 3;
/// A varint: -1 - the number.
const NEG: u8 = 4;
/// Eight bytes, little-endian.
const FLOAT: u8 = 5;
/// A varint length, then UTF-8.
const STRING: u8 = 6;
/// A varint count, then the values.
const ARRAY: u8 = 7;
/// A varint count, then (varint length, UTF-8 key, value) per entry.
const OBJECT: u8 = 8;
/// Tags from here up are the numbers 0.. themselves.
const SMALL: u8 = 16;

/// How deep a written value may nest: well past any document the domain
/// accepts, and within what [`unpack`] reads back.
const MAX_NESTING: usize = waymark_sync::change::MAX_NESTING;

fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// The fields of a change as its outbox entry keeps them: packed, floats to
/// the bit. A value nested deeper than any record needs is refused before it
/// is written, so an entry always reads back.
pub(crate) fn pack_fields(fields: &std::collections::BTreeMap<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 * fields.len());
    out.push(OBJECT);
    put_varint(fields.len() as u64, &mut out);
    for (name, value) in fields {
        if nesting(value) > MAX_NESTING {
            return Err(Error::Invalid {
                field: name.clone(),
                message: format!("nests deeper than {MAX_NESTING} levels; flatten it"),
            });
        }
        put_text(name, &mut out);
        pack(value, &mut out);
    }
    Ok(out)
}

/// The fields [`pack_fields`] packed (None if `bytes` are not such fields).
pub(crate) fn unpack_fields(bytes: &[u8]) -> Option<std::collections::BTreeMap<String, Value>> {
    match unpack(bytes)? {
        Value::Object(map) => Some(map.into_iter().collect()),
        _ => None,
    }
}

fn put_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_text(text: &str, out: &mut Vec<u8>) {
    put_varint(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

fn pack(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) if u <= u64::from(u8::MAX - SMALL) => out.push(SMALL + u as u8),
            (Some(u), _, _) => {
                out.push(UINT);
                put_varint(u, out);
            }
            (None, Some(i), _) => {
                out.push(NEG);
                put_varint(!(i as u64), out);
            }
            (_, _, f) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.unwrap_or_default().to_le_bytes());
            }
        },
        Value::String(s) => {
            out.push(STRING);
            put_text(s, out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(items.len() as u64, out);
            for item in items {
                pack(item, out);
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            put_varint(map.len() as u64, out);
            for (key, item) in map {
                put_text(key, out);
                pack(item, out);
            }
        }
    }
}

/// The document `bytes` packs (None if they are not exactly one packed
/// value, or nest deeper than any state does).
fn unpack(bytes: &[u8]) -> Option<Value> {
    struct Reader<'b>(&'b [u8]);
    impl Reader<'_> {
        fn byte(&mut self) -> Option<u8> {
            let (first, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(*first)
        }
        fn varint(&mut self) -> Option<u64> {
            let mut n = 0u64;
            for shift in (0..64).step_by(7) {
                let b = self.byte()?;
                n |= u64::from(b & 0x7f).checked_shl(shift)?;
                if b < 0x80 {
                    return Some(n);
                }
            }
            None
        }
        fn text(&mut self) -> Option<String> {
            let len = usize::try_from(self.varint()?).ok()?;
            if len > self.0.len() {
                return None;
            }
            let (text, rest) = self.0.split_at(len);
            self.0 = rest;
            String::from_utf8(text.to_vec()).ok()
        }
        fn value(&mut self, depth: usize) -> Option<Value> {
            if depth > 64 {
                return None;
            }
            Some(match self.byte()? {
                NULL => Value::Null,
                FALSE => Value::Bool(false),
                TRUE => Value::Bool(true),
                UINT => Value::from(self.varint()?),
                NEG => Value::from(!self.varint()? as i64),
                FLOAT => {
                    let bytes: [u8; 8] = self.0.get(..8)?.try_into().ok()?;
                    self.0 = &self.0[8..];
                    Value::from(f64::from_le_bytes(bytes))
                }
                STRING => Value::String(self.text()?),
                ARRAY => {
                    let n = self.varint()?;
                    let mut items = Vec::with_capacity(n.min(64) as usize);
                    for _ in 0..n {
                        items.push(self.value(depth + 1)?);
                    }
                    Value::Array(items)
                }
                OBJECT => {
                    let n = self.varint()?;
                    let mut map = Map::new();
                    for _ in 0..n {
                        let key = self.text()?;
                        map.insert(key, self.value(depth + 1)?);
                    }
                    Value::Object(map)
                }
                small if small >= SMALL => Value::from(small - SMALL),
                _ => return None,
            })
        }
    }
    let mut reader = Reader(bytes);
    let value = reader.value(0)?;
    reader.0.is_empty().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WORK_ITEMS;
    use waymark_sync::Change;

    #[test]
    fn a_state_survives_the_round_trip_with_its_row() {
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
            json!({"title": "t", "status": "active", "priority": 3, "metadata.x": {"deep": [1, 2.5]},
                   "metadata.gone": null, "created_by": 7}),
        ));
        let seen = state.vv.clone();
        state.apply(&change(a, 2, 20, &seen, json!({"status": "completed"})));
        state.apply(&change(
            b,
            1,
            15,
            &seen,
            json!({"status": "blocked", "description": null}),
        ));
        // The row as the projection writes it (names[1..] of work items).
        let text = |s: &str| Sql::Text(s.to_owned());
        let mut row = vec![Sql::Null; 19];
        row[1] = text("t");
        row[3] = text("completed");
        row[4] = Sql::Integer(3);
        row[11] = text(r#"{"x":{"deep":[1,2.5]}}"#);
        row[15] = text("7");
        // A state as stored (packed), and as its JSON document, to look into.
        let store = |state: &RecordState| {
            let packed = encode(&conn, &mut Interned::default(), &WORK_ITEMS, state).unwrap();
            let stored = unpack(&packed).unwrap().to_string();
            assert!(
                packed.len() < stored.len(),
                "packed: {} bytes, JSON: {}",
                packed.len(),
                stored.len()
            );
            (Sql::Blob(packed), stored)
        };

        let (packed, stored) = store(&state);
        assert!(!stored.contains(&a.to_string()), "replica ids are interned: {stored}");
        assert!(!stored.contains("\"t\""), "the title is read from the row: {stored}");
        assert!(stored.contains("blocked"), "a conflict keeps its values: {stored}");
        assert!(
            stored.contains("created_by"),
            "a value the row shows differently is kept: {stored}"
        );
        assert!(!stored.contains("\"v\""), "the version vector is implied: {stored}");
        assert_eq!(decode(&conn, &WORK_ITEMS, &packed, &row).unwrap(), state);

        // Metadata keys from two writes: one claims the row's remaining keys,
        // the other names its own.
        state.apply(&change(
            a,
            3,
            25,
            &state.vv.clone(),
            json!({"metadata.y": 5, "metadata.z": "z"}),
        ));
        row[11] = text(r#"{"x":{"deep":[1,2.5]},"y":5,"z":"z"}"#);
        let (packed, stored) = store(&state);
        assert!(stored.contains("\"m\"") && stored.contains("metadata.x"), "{stored}");
        assert_eq!(decode(&conn, &WORK_ITEMS, &packed, &row).unwrap(), state);

        // A write no longer visible anywhere keeps the version vector explicit.
        state.apply(&change(a, 4, 30, &state.vv.clone(), json!({"metadata.gone": "back"})));
        state.apply(&change(a, 5, 40, &state.vv.clone(), json!({"metadata.gone": null})));
        state.apply(&change(b, 2, 50, &state.vv.clone(), json!({"metadata.gone": null})));
        let (packed, stored) = store(&state);
        assert!(stored.contains("\"v\""), "a:5 is no longer visible: {stored}");
        row[3] = text("blocked");
        assert_eq!(decode(&conn, &WORK_ITEMS, &packed, &row).unwrap(), state);

        // Schema 1's form (JSON text, every value, always `v`) still reads.
        let old = r#"{"v":[[1,1]],"c":[[1,1,10,1]],"f":{"title":[[0,"t"]]}}"#;
        assert_eq!(
            decode(&conn, &WORK_ITEMS, &text(old), &row).unwrap().value("title"),
            Some(&json!("t"))
        );

        assert!(decode(&conn, &WORK_ITEMS, &text("{}"), &row).is_err());
        assert!(decode(&conn, &WORK_ITEMS, &text(r#"{"v":[[99,1]],"c":[],"f":{}}"#), &row).is_err());
        assert!(
            decode(&conn, &WORK_ITEMS, &text(r#"{"c":[[1,1,10,1]],"g":[[0,1024]]}"#), &row).is_err(),
            "no archived_at"
        );
        assert!(
            decode(
                &conn,
                &WORK_ITEMS,
                &text(r#"{"c":[[1,1,10,1]],"g":[[0,2,["metadata.q"]]]}"#),
                &row
            )
            .is_err()
        );
        // Packed values of every kind survive; damaged ones are refused.
        let every = json!({"n": null, "b": [true, false], "i": [0, 239, 240, 70000, -1, i64::MIN, u64::MAX],
                           "f": [2.5, -0.0, 1e300], "s": ["", "é\u{1f}"], "o": {"deep": [[{}]]}});
        let mut bytes = Vec::new();
        pack(&every, &mut bytes);
        assert_eq!(unpack(&bytes), Some(every));
        assert_eq!(unpack(&bytes[..bytes.len() - 1]), None);
        assert_eq!(unpack(&[bytes.clone(), vec![NULL]].concat()), None);
        assert_eq!(unpack(&[STRING, 200]), None);
        assert_eq!(unpack(&[9]), None);
        assert_eq!(unpack(&[ARRAY, 1].repeat(100)), None, "nesting is bounded");
        assert!(decode(&conn, &WORK_ITEMS, &Sql::Blob(vec![OBJECT, 5]), &row).is_err());

        let context = encode_context(&conn, &mut Interned::default(), &seen).unwrap();
        assert_eq!(decode_context(&conn, context.as_deref()).unwrap(), seen);
        assert_eq!(decode_context(&conn, None).unwrap(), VersionVector::new());
    }
}

//! `waymark verify`: the projection rebuilt from the truth, compared with the
//! one the writes kept.
//!
//! Every record's registers are read from this store and materialized, in
//! id order, into a scratch store in memory (the same schema, the same
//! code as every write); then everything derived across records (the tree,
//! the blocker counts, the tree and cross-record conflicts) is derived again
//! there at once, by whole-store passes that owe nothing to the order the
//! changes arrived in. Any difference from this store's rows is a bug of
//! the incremental derivation (or a row changed behind the store's back).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Transaction};
use waymark_sync::RecordState;

use super::collections::{Collection, Loaded};
use super::{blockers, codec, derived, id, tree};
use crate::error::{Error, Result};

/// Columns that are local to one store, not derived from the registers.
const LOCAL_COLUMNS: [&str; 3] = ["key", "state", "version"];

/// The differences between the projection of `conn` and the one rebuilt
/// from its registers: one line each, sorted; none when they agree.
pub(super) fn verify(conn: &Connection) -> Result<Vec<String>> {
    let mut scratch = Connection::open_in_memory()?;
    super::migrations()
        .to_latest(&mut scratch)
        .map_err(|e| Error::Corrupt(format!("the scratch store for verify: {e}")))?;
    let tx = scratch.transaction()?;
    rebuild(conn, &tx)?;
    let mut out = Vec::new();
    for c in Collection::all() {
        compare_rows(c.name, &table(conn, c.name)?, &table(&tx, c.name)?, &mut out);
    }
    let here = conflicts(conn)?;
    let rebuilt = conflicts(&tx)?;
    for c in here.difference(&rebuilt) {
        out.push(format!(
            "conflicts: {c} is listed here but not derived from the registers"
        ));
    }
    for c in rebuilt.difference(&here) {
        out.push(format!(
            "conflicts: {c} is derived from the registers but not listed here"
        ));
    }
    Ok(out)
}

/// The full-text index against the rows it indexes, on the writer's
/// connection: brought up to date with the writes noted for it (as before
/// every search), then checked by FTS5's own integrity check, in one
/// transaction. One line if they differ.
pub(super) fn check_search(conn: &mut Connection) -> Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    super::search::catch_up(&tx)?;
    let checked = tx.execute(
        "INSERT INTO work_items_fts (work_items_fts, rank) VALUES ('integrity-check', 1)",
        [],
    );
    tx.commit()?;
    match checked {
        Ok(_) => Ok(Vec::new()),
        Err(rusqlite::Error::SqliteFailure(e, message)) if e.code == rusqlite::ErrorCode::DatabaseCorrupt => {
            Ok(vec![format!(
                "work_items_fts: the full-text index differs from the titles and descriptions it indexes ({})",
                message.unwrap_or_else(|| e.to_string())
            )])
        }
        Err(e) => Err(e.into()),
    }
}

/// Materialize every record of `from` into `to`, then derive again at once
/// what spans records.
fn rebuild(from: &Connection, to: &Transaction<'_>) -> Result<()> {
    let mut interned = codec::Interned::default();
    let mut orphans = None;
    super::claims::copy_seqs(from, to)?;
    for c in Collection::all() {
        for (id, state) in c.all_states(from)? {
            let encoded = codec::encode(to, &mut interned, c, &state)?;
            let old = Loaded {
                key: None,
                row: None,
                state: RecordState::default(),
                had_conflicts: false,
            };
            c.materialize(to, &id, &old, &state, encoded, &mut orphans, false)?;
        }
    }
    to.execute(
        "DELETE FROM conflicts WHERE kind IN ('cycle', 'depth', 'orphan', ?1, ?2, ?3)",
        [
            derived::ARCHIVED_WHILE_OPEN,
            derived::PARENT_DELETED,
            derived::DEPENDENCY_CYCLE,
        ],
    )?;
    for (key, path, depth, issue) in tree::derive_all(to)? {
        to.prepare_cached("UPDATE work_items SET path = ?2, depth = ?3 WHERE key = ?1")?
            .execute(rusqlite::params![key, path, depth])?;
        if let Some(issue) = issue {
            let id = tree::id_of(to, key)?;
            tree::set_issue(to, &id, Some(issue))?;
        }
    }
    for (collection, id, field, kind) in derived::derive_all(to)? {
        to.execute(
            "INSERT INTO conflicts (collection, record_id, field, kind) VALUES (?1, ?2, ?3, ?4)",
            [collection, id, field, kind],
        )?;
    }
    let items: Vec<String> = to
        .prepare("SELECT id FROM work_items")?
        .query_map([], |r| id::get_id(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    for item in items {
        blockers::recount(to, &item)?;
    }
    Ok(())
}

/// A table's rows by id: every column but the local ones, a work item's
/// path as the ids of its ancestors.
type Rows = BTreeMap<String, Vec<(String, String)>>;

fn table(conn: &Connection, name: &str) -> Result<Rows> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {name}"))?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let raw: Vec<Vec<Sql>> = stmt
        .query_map([], |r| (0..columns.len()).map(|i| r.get::<_, Sql>(i)).collect())?
        .collect::<rusqlite::Result<_>>()?;
    let at = |name: &str| columns.iter().position(|c| c == name);
    let (key_at, id_at, path_at) = (at("key"), at("id"), at("path"));
    let ids: HashMap<i64, String> = raw
        .iter()
        .filter_map(|row| match (key_at.map(|k| &row[k]), id_at.map(|i| &row[i])) {
            (Some(Sql::Integer(k)), Some(id)) => Some((*k, show_id(id))),
            _ => None,
        })
        .collect();
    let mut rows = Rows::new();
    for row in raw {
        let id = id_at.map(|i| show_id(&row[i])).unwrap_or_default();
        let mut cells = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            if LOCAL_COLUMNS.contains(&column.as_str()) || Some(i) == id_at {
                continue;
            }
            let shown = match (&row[i], Some(i) == path_at) {
                (Sql::Text(path), true) => {
                    let ancestors: Vec<String> = tree::keys(path)
                        .map(|k| ids.get(&k).cloned().unwrap_or_else(|| format!("<key {k}>")))
                        .collect();
                    format!("/{}", ancestors.join("/"))
                }
                (value, _) => show(value),
            };
            cells.push((column.clone(), shown));
        }
        rows.insert(id, cells);
    }
    Ok(rows)
}

fn show_id(v: &Sql) -> String {
    match v {
        Sql::Text(_) | Sql::Blob(_) => id::text(v.into()).unwrap_or_else(|| show(v)),
        other => show(other),
    }
}

fn show(v: &Sql) -> String {
    match v {
        Sql::Null => "null".into(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(f) => f.to_string(),
        Sql::Text(t) => format!("{t:?}"),
        Sql::Blob(b) => match id::text(v.into()) {
            Some(id) => id,
            None => format!("x'{}'", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        },
    }
}

fn compare_rows(name: &str, here: &Rows, rebuilt: &Rows, out: &mut Vec<String>) {
    for (id, cells) in here {
        let Some(expected) = rebuilt.get(id) else {
            out.push(format!("{name}/{id}: has a row here but no registers"));
            continue;
        };
        for ((column, value), (_, wanted)) in cells.iter().zip(expected) {
            if value != wanted {
                out.push(format!("{name}/{id}: {column} is {value} here, {wanted} rebuilt"));
            }
        }
    }
    for id in rebuilt.keys().filter(|id| !here.contains_key(*id)) {
        out.push(format!("{name}/{id}: missing here"));
    }
}

fn conflicts(conn: &Connection) -> Result<BTreeSet<String>> {
    Ok(conn
        .prepare("SELECT collection, record_id, field, kind FROM conflicts")?
        .query_map([], |r| {
            Ok(format!(
                "{}/{}/{} ({})",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

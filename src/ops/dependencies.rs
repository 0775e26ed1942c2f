//! Dependencies between work items: add and remove edges, refusing
//! self-edges and cycles.

use rusqlite::OptionalExtension;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::work_items::require;
use crate::domain::{DependencyType, ids};
use crate::error::{Error, Kind, Result};
use crate::store::id::{self, get_id};
use crate::store::write::Fields;
use crate::store::{DEPENDENCIES, WriteTx};

/// A dependency edge. `blocks`: the source must finish before the target;
/// `depends_on`: the source waits for the target.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dependency {
    pub id: String,
    pub source_id: String,
    pub target_id: String,
    pub dependency_type: String,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(default)]
    pub version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyAction {
    Add,
    Remove,
}

impl DependencyAction {
    pub fn parse(text: &str) -> Result<DependencyAction> {
        match text.trim().to_ascii_lowercase().as_str() {
            "add" => Ok(DependencyAction::Add),
            "remove" => Ok(DependencyAction::Remove),
            _ => Err(Error::invalid("action", format!("{text:?} is not one of add, remove"))),
        }
    }
}

/// What `manage_dependency` takes.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyChange {
    pub action: DependencyAction,
    pub source_id: String,
    pub target_id: String,
    #[schemars(extend("enum" = ["depends_on", "blocks"]))]
    pub dependency_type: String,
}

pub(crate) const DEPENDENCY_COLUMNS: &str =
    "id, source_id, target_id, dependency_type, created_at, created_by, updated_at, updated_by, version";

pub(crate) fn dependency_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Dependency> {
    Ok(Dependency {
        id: get_id(r, 0)?,
        source_id: get_id(r, 1)?,
        target_id: get_id(r, 2)?,
        dependency_type: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        updated_at: r.get(6)?,
        updated_by: r.get(7)?,
        version: r.get(8)?,
    })
}

/// Whether `from` already waits, directly or through others, for `to`.
/// "Waits for" follows `depends_on` edges forwards and `blocks` edges
/// backwards.
fn waits_for(conn: &rusqlite::Connection, from: &str, to: &str) -> Result<bool> {
    let found: Option<i64> = conn
        .prepare_cached(
            "WITH RECURSIVE reach(id) AS (
                 SELECT ?1
                 UNION
                 SELECT d.target_id FROM dependencies d JOIN reach r ON d.source_id = r.id
                  WHERE d.removed = 0 AND d.dependency_type = 'depends_on'
                 UNION
                 SELECT d.source_id FROM dependencies d JOIN reach r ON d.target_id = r.id
                  WHERE d.removed = 0 AND d.dependency_type = 'blocks'
             )
             SELECT 1 FROM reach WHERE id = ?2 LIMIT 1",
        )?
        .query_row([id::sql(from), id::sql(to)], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

pub(crate) fn add_in(tx: &mut WriteTx<'_>, source: &str, target: &str, kind: DependencyType) -> Result<Dependency> {
    let source = ids::parse("source_id", source)?;
    let target = ids::parse("target_id", target)?;
    if source == target {
        return Err(Error::invalid("target_id", "a work item cannot depend on itself"));
    }
    for id in [&source, &target] {
        let item = require(tx.conn(), id)?;
        if item.deleted_at.is_some() {
            return Err(Error::invalid(
                "dependency",
                format!("work item {id} is deleted; restore it first"),
            ));
        }
    }
    let id = ids::dependency(&source, &target, kind.as_str());
    if let Some(existing) = load(tx.conn(), &id)? {
        return Ok(existing);
    }
    // The new edge makes `waiter` wait for `awaited`: a cycle if `awaited`
    // already waits for `waiter`.
    let (waiter, awaited) = match kind {
        DependencyType::DependsOn => (&source, &target),
        DependencyType::Blocks => (&target, &source),
    };
    if waits_for(tx.conn(), awaited, waiter)? {
        return Err(Error::Cycle(format!(
            "adding {source} {kind} {target} would close a cycle: {awaited} already waits for {waiter}; \
             remove one of the existing dependencies first"
        )));
    }
    let fresh = tx.state(&DEPENDENCIES, &id)?.vv.is_empty();
    let mut fields = Fields::new();
    fields.insert("source_id".into(), source.into());
    fields.insert("target_id".into(), target.into());
    fields.insert("dependency_type".into(), kind.as_str().into());
    fields.insert("removed".into(), false.into());
    if fresh {
        fields.insert("created_at".into(), tx.now().to_string().into());
        fields.insert("created_by".into(), tx.author().into());
    }
    tx.write(&DEPENDENCIES, &id, fields)?;
    load(tx.conn(), &id)?.ok_or_else(|| Error::Corrupt(format!("dependency {id} vanished")))
}

fn load(conn: &rusqlite::Connection, id: &str) -> Result<Option<Dependency>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEPENDENCY_COLUMNS} FROM dependencies WHERE id = ?1 AND removed = 0"
        ))?
        .query_row([id::sql(id)], dependency_from_row)
        .optional()?)
}

impl Tracker {
    /// Add (idempotent) or remove a dependency edge.
    pub fn manage_dependency(&self, author: &str, change: DependencyChange) -> Result<Dependency> {
        let kind = DependencyType::parse(&change.dependency_type)?;
        self.store.write(author, move |tx| match change.action {
            DependencyAction::Add => add_in(tx, &change.source_id, &change.target_id, kind),
            DependencyAction::Remove => {
                let source = ids::parse("source_id", &change.source_id)?;
                let target = ids::parse("target_id", &change.target_id)?;
                let id = ids::dependency(&source, &target, kind.as_str());
                let dep = load(tx.conn(), &id)?
                    .ok_or_else(|| Error::not_found(Kind::Dependency, format!("{source} {kind} {target}")))?;
                let mut fields = Fields::new();
                fields.insert("removed".into(), true.into());
                let version = tx.write(&DEPENDENCIES, &id, fields)?;
                Ok(Dependency { version, ..dep })
            }
        })
    }
}

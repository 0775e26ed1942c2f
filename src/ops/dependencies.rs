//! Dependencies between work items: add and remove edges, refusing
//! self-edges and cycles.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::work_items::require;
use crate::domain::{DependencyType, ids};
use crate::error::{Error, Kind, Result};
use crate::store::write::Fields;
use crate::store::{Connection, DEPENDENCIES, WriteTx, query};

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
            _ => Err(Error::invalid(
                "action",
                format!("{} is not one of add, remove", crate::error::quote(text)),
            )),
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
    if query::dependencies::waits_for(tx.conn(), awaited, waiter)? {
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

fn load(conn: &Connection, id: &str) -> Result<Option<Dependency>> {
    query::dependencies::live(conn, id)
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

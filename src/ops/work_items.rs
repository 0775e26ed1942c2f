//! Work items: create, update (move, delete), query with the hierarchy,
//! list, and ready work.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Tracker;
use super::page::{
    Page, capped_count, clamp_limit, decode_key_cursor, decode_ranked_cursor, encode_cursor, encode_key_cursor,
    paginate,
};
use crate::domain::{self, ItemType, MAX_DEPTH, WorkStatus, ids};
use crate::error::{Error, Kind, Result};
use crate::store::id::{self, get_id, get_opt_id};
use crate::store::write::Fields;
use crate::store::{WORK_ITEMS, WriteTx, tree};

/// A work item, every field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkItem {
    pub id: String,
    pub item_type: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: String,
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub depth: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<i64>,
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(default)]
    pub version: i64,
}

/// A work item in a list: what a reader needs to pick one.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkItemRow {
    pub id: String,
    pub title: String,
    pub item_type: String,
    pub status: String,
    pub priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub updated_at: String,
    pub version: i64,
}

impl super::page::Row for WorkItemRow {
    const COLUMNS: &'static [&'static str] =
        &["id", "title", "item_type", "status", "priority", "parent_id", "version"];
}

pub(crate) const ITEM_COLUMNS: &str = "id, item_type, title, description, status, priority, parent_id, path, depth, \
     branch_name, commit_hash, pr_number, metadata, deleted_at, archived_at, created_at, created_by, updated_at, \
     updated_by, version";

pub(crate) const ROW_COLUMNS: &str = "id, title, item_type, status, priority, parent_id, updated_at, version";

pub(crate) fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkItem> {
    let metadata: String = r.get(12)?;
    Ok(WorkItem {
        id: get_id(r, 0)?,
        item_type: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        status: r.get(4)?,
        priority: r.get(5)?,
        parent_id: get_opt_id(r, 6)?,
        path: r.get(7)?,
        depth: r.get(8)?,
        branch_name: r.get(9)?,
        commit_hash: r.get(10)?,
        pr_number: r.get(11)?,
        metadata: serde_json::from_str(&metadata).unwrap_or_else(|_| Value::Object(Map::new())),
        deleted_at: r.get(13)?,
        archived_at: r.get(14)?,
        created_at: r.get(15)?,
        created_by: r.get(16)?,
        updated_at: r.get(17)?,
        updated_by: r.get(18)?,
        version: r.get(19)?,
    })
}

pub(crate) fn row_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WorkItemRow> {
    Ok(WorkItemRow {
        id: get_id(r, 0)?,
        title: r.get(1)?,
        item_type: r.get(2)?,
        status: r.get(3)?,
        priority: r.get(4)?,
        parent_id: get_opt_id(r, 5)?,
        updated_at: r.get(6)?,
        version: r.get(7)?,
    })
}

pub(crate) fn load(conn: &rusqlite::Connection, id: &str) -> Result<Option<WorkItem>> {
    use rusqlite::OptionalExtension;
    let item = conn
        .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM work_items WHERE id = ?1"))?
        .query_row([id::sql(id)], item_from_row)
        .optional()?;
    item.map(|mut item| {
        item.path = user_path(&item.path, &item.id, |key| tree::id_of(conn, key))?;
        Ok(item)
    })
    .transpose()
}

/// The path a reader sees, `/{root id}/.../{id}`, from the stored path (the
/// ancestors' keys, see `store::tree`).
pub(crate) fn user_path(stored: &str, id: &str, mut id_of: impl FnMut(i64) -> Result<String>) -> Result<String> {
    let mut path = String::with_capacity(37 * (stored.len() / 2 + 1));
    for key in tree::keys(stored) {
        path.push('/');
        path.push_str(&id_of(key)?);
    }
    path.push('/');
    path.push_str(id);
    Ok(path)
}

/// The bounds of the stored paths of every item below item `id`.
pub(crate) fn subtree_of(conn: &rusqlite::Connection, id: &str) -> Result<(String, String)> {
    let (key, path): (i64, String) = conn
        .prepare_cached("SELECT key, path FROM work_items WHERE id = ?1")?
        .query_row([id::sql(id)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(tree::subtree_range(&path, key))
}

pub(crate) fn require(conn: &rusqlite::Connection, id: &str) -> Result<WorkItem> {
    load(conn, id)?.ok_or_else(|| Error::not_found(Kind::WorkItem, id))
}

/// What `create_work_item` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkItem {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: String,
    #[schemars(length(max = 200))]
    pub title: String,
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// Tree depth is 0-5.
    pub parent_id: Option<String>,
    /// Default active.
    #[schemars(extend("enum" = ["active", "completed", "blocked"]))]
    pub status: Option<String>,
    /// 0 highest, default 2.
    #[schemars(range(min = 0, max = 4))]
    pub priority: Option<i64>,
    #[schemars(length(max = 100))]
    pub branch_name: Option<String>,
    pub commit_hash: Option<String>,
    #[schemars(range(min = 1))]
    pub pr_number: Option<i64>,
    /// Keys by type. project: description (required), target_quarter, constitutional_principles. session: token_budget, prompts_count. task: estimated_hours, actual_hours, blocked_reason. research: research_questions, findings_summary, references.
    pub metadata: Option<Map<String, Value>>,
}

/// What `update_work_item` takes: the id, the version read, and the fields
/// to change. `parent_id: ""` moves the item to the root; empty texts clear
/// optional fields; metadata keys are merged, a null value removes a key.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemUpdate {
    pub id: String,
    pub version: i64,
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    #[schemars(length(max = 200))]
    pub title: Option<String>,
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    #[schemars(extend("enum" = ["active", "completed", "blocked"]))]
    pub status: Option<String>,
    #[schemars(range(min = 0, max = 4))]
    pub priority: Option<i64>,
    /// New parent; "" moves to the root.
    pub parent_id: Option<String>,
    #[schemars(length(max = 100))]
    pub branch_name: Option<String>,
    pub commit_hash: Option<String>,
    #[schemars(range(min = 1))]
    pub pr_number: Option<i64>,
    /// Keys to merge; null removes one.
    pub metadata: Option<Map<String, Value>>,
    /// true deletes (soft), false restores.
    pub deleted: Option<bool>,
}

/// Filters of `list_work_items`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemFilter {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    #[schemars(extend("enum" = ["active", "completed", "blocked"]))]
    pub status: Option<String>,
    /// Only direct children of this item.
    pub parent_id: Option<String>,
    /// Words to find in title or description.
    #[schemars(length(max = 1000))]
    pub text: Option<String>,
    #[serde(default)]
    pub include_deleted: bool,
    /// The archive instead, latest archived first (with item_type, text).
    #[serde(default)]
    pub archived: bool,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Filters of `list_ready_work`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyQuery {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `query_work_item` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemQuery {
    pub id: String,
    /// Default true.
    pub include_children: Option<bool>,
    /// Default true.
    pub include_dependencies: Option<bool>,
}

/// One dependency seen from an item: the edge and the item at its other end.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DependencyLink {
    pub dependency_id: String,
    pub dependency_type: String,
    pub item: WorkItemRow,
}

/// An item's dependencies, both ways.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ItemDependencies {
    /// Items this one waits for.
    pub depends_on: Vec<DependencyLink>,
    /// Items that wait for this one.
    pub blocks: Vec<DependencyLink>,
}

/// `query_work_item`: one item with its place in the tree.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkItemDetail {
    pub item: WorkItem,
    /// Root first.
    pub ancestors: Vec<WorkItemRow>,
    /// Depth first, in tree order; at most [`MAX_DESCENDANTS`].
    pub descendants: Vec<WorkItemRow>,
    /// All descendants, when more than the ones shown.
    pub descendant_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<ItemDependencies>,
    /// Fields of this item with concurrent, different values from sync, and
    /// `field (kind)` for the other conflicts: `parent_id (cycle|depth|orphan)`
    /// where merged moves broke a tree rule, `parent_id (parent_deleted)`,
    /// `archived_at (archived_while_open)`, `deleted_at (delete_vs_update)`.
    pub conflicts: Vec<String>,
}

/// The most descendants one query returns; `list_work_items` with
/// `parent_id` pages through the rest.
pub const MAX_DESCENDANTS: i64 = 100;

fn parse_status(text: &str) -> Result<WorkStatus> {
    WorkStatus::parse_legacy(text)
}

/// Check that `parent_id` can take a child at the given subtree height;
/// returns the canonical parent id.
fn check_parent(conn: &rusqlite::Connection, parent_id: &str, moving: Option<&WorkItem>) -> Result<(String, i64)> {
    let parent_id = ids::parse("parent_id", parent_id)?;
    let parent = load(conn, &parent_id)?.ok_or_else(|| {
        Error::invalid(
            "parent_id",
            format!("work item {parent_id} not found; list_work_items shows the ids"),
        )
    })?;
    if parent.deleted_at.is_some() {
        return Err(Error::invalid(
            "parent_id",
            format!("work item {parent_id} is deleted; restore it or pick another parent"),
        ));
    }
    if parent.archived_at.is_some() {
        return Err(Error::invalid(
            "parent_id",
            format!("work item {parent_id} is archived; pick another parent"),
        ));
    }
    let mut height = 0;
    if let Some(item) = moving {
        // By links, not the path: a depth cut hides the ancestors above it.
        if tree::links_reach(conn, &parent.id, &item.id)? {
            return Err(Error::Cycle(format!(
                "cannot move work item {} under {}: that is itself or one of its descendants",
                item.id, parent.id
            )));
        }
        height = subtree_height(conn, item)?;
    }
    let depth = parent.depth + 1;
    if depth + height > MAX_DEPTH {
        let what = match moving {
            Some(item) => format!(
                "work item {} (its subtree is {height} levels below it) under {}",
                item.id, parent.id
            ),
            None => format!("a child of {} (at depth {})", parent.id, parent.depth),
        };
        return Err(Error::DepthLimit {
            what,
            depth: depth + height,
            max: MAX_DEPTH,
        });
    }
    Ok((parent.id, depth))
}

fn subtree_height(conn: &rusqlite::Connection, item: &WorkItem) -> Result<i64> {
    let (low, high) = subtree_of(conn, &item.id)?;
    let deepest: Option<i64> = conn
        .prepare_cached("SELECT max(depth) FROM work_items WHERE path >= ?1 AND path < ?2")?
        .query_row([low, high], |r| r.get(0))?;
    Ok(deepest.map_or(0, |d| d - item.depth))
}

fn put<T: Serialize>(fields: &mut Fields, name: &str, value: T) {
    fields.insert(name.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
}

/// Validate and write a new work item (shared with imports).
pub(crate) fn create_in(tx: &mut WriteTx<'_>, id: &str, input: NewWorkItem, created_by_tool: bool) -> Result<WorkItem> {
    let item_type = ItemType::parse(&input.item_type)?;
    let title = domain::title(&input.title)?;
    let description = input
        .description
        .as_deref()
        .map(domain::description)
        .transpose()?
        .flatten();
    let status = input
        .status
        .as_deref()
        .map(parse_status)
        .transpose()?
        .unwrap_or(WorkStatus::Active);
    let priority = domain::work_priority(input.priority.unwrap_or(2))?;
    let branch = input
        .branch_name
        .as_deref()
        .map(domain::branch_name)
        .transpose()?
        .flatten();
    let commit = input
        .commit_hash
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(|c| domain::commit_hash("commit_hash", c, !created_by_tool))
        .transpose()?;
    let pr = input.pr_number.map(domain::pr_number).transpose()?;
    let metadata = input.metadata.unwrap_or_default();
    domain::work_item_metadata(item_type, &metadata, created_by_tool)?;
    let parent = match input.parent_id.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => Some(check_parent(tx.conn(), p, None)?.0),
        None => None,
    };
    if load(tx.conn(), id)?.is_some() {
        return Err(Error::Conflict(format!(
            "work item {id} already exists; update_work_item changes it"
        )));
    }

    let mut fields = Fields::new();
    put(&mut fields, "item_type", item_type.as_str());
    put(&mut fields, "title", &title);
    if let Some(d) = description {
        put(&mut fields, "description", d);
    }
    put(&mut fields, "status", status.as_str());
    put(&mut fields, "priority", priority);
    if let Some(p) = parent {
        put(&mut fields, "parent_id", p);
    }
    if let Some(b) = branch {
        put(&mut fields, "branch_name", b);
    }
    if let Some(c) = commit {
        put(&mut fields, "commit_hash", c);
    }
    if let Some(n) = pr {
        put(&mut fields, "pr_number", n);
    }
    for (k, v) in metadata {
        if !v.is_null() {
            fields.insert(format!("metadata.{k}"), v);
        }
    }
    put(&mut fields, "created_at", tx.now().to_string());
    put(&mut fields, "created_by", tx.author().to_owned());
    tx.write(&WORK_ITEMS, id, fields)?;
    require(tx.conn(), id)
}

pub(crate) fn update_in(tx: &mut WriteTx<'_>, input: WorkItemUpdate) -> Result<WorkItem> {
    let id = ids::parse("id", &input.id)?;
    let item = require(tx.conn(), &id)?;
    if item.version != input.version {
        return Err(Error::StaleVersion {
            kind: Kind::WorkItem,
            id,
            expected: input.version,
            current: item.version,
            updated_by: item.updated_by,
        });
    }
    let mut fields = Fields::new();
    // A merged record may hold a type word of a newer version, or a type and
    // metadata that two stores wrote apart and that no rule checked
    // together: such a record still takes every update that leaves its type
    // and metadata alone, and an update of either must leave both valid.
    let item_type = match &input.item_type {
        Some(t) => Some(ItemType::parse(t)?),
        None => ItemType::parse(&item.item_type).ok(),
    };
    if let Some(t) = item_type
        && t.as_str() != item.item_type
    {
        put(&mut fields, "item_type", t.as_str());
    }
    if let Some(t) = &input.title {
        let t = domain::title(t)?;
        if t != item.title {
            put(&mut fields, "title", t);
        }
    }
    if let Some(d) = &input.description {
        let d = domain::description(d)?;
        if d != item.description {
            put(&mut fields, "description", d);
        }
    }
    if let Some(s) = &input.status {
        let s = parse_status(s)?;
        if s.as_str() != item.status {
            put(&mut fields, "status", s.as_str());
        }
    }
    if let Some(p) = input.priority {
        let p = domain::work_priority(p)?;
        if p != item.priority {
            put(&mut fields, "priority", p);
        }
    }
    if let Some(b) = &input.branch_name {
        let b = domain::branch_name(b)?;
        if b != item.branch_name {
            put(&mut fields, "branch_name", b);
        }
    }
    if let Some(c) = &input.commit_hash {
        let c = if c.trim().is_empty() {
            None
        } else {
            Some(domain::commit_hash("commit_hash", c, false)?)
        };
        if c != item.commit_hash {
            put(&mut fields, "commit_hash", c);
        }
    }
    if let Some(n) = input.pr_number {
        let n = domain::pr_number(n)?;
        if Some(n) != item.pr_number {
            put(&mut fields, "pr_number", n);
        }
    }
    // Metadata: merge the given keys, then validate the whole for the
    // (possibly new) type.
    let mut merged = item.metadata.as_object().cloned().unwrap_or_default();
    let given = input.metadata.unwrap_or_default();
    for (k, v) in &given {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    if input.item_type.is_some() || !given.is_empty() {
        let item_type = item_type.ok_or_else(|| {
            Error::invalid(
                "item_type",
                format!(
                    "work item {id} has the type {:?}, which this version of Waymark does not know; give item_type to change its metadata",
                    item.item_type
                ),
            )
        })?;
        domain::work_item_metadata(item_type, &merged, false)?;
    }
    for (k, v) in given {
        let current = item.metadata.get(&k).cloned().unwrap_or(Value::Null);
        if current != v {
            fields.insert(format!("metadata.{k}"), v);
        }
    }
    if let Some(p) = &input.parent_id {
        let new_parent = if p.trim().is_empty() {
            None
        } else {
            Some(check_parent(tx.conn(), p, Some(&item))?.0)
        };
        if new_parent != item.parent_id {
            put(&mut fields, "parent_id", new_parent);
        }
    }
    match input.deleted {
        Some(true) if item.deleted_at.is_none() => put(&mut fields, "deleted_at", tx.now().to_string()),
        Some(false) if item.deleted_at.is_some() => put(&mut fields, "deleted_at", Value::Null),
        _ => {}
    }
    if fields.is_empty() {
        return Ok(item);
    }
    tx.write(&WORK_ITEMS, &id, fields)?;
    require(tx.conn(), &id)
}

impl Tracker {
    /// Create a work item. Projects need `metadata.description`.
    pub fn create_work_item(&self, author: &str, input: NewWorkItem) -> Result<WorkItem> {
        self.store
            .write(author, move |tx| create_in(tx, &ids::new_id(), input, true))
    }

    /// Update a work item with optimistic locking: `version` must be the
    /// version last read.
    pub fn update_work_item(&self, author: &str, input: WorkItemUpdate) -> Result<WorkItem> {
        self.store.write(author, move |tx| update_in(tx, input))
    }

    /// One item by id (archived and deleted ones too).
    pub fn get_work_item(&self, id: &str) -> Result<WorkItem> {
        let id = ids::parse("id", id)?;
        self.store.read(|tx| require(tx, &id))
    }

    /// One item with its ancestors, descendants, dependencies and open
    /// conflicts.
    pub fn query_work_item(
        &self,
        id: &str,
        include_children: bool,
        include_dependencies: bool,
    ) -> Result<WorkItemDetail> {
        let id = ids::parse("id", id)?;
        self.store.read(|tx| {
            let item = require(tx, &id)?;
            let ancestor_ids: Vec<&str> = item
                .path
                .split('/')
                .filter(|s| !s.is_empty() && *s != item.id)
                .collect();
            let mut ancestors = Vec::with_capacity(ancestor_ids.len());
            {
                let mut stmt = tx.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM work_items WHERE id = ?1"))?;
                for a in ancestor_ids {
                    if let Some(row) =
                        rusqlite::OptionalExtension::optional(stmt.query_row([id::sql(a)], row_from_row))?
                    {
                        ancestors.push(row);
                    }
                }
            }
            let (mut descendants, mut descendant_count) = (Vec::new(), 0);
            if include_children {
                let (low, high) = subtree_of(tx, &item.id)?;
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {ROW_COLUMNS} FROM work_items WHERE path >= ?1 AND path < ?2
                     ORDER BY path, key LIMIT ?3"
                ))?;
                descendants = stmt
                    .query_map(rusqlite::params![low, high, MAX_DESCENDANTS + 1], row_from_row)?
                    .collect::<rusqlite::Result<_>>()?;
                // A subtree that fits in the answer is counted by it.
                descendant_count = if descendants.len() as i64 <= MAX_DESCENDANTS {
                    descendants.len() as i64
                } else {
                    descendants.truncate(MAX_DESCENDANTS as usize);
                    tx.prepare_cached("SELECT count(*) FROM work_items WHERE path >= ?1 AND path < ?2")?
                        .query_row([&low, &high], |r| r.get(0))?
                };
            }
            let dependencies = if include_dependencies {
                Some(item_dependencies(tx, &item.id)?)
            } else {
                None
            };
            let conflicts = tx
                .prepare_cached(
                    "SELECT CASE kind WHEN 'value' THEN field ELSE field || ' (' || kind || ')' END
                     FROM conflicts WHERE collection = 'work_items' AND record_id = ?1 ORDER BY field, kind",
                )?
                .query_map([&item.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(WorkItemDetail {
                item,
                ancestors,
                descendants,
                descendant_count,
                dependencies,
                conflicts,
            })
        })
    }

    /// A page of compact rows, in the order this store recorded them (oldest
    /// first), with the total that match.
    pub fn list_work_items(&self, filter: WorkItemFilter) -> Result<Page<WorkItemRow>> {
        if filter.archived {
            if filter.status.is_some() || filter.parent_id.is_some() || filter.include_deleted {
                return Err(Error::invalid(
                    "archived",
                    "lists take only item_type, text, limit and cursor besides it",
                ));
            }
            return self.query_archived_work_items(super::ArchivedQuery {
                text: filter.text,
                item_type: filter.item_type,
                limit: filter.limit,
                cursor: filter.cursor,
            });
        }
        let limit = clamp_limit(filter.limit)?;
        let mut clauses = vec!["archived_at IS NULL".to_owned()];
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |clauses: &mut Vec<String>, sql: &str, v: rusqlite::types::Value| {
            args.push(v);
            clauses.push(sql.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = &filter.item_type {
            arg(
                &mut clauses,
                "item_type = ?",
                ItemType::parse(t)?.as_str().to_owned().into(),
            );
        }
        if let Some(s) = &filter.status {
            arg(&mut clauses, "status = ?", parse_status(s)?.as_str().to_owned().into());
        }
        if let Some(p) = &filter.parent_id {
            arg(&mut clauses, "parent_id = ?", id::value(&ids::parse("parent_id", p)?));
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
            arg(
                &mut clauses,
                "rowid IN (SELECT rowid FROM work_items_fts WHERE work_items_fts MATCH ?)",
                fts_query(text)?.into(),
            );
        }
        if !filter.include_deleted {
            clauses.push("deleted_at IS NULL".to_owned());
        }
        let filters = clauses.join(" AND ");
        // Every list pages in the order this store recorded the items (by
        // key: oldest first, for the items created here), which the
        // full-text index and every index of work items share, so no page
        // costs a sort.
        let searching = filter.text.as_deref().is_some_and(|t| !t.trim().is_empty());
        let mut page_clauses = filters.clone();
        let count_args = args.len();
        if let Some(c) = &filter.cursor {
            args.push(decode_key_cursor(c)?.into());
            page_clauses.push_str(&format!(" AND key > ?{}", args.len()));
        }
        if searching {
            self.store.catch_up_search()?;
        }
        self.store.read(|tx| {
            let total = capped_count(tx, &format!("work_items WHERE {filters}"), &args[..count_args])?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, key FROM work_items WHERE {page_clauses} ORDER BY key LIMIT {}",
                limit + 1
            ))?;
            let rows: Vec<(WorkItemRow, i64)> = stmt
                .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(8)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(paginate(rows, limit, total, |(_, key)| encode_key_cursor(*key)).map(|(row, _)| row))
        })
    }

    /// Ready work: active, not deleted, nothing it waits for still open;
    /// highest priority, then oldest, first.
    pub fn ready_work(&self, query: ReadyQuery) -> Result<Page<WorkItemRow>> {
        let limit = clamp_limit(query.limit)?;
        let item_type = query.item_type.as_deref().map(ItemType::parse).transpose()?;
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut extra = String::new();
        if let Some(t) = item_type {
            args.push(t.as_str().to_owned().into());
            extra.push_str(&format!(" AND w.item_type = ?{}", args.len()));
        }
        let filters = format!("{READY_FILTER}{extra}");
        let count_args = args.len();
        let mut page_filters = filters.clone();
        if let Some(c) = &query.cursor {
            args.extend(decode_ranked_cursor(c)?);
            let n = args.len();
            page_filters.push_str(&format!(
                " AND (w.priority, w.created_at, w.id) > (?{}, ?{}, ?{n})",
                n - 2,
                n - 1
            ));
        }
        self.store.read(|tx| {
            let total = capped_count(tx, &format!("work_items w WHERE {filters}"), &args[..count_args])?;
            // The ready index walks items in page order, so the page stops
            // after `limit + 1` hits; left to itself the planner picks
            // work_items_status and sorts every active item (300 ms at 100k).
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT w.id, w.title, w.item_type, w.status, w.priority, w.parent_id, w.updated_at, w.version,
                        w.created_at
                 FROM work_items w INDEXED BY work_items_ready WHERE {page_filters}
                 ORDER BY w.priority, w.created_at, w.id LIMIT {}",
                limit + 1
            ))?;
            let rows: Vec<(WorkItemRow, String)> = stmt
                .query_map(rusqlite::params_from_iter(&args), |r| Ok((row_from_row(r)?, r.get(8)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(paginate(rows, limit, total, |(row, created)| {
                encode_cursor(&[&row.priority.to_string(), created, &row.id])
            })
            .map(|(row, _)| row))
        })
    }
}

/// Active, live, and nothing it waits for is still open (an item is open
/// until it is completed or deleted).
const READY_FILTER: &str =
    "w.status = 'active' AND w.deleted_at IS NULL AND w.archived_at IS NULL AND w.open_blockers = 0";

/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 1000;
/// The most distinct words a search may hold.
pub const MAX_SEARCH_WORDS: usize = 32;

/// Turn free text into an FTS5 query: every word must appear (as a prefix),
/// with no operator syntax exposed.
///
/// A search costs each of its words a scan of the index entries the word
/// prefixes, so the text is capped (length and words) and repeated words
/// count once: 100 KB of `a a a ...` was 20,000 scans of every `a` term
/// (9 s), now one.
pub(crate) fn fts_query(text: &str) -> Result<String> {
    let chars = text.chars().count();
    if chars > MAX_SEARCH_CHARS {
        return Err(Error::invalid(
            "text",
            format!("is {chars} characters; a search takes at most {MAX_SEARCH_CHARS}"),
        ));
    }
    let mut words: Vec<&str> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if words.contains(&word) {
            continue;
        }
        if words.len() == MAX_SEARCH_WORDS {
            return Err(Error::invalid(
                "text",
                format!("has more than {MAX_SEARCH_WORDS} different words; search for fewer"),
            ));
        }
        words.push(word);
    }
    Ok(words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "))
}

fn item_dependencies(conn: &rusqlite::Connection, id: &str) -> Result<ItemDependencies> {
    // (dependency id, type, other item) for edges where this item waits
    // (depends_on) or others wait for it (blocks).
    let query = |sql: &str| -> Result<Vec<DependencyLink>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map([id::sql(id)], |r| {
                Ok(DependencyLink {
                    dependency_id: get_id(r, 0)?,
                    dependency_type: r.get(1)?,
                    item: WorkItemRow {
                        id: get_id(r, 2)?,
                        title: r.get(3)?,
                        item_type: r.get(4)?,
                        status: r.get(5)?,
                        priority: r.get(6)?,
                        parent_id: get_opt_id(r, 7)?,
                        updated_at: r.get(8)?,
                        version: r.get(9)?,
                    },
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    };
    let cols = "d.id, d.dependency_type, w.id, w.title, w.item_type, w.status, w.priority, w.parent_id, w.updated_at, w.version";
    let depends_on = query(&format!(
        "SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.target_id
           WHERE d.source_id = ?1 AND d.removed = 0 AND d.dependency_type = 'depends_on'
         UNION ALL
         SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.source_id
           WHERE d.target_id = ?1 AND d.removed = 0 AND d.dependency_type = 'blocks'
         ORDER BY 3"
    ))?;
    let blocks = query(&format!(
        "SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.target_id
           WHERE d.source_id = ?1 AND d.removed = 0 AND d.dependency_type = 'blocks'
         UNION ALL
         SELECT {cols} FROM dependencies d JOIN work_items w ON w.id = d.source_id
           WHERE d.target_id = ?1 AND d.removed = 0 AND d.dependency_type = 'depends_on'
         ORDER BY 3"
    ))?;
    Ok(ItemDependencies { depends_on, blocks })
}

//! Work items: create, update (move, delete), query with the hierarchy,
//! list, and ready work.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Tracker;
use super::page::{
    Page, clamp_limit, decode_key_cursor, decode_ranked_cursor, encode_cursor, encode_key_cursor, paginate,
};
use crate::domain::{self, ItemType, MAX_DEPTH, WorkStatus, ids};
use crate::error::{Error, Kind, Result};
use crate::store::write::Fields;
use crate::store::{Connection, WORK_ITEMS, WriteTx, query};

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
    /// The agent whose claim on it is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
}

impl super::page::Row for WorkItemRow {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "title",
        "item_type",
        "status",
        "priority",
        "parent_id",
        "version",
        "claimed_by",
    ];
}

pub(crate) use crate::store::query::work_items::load;

pub(crate) fn require(conn: &Connection, id: &str) -> Result<WorkItem> {
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
    /// Archived items instead, latest first.
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

/// `list_ready_work`'s answer: a page of ready items, and the claims the
/// asker lost (another agent's claim came first in the hub's order).
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyWork {
    pub page: Page<WorkItemRow>,
    pub lost_claims: Vec<super::LostClaim>,
}

impl Serialize for ReadyWork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.page).map_err(serde::ser::Error::custom)?;
        if !self.lost_claims.is_empty()
            && let Some(map) = value.as_object_mut()
        {
            map.insert(
                "lost_claims".into(),
                serde_json::to_value(&self.lost_claims).map_err(serde::ser::Error::custom)?,
            );
        }
        value.serialize(s)
    }
}

/// What `query_work_item` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemQuery {
    pub id: String,
    // Both default to true.
    pub include_children: Option<bool>,
    pub include_dependencies: Option<bool>,
    // The next page of descendants (the tool's description says so).
    pub cursor: Option<String>,
    // The first page of its history (`waymark history` pages on).
    pub history: Option<bool>,
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
    /// Depth first, in tree order; at most [`MAX_DESCENDANTS`] a page.
    pub descendants: Vec<WorkItemRow>,
    /// All descendants, when more than the ones shown.
    pub descendant_count: i64,
    /// Pass back as `cursor` for the next page of descendants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<ItemDependencies>,
    /// Fields of this item with concurrent, different values from sync, and
    /// `field (kind)` for the other conflicts: `parent_id (cycle|depth|orphan)`
    /// where merged moves broke a tree rule, `parent_id (parent_deleted)`,
    /// `archived_at (archived_while_open)`, `deleted_at (delete_vs_update)`.
    pub conflicts: Vec<String>,
    /// The live claim on it: who works on it, until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<super::ClaimView>,
    /// The first page of its history, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Page<super::HistoryEntry>>,
}

/// The most descendants one query returns; `list_work_items` with
/// `parent_id` pages through the rest.
pub const MAX_DESCENDANTS: i64 = 100;

fn parse_status(text: &str) -> Result<WorkStatus> {
    WorkStatus::parse_legacy(text)
}

/// Check that `parent_id` can take a child at the given subtree height;
/// returns the canonical parent id.
fn check_parent(conn: &Connection, parent_id: &str, moving: Option<&WorkItem>) -> Result<(String, i64)> {
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
        if query::work_items::links_reach(conn, &parent.id, &item.id)? {
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

fn subtree_height(conn: &Connection, item: &WorkItem) -> Result<i64> {
    let deepest = query::work_items::deepest_below(conn, &item.id)?;
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
    /// Refused while another agent holds a claim on the item; the holder's
    /// write renews its lease, and completing or deleting releases it.
    pub fn update_work_item(&self, author: &str, input: WorkItemUpdate) -> Result<WorkItem> {
        self.store.write(author, move |tx| {
            let id = ids::parse("id", &input.id)?;
            let claim = super::claims::check_write(tx, &id)?;
            let item = update_in(tx, input)?;
            let closed = item.status == "completed" || item.deleted_at.is_some();
            super::claims::after_item_write(tx, &id, claim, closed)?;
            Ok(item)
        })
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
        self.query_work_item_with(WorkItemQuery {
            id: id.to_owned(),
            include_children: Some(include_children),
            include_dependencies: Some(include_dependencies),
            cursor: None,
            history: None,
        })
    }

    /// [`Tracker::query_work_item`] as the tool takes it: with `cursor`, the
    /// page of descendants after the one that returned it.
    pub fn query_work_item_with(&self, q: WorkItemQuery) -> Result<WorkItemDetail> {
        let id = ids::parse("id", &q.id)?;
        // A descendants cursor is the tree position (path, key) of the last
        // one shown.
        let after = match q.cursor.as_deref() {
            None => None,
            Some(c) => {
                let [path, key] = super::page::decode_parts(c)?;
                let key = key.parse::<i64>().map_err(|_| super::page::bad_cursor())?;
                Some((path, key))
            }
        };
        let include_children = q.include_children.unwrap_or(true);
        if after.is_some() && !include_children {
            return Err(Error::invalid(
                "cursor",
                "pages the descendants, which include_children: false leaves out",
            ));
        }
        let now = self.store.now_ms();
        let history = if q.history == Some(true) {
            Some(self.work_item_history(&id, None, None)?)
        } else {
            None
        };
        self.store.read(|tx| {
            let item = require(tx, &id)?;
            let ancestors =
                query::work_items::rows(tx, item.path.split('/').filter(|s| !s.is_empty() && *s != item.id))?;
            let (descendants, descendant_count, next) = if include_children {
                query::work_items::descendants(tx, &item.id, after, MAX_DESCENDANTS)?
            } else {
                (Vec::new(), 0, None)
            };
            let dependencies = if q.include_dependencies.unwrap_or(true) {
                Some(query::work_items::dependencies(tx, &item.id)?)
            } else {
                None
            };
            let conflicts = query::work_items::conflicted_fields(tx, &item.id)?;
            let claim = if query::claims::exists(tx, &item.id)? {
                super::claims::shown(&query::claims::of(tx, &item.id)?, now)
            } else {
                None
            };
            Ok(WorkItemDetail {
                history,
                claim,
                item,
                ancestors,
                descendants,
                descendant_count,
                next_cursor: next.map(|(path, key)| super::page::encode_cursor(&[&path, &key.to_string()])),
                dependencies,
                conflicts,
            })
        })
    }

    /// A page of compact rows, in the order this store recorded them (oldest
    /// first), with the total that match.
    pub fn list_work_items(&self, filter: WorkItemFilter) -> Result<Page<WorkItemRow>> {
        if filter.archived {
            return self.archived_work_items(filter);
        }
        let limit = clamp_limit(filter.limit)?;
        let item_type = filter.item_type.as_deref().map(ItemType::parse).transpose()?;
        let status = filter.status.as_deref().map(parse_status).transpose()?;
        let parent_id = filter
            .parent_id
            .as_deref()
            .map(|p| ids::parse("parent_id", p))
            .transpose()?;
        let text = filter.text.as_deref().filter(|t| !t.trim().is_empty());
        let words = text.map(search_words).transpose()?;
        let after_key = filter.cursor.as_deref().map(decode_key_cursor).transpose()?;
        if words.is_some() {
            self.store.catch_up_search()?;
        }
        let list = query::work_items::ItemList {
            item_type,
            status,
            parent_id: parent_id.as_deref(),
            words: words.as_deref(),
            include_deleted: filter.include_deleted,
            after_key,
            limit,
        };
        self.store.read(|tx| {
            let (rows, total) = query::work_items::list(tx, &list)?;
            Ok(paginate(rows, limit, total, |(_, key)| encode_key_cursor(*key)).map(|(row, _)| row))
        })
    }

    /// Ready work: active, not deleted, nothing it waits for still open;
    /// highest priority, then oldest, first.
    /// Items anyone holds a live claim on are left out (see
    /// [`Tracker::ready_work_for`]).
    pub fn ready_work(&self, query: ReadyQuery) -> Result<Page<WorkItemRow>> {
        Ok(self.ready_work_for("", query)?.page)
    }

    /// Ready work as `agent` sees it: items others hold a live claim on are
    /// left out, and the claims `agent` lost are listed beside.
    pub fn ready_work_for(&self, agent: &str, query: ReadyQuery) -> Result<ReadyWork> {
        let limit = clamp_limit(query.limit)?;
        let item_type = query.item_type.as_deref().map(ItemType::parse).transpose()?;
        let after = query.cursor.as_deref().map(decode_ranked_cursor).transpose()?;
        let now = self.store.now_ms();
        self.store.read(|tx| {
            let (rows, total) = query::work_items::ready(tx, item_type, after, limit, agent, now as i64)?;
            let page = paginate(rows, limit, total, |(row, created)| {
                encode_cursor(&[&row.priority.to_string(), created, &row.id])
            })
            .map(|(row, _)| row);
            let lost_claims = if agent.is_empty() {
                Vec::new()
            } else {
                super::claims::lost_claims(tx, Some(agent), now)?
            };
            Ok(ReadyWork { page, lost_claims })
        })
    }
}

/// The longest search text, in characters.
pub(crate) const MAX_SEARCH_CHARS: usize = 1000;
/// The most distinct words a search may hold.
pub(crate) const MAX_SEARCH_WORDS: usize = 32;

/// The words of a search: every one must appear (as a prefix), with no
/// operator syntax exposed.
///
/// A search costs each of its words a scan of the index entries the word
/// prefixes, so the text is capped (length and words) and repeated words
/// count once: 100 KB of `a a a ...` was 20,000 scans of every `a` term
/// (9 s), now one.
pub(crate) fn search_words(text: &str) -> Result<Vec<&str>> {
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
    Ok(words)
}

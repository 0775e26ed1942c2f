//! The whole store as one canonical JSON document, and back.
//!
//! `export json` prints sorted keys and records sorted by id, and leaves out
//! what is local to one replica (replica id, cursors, the local `version`),
//! so converged replicas print the same bytes. `import json` reads such a
//! document into an empty store, keeping ids, authors and times.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Tracker;
use super::configuration;
use crate::domain::{self, ids};
use crate::error::{Error, Result};
use crate::store::write::{Fields, load_state};
use crate::store::{
    CONFIGURATION, Collection, Connection, DEPENDENCIES, DEPLOYMENT_LINKS, DEPLOYMENTS, ENHANCEMENTS, VENDORS,
    WORK_ITEMS, WriteTx, query,
};
use crate::time::Timestamp;

/// One open sync conflict: a field with concurrent, different values.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConflictView {
    /// `collection/record_id/field`: what `resolve_conflict` takes.
    pub id: String,
    pub collection: String,
    pub record_id: String,
    pub field: String,
    /// `value`: concurrent writes left different values;
    /// `delete_vs_update`: an edit raced a delete (field `deleted_at`);
    /// on a work item's `parent_id`, `cycle`, `depth` or `orphan`: merged
    /// moves made a tree that breaks a rule, and every replica placed the
    /// item the same way; `parent_deleted` (`parent_id`): a live item whose
    /// parent is deleted; `archived_while_open` (`archived_at`): archived,
    /// yet neither completed nor deleted (an archive raced a reopen);
    /// `dependency_cycle` (a dependency's `removed`): the edge lies on a
    /// cycle of dependencies that stores made together.
    pub kind: String,
    /// The value every replica shows (the latest write by hybrid clock).
    pub winner: Value,
    /// Every value still standing, oldest first.
    pub values: Vec<ConflictValue>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConflictValue {
    pub value: Value,
    pub written_by: String,
    pub written_at: String,
    /// The write that left this value (`replica:counter`): a name for it
    /// that a background pull cannot shift, for `resolve_conflict`'s `dot`.
    pub dot: String,
}

/// The name of a write, as [`ConflictValue::dot`] shows it.
fn dot_name(dot: &waymark_sync::Dot) -> String {
    dot.to_string()
}

/// What `list_conflicts` answers: a page of the open conflicts, how many
/// are open, and where the next page starts.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConflictList {
    pub conflicts: Vec<ConflictView>,
    pub total_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What `list_conflicts` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConflictQuery {
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `resolve_conflict` takes: the conflict and the value to keep, named
/// by the value itself or by its write's `dot`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConflictChoice {
    /// collection/record_id/field, from list_conflicts.
    #[schemars(length(max = 300))]
    pub conflict_id: String,
    /// The value to keep, as listed (null restores a deleted record).
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    /// Or the listed dot of the value to keep.
    #[schemars(length(max = 100))]
    pub dot: Option<String>,
}

/// A field that is present, even as null, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The value a resolution keeps.
enum Pick {
    Value(Value),
    Dot(String),
}

/// What an import brought in.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ImportSummary {
    pub work_items: i64,
    pub dependencies: i64,
    pub vendors: i64,
    pub deployments: i64,
    pub enhancements: i64,
    pub configuration: bool,
}

pub(crate) fn list_conflicts(conn: &Connection) -> Result<Vec<ConflictView>> {
    views(conn, query::conflicts::all(conn)?)
}

/// The conflicts of `keys` as they are shown, with every value standing.
fn views(conn: &Connection, keys: Vec<query::conflicts::ConflictKey>) -> Result<Vec<ConflictView>> {
    let mut out = Vec::with_capacity(keys.len());
    for (collection, record_id, field, kind) in keys {
        let Some(c) = Collection::named(&collection) else {
            continue;
        };
        let state = load_state(conn, c, &record_id)?;
        let Some(register) = state.fields.get(&field) else {
            continue;
        };
        let values: Vec<ConflictValue> = register
            .siblings()
            .iter()
            .map(|s| ConflictValue {
                value: s.value.clone(),
                written_by: s.author.clone(),
                written_at: Timestamp::from_millis(s.hlc.millis()).to_string(),
                dot: dot_name(&s.dot),
            })
            .collect();
        let winner = register.winner().map(|s| s.value.clone()).unwrap_or(Value::Null);
        out.push(ConflictView {
            id: format!("{collection}/{record_id}/{field}"),
            collection,
            record_id,
            field,
            kind,
            winner,
            values,
        });
    }
    Ok(out)
}

fn without_version<T: Serialize>(record: T) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("version");
    }
    v
}

/// What `resolve_conflict` wrote.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Resolution {
    pub id: String,
    pub value: Value,
    /// The record's local version after the resolving write.
    pub version: i64,
}

impl Tracker {
    /// Open sync conflicts, in a stable order.
    pub fn list_conflicts(&self) -> Result<Vec<ConflictView>> {
        self.store.read(list_conflicts)
    }

    /// Resolve a value conflict by choosing one of its values: an ordinary
    /// write whose context covers every value, so every replica that receives
    /// it drops the others. An `archived_while_open` conflict is resolved
    /// with null, which un-archives the item (or by completing or deleting
    /// it). Derived conflicts clear when what they report is gone: a
    /// `cycle`, `depth`, `orphan` or `parent_deleted` one by moving the item
    /// with `update_work_item` (or restoring its parent), a
    /// `dependency_cycle` by removing one of its dependencies.
    pub fn resolve_conflict(&self, author: &str, conflict_id: &str, value: Value) -> Result<Resolution> {
        self.resolve(author, conflict_id, Pick::Value(value))
    }

    /// Resolve a conflict by the value or the dot `choice` names (exactly one).
    pub fn resolve_conflict_choice(&self, author: &str, choice: ConflictChoice) -> Result<Resolution> {
        let pick = match (choice.value, choice.dot) {
            (Some(value), None) => Pick::Value(value),
            (None, Some(dot)) => Pick::Dot(dot.trim().to_owned()),
            _ => {
                return Err(Error::invalid(
                    "value",
                    "or dot is required, not both: the value to keep, or its dot as list_conflicts shows",
                ));
            }
        };
        self.resolve(author, &choice.conflict_id, pick)
    }

    /// A page of `query.limit` open conflicts (after `query.cursor`), how
    /// many there are, and the cursor of the next page: each page reads only
    /// its own records, however many conflicts are open.
    pub fn conflicts(&self, q: ConflictQuery) -> Result<ConflictList> {
        let limit = super::clamp_limit(q.limit)?;
        let after = match q.cursor.as_deref() {
            None => None,
            Some(c) => {
                let [collection, record_id, field, kind] = super::page::decode_parts(c)?;
                Some((collection, record_id, field, kind))
            }
        };
        self.store.read(|conn| {
            let mut keys = query::conflicts::page(conn, after.as_ref(), limit + 1)?;
            let more = keys.len() as i64 > limit;
            keys.truncate(limit as usize);
            let next_cursor = more
                .then(|| {
                    keys.last()
                        .map(|(c, r, f, k)| super::page::encode_cursor(&[c, r, f, k]))
                })
                .flatten();
            Ok(ConflictList {
                conflicts: views(conn, keys)?,
                total_count: query::conflicts::count(conn)? as usize,
                next_cursor,
            })
        })
    }

    fn resolve(&self, author: &str, conflict_id: &str, pick: Pick) -> Result<Resolution> {
        let bad_id = || {
            Error::invalid(
                "conflict_id",
                format!("{conflict_id:?} is not collection/record_id/field as list_conflicts shows"),
            )
        };
        let mut parts = conflict_id.trim().splitn(3, '/');
        let (Some(collection), Some(record_id), Some(field)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad_id());
        };
        let collection = Collection::named(collection).ok_or_else(bad_id)?;
        let (record_id, field, id) = (record_id.to_owned(), field.to_owned(), conflict_id.trim().to_owned());
        self.store.write(author, move |tx| {
            let kind = query::conflicts::resolvable_kind(tx.conn(), collection.name, &record_id, &field)?;
            let Some(kind) = kind else {
                return Err(Error::Conflict(format!(
                    "there is no open value conflict {id}; list_conflicts shows the open ones (a cycle, depth, orphan \
                     or parent_deleted conflict is resolved by moving the item with update_work_item, a \
                     dependency_cycle by removing one of its dependencies, an unknown_value by updating the field \
                     to a word this version knows)"
                )));
            };
            let state = load_state(tx.conn(), collection, &record_id)?;
            let register = state.fields.get(&field);
            let siblings = register.map(|r| r.siblings()).unwrap_or_default();
            let value = match pick {
                Pick::Value(value) => value,
                Pick::Dot(dot) => match siblings.iter().find(|s| dot_name(&s.dot) == dot) {
                    Some(s) => s.value.clone(),
                    None => {
                        let dots: Vec<String> = siblings.iter().map(|s| dot_name(&s.dot)).collect();
                        return Err(Error::invalid(
                            "dot",
                            format!("{dot:?} is none of the conflict's values: {}", dots.join(", ")),
                        ));
                    }
                },
            };
            if kind == "archived_while_open" {
                if !value.is_null() {
                    return Err(Error::invalid(
                        "value",
                        "must be null (un-archive the item); to keep it archived, complete it with update_work_item",
                    ));
                }
                let mut fields = Fields::new();
                fields.insert(field.clone(), Value::Null);
                let version = tx.write(collection, &record_id, fields)?;
                return Ok(Resolution { id, value, version });
            }
            let register = register.ok_or_else(|| Error::Corrupt(format!("{id} has no register")))?;
            // A delete raced by an edit: keep it deleted (one of the deletes'
            // times) or restore it (null).
            let restore = kind == "delete_vs_update" && value.is_null();
            if !restore && !register.siblings().iter().any(|s| s.value == value) {
                let mut choices: Vec<String> = register.siblings().iter().map(|s| s.value.to_string()).collect();
                if kind == "delete_vs_update" {
                    choices.push("null (restore the record)".into());
                }
                return Err(Error::invalid(
                    "value",
                    format!("must be one of the conflicting values: {}", choices.join(", ")),
                ));
            }
            let mut fields = Fields::new();
            fields.insert(field.clone(), value.clone());
            let version = tx.write(collection, &record_id, fields)?;
            Ok(Resolution { id, value, version })
        })
    }

    /// The whole store as one canonical JSON value (keys sorted).
    pub fn export_json(&self) -> Result<Value> {
        self.store.read(|tx| {
            let items = query::export::work_items(tx)?;
            let (archived, live): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.archived_at.is_some());
            let deps = query::export::dependencies(tx)?;
            let vendors = query::export::vendors(tx)?;
            let mut deployments = Vec::new();
            for id in query::deployments::ids(tx)? {
                if let Some(d) = query::deployments::load(tx, &id)? {
                    deployments.push(without_version(d));
                }
            }
            let enh = query::export::enhancements(tx)?;
            // A dot names a write on one hub; the document is the same
            // wherever it is exported, so it leaves dots out.
            let mut conflicts = serde_json::to_value(list_conflicts(tx)?).map_err(|e| Error::Corrupt(e.to_string()))?;
            for conflict in conflicts.as_array_mut().into_iter().flatten() {
                for value in conflict["values"].as_array_mut().into_iter().flatten() {
                    value.as_object_mut().map(|v| v.remove("dot"));
                }
            }
            Ok(json!({
                "work_items": live.into_iter().map(without_version).collect::<Vec<_>>(),
                "archived_work_items": archived.into_iter().map(without_version).collect::<Vec<_>>(),
                "dependencies": deps.into_iter().map(without_version).collect::<Vec<_>>(),
                "vendors": vendors.into_iter().map(without_version).collect::<Vec<_>>(),
                "deployments": deployments,
                "enhancements": enh.into_iter().map(without_version).collect::<Vec<_>>(),
                "configuration": without_version(configuration::load(tx)?),
                "conflicts": conflicts,
            }))
        })
    }

    /// Read an exported document into this store, which must be empty.
    /// All or nothing: one bad record refuses the whole document.
    pub fn import_json(&self, author: &str, doc: Value) -> Result<ImportSummary> {
        let Value::Object(doc) = doc else {
            return Err(Error::invalid(
                "document",
                "must be a JSON object as `waymark export json` prints",
            ));
        };
        self.store.write(author, move |tx| {
            let existing = crate::store::record_count(tx.conn())?;
            if existing > 0 {
                return Err(Error::Conflict(format!(
                    "the store already holds {existing} records; import json reads only into an empty store \
                     (use a new --data-dir)"
                )));
            }
            let mut summary = ImportSummary::default();
            let list = |key: &str| -> Result<Vec<Map<String, Value>>> {
                match doc.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_object()
                                .cloned()
                                .ok_or_else(|| Error::invalid(key, "every entry must be an object"))
                        })
                        .collect(),
                    Some(_) => Err(Error::invalid(key, "must be a list")),
                }
            };
            let mut items = list("work_items")?;
            items.extend(list("archived_work_items")?);
            for o in creation_order(items) {
                import_record(tx, &WORK_ITEMS, o, &["path", "depth"])?;
                summary.work_items += 1;
            }
            for o in list("dependencies")? {
                let mut o = o;
                o.insert("removed".into(), false.into());
                import_record(tx, &DEPENDENCIES, o, &[])?;
                summary.dependencies += 1;
            }
            for o in list("vendors")? {
                import_record(tx, &VENDORS, o, &[])?;
                summary.vendors += 1;
            }
            for mut o in list("deployments")? {
                let id = record_id(&o)?;
                let links: Vec<(&str, Value)> = [("vendor", "vendor_ids"), ("work_item", "work_item_ids")]
                    .into_iter()
                    .map(|(kind, key)| (kind, o.remove(key).unwrap_or(Value::Array(vec![]))))
                    .collect();
                let (created_at, created_by) = (o.get("created_at").cloned(), o.get("created_by").cloned());
                let updated_at = o.get("updated_at").cloned();
                import_record(tx, &DEPLOYMENTS, o, &[])?;
                for (kind, targets) in links {
                    for target in targets.as_array().into_iter().flatten() {
                        let target = ids::parse(kind, target.as_str().unwrap_or_default())?;
                        let mut link = Map::new();
                        link.insert("id".into(), ids::deployment_link(&id, kind, &target).into());
                        link.insert("deployment_id".into(), id.clone().into());
                        link.insert("link_type".into(), kind.into());
                        link.insert("target_id".into(), target.into());
                        link.insert("removed".into(), false.into());
                        for (k, v) in [
                            ("created_at", &created_at),
                            ("created_by", &created_by),
                            ("updated_at", &updated_at),
                        ] {
                            if let Some(v) = v {
                                link.insert(k.into(), v.clone());
                            }
                        }
                        import_record(tx, &DEPLOYMENT_LINKS, link, &[])?;
                    }
                }
                summary.deployments += 1;
            }
            for o in list("enhancements")? {
                import_record(tx, &ENHANCEMENTS, o, &[])?;
                summary.enhancements += 1;
            }
            if let Some(Value::Object(c)) = doc.get("configuration")
                && c.contains_key("created_at")
            {
                let mut c = c.clone();
                c.insert("id".into(), ids::configuration().into());
                import_record(tx, &CONFIGURATION, c, &[])?;
                summary.configuration = true;
            }
            Ok(summary)
        })
    }
}

fn record_id(o: &Map<String, Value>) -> Result<String> {
    let id = o
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("id", "a record has no id"))?;
    ids::parse("id", id)
}

/// Write one exported record as a change that carries its own author and
/// time. Values are checked by their rules where the domain has one.
fn import_record(
    tx: &mut WriteTx<'_>,
    collection: &'static Collection,
    mut o: Map<String, Value>,
    derived: &[&str],
) -> Result<()> {
    let id = record_id(&o)?;
    o.remove("id");
    o.remove("version");
    for d in derived {
        o.remove(*d);
    }
    let updated_at = o
        .remove("updated_at")
        .and_then(|v| v.as_str().and_then(Timestamp::parse));
    let updated_by = o.remove("updated_by").and_then(|v| v.as_str().map(str::to_owned));
    check_imported(collection, &o)?;
    let mut fields = Fields::new();
    for (k, v) in o {
        if k == "metadata" {
            let Value::Object(m) = v else {
                return Err(Error::invalid(
                    format!("{}/{id}.metadata", collection.name),
                    "must be an object",
                ));
            };
            for (mk, mv) in m {
                fields.insert(format!("metadata.{mk}"), mv);
            }
        } else {
            fields.insert(k, v);
        }
    }
    if fields.is_empty() {
        return Err(Error::invalid(format!("{}/{id}", collection.name), "has no fields"));
    }
    tx.set_time(updated_at);
    let previous_author = tx.author().to_owned();
    if let Some(a) = updated_by {
        tx.set_author(a);
    }
    let result = tx.write(collection, &id, fields);
    tx.set_time(None);
    tx.set_author(previous_author);
    result.map(|_| ())
}

/// The rules an imported record must keep (the same words and bounds the
/// tools enforce).
fn check_imported(collection: &Collection, o: &Map<String, Value>) -> Result<()> {
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    match collection.name {
        "work_items" => {
            domain::ItemType::parse(s("item_type").unwrap_or_default())?;
            domain::title(s("title").unwrap_or_default())?;
            domain::WorkStatus::parse(s("status").unwrap_or_default())?;
            if let Some(p) = s("parent_id") {
                ids::parse("parent_id", p)?;
            }
        }
        "vendors" => {
            domain::vendor_name(s("name").unwrap_or_default())?;
            domain::VendorStatus::parse(s("status").unwrap_or_default())?;
        }
        "dependencies" => {
            domain::DependencyType::parse(s("dependency_type").unwrap_or_default())?;
        }
        "deployments" => {
            domain::timestamp("deployed_at", s("deployed_at").unwrap_or_default())?;
        }
        "enhancements" => {
            domain::title(s("title").unwrap_or_default())?;
            domain::EnhancementStatus::parse(s("status").unwrap_or_default())?;
        }
        _ => {}
    }
    Ok(())
}

/// Work items in the order they were created (lists page in the order a
/// store recorded its items), each after its parent where the parent is in
/// the same document.
fn creation_order(mut items: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let text = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    items.sort_by_cached_key(|o| (text(o, "created_at"), text(o, "id")));
    let in_document: std::collections::HashSet<String> = items.iter().map(|o| text(o, "id")).collect();
    let mut placed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut waiting: std::collections::HashMap<String, Vec<Map<String, Value>>> = std::collections::HashMap::new();
    let mut ordered = Vec::with_capacity(items.len());
    for item in items {
        let parent = text(&item, "parent_id");
        if !parent.is_empty()
            && in_document.contains(&parent)
            && !placed.contains(&parent)
            && parent != text(&item, "id")
        {
            waiting.entry(parent).or_default().push(item);
            continue;
        }
        let mut ready = vec![item];
        while let Some(item) = ready.pop() {
            let id = text(&item, "id");
            ordered.push(item);
            if let Some(children) = waiting.remove(&id) {
                ready.extend(children.into_iter().rev());
            }
            placed.insert(id);
        }
    }
    // Items whose parents never came in order (a cycle in the document):
    // the tree's own rules place them.
    let mut rest: Vec<Map<String, Value>> = waiting.into_values().flatten().collect();
    rest.sort_by_cached_key(|o| (text(o, "created_at"), text(o, "id")));
    ordered.extend(rest);
    ordered
}

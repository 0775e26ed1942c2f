//! The typed projection of each collection: which fields map to which
//! columns, and how a record's registers become one row.
//!
//! Materializing is a pure function of the record's state (plus, for work
//! items, the parent's derived path), so every replica that holds the same
//! changes holds the same rows, whatever order the changes came in.

use std::sync::OnceLock;

use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Transaction};
use serde_json::{Map, Value};
use waymark_sync::RecordState;

use super::{blockers, derived, id, tree};
use crate::error::Result;
use crate::time::Timestamp;

/// How a field is stored in its column.
#[derive(Clone, Copy, Debug)]
enum Ty {
    /// NOT NULL text.
    Text,
    /// Nullable text.
    OptText,
    /// NOT NULL record id (src/store/id.rs).
    Id,
    /// Nullable record id.
    OptId,
    /// NOT NULL integer.
    Int,
    /// Nullable integer.
    OptInt,
    /// 0 or 1.
    Bool,
    /// JSON text; the default when absent.
    Json(&'static str),
}

#[derive(Debug)]
struct Col {
    name: &'static str,
    ty: Ty,
}

const fn col(name: &'static str, ty: Ty) -> Col {
    Col { name, ty }
}

/// Rows derived beyond the plain field columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Derived {
    None,
    /// `path` and `depth` from the parent chain.
    Tree,
    /// `name_key`: the case-folded name.
    NameKey,
    /// Who holds a claim, by the hub's order (see `claims.rs`).
    Claim,
}

/// The columns a projection writes (`id` first, `version` last) and the
/// statements that read and write its rows. A row, as these statements read
/// it, is the values of `names[1..]` (everything but `id`).
#[derive(Debug)]
struct Statements {
    names: Vec<&'static str>,
    insert: String,
    /// `key, state, row` by id.
    select_by_id: String,
    /// `id, state, row` by key.
    select_by_key: String,
    /// `id, state, row` of every record, by id.
    select_all: String,
    /// Per field code (see [`Collection::field_code`]): the field's name, its
    /// place in a row and how it is stored.
    fields: Vec<(&'static str, usize, Ty)>,
    /// The place of `metadata` in a row.
    metadata_at: Option<usize>,
}

impl Statements {
    /// The row a `select_*` statement read: the columns after its first two.
    fn row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Sql>> {
        (2..self.names.len() + 1).map(|i| r.get::<_, Sql>(i)).collect()
    }
}

/// A record as stored: its key, its row (None before its first change) and
/// its registers.
pub(super) struct Loaded {
    pub key: Option<i64>,
    pub row: Option<Vec<Sql>>,
    pub state: RecordState,
    /// Whether the state holds a conflict (a value or a delete race).
    pub had_conflicts: bool,
}

/// One synced collection: a table of the local store.
#[derive(Debug)]
pub struct Collection {
    /// The collection's name in changes, and its table.
    pub name: &'static str,
    /// The collection's number in the outbox. Stored: never reuse one.
    pub(super) code: i64,
    /// The fields stored in columns of their own. A stored state names a
    /// field by its place in this list (then `created_at`, `created_by`):
    /// append new columns at the end, never reorder.
    columns: &'static [Col],
    /// Whether `metadata.<key>` fields are gathered into a `metadata` column.
    metadata: bool,
    derived: Derived,
    statements: OnceLock<Statements>,
}

/// The conflict kind of a closed-word field holding a word this build does
/// not know.
pub(crate) const UNKNOWN_VALUE: &str = "unknown_value";

/// Fields that are written once, at creation; two replicas creating the
/// same natural key disagree on them without anyone's work being at stake.
pub(super) const QUIET_FIELDS: [&str; 2] = ["created_at", "created_by"];

pub(crate) static WORK_ITEMS: Collection = Collection {
    name: "work_items",
    code: 1,
    columns: &[
        col("item_type", Ty::Text),
        col("title", Ty::Text),
        col("description", Ty::OptText),
        col("status", Ty::Text),
        col("priority", Ty::Int),
        col("parent_id", Ty::OptId),
        col("branch_name", Ty::OptText),
        col("commit_hash", Ty::OptText),
        col("pr_number", Ty::OptInt),
        col("deleted_at", Ty::OptText),
        col("archived_at", Ty::OptText),
    ],
    metadata: true,
    derived: Derived::Tree,
    statements: OnceLock::new(),
};

pub(crate) static DEPENDENCIES: Collection = Collection {
    name: "dependencies",
    code: 2,
    columns: &[
        col("source_id", Ty::Id),
        col("target_id", Ty::Id),
        col("dependency_type", Ty::Text),
        col("removed", Ty::Bool),
    ],
    metadata: false,
    derived: Derived::None,
    statements: OnceLock::new(),
};

pub(crate) static VENDORS: Collection = Collection {
    name: "vendors",
    code: 3,
    columns: &[
        col("name", Ty::Text),
        col("status", Ty::Text),
        col("extractor_version", Ty::Text),
        col("deleted_at", Ty::OptText),
    ],
    metadata: true,
    derived: Derived::NameKey,
    statements: OnceLock::new(),
};

pub(crate) static DEPLOYMENTS: Collection = Collection {
    name: "deployments",
    code: 4,
    columns: &[
        col("deployed_at", Ty::Text),
        col("commit_hash", Ty::Text),
        col("deleted_at", Ty::OptText),
    ],
    metadata: true,
    derived: Derived::None,
    statements: OnceLock::new(),
};

pub(crate) static DEPLOYMENT_LINKS: Collection = Collection {
    name: "deployment_links",
    code: 5,
    columns: &[
        col("deployment_id", Ty::Id),
        col("link_type", Ty::Text),
        col("target_id", Ty::Id),
        col("removed", Ty::Bool),
    ],
    metadata: false,
    derived: Derived::None,
    statements: OnceLock::new(),
};

pub(crate) static ENHANCEMENTS: Collection = Collection {
    name: "enhancements",
    code: 6,
    columns: &[
        col("title", Ty::Text),
        col("description", Ty::OptText),
        col("priority", Ty::Int),
        col("status", Ty::Text),
        col("target_quarter", Ty::OptText),
        col("requires_constitutional_approval", Ty::Bool),
        col("depends_on", Ty::Json("[]")),
        col("deleted_at", Ty::OptText),
    ],
    metadata: false,
    derived: Derived::None,
    statements: OnceLock::new(),
};

pub(crate) static CONFIGURATION: Collection = Collection {
    name: "configuration",
    code: 7,
    columns: &[
        col("active_context_type", Ty::Text),
        col("current_session_id", Ty::OptId),
        col("git_branch", Ty::OptText),
        col("git_head_commit", Ty::OptText),
        col("default_token_budget", Ty::Int),
    ],
    metadata: false,
    derived: Derived::None,
    statements: OnceLock::new(),
};

pub(crate) static CLAIMS: Collection = Collection {
    name: "claims",
    code: 8,
    columns: &[col("claim", Ty::Json("null"))],
    metadata: false,
    derived: Derived::Claim,
    statements: OnceLock::new(),
};

const ALL: [&Collection; 8] = [
    &WORK_ITEMS,
    &DEPENDENCIES,
    &VENDORS,
    &DEPLOYMENTS,
    &DEPLOYMENT_LINKS,
    &ENHANCEMENTS,
    &CONFIGURATION,
    &CLAIMS,
];

impl Collection {
    pub fn named(name: &str) -> Option<&'static Collection> {
        ALL.into_iter().find(|c| c.name == name)
    }

    pub(super) fn by_code(code: i64) -> Option<&'static Collection> {
        ALL.into_iter().find(|c| c.code == code)
    }

    pub(super) fn all() -> [&'static Collection; 8] {
        ALL
    }

    /// Whether concurrent values of its fields are conflicts users see
    /// (a claim's are decided by the hub's order instead).
    pub(super) fn raises_conflicts(&self) -> bool {
        self.derived != Derived::Claim
    }

    /// The projection's columns and statements, built once per process.
    fn statements(&self) -> &Statements {
        self.statements.get_or_init(|| {
            let mut names: Vec<&'static str> = vec!["id"];
            names.extend(self.columns.iter().map(|c| c.name));
            if self.metadata {
                names.push("metadata");
            }
            match self.derived {
                Derived::Tree => names.extend(["path", "depth"]),
                Derived::NameKey => names.push("name_key"),
                Derived::Claim => names.extend(["holder", "expires_at", "tentative", "lost"]),
                Derived::None => {}
            }
            names.extend(["created_at", "created_by", "updated_at", "updated_by", "version"]);
            let row_at = |name: &str| names[1..].iter().position(|n| *n == name);
            let mut fields: Vec<(&'static str, usize, Ty)> = Vec::new();
            for c in self.columns {
                fields.push((c.name, row_at(c.name).unwrap_or_default(), c.ty));
            }
            for name in QUIET_FIELDS {
                fields.push((name, row_at(name).unwrap_or_default(), Ty::Text));
            }
            let metadata_at = if self.metadata { row_at("metadata") } else { None };
            let params: Vec<String> = (1..=names.len() + 1).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO {} ({}, state) VALUES ({})",
                self.name,
                names.join(", "),
                params.join(", "),
            );
            let row = names[1..].join(", ");
            Statements {
                insert,
                select_by_id: format!("SELECT key, state, {row} FROM {} WHERE id = ?1", self.name),
                select_by_key: format!("SELECT id, state, {row} FROM {} WHERE key = ?1", self.name),
                select_all: format!("SELECT id, state, {row} FROM {} ORDER BY id", self.name),
                names,
                fields,
                metadata_at,
            }
        })
    }

    /// The number a stored state names field `name` by, when the field has
    /// a column of its own (or is `created_at`/`created_by`).
    pub(super) fn field_code(&self, name: &str) -> Option<usize> {
        self.statements().fields.iter().position(|(n, _, _)| *n == name)
    }

    /// Whether a register of `name` holding only `value` can be stored
    /// without the value, to be read back from the row: the row shows it,
    /// exactly.
    pub(super) fn row_shows(&self, name: &str, value: &Value) -> bool {
        if let Some(code) = self.field_code(name) {
            let ty = self.statements().fields[code].2;
            return from_sql(&to_sql(Some(value), ty), ty).as_ref() == Some(value);
        }
        self.metadata
            && name.starts_with("metadata.")
            && !value.is_null()
            && (!has_float(value) || serde_json::from_str::<Value>(&value.to_string()).ok().as_ref() == Some(value))
    }

    /// The value field `code` shows in `row`.
    pub(super) fn field_in_row(&self, code: usize, row: &[Sql]) -> Option<(&'static str, Value)> {
        let (name, at, ty) = *self.statements().fields.get(code)?;
        Some((name, from_sql(row.get(at)?, ty)?))
    }

    /// The `metadata` object of `row`.
    pub(super) fn metadata_in_row(&self, row: &[Sql]) -> Option<Map<String, Value>> {
        match row.get(self.statements().metadata_at?)? {
            Sql::Text(t) => serde_json::from_str(t).ok(),
            _ => None,
        }
    }

    fn decode(&self, conn: &rusqlite::Connection, id: &str, state: &Sql, row: &[Sql]) -> Result<RecordState> {
        super::codec::decode(conn, self, state, row)
            .map_err(|e| crate::error::Error::Corrupt(format!("record {}/{id}: {e}", self.name)))
    }

    /// Record `id` as stored.
    pub(super) fn load(&self, conn: &rusqlite::Connection, id: &str) -> Result<Loaded> {
        let st = self.statements();
        let found: Option<(i64, Sql, Vec<Sql>)> = conn
            .prepare_cached(&st.select_by_id)?
            .query_row([id::sql(id)], |r| {
                let row = st.row(r)?;
                Ok((r.get(0)?, r.get(1)?, row))
            })
            .optional()?;
        match found {
            None => Ok(Loaded {
                key: None,
                row: None,
                state: RecordState::default(),
                had_conflicts: false,
            }),
            Some((key, state, row)) => {
                let state = self.decode(conn, id, &state, &row)?;
                Ok(Loaded {
                    key: Some(key),
                    had_conflicts: state.conflicts().next().is_some()
                        || state.delete_conflict()
                        || self.unknown_words(&state).next().is_some(),
                    state,
                    row: Some(row),
                })
            }
        }
    }

    /// The id and registers of the record stored under `key`.
    pub(super) fn load_by_key(&self, conn: &rusqlite::Connection, key: i64) -> Result<Option<(String, RecordState)>> {
        let st = self.statements();
        let found: Option<(String, Sql, Vec<Sql>)> = conn
            .prepare_cached(&st.select_by_key)?
            .query_row([key], |r| {
                let row = st.row(r)?;
                Ok((id::get_id(r, 0)?, r.get(1)?, row))
            })
            .optional()?;
        found
            .map(|(id, state, row)| {
                let state = self.decode(conn, &id, &state, &row)?;
                Ok((id, state))
            })
            .transpose()
    }

    /// Every record of the collection, by id.
    pub(super) fn all_states(&self, conn: &rusqlite::Connection) -> Result<Vec<(String, RecordState)>> {
        let st = self.statements();
        let mut stmt = conn.prepare(&st.select_all)?;
        let rows = stmt
            .query_map([], |r| {
                let row: Vec<Sql> = st.row(r)?;
                Ok((id::get_id(r, 0)?, r.get::<_, Sql>(1)?, row))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, state, row)| {
                let state = self.decode(conn, &id, &state, &row)?;
                Ok((id, state))
            })
            .collect()
    }

    /// Rewrite the row of record `id` from its new `state`, stored as
    /// `encoded`; `old` is the record as it was before the change (when
    /// neither it nor the new state holds a conflict, the conflicts table is
    /// left alone). Returns its new local version and its key: the old one
    /// when `keep_version` (the change wrote what the record already showed:
    /// a publication of the store's state).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn materialize(
        &self,
        tx: &Transaction<'_>,
        id: &str,
        old: &Loaded,
        state: &RecordState,
        encoded: Vec<u8>,
        orphans: &mut Option<bool>,
        keep_version: bool,
    ) -> Result<(i64, i64)> {
        let had_conflicts = old.had_conflicts;
        // Only the columns that change are written back: an update then
        // leaves untouched indexes, and the full-text row, alone.
        let statements = self.statements();
        let names = &statements.names;
        let is_new = old.row.is_none();
        let old_at = |name: &str| -> Option<&Sql> {
            let i = names.iter().position(|n| *n == name)?;
            old.row.as_ref().map(|o| &o[i - 1])
        };
        let old_version = match old_at("version") {
            Some(Sql::Integer(v)) => *v,
            _ => 0,
        };
        let old_place = match (old_at("path"), old_at("depth")) {
            (Some(Sql::Text(p)), Some(Sql::Integer(d))) => Some((p.clone(), *d)),
            _ => None,
        };
        let was_open = (self.derived == Derived::Tree && !is_new).then(|| {
            !matches!(old_at("status"), Some(Sql::Text(s)) if s == "completed")
                && matches!(old_at("deleted_at"), Some(Sql::Null) | None)
        });
        let version = if keep_version && !is_new {
            old_version
        } else {
            old_version + 1
        };

        let mut params: Vec<Sql> = Vec::with_capacity(self.columns.len() + 11);
        params.push(id::value(id));
        for c in self.columns {
            params.push(to_sql(state.value(c.name), c.ty));
        }
        if self.metadata {
            params.push(Sql::Text(metadata_of(state).to_string()));
        }
        let mut new_place = None;
        // A moved work item: its link before the move (its place is derived
        // once the row holds the new link).
        let mut moved_from: Option<Option<String>> = None;
        let parent = state
            .value("parent_id")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        match self.derived {
            Derived::Tree => match &old_place {
                Some((path, depth)) => {
                    let old_parent = old_at("parent_id")
                        .and_then(|v| from_sql(v, Ty::OptId))
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .filter(|p| !p.is_empty());
                    if old_parent.as_deref() != parent {
                        moved_from = Some(old_parent);
                    }
                    params.push(Sql::Text(path.clone()));
                    params.push(Sql::Integer(*depth));
                }
                None => {
                    let place = tree::place(tx, id, parent)?;
                    params.push(Sql::Text(place.path.clone()));
                    params.push(Sql::Integer(place.depth));
                    new_place = Some(place);
                }
            },
            Derived::NameKey => {
                let name = state.value("name").and_then(Value::as_str).unwrap_or_default();
                params.push(Sql::Text(crate::domain::vendor_key(name)));
            }
            Derived::Claim => params.extend(super::claims::derived_columns(tx, state)),
            Derived::None => {}
        }
        let first = state.first_write();
        let last = state.last_write();
        let time_of = |s: Option<&waymark_sync::Sibling>| {
            s.map(|s| Timestamp::from_millis(s.hlc.millis()).to_string())
                .unwrap_or_default()
        };
        let created_at = match state.value("created_at").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => time_of(first),
        };
        let created_by = match state.value("created_by").and_then(Value::as_str) {
            Some(a) => a.to_owned(),
            None => first.map(|s| s.author.clone()).unwrap_or_default(),
        };
        // A record's update time never reads earlier than its creation time
        // (imports may carry a creation time ahead of the clock reading).
        let updated_at = time_of(last).max(created_at.clone());
        params.push(Sql::Text(created_at));
        params.push(Sql::Text(created_by));
        params.push(Sql::Text(updated_at));
        params.push(Sql::Text(last.map(|s| s.author.clone()).unwrap_or_default()));
        params.push(Sql::Integer(version));
        let key = match (&old.row, old.key) {
            (Some(row), Some(key)) => {
                let changed: Vec<usize> = (1..names.len()).filter(|i| params[*i] != row[i - 1]).collect();
                let mut sets: Vec<String> = changed
                    .iter()
                    .enumerate()
                    .map(|(k, i)| format!("{} = ?{}", names[*i], k + 2))
                    .collect();
                sets.push(format!("state = ?{}", changed.len() + 2));
                let sql = format!("UPDATE {} SET {} WHERE key = ?1", self.name, sets.join(", "));
                let mut values: Vec<Sql> = vec![Sql::Integer(key)];
                values.extend(changed.iter().map(|i| params[*i].clone()));
                values.push(Sql::Blob(encoded));
                tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
                key
            }
            _ => {
                params.push(Sql::Blob(encoded));
                tx.prepare_cached(&statements.insert)?
                    .execute(rusqlite::params_from_iter(&params))?;
                tx.last_insert_rowid()
            }
        };

        if self.derived == Derived::Tree {
            update_search(tx, key, names, &params, old.row.as_deref())?;
        }
        if self.derived == Derived::Tree {
            self.derive_item(tx, id, key, old, state, parent, new_place, moved_from, orphans)?;
        }
        if self.derived == Derived::Tree {
            let is_open = state.value("status").and_then(Value::as_str) != Some("completed")
                && state.value("deleted_at").is_none_or(Value::is_null);
            // A new item with no dependency rows yet (the common case) has
            // nothing to count and nobody waiting for it.
            let has_edges = was_open.is_some() || blockers::has_edges(tx, id)?;
            if has_edges {
                if was_open.is_none() {
                    blockers::recount(tx, id)?;
                }
                if was_open != Some(is_open) {
                    blockers::recount_waiters_of(tx, id)?;
                }
            }
        } else if self.name == "dependencies" {
            blockers::recount_edge(tx, id)?;
            let was_live = matches!(old_at("removed"), Some(Sql::Integer(0)));
            let is_live = !state.value("removed").and_then(Value::as_bool).unwrap_or(false);
            // An edge whose ends arrive after a change that wrote only
            // `removed` (another arrival order) changes its ends while live.
            let ends_changed = ["source_id", "target_id", "dependency_type"]
                .iter()
                .any(|n| old_at(n).is_some_and(|o| names.iter().position(|c| c == n).map(|i| &params[i]) != Some(o)));
            match (was_live, is_live) {
                (false, true) => derived::edge_became_live(tx, id)?,
                (true, false) => derived::edge_died(tx, id)?,
                (true, true) if ends_changed => {
                    derived::edge_died(tx, id)?;
                    derived::edge_became_live(tx, id)?;
                }
                _ => {}
            }
        }
        // Concurrent claims are no conflict: the hub's order decides them.
        if self.derived != Derived::Claim
            && (had_conflicts
                || state.conflicts().next().is_some()
                || state.delete_conflict()
                || self.unknown_words(state).next().is_some())
        {
            self.refresh_conflicts(tx, id, state)?;
        }
        Ok((version, key))
    }

    /// Derive what a work item's write changes beyond its own row: its
    /// place in the tree (`new_place`, already stored, for a new item;
    /// `moved_from`, its link before, for a moved one) and the places below
    /// it, and the `parent_deleted` and `archived_while_open` conflicts.
    #[allow(clippy::too_many_arguments)]
    fn derive_item(
        &self,
        tx: &Transaction<'_>,
        id: &str,
        key: i64,
        old: &Loaded,
        state: &RecordState,
        parent: Option<&str>,
        new_place: Option<tree::Place>,
        moved_from: Option<Option<String>>,
        orphans: &mut Option<bool>,
    ) -> Result<()> {
        let names = &self.statements().names;
        let old_at = |name: &str| -> Option<&Sql> {
            let i = names.iter().position(|n| *n == name)?;
            old.row.as_ref().map(|o| &o[i - 1])
        };
        let text = |name: &str| state.value(name).filter(|v| !v.is_null());
        let is_deleted = text("deleted_at").is_some();
        let was_deleted = matches!(old_at("deleted_at"), Some(Sql::Text(_)));
        let is_new = old.row.is_none();
        let moved = moved_from.is_some();
        let mut issue = None;
        let mut parent_deleted = None;
        if let Some(place) = new_place {
            // A new item without an issue has no derived conflict to clear.
            if place.issue.is_some() {
                tree::set_issue(tx, id, place.issue)?;
            }
            issue = place.issue;
            parent_deleted = Some(place.parent_deleted);
            // A new item can have children here only if they came first, as
            // orphans; then its own link may close a cycle through them.
            if tree::orphans_exist(tx, orphans)? && tree::has_children(tx, id)? {
                issue = tree::relink(tx, id, key, None, parent)?;
            }
        } else if let Some(old_parent) = moved_from {
            issue = tree::relink(tx, id, key, old_parent.as_deref(), parent)?;
        }
        if issue == Some(tree::TreeIssue::Orphan) {
            *orphans = Some(true);
        }
        // parent_deleted: on this item when its link or its own deletion
        // changed, and on its children when its deletion changed.
        if is_new || moved || was_deleted != is_deleted {
            let on = !is_deleted
                && match (parent_deleted, parent) {
                    (Some(known), _) => known,
                    (None, Some(p)) => derived::is_deleted(tx, p)?,
                    (None, None) => false,
                };
            // A new item has no conflict to clear.
            if on || !is_new {
                derived::set(tx, self.name, id, "parent_id", derived::PARENT_DELETED, on)?;
            }
        }
        if was_deleted != is_deleted {
            derived::parent_deletion_changed(tx, id, is_deleted)?;
        }
        // archived_while_open: a function of this record alone.
        let completed = |s: Option<&str>| s == Some("completed");
        let was = old.row.is_some()
            && derived::archived_while_open(
                matches!(old_at("archived_at"), Some(Sql::Text(_))),
                completed(match old_at("status") {
                    Some(Sql::Text(s)) => Some(s.as_str()),
                    _ => None,
                }),
                was_deleted,
            );
        let now = derived::archived_while_open(
            text("archived_at").is_some(),
            completed(state.value("status").and_then(Value::as_str)),
            is_deleted,
        );
        if was != now {
            derived::set(tx, self.name, id, "archived_at", derived::ARCHIVED_WHILE_OPEN, now)?;
        }
        Ok(())
    }

    fn refresh_conflicts(&self, tx: &Transaction<'_>, id: &str, state: &RecordState) -> Result<()> {
        tx.prepare_cached(
            "DELETE FROM conflicts WHERE collection = ?1 AND record_id = ?2 AND kind IN ('value', 'delete_vs_update', 'unknown_value')",
        )?
        .execute([self.name, id])?;
        let mut insert =
            tx.prepare_cached("INSERT INTO conflicts (collection, record_id, field, kind) VALUES (?1, ?2, ?3, ?4)")?;
        // Two concurrent deletes (or archivings) agree on what matters; their
        // different times are no conflict.
        let agreeing_marks = |f: &str, r: &waymark_sync::Register| {
            matches!(f, "deleted_at" | "archived_at") && r.siblings().iter().all(|s| !s.value.is_null())
        };
        for (field, _) in state
            .conflicts()
            .filter(|(f, r)| !QUIET_FIELDS.contains(f) && !agreeing_marks(f, r))
        {
            insert.execute([self.name, id, field, "value"])?;
        }
        if state.delete_conflict() {
            insert.execute([self.name, id, waymark_sync::merge::DELETE_FIELD, "delete_vs_update"])?;
        }
        for field in self.unknown_words(state) {
            insert.execute([self.name, id, field, UNKNOWN_VALUE])?;
        }
        Ok(())
    }

    /// The fields of a closed word set whose value (as merged) is no word
    /// this build knows: a newer version's word, or a peer's bad write.
    /// Kept as written, and listed as an `unknown_value` conflict until an
    /// update writes a known word.
    fn unknown_words<'s>(&self, state: &'s RecordState) -> impl Iterator<Item = &'static str> + 's {
        use crate::domain::{ContextType, DependencyType, EnhancementStatus, ItemType, VendorStatus, WorkStatus};
        type Check = fn(&str) -> bool;
        let checks: &'static [(&'static str, Check)] = match self.name {
            "work_items" => &[
                ("item_type", |w| ItemType::parse(w).is_ok()),
                ("status", |w| WorkStatus::parse(w).is_ok()),
            ],
            "dependencies" => &[("dependency_type", |w| DependencyType::parse(w).is_ok())],
            "vendors" => &[("status", |w| VendorStatus::parse(w).is_ok())],
            "enhancements" => &[("status", |w| EnhancementStatus::parse(w).is_ok())],
            "configuration" => &[("active_context_type", |w| ContextType::parse(w).is_ok())],
            _ => &[],
        };
        checks
            .iter()
            .filter_map(move |(field, known)| match state.value(field) {
                None | Some(Value::Null) => None,
                Some(Value::String(w)) if known(w) => None,
                Some(_) => Some(*field),
            })
    }
}

/// Note a work item whose title or description a row just written changed
/// (`params`, in the order of `names`; `old`, the row before, if any), for
/// the full-text index to catch up with (see `search.rs`).
fn update_search(tx: &Transaction<'_>, key: i64, names: &[&str], params: &[Sql], old: Option<&[Sql]>) -> Result<()> {
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap_or_default();
    let (title, description) = (at("title"), at("description"));
    let indexed = match old {
        Some(old) if old[title - 1] == params[title] && old[description - 1] == params[description] => return Ok(()),
        Some(old) => Some((&old[title - 1], &old[description - 1])),
        None => None,
    };
    super::search::note(tx, key, indexed)
}

/// The `metadata.<key>` fields of a record, gathered into one object
/// (a key whose value is null has been removed).
fn metadata_of(state: &RecordState) -> Value {
    let mut map = Map::new();
    for (name, register) in state.fields.range("metadata.".to_owned()..) {
        let Some(key) = name.strip_prefix("metadata.") else {
            break;
        };
        if let Some(winner) = register.winner()
            && !winner.value.is_null()
        {
            map.insert(key.to_owned(), winner.value.clone());
        }
    }
    Value::Object(map)
}

/// The value a column shows, as the field's JSON value.
fn from_sql(sql: &Sql, ty: Ty) -> Option<Value> {
    match (ty, sql) {
        (Ty::Text | Ty::OptText, Sql::Text(s)) => Some(Value::String(s.clone())),
        (Ty::Id | Ty::OptId, Sql::Text(_) | Sql::Blob(_)) => id::text(sql.into()).map(Value::String),
        (Ty::Int | Ty::OptInt, Sql::Integer(i)) => Some(Value::from(*i)),
        (Ty::Bool, Sql::Integer(i)) => Some(Value::Bool(*i != 0)),
        (Ty::Json(_), Sql::Text(s)) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// Whether a JSON value holds a floating-point number (the one kind whose
/// text round trip is worth checking).
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

fn to_sql(value: Option<&Value>, ty: Ty) -> Sql {
    let value = value.filter(|v| !v.is_null());
    match (ty, value) {
        (Ty::Text | Ty::OptText, Some(Value::String(s))) => Sql::Text(s.clone()),
        (Ty::Text | Ty::OptText, Some(other)) => Sql::Text(other.to_string()),
        (Ty::Text, None) => Sql::Text(String::new()),
        (Ty::Id | Ty::OptId, Some(Value::String(s))) => id::value(s),
        (Ty::Id | Ty::OptId, Some(other)) => Sql::Text(other.to_string()),
        (Ty::Id, None) => Sql::Text(String::new()),
        (Ty::Int | Ty::OptInt, Some(v)) if v.as_i64().is_some() => Sql::Integer(v.as_i64().unwrap_or(0)),
        (Ty::Int, _) => Sql::Integer(0),
        (Ty::Bool, Some(Value::Bool(b))) => Sql::Integer(i64::from(*b)),
        (Ty::Bool, _) => Sql::Integer(0),
        (Ty::Json(_), Some(v)) => Sql::Text(v.to_string()),
        (Ty::Json(default), None) => Sql::Text(default.to_owned()),
        (Ty::OptText | Ty::OptId | Ty::OptInt, _) => Sql::Null,
    }
}

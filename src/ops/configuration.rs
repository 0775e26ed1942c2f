//! The project configuration: one record, plus the health of this replica's
//! sync (local, never synced).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tracker;
use super::work_items;
use crate::domain::{self, ContextType, ItemType, ids};
use crate::error::{Error, Kind, Result};
use crate::store::write::Fields;
use crate::store::{CONFIGURATION, Connection, query};

/// The default token budget of a session.
pub(crate) const DEFAULT_TOKEN_BUDGET: i64 = 200_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Configuration {
    pub id: String,
    pub active_context_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_head_commit: Option<String>,
    pub default_token_budget: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// 0 until the configuration is first written.
    #[serde(default)]
    pub version: i64,
}

/// The health of this replica's sync with the hub.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SyncHealth {
    /// Whether a hub is configured for this store.
    pub hub_configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the last attempt reached the hub; absent before any attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_reachable: Option<bool>,
    /// Local changes the hub has not acknowledged yet (for a store bound to
    /// a hub that has not published its state yet, one per record: what its
    /// publication will send, or more where a record holds a conflict).
    pub pending_changes: i64,
    pub open_conflicts: i64,
    /// A peer whose clock runs far ahead of this machine's: who, and by how
    /// much (its changes still merge; this store's clock does not follow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_warning: Option<String>,
}

/// The configuration with this replica's sync health: what
/// `get_project_configuration` and `update_project_configuration` answer.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConfigurationView {
    #[serde(flatten)]
    pub configuration: Configuration,
    pub sync: SyncHealth,
}

/// What `update_project_configuration` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationUpdate {
    // If given, refuse unless still this version.
    pub version: Option<i64>,
    #[schemars(extend("enum" = ["feature", "maintenance", "research"]))]
    pub active_context_type: Option<String>,
    pub current_session_id: Option<String>,
    #[schemars(length(max = 100))]
    pub git_branch: Option<String>,
    pub git_head_commit: Option<String>,
    #[schemars(range(min = 1000, max = 1000000))]
    pub default_token_budget: Option<i64>,
}

pub(crate) fn load(conn: &Connection) -> Result<Configuration> {
    Ok(query::configuration::load(conn)?.unwrap_or_else(|| Configuration {
        id: ids::configuration(),
        active_context_type: ContextType::Feature.as_str().into(),
        current_session_id: None,
        git_branch: None,
        git_head_commit: None,
        default_token_budget: DEFAULT_TOKEN_BUDGET,
        created_at: None,
        created_by: None,
        updated_at: None,
        updated_by: None,
        version: 0,
    }))
}

/// Keys of this replica's local state that the sync worker maintains.
pub mod health_keys {
    pub(crate) const HUB_URL_SET: &str = "sync.hub_configured";
    pub(crate) const LAST_SYNC_AT: &str = "sync.last_success_at";
    pub(crate) const LAST_ERROR: &str = "sync.last_error";
    pub(crate) const HUB_REACHABLE: &str = "sync.hub_reachable";
    /// Set by the store when a pulled change's clock reads further ahead of
    /// this machine's than [`crate::store::write::MAX_CLOCK_DRIFT_MS`].
    pub(crate) const CLOCK_AHEAD: &str = "sync.clock_ahead";
}

pub(crate) fn sync_health(conn: &Connection) -> Result<SyncHealth> {
    let get = |key: &str| query::configuration::local_state(conn, key);
    let pending_changes = crate::store::replica::waiting_changes(conn)?;
    let open_conflicts = query::configuration::open_conflicts(conn)?;
    Ok(SyncHealth {
        hub_configured: get(health_keys::HUB_URL_SET)?.as_deref() == Some("true"),
        last_sync_at: get(health_keys::LAST_SYNC_AT)?,
        last_error: get(health_keys::LAST_ERROR)?,
        hub_reachable: get(health_keys::HUB_REACHABLE)?.map(|v| v == "true"),
        pending_changes,
        open_conflicts,
        clock_warning: get(health_keys::CLOCK_AHEAD)?,
    })
}

impl Tracker {
    /// The configuration (defaults until first written) and sync health.
    pub fn get_project_configuration(&self) -> Result<(Configuration, SyncHealth)> {
        self.store.read(|tx| Ok((load(tx)?, sync_health(tx)?)))
    }

    /// The configuration and sync health, as one answer.
    pub fn configuration_view(&self) -> Result<ConfigurationView> {
        let (configuration, sync) = self.get_project_configuration()?;
        Ok(ConfigurationView { configuration, sync })
    }

    /// Update the configuration and answer it with the sync health.
    pub fn configure(&self, author: &str, input: ConfigurationUpdate) -> Result<ConfigurationView> {
        self.update_project_configuration(author, input)?;
        self.configuration_view()
    }

    pub fn update_project_configuration(&self, author: &str, input: ConfigurationUpdate) -> Result<Configuration> {
        self.store.write(author, move |tx| {
            let current = load(tx.conn())?;
            if let Some(v) = input.version
                && v != current.version
            {
                return Err(Error::StaleVersion {
                    kind: Kind::Configuration,
                    id: "the project configuration".into(),
                    expected: v,
                    current: current.version,
                    updated_by: current.updated_by.unwrap_or_else(|| "nobody".into()),
                });
            }
            let mut fields = Fields::new();
            if let Some(t) = &input.active_context_type {
                let t = ContextType::parse(t)?;
                if t.as_str() != current.active_context_type || current.version == 0 {
                    fields.insert("active_context_type".into(), t.as_str().into());
                }
            }
            if let Some(s) = &input.current_session_id {
                let s = if s.trim().is_empty() {
                    None
                } else {
                    let id = ids::parse("current_session_id", s)?;
                    let item = work_items::require(tx.conn(), &id)?;
                    if item.item_type != ItemType::Session.as_str() {
                        return Err(Error::invalid(
                            "current_session_id",
                            format!("work item {id} is a {}, not a session", item.item_type),
                        ));
                    }
                    Some(id)
                };
                if s != current.current_session_id {
                    fields.insert("current_session_id".into(), s.into());
                }
            }
            if let Some(b) = &input.git_branch {
                let b = domain::optional_text("git_branch", b, 100)?;
                if b != current.git_branch {
                    fields.insert("git_branch".into(), b.into());
                }
            }
            if let Some(c) = &input.git_head_commit {
                let c = if c.trim().is_empty() {
                    None
                } else {
                    Some(domain::commit_hash("git_head_commit", c, false)?)
                };
                if c != current.git_head_commit {
                    fields.insert("git_head_commit".into(), c.into());
                }
            }
            if let Some(b) = input.default_token_budget {
                let b = domain::token_budget("default_token_budget", b)?;
                if b != current.default_token_budget || current.version == 0 {
                    fields.insert("default_token_budget".into(), b.into());
                }
            }
            if fields.is_empty() {
                return Ok(current);
            }
            if current.version == 0 {
                fields
                    .entry("active_context_type".into())
                    .or_insert(current.active_context_type.into());
                fields
                    .entry("default_token_budget".into())
                    .or_insert(current.default_token_budget.into());
                fields.insert("created_at".into(), tx.now().to_string().into());
                fields.insert("created_by".into(), tx.author().into());
            }
            tx.write(&CONFIGURATION, &ids::configuration(), fields)?;
            load(tx.conn())
        })
    }
}

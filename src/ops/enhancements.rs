//! Future enhancements: planned work above the level of work items,
//! filterable by priority, status and quarter.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Tracker;
use super::page::{Page, clamp_limit, decode_ranked_cursor, encode_cursor, paginate};
use crate::domain::{self, EnhancementStatus, ids};
use crate::error::{Error, Kind, Result};
use crate::store::query::enhancements::EnhancementList;
use crate::store::write::Fields;
use crate::store::{Connection, ENHANCEMENTS, WriteTx, query};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Enhancement {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub priority: i64,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_quarter: Option<String>,
    pub requires_constitutional_approval: bool,
    pub depends_on: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(default)]
    pub version: i64,
}

impl super::page::Row for Enhancement {
    const COLUMNS: &'static [&'static str] = &["id", "title", "priority", "status", "target_quarter", "version"];
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct NewEnhancement {
    pub title: String,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub status: Option<String>,
    pub target_quarter: Option<String>,
    pub requires_constitutional_approval: Option<bool>,
    pub depends_on: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EnhancementUpdate {
    pub id: String,
    pub version: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub status: Option<String>,
    pub target_quarter: Option<String>,
    pub requires_constitutional_approval: Option<bool>,
    pub depends_on: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EnhancementFilter {
    pub priority: Option<i64>,
    pub status: Option<String>,
    pub target_quarter: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `manage_enhancement` takes: one action and its fields.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnhancementRequest {
    #[schemars(extend("enum" = ["create", "update", "get", "list"]))]
    pub action: String,
    // For update and get; version for update (the tool's description says so).
    pub id: Option<String>,
    pub version: Option<i64>,
    #[schemars(length(max = 200))]
    pub title: Option<String>,
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// 1 highest; default 3.
    #[schemars(range(min = 1, max = 5))]
    pub priority: Option<i64>,
    #[schemars(extend("enum" = ["planned", "approved", "implementing", "completed"]))]
    pub status: Option<String>,
    /// YYYY-Q1..4.
    #[schemars(length(max = 16))]
    pub target_quarter: Option<String>,
    pub requires_constitutional_approval: Option<bool>,
    /// Enhancement ids.
    #[schemars(length(max = 100))]
    pub depends_on: Option<Vec<String>>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `manage_enhancement` was asked to do.
pub enum EnhancementAction {
    Create(NewEnhancement),
    Update(EnhancementUpdate),
    Get(String),
    List(EnhancementFilter),
}

impl EnhancementRequest {
    pub(crate) fn into_action(self) -> Result<EnhancementAction> {
        let id = |id: Option<String>, action: &str| {
            id.ok_or_else(|| Error::invalid("id", format!("is required to {action} an enhancement")))
        };
        Ok(match self.action.trim().to_ascii_lowercase().as_str() {
            "create" => EnhancementAction::Create(NewEnhancement {
                title: self
                    .title
                    .ok_or_else(|| Error::invalid("title", "is required to create an enhancement"))?,
                description: self.description,
                priority: self.priority,
                status: self.status,
                target_quarter: self.target_quarter,
                requires_constitutional_approval: self.requires_constitutional_approval,
                depends_on: self.depends_on,
            }),
            "update" => EnhancementAction::Update(EnhancementUpdate {
                id: id(self.id, "update")?,
                version: self.version.ok_or_else(|| {
                    Error::invalid(
                        "version",
                        "is required to update an enhancement; get it with action get",
                    )
                })?,
                title: self.title,
                description: self.description,
                priority: self.priority,
                status: self.status,
                target_quarter: self.target_quarter,
                requires_constitutional_approval: self.requires_constitutional_approval,
                depends_on: self.depends_on,
            }),
            "get" => EnhancementAction::Get(id(self.id, "get")?),
            "list" => EnhancementAction::List(EnhancementFilter {
                priority: self.priority,
                status: self.status,
                target_quarter: self.target_quarter,
                limit: self.limit,
                cursor: self.cursor,
            }),
            _ => {
                return Err(Error::invalid(
                    "action",
                    format!("{:?} is not one of create, update, get, list", self.action),
                ));
            }
        })
    }
}

fn load(conn: &Connection, id: &str) -> Result<Option<Enhancement>> {
    query::enhancements::live(conn, id)
}

fn require(conn: &Connection, id: &str) -> Result<Enhancement> {
    load(conn, id)?.ok_or_else(|| Error::not_found(Kind::Enhancement, id))
}

fn check_depends_on(conn: &Connection, own: &str, list: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for d in list {
        let d = ids::parse("depends_on", d)?;
        if d == own {
            return Err(Error::invalid("depends_on", "an enhancement cannot depend on itself"));
        }
        require(conn, &d)?;
        if out.contains(&d) {
            return Err(Error::invalid("depends_on", format!("enhancement {d} is listed twice")));
        }
        out.push(d);
    }
    Ok(out)
}

pub(crate) fn create_in(tx: &mut WriteTx<'_>, id: &str, input: NewEnhancement) -> Result<Enhancement> {
    let mut fields = Fields::new();
    fields.insert("title".into(), domain::title(&input.title)?.into());
    if let Some(d) = input
        .description
        .as_deref()
        .map(domain::description)
        .transpose()?
        .flatten()
    {
        fields.insert("description".into(), d.into());
    }
    fields.insert(
        "priority".into(),
        domain::enhancement_priority(input.priority.unwrap_or(3))?.into(),
    );
    let status = input.status.as_deref().map(EnhancementStatus::parse).transpose()?;
    fields.insert(
        "status".into(),
        status.unwrap_or(EnhancementStatus::Planned).as_str().into(),
    );
    if let Some(q) = input.target_quarter.as_deref().filter(|q| !q.trim().is_empty()) {
        fields.insert("target_quarter".into(), domain::quarter("target_quarter", q)?.into());
    }
    fields.insert(
        "requires_constitutional_approval".into(),
        input.requires_constitutional_approval.unwrap_or(false).into(),
    );
    let deps = check_depends_on(tx.conn(), id, &input.depends_on.unwrap_or_default())?;
    fields.insert("depends_on".into(), deps.into());
    fields.insert("created_at".into(), tx.now().to_string().into());
    fields.insert("created_by".into(), tx.author().into());
    tx.write(&ENHANCEMENTS, id, fields)?;
    require(tx.conn(), id)
}

impl Tracker {
    pub fn create_enhancement(&self, author: &str, input: NewEnhancement) -> Result<Enhancement> {
        self.store.write(author, move |tx| create_in(tx, &ids::new_id(), input))
    }

    pub fn get_enhancement(&self, id: &str) -> Result<Enhancement> {
        let id = ids::parse("id", id)?;
        self.store.read(|tx| require(tx, &id))
    }

    pub fn update_enhancement(&self, author: &str, input: EnhancementUpdate) -> Result<Enhancement> {
        self.store.write(author, move |tx| {
            let id = ids::parse("id", &input.id)?;
            let e = require(tx.conn(), &id)?;
            if e.version != input.version {
                return Err(Error::StaleVersion {
                    kind: Kind::Enhancement,
                    id,
                    expected: input.version,
                    current: e.version,
                    updated_by: e.updated_by,
                });
            }
            let mut fields = Fields::new();
            let mut set = |name: &str, new: Value, old: Value| {
                if new != old {
                    fields.insert(name.to_owned(), new);
                }
            };
            if let Some(t) = &input.title {
                set("title", domain::title(t)?.into(), e.title.clone().into());
            }
            if let Some(d) = &input.description {
                set(
                    "description",
                    domain::description(d)?.into(),
                    e.description.clone().into(),
                );
            }
            if let Some(p) = input.priority {
                set("priority", domain::enhancement_priority(p)?.into(), e.priority.into());
            }
            if let Some(s) = &input.status {
                set(
                    "status",
                    EnhancementStatus::parse(s)?.as_str().into(),
                    e.status.clone().into(),
                );
            }
            if let Some(q) = &input.target_quarter {
                let q = if q.trim().is_empty() {
                    None
                } else {
                    Some(domain::quarter("target_quarter", q)?)
                };
                set("target_quarter", q.into(), e.target_quarter.clone().into());
            }
            if let Some(b) = input.requires_constitutional_approval {
                set(
                    "requires_constitutional_approval",
                    b.into(),
                    e.requires_constitutional_approval.into(),
                );
            }
            if let Some(d) = &input.depends_on {
                let d = check_depends_on(tx.conn(), &id, d)?;
                set("depends_on", d.into(), e.depends_on.clone().into());
            }
            if fields.is_empty() {
                return Ok(e);
            }
            tx.write(&ENHANCEMENTS, &id, fields)?;
            require(tx.conn(), &id)
        })
    }

    /// Enhancements by priority (1 first), then oldest.
    pub fn list_enhancements(&self, filter: EnhancementFilter) -> Result<Page<Enhancement>> {
        let limit = clamp_limit(filter.limit)?;
        let list = EnhancementList {
            priority: filter.priority.map(domain::enhancement_priority).transpose()?,
            status: filter.status.as_deref().map(EnhancementStatus::parse).transpose()?,
            target_quarter: filter
                .target_quarter
                .as_deref()
                .map(|q| domain::quarter("target_quarter", q))
                .transpose()?,
            after: filter.cursor.as_deref().map(decode_ranked_cursor).transpose()?,
            limit,
        };
        self.store.read(|tx| {
            let (rows, total) = query::enhancements::list(tx, list)?;
            Ok(paginate(rows, limit, total, |e| {
                encode_cursor(&[&e.priority.to_string(), &e.created_at, &e.id])
            }))
        })
    }
}

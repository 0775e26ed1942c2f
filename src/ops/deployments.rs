//! Deployments: a PR or commit that went out, with its test results and
//! links to the vendors and work items it touched. Listed newest first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Tracker;
use super::page::{Page, clamp_limit, decode_timed_cursor, encode_cursor, paginate};
use super::{vendors, work_items};
use crate::domain::{self, ids};
use crate::error::{Error, Kind, Result};
use crate::store::write::Fields;
use crate::store::{DEPLOYMENT_LINKS, DEPLOYMENTS, WriteTx, query};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub id: String,
    pub deployed_at: String,
    pub commit_hash: String,
    pub metadata: Value,
    pub vendor_ids: Vec<String>,
    pub work_item_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(default)]
    pub version: i64,
}

/// A deployment in a list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeploymentRow {
    pub id: String,
    pub deployed_at: String,
    pub commit_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_title: Option<String>,
}

impl super::page::Row for DeploymentRow {
    const COLUMNS: &'static [&'static str] = &["id", "deployed_at", "commit_hash", "pr_number", "pr_title"];
}

/// What `record_deployment` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub commit_hash: String,
    /// RFC 3339; default now.
    #[schemars(length(max = 64))]
    pub deployed_at: Option<String>,
    #[schemars(range(min = 1))]
    pub pr_number: Option<i64>,
    #[schemars(length(max = 200))]
    pub pr_title: Option<String>,
    /// Test counts by category, e.g. {"unit":150}.
    #[schemars(with = "Option<std::collections::BTreeMap<String, u64>>")]
    pub test_summary: Option<Map<String, Value>>,
    pub constitutional_compliance: Option<bool>,
    /// Vendor ids or names.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub vendor_ids: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub work_item_ids: Vec<String>,
}

/// Filters of `list_deployments`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFilter {
    /// Name or id.
    #[schemars(length(max = 100))]
    pub vendor: Option<String>,
    // Only deployments linked to this work item.
    pub work_item_id: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub(crate) use crate::store::query::deployments::load;

/// Validate and write a deployment with its links under `id`.
pub(crate) fn record_in(
    tx: &mut WriteTx<'_>,
    id: &str,
    input: NewDeployment,
    short_hash_ok: bool,
) -> Result<Deployment> {
    let commit = domain::commit_hash("commit_hash", &input.commit_hash, short_hash_ok)?;
    write_in(tx, id, commit, Map::new(), input)
}

/// A legacy deployment whose commit is not a hash: recorded without one,
/// the text given as `commit_hash` kept as written in `metadata.commit_raw`.
pub(crate) fn record_unhashed_in(tx: &mut WriteTx<'_>, id: &str, input: NewDeployment) -> Result<Deployment> {
    let mut meta = Map::new();
    if !input.commit_hash.is_empty() {
        meta.insert("commit_raw".into(), input.commit_hash.clone().into());
    }
    write_in(tx, id, String::new(), meta, input)
}

fn write_in(
    tx: &mut WriteTx<'_>,
    id: &str,
    commit: String,
    mut meta: Map<String, Value>,
    input: NewDeployment,
) -> Result<Deployment> {
    let deployed_at = match input.deployed_at.as_deref() {
        Some(t) => domain::timestamp("deployed_at", t)?,
        None => tx.now(),
    };
    if let Some(n) = input.pr_number {
        meta.insert("pr_number".into(), domain::pr_number(n)?.into());
    }
    if let Some(t) = &input.pr_title {
        meta.insert("pr_title".into(), domain::pr_title(t)?.into());
    }
    if let Some(s) = input.test_summary {
        domain::test_summary(&s)?;
        meta.insert("test_summary".into(), Value::Object(s));
    }
    if let Some(c) = input.constitutional_compliance {
        meta.insert("constitutional_compliance".into(), c.into());
    }
    let mut vendor_ids = Vec::new();
    for v in &input.vendor_ids {
        let vendor =
            vendors::find(tx.conn(), v)?.ok_or_else(|| Error::not_found(Kind::Vendor, crate::error::quote(v)))?;
        if vendor_ids.contains(&vendor.id) {
            return Err(Error::invalid(
                "vendor_ids",
                format!("vendor {:?} is listed twice", vendor.name),
            ));
        }
        vendor_ids.push(vendor.id);
    }
    let mut item_ids = Vec::new();
    for w in &input.work_item_ids {
        let item = work_items::require(tx.conn(), &ids::parse("work_item_ids", w)?)?;
        if item_ids.contains(&item.id) {
            return Err(Error::invalid(
                "work_item_ids",
                format!("work item {} is listed twice", item.id),
            ));
        }
        item_ids.push(item.id);
    }
    if load(tx.conn(), id)?.is_some() {
        return Err(Error::Conflict(format!("deployment {id} already exists")));
    }
    let mut fields = Fields::new();
    fields.insert("deployed_at".into(), deployed_at.to_string().into());
    fields.insert("commit_hash".into(), commit.into());
    for (k, v) in meta {
        fields.insert(format!("metadata.{k}"), v);
    }
    fields.insert("created_at".into(), tx.now().to_string().into());
    fields.insert("created_by".into(), tx.author().into());
    tx.write(&DEPLOYMENTS, id, fields)?;
    for (link_type, targets) in [("vendor", &vendor_ids), ("work_item", &item_ids)] {
        for target in targets {
            let mut fields = Fields::new();
            fields.insert("deployment_id".into(), id.into());
            fields.insert("link_type".into(), link_type.into());
            fields.insert("target_id".into(), target.as_str().into());
            fields.insert("removed".into(), false.into());
            fields.insert("created_at".into(), tx.now().to_string().into());
            fields.insert("created_by".into(), tx.author().into());
            tx.write(&DEPLOYMENT_LINKS, &ids::deployment_link(id, link_type, target), fields)?;
        }
    }
    load(tx.conn(), id)?.ok_or_else(|| Error::Corrupt(format!("deployment {id} vanished")))
}

impl Tracker {
    /// Record a deployment (a full 40-character commit hash).
    pub fn record_deployment(&self, author: &str, input: NewDeployment) -> Result<Deployment> {
        self.store
            .write(author, move |tx| record_in(tx, &ids::new_id(), input, false))
    }

    pub fn get_deployment(&self, id: &str) -> Result<Deployment> {
        let id = ids::parse("id", id)?;
        self.store
            .read(|tx| load(tx, &id)?.ok_or_else(|| Error::not_found(Kind::Deployment, &id)))
    }

    /// Deployments, newest first.
    pub fn list_deployments(&self, filter: DeploymentFilter) -> Result<Page<DeploymentRow>> {
        let limit = clamp_limit(filter.limit)?;
        self.store.read(|tx| {
            let mut linked_to = Vec::new();
            if let Some(v) = &filter.vendor {
                let vendor =
                    vendors::find(tx, v)?.ok_or_else(|| Error::not_found(Kind::Vendor, crate::error::quote(v)))?;
                linked_to.push(vendor.id);
            }
            if let Some(w) = &filter.work_item_id {
                linked_to.push(ids::parse("work_item_id", w)?);
            }
            let linked_to: Vec<&str> = linked_to.iter().map(String::as_str).collect();
            let after = filter.cursor.as_deref().map(decode_timed_cursor).transpose()?;
            let (rows, total) = query::deployments::list(tx, &linked_to, after, limit)?;
            Ok(paginate(rows, limit, total, |row| {
                encode_cursor(&[&row.deployed_at, &row.id])
            }))
        })
    }
}

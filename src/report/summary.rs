//! Where the project stands, in a few rows per list: what
//! `get_project_status` answers as JSON (its default) and `waymark status
//! --json` prints. Counts, then the first rows of each list a model acts
//! on, each the first page of the list tool its `more` names (or, for the
//! active items, those last updated), so the answer stays a few kilobytes
//! whatever the store holds. The whole report is the markdown one.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::WorkStatus;
use crate::error::Result;
use crate::ops::{
    DeploymentFilter, DeploymentRow, Page, ReadyQuery, ReportClaim, Row, SyncHealth, Tracker, VendorFilter, VendorRow,
    WorkItemFilter, WorkItemRow,
};
use crate::store::query::report as query;
use crate::time::Timestamp;

/// Rows shown of each list: ready work and broken vendors (short rows)
/// get a few more than the others.
const READY: i64 = 5;
const ACTIVE: i64 = 3;
const BLOCKED: i64 = 3;
const BROKEN: i64 = 5;
const CLAIMS: i64 = 5;
const DEPLOYMENTS: i64 = 3;

/// What `get_project_status` answers as JSON.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusSummary {
    pub generated_at: String,
    /// Work items neither deleted nor archived, counted.
    pub work_items: ItemCounts,
    /// Ready work, by priority (`list_ready_work`).
    pub ready: Section<WorkItemRow>,
    /// Live claims of open items, by agent ("in progress, by agent").
    pub in_progress: InProgress,
    /// Active items, the last changed here first (among the last 1,000
    /// work items changed).
    pub active: Section<WorkItemRow>,
    /// Blocked items, oldest first (`list_work_items` with status blocked).
    pub blocked: Section<WorkItemRow>,
    pub vendors: VendorSummary,
    /// The latest deployments (`list_deployments`).
    pub deployments: Section<DeploymentRow>,
    /// The sync health, with the count of open conflicts (`list_conflicts`).
    pub sync: SyncHealth,
}

/// The first live claims, by agent, and how many there are; the
/// markdown report lists up to 50.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InProgress {
    pub claims: Vec<ReportClaim>,
    pub total_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more: Option<&'static str>,
}

/// Work items by status and by type, counted as lists count them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ItemCounts {
    pub by_status: BTreeMap<&'static str, i64>,
    pub by_type: BTreeMap<&'static str, i64>,
    /// A count stopped at 1,000: it is a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VendorSummary {
    pub operational: i64,
    pub total: i64,
    /// Broken vendors by name (`list_vendors` with status broken).
    pub broken: Section<VendorRow>,
}

/// The first rows of a list: `{columns, rows, total_count, more?}`, where
/// `more` names the call that lists them all when rows were left out.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Section<T: Row> {
    #[serde(flatten)]
    pub page: Page<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more: Option<&'static str>,
}

impl<T: Row> Section<T> {
    /// `page` (its cursor dropped), naming `more` when it is not all.
    fn of(mut page: Page<T>, more: &'static str) -> Section<T> {
        let left_out = page.next_cursor.take().is_some() || page.total_count > page.items.len() as i64;
        Section {
            page,
            more: left_out.then_some(more),
        }
    }
}

fn limit(n: i64) -> Option<i64> {
    Some(n)
}

impl Tracker {
    /// Where the project stands, in a few rows per list. Each list is read
    /// as its own tool reads it; the counts, active items and health in one
    /// read.
    pub fn status_summary(&self) -> Result<StatusSummary> {
        let now = self.store().now_ms();
        let (counts, (operational, total), in_progress, active, sync) = self.store().read(|tx| {
            let (claims, total_count) = crate::ops::claims::live_claims(tx, now, CLAIMS)?;
            let in_progress = InProgress {
                more: (total_count > claims.len() as i64).then_some("get_project_status with format markdown"),
                claims,
                total_count,
            };
            let (by_status, by_type) = query::item_counts(tx)?;
            let (total_count, total_is_capped) = by_status
                .iter()
                .find(|(word, ..)| *word == WorkStatus::Active.as_str())
                .map_or((0, false), |&(_, n, capped)| (n, capped));
            let active = Page {
                items: query::last_changed(tx, WorkStatus::Active, ACTIVE)?,
                total_count,
                total_is_capped,
                next_cursor: None,
            };
            let capped = by_status.iter().chain(&by_type).any(|(_, _, capped)| *capped);
            let counts = ItemCounts {
                by_status: by_status.into_iter().map(|(word, n, _)| (word, n)).collect(),
                by_type: by_type.into_iter().map(|(word, n, _)| (word, n)).collect(),
                capped,
            };
            Ok((
                counts,
                query::vendor_counts(tx)?,
                in_progress,
                active,
                crate::ops::sync_health(tx)?,
            ))
        })?;
        let ready = self.ready_work(ReadyQuery {
            limit: limit(READY),
            ..Default::default()
        })?;
        let blocked = self.list_work_items(WorkItemFilter {
            status: Some("blocked".into()),
            limit: limit(BLOCKED),
            ..Default::default()
        })?;
        let broken = self.list_vendors(VendorFilter {
            status: Some("broken".into()),
            limit: limit(BROKEN),
            ..Default::default()
        })?;
        let deployments = self.list_deployments(DeploymentFilter {
            limit: limit(DEPLOYMENTS),
            ..Default::default()
        })?;
        Ok(StatusSummary {
            generated_at: Timestamp::now().to_string(),
            work_items: counts,
            ready: Section::of(ready, "list_ready_work"),
            in_progress,
            active: Section::of(active, "list_work_items with status active"),
            blocked: Section::of(blocked, "list_work_items with status blocked"),
            vendors: VendorSummary {
                operational,
                total,
                broken: Section::of(broken, "list_vendors with status broken"),
            },
            deployments: Section::of(deployments, "list_deployments"),
            sync,
        })
    }
}

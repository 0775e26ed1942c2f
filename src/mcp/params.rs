//! The tools' arguments: one struct per tool, deserialized by rmcp and
//! described to clients by the schema derived from it (a `///` comment on a
//! field is its description, in the model's context all session long: keep
//! them short). Each converts into the input of its operation in
//! `crate::ops`, which does all the validation.
//!
//! Closed sets of words are plain strings with an `enum` in the schema: the
//! operation parses them (accepting legacy words and any case) and its error
//! names the accepted ones.

use std::collections::BTreeMap;

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ops;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkItem {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: String,
    #[schemars(length(max = 200))]
    pub title: String,
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// Parent work item id; the tree is at most 6 levels (depth 0-5).
    pub parent_id: Option<String>,
    /// Default active.
    #[schemars(extend("enum" = ["active", "completed", "blocked"]))]
    pub status: Option<String>,
    /// 0 highest, default 2.
    #[schemars(range(min = 0, max = 4))]
    pub priority: Option<i64>,
    #[schemars(length(max = 100))]
    pub branch_name: Option<String>,
    /// 40 hex chars.
    pub commit_hash: Option<String>,
    #[schemars(range(min = 1))]
    pub pr_number: Option<i64>,
    /// Keys by type. project: description (required), target_quarter, constitutional_principles. session: token_budget, prompts_count. task: estimated_hours, actual_hours, blocked_reason. research: research_questions, findings_summary, references.
    pub metadata: Option<Map<String, Value>>,
}

impl From<CreateWorkItem> for ops::NewWorkItem {
    fn from(p: CreateWorkItem) -> Self {
        ops::NewWorkItem {
            item_type: p.item_type,
            title: p.title,
            description: p.description,
            parent_id: p.parent_id,
            status: p.status,
            priority: p.priority,
            branch_name: p.branch_name,
            commit_hash: p.commit_hash,
            pr_number: p.pr_number,
            metadata: p.metadata,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkItem {
    pub id: String,
    /// The version you last read.
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
    /// Keys to merge; null removes a key.
    pub metadata: Option<Map<String, Value>>,
    /// true deletes (soft), false restores.
    pub deleted: Option<bool>,
}

impl From<UpdateWorkItem> for ops::WorkItemUpdate {
    fn from(p: UpdateWorkItem) -> Self {
        ops::WorkItemUpdate {
            id: p.id,
            version: p.version,
            item_type: p.item_type,
            title: p.title,
            description: p.description,
            status: p.status,
            priority: p.priority,
            parent_id: p.parent_id,
            branch_name: p.branch_name,
            commit_hash: p.commit_hash,
            pr_number: p.pr_number,
            metadata: p.metadata,
            deleted: p.deleted,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryWorkItem {
    pub id: String,
    /// Default true.
    pub include_children: Option<bool>,
    /// Default true.
    pub include_dependencies: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkItems {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    #[schemars(extend("enum" = ["active", "completed", "blocked"]))]
    pub status: Option<String>,
    /// Only direct children of this item.
    pub parent_id: Option<String>,
    /// Words to find in title or description.
    #[schemars(length(max = 1000))]
    pub text: Option<String>,
    pub include_deleted: Option<bool>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

impl From<ListWorkItems> for ops::WorkItemFilter {
    fn from(p: ListWorkItems) -> Self {
        ops::WorkItemFilter {
            item_type: p.item_type,
            status: p.status,
            parent_id: p.parent_id,
            text: p.text,
            include_deleted: p.include_deleted.unwrap_or(false),
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListReadyWork {
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

impl From<ListReadyWork> for ops::ReadyQuery {
    fn from(p: ListReadyWork) -> Self {
        ops::ReadyQuery {
            item_type: p.item_type,
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageDependency {
    #[schemars(extend("enum" = ["add", "remove"]))]
    pub action: String,
    pub source_id: String,
    pub target_id: String,
    #[schemars(extend("enum" = ["depends_on", "blocks"]))]
    pub dependency_type: String,
}

impl ManageDependency {
    pub fn into_change(self) -> crate::Result<ops::DependencyChange> {
        Ok(ops::DependencyChange {
            action: ops::DependencyAction::parse(&self.action)?,
            source_id: self.source_id,
            target_id: self.target_id,
            dependency_type: self.dependency_type,
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordDeployment {
    /// 40 hex chars.
    pub commit_hash: String,
    /// RFC 3339; default now.
    #[schemars(length(max = 64))]
    pub deployed_at: Option<String>,
    #[schemars(range(min = 1))]
    pub pr_number: Option<i64>,
    #[schemars(length(max = 200))]
    pub pr_title: Option<String>,
    /// Test counts by category, e.g. {"unit":150}.
    #[schemars(with = "Option<BTreeMap<String, u64>>")]
    pub test_summary: Option<Map<String, Value>>,
    pub constitutional_compliance: Option<bool>,
    /// Vendor ids or names.
    #[schemars(length(max = 100), inner(length(max = 100)))]
    pub vendor_ids: Option<Vec<String>>,
    #[schemars(length(max = 100), inner(length(max = 100)))]
    pub work_item_ids: Option<Vec<String>>,
}

impl From<RecordDeployment> for ops::NewDeployment {
    fn from(p: RecordDeployment) -> Self {
        ops::NewDeployment {
            commit_hash: p.commit_hash,
            deployed_at: p.deployed_at,
            pr_number: p.pr_number,
            pr_title: p.pr_title,
            test_summary: p.test_summary,
            constitutional_compliance: p.constitutional_compliance,
            vendor_ids: p.vendor_ids.unwrap_or_default(),
            work_item_ids: p.work_item_ids.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDeployments {
    /// Only deployments of this vendor (name or id).
    #[schemars(length(max = 100))]
    pub vendor: Option<String>,
    /// Only deployments linked to this work item.
    pub work_item_id: Option<String>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

impl From<ListDeployments> for ops::DeploymentFilter {
    fn from(p: ListDeployments) -> Self {
        ops::DeploymentFilter {
            vendor: p.vendor,
            work_item_id: p.work_item_id,
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVendor {
    /// Letters, digits, space, - and _; unique in any case.
    #[schemars(length(max = 100))]
    pub name: String,
    /// Default 0.0.0.
    #[schemars(length(max = 50))]
    pub extractor_version: Option<String>,
    /// format_support {excel,csv,pdf,ocr: bool}, test_results {passing,total,skipped}, manifest_compliant, last_test_run, notes.
    pub metadata: Option<Map<String, Value>>,
}

impl From<CreateVendor> for ops::NewVendor {
    fn from(p: CreateVendor) -> Self {
        ops::NewVendor {
            name: p.name,
            extractor_version: p.extractor_version,
            metadata: p.metadata,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryVendor {
    /// Any case.
    #[schemars(length(max = 100))]
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVendor {
    #[schemars(length(max = 100))]
    pub name: String,
    /// The version you last read.
    pub version: i64,
    #[schemars(extend("enum" = ["operational", "broken"]))]
    pub status: Option<String>,
    #[schemars(length(max = 50))]
    pub extractor_version: Option<String>,
    /// Keys to merge (as in create_vendor); null removes a key.
    pub metadata: Option<Map<String, Value>>,
}

impl From<UpdateVendor> for ops::VendorUpdate {
    fn from(p: UpdateVendor) -> Self {
        ops::VendorUpdate {
            name: p.name,
            version: p.version,
            status: p.status,
            extractor_version: p.extractor_version,
            metadata: p.metadata,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListVendors {
    #[schemars(extend("enum" = ["operational", "broken"]))]
    pub status: Option<String>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

impl From<ListVendors> for ops::VendorFilter {
    fn from(p: ListVendors) -> Self {
        ops::VendorFilter {
            status: p.status,
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfiguration {
    /// If given, refuse unless still this version.
    pub version: Option<i64>,
    #[schemars(extend("enum" = ["feature", "maintenance", "research"]))]
    pub active_context_type: Option<String>,
    /// A session work item id.
    pub current_session_id: Option<String>,
    #[schemars(length(max = 100))]
    pub git_branch: Option<String>,
    /// 40 hex chars.
    pub git_head_commit: Option<String>,
    #[schemars(range(min = 1000, max = 1000000))]
    pub default_token_budget: Option<i64>,
}

impl From<UpdateConfiguration> for ops::ConfigurationUpdate {
    fn from(p: UpdateConfiguration) -> Self {
        ops::ConfigurationUpdate {
            version: p.version,
            active_context_type: p.active_context_type,
            current_session_id: p.current_session_id,
            git_branch: p.git_branch,
            git_head_commit: p.git_head_commit,
            default_token_budget: p.default_token_budget,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageEnhancement {
    #[schemars(extend("enum" = ["create", "update", "get", "list"]))]
    pub action: String,
    /// For update and get.
    pub id: Option<String>,
    /// For update: the version you last read.
    pub version: Option<i64>,
    #[schemars(length(max = 200))]
    pub title: Option<String>,
    #[schemars(length(max = 10000))]
    pub description: Option<String>,
    /// 1 highest; default 3. Also a list filter.
    #[schemars(range(min = 1, max = 5))]
    pub priority: Option<i64>,
    /// Also a list filter.
    #[schemars(extend("enum" = ["planned", "approved", "implementing", "completed"]))]
    pub status: Option<String>,
    /// YYYY-Q1..4. Also a list filter.
    #[schemars(length(max = 16))]
    pub target_quarter: Option<String>,
    pub requires_constitutional_approval: Option<bool>,
    /// Enhancement ids.
    #[schemars(length(max = 100), inner(length(max = 100)))]
    pub depends_on: Option<Vec<String>>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

/// What `manage_enhancement` was asked to do.
pub enum EnhancementAction {
    Create(ops::NewEnhancement),
    Update(ops::EnhancementUpdate),
    Get(String),
    List(ops::EnhancementFilter),
}

impl ManageEnhancement {
    pub fn into_action(self) -> crate::Result<EnhancementAction> {
        use crate::Error;
        let id = |id: Option<String>, action: &str| {
            id.ok_or_else(|| Error::invalid("id", format!("is required to {action} an enhancement")))
        };
        Ok(match self.action.trim().to_ascii_lowercase().as_str() {
            "create" => EnhancementAction::Create(ops::NewEnhancement {
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
            "update" => EnhancementAction::Update(ops::EnhancementUpdate {
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
            "list" => EnhancementAction::List(ops::EnhancementFilter {
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveWorkItems {
    /// Default 365.
    #[schemars(range(min = 0, max = 36500))]
    pub older_than_days: Option<i64>,
    /// Only report what would be archived.
    pub dry_run: Option<bool>,
}

impl From<ArchiveWorkItems> for ops::ArchiveRequest {
    fn from(p: ArchiveWorkItems) -> Self {
        ops::ArchiveRequest {
            older_than_days: p.older_than_days,
            dry_run: p.dry_run.unwrap_or(false),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArchived {
    /// Words to find in title or description.
    #[schemars(length(max = 1000))]
    pub text: Option<String>,
    #[schemars(extend("enum" = ["project", "session", "task", "research"]))]
    pub item_type: Option<String>,
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// From next_cursor.
    pub cursor: Option<String>,
}

impl From<QueryArchived> for ops::ArchivedQuery {
    fn from(p: QueryArchived) -> Self {
        ops::ArchivedQuery {
            text: p.text,
            item_type: p.item_type,
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectStatus {
    /// Default markdown.
    #[schemars(extend("enum" = ["markdown", "json"]))]
    pub format: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    /// status: the worker's health; now: run one round and report it.
    #[schemars(extend("enum" = ["status", "now"]))]
    pub action: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConflicts {
    /// Default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveConflict {
    /// collection/record_id/field, from list_conflicts.
    #[schemars(length(max = 300))]
    pub conflict_id: String,
    /// Index (from 0) of the chosen value in the conflict's values.
    #[schemars(range(min = 0))]
    pub choice: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportGitHistory {
    /// Repository path; default the one serve runs in.
    #[schemars(length(max = 1024))]
    pub repo_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportMarkdown {
    /// A legacy .project_status.md file.
    #[schemars(length(max = 1024))]
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportMarkdown {
    /// Output file; default .project_status.md at the repository root.
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
}

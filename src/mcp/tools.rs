//! The tools: each one turns its arguments into the input of one operation
//! of [`Tracker`], calls it, and shapes the answer. No tool validates
//! anything the operation validates, and no tool knows the store.
//!
//! Answers carry `structuredContent` and the same JSON, compact, as text.
//! Errors of the operation become `isError` results whose text is the
//! error's sentence; rmcp turns arguments that do not deserialize into such
//! results too. Lists answer in pages of rows under named `columns`, which
//! keeps a 50-row page small.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use serde_json::{Value, json};

use super::WaymarkServer;
use super::params::{self, EnhancementAction};
use super::schema::{self, input_schema};
use super::status;
use crate::error::{Error, Result};
use crate::ops::{Page, Tracker};

/// The columns of each kind of list row. Work item rows leave out
/// `updated_at`: with two ids and a title a row is already ~150 bytes, and a
/// 50-row page must stay under 8 KB. `version` stays, so that a model can
/// update an item straight from a list.
pub const WORK_ITEM_COLUMNS: &[&str] = &["id", "title", "item_type", "status", "priority", "parent_id", "version"];
const VENDOR_COLUMNS: &[&str] = &["name", "status", "extractor_version", "tests", "updated_at", "version"];
const DEPLOYMENT_COLUMNS: &[&str] = &["id", "deployed_at", "commit_hash", "pr_number", "pr_title"];
const ENHANCEMENT_COLUMNS: &[&str] = &["id", "title", "priority", "status", "target_quarter", "version"];

/// The author of a write: the calling client's name, or `mcp` when the
/// protocol did not give one.
fn author(ctx: &RequestContext<RoleServer>) -> String {
    let name = ctx.client_info().map(|info| info.name).unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| !c.is_control()).take(100).collect();
    if name.is_empty() { "mcp".to_owned() } else { name }
}

/// A successful answer: the value as structured content and as compact JSON text.
///
/// The same as `CallToolResult::structured(value)`, byte for byte, but the
/// text is written straight into a `String` (serde_json's `Vec` writer)
/// rather than through `Display`'s formatter adapter: a third less time for
/// a work item or a vendor.
fn success(value: Value) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// A failed operation: `isError` with the error's sentence.
fn failure(error: &Error) -> CallToolResult {
    if error.is_user_error() {
        tracing::debug!(code = error.code(), "tool error: {error}");
    } else {
        tracing::error!(code = error.code(), "tool failed: {error}");
    }
    CallToolResult::error(vec![ContentBlock::text(super::limits::bound_message(
        error.to_string(),
    ))])
}

fn answer<T: Serialize>(result: Result<T>) -> CallToolResult {
    match result.and_then(|v| serde_json::to_value(v).map_err(|e| Error::Corrupt(e.to_string()))) {
        Ok(value) => success(value),
        Err(e) => failure(&e),
    }
}

/// Rows of `values` as arrays of the named fields (missing ones null).
pub fn rows<T: Serialize>(values: &[T], columns: &[&str]) -> Vec<Value> {
    values
        .iter()
        .map(|item| {
            let v = serde_json::to_value(item).unwrap_or(Value::Null);
            Value::Array(
                columns
                    .iter()
                    .map(|c| v.get(*c).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect()
}

/// A page as `{columns, rows, total_count, next_cursor?}`.
pub fn page_value<T: Serialize>(page: &Page<T>, columns: &[&str]) -> Value {
    let mut v = json!({ "columns": columns, "rows": rows(&page.items, columns), "total_count": page.total_count });
    if page.total_is_capped {
        v["total_is_capped"] = json!(true);
    }
    if let Some(c) = &page.next_cursor {
        v["next_cursor"] = json!(c);
    }
    v
}

/// The most records, skipped entries and warnings an import's answer
/// lists (their totals are always there), and the most characters of a
/// skipped line it quotes: an import's answer stays small whatever the
/// file, and never echoes a file back.
const REPORT_RECORDS: usize = 20;
const REPORT_ENTRIES: usize = 10;
const REPORT_TEXT: usize = 40;

/// An import's report, bounded: `records`, `skipped` and `warnings` keep
/// their first few entries (skipped text cut short), with
/// `records_total`, `skipped_total` and `warnings_total`.
fn answer_report<T: Serialize>(result: Result<T>) -> CallToolResult {
    match result.and_then(|v| serde_json::to_value(v).map_err(|e| Error::Corrupt(e.to_string()))) {
        Ok(mut value) => {
            bound_report(&mut value);
            success(value)
        }
        Err(e) => failure(&e),
    }
}

pub(super) fn bound_report(value: &mut Value) {
    for (key, keep) in [
        ("records", REPORT_RECORDS),
        ("skipped", REPORT_ENTRIES),
        ("warnings", REPORT_ENTRIES),
    ] {
        let Some(Value::Array(list)) = value.get_mut(key) else {
            continue;
        };
        let total = list.len();
        list.truncate(keep);
        for entry in list.iter_mut() {
            if let Some(Value::String(text)) = entry.get_mut("text")
                && let Some((cut, _)) = text.char_indices().nth(REPORT_TEXT)
            {
                text.truncate(cut);
                text.push('…');
            }
        }
        value[format!("{key}_total")] = json!(total);
    }
}

fn answer_page<T: Serialize>(result: Result<Page<T>>, columns: &[&str]) -> CallToolResult {
    match result {
        Ok(page) => success(page_value(&page, columns)),
        Err(e) => failure(&e),
    }
}

/// Run long work (an import of a 4 MiB file, a git history, an export)
/// off the server's thread, so the server answers other requests meanwhile.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(format!("the work stopped: {e}")))))
}

/// `wait_for_changes` on a blocking thread that gives up (within the
/// feed's poll interval) once this future is dropped: a cancelled call, a
/// session or a server that ends.
pub(super) async fn wait_off_thread(
    tracker: &Tracker,
    input: crate::ops::WaitForChanges,
) -> std::io::Result<Result<crate::ops::Changes>> {
    struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let tracker = tracker.clone();
    tokio::task::spawn_blocking(move || tracker.wait_for_changes_or(&input, &cancelled))
        .await
        .map_err(std::io::Error::other)
}

fn configuration_value(tracker: &Tracker) -> Result<Value> {
    let (configuration, health) = tracker.get_project_configuration()?;
    let mut v = serde_json::to_value(configuration).map_err(|e| Error::Corrupt(e.to_string()))?;
    v["sync"] = serde_json::to_value(health).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(v)
}

#[tool_router(vis = "pub(super)")]
impl WaymarkServer {
    #[tool(
        description = "Create a work item, optionally under a parent. Returns it with its id and version.",
        input_schema = input_schema::<params::CreateWorkItem>(),
        output_schema = schema::work_item(),
        annotations(read_only_hint = false, destructive_hint = false, open_world_hint = false)
    )]
    async fn create_work_item(
        &self,
        Parameters(p): Parameters<params::CreateWorkItem>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.create_work_item(&author(&ctx), p.into()))
    }

    #[tool(
        description = "Change a work item's given fields. Send the version you last read: if it changed since, nothing is written and the error names the current version. \"\" clears a text field.",
        input_schema = input_schema::<params::UpdateWorkItem>(),
        output_schema = schema::work_item(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_work_item(
        &self,
        Parameters(p): Parameters<params::UpdateWorkItem>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.update_work_item(&author(&ctx), p.into()))
    }

    #[tool(
        description = "One work item in full with its ancestors (root first), descendants (up to 100 rows), dependencies both ways and open sync conflicts.",
        input_schema = input_schema::<params::QueryWorkItem>(),
        output_schema = schema::work_item_detail(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn query_work_item(&self, Parameters(p): Parameters<params::QueryWorkItem>) -> CallToolResult {
        answer(self.tracker.query_work_item(
            &p.id,
            p.include_children.unwrap_or(true),
            p.include_dependencies.unwrap_or(true),
        ))
    }

    #[tool(
        description = "Work items in the order this store recorded them (oldest first for items created here; a text search pages in the same order), as rows of columns, with total_count (capped at 1000: total_is_capped). Pass next_cursor back as cursor for the next page.",
        input_schema = input_schema::<params::ListWorkItems>(),
        output_schema = schema::page(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_work_items(&self, Parameters(p): Parameters<params::ListWorkItems>) -> CallToolResult {
        answer_page(self.tracker.list_work_items(p.into()), WORK_ITEM_COLUMNS)
    }

    #[tool(
        description = "Work items that can start now (active, nothing they wait for still open), highest priority then oldest first, as rows.",
        input_schema = input_schema::<params::ListReadyWork>(),
        output_schema = schema::page(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_ready_work(&self, Parameters(p): Parameters<params::ListReadyWork>) -> CallToolResult {
        answer_page(self.tracker.ready_work(p.into()), WORK_ITEM_COLUMNS)
    }

    #[tool(
        description = "Add or remove a dependency. depends_on: source waits for target; blocks: target waits for source. Adding twice is harmless; self-edges and cycles are refused.",
        input_schema = input_schema::<params::ManageDependency>(),
        output_schema = schema::dependency(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn manage_dependency(
        &self,
        Parameters(p): Parameters<params::ManageDependency>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(
            p.into_change()
                .and_then(|change| self.tracker.manage_dependency(&author(&ctx), change)),
        )
    }

    #[tool(
        description = "Record a deployment of a commit with the vendors and work items it shipped.",
        input_schema = input_schema::<params::RecordDeployment>(),
        output_schema = schema::deployment(),
        annotations(read_only_hint = false, destructive_hint = false, open_world_hint = false)
    )]
    async fn record_deployment(
        &self,
        Parameters(p): Parameters<params::RecordDeployment>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.record_deployment(&author(&ctx), p.into()))
    }

    #[tool(
        description = "Deployments, newest first, as rows.",
        input_schema = input_schema::<params::ListDeployments>(),
        output_schema = schema::page(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_deployments(&self, Parameters(p): Parameters<params::ListDeployments>) -> CallToolResult {
        answer_page(self.tracker.list_deployments(p.into()), DEPLOYMENT_COLUMNS)
    }

    #[tool(
        description = "Start tracking a vendor (a component with a health status and test results). It starts broken until update_vendor_status says otherwise.",
        input_schema = input_schema::<params::CreateVendor>(),
        output_schema = schema::vendor(),
        annotations(read_only_hint = false, destructive_hint = false, open_world_hint = false)
    )]
    async fn create_vendor(
        &self,
        Parameters(p): Parameters<params::CreateVendor>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.create_vendor(&author(&ctx), p.into()))
    }

    #[tool(
        description = "One vendor by name: status, extractor version, metadata and version.",
        input_schema = input_schema::<params::QueryVendor>(),
        output_schema = schema::vendor(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn query_vendor_status(&self, Parameters(p): Parameters<params::QueryVendor>) -> CallToolResult {
        answer(self.tracker.query_vendor_status(&p.name))
    }

    #[tool(
        description = "Change a vendor's status, extractor version or metadata. Send the version you last read.",
        input_schema = input_schema::<params::UpdateVendor>(),
        output_schema = schema::vendor(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_vendor_status(
        &self,
        Parameters(p): Parameters<params::UpdateVendor>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.update_vendor_status(&author(&ctx), p.into()))
    }

    #[tool(
        description = "Vendors by name as rows (tests = passing/total).",
        input_schema = input_schema::<params::ListVendors>(),
        output_schema = schema::page(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_vendors(&self, Parameters(p): Parameters<params::ListVendors>) -> CallToolResult {
        answer_page(self.tracker.list_vendors(p.into()), VENDOR_COLUMNS)
    }

    #[tool(
        description = "The project configuration (context type, current session, git branch and head, token budget) with this replica's sync health.",
        input_schema = input_schema::<params::NoArguments>(),
        output_schema = schema::configuration(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_project_configuration(&self, Parameters(_): Parameters<params::NoArguments>) -> CallToolResult {
        answer(configuration_value(&self.tracker))
    }

    #[tool(
        description = "Change configuration fields; \"\" clears an optional one.",
        input_schema = input_schema::<params::UpdateConfiguration>(),
        output_schema = schema::configuration(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_project_configuration(
        &self,
        Parameters(p): Parameters<params::UpdateConfiguration>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(
            self.tracker
                .update_project_configuration(&author(&ctx), p.into())
                .and_then(|_| configuration_value(&self.tracker)),
        )
    }

    #[tool(
        description = "Planned enhancements. create (title), update (id, version), get (id), or list (rows by priority; priority, status and target_quarter filter).",
        input_schema = input_schema::<params::ManageEnhancement>(),
        output_schema = schema::enhancement_or_page(),
        annotations(read_only_hint = false, destructive_hint = false, open_world_hint = false)
    )]
    async fn manage_enhancement(
        &self,
        Parameters(p): Parameters<params::ManageEnhancement>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let action = match p.into_action() {
            Ok(action) => action,
            Err(e) => return failure(&e),
        };
        match action {
            EnhancementAction::Create(input) => answer(self.tracker.create_enhancement(&author(&ctx), input)),
            EnhancementAction::Update(input) => answer(self.tracker.update_enhancement(&author(&ctx), input)),
            EnhancementAction::Get(id) => answer(self.tracker.get_enhancement(&id)),
            EnhancementAction::List(filter) => answer_page(self.tracker.list_enhancements(filter), ENHANCEMENT_COLUMNS),
        }
    }

    #[tool(
        description = "Archive completed or deleted work items not updated for older_than_days, whole subtrees only. They leave lists and the report; query_archived_work_items finds them.",
        input_schema = input_schema::<params::ArchiveWorkItems>(),
        output_schema = schema::archive(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn archive_work_items(
        &self,
        Parameters(p): Parameters<params::ArchiveWorkItems>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match self.tracker.archive_work_items(&author(&ctx), p.into()) {
            Ok(r) => success(json!({
                "dry_run": r.dry_run,
                "older_than_days": r.older_than_days,
                "count": r.count,
                "columns": WORK_ITEM_COLUMNS,
                "rows": rows(&r.items, WORK_ITEM_COLUMNS),
            })),
            Err(e) => failure(&e),
        }
    }

    #[tool(
        description = "Archived work items, most recently archived first, as rows.",
        input_schema = input_schema::<params::QueryArchived>(),
        output_schema = schema::page(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn query_archived_work_items(&self, Parameters(p): Parameters<params::QueryArchived>) -> CallToolResult {
        answer_page(self.tracker.query_archived_work_items(p.into()), WORK_ITEM_COLUMNS)
    }

    #[tool(
        description = "The status report: vendor health, active work as a tree, recent deployments, pending enhancements, sync conflicts.",
        input_schema = input_schema::<params::ProjectStatus>(),
        output_schema = schema::status(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_project_status(&self, Parameters(p): Parameters<params::ProjectStatus>) -> CallToolResult {
        let format = p.format.as_deref().map(|f| f.trim().to_ascii_lowercase());
        match format.as_deref() {
            None | Some("markdown") => match status::markdown(&self.tracker) {
                Ok(md) => success(json!({ "format": "markdown", "markdown": md })),
                Err(e) => failure(&e),
            },
            Some("json") => match status::report(&self.tracker) {
                Ok(report) => success(json!({ "format": "json", "report": report })),
                Err(e) => failure(&e),
            },
            Some(_) => failure(&Error::invalid(
                "format",
                format!("{:?} is not one of markdown, json", p.format.unwrap_or_default()),
            )),
        }
    }

    #[tool(
        description = "Sync with the team's hub. status: last success, last error, pending changes, open conflicts. now: run one round (push, then pull) and report pushed, pulled and new conflicts.",
        input_schema = input_schema::<params::Sync>(),
        output_schema = schema::object_with(&[("hub_configured", "boolean"), ("pending_changes", "integer")]),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn sync(&self, Parameters(p): Parameters<params::Sync>) -> CallToolResult {
        let health = |tracker: &Tracker| tracker.get_project_configuration().map(|(_, h)| h);
        match p.action.trim().to_ascii_lowercase().as_str() {
            "status" => answer(health(&self.tracker)),
            "now" => {
                let Some(settings) = self.context.settings.clone() else {
                    return failure(&Error::invalid(
                        "action",
                        crate::sync::SyncFailure::NotConfigured.to_string(),
                    ));
                };
                let result = crate::sync::sync_once(self.tracker.store(), &settings).await;
                match result {
                    Ok(round) => match health(&self.tracker) {
                        Ok(h) => {
                            let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
                            v["round"] = serde_json::to_value(round).unwrap_or(Value::Null);
                            success(v)
                        }
                        Err(e) => failure(&e),
                    },
                    Err(e) => CallToolResult::error(vec![ContentBlock::text(format!(
                        "{e}{}",
                        if e.is_retryable() {
                            "; local work is safe and the worker keeps retrying"
                        } else {
                            ""
                        }
                    ))]),
                }
            }
            other => failure(&Error::invalid(
                "action",
                format!("{other:?} is not one of status, now"),
            )),
        }
    }

    #[tool(
        description = "Wait (up to timeout_s) until records change here or arrive from the hub; returns what changed and the cursor to pass next. Without cursor: the current cursor at once.",
        input_schema = input_schema::<crate::ops::WaitForChanges>(),
        output_schema = schema::object_with(&[("cursor", "string"), ("changes", "array")]),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn wait_for_changes(&self, Parameters(p): Parameters<crate::ops::WaitForChanges>) -> CallToolResult {
        answer(
            wait_off_thread(&self.tracker, p)
                .await
                .unwrap_or_else(|e| Err(Error::Io(e))),
        )
    }

    #[tool(
        description = "Open sync conflicts: fields that offline edits changed concurrently (every value, who wrote it, the value shown), and tree conflicts (cycle, depth, orphan) on parent_id.",
        input_schema = input_schema::<params::ListConflicts>(),
        output_schema = schema::object_with(&[("conflicts", "array"), ("total_count", "integer")]),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_conflicts(&self, Parameters(p): Parameters<params::ListConflicts>) -> CallToolResult {
        let limit = match crate::ops::clamp_limit(p.limit) {
            Ok(l) => l as usize,
            Err(e) => return failure(&e),
        };
        match self.tracker.list_conflicts() {
            Ok(all) => {
                let total = all.len();
                success(json!({ "conflicts": all.into_iter().take(limit).collect::<Vec<_>>(), "total_count": total }))
            }
            Err(e) => failure(&e),
        }
    }

    #[tool(
        description = "Resolve a conflict by choosing one of its values (by index in list_conflicts); every replica adopts it after syncing. A delete_vs_update conflict: choose the delete, or restore with update_work_item deleted=false. Tree conflicts (cycle, depth, orphan, parent_deleted): move the item with update_work_item; archived_while_open: complete or delete it; dependency_cycle: remove a dependency; unknown_value: update the field.",
        input_schema = input_schema::<params::ResolveConflict>(),
        output_schema = schema::object_with(&[("id", "string"), ("version", "integer")]),
        annotations(read_only_hint = false, destructive_hint = true, open_world_hint = false)
    )]
    async fn resolve_conflict(
        &self,
        Parameters(p): Parameters<params::ResolveConflict>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let chosen = self.tracker.list_conflicts().and_then(|all| {
            let conflict = all.into_iter().find(|c| c.id == p.conflict_id.trim()).ok_or_else(|| {
                Error::Conflict(format!(
                    "there is no open conflict {:?}; list_conflicts shows them",
                    p.conflict_id
                ))
            })?;
            let count = conflict.values.len();
            conflict
                .values
                .into_iter()
                .nth(p.choice)
                .map(|v| v.value)
                .ok_or_else(|| {
                    Error::invalid(
                        "choice",
                        format!(
                            "must be 0 to {} (the conflict has {count} values)",
                            count.saturating_sub(1)
                        ),
                    )
                })
        });
        answer(chosen.and_then(|value| self.tracker.resolve_conflict(&author(&ctx), &p.conflict_id, value)))
    }

    #[tool(
        description = "Import git history: deployments from PR and deploy commits, work items from branch names, vendor status from vendor(name): subjects, and the current branch and head. Incremental and idempotent.",
        input_schema = input_schema::<params::ImportGitHistory>(),
        output_schema = schema::object_with(&[]),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn import_git_history(
        &self,
        Parameters(p): Parameters<params::ImportGitHistory>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let repo = match (p.repo_path, &self.context.repo_root) {
            (Some(path), _) => self.files.directory(&path),
            (None, Some(root)) => Ok(root.clone()),
            (None, None) => Err(Error::invalid(
                "repo_path",
                "is required: this server runs outside a git repository",
            )),
        };
        let (tracker, author) = (self.tracker.clone(), author(&ctx));
        answer_report(off_thread(move || tracker.import_git(&author, &repo?)).await)
    }

    #[tool(
        description = "Import a legacy .project_status.md: what was imported, and each skipped line with its reason. Importing the same file twice changes nothing.",
        input_schema = input_schema::<params::ImportMarkdown>(),
        output_schema = schema::object_with(&[]),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn import_markdown(
        &self,
        Parameters(p): Parameters<params::ImportMarkdown>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (files, tracker, author) = (self.files.clone(), self.tracker.clone(), author(&ctx));
        let imported = off_thread(move || {
            let (path, text) = files.read_markdown(&p.path)?;
            tracker.import_markdown_text(&author, &text, &path.display().to_string())
        });
        answer_report(imported.await)
    }

    #[tool(
        description = "Write the status report as markdown (default .project_status.md at the repository root). Returns the path written.",
        input_schema = input_schema::<params::ExportMarkdown>(),
        output_schema = schema::object_with(&[("path", "string")]),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn export_markdown(&self, Parameters(p): Parameters<params::ExportMarkdown>) -> CallToolResult {
        let (files, tracker, data_dir) = (self.files.clone(), self.tracker.clone(), self.context.data_dir.clone());
        let written = off_thread(move || {
            let out = files.markdown_target(p.path.as_deref().unwrap_or(crate::import::STATUS_FILE))?;
            tracker.export_markdown(data_dir.as_deref(), &out)
        });
        answer(written.await.map(|p| json!({ "path": p.display().to_string() })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_rmcps_structured_result_byte_for_byte() {
        let value = json!({"id": "a", "title": "quote \" and \\ and é\n", "metadata": {"z": 1, "a": [true, null]}, "version": 3});
        let ours = success(value.clone());
        assert_eq!(ours, CallToolResult::structured(value.clone()));
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&CallToolResult::structured(value)).unwrap()
        );
    }
}

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
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Serialize;
use serde_json::Value;

use super::WaymarkServer;
use super::schema::input_schema;
use crate::error::{Error, Result};
use crate::ops::{self, EnhancementAction};
use crate::progress::{Progress, Step};
use crate::sync::SyncAnswer;

impl WaymarkServer {
    /// The author of a write, and the agent of a claim: the server's agent
    /// (`serve --as`, `WAYMARK_AGENT`) when given, else the calling client's
    /// name.
    fn author(&self, ctx: &RequestContext<RoleServer>) -> String {
        match &self.context.agent {
            Some(agent) => agent.clone(),
            None => author(ctx),
        }
    }
}

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

/// The operation's answer, serialized as it is (the CLI's `--json` prints
/// the same value), or its error.
fn answer<T: Serialize>(result: Result<T>) -> CallToolResult {
    match result.and_then(|v| serde_json::to_value(v).map_err(|e| Error::Corrupt(e.to_string()))) {
        Ok(value) => success(value),
        Err(e) => failure(&e),
    }
}

/// Progress notifications for one request: sent when the request carries a
/// progress token, in order, and all of them before the answer (the answer
/// waits for [`Notifier::finish`]).
struct Notifier {
    progress: Progress,
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl Notifier {
    fn of(ctx: &RequestContext<RoleServer>) -> Notifier {
        // The client's `notifications/cancelled` cancels `ctx.ct` (rmcp
        // drops the answer); the work stops at its next check.
        let ct = ctx.ct.clone();
        let cancelled = move || ct.is_cancelled();
        let Some(token) = ctx.meta.get_progress_token() else {
            return Notifier {
                progress: Progress::none().cancelled_by(cancelled),
                sender: None,
            };
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Step>();
        let peer = ctx.peer.clone();
        let sender = tokio::spawn(async move {
            // MCP's progress only grows: each stage (commits read, then
            // records written) counts on from where the last one ended, and a
            // step that does not move it is not sent.
            let (mut base, mut stage, mut last, mut sent) = (0u64, "", 0u64, None);
            while let Some(step) = rx.recv().await {
                if step.what != stage {
                    (base, stage) = (base + last, step.what);
                }
                last = step.done;
                if sent.is_some_and(|sent| base + step.done <= sent) {
                    continue;
                }
                sent = Some(base + step.done);
                let mut note =
                    ProgressNotificationParam::new(token.clone(), (base + step.done) as f64).with_message(step.what);
                if let Some(total) = step.total {
                    note = note.with_total((base + total) as f64);
                }
                if peer.notify_progress(note).await.is_err() {
                    break;
                }
            }
        });
        Notifier {
            progress: Progress::to(move |step| {
                let _ = tx.send(step.clone());
            })
            .cancelled_by(cancelled),
            sender: Some(sender),
        }
    }

    /// What the work reports to.
    fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Wait until every step reported is sent (the work is done and has
    /// dropped its copy of the progress).
    async fn finish(self) {
        drop(self.progress);
        if let Some(sender) = self.sender {
            let _ = sender.await;
        }
    }
}

/// At most one word search per core but one runs at once (at least one):
/// a core stays free for every other call, however many clients search at
/// once. A search waits its turn here without a thread; one whose
/// client gives up leaves the queue.
static SEARCHES: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
});

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
    tracker: &ops::Tracker,
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

#[tool_router(vis = "pub(super)")]
impl WaymarkServer {
    #[tool(
        description = "Create a work item (under parent_id if given); returns it with id and version.",
        input_schema = input_schema::<ops::NewWorkItem>(),
        annotations(destructive_hint = false)
    )]
    async fn create_work_item(
        &self,
        Parameters(p): Parameters<ops::NewWorkItem>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.create_work_item(&self.author(&ctx), p))
    }

    #[tool(
        description = "Change the given fields. version: as you last read it (stale: nothing is written). \"\" clears a text field.",
        input_schema = input_schema::<ops::WorkItemUpdate>()
    )]
    async fn update_work_item(
        &self,
        Parameters(p): Parameters<ops::WorkItemUpdate>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.update_work_item(&self.author(&ctx), p))
    }

    #[tool(
        description = "One work item: ancestors, descendants (100 a page), dependencies, conflicts, claim, history.",
        input_schema = input_schema::<ops::WorkItemQuery>(),
        annotations(read_only_hint = true)
    )]
    async fn query_work_item(&self, Parameters(p): Parameters<ops::WorkItemQuery>) -> CallToolResult {
        answer(self.tracker.query_work_item_with(p))
    }

    #[tool(
        description = "Work items, oldest first, by filters or words (counts cap at 1000).",
        input_schema = input_schema::<ops::WorkItemFilter>(),
        annotations(read_only_hint = true)
    )]
    async fn list_work_items(&self, Parameters(p): Parameters<ops::WorkItemFilter>) -> CallToolResult {
        // A word search can take a hundred milliseconds on a big store: it
        // runs on a blocking thread (with a reader of its own), so the
        // server's thread goes on answering every other client meanwhile.
        if p.text.as_deref().is_some_and(|t| !t.trim().is_empty()) {
            let tracker = self.tracker.clone();
            let _turn = SEARCHES.acquire().await;
            return answer(off_thread(move || tracker.list_work_items(p)).await);
        }
        answer(self.tracker.list_work_items(p))
    }

    #[tool(
        description = "Items that can start now (active, all they wait for done), by priority then age.",
        input_schema = input_schema::<ops::ReadyQuery>(),
        annotations(read_only_hint = true)
    )]
    async fn list_ready_work(
        &self,
        Parameters(p): Parameters<ops::ReadyQuery>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.ready_work_for(&self.author(&ctx), p))
    }

    #[tool(
        description = "Claim an item (id, or next: the first ready) for minutes (30); release ends it, force takes it over. claim.state: confirmed, tentative (offline) or lost.",
        input_schema = input_schema::<ops::ClaimRequest>(),
        annotations(destructive_hint = false)
    )]
    async fn claim_work_item(
        &self,
        Parameters(p): Parameters<ops::ClaimRequest>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(crate::sync::claim(&self.tracker, self.context.settings.as_ref(), &self.author(&ctx), p).await)
    }

    #[tool(
        description = "Add or remove a dependency. depends_on: source waits for target; blocks: the reverse. Cycles refused.",
        input_schema = input_schema::<ops::DependencyChange>()
    )]
    async fn manage_dependency(
        &self,
        Parameters(p): Parameters<ops::DependencyChange>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.manage_dependency(&self.author(&ctx), p))
    }

    #[tool(
        description = "Record a deployed commit with the vendors and work items it shipped.",
        input_schema = input_schema::<ops::NewDeployment>(),
        annotations(destructive_hint = false)
    )]
    async fn record_deployment(
        &self,
        Parameters(p): Parameters<ops::NewDeployment>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.record_deployment(&self.author(&ctx), p))
    }

    #[tool(
        description = "Deployments, newest first; by vendor or work item.",
        input_schema = input_schema::<ops::DeploymentFilter>(),
        annotations(read_only_hint = true)
    )]
    async fn list_deployments(&self, Parameters(p): Parameters<ops::DeploymentFilter>) -> CallToolResult {
        answer(self.tracker.list_deployments(p))
    }

    #[tool(
        description = "Track a vendor: a component with health and test results (starts broken).",
        input_schema = input_schema::<ops::NewVendor>(),
        annotations(destructive_hint = false)
    )]
    async fn create_vendor(
        &self,
        Parameters(p): Parameters<ops::NewVendor>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.create_vendor(&self.author(&ctx), p))
    }

    #[tool(
        description = "One vendor by name, in any case.",
        input_schema = input_schema::<ops::VendorQuery>(),
        annotations(read_only_hint = true)
    )]
    async fn query_vendor_status(&self, Parameters(p): Parameters<ops::VendorQuery>) -> CallToolResult {
        answer(self.tracker.query_vendor_status(&p.name))
    }

    #[tool(
        description = "Change a vendor's status, extractor version or metadata; version as last read.",
        input_schema = input_schema::<ops::VendorUpdate>(),
        annotations(destructive_hint = false)
    )]
    async fn update_vendor_status(
        &self,
        Parameters(p): Parameters<ops::VendorUpdate>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.update_vendor_status(&self.author(&ctx), p))
    }

    #[tool(
        description = "Vendors by name (tests: passing/total).",
        input_schema = input_schema::<ops::VendorFilter>(),
        annotations(read_only_hint = true)
    )]
    async fn list_vendors(&self, Parameters(p): Parameters<ops::VendorFilter>) -> CallToolResult {
        answer(self.tracker.list_vendors(p))
    }

    #[tool(
        description = "The project configuration and sync health.",
        input_schema = input_schema::<ops::NoArguments>(),
        annotations(read_only_hint = true)
    )]
    async fn get_project_configuration(&self, Parameters(_): Parameters<ops::NoArguments>) -> CallToolResult {
        answer(self.tracker.configuration_view())
    }

    #[tool(
        description = "Change configuration fields; \"\" clears one.",
        input_schema = input_schema::<ops::ConfigurationUpdate>(),
        annotations(destructive_hint = false)
    )]
    async fn update_project_configuration(
        &self,
        Parameters(p): Parameters<ops::ConfigurationUpdate>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.configure(&self.author(&ctx), p))
    }

    #[tool(
        description = "Planned enhancements: create (title), update (id, version), get (id) or list (priority, status and target_quarter filter).",
        input_schema = input_schema::<ops::EnhancementRequest>(),
        annotations(destructive_hint = false)
    )]
    async fn manage_enhancement(
        &self,
        Parameters(p): Parameters<ops::EnhancementRequest>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let action = match p.into_action() {
            Ok(action) => action,
            Err(e) => return failure(&e),
        };
        match action {
            EnhancementAction::Create(input) => answer(self.tracker.create_enhancement(&self.author(&ctx), input)),
            EnhancementAction::Update(input) => answer(self.tracker.update_enhancement(&self.author(&ctx), input)),
            EnhancementAction::Get(id) => answer(self.tracker.get_enhancement(&id)),
            EnhancementAction::List(filter) => answer(self.tracker.list_enhancements(filter)),
        }
    }

    #[tool(
        description = "Archive completed or deleted work items untouched for older_than_days (whole subtrees).",
        input_schema = input_schema::<ops::ArchiveRequest>()
    )]
    async fn archive_work_items(
        &self,
        Parameters(p): Parameters<ops::ArchiveRequest>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (tracker, author, notifier) = (self.tracker.clone(), self.author(&ctx), Notifier::of(&ctx));
        let progress = notifier.progress();
        let archived = off_thread(move || tracker.archive_work_items_with(&author, p, &progress)).await;
        notifier.finish().await;
        answer(archived)
    }

    #[tool(
        description = "Where the project stands: counts and the first rows of each list (json), or the report (markdown).",
        input_schema = input_schema::<ops::StatusRequest>(),
        annotations(read_only_hint = true)
    )]
    async fn get_project_status(&self, Parameters(p): Parameters<ops::StatusRequest>) -> CallToolResult {
        answer(self.tracker.project_status(&p))
    }

    #[tool(
        description = "Sync with the team's hub: status (health) or now (one round, then health).",
        input_schema = input_schema::<ops::SyncRequest>(),
        annotations(destructive_hint = false)
    )]
    async fn sync(
        &self,
        Parameters(p): Parameters<ops::SyncRequest>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match p.action.trim().to_ascii_lowercase().as_str() {
            "status" => answer(SyncAnswer::of(&self.tracker, None)),
            "now" => {
                let Some(settings) = self.context.settings.clone() else {
                    return failure(&Error::invalid(
                        "action",
                        crate::sync::SyncFailure::NotConfigured.to_string(),
                    ));
                };
                let notifier = Notifier::of(&ctx);
                let round = crate::sync::sync_once_with(self.tracker.store(), &settings, notifier.progress()).await;
                notifier.finish().await;
                match round {
                    Ok(round) => answer(SyncAnswer::of(&self.tracker, Some(round))),
                    Err(e) => CallToolResult::error(vec![ContentBlock::text(e.sentence())]),
                }
            }
            other => failure(&Error::invalid(
                "action",
                format!("{other:?} is not one of status, now"),
            )),
        }
    }

    #[tool(
        description = "Wait up to timeout_s for changes, local or pulled; returns them and the next cursor (default: now).",
        input_schema = input_schema::<ops::WaitForChanges>(),
        annotations(read_only_hint = true)
    )]
    async fn wait_for_changes(&self, Parameters(p): Parameters<ops::WaitForChanges>) -> CallToolResult {
        answer(
            wait_off_thread(&self.tracker, p)
                .await
                .unwrap_or_else(|e| Err(Error::Io(e))),
        )
    }

    #[tool(
        description = "Open sync conflicts: concurrent values of a field (who, when, dot), tree and dependency conflicts.",
        input_schema = input_schema::<ops::ConflictQuery>(),
        annotations(read_only_hint = true)
    )]
    async fn list_conflicts(&self, Parameters(p): Parameters<ops::ConflictQuery>) -> CallToolResult {
        answer(self.tracker.conflicts(p))
    }

    #[tool(
        description = "Keep one value of a conflict, by value or dot; every replica adopts it. Other kinds clear once fixed (move the item, remove a dependency, set the field).",
        input_schema = input_schema::<ops::ConflictChoice>()
    )]
    async fn resolve_conflict(
        &self,
        Parameters(p): Parameters<ops::ConflictChoice>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        answer(self.tracker.resolve_conflict_choice(&self.author(&ctx), p))
    }

    #[tool(
        description = "Import git history (incremental): deployments, branch work items, vendor status from vendor(name): subjects.",
        input_schema = input_schema::<ops::GitImport>(),
        annotations(destructive_hint = false)
    )]
    async fn import_git_history(
        &self,
        Parameters(p): Parameters<ops::GitImport>,
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
        let (tracker, author) = (self.tracker.clone(), self.author(&ctx));
        let notifier = Notifier::of(&ctx);
        let progress = notifier.progress();
        let imported = off_thread(move || tracker.import_git_with(&author, &repo?, &progress)).await;
        notifier.finish().await;
        answer(imported)
    }

    #[tool(
        description = "Import a legacy .project_status.md (idempotent); lists skipped lines and why.",
        input_schema = input_schema::<ops::MarkdownImport>(),
        annotations(destructive_hint = false)
    )]
    async fn import_markdown(
        &self,
        Parameters(p): Parameters<ops::MarkdownImport>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (files, tracker, author) = (self.files.clone(), self.tracker.clone(), self.author(&ctx));
        let notifier = Notifier::of(&ctx);
        let progress = notifier.progress();
        let imported = off_thread(move || {
            let (path, text) = files.read_markdown(&p.path)?;
            tracker.import_markdown_text_with(&author, &text, &path.display().to_string(), &progress)
        })
        .await;
        notifier.finish().await;
        answer(imported)
    }

    #[tool(
        description = "Write the status report as markdown (default .project_status.md in the repository).",
        input_schema = input_schema::<ops::MarkdownExport>()
    )]
    async fn export_markdown(&self, Parameters(p): Parameters<ops::MarkdownExport>) -> CallToolResult {
        let (files, tracker, data_dir) = (self.files.clone(), self.tracker.clone(), self.context.data_dir.clone());
        let written = off_thread(move || {
            let out = files.markdown_target(p.path.as_deref().unwrap_or(crate::import::STATUS_FILE))?;
            tracker.export_markdown(data_dir.as_deref(), &out)
        });
        answer(written.await.map(crate::import::Written::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

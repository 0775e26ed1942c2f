//! The MCP server: every operation of [`Tracker`] as a tool, the status
//! report and single work items as resources, over stdio.
//!
//! This module is the only one that knows rmcp and JSON Schema. Each tool is
//! a thin wrapper over one operation (see `tools.rs`); the arguments are
//! structs of `params.rs` that convert into the operations' inputs; the
//! schemas come from `schema.rs`. It never writes to stdout except through
//! the protocol: logs go through `tracing`, which the binary sends to stderr.
//!
//! Tool sets (`--toolset`, `--read-only`):
//! - `core` (default): the ten tools of the earlier tracker
//!   ([`LEGACY_TOOLS`]) plus `list_ready_work` and `manage_dependency`, the
//!   two that make the work-item tree usable for planning,
//!   `get_project_status`, where a session starts, and `wait_for_changes`,
//!   how an agent waits for the others. Its `tools/list` stays
//!   under 8 KB: every byte of it sits in the model's context all session.
//! - `all`: every tool (under 12 KB).
//! - `read_only`: of the chosen set, only the tools annotated read-only.
//!   `manage_enhancement` writes, so it goes too.

mod http;
mod limits;
mod schema;
mod stdio;
mod subscribe;
mod tools;

use std::fmt;
use std::str::FromStr;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, ServerInitializeError};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt, tool_handler};

use crate::import::scope::FileScope;
use crate::ops::Tracker;

pub use http::{HttpAccess, check_bind as check_http_bind, serve_http, serve_http_then};

/// The tools of the earlier tracker, kept under their names.
pub const LEGACY_TOOLS: &[&str] = &[
    "create_work_item",
    "update_work_item",
    "query_work_item",
    "list_work_items",
    "record_deployment",
    "query_vendor_status",
    "update_vendor_status",
    "get_project_configuration",
    "update_project_configuration",
    "create_vendor",
];

/// The `core` tool set (the default): the legacy tools plus ready work,
/// dependencies, the status report and waiting for changes.
pub const CORE_TOOLS: &[&str] = &[
    "create_work_item",
    "update_work_item",
    "query_work_item",
    "list_work_items",
    "record_deployment",
    "query_vendor_status",
    "update_vendor_status",
    "get_project_configuration",
    "update_project_configuration",
    "create_vendor",
    "list_ready_work",
    "manage_dependency",
    "get_project_status",
    "wait_for_changes",
    "claim_work_item",
];

const STATUS_URI: &str = "waymark://status";
const WORK_ITEM_TEMPLATE: &str = "waymark://work-item/{id}";
const WORK_ITEM_PREFIX: &str = "waymark://work-item/";
/// The longest resource uri read (a work item's is about 56 bytes).
const MAX_URI: usize = 300;

const INSTRUCTIONS: &str = "Waymark is this project's tracker. Work items (project, session, task, research) form a \
tree at most 6 levels deep; ids are UUIDs. Start with list_ready_work or get_project_status; query_work_item shows \
one item in full. Updates take the version you last read: after a stale-version error, read again and retry. \
Lists answer pages of 20 rows (limit: up to 100) under columns; pass next_cursor back as cursor for more. Error \
messages say what to do next.";

/// Which tools the server offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Toolset {
    /// The tools of the earlier tracker plus `list_ready_work`,
    /// `manage_dependency`, `get_project_status` and `wait_for_changes`.
    #[default]
    Core,
    /// Every tool.
    All,
}

impl FromStr for Toolset {
    type Err = String;

    fn from_str(s: &str) -> Result<Toolset, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "core" => Ok(Toolset::Core),
            "all" => Ok(Toolset::All),
            _ => Err(format!("unknown toolset {s:?}; use core or all")),
        }
    }
}

impl fmt::Display for Toolset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Toolset::Core => "core",
            Toolset::All => "all",
        })
    }
}

/// How `waymark serve` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeOptions {
    pub toolset: Toolset,
    /// Offer only the tools that do not write.
    pub read_only: bool,
}

/// Where `serve` runs: what the sync and import/export tools need beyond
/// the store.
#[derive(Clone, Debug, Default)]
pub struct ServeContext {
    /// The store's directory (for the user's report template).
    pub data_dir: Option<std::path::PathBuf>,
    /// The enclosing git repository (for git import and the report's default path).
    pub repo_root: Option<std::path::PathBuf>,
    /// Sync settings, when a hub is configured.
    pub settings: Option<crate::config::Settings>,
    /// The agent every write and claim of this server is attributed to
    /// (`serve --as`, `WAYMARK_AGENT`), instead of each client's name.
    pub agent: Option<String>,
    /// More directories the file tools may use (`serve --file-root`),
    /// beside the repository (or the data directory's parent outside git).
    pub file_roots: Vec<std::path::PathBuf>,
}

impl ServeContext {
    /// Where the file tools may read and write: the repository (or the
    /// data directory's parent outside git) and the extra roots, never the
    /// data directory. With none of them, no file at all.
    pub(crate) fn file_scope(&self) -> FileScope {
        let home = self.repo_root.clone().or_else(|| {
            self.data_dir
                .as_deref()
                .and_then(|d| d.parent())
                .map(|p| p.to_path_buf())
        });
        FileScope::new(
            home.into_iter().chain(self.file_roots.iter().cloned()),
            self.data_dir.as_deref(),
        )
    }
}

/// The MCP server over one tracker.
#[derive(Clone)]
pub struct WaymarkServer {
    tracker: Tracker,
    context: ServeContext,
    files: FileScope,
    tool_router: ToolRouter<WaymarkServer>,
    /// This session's resource subscriptions (a clone starts with none).
    subscriptions: subscribe::Subscriptions,
}

impl WaymarkServer {
    /// A server offering the tools `options` select.
    pub fn new(tracker: Tracker, options: ServeOptions) -> WaymarkServer {
        let mut router = Self::tool_router();
        let names: Vec<String> = router.map.keys().map(|k| k.to_string()).collect();
        for name in names {
            let read_only = router.map[name.as_str()]
                .attr
                .annotations
                .as_ref()
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false);
            let outside_toolset = options.toolset == Toolset::Core && !CORE_TOOLS.contains(&name.as_str());
            if outside_toolset || (options.read_only && !read_only) {
                router.remove_route(&name);
            }
        }
        WaymarkServer {
            tracker,
            context: ServeContext::default(),
            files: FileScope::default(),
            tool_router: router,
            subscriptions: subscribe::Subscriptions::default(),
        }
    }

    /// The same server, knowing where it runs.
    pub fn with_context(mut self, context: ServeContext) -> WaymarkServer {
        self.files = context.file_scope();
        self.context = context;
        self
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WaymarkServer {
    /// Every call is held to the bounds of `limits.rs` before its tool runs.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if let Some(route) = self.tool_router.map.get(request.name.as_ref())
            && let Err(message) = limits::check_arguments(&route.attr.input_schema, request.arguments.as_ref())
        {
            tracing::debug!("tool arguments refused: {message}");
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let call = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("waymark", env!("CARGO_PKG_VERSION")).with_title("Waymark"))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(STATUS_URI, "status")
                .with_title("Project status")
                .with_description("The status report: vendors, active work, deployments, enhancements, conflicts.")
                .with_mime_type("text/markdown"),
        ]))
    }

    /// Notify this session when `uri` changes (see `subscribe.rs`).
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = check_subscribable(&request.uri)?;
        self.subscriptions.add(uri, &self.tracker, context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.remove(&check_subscribable(&request.uri)?);
        Ok(())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(WORK_ITEM_TEMPLATE, "work-item")
                .with_title("Work item")
                .with_description("One work item, every field, as JSON.")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        if uri.len() > MAX_URI {
            return Err(McpError::resource_not_found(
                format!(
                    "a uri of {} bytes names no resource; the resources are {STATUS_URI} and {WORK_ITEM_TEMPLATE}",
                    uri.len()
                ),
                None,
            ));
        }
        let data = Some(serde_json::json!({ "uri": uri }));
        let not_found = |message: String| McpError::resource_not_found(message, data.clone());
        // A refused read is "not found"; a failing store is an internal error.
        let failed = |e: crate::Error| {
            if e.is_user_error() {
                not_found(e.to_string())
            } else {
                tracing::error!(code = e.code(), "reading {uri} failed: {e}");
                McpError::internal_error(e.to_string(), data.clone())
            }
        };
        let contents = if uri == STATUS_URI {
            let md = crate::report::bounded_markdown(&self.tracker).map_err(failed)?;
            ResourceContents::text(md, uri).with_mime_type("text/markdown")
        } else if let Some(id) = uri.strip_prefix(WORK_ITEM_PREFIX) {
            let item = self.tracker.get_work_item(id).map_err(failed)?;
            let json = serde_json::to_string(&item).map_err(|e| McpError::internal_error(e.to_string(), None))?;
            ResourceContents::text(json, uri).with_mime_type("application/json")
        } else {
            return Err(not_found(format!(
                "unknown resource {uri:?}; the resources are {STATUS_URI} and {WORK_ITEM_TEMPLATE}"
            )));
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// The resource `uri` names, in the form notifications name it; refused
/// when it names none.
fn check_subscribable(uri: &str) -> Result<String, McpError> {
    if uri == STATUS_URI {
        return Ok(uri.to_owned());
    }
    if uri.len() <= MAX_URI
        && let Some(id) = uri.strip_prefix(WORK_ITEM_PREFIX)
        && let Ok(id) = crate::domain::ids::parse("id", id)
    {
        return Ok(format!("{WORK_ITEM_PREFIX}{id}"));
    }
    Err(McpError::invalid_params(
        format!("cannot subscribe to {uri:?}; the resources are {STATUS_URI} and {WORK_ITEM_TEMPLATE}"),
        None,
    ))
}

/// Serve MCP on stdin/stdout until stdin closes. Builds its own runtime.
/// With a hub configured, the sync worker runs beside the server (rounds on
/// a timer and soon after local writes); inside a git repository, a watcher
/// imports new commits.
pub fn serve_stdio(tracker: Tracker, options: ServeOptions, context: ServeContext) -> std::io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if stdio_are_pipes() {
        builder.on_thread_park(wait_briefly_for_stdin);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let background = Background::start(&tracker, options, &context);
        let server = WaymarkServer::new(tracker.clone(), options).with_context(context);
        let result = serve_on_stdio(server, options).await;
        background.stop(&tracker);
        result
    })
}

/// What runs beside the server, whatever its transport: the sync worker
/// when a hub is configured, the git watcher inside a repository (unless
/// read-only). Start it inside the runtime that serves.
struct Background {
    _watcher: Option<crate::watch::WatcherHandle>,
    worker: Option<crate::sync::SyncHandle>,
}

impl Background {
    fn start(tracker: &Tracker, options: ServeOptions, context: &ServeContext) -> Background {
        let watcher = match (&context.repo_root, &context.data_dir) {
            (Some(root), Some(dir)) if !options.read_only => {
                Some(crate::watch::spawn_watcher(tracker.clone(), root, dir))
            }
            _ => None,
        };
        let worker = match context.settings.as_ref().filter(|s| s.hub().is_some()) {
            Some(settings) => match crate::sync::hub_for(settings) {
                Ok((hub, space)) => {
                    if let Err(e) = crate::sync::bind_cursor(tracker.store(), settings) {
                        tracing::warn!("cannot prepare sync: {e}");
                    }
                    let handle = crate::sync::spawn_worker(tracker.store().clone(), hub, space, settings);
                    let notify = handle.clone();
                    tracker
                        .store()
                        .set_write_hook(Some(std::sync::Arc::new(move || notify.local_write())));
                    tracing::info!(hub = ?settings.hub_display(), "sync worker started");
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!("sync is off: {e}");
                    None
                }
            },
            None => None,
        };
        Background {
            _watcher: watcher,
            worker,
        }
    }

    /// Unhook the worker from local writes and stop it; the watcher stops
    /// when dropped.
    fn stop(self, tracker: &Tracker) {
        tracker.store().set_write_hook(None);
        if let Some(worker) = &self.worker {
            worker.stop();
        }
    }
}

async fn serve_on_stdio(server: WaymarkServer, options: ServeOptions) -> std::io::Result<()> {
    tracing::info!(toolset = %options.toolset, read_only = options.read_only, "serving MCP on stdio");
    match stdio_pipes() {
        Some((stdin, stdout)) => serve_on(server, stdin, stdout).await,
        None => {
            let (stdin, stdout) = rmcp::transport::stdio();
            serve_on(server, stdin, stdout).await
        }
    }
}

/// How long the stdio server's thread keeps running once it has nothing
/// to do (an answer written, no request waiting), watching stdin, before it
/// sleeps in the event loop. See [`wait_briefly_for_stdin`].
const IDLE_WATCH: std::time::Duration = std::time::Duration::from_micros(100);

/// Runs each time the stdio server's runtime is about to sleep: watch stdin
/// for up to [`IDLE_WATCH`] and return as soon as a request (or the end of
/// input) is there, so that a request sent right after an answer is read
/// without the thread going to sleep and being woken.
///
/// Why: a sleeping thread lets its (virtual) CPU go idle, and on a VM whose
/// idle vCPUs halt (as the benchmark machine's do: haltpoll with no guest
/// polling), waking the thread and running the next request on a vCPU just
/// out of halt costs about twice the request's own CPU time. Measured with
/// the benchmark's client on an idle machine, `query_vendor_status` took
/// 100-137 µs per round trip this way and 60-72 µs with the watch (see
/// BENCHMARKS.md). The cost is bounded: at most `IDLE_WATCH` of CPU per
/// burst of requests, nothing while the client is quiet (the thread then
/// sleeps as before), and nothing after stdin closes (poll reports the
/// hang-up at once).
fn wait_briefly_for_stdin() {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let now = Timespec { tv_sec: 0, tv_nsec: 0 };
    let until = std::time::Instant::now() + IDLE_WATCH;
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        if poll(&mut fds, Some(&now)).map_or(true, |ready| ready > 0) || std::time::Instant::now() >= until {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Whether stdin and stdout are both pipes (as when a client starts the server).
fn stdio_are_pipes() -> bool {
    use std::os::fd::AsFd;
    is_pipe(std::io::stdin().as_fd()) && is_pipe(std::io::stdout().as_fd())
}

fn is_pipe(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fd.try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo())
}

/// stdin and stdout as non-blocking pipes driven by the runtime's event
/// loop, when both are pipes (as when a client starts the server).
/// `tokio::io::stdin()`/`stdout()` hand every read and write to a blocking
/// pool thread and back, which costs about 100 µs per request.
fn stdio_pipes() -> Option<(tokio::net::unix::pipe::Receiver, tokio::net::unix::pipe::Sender)> {
    use std::os::fd::AsFd;
    // Check both before converting either: a conversion makes its pipe
    // non-blocking, which the fallback's blocking reader must never see.
    if !stdio_are_pipes() {
        return None;
    }
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(stdin).ok()?;
    let tx = tokio::net::unix::pipe::Sender::from_owned_fd(stdout).ok()?;
    Some((rx, tx))
}

async fn serve_on<R, W>(server: WaymarkServer, stdin: R, stdout: W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let transport = stdio::StdioTransport::new(stdin, stdout);
    match server.serve(transport).await {
        Ok(running) => {
            let reason = running.waiting().await.map_err(std::io::Error::other)?;
            tracing::info!(?reason, "MCP session ended");
            Ok(())
        }
        Err(ServerInitializeError::ConnectionClosed(_)) => {
            tracing::info!("stdin closed before the MCP handshake");
            Ok(())
        }
        Err(e) => Err(std::io::Error::other(e)),
    }
}

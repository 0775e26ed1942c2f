//! The command line's arguments: every command and flag, as clap derives.
//! Flags are named for people at a terminal; `run.rs` turns them into the
//! operations' inputs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "waymark",
    version,
    about = "An offline-first project tracker for coding agents",
    max_term_width = 100
)]
pub(super) struct Cli {
    /// The directory that holds the store (default: the nearest .waymark/ up from here,
    /// else .waymark/ at the root of the enclosing git repository).
    #[arg(long, global = true, env = "WAYMARK_DATA_DIR", value_name = "DIR")]
    pub(super) data_dir: Option<PathBuf>,

    /// The agent this command writes and claims as (default: cli).
    #[arg(long = "as", global = true, env = "WAYMARK_AGENT", value_name = "NAME")]
    pub(super) agent: Option<String>,

    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum HubAction {
    /// List the replicas of the space: what each has pulled, its name, host and last contact.
    Replicas {
        #[arg(long)]
        json: bool,
    },
    /// Retire a replica that will not come back (history below it can then be compacted);
    /// if it does come back, it catches up from snapshots, keeping what it has not pushed.
    Forget {
        /// The replica id, as `waymark hub replicas` lists it.
        replica: String,
        #[arg(long)]
        json: bool,
    },
    /// Fold the history every live replica has pulled into per-record snapshots
    /// (replicas silent past [sync] retention_days are retired first).
    Compact {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Create the store and its config (idempotent); optionally name the sync hub.
    Init {
        /// The Postgres hub to sync with, e.g. postgres://user@host:5432/waymark.
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        /// The space (project) on the hub.
        #[arg(long, value_name = "NAME")]
        space: Option<String>,
    },
    /// Run one sync round with the hub: push local changes, pull the others'.
    Sync {
        /// Only show this replica's sync health (no round).
        #[arg(long)]
        status: bool,
        #[arg(long)]
        json: bool,
    },
    /// Administer the hub's space: its replicas and its history.
    Hub {
        #[command(subcommand)]
        action: HubAction,
    },
    /// The MCP server on stdio (stdout carries only the protocol; logs go to stderr), or over HTTP with --http.
    Serve {
        /// core: the essential tools (a lean list, under 8 KB of the model's context); all: every tool.
        #[arg(long, default_value = "core", value_parser = ["core", "all"])]
        toolset: String,
        /// Offer only the tools that do not write.
        #[arg(long)]
        read_only: bool,
        /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8080; port 0 picks one).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Allow --http on an address that is not loopback; needs a token (WAYMARK_HTTP_TOKEN or --token-file).
        #[arg(long, requires = "http")]
        allow_remote: bool,
        /// A file holding the bearer token HTTP clients must send (WAYMARK_HTTP_TOKEN works too).
        #[arg(long, value_name = "FILE", requires = "http")]
        token_file: Option<PathBuf>,
        /// A browser origin allowed to call the HTTP server (e.g. https://app.example.com:443); repeatable.
        #[arg(long, value_name = "ORIGIN", requires = "http")]
        allow_origin: Vec<String>,
        /// A directory the file tools (import_markdown, export_markdown, import_git_history) may
        /// use besides the repository; repeatable. They never touch .waymark/ or .git/.
        #[arg(long, value_name = "DIR")]
        file_root: Vec<PathBuf>,
    },
    /// Print what changes in the store, as JSON lines (each what wait_for_changes answers), until stopped.
    Watch {
        /// Start after this cursor (from an earlier line); default: now.
        #[arg(long)]
        cursor: Option<String>,
        /// Only these collections (work_items, dependencies, vendors, deployments, deployment_links,
        /// enhancements, configuration), comma-separated.
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// Only this work item and the items under it.
        #[arg(long, value_name = "ID")]
        under: Option<String>,
        /// Print one line and stop: the first change (or, with --timeout, none when it runs out).
        #[arg(long)]
        once: bool,
        /// With --once: give up after this many seconds (0 to 60) and print an empty answer.
        #[arg(long, requires = "once", value_name = "SECONDS")]
        timeout: Option<i64>,
        /// Accepted like every command's --json: watch always prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the read-only board of this store on a loopback port and print its URL (Ctrl-C stops it).
    Board {
        /// Where to listen (loopback only; port 0 picks a free one).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        addr: std::net::SocketAddr,
        /// Open the board in a browser.
        #[arg(long)]
        open: bool,
    },
    /// The status report: vendors, open work, deployments, enhancements, conflicts
    /// (--json: what get_project_status answers, a summary unless --format markdown).
    Status {
        #[arg(long)]
        json: bool,
        /// With --json: json (the summary, the default) or markdown (the report, bounded).
        #[arg(long, requires = "json")]
        format: Option<String>,
    },
    /// Work items: create, show, update, delete, list.
    #[command(subcommand)]
    Item(ItemCommand),
    /// Ready work: active items with nothing open that they wait for.
    Ready {
        #[arg(long = "type", value_name = "TYPE")]
        item_type: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Claim a work item for a lease (ID, or `next`: the first ready one); online, the hub's order decides.
    Claim {
        /// The item's id, or `next`.
        #[arg(value_name = "ID|next")]
        target: String,
        /// With `next`: only items of this type.
        #[arg(long = "type", value_name = "TYPE")]
        item_type: Option<String>,
        /// The lease in minutes (default 30).
        #[arg(long)]
        minutes: Option<u64>,
        /// Take the item from another agent's live claim.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Who wrote what to a work item: each field's last write and open conflicts, newest first.
    History {
        id: String,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Release a claim on a work item.
    Release {
        id: String,
        /// Release another agent's claim.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Dependencies between work items.
    #[command(subcommand)]
    Dep(DepCommand),
    /// Vendors: tracked components and their health.
    #[command(subcommand)]
    Vendor(VendorCommand),
    /// Deployments: what went out, with tests and links.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// The project configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Planned enhancements.
    #[command(subcommand)]
    Enhancement(EnhancementCommand),
    /// Archive old completed or deleted work items, and query the archive.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Open sync conflicts.
    Conflicts {
        /// Show at most this many (1-100).
        #[arg(long)]
        limit: Option<i64>,
        /// Start after this cursor (from an earlier page).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Resolve a sync conflict by choosing one of its values.
    Resolve {
        /// The conflict's id (collection/record_id/field), as `waymark conflicts` shows.
        id: String,
        /// The value to keep, as JSON (e.g. '"a title"' or 3); one of the listed values.
        #[arg(long, required_unless_present = "dot", conflicts_with = "dot")]
        value: Option<String>,
        /// Or the dot (replica:counter) of the value to keep, as `waymark conflicts --json` lists it.
        #[arg(long)]
        dot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild what is derived (rows, tree, blockers, conflicts) from the synced registers and compare;
    /// prints each difference and exits 1 on any.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Export the store.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Import into the store.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
pub(super) enum ItemCommand {
    /// Create a work item.
    Create {
        #[arg(long = "type", value_name = "TYPE", help = "project, session, task or research")]
        item_type: String,
        #[arg(long)]
        title: String,
        #[command(flatten)]
        fields: ItemFields,
        #[arg(long)]
        json: bool,
    },
    /// One work item with its ancestors, descendants and dependencies.
    Show {
        id: String,
        /// The next page of descendants (from an earlier answer).
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Update a work item; --version is the version you last read.
    Update {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long = "type", value_name = "TYPE")]
        item_type: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        fields: ItemFields,
        #[arg(long)]
        json: bool,
    },
    /// Soft-delete a work item.
    Delete {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        json: bool,
    },
    /// Restore a deleted work item.
    Restore {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        json: bool,
    },
    /// List work items (compact rows, in the order the store recorded them).
    List {
        #[arg(long = "type", value_name = "TYPE")]
        item_type: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        parent: Option<String>,
        /// Full-text search over titles and descriptions.
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        include_deleted: bool,
        /// List the archive instead, latest archived first (with --type and --text).
        #[arg(long)]
        archived: bool,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(super) struct ItemFields {
    #[arg(long)]
    pub(super) description: Option<String>,
    /// active, completed or blocked.
    #[arg(long)]
    pub(super) status: Option<String>,
    /// 0 (highest) to 4.
    #[arg(long)]
    pub(super) priority: Option<i64>,
    /// The parent's id (on update, "" moves the item to the root).
    #[arg(long)]
    pub(super) parent: Option<String>,
    #[arg(long)]
    pub(super) branch: Option<String>,
    #[arg(long)]
    pub(super) commit: Option<String>,
    #[arg(long)]
    pub(super) pr: Option<i64>,
    /// A JSON object, e.g. '{"description":"..."}' (merged on update; null removes a key).
    #[arg(long)]
    pub(super) metadata: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum DepCommand {
    /// SOURCE depends on TARGET (or, with --type blocks, SOURCE blocks TARGET).
    Add {
        source: String,
        target: String,
        #[arg(long = "type", default_value = "depends_on")]
        dependency_type: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a dependency.
    Remove {
        source: String,
        target: String,
        #[arg(long = "type", default_value = "depends_on")]
        dependency_type: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum VendorCommand {
    /// Create a vendor (it starts broken).
    Create {
        name: String,
        #[arg(long)]
        extractor_version: Option<String>,
        #[arg(long)]
        metadata: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A vendor's status, by name in any case.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Update a vendor; metadata keys are merged into what is stored.
    Update {
        name: String,
        #[arg(long)]
        version: i64,
        /// operational or broken.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        extractor_version: Option<String>,
        #[arg(long)]
        metadata: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List vendors by name.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum DeployCommand {
    /// Record a deployment.
    Record {
        /// The full 40-character commit hash.
        #[arg(long)]
        commit: String,
        /// When it was deployed (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        pr: Option<i64>,
        #[arg(long)]
        title: Option<String>,
        /// Test counts, e.g. unit=150,integration=30.
        #[arg(long)]
        tests: Option<String>,
        /// Whether it was constitutionally compliant (true or false).
        #[arg(long)]
        compliant: Option<bool>,
        /// A vendor it touched, by name or id (repeatable).
        #[arg(long = "vendor")]
        vendors: Vec<String>,
        /// A work item it delivered (repeatable).
        #[arg(long = "item")]
        items: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// One deployment.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Deployments, newest first.
    List {
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long)]
        item: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// The configuration and sync health.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change configuration fields ("" clears an optional one).
    Set {
        #[arg(long)]
        version: Option<i64>,
        /// feature, maintenance or research.
        #[arg(long)]
        context: Option<String>,
        /// The current session's work item id.
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        head: Option<String>,
        #[arg(long)]
        token_budget: Option<i64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(super) struct EnhancementFields {
    #[arg(long)]
    pub(super) description: Option<String>,
    /// 1 (highest) to 5.
    #[arg(long)]
    pub(super) priority: Option<i64>,
    /// planned, approved, implementing or completed.
    #[arg(long)]
    pub(super) status: Option<String>,
    /// e.g. 2026-Q1.
    #[arg(long)]
    pub(super) quarter: Option<String>,
    #[arg(long)]
    pub(super) requires_approval: Option<bool>,
    /// An enhancement it depends on (repeatable).
    #[arg(long = "depends-on")]
    pub(super) depends_on: Vec<String>,
}

#[derive(Subcommand)]
pub(super) enum EnhancementCommand {
    Create {
        #[arg(long)]
        title: String,
        #[command(flatten)]
        fields: EnhancementFields,
        #[arg(long)]
        json: bool,
    },
    /// One enhancement in full.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    Update {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        fields: EnhancementFields,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        priority: Option<i64>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        quarter: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ArchiveCommand {
    /// Archive completed or deleted items not updated for a while.
    Run {
        #[arg(long, default_value_t = 365)]
        older_than_days: i64,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Archived items.
    List {
        #[arg(long)]
        text: Option<String>,
        #[arg(long = "type", value_name = "TYPE")]
        item_type: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ExportCommand {
    /// The whole store as canonical JSON on stdout.
    Json,
    /// Write the status report as markdown (the template is .waymark/status.md.j2 when present).
    Markdown {
        /// Where to write it (default: .project_status.md at the repository root).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ImportCommand {
    /// Read a document from `waymark export json` (a file, or - for stdin) into an empty store.
    Json { file: PathBuf },
    /// Import deployments, branch work items, vendor status and the git state from git history.
    Git {
        /// The repository (default: the one holding the working directory).
        #[arg(long, value_name = "PATH")]
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import a legacy .project_status.md; prints what it imported and each line it skipped.
    Markdown {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Import session prompt files (markdown with YAML front matter) from a directory.
    Sessions {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

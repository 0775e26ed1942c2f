//! The command line: parse arguments, call one operation, print the result
//! (`--json` prints the same JSON the MCP tools return). Errors are one
//! sentence on stderr and a non-zero exit; logs go to stderr via tracing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{Map, Value};
use waymark::ops::{self, CLI_AUTHOR, Page, Tracker};
use waymark::report;

#[derive(Parser)]
#[command(
    name = "waymark",
    version,
    about = "An offline-first project tracker for coding agents",
    max_term_width = 100
)]
struct Cli {
    /// The directory that holds the store (default: the nearest .waymark/ up from here,
    /// else .waymark/ at the root of the enclosing git repository).
    #[arg(long, global = true, env = "WAYMARK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(long)]
        json: bool,
    },
    /// The MCP server on stdio (stdout carries only the protocol; logs go to stderr), or over HTTP with --http.
    Serve {
        /// core: the essential tools only; all: every tool.
        #[arg(long, default_value = "all", value_parser = ["core", "all"])]
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
    /// The status report: vendors, open work, deployments, enhancements, conflicts.
    Status {
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        json: bool,
    },
    /// Resolve a sync conflict by choosing one of its values.
    Resolve {
        /// The conflict's id (collection/record_id/field), as `waymark conflicts` shows.
        id: String,
        /// The chosen value, as JSON (e.g. '"a title"' or 3); one of the listed values.
        #[arg(long)]
        value: String,
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
enum ItemCommand {
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
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ItemFields {
    #[arg(long)]
    description: Option<String>,
    /// active, completed or blocked.
    #[arg(long)]
    status: Option<String>,
    /// 0 (highest) to 4.
    #[arg(long)]
    priority: Option<i64>,
    /// The parent's id (on update, "" moves the item to the root).
    #[arg(long)]
    parent: Option<String>,
    #[arg(long)]
    branch: Option<String>,
    #[arg(long)]
    commit: Option<String>,
    #[arg(long)]
    pr: Option<i64>,
    /// A JSON object, e.g. '{"description":"..."}' (merged on update; null removes a key).
    #[arg(long)]
    metadata: Option<String>,
}

#[derive(Subcommand)]
enum DepCommand {
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
enum VendorCommand {
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
enum DeployCommand {
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
enum ConfigCommand {
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
struct EnhancementFields {
    #[arg(long)]
    description: Option<String>,
    /// 1 (highest) to 5.
    #[arg(long)]
    priority: Option<i64>,
    /// planned, approved, implementing or completed.
    #[arg(long)]
    status: Option<String>,
    /// e.g. 2026-Q1.
    #[arg(long)]
    quarter: Option<String>,
    #[arg(long)]
    requires_approval: Option<bool>,
    /// An enhancement it depends on (repeatable).
    #[arg(long = "depends-on")]
    depends_on: Vec<String>,
}

#[derive(Subcommand)]
enum EnhancementCommand {
    Create {
        #[arg(long)]
        title: String,
        #[command(flatten)]
        fields: EnhancementFields,
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
enum ArchiveCommand {
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
enum ExportCommand {
    /// The whole store as canonical JSON on stdout.
    Json,
    /// Write the status report as markdown (the template is .waymark/status.md.j2 when present).
    Markdown {
        /// Where to write it (default: .project_status.md at the repository root).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
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

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let mut sentence = e.to_string();
            if let Some(cause) = e.chain().nth(1)
                && e.downcast_ref::<waymark::Error>().is_none()
            {
                sentence = format!("{sentence}: {cause}");
            }
            let _ = writeln!(io::stderr(), "error: {sentence}");
            ExitCode::FAILURE
        }
    }
}

/// Where the store lives: the flag or environment, else the nearest
/// `.waymark/` up from here, else `.waymark/` at the git root (or here).
fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    if let Some(found) = cwd.ancestors().map(|a| a.join(".waymark")).find(|p| p.is_dir()) {
        return Ok(found);
    }
    Ok(git_root(&cwd).unwrap_or(cwd).join(".waymark"))
}

/// The HTTP server's bearer token: the file's first line, else
/// `WAYMARK_HTTP_TOKEN`.
fn http_token(file: Option<&Path>) -> Result<Option<String>> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_owned())
        }
        None => std::env::var("WAYMARK_HTTP_TOKEN").ok().map(|t| t.trim().to_owned()),
    };
    Ok(token.filter(|t| !t.is_empty()))
}

fn git_root(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Open the store for a command that only reads: a missing store is an error
/// with a hint, not an empty file left behind.
fn open_existing(dir: &Path) -> Result<Tracker> {
    if !dir.join(waymark::store::DB_FILE).exists() {
        bail!(
            "no Waymark store at {}; run `waymark init` there, or pass --data-dir",
            dir.display()
        );
    }
    Ok(Tracker::open(dir)?)
}

fn parse_object(field: &str, text: Option<&str>) -> Result<Option<Map<String, Value>>> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(waymark::Error::invalid(field, "must be a JSON object like '{\"key\": \"value\"}'").into()),
        Err(e) => Err(waymark::Error::invalid(field, format!("is not valid JSON: {e}")).into()),
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn out(text: impl AsRef<str>) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_ref().as_bytes())?;
    if !text.as_ref().ends_with('\n') {
        o.write_all(b"\n")?;
    }
    Ok(())
}

fn show<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    if json { print_json(value) } else { out(human(value)) }
}

fn show_page<T: Serialize>(json: bool, page: &Page<T>, row: impl Fn(&T) -> String, empty: &str) -> Result<()> {
    if json {
        return print_json(page);
    }
    if page.items.is_empty() {
        return out(empty);
    }
    let mut text: String = page.items.iter().map(|r| row(r) + "\n").collect();
    let plus = if page.total_is_capped { "+" } else { "" };
    text.push_str(&format!("({} of {}{plus} shown", page.items.len(), page.total_count));
    if let Some(c) = &page.next_cursor {
        text.push_str(&format!("; next page: --cursor {c}"));
    }
    text.push(')');
    out(text)
}

fn item_line(r: &ops::WorkItemRow) -> String {
    format!(
        "{}  P{}  {:<9} {:<8} v{}  {}",
        r.id, r.priority, r.status, r.item_type, r.version, r.title
    )
}

fn item_human(i: &ops::WorkItem) -> String {
    let mut s = format!(
        "{} ({}) {}\n  id: {}\n  status: {}  priority: {}  version: {}\n",
        i.title,
        i.item_type,
        if i.deleted_at.is_some() { "[deleted]" } else { "" },
        i.id,
        i.status,
        i.priority,
        i.version
    );
    if let Some(p) = &i.parent_id {
        s.push_str(&format!("  parent: {p}  depth: {}\n", i.depth));
    }
    if let Some(d) = &i.description {
        s.push_str(&format!("  description: {d}\n"));
    }
    for (label, v) in [("branch", &i.branch_name), ("commit", &i.commit_hash)] {
        if let Some(v) = v {
            s.push_str(&format!("  {label}: {v}\n"));
        }
    }
    if let Some(n) = i.pr_number {
        s.push_str(&format!("  pr: #{n}\n"));
    }
    if i.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        s.push_str(&format!("  metadata: {}\n", i.metadata));
    }
    s.push_str(&format!("  updated {} by {}", i.updated_at, i.updated_by));
    s
}

fn vendor_human(v: &ops::Vendor) -> String {
    let tests = v
        .metadata
        .get("test_results")
        .map(|t| format!("  tests: {t}\n"))
        .unwrap_or_default();
    format!(
        "{}: {} (extractor {})\n  id: {}  version: {}\n{tests}  updated {} by {}",
        v.name, v.status, v.extractor_version, v.id, v.version, v.updated_at, v.updated_by
    )
}

fn deployment_human(d: &ops::Deployment) -> String {
    let pr = d
        .metadata
        .get("pr_number")
        .map(|n| format!(" PR #{n}"))
        .unwrap_or_default();
    let title = d
        .metadata
        .get("pr_title")
        .and_then(Value::as_str)
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    format!(
        "{} {}{pr}{title}\n  id: {}\n  vendors: {}\n  work items: {}",
        d.deployed_at,
        d.commit_hash,
        d.id,
        d.vendor_ids.len(),
        d.work_item_ids.len()
    )
}

fn enhancement_line(e: &ops::Enhancement) -> String {
    format!(
        "{}  P{}  {:<12} {:<8} v{}  {}",
        e.id,
        e.priority,
        e.status,
        e.target_quarter.as_deref().unwrap_or("-"),
        e.version,
        e.title
    )
}

/// `unit=150,integration=30` -> {"unit":150,"integration":30}.
fn parse_tests(text: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once(['=', ':'])
            .ok_or_else(|| waymark::Error::invalid("tests", format!("{part:?} is not category=count")))?;
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| waymark::Error::invalid("tests", format!("{:?} is not a count", v.trim())))?;
        m.insert(k.trim().to_owned(), n.into());
    }
    Ok(m)
}

fn run(cli: Cli) -> Result<()> {
    let dir = data_dir(cli.data_dir)?;
    let a = CLI_AUTHOR;
    match cli.command {
        Command::Init { hub, space } => init(&dir, hub, space),
        Command::Sync { json } => {
            // A new replica may join a space by syncing: it writes, so it may create the store.
            let t = open_for_write(&dir)?;
            let settings = waymark::config::Settings::load(&dir)?;
            let summary = waymark::sync::sync_once_blocking(t.store(), &settings)?;
            show(json, &summary, |s| {
                format!(
                    "synced: pushed {}, pulled {}, {} new conflict(s)",
                    s.pushed, s.pulled, s.conflicts
                )
            })
        }
        Command::Resolve { id, value, json } => {
            let value: Value = serde_json::from_str(&value).map_err(|e| {
                waymark::Error::invalid("value", format!("is not JSON ({e}); quote strings: '\"text\"'"))
            })?;
            let r = open_existing(&dir)?.resolve_conflict(a, &id, value)?;
            show(json, &r, |r| format!("resolved {} with {}", r.id, r.value))
        }
        Command::Serve {
            toolset,
            read_only,
            http,
            allow_remote,
            token_file,
            allow_origin,
            file_root,
        } => {
            let toolset = toolset.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let access = waymark::mcp::HttpAccess {
                allow_remote,
                token: http_token(token_file.as_deref())?,
                allowed_origins: allow_origin,
            };
            if let Some(addr) = http {
                waymark::mcp::check_http_bind(addr, &access).map_err(|e| anyhow::anyhow!(e))?;
            }
            let tracker = open_for_write(&dir)?;
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let context = waymark::mcp::ServeContext {
                data_dir: Some(dir.clone()),
                repo_root: git_root(&cwd),
                settings: Some(waymark::config::Settings::load(&dir)?),
                file_roots: file_root,
            };
            let options = waymark::mcp::ServeOptions { toolset, read_only };
            match http {
                Some(addr) => waymark::mcp::serve_http(tracker, options, context, addr, access),
                None => waymark::mcp::serve_stdio(tracker, options, context),
            }
            .context("the MCP server stopped")?;
            Ok(())
        }
        Command::Status { json } => {
            let t = open_existing(&dir)?;
            let report = t.status_report()?;
            if json {
                print_json(&report)
            } else {
                out(report::render_markdown(&report, None)?)
            }
        }
        Command::Item(cmd) => item(&dir, cmd),
        Command::Ready {
            item_type,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(&dir)?.ready_work(ops::ReadyQuery {
                item_type,
                limit,
                cursor,
            })?;
            show_page(json, &page, item_line, "nothing is ready")
        }
        Command::Dep(cmd) => {
            let t = open_for_write(&dir)?;
            let (action, source, target, dependency_type, json) = match cmd {
                DepCommand::Add {
                    source,
                    target,
                    dependency_type,
                    json,
                } => (ops::DependencyAction::Add, source, target, dependency_type, json),
                DepCommand::Remove {
                    source,
                    target,
                    dependency_type,
                    json,
                } => (ops::DependencyAction::Remove, source, target, dependency_type, json),
            };
            let dep = t.manage_dependency(
                a,
                ops::DependencyChange {
                    action,
                    source_id: source,
                    target_id: target,
                    dependency_type,
                },
            )?;
            show(json, &dep, |d| {
                let verb = if action == ops::DependencyAction::Add {
                    "added"
                } else {
                    "removed"
                };
                format!("{verb}: {} {} {}", d.source_id, d.dependency_type, d.target_id)
            })
        }
        Command::Vendor(cmd) => vendor(&dir, cmd),
        Command::Deploy(cmd) => deploy(&dir, cmd),
        Command::Config(cmd) => config(&dir, cmd),
        Command::Enhancement(cmd) => enhancement(&dir, cmd),
        Command::Archive(cmd) => archive(&dir, cmd),
        Command::Conflicts { json } => {
            let conflicts = open_existing(&dir)?.list_conflicts()?;
            show(json, &conflicts, |cs| {
                if cs.is_empty() {
                    return "no open conflicts".into();
                }
                cs.iter()
                    .map(|c| {
                        let values: Vec<String> = c
                            .values
                            .iter()
                            .map(|v| format!("{} (by {} at {})", v.value, v.written_by, v.written_at))
                            .collect();
                        let kind = if c.kind == "value" {
                            String::new()
                        } else {
                            format!(" ({})", c.kind)
                        };
                        format!("{}{kind}: {}", c.id, values.join(" | "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Verify { json } => {
            let differences = open_existing(&dir)?.store().verify()?;
            show(json, &serde_json::json!({ "differences": differences }), |_| {
                if differences.is_empty() {
                    "the store agrees with its registers".into()
                } else {
                    differences.join("\n")
                }
            })?;
            if !differences.is_empty() {
                bail!(
                    "{} difference(s) between the store and what its registers derive",
                    differences.len()
                );
            }
            Ok(())
        }
        Command::Export(ExportCommand::Json) => {
            let doc = open_existing(&dir)?.export_json()?;
            print_json(&doc)
        }
        Command::Export(ExportCommand::Markdown { out: file }) => {
            let t = open_existing(&dir)?;
            let file = match file {
                Some(f) => f,
                None => waymark::import::default_status_path(
                    &std::env::current_dir().context("cannot read the working directory")?,
                ),
            };
            let written = t.export_markdown(Some(&dir), &file)?;
            out(format!("wrote {}", written.display()))
        }
        Command::Import(ImportCommand::Git { repo, json }) => {
            let repo = match repo {
                Some(r) => r,
                None => std::env::current_dir().context("cannot read the working directory")?,
            };
            let result = open_for_write(&dir)?.import_git(a, &repo)?;
            show(json, &result, |r| r.to_text())
        }
        Command::Import(ImportCommand::Markdown { file, json }) => {
            let report = open_for_write(&dir)?.import_markdown(a, &file)?;
            show(json, &report, |r| r.to_text())
        }
        Command::Import(ImportCommand::Sessions { dir: from, json }) => {
            let report = open_for_write(&dir)?.import_sessions(a, &from)?;
            show(json, &report, |r| r.to_text())
        }
        Command::Import(ImportCommand::Json { file }) => {
            let text = if file.as_os_str() == "-" {
                io::read_to_string(io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let doc: Value = serde_json::from_str(&text).map_err(|e| {
                waymark::Error::invalid("document", format!("{} is not valid JSON: {e}", file.display()))
            })?;
            let summary = open_for_write(&dir)?.import_json(a, doc)?;
            out(format!(
                "imported {} work items, {} dependencies, {} vendors, {} deployments, {} enhancements{}",
                summary.work_items,
                summary.dependencies,
                summary.vendors,
                summary.deployments,
                summary.enhancements,
                if summary.configuration {
                    " and the configuration"
                } else {
                    ""
                }
            ))
        }
    }
}

/// Keep a store out of git: add `.waymark/` to the enclosing repository's
/// `.git/info/exclude` (the exported markdown is what gets committed).
fn keep_out_of_git(dir: &Path) -> Result<()> {
    if dir.file_name().is_none_or(|n| n != ".waymark") {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    let Some(root) = git_root(&std::fs::canonicalize(parent).unwrap_or(parent.to_path_buf())) else {
        return Ok(());
    };
    let git = root.join(".git");
    if !git.is_dir() {
        return Ok(());
    }
    let exclude = git.join("info").join("exclude");
    let current = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !current.lines().any(|l| l.trim() == ".waymark/") {
        std::fs::create_dir_all(git.join("info"))?;
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(".waymark/\n");
        std::fs::write(&exclude, text).with_context(|| format!("cannot write {}", exclude.display()))?;
    }
    Ok(())
}

/// Open the store for a command that writes, creating it on first write
/// (and keeping a new store out of git).
fn open_for_write(dir: &Path) -> Result<Tracker> {
    let existed = dir.join(waymark::store::DB_FILE).exists();
    let tracker = Tracker::open(dir)?;
    if !existed {
        keep_out_of_git(dir)?;
    }
    Ok(tracker)
}

fn init(dir: &Path, hub: Option<String>, space: Option<String>) -> Result<()> {
    let existed = dir.join(waymark::store::DB_FILE).exists();
    let tracker = open_for_write(dir)?;
    waymark::config::create_file(dir)?;
    if hub.is_some() || space.is_some() {
        waymark::config::write_hub(dir, hub.as_deref(), space.as_deref())?;
    }
    keep_out_of_git(dir)?;
    let replica = tracker.store().replica_id()?;
    let settings = waymark::config::Settings::load(dir)?;
    let sync = match (settings.hub_display(), &settings.space) {
        (Some(hub), Some(space)) => format!("; syncs with {hub}, space {space} (`waymark sync`)"),
        (Some(hub), None) => format!("; hub {hub} needs a space: `waymark init --space NAME`"),
        (None, Some(space)) => format!("; space {space} needs a hub: `waymark init --hub URL`"),
        (None, None) => String::new(),
    };
    out(format!(
        "{} store at {} (replica {replica}){sync}",
        if existed {
            "Waymark already initialized:"
        } else {
            "Initialized Waymark"
        },
        tracker.store().path().display()
    ))
}

fn item(dir: &Path, cmd: ItemCommand) -> Result<()> {
    let a = CLI_AUTHOR;
    match cmd {
        ItemCommand::Create {
            item_type,
            title,
            fields,
            json,
        } => {
            let t = open_for_write(dir)?;
            let metadata = parse_object("metadata", fields.metadata.as_deref())?;
            let item = t.create_work_item(
                a,
                ops::NewWorkItem {
                    item_type,
                    title,
                    description: fields.description,
                    parent_id: fields.parent,
                    status: fields.status,
                    priority: fields.priority,
                    branch_name: fields.branch,
                    commit_hash: fields.commit,
                    pr_number: fields.pr,
                    metadata,
                },
            )?;
            show(json, &item, |i| {
                format!("created {} ({}) {}", i.id, i.item_type, i.title)
            })
        }
        ItemCommand::Show { id, json } => {
            let d = open_existing(dir)?.query_work_item(&id, true, true)?;
            show(json, &d, |d| {
                let mut s = item_human(&d.item);
                if !d.ancestors.is_empty() {
                    s.push_str("\nancestors:");
                    for r in &d.ancestors {
                        s.push_str(&format!("\n  {}", item_line(r)));
                    }
                }
                if !d.descendants.is_empty() {
                    s.push_str(&format!("\ndescendants ({}):", d.descendant_count));
                    for r in &d.descendants {
                        s.push_str(&format!("\n  {}", item_line(r)));
                    }
                }
                if let Some(deps) = &d.dependencies {
                    for (label, links) in [("waits for", &deps.depends_on), ("blocks", &deps.blocks)] {
                        if !links.is_empty() {
                            s.push_str(&format!("\n{label}:"));
                            for l in links {
                                s.push_str(&format!("\n  {}", item_line(&l.item)));
                            }
                        }
                    }
                }
                if !d.conflicts.is_empty() {
                    s.push_str(&format!("\nconflicting fields: {}", d.conflicts.join(", ")));
                }
                s
            })
        }
        ItemCommand::Update {
            id,
            version,
            item_type,
            title,
            fields,
            json,
        } => {
            let t = open_for_write(dir)?;
            let metadata = parse_object("metadata", fields.metadata.as_deref())?;
            let item = t.update_work_item(
                a,
                ops::WorkItemUpdate {
                    id,
                    version,
                    item_type,
                    title,
                    description: fields.description,
                    status: fields.status,
                    priority: fields.priority,
                    parent_id: fields.parent,
                    branch_name: fields.branch,
                    commit_hash: fields.commit,
                    pr_number: fields.pr,
                    metadata,
                    deleted: None,
                },
            )?;
            show(json, &item, |i| format!("updated {} to version {}", i.id, i.version))
        }
        ItemCommand::Delete { id, version, json } => set_deleted(dir, id, version, true, json),
        ItemCommand::Restore { id, version, json } => set_deleted(dir, id, version, false, json),
        ItemCommand::List {
            item_type,
            status,
            parent,
            text,
            include_deleted,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(dir)?.list_work_items(ops::WorkItemFilter {
                item_type,
                status,
                parent_id: parent,
                text,
                include_deleted,
                limit,
                cursor,
            })?;
            show_page(json, &page, item_line, "no work items")
        }
    }
}

fn set_deleted(dir: &Path, id: String, version: i64, deleted: bool, json: bool) -> Result<()> {
    let item = open_existing(dir)?.update_work_item(
        CLI_AUTHOR,
        ops::WorkItemUpdate {
            id,
            version,
            deleted: Some(deleted),
            ..Default::default()
        },
    )?;
    let verb = if deleted { "deleted" } else { "restored" };
    show(json, &item, |i| format!("{verb} {} (version {})", i.id, i.version))
}

fn vendor(dir: &Path, cmd: VendorCommand) -> Result<()> {
    let a = CLI_AUTHOR;
    match cmd {
        VendorCommand::Create {
            name,
            extractor_version,
            metadata,
            json,
        } => {
            let metadata = parse_object("metadata", metadata.as_deref())?;
            let v = open_for_write(dir)?.create_vendor(
                a,
                ops::NewVendor {
                    name,
                    extractor_version,
                    metadata,
                },
            )?;
            show(json, &v, |v| {
                format!("created vendor {} ({}, {})", v.name, v.status, v.id)
            })
        }
        VendorCommand::Show { name, json } => {
            let v = open_existing(dir)?.query_vendor_status(&name)?;
            show(json, &v, vendor_human)
        }
        VendorCommand::Update {
            name,
            version,
            status,
            extractor_version,
            metadata,
            json,
        } => {
            let metadata = parse_object("metadata", metadata.as_deref())?;
            let v = open_existing(dir)?.update_vendor_status(
                a,
                ops::VendorUpdate {
                    name,
                    version,
                    status,
                    extractor_version,
                    metadata,
                },
            )?;
            show(json, &v, |v| {
                format!("updated vendor {}: {} (version {})", v.name, v.status, v.version)
            })
        }
        VendorCommand::List {
            status,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(dir)?.list_vendors(ops::VendorFilter { status, limit, cursor })?;
            show_page(
                json,
                &page,
                |v| {
                    format!(
                        "{:<30} {:<12} {:<10} tests {}",
                        v.name,
                        v.status,
                        v.extractor_version,
                        v.tests.as_deref().unwrap_or("-")
                    )
                },
                "no vendors",
            )
        }
    }
}

fn deploy(dir: &Path, cmd: DeployCommand) -> Result<()> {
    match cmd {
        DeployCommand::Record {
            commit,
            at,
            pr,
            title,
            tests,
            compliant,
            vendors,
            items,
            json,
        } => {
            let test_summary = tests.as_deref().map(parse_tests).transpose()?;
            let d = open_for_write(dir)?.record_deployment(
                CLI_AUTHOR,
                ops::NewDeployment {
                    commit_hash: commit,
                    deployed_at: at,
                    pr_number: pr,
                    pr_title: title,
                    test_summary,
                    constitutional_compliance: compliant,
                    vendor_ids: vendors,
                    work_item_ids: items,
                },
            )?;
            show(json, &d, |d| format!("recorded deployment {}", d.id))
        }
        DeployCommand::Show { id, json } => {
            let d = open_existing(dir)?.get_deployment(&id)?;
            show(json, &d, deployment_human)
        }
        DeployCommand::List {
            vendor,
            item,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(dir)?.list_deployments(ops::DeploymentFilter {
                vendor,
                work_item_id: item,
                limit,
                cursor,
            })?;
            show_page(
                json,
                &page,
                |d| {
                    let pr = d.pr_number.map(|n| format!("PR #{n} ")).unwrap_or_default();
                    let short: String = d.commit_hash.chars().take(10).collect();
                    format!(
                        "{}  {}  {short}  {pr}{}",
                        d.id,
                        d.deployed_at,
                        d.pr_title.as_deref().unwrap_or("")
                    )
                },
                "no deployments",
            )
        }
    }
}

fn config(dir: &Path, cmd: ConfigCommand) -> Result<()> {
    #[derive(Serialize)]
    struct Shown {
        #[serde(flatten)]
        configuration: ops::Configuration,
        sync: ops::SyncHealth,
    }
    match cmd {
        ConfigCommand::Show { json } => {
            let (configuration, sync) = open_existing(dir)?.get_project_configuration()?;
            show(json, &Shown { configuration, sync }, |s| {
                let c = &s.configuration;
                format!(
                    "context: {}\nsession: {}\ngit branch: {}\ngit head: {}\ntoken budget: {}\nversion: {}\n\
                     sync: {} pending change(s), {} open conflict(s){}{}{}",
                    c.active_context_type,
                    c.current_session_id.as_deref().unwrap_or("-"),
                    c.git_branch.as_deref().unwrap_or("-"),
                    c.git_head_commit.as_deref().unwrap_or("-"),
                    c.default_token_budget,
                    c.version,
                    s.sync.pending_changes,
                    s.sync.open_conflicts,
                    if s.sync.hub_configured {
                        ""
                    } else {
                        "; no hub configured"
                    },
                    s.sync
                        .last_sync_at
                        .as_deref()
                        .map(|t| format!("; last synced {t}"))
                        .unwrap_or_default(),
                    s.sync
                        .last_error
                        .as_deref()
                        .map(|e| format!("\nlast sync error: {e}"))
                        .unwrap_or_default(),
                )
            })
        }
        ConfigCommand::Set {
            version,
            context,
            session,
            branch,
            head,
            token_budget,
            json,
        } => {
            let c = open_for_write(dir)?.update_project_configuration(
                CLI_AUTHOR,
                ops::ConfigurationUpdate {
                    version,
                    active_context_type: context,
                    current_session_id: session,
                    git_branch: branch,
                    git_head_commit: head,
                    default_token_budget: token_budget,
                },
            )?;
            show(json, &c, |c| format!("configuration at version {}", c.version))
        }
    }
}

fn enhancement(dir: &Path, cmd: EnhancementCommand) -> Result<()> {
    match cmd {
        EnhancementCommand::Create { title, fields, json } => {
            let e = open_for_write(dir)?.create_enhancement(
                CLI_AUTHOR,
                ops::NewEnhancement {
                    title,
                    description: fields.description,
                    priority: fields.priority,
                    status: fields.status,
                    target_quarter: fields.quarter,
                    requires_constitutional_approval: fields.requires_approval,
                    depends_on: Some(fields.depends_on),
                },
            )?;
            show(json, &e, |e| format!("created enhancement {} {}", e.id, e.title))
        }
        EnhancementCommand::Update {
            id,
            version,
            title,
            fields,
            json,
        } => {
            let e = open_existing(dir)?.update_enhancement(
                CLI_AUTHOR,
                ops::EnhancementUpdate {
                    id,
                    version,
                    title,
                    description: fields.description,
                    priority: fields.priority,
                    status: fields.status,
                    target_quarter: fields.quarter,
                    requires_constitutional_approval: fields.requires_approval,
                    depends_on: if fields.depends_on.is_empty() {
                        None
                    } else {
                        Some(fields.depends_on)
                    },
                },
            )?;
            show(json, &e, |e| {
                format!("updated enhancement {} to version {}", e.id, e.version)
            })
        }
        EnhancementCommand::List {
            priority,
            status,
            quarter,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(dir)?.list_enhancements(ops::EnhancementFilter {
                priority,
                status,
                target_quarter: quarter,
                limit,
                cursor,
            })?;
            show_page(json, &page, enhancement_line, "no enhancements")
        }
    }
}

fn archive(dir: &Path, cmd: ArchiveCommand) -> Result<()> {
    match cmd {
        ArchiveCommand::Run {
            older_than_days,
            dry_run,
            json,
        } => {
            let r = open_existing(dir)?.archive_work_items(
                CLI_AUTHOR,
                ops::ArchiveRequest {
                    older_than_days: Some(older_than_days),
                    dry_run,
                },
            )?;
            show(json, &r, |r| {
                let verb = if r.dry_run { "would archive" } else { "archived" };
                let mut s = format!("{verb} {} work item(s) older than {} days", r.count, r.older_than_days);
                for i in &r.items {
                    s.push_str(&format!("\n  {}", item_line(i)));
                }
                s
            })
        }
        ArchiveCommand::List {
            text,
            item_type,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(dir)?.query_archived_work_items(ops::ArchivedQuery {
                text,
                item_type,
                limit,
                cursor,
            })?;
            show_page(json, &page, item_line, "the archive is empty")
        }
    }
}

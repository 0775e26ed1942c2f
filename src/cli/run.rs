//! Running a command: open the store, build the operation's input from the
//! flags, call the operation once, and hand the answer to `render.rs`.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};
use waymark::ops::{self, CLI_AUTHOR, Tracker};
use waymark::report;

use super::args::*;
use super::render::*;

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

/// `unit=150,integration=30` -> {"unit":150,"integration":30}.
fn parse_tests(text: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(['=', ':']).ok_or_else(|| {
            waymark::Error::invalid(
                "tests",
                format!("{} is not category=count", waymark::error::quote(part)),
            )
        })?;
        let n: i64 = v.trim().parse().map_err(|_| {
            waymark::Error::invalid("tests", format!("{} is not a count", waymark::error::quote(v.trim())))
        })?;
        m.insert(k.trim().to_owned(), n.into());
    }
    Ok(m)
}

/// The agent the command line writes and claims as (`--as`, `WAYMARK_AGENT`).
static AGENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn author() -> &'static str {
    AGENT.get().map(String::as_str).unwrap_or(CLI_AUTHOR)
}

/// `waymark hub ...`: administration of the configured hub's space.
fn hub_admin(dir: &Path, action: HubAction) -> Result<()> {
    let settings = waymark::config::Settings::load(dir)?;
    let failed = |e: waymark::sync::SyncFailure| anyhow::anyhow!(e.sentence());
    match action {
        HubAction::Replicas { json } => {
            let t = open_existing(dir)?;
            let answer = waymark::sync::hub_replicas(t.store(), &settings).map_err(failed)?;
            show(json, &answer, replicas_human)
        }
        HubAction::Forget { replica, json } => {
            let answer = waymark::sync::hub_forget(&settings, &replica).map_err(failed)?;
            show(json, &answer, compact_human)
        }
        HubAction::Compact { json } => {
            let answer = waymark::sync::hub_compact(&settings).map_err(failed)?;
            show(json, &answer, compact_human)
        }
    }
}

pub(super) fn run(cli: Cli) -> Result<()> {
    if let Some(agent) = cli.agent.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        if agent.chars().count() > 100 || agent.chars().any(char::is_control) {
            return Err(waymark::Error::invalid(
                "as",
                "must be a name of at most 100 characters, no control characters",
            )
            .into());
        }
        let _ = AGENT.set(agent.to_owned());
    }
    let dir = data_dir(cli.data_dir)?;
    let a = author();
    match cli.command {
        Command::Init { hub, space } => init(&dir, hub, space),
        Command::Sync { status: true, json } => {
            let t = open_existing(&dir)?;
            show(json, &waymark::sync::SyncAnswer::of(&t, None)?, sync_human)
        }
        Command::Sync { status: false, json } => {
            // A new replica may join a space by syncing: it writes, so it may create the store.
            let t = open_for_write(&dir)?;
            let settings = waymark::config::Settings::load(&dir)?;
            let bar = Bar::unless(json);
            let round = waymark::sync::sync_once_blocking_with(t.store(), &settings, bar.progress());
            bar.clear();
            let round = round.map_err(|e| anyhow::anyhow!(e.sentence()))?;
            let answer = waymark::sync::SyncAnswer::of(&t, Some(round))?;
            show(json, &answer, sync_human)
        }
        Command::Hub { action } => hub_admin(&dir, action),
        Command::Resolve { id, value, dot, json } => {
            let value = value
                .map(|v| {
                    serde_json::from_str::<Value>(&v).map_err(|e| {
                        waymark::Error::invalid("value", format!("is not JSON ({e}); quote strings: '\"text\"'"))
                    })
                })
                .transpose()?;
            let choice = ops::ConflictChoice {
                conflict_id: id,
                value,
                dot,
            };
            let r = open_existing(&dir)?.resolve_conflict_choice(a, choice)?;
            show(json, &r, |r| format!("resolved {} with {}", r.id, r.value))
        }
        Command::Watch {
            cursor,
            collections,
            under,
            once,
            timeout,
            json: _,
        } => watch(&dir, cursor, collections, under, once, timeout),
        Command::Board { addr, open } => board(&dir, addr, open),
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
                agent: AGENT.get().cloned(),
            };
            let options = waymark::mcp::ServeOptions { toolset, read_only };
            match http {
                Some(addr) => waymark::mcp::serve_http(tracker, options, context, addr, access),
                None => waymark::mcp::serve_stdio(tracker, options, context),
            }
            .context("the MCP server stopped")?;
            Ok(())
        }
        Command::Status { json, format } => {
            let t = open_existing(&dir)?;
            if json {
                print_json(&t.project_status(&ops::StatusRequest { format })?)
            } else {
                out(report::render_markdown(&t.status_report()?, None)?)
            }
        }
        Command::Item(cmd) => item(&dir, cmd),
        Command::Ready {
            item_type,
            limit,
            cursor,
            json,
        } => {
            let ready = open_existing(&dir)?.ready_work_for(
                a,
                ops::ReadyQuery {
                    item_type,
                    limit,
                    cursor,
                },
            )?;
            if json {
                return show(true, &ready, |_| String::new());
            }
            show_page(false, &ready.page, item_line, "nothing is ready")?;
            if !ready.lost_claims.is_empty() {
                out(lost_lines(&ready.lost_claims))?;
            }
            Ok(())
        }
        Command::Claim {
            target,
            item_type,
            minutes,
            force,
            json,
        } => {
            let next = target.trim().eq_ignore_ascii_case("next");
            let request = ops::ClaimRequest {
                id: (!next).then_some(target),
                next,
                item_type,
                minutes,
                force,
                release: false,
            };
            claim_command(&dir, a, request, json)
        }
        Command::History {
            id,
            limit,
            cursor,
            json,
        } => {
            let page = open_existing(&dir)?.work_item_history(&id, limit, cursor.as_deref())?;
            show_page(json, &page, history_line, "no history")
        }
        Command::Release { id, force, json } => {
            let request = ops::ClaimRequest {
                id: Some(id),
                force,
                release: true,
                ..ops::ClaimRequest::default()
            };
            claim_command(&dir, a, request, json)
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
        Command::Conflicts { limit, cursor, json } => {
            let conflicts = open_existing(&dir)?.conflicts(ops::ConflictQuery { limit, cursor })?;
            show(json, &conflicts, conflicts_human)
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
        Command::Export(ExportCommand::Markdown { out: file, json }) => {
            let t = open_existing(&dir)?;
            let file = match file {
                Some(f) => f,
                None => waymark::import::default_status_path(
                    &std::env::current_dir().context("cannot read the working directory")?,
                ),
            };
            let written = waymark::import::Written::from(t.export_markdown(Some(&dir), &file)?);
            show(json, &written, |w| format!("wrote {}", w.path))
        }
        Command::Import(ImportCommand::Git { repo, json }) => {
            let repo = match repo {
                Some(r) => r,
                None => std::env::current_dir().context("cannot read the working directory")?,
            };
            let bar = Bar::unless(json);
            let result = open_for_write(&dir)?.import_git_with(a, &repo, &bar.progress());
            bar.clear();
            show(json, &result?, |r| r.to_text())
        }
        Command::Import(ImportCommand::Markdown { file, json }) => {
            let bar = Bar::unless(json);
            let report = open_for_write(&dir)?.import_markdown_with(a, &file, &bar.progress());
            bar.clear();
            show(json, &report?, |r| r.to_text())
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

/// `waymark claim` and `waymark release`: the claim, confirmed against the
/// hub when one is configured (see `waymark::sync::claim`).
fn claim_command(dir: &Path, agent: &str, request: ops::ClaimRequest, json: bool) -> Result<()> {
    let t = open_for_write(dir)?;
    let settings = waymark::config::Settings::load(dir)?;
    let answer = waymark::sync::claim_blocking(&t, Some(&settings), agent, request)?;
    show(json, &answer, claim_human)
}

fn item(dir: &Path, cmd: ItemCommand) -> Result<()> {
    let a = author();
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
        ItemCommand::Show { id, cursor, json } => {
            let d = open_existing(dir)?.query_work_item_with(ops::WorkItemQuery {
                id,
                cursor,
                ..Default::default()
            })?;
            show(json, &d, item_detail_human)
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
            archived,
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
                archived,
                limit,
                cursor,
            })?;
            show_page(json, &page, item_line, "no work items")
        }
    }
}

fn set_deleted(dir: &Path, id: String, version: i64, deleted: bool, json: bool) -> Result<()> {
    let item = open_existing(dir)?.update_work_item(
        author(),
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
    let a = author();
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
                author(),
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
    match cmd {
        ConfigCommand::Show { json } => {
            let view = open_existing(dir)?.configuration_view()?;
            show(json, &view, configuration_human)
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
            let c = open_for_write(dir)?.configure(
                author(),
                ops::ConfigurationUpdate {
                    version,
                    active_context_type: context,
                    current_session_id: session,
                    git_branch: branch,
                    git_head_commit: head,
                    default_token_budget: token_budget,
                },
            )?;
            show(json, &c, |c| {
                format!("configuration at version {}", c.configuration.version)
            })
        }
    }
}

fn enhancement(dir: &Path, cmd: EnhancementCommand) -> Result<()> {
    match cmd {
        EnhancementCommand::Create { title, fields, json } => {
            let e = open_for_write(dir)?.create_enhancement(
                author(),
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
                author(),
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
        EnhancementCommand::Show { id, json } => {
            let e = open_existing(dir)?.get_enhancement(&id)?;
            show(json, &e, |e| {
                let mut s = enhancement_line(e);
                if let Some(d) = &e.description {
                    s.push_str(&format!("\n  {d}"));
                }
                s
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
            let bar = Bar::unless(json);
            let r = open_existing(dir)?.archive_work_items_with(
                author(),
                ops::ArchiveRequest {
                    older_than_days: Some(older_than_days),
                    dry_run,
                },
                &bar.progress(),
            );
            bar.clear();
            show(json, &r?, |r| {
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
            let page = open_existing(dir)?.list_work_items(ops::WorkItemFilter {
                archived: true,
                text,
                item_type,
                limit,
                cursor,
                ..Default::default()
            })?;
            show_page(json, &page, item_line, "the archive is empty")
        }
    }
}

/// `waymark watch`: one JSON line per answer of `wait_for_changes` that
/// lists changes, waiting again after each (`--once`: the first answer).
fn watch(
    dir: &Path,
    cursor: Option<String>,
    collections: Vec<String>,
    under: Option<String>,
    once: bool,
    timeout: Option<i64>,
) -> Result<()> {
    use std::io::Write;
    let t = open_existing(dir)?;
    let mut input = ops::WaitForChanges {
        cursor,
        collections: (!collections.is_empty()).then_some(collections),
        under,
        timeout_s: Some(timeout.unwrap_or(ops::MAX_WAIT_S as i64)),
    };
    // A bad cursor or filter is refused before the first wait; no cursor
    // starts at the store's present.
    let start = t.changes_since(&input)?;
    if input.cursor.is_none() {
        input.cursor = Some(start.cursor);
    }
    loop {
        let answer = t.wait_for_changes(&input)?;
        input.cursor = Some(answer.cursor.clone());
        if answer.changes.is_empty() && !(once && timeout.is_some()) {
            continue;
        }
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &answer)?;
        writeln!(out)?;
        out.flush()?;
        if once {
            return Ok(());
        }
    }
}

/// `waymark board`: `serve --http` on a loopback address with the tools
/// read-only; prints the board's URL once listening, and opens a browser
/// there when asked.
fn board(dir: &Path, addr: std::net::SocketAddr, open: bool) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!(
            "waymark board listens on loopback only ({addr} is not); to serve it further, use serve --http with --allow-remote and a token"
        );
    }
    let tracker = open_existing(dir)?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let context = waymark::mcp::ServeContext {
        data_dir: Some(dir.to_path_buf()),
        repo_root: git_root(&cwd),
        settings: Some(waymark::config::Settings::load(dir)?),
        file_roots: Vec::new(),
        agent: None,
    };
    let options = waymark::mcp::ServeOptions {
        toolset: waymark::mcp::Toolset::All,
        read_only: true,
    };
    waymark::mcp::serve_http_then(
        tracker,
        options,
        context,
        addr,
        waymark::mcp::HttpAccess::default(),
        |bound| {
            let url = format!("http://{bound}/");
            let _ = out(&url);
            if open {
                open_browser(&url);
            }
        },
    )
    .context("the board stopped")?;
    Ok(())
}

/// Start the desktop's browser on `url` (xdg-open, or open on macOS); a
/// failure is a warning, the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match started {
        // Reaped on a thread of its own: the board goes on serving.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => eprintln!("waymark: could not start a browser ({opener}: {e}); open {url} yourself"),
    }
}

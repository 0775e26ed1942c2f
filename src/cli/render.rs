//! What the command line prints: `--json` prints an operation's answer,
//! exactly the JSON its MCP tool returns; otherwise a few lines for people.

use std::io::{self, Write};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use waymark::ops::{self, Page};
use waymark::progress::Progress;

/// How a bar looks: `n/total what` when the total is known, `n what` otherwise.
fn style(known_total: bool) -> indicatif::ProgressStyle {
    let template = if known_total {
        "{spinner} {pos}/{len} {msg} {elapsed}"
    } else {
        "{spinner} {pos} {msg} {elapsed}"
    };
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
}

/// A progress bar on stderr for long work: drawn only when stderr is a
/// terminal and the output is not `--json` (indicatif hides it otherwise).
pub(super) struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub(super) fn unless(json: bool) -> Bar {
        if json {
            return Bar(None);
        }
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(style(false));
        Bar(Some(bar))
    }

    /// What the work reports to.
    pub(super) fn progress(&self) -> Progress {
        let Some(bar) = self.0.clone() else {
            return Progress::none();
        };
        Progress::to(move |step| {
            // A count of unknown total shows as a count, not as n/n.
            bar.set_style(style(step.total.is_some()));
            bar.set_message(step.what);
            if let Some(total) = step.total {
                bar.set_length(total);
            }
            bar.set_position(step.done);
        })
    }

    /// Take the bar off the terminal before the answer is printed.
    pub(super) fn clear(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn out(text: impl AsRef<str>) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_ref().as_bytes())?;
    if !text.as_ref().ends_with('\n') {
        o.write_all(b"\n")?;
    }
    Ok(())
}

pub(super) fn show<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    if json { print_json(value) } else { out(human(value)) }
}

pub(super) fn show_page<T: ops::Row>(
    json: bool,
    page: &Page<T>,
    row: impl Fn(&T) -> String,
    empty: &str,
) -> Result<()> {
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

pub(super) fn item_line(r: &ops::WorkItemRow) -> String {
    let claimed = r.claimed_by.as_deref().map(|h| format!("  [{h}]")).unwrap_or_default();
    format!(
        "{}  P{}  {:<9} {:<8} v{}  {}{claimed}",
        r.id, r.priority, r.status, r.item_type, r.version, r.title
    )
}

pub(super) fn history_line(e: &ops::HistoryEntry) -> String {
    format!(
        "{}  {:<14} {:<16} {}{}",
        e.at,
        e.author,
        e.field,
        e.value,
        if e.concurrent { "  (concurrent)" } else { "" }
    )
}

/// The claims an agent lost, one line each.
pub(super) fn lost_lines(lost: &[ops::LostClaim]) -> String {
    lost.iter()
        .map(|l| {
            let to = l.held_by.as_deref().map(|h| format!(" to {h}")).unwrap_or_default();
            format!(
                "lost: {} lost its claim on {} ({}){to}; not its to work on",
                l.agent, l.title, l.id
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn claim_human(a: &ops::ClaimAnswer) -> String {
    match &a.claim {
        None => format!("{} ({}) is not claimed", a.item.title, a.item.id),
        Some(c) => match c.state {
            waymark::domain::claim::ClaimState::Lost => format!(
                "lost: {} ({}) is claimed by {} until {}; not yours to work on",
                a.item.title, a.item.id, c.holder, c.expires_at
            ),
            state => format!(
                "{} {} ({}) until {} [{}]",
                c.holder,
                if state == waymark::domain::claim::ClaimState::Tentative {
                    "claimed (tentative: decided at the next sync)"
                } else {
                    "holds"
                },
                a.item.id,
                c.expires_at,
                a.item.title
            ),
        },
    }
}

pub(super) fn item_human(i: &ops::WorkItem) -> String {
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

pub(super) fn vendor_human(v: &ops::Vendor) -> String {
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

pub(super) fn deployment_human(d: &ops::Deployment) -> String {
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

pub(super) fn enhancement_line(e: &ops::Enhancement) -> String {
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

pub(super) fn item_detail_human(d: &ops::WorkItemDetail) -> String {
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
        if let Some(c) = &d.next_cursor {
            s.push_str(&format!("\n  (more: --cursor {c})"));
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
}

pub(super) fn conflicts_human(list: &ops::ConflictList) -> String {
    let cs = &list.conflicts;
    if cs.is_empty() {
        return "no open conflicts".into();
    }
    let mut text = cs
        .iter()
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
        .join("\n");
    if cs.len() < list.total_count {
        text.push_str(&format!("\n({} of {} shown", cs.len(), list.total_count));
        if let Some(c) = &list.next_cursor {
            text.push_str(&format!("; next page: --cursor {c}"));
        }
        text.push(')');
    }
    text
}

pub(super) fn configuration_human(s: &ops::ConfigurationView) -> String {
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
}

pub(super) fn sync_human(s: &waymark::sync::SyncAnswer) -> String {
    match &s.round {
        Some(r) => format!(
            "synced: pushed {}, pulled {}, {} new conflict(s)",
            r.pushed, r.pulled, r.conflicts
        ),
        None => {
            let h = &s.health;
            let mut text = format!(
                "{} pending change(s), {} open conflict(s)",
                h.pending_changes, h.open_conflicts
            );
            match (&h.last_sync_at, h.hub_configured) {
                (_, false) => text.push_str("; no hub configured"),
                (Some(at), true) => text.push_str(&format!("; last synced {at}")),
                (None, true) => text.push_str("; never synced"),
            }
            if let Some(e) = &h.last_error {
                text.push_str(&format!("\nlast sync error: {e}"));
            }
            if let Some(w) = &h.clock_warning {
                text.push_str(&format!("\nclock: {w}"));
            }
            text
        }
    }
}

/// The flag (or argument) of the command line that sets each field an
/// operation names in its errors; any other field (a metadata key, say)
/// keeps its name.
const FLAGS: &[(&str, &str)] = &[
    ("minutes", "--minutes"),
    ("as", "--as"),
    ("title", "--title"),
    ("description", "--description"),
    ("status", "--status"),
    ("priority", "--priority"),
    ("version", "--version"),
    ("limit", "--limit"),
    ("cursor", "--cursor"),
    ("text", "--text"),
    ("metadata", "--metadata"),
    ("extractor_version", "--extractor-version"),
    ("older_than_days", "--older-than-days"),
    ("default_token_budget", "--token-budget"),
    ("depends_on", "--depends-on"),
    ("dot", "--dot"),
    ("value", "--value"),
    ("item_type", "--type"),
    ("parent_id", "--parent"),
    ("branch_name", "--branch"),
    ("commit_hash", "--commit"),
    ("pr_number", "--pr"),
    ("pr_title", "--title"),
    ("deployed_at", "--at"),
    ("test_summary", "--tests"),
    ("constitutional_compliance", "--compliant"),
    ("vendor_ids", "--vendor"),
    ("work_item_ids", "--item"),
    ("active_context_type", "--context"),
    ("current_session_id", "--session"),
    ("git_branch", "--branch"),
    ("git_head_commit", "--head"),
    ("requires_constitutional_approval", "--requires-approval"),
    ("source_id", "SOURCE"),
    ("target_id", "TARGET"),
    ("dependency_type", "--type"),
    ("conflict_id", "ID"),
    ("work_item_id", "--item"),
];

/// The command that does what each tool does, for errors that point at one.
/// Longer names first, so that no name is replaced inside another.
const COMMANDS: &[(&str, &str)] = &[
    ("claim_work_item with force", "`waymark claim ID --force`"),
    ("manage_enhancement with action list", "`waymark enhancement list`"),
    ("with action get", "with `waymark enhancement show`"),
    ("update_project_configuration", "`waymark config set`"),
    ("get_project_configuration", "`waymark config show`"),
    ("update_vendor_status", "`waymark vendor update`"),
    ("query_vendor_status", "`waymark vendor show`"),
    ("manage_enhancement", "`waymark enhancement`"),
    ("manage_dependency", "`waymark dep`"),
    ("archive_work_items", "`waymark archive run`"),
    ("record_deployment", "`waymark deploy record`"),
    ("get_project_status", "`waymark status`"),
    ("import_git_history", "`waymark import git`"),
    ("create_work_item", "`waymark item create`"),
    ("update_work_item", "`waymark item update`"),
    ("query_work_item", "`waymark item show`"),
    ("list_work_items", "`waymark item list`"),
    ("list_ready_work", "`waymark ready`"),
    ("list_deployments", "`waymark deploy list`"),
    ("resolve_conflict", "`waymark resolve`"),
    ("list_conflicts", "`waymark conflicts`"),
    ("import_markdown", "`waymark import markdown`"),
    ("export_markdown", "`waymark export markdown`"),
    ("create_vendor", "`waymark vendor create`"),
    ("list_vendors", "`waymark vendor list`"),
    ("claim_work_item", "`waymark claim`"),
];

/// The flag that sets `field`.
pub(super) fn flag(field: &str) -> String {
    FLAGS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, flag)| (*flag).to_owned())
        .unwrap_or_else(|| field.to_owned())
}

/// An operation's error as the command line says it: the flag for the
/// field, the command for the tool (one error type; the MCP face says the
/// same error in tool arguments).
pub(super) fn cli_error(error: &waymark::Error) -> String {
    match error {
        waymark::Error::Invalid { field, message } => speak_cli(&format!("invalid {}: {message}", flag(field))),
        other => speak_cli(&other.to_string()),
    }
}

/// `text` with each tool name (a whole word) replaced by its command.
pub(super) fn speak_cli(text: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut text = text.to_owned();
    for (tool, command) in COMMANDS {
        let mut from = 0;
        while let Some(at) = text[from..].find(tool).map(|i| i + from) {
            let end = at + tool.len();
            if word(text[..at].chars().next_back()) || word(text[end..].chars().next()) {
                from = end;
                continue;
            }
            text.replace_range(at..end, command);
            from = at + command.len();
        }
    }
    text
}

/// `waymark hub replicas` for people: one line per replica.
pub(super) fn replicas_human(a: &waymark::sync::ReplicasAnswer) -> String {
    let mut out = format!(
        "space {} on {}: head {}, history folded up to {}\n",
        a.space, a.hub, a.head, a.floor
    );
    if a.replicas.is_empty() {
        out.push_str("no replica has reported yet\n");
    }
    for r in &a.replicas {
        out.push_str(&format!(
            "{}  {:<20} {:<20} pulled {:>8}  last seen {}{}{}\n",
            r.replica,
            r.name,
            r.host,
            r.cursor,
            r.last_seen,
            if r.retired { "  (retired)" } else { "" },
            if r.this_store { "  (this store)" } else { "" }
        ));
    }
    out.trim_end().to_owned()
}

/// `waymark hub compact` and `waymark hub forget` for people.
pub(super) fn compact_human(a: &waymark::sync::CompactAnswer) -> String {
    let mut out = String::new();
    if let Some(r) = &a.forgotten {
        out.push_str(&format!("forgot replica {r}\n"));
    }
    out.push_str(&format!(
        "space {}: folded {} changes ({} replicas retired for silence); history folded up to {} of {}, {} snapshots",
        a.space, a.folded, a.retired, a.floor, a.head, a.snapshots
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_speak_flags_and_commands() {
        let e = waymark::Error::invalid("item_type", "\"epic\" is not one of project, session, task, research");
        assert_eq!(
            cli_error(&e),
            "invalid --type: \"epic\" is not one of project, session, task, research"
        );
        assert_eq!(
            speak_cli("there is no open conflict x; list_conflicts shows them (update_work_item moves it)"),
            "there is no open conflict x; `waymark conflicts` shows them (`waymark item update` moves it)"
        );
        // Inside a longer word, a tool name stays.
        assert_eq!(speak_cli("my_list_conflicts_x"), "my_list_conflicts_x");
        assert_eq!(flag("older_than_days"), "--older-than-days");
    }
}

//! The status report: one document a person reads to know where the
//! project stands. Built from the store as data ([`StatusReport`]), then
//! rendered to markdown through a minijinja template whose default keeps the
//! legacy `.project_status.md` layout, so the legacy importer reads it back.

mod bounded;
mod summary;

pub use bounded::{StatusAnswer, markdown as bounded_markdown};
pub use summary::{InProgress, ItemCounts, Section, StatusSummary, VendorSummary};

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ops::{ConflictView, SyncHealth, Tracker};
use crate::store::query::report as query;
use crate::time::Timestamp;

/// The default template (the legacy layout).
pub const DEFAULT_TEMPLATE: &str = include_str!("status.md.j2");

/// How many deployments the report lists.
pub(crate) const RECENT_DEPLOYMENTS: i64 = 10;

#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub generated_at: String,
    pub vendors: VendorHealth,
    /// Open (active or blocked) work items, in tree order, with the
    /// completed (or archived) ancestors of open items, marked `context`,
    /// so that the tree stays whole.
    pub work_items: Vec<ReportItem>,
    /// How many of `work_items` are open (not `context`).
    pub open_work_items: i64,
    pub deployments: Vec<ReportDeployment>,
    /// Enhancements not completed, by priority.
    pub enhancements: Vec<ReportEnhancement>,
    pub conflicts: Vec<ConflictView>,
    pub sync: SyncHealth,
    /// Live claims of open items, by agent ("in progress, by agent").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<crate::ops::ReportClaim>,
    /// All live claims, when more than `claims` shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_count: Option<i64>,
    /// Claims that lost to one first in the hub's order (their agents are
    /// told here: the item is not theirs to work on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_claims: Vec<crate::ops::LostClaim>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VendorHealth {
    pub operational: i64,
    pub total: i64,
    pub list: Vec<ReportVendor>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportVendor {
    pub name: String,
    pub status: String,
    pub passing: i64,
    pub total_tests: i64,
    pub formats: Vec<String>,
}

impl ReportVendor {
    /// A vendor as the report shows it: its test counts and the formats
    /// its metadata marks supported.
    pub(crate) fn new(name: String, status: String, metadata: &Value) -> ReportVendor {
        let t = &metadata["test_results"];
        let formats = metadata["format_support"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        ReportVendor {
            name,
            status,
            passing: t["passing"].as_i64().unwrap_or(0),
            total_tests: t["total"].as_i64().unwrap_or(0),
            formats,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportItem {
    pub id: String,
    pub title: String,
    pub item_type: String,
    pub status: String,
    pub depth: i64,
    /// Two spaces per depth level.
    pub indent: &'static str,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_title: Option<String>,
    /// Not open itself: shown because an open item sits under it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub context: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportDeployment {
    pub id: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub deployed: String,
    pub commit_hash: String,
    pub short_commit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_title: Option<String>,
    /// `unit: 150, integration: 30`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<bool>,
    pub vendors: Vec<String>,
}

impl ReportDeployment {
    /// A deployment as the report shows it, from its stored time, commit,
    /// metadata and the names of the vendors it links (sorted here).
    pub(crate) fn new(
        id: String,
        deployed_at: String,
        commit: String,
        metadata: &Value,
        mut vendors: Vec<String>,
    ) -> ReportDeployment {
        vendors.sort_by_key(|v| v.to_lowercase());
        ReportDeployment {
            id,
            deployed: legacy_time(deployed_at),
            short_commit: commit.chars().take(7).collect(),
            commit_hash: commit,
            pr_number: metadata["pr_number"].as_i64(),
            pr_title: metadata["pr_title"].as_str().map(str::to_owned),
            tests: tests_line(&metadata["test_summary"]),
            compliance: metadata["constitutional_compliance"].as_bool(),
            vendors,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportEnhancement {
    pub id: String,
    pub title: String,
    pub priority: i64,
    pub status: String,
    /// `Q1 2026`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ReportEnhancement {
    /// An enhancement as the report shows it (its target quarter as
    /// `Q1 2026`).
    pub(crate) fn new(
        id: String,
        title: String,
        priority: i64,
        status: String,
        target_quarter: Option<&str>,
        description: Option<String>,
    ) -> ReportEnhancement {
        ReportEnhancement {
            id,
            title,
            priority,
            status,
            target: target_quarter.map(quarter_label),
            description,
        }
    }
}

/// A stored time (`2026-01-02T03:04:05.000000Z`) as the report shows it
/// (`2026-01-02 03:04:05`): cut in place when it has the store's fixed UTC
/// layout, parsed otherwise.
fn legacy_time(mut rfc3339: String) -> String {
    let b = rfc3339.as_bytes();
    let fixed = b.len() >= 20
        && b[b.len() - 1] == b'Z'
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (b.len() == 20 || b[19] == b'.')
        && b[..19]
            .iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit());
    if fixed {
        rfc3339.truncate(19);
        rfc3339.replace_range(10..11, " ");
        return rfc3339;
    }
    Timestamp::parse(&rfc3339).map(Timestamp::to_legacy).unwrap_or(rfc3339)
}

/// Two spaces per depth level, up to five levels.
fn indent(depth: i64) -> &'static str {
    const SPACES: &str = "          ";
    &SPACES[..2 * depth.clamp(0, 5) as usize]
}

/// Work item ids to their place in a list.
type IdMap<K> = HashMap<K, usize>;

/// A work item as the store holds what the report shows of it
/// (`store::query::report`).
#[derive(Clone, Debug)]
pub(crate) struct StoredItem {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) item_type: String,
    pub(crate) status: String,
    pub(crate) depth: i64,
    /// As stored.
    pub(crate) created_at: String,
    pub(crate) branch_name: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) deleted: bool,
}

impl StoredItem {
    /// Siblings are ordered by created time to the second, title, id.
    fn sibling_key(&self) -> (&str, &str, &str) {
        let created = self.created_at.get(..19).unwrap_or(&self.created_at);
        (created, &self.title, &self.id)
    }

    /// The item as the report shows it (its texts taken out of `self`);
    /// `context`: not open itself, an ancestor of an open item.
    fn take_shown(&mut self, context: bool, parent_title: Option<String>) -> ReportItem {
        ReportItem {
            id: std::mem::take(&mut self.id),
            title: std::mem::take(&mut self.title),
            item_type: std::mem::take(&mut self.item_type),
            status: std::mem::take(&mut self.status),
            depth: self.depth,
            indent: indent(self.depth),
            created: legacy_time(std::mem::take(&mut self.created_at)),
            branch_name: self.branch_name.take(),
            parent_title,
            context,
        }
    }
}

/// The report's work items: the open ones and the ancestors that keep
/// their tree whole, in tree order (each item followed by its subtree) with
/// siblings by what the report shows (created time to the second, then
/// title, then id), so that a report read back by the legacy importer lists
/// its items in the same order. The tree is the parent links: an item at
/// depth 0 is a root whatever its link says (a cut cycle, an orphan).
/// Returns them with the count of open ones.
fn report_items(tx: &rusqlite::Connection) -> Result<(Vec<ReportItem>, i64)> {
    // The open items first, then (from `n_open` on) their ancestors that
    // are not open; a deleted one is not shown, but is still the place of
    // its subtree.
    let mut open = query::open_items(tx)?;
    let open_index: IdMap<&str> = open.iter().enumerate().map(|(k, n)| (n.id.as_str(), k)).collect();

    // The ancestors that are not open, fetched by id up each chain until
    // it meets a known item: shown as context unless deleted.
    let mut more: Vec<StoredItem> = Vec::new();
    let mut more_index: IdMap<String> = IdMap::default();
    {
        let mut item = query::items_by_id(tx)?;
        let mut fetch = |id: &str, more: &mut Vec<StoredItem>, more_index: &mut IdMap<String>| -> Result<()> {
            if open_index.contains_key(id) || more_index.contains_key(id) {
                return Ok(());
            }
            if let Some(row) = item(id)? {
                more_index.insert(id.to_owned(), more.len());
                more.push(row);
            }
            Ok(())
        };
        for n in &open {
            if n.depth > 0
                && let Some(p) = &n.parent_id
            {
                fetch(p, &mut more, &mut more_index)?;
            }
        }
        let mut k = 0;
        while k < more.len() {
            if more[k].depth > 0
                && let Some(p) = more[k].parent_id.take()
            {
                fetch(&p, &mut more, &mut more_index)?;
                more[k].parent_id = Some(p);
            }
            k += 1;
        }
    }
    let n_open = open.len();
    let find = |id: &str| -> Option<usize> {
        open_index
            .get(id)
            .copied()
            .or_else(|| more_index.get(id).map(|k| n_open + k))
    };

    // Each node's parent in the tree (none for a root), then the parent
    // titles shown (a root keeps the title its link names, when it exists).
    const ROOT: usize = usize::MAX;
    let nodes_len = n_open + more.len();
    let node_at = |k: usize| if k < n_open { &open[k] } else { &more[k - n_open] };
    let mut parent = Vec::with_capacity(nodes_len);
    let mut parent_titles: Vec<Option<String>> = Vec::with_capacity(nodes_len);
    for k in 0..nodes_len {
        let n = node_at(k);
        let linked = n.parent_id.as_deref().map(|p| (p, find(p)));
        parent.push(match linked {
            Some((_, Some(p))) if n.depth > 0 && node_at(p).depth == n.depth - 1 => p,
            _ => ROOT,
        });
        parent_titles.push(match linked {
            _ if n.deleted => None,
            None => None,
            Some((_, Some(p))) => Some(node_at(p).title.clone()),
            Some((p, None)) => query::title(tx, p)?,
        });
    }

    // Children grouped by parent, each group in sibling order; then a walk
    // from the roots.
    let mut by_parent: Vec<(usize, (&str, &str, &str), usize)> = (0..nodes_len)
        .map(|k| (parent[k], node_at(k).sibling_key(), k))
        .collect();
    by_parent.sort_unstable();
    let by_parent: Vec<usize> = by_parent.into_iter().map(|(_, _, k)| k).collect();
    let first_child = |p: usize| by_parent.partition_point(|&k| parent[k] < p);
    let mut stack: Vec<usize> = Vec::new();
    let mut order: Vec<usize> = Vec::with_capacity(nodes_len);
    let push_children = |p: usize, stack: &mut Vec<usize>| {
        let from = first_child(p);
        let to = from + by_parent[from..].partition_point(|&k| parent[k] == p);
        stack.extend(by_parent[from..to].iter().rev());
    };
    push_children(ROOT, &mut stack);
    while let Some(k) = stack.pop() {
        order.push(k);
        push_children(k, &mut stack);
    }

    let mut items = Vec::with_capacity(order.len());
    for k in order {
        let (n, context) = if k < n_open {
            (&mut open[k], false)
        } else {
            (&mut more[k - n_open], true)
        };
        if !n.deleted {
            items.push(n.take_shown(context, parent_titles[k].take()));
        }
    }
    Ok((items, n_open as i64))
}

/// `2026-Q1` -> `Q1 2026`.
pub(crate) fn quarter_label(q: &str) -> String {
    match q.split_once('-') {
        Some((year, quarter)) => format!("{quarter} {year}"),
        None => q.to_owned(),
    }
}

/// `{"unit":150,"integration":30}` -> `unit: 150, integration: 30`, in the
/// order the categories were written where the JSON keeps it (sorted here).
fn tests_line(summary: &Value) -> Option<String> {
    let o = summary.as_object()?;
    if o.is_empty() {
        return None;
    }
    Some(
        o.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The most live claims the report lists.
const MAX_CLAIMS: i64 = 50;

impl Tracker {
    /// Gather the status report.
    pub fn status_report(&self) -> Result<StatusReport> {
        let now = self.store().now_ms();
        self.store().read(|tx| {
            let (claims, claim_count) = crate::ops::claims::live_claims(tx, now, MAX_CLAIMS)?;
            let vendors = query::vendors(tx)?;
            let operational = vendors.iter().filter(|v| v.status == "operational").count() as i64;
            let (work_items, open_work_items) = report_items(tx)?;
            Ok(StatusReport {
                generated_at: Timestamp::now().to_string(),
                vendors: VendorHealth {
                    operational,
                    total: vendors.len() as i64,
                    list: vendors,
                },
                work_items,
                open_work_items,
                deployments: query::recent_deployments(tx, RECENT_DEPLOYMENTS)?,
                enhancements: query::open_enhancements(tx)?,
                conflicts: crate::ops::exchange_conflicts(tx)?,
                sync: crate::ops::sync_health(tx)?,
                claim_count: (claim_count > claims.len() as i64).then_some(claim_count),
                claims,
                lost_claims: crate::ops::claims::lost_claims(tx, None, now)?,
            })
        })
    }
}

/// Render a report with `template` (the default layout when `None`).
///
/// A template reads the report's fields, as its JSON shows them, plus
/// `work_items_markdown`: the work items in the legacy layout (see
/// [`work_items_markdown`]). Only the fields a template names are turned
/// into template values: for a thousand work items, converting them costs
/// more than the rest of the rendering.
pub fn render_markdown(report: &StatusReport, template: Option<&str>) -> Result<String> {
    match template {
        // The default template is compiled once per process.
        None => {
            static DEFAULT: std::sync::OnceLock<CompiledTemplate> = std::sync::OnceLock::new();
            DEFAULT
                .get_or_init(|| CompiledTemplate::new(DEFAULT_TEMPLATE).expect("the default template parses"))
                .render(report)
        }
        Some(source) => CompiledTemplate::new(source)?.render(report),
    }
}

/// A template ready to render, with the context fields it reads.
struct CompiledTemplate {
    env: minijinja::Environment<'static>,
    /// The top-level names the template reads; `None`: all of them (it
    /// calls `debug()`, which shows the whole context).
    reads: Option<std::collections::HashSet<String>>,
}

impl CompiledTemplate {
    fn new(source: &str) -> Result<CompiledTemplate> {
        let mut env = minijinja::Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.keep_trailing_newline(true);
        env.set_syntax(syntax.build().map_err(|e| Error::invalid("template", e.to_string()))?);
        env.add_template_owned("status", source.to_owned())
            .map_err(|e| Error::invalid("template", format!("does not parse: {e}")))?;
        let names = env
            .get_template("status")
            .map_err(|e| Error::invalid("template", e.to_string()))?
            .undeclared_variables(false);
        let reads = (!names.contains("debug")).then_some(names);
        Ok(CompiledTemplate { env, reads })
    }

    fn render(&self, report: &StatusReport) -> Result<String> {
        let tmpl = self
            .env
            .get_template("status")
            .map_err(|e| Error::invalid("template", e.to_string()))?;
        tmpl.render(self.context(report))
            .map_err(|e| Error::invalid("template", format!("failed to render: {e}")))
    }

    /// The template's context: each field of the report it reads.
    fn context(&self, report: &StatusReport) -> minijinja::Value {
        use minijinja::value::{Serde, Value};
        let reads = |name: &str| self.reads.as_ref().is_none_or(|names| names.contains(name));
        let mut fields: Vec<(&str, Value)> = Vec::with_capacity(9);
        let mut add = |name: &'static str, value: &dyn Fn() -> Value| {
            if reads(name) {
                fields.push((name, value()));
            }
        };
        add("generated_at", &|| Value::from(report.generated_at.as_str()));
        add("vendors", &|| Value::from(Serde(&report.vendors)));
        add("work_items", &|| Value::from(Serde(&report.work_items)));
        add("work_items_markdown", &|| {
            Value::from(work_items_markdown(&report.work_items))
        });
        add("open_work_items", &|| Value::from(report.open_work_items));
        add("deployments", &|| Value::from(Serde(&report.deployments)));
        add("enhancements", &|| Value::from(Serde(&report.enhancements)));
        add("conflicts", &|| Value::from(Serde(&report.conflicts)));
        add("sync", &|| Value::from(Serde(&report.sync)));
        add("claims", &|| Value::from(Serde(&report.claims)));
        add("lost_claims", &|| Value::from(Serde(&report.lost_claims)));
        Value::from_pairs(fields)
    }
}

/// The work items in the legacy layout, as the default template shows them:
/// per item its heading, status, creation time, then its branch and its
/// parent's title when it has them, each line indented by its depth. The
/// same as this loop, which a template can use instead:
///
/// ```jinja
/// {% for w in work_items -%}
/// {{ w.indent }}### {{ w.title }} ({{ w.item_type }})
/// {{ w.indent }}- **Status**: {{ w.status }}
/// {{ w.indent }}- **Created**: {{ w.created }} UTC
/// {% if w.branch_name %}{{ w.indent }}- **Branch**: {{ w.branch_name }}
/// {% endif %}{% if w.parent_title %}{{ w.indent }}- **Parent**: {{ w.parent_title }}
/// {% endif %}{% endfor %}
/// ```
pub fn work_items_markdown(items: &[ReportItem]) -> String {
    let mut out = String::with_capacity(items.len() * 160);
    let mut line = |indent: &str, parts: &[&str]| {
        out.push_str(indent);
        for part in parts {
            out.push_str(part);
        }
        out.push('\n');
    };
    for w in items {
        let i = w.indent;
        line(i, &["### ", &w.title, " (", &w.item_type, ")"]);
        line(i, &["- **Status**: ", &w.status]);
        line(i, &["- **Created**: ", &w.created, " UTC"]);
        if let Some(branch) = w.branch_name.as_deref().filter(|b| !b.is_empty()) {
            line(i, &["- **Branch**: ", branch]);
        }
        if let Some(parent) = w.parent_title.as_deref().filter(|p| !p.is_empty()) {
            line(i, &["- **Parent**: ", parent]);
        }
    }
    out
}

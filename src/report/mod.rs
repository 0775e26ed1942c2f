//! The status report: one document a person reads to know where the
//! project stands. Built from the store as data ([`StatusReport`]), then
//! rendered to markdown through a minijinja template whose default keeps the
//! legacy `.project_status.md` layout, so the legacy importer reads it back.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ops::{ConflictView, SyncHealth, Tracker};
use crate::time::Timestamp;

/// The default template (the legacy layout).
pub const DEFAULT_TEMPLATE: &str = include_str!("status.md.j2");

/// How many deployments the report lists.
pub const RECENT_DEPLOYMENTS: i64 = 10;

#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub generated_at: String,
    pub vendors: VendorHealth,
    /// Open (active or blocked) work items, in tree order.
    pub work_items: Vec<ReportItem>,
    pub deployments: Vec<ReportDeployment>,
    /// Enhancements not completed, by priority.
    pub enhancements: Vec<ReportEnhancement>,
    pub conflicts: Vec<ConflictView>,
    pub sync: SyncHealth,
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

#[derive(Clone, Debug, Serialize)]
pub struct ReportItem {
    pub id: String,
    pub title: String,
    pub item_type: String,
    pub status: String,
    pub depth: i64,
    /// Two spaces per depth level.
    pub indent: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_title: Option<String>,
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

fn legacy_time(rfc3339: &str) -> String {
    Timestamp::parse(rfc3339)
        .map(Timestamp::to_legacy)
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// `2026-Q1` -> `Q1 2026`.
pub fn quarter_label(q: &str) -> String {
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

impl Tracker {
    /// Gather the status report.
    pub fn status_report(&self) -> Result<StatusReport> {
        self.store().read(|tx| {
            let mut vendors = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT name, status, metadata FROM vendors WHERE deleted_at IS NULL ORDER BY name_key",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
                for row in rows {
                    let (name, status, metadata) = row?;
                    let m: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
                    let t = &m["test_results"];
                    let formats = m["format_support"]
                        .as_object()
                        .map(|o| o.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
                        .unwrap_or_default();
                    vendors.push(ReportVendor {
                        name,
                        status,
                        passing: t["passing"].as_i64().unwrap_or(0),
                        total_tests: t["total"].as_i64().unwrap_or(0),
                        formats,
                    });
                }
            }
            let operational = vendors.iter().filter(|v| v.status == "operational").count() as i64;

            let mut titles: HashMap<String, String> = HashMap::new();
            let mut work_items = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT w.id, w.title, w.item_type, w.status, w.depth, w.created_at, w.branch_name, w.parent_id,
                            p.title, w.path
                     FROM work_items w LEFT JOIN work_items p ON p.id = w.parent_id
                     WHERE w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL
                     ORDER BY w.path",
                )?;
                let rows = stmt.query_map([], |r| {
                    let depth: i64 = r.get(4)?;
                    let created: String = r.get(5)?;
                    Ok((ReportItem {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        item_type: r.get(2)?,
                        status: r.get(3)?,
                        depth,
                        indent: "  ".repeat(depth.clamp(0, 5) as usize),
                        created: legacy_time(&created),
                        branch_name: r.get(6)?,
                        parent_title: r.get(8)?,
                    }, r.get::<_, String>(9)?))
                })?;
                let mut keyed = Vec::new();
                for row in rows {
                    let (row, path) = row?;
                    titles.insert(row.id.clone(), row.title.clone());
                    keyed.push((path, row));
                }
                // Tree order with siblings by what the report shows (created
                // time to the second, then title), so that a report read back
                // by the legacy importer lists its items in the same order.
                let mut shown: HashMap<String, (String, String)> = HashMap::new();
                let mut stmt = tx.prepare_cached("SELECT id, substr(created_at, 1, 19), title FROM work_items")?;
                for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))? {
                    let (id, key) = r?;
                    shown.insert(id, key);
                }
                let key = |path: &str| -> Vec<(String, String, String)> {
                    path.split('/')
                        .filter(|s| !s.is_empty())
                        .map(|id| {
                            let (c, t) = shown.get(id).cloned().unwrap_or_default();
                            (c, t, id.to_owned())
                        })
                        .collect()
                };
                let mut keyed: Vec<_> = keyed.into_iter().map(|(path, row)| (key(&path), row)).collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                work_items.extend(keyed.into_iter().map(|(_, row)| row));
            }

            let mut deployments = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT d.id, d.deployed_at, d.commit_hash, d.metadata,
                            (SELECT group_concat(v.name, char(31)) FROM deployment_links l JOIN vendors v ON v.id = l.target_id
                              WHERE l.deployment_id = d.id AND l.removed = 0 AND l.link_type = 'vendor')
                     FROM deployments d WHERE d.deleted_at IS NULL
                     ORDER BY d.deployed_at DESC, d.id DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map([RECENT_DEPLOYMENTS], |r| {
                    let commit: String = r.get(2)?;
                    let metadata: String = r.get(3)?;
                    let m: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
                    let vendors: Option<String> = r.get(4)?;
                    let mut vendors: Vec<String> =
                        vendors.map(|v| v.split('\u{1f}').map(str::to_owned).collect()).unwrap_or_default();
                    vendors.sort_by_key(|v| v.to_lowercase());
                    Ok(ReportDeployment {
                        id: r.get(0)?,
                        deployed: legacy_time(&r.get::<_, String>(1)?),
                        short_commit: commit.chars().take(7).collect(),
                        commit_hash: commit,
                        pr_number: m["pr_number"].as_i64(),
                        pr_title: m["pr_title"].as_str().map(str::to_owned),
                        tests: tests_line(&m["test_summary"]),
                        compliance: m["constitutional_compliance"].as_bool(),
                        vendors,
                    })
                })?;
                for row in rows {
                    deployments.push(row?);
                }
            }

            let mut enhancements = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, title, priority, status, target_quarter, description FROM enhancements
                     WHERE deleted_at IS NULL AND status != 'completed' ORDER BY priority, created_at, id",
                )?;
                let rows = stmt.query_map([], |r| {
                    let target: Option<String> = r.get(4)?;
                    Ok(ReportEnhancement {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        priority: r.get(2)?,
                        status: r.get(3)?,
                        target: target.as_deref().map(quarter_label),
                        description: r.get(5)?,
                    })
                })?;
                for row in rows {
                    enhancements.push(row?);
                }
            }

            Ok(StatusReport {
                generated_at: Timestamp::now().to_string(),
                vendors: VendorHealth { operational, total: vendors.len() as i64, list: vendors },
                work_items,
                deployments,
                enhancements,
                conflicts: crate::ops::exchange_conflicts(tx)?,
                sync: crate::ops::sync_health(tx)?,
            })
        })
    }
}

/// Render a report with `template` (the default layout when `None`).
pub fn render_markdown(report: &StatusReport, template: Option<&str>) -> Result<String> {
    let ctx = minijinja::Value::from(minijinja::value::Serde(report));
    let render = |env: &minijinja::Environment<'_>| -> Result<String> {
        let tmpl = env
            .get_template("status")
            .map_err(|e| Error::invalid("template", e.to_string()))?;
        tmpl.render(&ctx)
            .map_err(|e| Error::invalid("template", format!("failed to render: {e}")))
    };
    match template {
        // The default template is compiled once per process.
        None => {
            static DEFAULT: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
            let env = DEFAULT.get_or_init(|| environment(DEFAULT_TEMPLATE).expect("the default template parses"));
            render(env)
        }
        Some(source) => render(&environment(source)?),
    }
}

fn environment(source: &str) -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax.keep_trailing_newline(true);
    env.set_syntax(syntax.build().map_err(|e| Error::invalid("template", e.to_string()))?);
    env.add_template_owned("status", source.to_owned())
        .map_err(|e| Error::invalid("template", format!("does not parse: {e}")))?;
    Ok(env)
}

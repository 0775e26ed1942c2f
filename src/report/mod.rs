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

/// A stored time (`2026-01-02T03:04:05.000000Z`) as the report shows it
/// (`2026-01-02 03:04:05`): sliced when it has the store's fixed UTC layout,
/// parsed otherwise.
fn legacy_time(rfc3339: &str) -> String {
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
        let mut s = String::with_capacity(19);
        s.push_str(&rfc3339[..10]);
        s.push(' ');
        s.push_str(&rfc3339[11..19]);
        return s;
    }
    Timestamp::parse(rfc3339)
        .map(Timestamp::to_legacy)
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// Two spaces per depth level, up to five levels.
fn indent(depth: i64) -> String {
    const SPACES: &str = "          ";
    SPACES[..2 * depth.clamp(0, 5) as usize].to_owned()
}

/// A work item row as read for the report, before it is ordered.
struct ItemRow {
    item: ReportItem,
    path: String,
    /// `created_at` to the second: the sibling order key, with the title.
    created_key: String,
}

const ITEM_COLUMNS: &str =
    "w.id, w.title, w.item_type, w.status, w.depth, w.created_at, w.branch_name, p.title, w.path";

fn item_row(r: &rusqlite::Row<'_>, context: bool) -> rusqlite::Result<ItemRow> {
    let depth: i64 = r.get(4)?;
    let created = r.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?;
    let created_key = created.get(..19).unwrap_or(created).to_owned();
    Ok(ItemRow {
        item: ReportItem {
            id: r.get(0)?,
            title: r.get(1)?,
            item_type: r.get(2)?,
            status: r.get(3)?,
            depth,
            indent: indent(depth),
            created: legacy_time(created),
            branch_name: r.get(6)?,
            parent_title: r.get(7)?,
            context,
        },
        path: r.get(8)?,
        created_key,
    })
}

/// The report's work items: the open ones and the ancestors that keep
/// their tree whole, in tree order with siblings by what the report shows
/// (created time to the second, then title, then id), so that a report
/// read back by the legacy importer lists its items in the same order.
/// Returns them with the count of open ones.
fn report_items(tx: &rusqlite::Transaction<'_>) -> Result<(Vec<ReportItem>, i64)> {
    let mut rows: Vec<ItemRow> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS}
             FROM work_items w LEFT JOIN work_items p ON p.id = w.parent_id
             WHERE w.status != 'completed' AND w.deleted_at IS NULL AND w.archived_at IS NULL"
        ))?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            rows.push(item_row(r, false)?);
        }
    }
    // Paths are stored as the ancestors' keys; the ordering below spells
    // them with ids.
    let mut ids: HashMap<i64, String> = HashMap::new();
    let mut spell = |row: &mut ItemRow| -> Result<()> {
        row.path = crate::ops::work_items::user_path(&row.path, &row.item.id, |key| {
            if let Some(id) = ids.get(&key) {
                return Ok(id.clone());
            }
            let id: String = tx
                .prepare_cached("SELECT id FROM work_items WHERE key = ?1")?
                .query_row([key], |r| r.get(0))?;
            ids.insert(key, id.clone());
            Ok(id)
        })?;
        Ok(())
    };
    for row in &mut rows {
        spell(row)?;
    }
    let open = rows.len() as i64;
    let mut index: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (k, row) in rows.iter().enumerate() {
        index.insert(row.item.id.clone(), k);
    }
    // Ancestors that are not open: shown as context unless deleted; a
    // deleted one still orders its subtree (by its key, not shown).
    let missing: Vec<String> = {
        let mut seen = std::collections::HashSet::new();
        rows.iter()
            .flat_map(|row| segments(&row.path))
            .filter(|id| !index.contains_key(*id) && seen.insert(*id))
            .map(str::to_owned)
            .collect()
    };
    let mut hidden: HashMap<String, (String, String)> = HashMap::new();
    if !missing.is_empty() {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {ITEM_COLUMNS}, w.deleted_at IS NOT NULL
             FROM work_items w LEFT JOIN work_items p ON p.id = w.parent_id WHERE w.id = ?1"
        ))?;
        for id in missing {
            let mut q = stmt.query([&id])?;
            let Some(r) = q.next()? else { continue };
            let mut row = item_row(r, true)?;
            spell(&mut row)?;
            if r.get::<_, bool>(9)? {
                hidden.insert(row.item.id, (row.created_key, row.item.title));
            } else {
                index.insert(row.item.id.clone(), rows.len());
                rows.push(row);
            }
        }
    }
    let key_of = |id: &str| -> (&str, &str) {
        match index.get(id) {
            Some(&k) => (rows[k].created_key.as_str(), rows[k].item.title.as_str()),
            None => hidden
                .get(id)
                .map(|(c, t)| (c.as_str(), t.as_str()))
                .unwrap_or(("", "")),
        }
    };
    let keys: Vec<Vec<(&str, &str, &str)>> = rows
        .iter()
        .map(|row| {
            segments(&row.path)
                .map(|id| {
                    let (c, t) = key_of(id);
                    (c, t, id)
                })
                .collect()
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    drop(keys);
    let mut slots: Vec<Option<ItemRow>> = rows.into_iter().map(Some).collect();
    let items = order
        .into_iter()
        .filter_map(|k| slots[k].take().map(|r| r.item))
        .collect();
    Ok((items, open))
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
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

            let (work_items, open_work_items) = report_items(tx)?;

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
                open_work_items,
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

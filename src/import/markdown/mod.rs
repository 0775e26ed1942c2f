//! Import of legacy `.project_status.md` files (the earlier tracker's
//! report, and ours: `export markdown` writes the same layout).
//!
//! A careful line parser: the layout is line-oriented, and real files are
//! hand-edited, so sections may be missing or reordered, prose may sit
//! between entries, hashes may be short or malformed. Every line that is not
//! imported is reported with its number and the reason; one bad entry never
//! aborts the import; a bad value does not cost the entry that holds it (it
//! is kept raw in the metadata, with a warning). Nothing is invented: a value
//! the file does not give is left to the domain's default.
//!
//! Ids are deterministic (UUID v5 over stable keys: a work item from its
//! parent's key, type, title and created time; a deployment from its commit;
//! a vendor from its name; an enhancement from its title), and an entry whose
//! record exists is left unchanged, so importing a file twice changes
//! nothing.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::ImportReport;
use crate::domain::{self, ItemType, WorkStatus, ids};
use crate::error::{Error, Result};
use crate::ops::{self, NewDeployment, NewEnhancement, NewVendor, NewWorkItem, Tracker, VendorUpdate};
use crate::store::write::Fields;
use crate::store::{DEPLOYMENTS, WriteTx};
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Section {
    Preamble,
    Vendors,
    Items,
    Deployments,
    Enhancements,
    Conflicts,
    Unknown,
}

#[derive(Clone, Debug, Default)]
struct LegacyVendor {
    line: usize,
    name: String,
    status: String,
    tests: Option<(i64, i64)>,
    formats: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct LegacyItem {
    line: usize,
    depth: usize,
    title: String,
    item_type: String,
    status: Option<String>,
    status_line: usize,
    created: Option<Timestamp>,
    created_raw: String,
    branch: Option<String>,
    parent: Option<(usize, String)>,
    skipped: bool,
}

#[derive(Clone, Debug, Default)]
struct LegacyDeployment {
    line: usize,
    deployed_at: Option<Timestamp>,
    heading: String,
    pr_number: Option<i64>,
    title: Option<String>,
    commit: Option<(usize, String)>,
    tests: Map<String, Value>,
    compliance: Option<bool>,
    vendors: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct LegacyEnhancement {
    line: usize,
    title: String,
    priority: Option<i64>,
    target: Option<String>,
    description: Option<String>,
}

/// A status file as read, before anything is written.
#[derive(Debug, Default)]
struct LegacyDoc {
    vendors: Vec<LegacyVendor>,
    items: Vec<LegacyItem>,
    deployments: Vec<LegacyDeployment>,
    enhancements: Vec<LegacyEnhancement>,
}

enum Current {
    None,
    Item(usize),
    Deployment(usize),
    Enhancement(usize),
}

fn at(line: usize) -> String {
    format!("line {line}")
}

/// `- **Key**: value` -> (`key`, `value`).
fn field(t: &str) -> Option<(String, &str)> {
    let rest = t.strip_prefix("- **").or_else(|| t.strip_prefix("* **"))?;
    let (key, value) = rest.split_once("**")?;
    let value = value.strip_prefix(':').unwrap_or(value);
    Some((key.trim().trim_end_matches(':').to_ascii_lowercase(), value.trim()))
}

/// `YYYY-MM-DD HH:MM:SS` (optionally ` UTC`), or RFC 3339.
///
/// The text is whatever the file holds: it is cut only where a character
/// starts (`str::get`), never by raw byte offset, so a multi-byte character
/// at byte 10 is a malformed time, not a panic.
fn legacy_time(text: &str) -> Option<Timestamp> {
    let t = text.trim().trim_end_matches("UTC").trim();
    Timestamp::parse(t).or_else(|| {
        if t.len() == 19 {
            Timestamp::parse(&format!("{}T{}Z", t.get(..10)?, t.get(11..)?))
        } else if t.len() == 10 {
            Timestamp::parse(&format!("{t}T00:00:00Z"))
        } else {
            None
        }
    })
}

/// `Q1 2026` (or `2026-Q1`) -> `2026-Q1`.
fn quarter(text: &str) -> Option<String> {
    let t = text.trim();
    if domain::quarter("target", t).is_ok() {
        return Some(t.to_owned());
    }
    let (q, y) = t.split_once(' ')?;
    let q = format!("{}-{}", y.trim(), q.trim().to_ascii_uppercase());
    domain::quarter("target", &q).ok()
}

/// `title (kind)` -> (`title`, `kind`), the kind from the last parentheses.
fn title_and_tag(text: &str) -> Option<(&str, &str)> {
    let t = text.trim();
    let inner = t.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    Some((inner[..open].trim(), inner[open + 1..].trim()))
}

fn parse(text: &str, report: &mut ImportReport) -> LegacyDoc {
    let mut doc = LegacyDoc::default();
    let mut section = Section::Preamble;
    let mut current = Current::None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if t.is_empty() || t == "---" || t.starts_with("*Generated at") || t.starts_with("<!--") {
            continue;
        }
        if let Some(h) = t.strip_prefix("# ") {
            if !h.trim_start().starts_with("Project Status") {
                report.skip(
                    &at(n),
                    Some(n),
                    t,
                    "a title other than \"Project Status\"; nothing to import",
                );
            }
            continue;
        }
        if let Some(h) = t.strip_prefix("## ") {
            let name = h.to_ascii_lowercase();
            current = Current::None;
            section = if name.contains("vendor") {
                Section::Vendors
            } else if name.contains("work item") {
                Section::Items
            } else if name.contains("deployment") {
                Section::Deployments
            } else if name.contains("enhancement") {
                Section::Enhancements
            } else if name.contains("conflict") {
                Section::Conflicts
            } else {
                report.skip(
                    &at(n),
                    Some(n),
                    t,
                    "not a section of the status layout; its lines are skipped",
                );
                Section::Unknown
            };
            continue;
        }
        match section {
            Section::Preamble => report.skip(&at(n), Some(n), t, "text before the first section"),
            Section::Unknown => report.skip(&at(n), Some(n), t, "inside a section that is not imported"),
            Section::Conflicts => report.skip(
                &at(n),
                Some(n),
                t,
                "sync conflicts are not imported (list_conflicts shows the store's own)",
            ),
            Section::Vendors => match vendor_line(t) {
                Some(Ok(mut v)) => {
                    v.line = n;
                    doc.vendors.push(v)
                }
                Some(Err(reason)) => report.skip(&at(n), Some(n), t, reason),
                None => report.skip(&at(n), Some(n), t, "prose, not a vendor entry (- **name**: status ...)"),
            },
            Section::Items => {
                if let Some(h) = t.strip_prefix("### ") {
                    let mut item = LegacyItem {
                        line: n,
                        depth: indent / 2,
                        ..Default::default()
                    };
                    match title_and_tag(h) {
                        Some((title, kind)) if ItemType::parse(kind).is_ok() && !title.is_empty() => {
                            item.title = title.to_owned();
                            item.item_type = ItemType::parse(kind).map(|k| k.as_str().to_owned()).unwrap_or_default();
                        }
                        Some((_, kind)) => {
                            item.skipped = true;
                            report.skip(
                                &at(n),
                                Some(n),
                                t,
                                format!("{kind:?} is not an item type (project, session, task, research); the entry is skipped"),
                            );
                        }
                        None => {
                            item.skipped = true;
                            report.skip(
                                &at(n),
                                Some(n),
                                t,
                                "a work item heading needs \"### <title> (<item_type>)\"",
                            );
                        }
                    }
                    doc.items.push(item);
                    current = Current::Item(doc.items.len() - 1);
                    continue;
                }
                let Current::Item(k) = current else {
                    report.skip(&at(n), Some(n), t, "prose, not part of a work item entry");
                    continue;
                };
                let item = &mut doc.items[k];
                if item.skipped {
                    report.skip(&at(n), Some(n), t, "belongs to a skipped entry");
                    continue;
                }
                match field(t) {
                    Some((key, value)) => match key.as_str() {
                        "status" => {
                            item.status = Some(value.to_owned());
                            item.status_line = n;
                        }
                        "created" => {
                            item.created_raw = value.to_owned();
                            item.created = legacy_time(value);
                            if item.created.is_none() {
                                report.warn(
                                    &at(n),
                                    Some(n),
                                    t,
                                    "not a time like 2026-01-31 12:00:00 UTC; the item is created now",
                                );
                            }
                        }
                        "branch" => item.branch = Some(value.to_owned()).filter(|b| !b.is_empty()),
                        "parent" => item.parent = Some((n, value.to_owned())).filter(|p| !p.1.is_empty()),
                        _ => report.skip(
                            &at(n),
                            Some(n),
                            t,
                            format!("field **{key}** is not imported for work items"),
                        ),
                    },
                    None => report.skip(&at(n), Some(n), t, "prose inside a work item entry"),
                }
            }
            Section::Deployments => {
                if let Some(h) = t.strip_prefix("### ") {
                    let (time, rest) = match h.split_once(" - ") {
                        Some((a, b)) => (a, b.trim()),
                        None => (h, ""),
                    };
                    let mut d = LegacyDeployment {
                        line: n,
                        heading: t.to_owned(),
                        deployed_at: legacy_time(time),
                        ..Default::default()
                    };
                    if let Some(pr) = rest.strip_prefix("PR #") {
                        match pr.trim().parse::<i64>() {
                            Ok(p) => d.pr_number = Some(p),
                            Err(_) => report.warn(&at(n), Some(n), t, "the PR number is not a number; left out"),
                        }
                    }
                    if d.deployed_at.is_none() {
                        report.skip(&at(n), Some(n), t, "a deployment heading needs \"### <YYYY-MM-DD HH:MM:SS> UTC - PR #<n>\"; the entry is skipped");
                    }
                    doc.deployments.push(d);
                    current = Current::Deployment(doc.deployments.len() - 1);
                    continue;
                }
                let Current::Deployment(k) = current else {
                    report.skip(&at(n), Some(n), t, "prose, not part of a deployment entry");
                    continue;
                };
                let d = &mut doc.deployments[k];
                if d.deployed_at.is_none() {
                    report.skip(&at(n), Some(n), t, "belongs to a skipped entry");
                    continue;
                }
                match field(t) {
                    Some((key, value)) => match key.as_str() {
                        "title" => d.title = Some(value.to_owned()).filter(|v| !v.is_empty()),
                        "commit" => d.commit = Some((n, value.trim_matches('`').trim().to_owned())),
                        "tests" => {
                            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                                match part.split_once(':').map(|(k, v)| (k.trim(), v.trim().parse::<i64>())) {
                                    Some((k, Ok(v))) if !k.is_empty() && v >= 0 => {
                                        d.tests.insert(k.to_owned(), v.into());
                                    }
                                    _ => report.warn(
                                        &at(n),
                                        Some(n),
                                        part,
                                        "not a test count like \"unit: 150\"; left out",
                                    ),
                                }
                            }
                        }
                        "constitutional compliance" | "compliance" => {
                            d.compliance = match value.to_lowercase().as_str() {
                                "✓" | "✅" | "yes" | "true" | "compliant" => Some(true),
                                "✗" | "❌" | "no" | "false" | "non-compliant" => Some(false),
                                _ => {
                                    report.warn(&at(n), Some(n), t, "compliance is not ✓ or ✗; left out");
                                    None
                                }
                            }
                        }
                        "vendors" => {
                            d.vendors = value
                                .split(',')
                                .map(|v| v.trim().to_owned())
                                .filter(|v| !v.is_empty())
                                .collect()
                        }
                        _ => report.skip(
                            &at(n),
                            Some(n),
                            t,
                            format!("field **{key}** is not imported for deployments"),
                        ),
                    },
                    None => report.skip(&at(n), Some(n), t, "prose inside a deployment entry"),
                }
            }
            Section::Enhancements => {
                if let Some(h) = t.strip_prefix("### ") {
                    let mut e = LegacyEnhancement {
                        line: n,
                        ..Default::default()
                    };
                    match title_and_tag(h) {
                        Some((title, tag)) if tag.to_ascii_lowercase().starts_with("priority") => {
                            e.title = title.to_owned();
                            let p = tag.split(':').nth(1).and_then(|p| p.trim().parse::<i64>().ok());
                            if p.is_none() {
                                report.warn(
                                    &at(n),
                                    Some(n),
                                    t,
                                    "the priority is not a number 1-5; the default (3) is used",
                                );
                            }
                            e.priority = p;
                        }
                        _ => e.title = h.trim().to_owned(),
                    }
                    doc.enhancements.push(e);
                    current = Current::Enhancement(doc.enhancements.len() - 1);
                    continue;
                }
                let Current::Enhancement(k) = current else {
                    report.skip(&at(n), Some(n), t, "prose, not part of an enhancement entry");
                    continue;
                };
                let e = &mut doc.enhancements[k];
                match field(t) {
                    Some((key, value)) => match key.as_str() {
                        "target" => {
                            e.target = quarter(value);
                            if e.target.is_none() {
                                report.warn(&at(n), Some(n), t, "not a quarter like Q1 2026; left out");
                            }
                        }
                        "description" => e.description = Some(value.to_owned()).filter(|v| !v.is_empty()),
                        _ => report.skip(
                            &at(n),
                            Some(n),
                            t,
                            format!("field **{key}** is not imported for enhancements"),
                        ),
                    },
                    None => report.skip(&at(n), Some(n), t, "prose inside an enhancement entry"),
                }
            }
        }
    }
    doc
}

/// `- **<name>**: <status> (<passing>/<total> tests) [<format>, ...]`.
fn vendor_line(t: &str) -> Option<std::result::Result<LegacyVendor, String>> {
    let (_, rest) = field(t)?;
    // `field` lowercases the key: take the name as written.
    let written = t.strip_prefix("- **").or_else(|| t.strip_prefix("* **"))?;
    let name = written.split_once("**")?.0.trim().to_owned();
    let mut v = LegacyVendor {
        name,
        ..Default::default()
    };
    let mut rest = rest.trim();
    if let Some(open) = rest.rfind('[')
        && rest.ends_with(']')
    {
        v.formats = rest[open + 1..rest.len() - 1]
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| !f.is_empty())
            .collect();
        rest = rest[..open].trim();
    }
    if let Some(open) = rest.find('(') {
        let inner = rest[open + 1..].trim_end_matches(')');
        let counts = inner.split_whitespace().next().unwrap_or("");
        if let Some((p, total)) = counts.split_once('/') {
            match (p.parse::<i64>(), total.parse::<i64>()) {
                (Ok(p), Ok(total)) => v.tests = Some((p, total)),
                _ => return Some(Err(format!("{counts:?} is not passing/total test counts"))),
            }
        }
        rest = rest[..open].trim();
    }
    v.status = rest.to_owned();
    Some(Ok(v))
}

impl Tracker {
    /// Import a legacy `.project_status.md` file.
    pub fn import_markdown(&self, author: &str, path: &Path) -> Result<ImportReport> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(
                "file",
                format!(
                    "cannot read {}: {e}; give the path of a .project_status.md file",
                    path.display()
                ),
            )
        })?;
        self.import_markdown_text(author, &text, &path.display().to_string())
    }

    /// Import the text of a legacy status file; `source` names it in the
    /// report.
    pub fn import_markdown_text(&self, author: &str, text: &str, source: &str) -> Result<ImportReport> {
        let mut report = ImportReport::new(source);
        let doc = parse(text, &mut report);
        let mut report = self.store().write(author, move |tx| write_doc(tx, doc, report))?;
        report.skipped.sort_by_key(|s| s.line);
        report.warnings.sort_by_key(|s| s.line);
        Ok(report)
    }
}

fn write_doc(tx: &mut WriteTx<'_>, doc: LegacyDoc, mut report: ImportReport) -> Result<ImportReport> {
    write_vendors(tx, &doc.vendors, &mut report)?;
    write_items(tx, &doc.items, &mut report)?;
    write_deployments(tx, &doc.deployments, &mut report)?;
    write_enhancements(tx, &doc.enhancements, &mut report)?;
    tx.set_time(None);
    Ok(report)
}

fn write_vendors(tx: &mut WriteTx<'_>, vendors: &[LegacyVendor], report: &mut ImportReport) -> Result<()> {
    for v in vendors {
        let a = at(v.line);
        if ops::vendors::find(tx.conn(), &v.name)?.is_some() {
            report.unchanged("vendor");
            continue;
        }
        let status = match domain::VendorStatus::parse(&v.status) {
            Ok(s) => Some(s.as_str().to_owned()),
            Err(e) => {
                report.warn(&a, Some(v.line), &v.status, format!("{e}; the vendor is left broken"));
                None
            }
        };
        let mut metadata = Map::new();
        if let Some((p, t)) = v.tests {
            metadata.insert("test_results".into(), serde_json::json!({"passing": p, "total": t}));
        }
        if !v.formats.is_empty() {
            let formats: Map<String, Value> = v.formats.iter().map(|f| (f.clone(), Value::Bool(true))).collect();
            metadata.insert("format_support".into(), Value::Object(formats));
        }
        if let Err(e) = domain::vendor_metadata(&metadata) {
            report.warn(&a, Some(v.line), &v.name, format!("{e}; tests and formats left out"));
            metadata.clear();
        }
        let created = ops::vendors::create_in(
            tx,
            NewVendor {
                name: v.name.clone(),
                extractor_version: None,
                metadata: Some(metadata),
            },
        );
        let vendor = match created {
            Ok(vendor) => vendor,
            Err(e) => {
                report.skip(&a, Some(v.line), &v.name, e.to_string());
                continue;
            }
        };
        let vendor = match status.filter(|s| *s != vendor.status) {
            Some(s) => ops::vendors::update_in(
                tx,
                VendorUpdate {
                    name: vendor.id.clone(),
                    status: Some(s),
                    ..Default::default()
                },
                false,
            )?,
            None => vendor,
        };
        report.record("vendor", &vendor.id, &vendor.name, true, &a);
    }
    Ok(())
}

/// Resolve each item's parent (by `**Parent**`, else by indentation) and
/// return the index of each item's parent.
fn resolve_parents(items: &[LegacyItem], report: &mut ImportReport) -> Vec<Option<usize>> {
    let mut parents = vec![None; items.len()];
    for (k, item) in items.iter().enumerate() {
        if item.skipped {
            continue;
        }
        let by_indent = (item.depth > 0)
            .then(|| (0..k).rev().find(|&j| !items[j].skipped && items[j].depth < item.depth))
            .flatten();
        parents[k] = match &item.parent {
            Some((line, title)) => {
                let same = |j: &usize| *j != k && !items[*j].skipped && items[*j].title == *title;
                // The nearest one above, else the first one below (a
                // reordered file).
                let found = (0..k).rev().find(same).or_else(|| (k + 1..items.len()).find(same));
                if found.is_none() {
                    report.warn(
                        &at(*line),
                        Some(*line),
                        title,
                        "no work item of that title in this file; the item is imported at the root",
                    );
                } else if by_indent.is_some() && by_indent != found {
                    report.warn(
                        &at(*line),
                        Some(*line),
                        title,
                        "the indentation says another parent; **Parent** wins",
                    );
                }
                found
            }
            None => by_indent,
        };
    }
    // Break cycles (a hand-edited file may make two items each other's parent).
    for k in 0..items.len() {
        let mut seen = vec![k];
        let mut p = parents[k];
        while let Some(j) = p {
            if seen.contains(&j) {
                report.warn(
                    &at(items[k].line),
                    Some(items[k].line),
                    &items[k].title,
                    "its **Parent** chain loops back to itself; it is imported at the root",
                );
                parents[k] = None;
                break;
            }
            seen.push(j);
            p = parents[j];
        }
    }
    parents
}

fn write_items(tx: &mut WriteTx<'_>, items: &[LegacyItem], report: &mut ImportReport) -> Result<()> {
    let parents = resolve_parents(items, report);
    // Stable keys, parents first.
    let mut keys: Vec<Option<String>> = vec![None; items.len()];
    let mut order: Vec<(usize, usize)> = Vec::new();
    fn chain(parents: &[Option<usize>], k: usize) -> usize {
        let mut d = 0;
        let mut p = parents[k];
        while let Some(j) = p {
            d += 1;
            p = parents[j];
        }
        d
    }
    for (k, item) in items.iter().enumerate() {
        if !item.skipped {
            order.push((chain(&parents, k), k));
        }
    }
    order.sort();
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut ids_of: Vec<Option<String>> = vec![None; items.len()];
    for &(_, k) in &order {
        let item = &items[k];
        let a = at(item.line);
        let parent_key = parents[k].and_then(|p| keys[p].clone()).unwrap_or_default();
        let base = format!("{parent_key}/{}:{}:{}", item.item_type, item.title, item.created_raw);
        let n = used.entry(base.clone()).or_default();
        *n += 1;
        let key = if *n == 1 { base } else { format!("{base}#{n}") };
        keys[k] = Some(key.clone());
        let id = ids::legacy_work_item(&key);
        if let Some(p) = parents[k]
            && ids_of[p].is_none()
        {
            report.skip(
                &a,
                Some(item.line),
                &item.title,
                format!("its parent {:?} was not imported", items[p].title),
            );
            continue;
        }
        if ops::work_items::load(tx.conn(), &id)?.is_some() {
            ids_of[k] = Some(id);
            report.unchanged("work_item");
            continue;
        }
        let status = match item.status.as_deref().map(WorkStatus::parse_legacy) {
            Some(Ok(s)) => Some(s.as_str().to_owned()),
            Some(Err(e)) => {
                report.warn(
                    &at(item.status_line),
                    Some(item.status_line),
                    item.status.as_deref().unwrap_or(""),
                    format!("{e}; imported as active"),
                );
                None
            }
            None => None,
        };
        let mut branch = item.branch.clone();
        if let Some(b) = &branch
            && let Err(e) = domain::branch_name(b)
        {
            report.warn(&a, Some(item.line), b, format!("{e}; the branch is left out"));
            branch = None;
        }
        tx.set_time(item.created);
        let input = NewWorkItem {
            item_type: item.item_type.clone(),
            title: item.title.clone(),
            parent_id: parents[k].and_then(|p| ids_of[p].clone()),
            status,
            branch_name: branch,
            ..Default::default()
        };
        match ops::work_items::create_in(tx, &id, input, false) {
            Ok(w) => {
                ids_of[k] = Some(id);
                report.record("work_item", &w.id, &w.title, true, &a);
            }
            Err(e) => report.skip(&a, Some(item.line), &item.title, e.to_string()),
        }
        tx.set_time(None);
    }
    Ok(())
}

fn write_deployments(tx: &mut WriteTx<'_>, deployments: &[LegacyDeployment], report: &mut ImportReport) -> Result<()> {
    for d in deployments {
        let Some(deployed_at) = d.deployed_at else { continue };
        let a = at(d.line);
        let label = d
            .title
            .clone()
            .unwrap_or_else(|| d.heading.trim_start_matches("### ").to_owned());
        let hash = d.commit.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
        let usable = domain::commit_hash("commit_hash", &hash, true).is_ok();
        // The file shows 7 characters: the deployment may be in the store
        // already under its full hash (from git).
        if usable {
            let prefix = hash.to_ascii_lowercase();
            let existing: Option<String> = rusqlite::OptionalExtension::optional(
                tx.conn()
                    .prepare_cached("SELECT id FROM deployments WHERE lower(commit_hash) >= ?1 AND lower(commit_hash) < ?1 || 'g' LIMIT 1")?
                    .query_row([&prefix], |r| crate::store::id::get_id(r, 0)),
            )?;
            if existing.is_some() {
                report.unchanged("deployment");
                continue;
            }
        }
        let id = if usable {
            ids::deployment_from_commit(&hash)
        } else {
            ids::legacy_deployment(&format!("{deployed_at}:{}:{hash}", d.pr_number.unwrap_or(0)))
        };
        if ops::deployments::load(tx.conn(), &id)?.is_some() {
            report.unchanged("deployment");
            continue;
        }
        let mut vendor_ids = Vec::new();
        for name in &d.vendors {
            match ops::vendors::find(tx.conn(), name)? {
                Some(v) if !vendor_ids.contains(&v.id) => vendor_ids.push(v.id),
                Some(_) => {}
                None => report.warn(&a, Some(d.line), name, "no vendor of that name; the link is left out"),
            }
        }
        let mut title = d.title.clone();
        if let Some(t) = &title
            && let Err(e) = domain::pr_title(t)
        {
            report.warn(&a, Some(d.line), t, format!("{e}; the title is left out"));
            title = None;
        }
        let mut tests = Some(d.tests.clone()).filter(|t| !t.is_empty());
        if let Some(t) = &tests
            && let Err(e) = domain::test_summary(t)
        {
            report.warn(
                &a,
                Some(d.line),
                &Value::Object(t.clone()).to_string(),
                format!("{e}; tests left out"),
            );
            tests = None;
        }
        let pr_number = d.pr_number.filter(|n| domain::pr_number(*n).is_ok());
        tx.set_time(Some(deployed_at));
        if usable {
            let input = NewDeployment {
                commit_hash: hash,
                deployed_at: Some(deployed_at.to_string()),
                pr_number,
                pr_title: title,
                test_summary: tests,
                constitutional_compliance: d.compliance,
                vendor_ids,
                work_item_ids: Vec::new(),
            };
            match ops::deployments::record_in(tx, &id, input, true) {
                Ok(dep) => report.record("deployment", &dep.id, &label, true, &a),
                Err(e) => report.skip(&a, Some(d.line), &d.heading, e.to_string()),
            }
        } else {
            // Keep the entry; the unusable hash goes to the metadata as
            // written.
            let line = d.commit.as_ref().map_or(d.line, |(l, _)| *l);
            report.warn(
                &at(line),
                Some(line),
                &hash,
                if hash.is_empty() {
                    "the deployment has no commit hash; imported without one".to_owned()
                } else {
                    "not a commit hash (7-40 hexadecimal characters); kept as metadata.commit_raw".to_owned()
                },
            );
            let mut fields = Fields::new();
            fields.insert("deployed_at".into(), deployed_at.to_string().into());
            fields.insert("commit_hash".into(), "".into());
            if !hash.is_empty() {
                fields.insert("metadata.commit_raw".into(), hash.clone().into());
            }
            if let Some(n) = pr_number {
                fields.insert("metadata.pr_number".into(), n.into());
            }
            if let Some(t) = title {
                fields.insert("metadata.pr_title".into(), t.into());
            }
            if let Some(t) = tests {
                fields.insert("metadata.test_summary".into(), Value::Object(t));
            }
            if let Some(c) = d.compliance {
                fields.insert("metadata.constitutional_compliance".into(), c.into());
            }
            fields.insert("created_at".into(), tx.now().to_string().into());
            fields.insert("created_by".into(), tx.author().into());
            tx.write(&DEPLOYMENTS, &id, fields)?;
            for v in &vendor_ids {
                let mut fields = Fields::new();
                fields.insert("deployment_id".into(), id.as_str().into());
                fields.insert("link_type".into(), "vendor".into());
                fields.insert("target_id".into(), v.as_str().into());
                fields.insert("removed".into(), false.into());
                fields.insert("created_at".into(), tx.now().to_string().into());
                fields.insert("created_by".into(), tx.author().into());
                tx.write(
                    &crate::store::DEPLOYMENT_LINKS,
                    &ids::deployment_link(&id, "vendor", v),
                    fields,
                )?;
            }
            report.record("deployment", &id, &label, true, &a);
        }
        tx.set_time(None);
    }
    Ok(())
}

fn write_enhancements(tx: &mut WriteTx<'_>, list: &[LegacyEnhancement], report: &mut ImportReport) -> Result<()> {
    let mut used: HashMap<&str, usize> = HashMap::new();
    // Kept in file order: each one a microsecond after the one before, so
    // the report lists them as the file did.
    let base = tx.now();
    for (i, e) in list.iter().enumerate() {
        let a = at(e.line);
        let n = used.entry(e.title.as_str()).or_default();
        *n += 1;
        let key = if *n == 1 {
            e.title.clone()
        } else {
            format!("{}#{n}", e.title)
        };
        let id = ids::legacy_enhancement(&key);
        let exists: bool = tx
            .conn()
            .prepare_cached("SELECT count(*) FROM enhancements WHERE id = ?1")?
            .query_row([crate::store::id::sql(&id)], |r| r.get::<_, i64>(0))?
            > 0;
        if exists {
            report.unchanged("enhancement");
            continue;
        }
        let mut priority = e.priority;
        if let Some(p) = priority
            && domain::enhancement_priority(p).is_err()
        {
            report.warn(
                &a,
                Some(e.line),
                &p.to_string(),
                "the priority is not 1-5; the default (3) is used",
            );
            priority = None;
        }
        tx.set_time(Some(Timestamp(base.0 + i as i64)));
        let input = NewEnhancement {
            title: e.title.clone(),
            description: e.description.clone(),
            priority,
            target_quarter: e.target.clone(),
            ..Default::default()
        };
        match ops::enhancements::create_in(tx, &id, input) {
            Ok(en) => report.record("enhancement", &en.id, &en.title, true, &a),
            Err(err) => report.skip(&a, Some(e.line), &e.title, err.to_string()),
        }
    }
    tx.set_time(None);
    Ok(())
}

/// Parse a status file without writing anything: the report lists the
/// lines that would be skipped and the entries found (a dry run, and the
/// parser alone for benchmarks).
pub fn parse_report(text: &str) -> (usize, ImportReport) {
    let mut report = ImportReport::new("(parse only)");
    let doc = parse(text, &mut report);
    let entries = doc.vendors.len() + doc.items.len() + doc.deployments.len() + doc.enhancements.len();
    (entries, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Created` value of 19 bytes with a multi-byte character across or
    /// at byte 10 once panicked (a `str` sliced inside a character).
    #[test]
    fn a_multi_byte_character_at_byte_10_is_a_malformed_time() {
        for created in ["2026-01-0é12:00:00", "2026-01-31é2:00:00", "2026-01-31 12:00:é"] {
            assert_eq!(created.len(), 19, "{created}");
            assert_eq!(legacy_time(created), None, "{created}");
        }
        assert!(legacy_time("2026-01-31 12:00:00 UTC").is_some());
        let text = "# Project Status\n\n## Work Items\n\n### Plan (task)\n- **Created**: 2026-01-31é2:00:00\n";
        let (entries, report) = parse_report(text);
        assert_eq!(entries, 1);
        assert!(report.warnings.iter().any(|w| w.line == Some(6)), "{report:?}");
    }
}

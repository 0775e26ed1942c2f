//! A parsed status file, written: each entry through the operations (the
//! same checks and the same write path as a tool's), under a deterministic
//! id, in one transaction. An entry whose record exists is left unchanged;
//! a value the domain refuses is left out with a warning, an entry it
//! refuses is skipped with the reason.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::parse::{DeploymentEntry, Document, EnhancementEntry, ItemEntry, VendorEntry};
use crate::domain::{self, WorkStatus, ids};
use crate::error::Result;
use crate::import::ImportReport;
use crate::ops::{self, NewDeployment, NewEnhancement, NewVendor, NewWorkItem, VendorUpdate};
use crate::progress::Progress;
use crate::store::{WriteTx, query};
use crate::time::Timestamp;

fn at(line: usize) -> String {
    format!("line {line}")
}

/// The parser's notes, as the report's skipped entries and warnings.
pub(super) fn notes_into(doc: &Document, report: &mut ImportReport) {
    for s in &doc.skipped {
        report.skip(&at(s.line), Some(s.line), &s.text, s.reason.clone());
    }
    for w in &doc.warnings {
        report.warn(&at(w.line), Some(w.line), &w.text, w.reason.clone());
    }
}

pub(super) fn apply(
    tx: &mut WriteTx<'_>,
    doc: Document,
    mut report: ImportReport,
    progress: &Progress,
) -> Result<ImportReport> {
    notes_into(&doc, &mut report);
    let counts = [
        doc.vendors.len(),
        doc.items.len(),
        doc.deployments.len(),
        doc.enhancements.len(),
    ];
    let total = counts.iter().sum::<usize>() as u64;
    let mut done = 0u64;
    let mut section = |n: usize| {
        done += n as u64;
        progress.step(done, Some(total), "entries imported");
        progress.check()
    };
    vendors(tx, &doc.vendors, &mut report)?;
    section(counts[0])?;
    items(tx, &doc.items, &mut report)?;
    section(counts[1])?;
    deployments(tx, &doc.deployments, &mut report)?;
    section(counts[2])?;
    enhancements(tx, &doc.enhancements, &mut report)?;
    progress.done(total, Some(total), "entries imported");
    tx.set_time(None);
    Ok(report)
}

fn vendors(tx: &mut WriteTx<'_>, vendors: &[VendorEntry], report: &mut ImportReport) -> Result<()> {
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

fn items(tx: &mut WriteTx<'_>, items: &[ItemEntry], report: &mut ImportReport) -> Result<()> {
    // Stable keys, parents first.
    fn chain(items: &[ItemEntry], k: usize) -> usize {
        let mut d = 0;
        let mut p = items[k].parent;
        while let Some(j) = p {
            d += 1;
            p = items[j].parent;
        }
        d
    }
    let mut order: Vec<(usize, usize)> = (0..items.len()).map(|k| (chain(items, k), k)).collect();
    order.sort();
    let mut keys: Vec<Option<String>> = vec![None; items.len()];
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut ids_of: Vec<Option<String>> = vec![None; items.len()];
    for &(_, k) in &order {
        let item = &items[k];
        let a = at(item.line);
        let parent_key = item.parent.and_then(|p| keys[p].clone()).unwrap_or_default();
        let base = format!(
            "{parent_key}/{}:{}:{}",
            item.item_type.as_str(),
            item.title,
            item.created_raw
        );
        let n = used.entry(base.clone()).or_default();
        *n += 1;
        let key = if *n == 1 { base } else { format!("{base}#{n}") };
        keys[k] = Some(key.clone());
        let id = ids::legacy_work_item(&key);
        if let Some(p) = item.parent
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
        let status = match &item.status {
            Some((line, text)) => match WorkStatus::parse_legacy(text) {
                Ok(s) => Some(s.as_str().to_owned()),
                Err(e) => {
                    report.warn(&at(*line), Some(*line), text, format!("{e}; imported as active"));
                    None
                }
            },
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
            item_type: item.item_type.as_str().to_owned(),
            title: item.title.clone(),
            parent_id: item.parent.and_then(|p| ids_of[p].clone()),
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

fn deployments(tx: &mut WriteTx<'_>, deployments: &[DeploymentEntry], report: &mut ImportReport) -> Result<()> {
    for d in deployments {
        let a = at(d.line);
        let label = d
            .title
            .clone()
            .unwrap_or_else(|| d.heading.trim_start_matches("### ").to_owned());
        let hash = d.commit.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
        let usable = domain::commit_hash("commit_hash", &hash, true).is_ok();
        // The file shows 7 characters: the deployment may be in the store
        // already under its full hash (from git).
        if usable && query::deployments::with_commit_prefix(tx.conn(), &hash)?.is_some() {
            report.unchanged("deployment");
            continue;
        }
        let id = if usable {
            ids::deployment_from_commit(&hash)
        } else {
            ids::legacy_deployment(&format!("{}:{}:{hash}", d.deployed_at, d.pr_number.unwrap_or(0)))
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
        if !usable {
            let line = d.commit.as_ref().map_or(d.line, |(l, _)| *l);
            report.warn(
                &at(line),
                Some(line),
                &hash,
                if hash.is_empty() {
                    "the deployment has no commit hash; imported without one"
                } else {
                    "not a commit hash (7-40 hexadecimal characters); kept as metadata.commit_raw"
                },
            );
        }
        tx.set_time(Some(d.deployed_at));
        let input = NewDeployment {
            commit_hash: hash,
            deployed_at: Some(d.deployed_at.to_string()),
            pr_number: d.pr_number.filter(|n| domain::pr_number(*n).is_ok()),
            pr_title: title,
            test_summary: tests,
            constitutional_compliance: d.compliance,
            vendor_ids,
            work_item_ids: Vec::new(),
        };
        // A hash that is not one is kept, as written, in the metadata.
        let recorded = if usable {
            ops::deployments::record_in(tx, &id, input, true)
        } else {
            ops::deployments::record_unhashed_in(tx, &id, input)
        };
        match recorded {
            Ok(dep) => report.record("deployment", &dep.id, &label, true, &a),
            Err(e) => report.skip(&a, Some(d.line), &d.heading, e.to_string()),
        }
        tx.set_time(None);
    }
    Ok(())
}

fn enhancements(tx: &mut WriteTx<'_>, list: &[EnhancementEntry], report: &mut ImportReport) -> Result<()> {
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
        // A deleted one counts: the import does not bring it back.
        if query::enhancements::exists(tx.conn(), &id)? {
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

//! What the command line prints: `--json` prints an operation's answer,
//! exactly the JSON its MCP tool returns; otherwise a few lines for people.

use std::io::{self, Write};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use waymark::ops::{self, Page};

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

pub(super) fn show_page<T: Serialize>(
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
    format!(
        "{}  P{}  {:<9} {:<8} v{}  {}",
        r.id, r.priority, r.status, r.item_type, r.version, r.title
    )
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

pub(super) fn conflicts_human(cs: &[ops::ConflictView]) -> String {
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
}

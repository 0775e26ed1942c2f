//! A legacy status file as data: text in, a [`Document`] out.
//!
//! Pure: no store, no IO, no clock. The layout is line-oriented and real
//! files are hand-edited, so sections may be missing or reordered, prose may
//! sit between entries, values may be malformed. Every line that is not
//! taken is noted in [`Document::skipped`] with its number and the reason,
//! and a value the parser could not read is left out of its entry with a
//! note in [`Document::warnings`]; one bad entry never costs another. The
//! output is bounded by the input: at most one entry per line, notes' texts
//! cut to 200 characters.
//!
//! What the domain decides (a status word, a branch name, test counts) is
//! left to the apply step, which checks each value through the operations.

use serde_json::{Map, Value};

use crate::domain::{self, ItemType};
use crate::time::Timestamp;

/// A status file as read, before anything is written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub vendors: Vec<VendorEntry>,
    /// Work items in file order; each names its parent by index.
    pub items: Vec<ItemEntry>,
    pub deployments: Vec<DeploymentEntry>,
    pub enhancements: Vec<EnhancementEntry>,
    /// Lines (or entries) left out, and why.
    pub skipped: Vec<Note>,
    /// Entries taken with a caveat: a value left out, a parent not found.
    pub warnings: Vec<Note>,
}

impl Document {
    /// How many entries the document holds.
    pub fn entries(&self) -> usize {
        self.vendors.len() + self.items.len() + self.deployments.len() + self.enhancements.len()
    }

    fn skip(&mut self, line: usize, text: &str, reason: impl Into<String>) {
        self.skipped.push(Note::new(line, text, reason));
    }

    fn warn(&mut self, line: usize, text: &str, reason: impl Into<String>) {
        self.warnings.push(Note::new(line, text, reason));
    }
}

/// A line (or a value on it) the parser left out or took with a caveat.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// 1-based.
    pub line: usize,
    /// What the line held (trimmed, cut to 200 characters).
    pub text: String,
    pub reason: String,
}

impl Note {
    fn new(line: usize, text: &str, reason: impl Into<String>) -> Note {
        Note {
            line,
            text: super::super::cut(text),
            reason: reason.into(),
        }
    }
}

/// `- **<name>**: <status> (<passing>/<total> tests) [<format>, ...]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VendorEntry {
    pub line: usize,
    /// As written.
    pub name: String,
    /// As written; the apply step checks the word.
    pub status: String,
    /// `(passing, total)`.
    pub tests: Option<(i64, i64)>,
    /// Lowercased.
    pub formats: Vec<String>,
}

/// `### <title> (<item_type>)` and its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemEntry {
    pub line: usize,
    pub title: String,
    pub item_type: ItemType,
    /// `(line, text)` of `**Status**`, as written.
    pub status: Option<(usize, String)>,
    /// `**Created**`, when it reads as a time.
    pub created: Option<Timestamp>,
    /// `**Created**` as written (part of the item's stable key).
    pub created_raw: String,
    pub branch: Option<String>,
    /// The index in [`Document::items`] of its parent: by `**Parent**`,
    /// else by indentation. Always an earlier or later item, never a loop.
    pub parent: Option<usize>,
}

/// `### <YYYY-MM-DD HH:MM:SS> UTC - PR #<n>` and its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentEntry {
    pub line: usize,
    /// The heading as written (a label when there is no title).
    pub heading: String,
    pub deployed_at: Timestamp,
    pub pr_number: Option<i64>,
    pub title: Option<String>,
    /// `(line, text)` of `**Commit**`, backticks removed; not checked.
    pub commit: Option<(usize, String)>,
    /// `kind: count` pairs with counts of at least 0.
    pub tests: Map<String, Value>,
    pub compliance: Option<bool>,
    /// Vendor names as written.
    pub vendors: Vec<String>,
}

/// `### <title> (Priority: <n>)` and its fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnhancementEntry {
    pub line: usize,
    pub title: String,
    /// As written; the apply step checks the range.
    pub priority: Option<i64>,
    /// `YYYY-QN`.
    pub target: Option<String>,
    pub description: Option<String>,
}

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

/// A work item heading as read, before parents are resolved.
#[derive(Clone, Debug)]
struct RawItem {
    /// `None`: the heading was not an item's; its lines are skipped.
    entry: Option<ItemEntry>,
    depth: usize,
    /// `(line, title)` of `**Parent**`.
    parent_title: Option<(usize, String)>,
}

enum Current {
    None,
    Item(usize),
    Deployment(usize),
    /// A deployment heading without a time: its lines are skipped.
    SkippedDeployment,
    Enhancement(usize),
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
pub(crate) fn legacy_time(text: &str) -> Option<Timestamp> {
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

/// Read a legacy status file.
pub fn parse(text: &str) -> Document {
    let mut doc = Document::default();
    let mut items: Vec<RawItem> = Vec::new();
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
                doc.skip(n, t, "a title other than \"Project Status\"; nothing to import");
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
                doc.skip(n, t, "not a section of the status layout; its lines are skipped");
                Section::Unknown
            };
            continue;
        }
        match section {
            Section::Preamble => doc.skip(n, t, "text before the first section"),
            Section::Unknown => doc.skip(n, t, "inside a section that is not imported"),
            Section::Conflicts => doc.skip(
                n,
                t,
                "sync conflicts are not imported (list_conflicts shows the store's own)",
            ),
            Section::Vendors => match vendor_line(t) {
                Some(Ok(mut v)) => {
                    v.line = n;
                    doc.vendors.push(v)
                }
                Some(Err(reason)) => doc.skip(n, t, reason),
                None => doc.skip(n, t, "prose, not a vendor entry (- **name**: status ...)"),
            },
            Section::Items => {
                if let Some(h) = t.strip_prefix("### ") {
                    let entry = match title_and_tag(h) {
                        Some((title, kind)) if !title.is_empty() && ItemType::parse(kind).is_ok() => {
                            ItemType::parse(kind).ok().map(|item_type| ItemEntry {
                                line: n,
                                title: title.to_owned(),
                                item_type,
                                status: None,
                                created: None,
                                created_raw: String::new(),
                                branch: None,
                                parent: None,
                            })
                        }
                        Some((_, kind)) => {
                            doc.skip(
                                n,
                                t,
                                format!("{kind:?} is not an item type (project, session, task, research); the entry is skipped"),
                            );
                            None
                        }
                        None => {
                            doc.skip(n, t, "a work item heading needs \"### <title> (<item_type>)\"");
                            None
                        }
                    };
                    items.push(RawItem {
                        entry,
                        depth: indent / 2,
                        parent_title: None,
                    });
                    current = Current::Item(items.len() - 1);
                    continue;
                }
                let Current::Item(k) = current else {
                    doc.skip(n, t, "prose, not part of a work item entry");
                    continue;
                };
                let raw_item = &mut items[k];
                let Some(item) = &mut raw_item.entry else {
                    doc.skip(n, t, "belongs to a skipped entry");
                    continue;
                };
                match field(t) {
                    Some((key, value)) => match key.as_str() {
                        "status" => item.status = Some((n, value.to_owned())),
                        "created" => {
                            item.created_raw = value.to_owned();
                            item.created = legacy_time(value);
                            if item.created.is_none() {
                                doc.warn(n, t, "not a time like 2026-01-31 12:00:00 UTC; the item is created now");
                            }
                        }
                        "branch" => item.branch = Some(value.to_owned()).filter(|b| !b.is_empty()),
                        "parent" => raw_item.parent_title = Some((n, value.to_owned())).filter(|p| !p.1.is_empty()),
                        _ => doc.skip(n, t, format!("field **{key}** is not imported for work items")),
                    },
                    None => doc.skip(n, t, "prose inside a work item entry"),
                }
            }
            Section::Deployments => {
                if let Some(h) = t.strip_prefix("### ") {
                    let (time, rest) = match h.split_once(" - ") {
                        Some((a, b)) => (a, b.trim()),
                        None => (h, ""),
                    };
                    let mut pr_number = None;
                    if let Some(pr) = rest.strip_prefix("PR #") {
                        match pr.trim().parse::<i64>() {
                            Ok(p) => pr_number = Some(p),
                            Err(_) => doc.warn(n, t, "the PR number is not a number; left out"),
                        }
                    }
                    current = match legacy_time(time) {
                        Some(deployed_at) => {
                            doc.deployments.push(DeploymentEntry {
                                line: n,
                                heading: t.to_owned(),
                                deployed_at,
                                pr_number,
                                title: None,
                                commit: None,
                                tests: Map::new(),
                                compliance: None,
                                vendors: Vec::new(),
                            });
                            Current::Deployment(doc.deployments.len() - 1)
                        }
                        None => {
                            doc.skip(n, t, "a deployment heading needs \"### <YYYY-MM-DD HH:MM:SS> UTC - PR #<n>\"; the entry is skipped");
                            Current::SkippedDeployment
                        }
                    };
                    continue;
                }
                let k = match current {
                    Current::Deployment(k) => k,
                    Current::SkippedDeployment => {
                        doc.skip(n, t, "belongs to a skipped entry");
                        continue;
                    }
                    _ => {
                        doc.skip(n, t, "prose, not part of a deployment entry");
                        continue;
                    }
                };
                match field(t) {
                    Some((key, value)) => deployment_field(&mut doc, k, n, t, &key, value),
                    None => doc.skip(n, t, "prose inside a deployment entry"),
                }
            }
            Section::Enhancements => {
                if let Some(h) = t.strip_prefix("### ") {
                    let mut e = EnhancementEntry {
                        line: n,
                        ..Default::default()
                    };
                    match title_and_tag(h) {
                        Some((title, tag)) if tag.to_ascii_lowercase().starts_with("priority") => {
                            e.title = title.to_owned();
                            let p = tag.split(':').nth(1).and_then(|p| p.trim().parse::<i64>().ok());
                            if p.is_none() {
                                doc.warn(n, t, "the priority is not a number 1-5; the default (3) is used");
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
                    doc.skip(n, t, "prose, not part of an enhancement entry");
                    continue;
                };
                match field(t) {
                    Some((key, value)) => match key.as_str() {
                        "target" => {
                            let target = quarter(value);
                            if target.is_none() {
                                doc.warn(n, t, "not a quarter like Q1 2026; left out");
                            }
                            doc.enhancements[k].target = target;
                        }
                        "description" => {
                            doc.enhancements[k].description = Some(value.to_owned()).filter(|v| !v.is_empty())
                        }
                        _ => doc.skip(n, t, format!("field **{key}** is not imported for enhancements")),
                    },
                    None => doc.skip(n, t, "prose inside an enhancement entry"),
                }
            }
        }
    }
    doc.items = resolve_parents(items, &mut doc.warnings);
    doc
}

fn deployment_field(doc: &mut Document, k: usize, n: usize, t: &str, key: &str, value: &str) {
    match key {
        "title" => doc.deployments[k].title = Some(value.to_owned()).filter(|v| !v.is_empty()),
        "commit" => doc.deployments[k].commit = Some((n, value.trim_matches('`').trim().to_owned())),
        "tests" => {
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.split_once(':').map(|(k, v)| (k.trim(), v.trim().parse::<i64>())) {
                    Some((name, Ok(v))) if !name.is_empty() && v >= 0 => {
                        doc.deployments[k].tests.insert(name.to_owned(), v.into());
                    }
                    _ => doc.warn(n, part, "not a test count like \"unit: 150\"; left out"),
                }
            }
        }
        "constitutional compliance" | "compliance" => {
            let compliance = match value.to_lowercase().as_str() {
                "✓" | "✅" | "yes" | "true" | "compliant" => Some(true),
                "✗" | "❌" | "no" | "false" | "non-compliant" => Some(false),
                _ => {
                    doc.warn(n, t, "compliance is not ✓ or ✗; left out");
                    None
                }
            };
            doc.deployments[k].compliance = compliance;
        }
        "vendors" => {
            doc.deployments[k].vendors = value
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect()
        }
        _ => doc.skip(n, t, format!("field **{key}** is not imported for deployments")),
    }
}

/// `- **<name>**: <status> (<passing>/<total> tests) [<format>, ...]`.
fn vendor_line(t: &str) -> Option<std::result::Result<VendorEntry, String>> {
    let (_, rest) = field(t)?;
    // `field` lowercases the key: take the name as written.
    let written = t.strip_prefix("- **").or_else(|| t.strip_prefix("* **"))?;
    let name = written.split_once("**")?.0.trim().to_owned();
    let mut v = VendorEntry {
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

/// Resolve each item's parent (by `**Parent**`, else by indentation), break
/// loops, and keep the items that were read (their parents re-indexed).
fn resolve_parents(items: Vec<RawItem>, warnings: &mut Vec<Note>) -> Vec<ItemEntry> {
    let read = |j: usize| items[j].entry.as_ref();
    let mut parents: Vec<Option<usize>> = vec![None; items.len()];
    for (k, raw) in items.iter().enumerate() {
        if raw.entry.is_none() {
            continue;
        }
        let by_indent = (raw.depth > 0)
            .then(|| (0..k).rev().find(|&j| read(j).is_some() && items[j].depth < raw.depth))
            .flatten();
        parents[k] = match &raw.parent_title {
            Some((line, title)) => {
                let same = |j: &usize| *j != k && read(*j).is_some_and(|e| e.title == *title);
                // The nearest one above, else the first one below (a
                // reordered file).
                let found = (0..k).rev().find(same).or_else(|| (k + 1..items.len()).find(same));
                if found.is_none() {
                    warnings.push(Note::new(
                        *line,
                        title,
                        "no work item of that title in this file; the item is imported at the root",
                    ));
                } else if by_indent.is_some() && by_indent != found {
                    warnings.push(Note::new(
                        *line,
                        title,
                        "the indentation says another parent; **Parent** wins",
                    ));
                }
                found
            }
            None => by_indent,
        };
    }
    // Break loops (a hand-edited file may make two items each other's parent).
    for k in 0..items.len() {
        let mut seen = vec![k];
        let mut p = parents[k];
        while let Some(j) = p {
            if seen.contains(&j) {
                if let Some(e) = read(k) {
                    warnings.push(Note::new(
                        e.line,
                        &e.title,
                        "its **Parent** chain loops back to itself; it is imported at the root",
                    ));
                }
                parents[k] = None;
                break;
            }
            seen.push(j);
            p = parents[j];
        }
    }
    // Keep the items read, in file order; indices shift past skipped ones.
    let mut index = vec![None; items.len()];
    let mut kept = 0;
    for (k, raw) in items.iter().enumerate() {
        if raw.entry.is_some() {
            index[k] = Some(kept);
            kept += 1;
        }
    }
    items
        .into_iter()
        .zip(parents)
        .filter_map(|(raw, parent)| {
            let mut e = raw.entry?;
            e.parent = parent.and_then(|p| index[p]);
            Some(e)
        })
        .collect()
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
        let doc = parse(text);
        assert_eq!(doc.entries(), 1);
        assert!(doc.warnings.iter().any(|w| w.line == 6), "{doc:?}");
    }

    #[test]
    fn parents_come_from_the_parent_field_then_the_indentation() {
        let text = "## Work Items\n### A (project)\n  ### B (session)\n### Bad heading\n    ### C (task)\n\
                    ### D (task)\n- **Parent**: B\n### E (task)\n- **Parent**: E2\n### E2 (task)\n- **Parent**: E\n";
        let doc = parse(text);
        let parent = |title: &str| {
            let e = doc.items.iter().find(|e| e.title == title).unwrap();
            e.parent.map(|p| doc.items[p].title.as_str())
        };
        assert_eq!(
            [parent("A"), parent("B"), parent("C"), parent("D")],
            [None, Some("A"), Some("B"), Some("B")]
        );
        // A loop is cut: one of the two goes to the root.
        assert!(parent("E").is_none() || parent("E2").is_none());
        assert!(doc.skipped.iter().any(|s| s.line == 4), "{:?}", doc.skipped);
        assert!(doc.warnings.iter().any(|w| w.reason.contains("loops back")));
    }
}

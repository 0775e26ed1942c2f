//! Import of session prompt files: markdown files (`*.md`) whose YAML front
//! matter (between `---` lines at the top) describes one session. Each file
//! becomes one session work item (id from its path relative to the
//! directory), with the front matter kept in `metadata.yaml_frontmatter`
//! and the body as the description. `schema_version` is required; a file
//! whose front matter is missing or malformed is skipped with the reason.
//!
//! YAML is parsed with `serde_norway` (a maintained fork of `serde_yaml`,
//! small and serde-based) into JSON values: prompt files carry lists and
//! nested maps, beyond a `key: value` subset worth hand-parsing.

use std::path::Path;

use serde_json::{Map, Value};

use super::ImportReport;
use crate::domain::ids;
use crate::error::{Error, Result};
use crate::ops::{self, NewWorkItem, Tracker};

/// Split a file into its front matter (without the fences) and its body.
fn front_matter(text: &str) -> std::result::Result<(&str, &str), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n")) else {
        return Err("no YAML front matter (the file must start with a --- line)".into());
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" || line.trim_end() == "..." {
            return Ok((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err("the front matter has no closing --- line".into())
}

/// Parse a prompt file into (front matter as JSON, body).
pub fn parse_prompt(text: &str) -> std::result::Result<(Map<String, Value>, String), String> {
    let (yaml, body) = front_matter(text)?;
    let value: Value = serde_norway::from_str(yaml).map_err(|e| format!("malformed YAML front matter: {e}"))?;
    let Value::Object(map) = value else {
        return Err("the front matter is not a mapping of keys to values".into());
    };
    match map.get("schema_version") {
        None | Some(Value::Null) => return Err("the front matter has no schema_version".into()),
        Some(_) => {}
    }
    Ok((map, body.trim().to_owned()))
}

fn title_of(front: &Map<String, Value>, body: &str, file_stem: &str) -> String {
    let from_front = ["title", "name", "session"]
        .iter()
        .find_map(|k| front.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    let from_heading = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("# ").map(|t| t.trim().to_owned()));
    let t = from_front
        .or(from_heading)
        .unwrap_or_else(|| file_stem.replace(['-', '_'], " "));
    t.chars().take(200).collect::<String>().trim().to_owned()
}

impl Tracker {
    /// Import every `*.md` file of `dir` (not recursive; sorted by name) as a
    /// session work item.
    pub fn import_sessions(&self, author: &str, dir: &Path) -> Result<ImportReport> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::invalid(
                "dir",
                format!(
                    "cannot read the directory {}: {e}; give a directory of prompt files",
                    dir.display()
                ),
            )
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("md")))
            .collect();
        files.sort();
        let mut report = ImportReport::new(dir.display().to_string());
        let mut parsed = Vec::new();
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    report.skip(&name, None, &name, format!("cannot read it: {e}"));
                    continue;
                }
            };
            match parse_prompt(&text) {
                Ok((front, body)) => {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    parsed.push((name, title_of(&front, &body, &stem), front, body));
                }
                Err(reason) => report.skip(&name, None, &name, reason),
            }
        }
        self.store().write(author, move |tx| {
            for (name, title, front, body) in parsed {
                let id = ids::session_prompt(&name);
                if ops::work_items::load(tx.conn(), &id)?.is_some() {
                    report.unchanged("work_item");
                    continue;
                }
                let mut metadata = Map::new();
                for key in ["token_budget", "prompts_count"] {
                    if let Some(v) = front.get(key).filter(|v| v.is_i64()) {
                        metadata.insert(key.into(), v.clone());
                    }
                }
                metadata.insert("yaml_frontmatter".into(), Value::Object(front));
                metadata.insert("source_file".into(), name.clone().into());
                let input = NewWorkItem {
                    item_type: "session".into(),
                    title,
                    description: Some(body.chars().take(10_000).collect()).filter(|b: &String| !b.is_empty()),
                    metadata: Some(metadata),
                    ..Default::default()
                };
                match ops::work_items::create_in(tx, &id, input, false) {
                    Ok(w) => report.record("work_item", &w.id, &w.title, true, &name),
                    Err(e) => report.skip(&name, None, &name, e.to_string()),
                }
            }
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_needs_a_schema_version() {
        let (front, body) =
            parse_prompt("---\nschema_version: 1\ntitle: Plan\ntags: [a, b]\n---\n# Plan\nDo it.\n").unwrap();
        assert_eq!(front["schema_version"], 1);
        assert_eq!(front["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(body, "# Plan\nDo it.");
        assert!(
            parse_prompt("---\ntitle: x\n---\nbody")
                .unwrap_err()
                .contains("schema_version")
        );
        assert!(
            parse_prompt("---\nschema_version: [1\n---\n")
                .unwrap_err()
                .contains("malformed")
        );
        assert!(parse_prompt("no front matter").unwrap_err().contains("no YAML"));
        assert!(
            parse_prompt("---\nschema_version: 1\n")
                .unwrap_err()
                .contains("closing")
        );
    }
}

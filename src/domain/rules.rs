//! Enumerations and validation rules of the domain.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Define a closed set of words with a parser that names the accepted ones.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// Parse the word (any case, surrounding space ignored).
            pub fn parse(text: &str) -> Result<$name> {
                let t = text.trim().to_ascii_lowercase();
                $(if t == $word { return Ok($name::$variant); })+
                Err(Error::invalid(
                    $field,
                    format!("{:?} is not one of {}", text, [$($word),+].join(", ")),
                ))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// The kind of a work item.
    ItemType, "item_type" { Project = "project", Session = "session", Task = "task", Research = "research" }
);
words!(
    /// A work item's status.
    WorkStatus, "status" { Active = "active", Completed = "completed", Blocked = "blocked" }
);
words!(
    /// How two work items depend on each other.
    DependencyType, "dependency_type" { Blocks = "blocks", DependsOn = "depends_on" }
);
words!(
    /// A vendor's health.
    VendorStatus, "status" { Operational = "operational", Broken = "broken" }
);
words!(
    /// What the project is mostly doing now.
    ContextType, "active_context_type" { Feature = "feature", Maintenance = "maintenance", Research = "research" }
);
words!(
    /// Where a planned enhancement stands.
    EnhancementStatus, "status" {
        Planned = "planned", Approved = "approved", Implementing = "implementing", Completed = "completed"
    }
);

impl WorkStatus {
    /// Parse a status, accepting the earlier tracker's words
    /// (`need to be done`, `in-progress` -> active; `complete` -> completed).
    pub(crate) fn parse_legacy(text: &str) -> Result<WorkStatus> {
        match text.trim().to_ascii_lowercase().replace('_', " ").as_str() {
            "need to be done" | "in-progress" | "in progress" | "todo" | "pending" | "open" => Ok(WorkStatus::Active),
            "complete" | "done" => Ok(WorkStatus::Completed),
            _ => WorkStatus::parse(text),
        }
    }
}

/// The largest depth of a work item: six levels, 0 to 5.
pub(crate) const MAX_DEPTH: i64 = 5;

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Trim `text` and check it holds `min..=max` characters.
pub fn text(field: &str, text: &str, min: usize, max: usize) -> Result<String> {
    let t = text.trim();
    let n = char_len(t);
    if n < min || n > max {
        let what = if min > 0 {
            format!("must be {min}-{max} characters after trimming")
        } else {
            format!("must be at most {max} characters")
        };
        return Err(Error::invalid(field, format!("{what} (got {n})")));
    }
    Ok(t.to_owned())
}

/// An optional text: empty means "none".
pub(crate) fn optional_text(field: &str, value: &str, max: usize) -> Result<Option<String>> {
    let t = text(field, value, 0, max)?;
    Ok(if t.is_empty() { None } else { Some(t) })
}

/// A one-line text: no control characters (a newline in a title would
/// break every list and the markdown report).
pub fn line(field: &str, value: &str, min: usize, max: usize) -> Result<String> {
    let t = text(field, value, min, max)?;
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("must be one line without control characters (found {c:?})"),
        ));
    }
    Ok(t)
}

pub fn title(value: &str) -> Result<String> {
    line("title", value, 1, 200)
}

pub fn description(value: &str) -> Result<Option<String>> {
    optional_text("description", value, 10_000)
}

pub(crate) fn work_priority(value: i64) -> Result<i64> {
    if (0..=4).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            "priority",
            format!("must be 0 (highest) to 4 (got {value})"),
        ))
    }
}

pub fn branch_name(value: &str) -> Result<Option<String>> {
    let t = line("branch_name", value, 0, 100)?;
    Ok(if t.is_empty() { None } else { Some(t) })
}

/// A commit hash: 40 hexadecimal characters, or 7-40 where `short_ok`
/// (imports). Stored as given.
pub fn commit_hash(field: &str, value: &str, short_ok: bool) -> Result<String> {
    let t = value.trim();
    let hex = !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    let len_ok = if short_ok {
        (7..=40).contains(&t.len())
    } else {
        t.len() == 40
    };
    if hex && len_ok {
        Ok(t.to_owned())
    } else if short_ok {
        Err(Error::invalid(
            field,
            format!("{value:?} is not 7-40 hexadecimal characters"),
        ))
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a full commit hash (40 hexadecimal characters)"),
        ))
    }
}

pub fn pr_number(value: i64) -> Result<i64> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(Error::invalid("pr_number", format!("must be 1 or more (got {value})")))
    }
}

/// `YYYY-Qn`, n in 1..=4.
pub fn quarter(field: &str, value: &str) -> Result<String> {
    let t = value.trim();
    let b = t.as_bytes();
    let ok = b.len() == 7 && b[..4].iter().all(u8::is_ascii_digit) && &t[4..6] == "-Q" && (b'1'..=b'4').contains(&b[6]);
    if ok {
        Ok(t.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!("{value:?} is not a quarter like 2026-Q1"),
        ))
    }
}

pub(crate) fn timestamp(field: &str, value: &str) -> Result<Timestamp> {
    Timestamp::parse(value).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{value:?} is not an RFC 3339 date-time like 2026-01-31T12:00:00Z"),
        )
    })
}

// ---- metadata -------------------------------------------------------------

/// How deeply nested a metadata value may be; deeper input is refused
/// before it reaches the store.
pub(crate) const MAX_METADATA_DEPTH: usize = 16;
/// The largest metadata object, serialized.
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024;

fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nesting).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// Bound a metadata object's size and depth.
pub(crate) fn metadata_bounds(field: &str, m: &Map<String, Value>) -> Result<()> {
    let depth = m.values().map(nesting).max().unwrap_or(0) + 1;
    if depth > MAX_METADATA_DEPTH {
        return Err(Error::invalid(
            field,
            format!("is nested {depth} levels deep; the limit is {MAX_METADATA_DEPTH}"),
        ));
    }
    let size = Value::Object(m.clone()).to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            field,
            format!("is {size} bytes; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(())
}

fn meta_field(key: &str) -> String {
    format!("metadata.{key}")
}

fn int_in(m: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<()> {
    if let Some(v) = m.get(key) {
        let ok = v.as_i64().is_some_and(|n| (min..=max).contains(&n));
        if !ok {
            return Err(Error::invalid(
                meta_field(key),
                format!("must be a whole number from {min} to {max} (got {v})"),
            ));
        }
    }
    Ok(())
}

fn number_in(m: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<()> {
    if let Some(v) = m.get(key) {
        let ok = v.as_f64().is_some_and(|n| (min..=max).contains(&n));
        if !ok {
            return Err(Error::invalid(
                meta_field(key),
                format!("must be a number from {min} to {max} (got {v})"),
            ));
        }
    }
    Ok(())
}

fn string_max(m: &Map<String, Value>, key: &str, max: usize) -> Result<()> {
    if let Some(v) = m.get(key) {
        match v.as_str() {
            Some(s) if char_len(s) <= max => {}
            Some(s) => {
                return Err(Error::invalid(
                    meta_field(key),
                    format!("must be at most {max} characters (got {})", char_len(s)),
                ));
            }
            None => return Err(Error::invalid(meta_field(key), format!("must be a string (got {v})"))),
        }
    }
    Ok(())
}

fn string_list(m: &Map<String, Value>, key: &str) -> Result<()> {
    if let Some(v) = m.get(key) {
        let ok = v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(Error::invalid(
                meta_field(key),
                format!("must be a list of strings (got {v})"),
            ));
        }
    }
    Ok(())
}

fn boolean(m: &Map<String, Value>, key: &str) -> Result<()> {
    match m.get(key) {
        Some(v) if !v.is_boolean() => Err(Error::invalid(
            meta_field(key),
            format!("must be true or false (got {v})"),
        )),
        _ => Ok(()),
    }
}

fn time_value(m: &Map<String, Value>, key: &str) -> Result<()> {
    match m.get(key) {
        Some(Value::String(s)) => timestamp(&meta_field(key), s).map(|_| ()),
        Some(v) => Err(Error::invalid(
            meta_field(key),
            format!("must be an RFC 3339 date-time string (got {v})"),
        )),
        None => Ok(()),
    }
}

/// Check a work item's metadata against the rules of its type. Unknown keys
/// are kept.
pub(crate) fn work_item_metadata(item_type: ItemType, m: &Map<String, Value>, created_by_tool: bool) -> Result<()> {
    metadata_bounds("metadata", m)?;
    match item_type {
        ItemType::Project => {
            if created_by_tool
                && m.get("description")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s.trim().is_empty())
            {
                return Err(Error::invalid(
                    "metadata.description",
                    "a project needs a description (metadata.description, up to 1,000 characters)",
                ));
            }
            string_max(m, "description", 1_000)?;
            if let Some(Value::String(q)) = m.get("target_quarter") {
                quarter("metadata.target_quarter", q)?;
            } else if let Some(v) = m.get("target_quarter") {
                return Err(Error::invalid(
                    "metadata.target_quarter",
                    format!("must be a quarter like 2026-Q1 (got {v})"),
                ));
            }
            string_list(m, "constitutional_principles")?;
        }
        ItemType::Session => {
            int_in(m, "token_budget", 1_000, 1_000_000)?;
            int_in(m, "prompts_count", 0, i64::MAX)?;
            if let Some(fm) = m.get("yaml_frontmatter") {
                match fm.as_object() {
                    Some(o) if o.contains_key("schema_version") => {}
                    Some(_) => {
                        return Err(Error::invalid(
                            "metadata.yaml_frontmatter",
                            "must contain schema_version",
                        ));
                    }
                    None => return Err(Error::invalid("metadata.yaml_frontmatter", "must be an object")),
                }
            }
        }
        ItemType::Task => {
            number_in(m, "estimated_hours", 0.0, 1_000.0)?;
            number_in(m, "actual_hours", 0.0, 1_000.0)?;
            string_max(m, "blocked_reason", 500)?;
        }
        ItemType::Research => {
            string_list(m, "research_questions")?;
            string_max(m, "findings_summary", 2_000)?;
            string_list(m, "references")?;
        }
    }
    Ok(())
}

// ---- vendors --------------------------------------------------------------

/// The case-folded, trimmed form of a vendor name: its natural key.
pub(crate) fn vendor_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// 1-100 characters of letters, digits, space, `-` and `_`.
pub fn vendor_name(value: &str) -> Result<String> {
    let t = text("name", value, 1, 100)?;
    if let Some(bad) = t
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_')))
    {
        return Err(Error::invalid(
            "name",
            format!("{value:?} has {bad:?}; a vendor name has only letters, digits, spaces, - and _"),
        ));
    }
    Ok(t)
}

pub fn extractor_version(value: &str) -> Result<String> {
    line("extractor_version", value, 1, 50)
}

/// Check a vendor's whole metadata (after the update's keys were merged in).
pub(crate) fn vendor_metadata(m: &Map<String, Value>) -> Result<()> {
    metadata_bounds("metadata", m)?;
    if let Some(v) = m.get("format_support") {
        let Some(o) = v.as_object() else {
            return Err(Error::invalid(
                "metadata.format_support",
                format!("must be an object of booleans (got {v})"),
            ));
        };
        for (k, b) in o {
            if !["excel", "csv", "pdf", "ocr"].contains(&k.as_str()) {
                return Err(Error::invalid(
                    "metadata.format_support",
                    format!("{k:?} is not a format; use excel, csv, pdf or ocr"),
                ));
            }
            if !b.is_boolean() {
                return Err(Error::invalid(
                    format!("metadata.format_support.{k}"),
                    format!("must be true or false (got {b})"),
                ));
            }
        }
    }
    if let Some(v) = m.get("test_results") {
        test_results(v)?;
    }
    boolean(m, "manifest_compliant")?;
    time_value(m, "last_test_run")?;
    if let Some(v) = m.get("notes")
        && !v.is_string()
    {
        return Err(Error::invalid("metadata.notes", format!("must be a string (got {v})")));
    }
    Ok(())
}

/// `passing`, `total`, `skipped`: non-negative, `passing <= total`,
/// `passing + skipped <= total`.
pub fn test_results(v: &Value) -> Result<()> {
    let field = "metadata.test_results";
    let Some(o) = v.as_object() else {
        return Err(Error::invalid(
            field,
            format!("must be an object with passing, total and skipped (got {v})"),
        ));
    };
    let get = |k: &str| -> Result<i64> {
        match o.get(k) {
            None => Ok(0),
            Some(n) => n.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                Error::invalid(
                    format!("{field}.{k}"),
                    format!("must be a whole number, 0 or more (got {n})"),
                )
            }),
        }
    };
    let (passing, total, skipped) = (get("passing")?, get("total")?, get("skipped")?);
    if passing > total {
        return Err(Error::invalid(
            field,
            format!("passing ({passing}) is more than total ({total})"),
        ));
    }
    if passing + skipped > total {
        return Err(Error::invalid(
            field,
            format!("passing + skipped ({}) is more than total ({total})", passing + skipped),
        ));
    }
    Ok(())
}

// ---- deployments ----------------------------------------------------------

pub fn pr_title(value: &str) -> Result<String> {
    line("pr_title", value, 1, 200)
}

/// Category name -> non-negative count.
pub fn test_summary(v: &Map<String, Value>) -> Result<()> {
    metadata_bounds("test_summary", v)?;
    for (k, n) in v {
        if k.trim().is_empty() {
            return Err(Error::invalid("test_summary", "a category name is empty"));
        }
        if n.as_i64().is_none_or(|n| n < 0) {
            return Err(Error::invalid(
                format!("test_summary.{k}"),
                format!("must be a whole number, 0 or more (got {n})"),
            ));
        }
    }
    Ok(())
}

// ---- configuration and enhancements ----------------------------------------

pub fn token_budget(field: &str, value: i64) -> Result<i64> {
    if (1_000..=1_000_000).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("must be 1,000 to 1,000,000 (got {value})"),
        ))
    }
}

pub(crate) fn enhancement_priority(value: i64) -> Result<i64> {
    if (1..=5).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(
            "priority",
            format!("must be 1 (highest) to 5 (got {value})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn words_parse_in_any_case_and_name_the_choices() {
        assert_eq!(ItemType::parse(" Task ").unwrap(), ItemType::Task);
        let err = ItemType::parse("epic").unwrap_err().to_string();
        assert!(err.contains("project, session, task, research"), "{err}");
        assert_eq!(WorkStatus::parse_legacy("need to be done").unwrap(), WorkStatus::Active);
        assert_eq!(WorkStatus::parse_legacy("in-progress").unwrap(), WorkStatus::Active);
        assert_eq!(WorkStatus::parse_legacy("complete").unwrap(), WorkStatus::Completed);
        assert!(WorkStatus::parse("complete").is_err());
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("  a  ").unwrap(), "a");
        assert!(title("   ").is_err());
        assert!(title(&"x".repeat(200)).is_ok());
        assert!(title(&"x".repeat(201)).is_err());
        assert!(title(&"é".repeat(200)).is_ok(), "characters, not bytes");
        assert!(title("two\nlines").is_err() && title("nul \u{0}").is_err());
        assert!(branch_name("feature/\rx").is_err());
        assert!(description(&"x".repeat(10_001)).is_err());
        assert_eq!(description(" ").unwrap(), None);
    }

    #[test]
    fn numbers_hashes_and_quarters() {
        assert!(work_priority(0).is_ok() && work_priority(4).is_ok());
        assert!(work_priority(5).is_err() && work_priority(-1).is_err());
        assert!(pr_number(0).is_err());
        let full = "a".repeat(40);
        assert!(commit_hash("commit_hash", &full, false).is_ok());
        assert!(commit_hash("commit_hash", "abc1234", false).is_err());
        assert!(commit_hash("commit_hash", "abc1234", true).is_ok());
        assert!(commit_hash("commit_hash", "abc12", true).is_err());
        assert!(commit_hash("commit_hash", &"g".repeat(40), false).is_err());
        assert!(quarter("q", "2026-Q4").is_ok());
        assert!(quarter("q", "2026-Q5").is_err() && quarter("q", "Q1 2026").is_err());
        assert!(enhancement_priority(0).is_err() && enhancement_priority(5).is_ok());
        assert!(token_budget("b", 999).is_err() && token_budget("b", 200_000).is_ok());
    }

    #[test]
    fn work_item_metadata_by_type() {
        assert!(work_item_metadata(ItemType::Project, &obj(json!({})), true).is_err());
        assert!(work_item_metadata(ItemType::Project, &obj(json!({"description": "d"})), true).is_ok());
        assert!(work_item_metadata(ItemType::Project, &obj(json!({})), false).is_ok());
        assert!(
            work_item_metadata(
                ItemType::Project,
                &obj(json!({"description": "d", "target_quarter": "2026-Q9"})),
                true
            )
            .is_err()
        );
        assert!(work_item_metadata(ItemType::Session, &obj(json!({"token_budget": 500})), true).is_err());
        assert!(work_item_metadata(ItemType::Session, &obj(json!({"yaml_frontmatter": {"a": 1}})), true).is_err());
        assert!(
            work_item_metadata(
                ItemType::Session,
                &obj(json!({"yaml_frontmatter": {"schema_version": 1}})),
                true
            )
            .is_ok()
        );
        assert!(work_item_metadata(ItemType::Task, &obj(json!({"estimated_hours": 1001})), true).is_err());
        assert!(work_item_metadata(ItemType::Task, &obj(json!({"blocked_reason": "x".repeat(501)})), true).is_err());
        assert!(work_item_metadata(ItemType::Task, &obj(json!({"custom": {"kept": true}})), true).is_ok());
        assert!(work_item_metadata(ItemType::Research, &obj(json!({"references": [1]})), true).is_err());
    }

    #[test]
    fn deep_metadata_is_refused() {
        let mut v = json!(1);
        for _ in 0..40 {
            v = json!({ "n": v });
        }
        let err = work_item_metadata(ItemType::Task, &obj(json!({"deep": v})), true).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
    }

    #[test]
    fn vendor_rules() {
        assert!(vendor_name("EPSON_v2 - scanner").is_ok());
        assert!(vendor_name("bad/name").is_err());
        assert!(vendor_name(&"a".repeat(101)).is_err());
        assert_eq!(vendor_key("  EpSon "), "epson");
        assert!(vendor_metadata(&obj(json!({"test_results": {"passing": 5, "total": 4}}))).is_err());
        assert!(vendor_metadata(&obj(json!({"test_results": {"passing": 3, "skipped": 2, "total": 4}}))).is_err());
        assert!(vendor_metadata(&obj(json!({"test_results": {"passing": 2, "skipped": 2, "total": 4}}))).is_ok());
        assert!(vendor_metadata(&obj(json!({"test_results": {"passing": -1, "total": 4}}))).is_err());
        assert!(vendor_metadata(&obj(json!({"format_support": {"excel": "yes"}}))).is_err());
        assert!(vendor_metadata(&obj(json!({"format_support": {"word": true}}))).is_err());
        assert!(vendor_metadata(&obj(json!({"last_test_run": "soon"}))).is_err());
        assert!(vendor_metadata(&obj(json!({"manifest_compliant": 1}))).is_err());
    }

    #[test]
    fn test_summaries_count_from_zero() {
        assert!(test_summary(&obj(json!({"unit": 150, "integration": 30}))).is_ok());
        assert!(test_summary(&obj(json!({"unit": -1}))).is_err());
        assert!(test_summary(&obj(json!({"unit": "many"}))).is_err());
    }
}

//! The bounds every tool call is held to before its arguments reach an
//! operation: each argument has the JSON type its schema names, no string
//! is longer than its schema's `maxLength` (or [`MAX_STRING`] where the
//! schema names none), no list longer than its `maxItems`, and nested values
//! (metadata) stay small and shallow. A refusal is a tool error that names
//! the argument and quotes at most a short prefix of it; answers stay
//! bounded too ([`crate::error::MAX_MESSAGE`]).

use serde_json::{Map, Value};

use crate::error::quote;

/// The longest argument string whose schema gives no `maxLength`: ids,
/// commit hashes and cursors (their schemas stay lean; the operation says
/// what a well-formed one is).
pub(crate) const MAX_ARGUMENT: usize = 200;
/// The longest string nested in an argument (metadata values), a
/// description's limit.
pub(crate) const MAX_STRING: usize = 10_000;
/// The most elements of a list, or keys of an object, nested in arguments.
pub(crate) const MAX_ENTRIES: usize = 1_000;
/// How deep values may nest inside an argument (metadata).
pub(crate) const MAX_DEPTH: usize = 16;

/// Check a tool's arguments against its input schema; the sentence of the
/// first argument that breaks a bound.
pub(crate) fn check_arguments(
    schema: &Map<String, Value>,
    arguments: Option<&Map<String, Value>>,
) -> Result<(), String> {
    let Some(arguments) = arguments else {
        return Ok(());
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = |name: &str| {
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n == name))
    };
    for (name, value) in arguments {
        // Unknown arguments are serde's to name (deny_unknown_fields).
        let Some(property) = properties.and_then(|p| p.get(name)).and_then(Value::as_object) else {
            continue;
        };
        if value.is_null() && required(name) {
            return Err(format!("invalid {name}: it is required, and null is not a value"));
        }
        check_value(name, property, value, 0)?;
    }
    Ok(())
}

fn check_value(at: &str, schema: &Map<String, Value>, value: &Value, depth: usize) -> Result<(), String> {
    if value.is_null() {
        // An absent optional argument; serde refuses a null where one is required.
        return Ok(());
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, expected)
    {
        return Err(format!(
            "invalid {at}: expected {}, got {}",
            article(expected),
            describe(value)
        ));
    }
    match value {
        Value::String(s) => {
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .map_or(if depth == 0 { MAX_ARGUMENT } else { MAX_STRING }, |m| m as usize);
            let chars = s.chars().count();
            if let Some(Value::Array(words)) = schema.get("enum") {
                let longest = words.iter().filter_map(Value::as_str).map(str::len).max().unwrap_or(0);
                if chars > longest.max(32) {
                    let words: Vec<&str> = words.iter().filter_map(Value::as_str).collect();
                    return Err(format!("invalid {at}: {} is not one of {}", quote(s), words.join(", ")));
                }
            }
            if chars > max {
                return Err(format!(
                    "invalid {at}: it is {chars} characters long, and {at} takes at most {max}"
                ));
            }
        }
        Value::Array(items) => {
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .map_or(MAX_ENTRIES, |m| m as usize);
            if items.len() > max {
                return Err(format!(
                    "invalid {at}: it has {} entries, and {at} takes at most {max}",
                    items.len()
                ));
            }
            let item_schema = schema.get("items").and_then(Value::as_object);
            for (i, item) in items.iter().enumerate() {
                check_nested(&format!("{at}[{i}]"), item_schema, item, depth + 1)?;
            }
        }
        Value::Object(entries) => {
            if entries.len() > MAX_ENTRIES {
                return Err(format!(
                    "invalid {at}: it has {} keys, and {at} takes at most {MAX_ENTRIES}",
                    entries.len()
                ));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, entry) in entries {
                if key.chars().count() > 100 {
                    return Err(format!(
                        "invalid {at}: the key {} is longer than 100 characters",
                        quote(key)
                    ));
                }
                let entry_schema = properties.and_then(|p| p.get(key)).and_then(Value::as_object);
                check_nested(&format!("{at}.{key}"), entry_schema, entry, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_nested(at: &str, schema: Option<&Map<String, Value>>, value: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "invalid {}: values nest deeper than {MAX_DEPTH} levels",
            at.split(['.', '[']).next().unwrap_or(at)
        ));
    }
    let empty = Map::new();
    check_value(at, schema.unwrap_or(&empty), value, depth)
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        // Whether it fits the argument's range is the operation's to say.
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

fn article(ty: &str) -> String {
    match ty {
        "integer" => "an integer".into(),
        "object" => "an object".into(),
        "array" => "an array".into(),
        other => format!("a {other}"),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {}", quote(&n.to_string())),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

pub(crate) use crate::error::bound_message;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Map<String, Value> {
        json!({"type": "object", "properties": {
            "title": {"type": "string", "maxLength": 5},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "ids": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
            "n": {"type": "integer"},
            "id": {"type": "string"},
            "metadata": {"type": "object"}
        }})
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(args: Value) -> Result<(), String> {
        check_arguments(&schema(), args.as_object())
    }

    #[test]
    fn arguments_within_bounds_pass() {
        check(json!({"title": "abcde", "kind": "zzz", "ids": ["abc"], "n": 3, "metadata": {"k": [1, "v"]}})).unwrap();
        check(json!({"title": null, "other": "x".repeat(100_000)})).unwrap();
        check(json!({"metadata": {"notes": "x".repeat(MAX_STRING)}})).unwrap();
    }

    #[test]
    fn each_bound_names_the_argument_and_quotes_little() {
        let e = check(json!({"title": "abcdef"})).unwrap_err();
        assert!(e.starts_with("invalid title:") && e.contains("at most 5"), "{e}");
        let e = check(json!({"kind": "k".repeat(1 << 20)})).unwrap_err();
        assert!(e.contains("invalid kind") && e.contains("a, b") && e.len() < 200, "{e}");
        let e = check(json!({"ids": ["a", "b", "c"]})).unwrap_err();
        assert!(e.contains("invalid ids") && e.contains("at most 2"), "{e}");
        let e = check(json!({"ids": ["abcd"]})).unwrap_err();
        assert!(e.contains("invalid ids[0]"), "{e}");
        let e = check(json!({"n": "five"})).unwrap_err();
        assert_eq!(e, "invalid n: expected an integer, got the string \"five\"");
        let e = check(json!({"title": 5})).unwrap_err();
        assert_eq!(e, "invalid title: expected a string, got the number \"5\"");
        let e = check(json!({"id": "i".repeat(1 << 20)})).unwrap_err();
        assert!(e.contains("invalid id") && e.contains("at most 200"), "{e}");
        let e = check(json!({"metadata": {}, "n": 1, "title": "t", "ids": [], "kind": "a"}));
        assert!(e.is_ok());
        let e = check(json!({"metadata": {"notes": "x".repeat(MAX_STRING + 1)}})).unwrap_err();
        assert!(e.contains("invalid metadata.notes"), "{e}");
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 1 {
            deep = json!({ "d": deep });
        }
        let e = check(json!({ "metadata": deep })).unwrap_err();
        assert!(e.starts_with("invalid metadata:"), "{e}");
    }

    #[test]
    fn messages_are_bounded() {
        assert_eq!(bound_message("short".into()), "short");
        let long = bound_message("é".repeat(5000));
        assert_eq!(long.chars().count(), crate::error::MAX_MESSAGE + 1);
    }
}

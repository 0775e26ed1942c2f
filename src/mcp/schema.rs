//! JSON Schemas of the tools: input schemas generated from the parameter
//! structs, output schemas written by hand.
//!
//! Every byte of `tools/list` stays in the model's context for a whole
//! session, so the schemas are lean: subschemas are inlined (no `$ref`, no
//! `$defs`), `null` is never a type (some clients reject nullable type
//! arrays), integer `format`s are dropped, and the output schemas name the
//! fields a model needs to act on rather than every field of the record.

use std::sync::Arc;

use rmcp::model::JsonObject;
use rmcp::schemars::{self, JsonSchema};
use serde_json::{Value, json};

/// Remove `null` from a schema and its subschemas: `"type": ["string",
/// "null"]` becomes `"type": "string"`, `anyOf: [X, {"type": "null"}]`
/// becomes X, `null` leaves `enum` lists and `"default": null` goes. Integer
/// `format`s (`int64`, `uint32`) and `additionalProperties: true` (the
/// default) go too.
fn strip_null(schema: &mut schemars::Schema) {
    if let Some(obj) = schema.as_object_mut() {
        if obj.get("default") == Some(&Value::Null) {
            obj.remove("default");
        }
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(values)) = obj.get_mut("enum") {
            values.retain(|v| !v.is_null());
        }
        if obj.get("type") == Some(&json!("integer")) {
            obj.remove("format");
        }
        if obj.get("additionalProperties") == Some(&Value::Bool(true)) {
            obj.remove("additionalProperties");
        }
        let collapse = match obj.get("anyOf") {
            Some(Value::Array(branches)) if branches.len() == 2 => {
                let non_null: Vec<&Value> = branches
                    .iter()
                    .filter(|b| b.get("type") != Some(&json!("null")))
                    .collect();
                (non_null.len() == 1).then(|| non_null[0].clone())
            }
            _ => None,
        };
        if let Some(Value::Object(branch)) = collapse {
            obj.remove("anyOf");
            for (k, v) in branch {
                obj.entry(k).or_insert(v);
            }
        }
    }
    schemars::transform::transform_subschemas(&mut strip_null, schema);
}

/// The input schema of a tool whose arguments deserialize into `T`:
/// object-rooted, no `$schema`, no root `title`, no `$ref`, no nulls.
///
/// # Panics
/// When `T` does not describe a JSON object (a programming error, caught by
/// the tests that list the tools).
pub fn input_schema<T: JsonSchema>() -> Arc<JsonObject> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let schema = settings
        .with_transform(strip_null)
        .into_generator()
        .into_root_schema_for::<T>();
    let Value::Object(mut obj) = schema.to_value() else {
        panic!("the input schema of {} is not an object", std::any::type_name::<T>());
    };
    assert_eq!(
        obj.get("type"),
        Some(&json!("object")),
        "{} is not object-rooted",
        std::any::type_name::<T>()
    );
    obj.remove("title");
    obj.remove("description");
    // `deny_unknown_fields` says `additionalProperties: false`; serde's
    // error names an unknown field anyway, so the bytes are not spent here.
    obj.remove("additionalProperties");
    obj.entry("properties").or_insert_with(|| json!({}));
    Arc::new(obj)
}

/// An object schema with the given `(field, JSON type)` properties, of
/// which `required` must be present. Other fields may appear too.
fn object(fields: &[(&str, &str)], required: &[&str]) -> Arc<JsonObject> {
    let properties: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(name, ty)| ((*name).to_owned(), json!({ "type": ty })))
        .collect();
    let mut obj = JsonObject::new();
    obj.insert("type".into(), json!("object"));
    obj.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        obj.insert("required".into(), json!(required));
    }
    Arc::new(obj)
}

pub fn work_item() -> Arc<JsonObject> {
    object(&[("id", "string"), ("version", "integer")], &["id", "version"])
}

pub fn work_item_detail() -> Arc<JsonObject> {
    object(
        &[("item", "object"), ("descendants", "array"), ("dependencies", "object")],
        &["item"],
    )
}

/// A page of a list: `columns` names the fields of each row of `rows`;
/// `next_cursor` comes on every page but the last.
pub fn page() -> Arc<JsonObject> {
    object(
        &[("columns", "array"), ("rows", "array"), ("total_count", "integer")],
        &["rows", "total_count"],
    )
}

pub fn vendor() -> Arc<JsonObject> {
    object(&[("name", "string"), ("version", "integer")], &["name", "version"])
}

pub fn deployment() -> Arc<JsonObject> {
    object(&[("id", "string"), ("commit_hash", "string")], &["id"])
}

pub fn dependency() -> Arc<JsonObject> {
    object(&[("id", "string")], &["id"])
}

pub fn configuration() -> Arc<JsonObject> {
    object(&[("version", "integer"), ("sync", "object")], &["version"])
}

/// An enhancement (create, update, get) or a page of them (list).
pub fn enhancement_or_page() -> Arc<JsonObject> {
    object(
        &[
            ("id", "string"),
            ("version", "integer"),
            ("rows", "array"),
            ("total_count", "integer"),
        ],
        &[],
    )
}

pub fn archive() -> Arc<JsonObject> {
    object(&[("count", "integer"), ("rows", "array")], &["count", "rows"])
}

pub fn status() -> Arc<JsonObject> {
    object(
        &[("format", "string"), ("markdown", "string"), ("report", "object")],
        &["format"],
    )
}

/// An object with these properties (all optional).
pub fn object_with(props: &[(&str, &str)]) -> Arc<JsonObject> {
    object(props, &[])
}

//! JSON Schemas of the tools: input schemas generated from the operations'
//! input structs (`crate::ops`). Tools declare no output schema: the
//! answers are the operations' JSON, which a model reads as it comes, and
//! every schema byte would stay in its context all session.
//!
//! Every byte of `tools/list` stays in the model's context for a whole
//! session, so the schemas are lean: subschemas are inlined (no `$ref`, no
//! `$defs`), `null` is never a type (some clients reject nullable type
//! arrays) and integer `format`s are dropped.

use std::sync::Arc;

use rmcp::model::JsonObject;
use rmcp::schemars::{self, JsonSchema};
use serde_json::{Value, json};

/// Remove `null` from a schema and its subschemas: `"type": ["string",
/// "null"]` becomes `"type": "string"`, `anyOf: [X, {"type": "null"}]`
/// becomes X, `null` leaves `enum` lists and a default of null, false or []
/// goes (what an absent field means anyway). Integer
/// `format`s (`int64`, `uint32`) and `additionalProperties: true` (the
/// default) go too.
fn strip_null(schema: &mut schemars::Schema) {
    if let Some(obj) = schema.as_object_mut() {
        let empty =
            |v: &Value| matches!(v, Value::Null | Value::Bool(false)) || v.as_array().is_some_and(Vec::is_empty);
        if obj.get("default").is_some_and(empty) {
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

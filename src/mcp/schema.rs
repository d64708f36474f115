//! The tools' JSON Schemas, shaped for the clients that check them: plain draft 2020-12 that
//! strict validators compile (no `uint64`-style formats, no union types, no `$ref`s to resolve),
//! generated once per type.
//!
//! The Python MCP SDK validates every result against its output schema with `jsonschema`, whose
//! cost grows with each keyword it visits and each `$ref` it resolves; the TypeScript SDK's Ajv
//! warns on every unknown `format`. So subschemas are inlined, an absent value is left out
//! rather than written as `null` (an `Option` field is optional, never `["T", "null"]`), and
//! only the formats JSON Schema defines are kept.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::JsonObject;
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema};

/// The `format` values of JSON Schema 2020-12 (validation spec, section 7.3).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Drops `format`s that JSON Schema does not define (schemars writes `uint64`, `int32`, `double`
/// ...; the bounds it writes beside them stay).
#[derive(Clone)]
struct StandardFormats;

impl Transform for StandardFormats {
    fn transform(&mut self, schema: &mut Schema) {
        let nonstandard = schema
            .get("format")
            .and_then(|f| f.as_str())
            .is_some_and(|f| !STANDARD_FORMATS.contains(&f));
        if nonstandard {
            schema.remove("format");
        }
        transform_subschemas(self, schema);
    }
}

/// Makes an `Option`'s schema its value's schema: `["T", "null"]` becomes `T`, and `anyOf` a
/// schema or null becomes that schema. Every optional field of a result is left out when absent
/// (`skip_serializing_if`), and an argument may be left out, so `null` is never needed.
#[derive(Clone)]
struct AbsentNotNull;

impl Transform for AbsentNotNull {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        if let Some(serde_json::Value::Array(values)) = obj.get_mut("enum") {
            values.retain(|v| !v.is_null());
        }
        if let Some(serde_json::Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".into(), only);
            }
        }
        let single = match obj.get("anyOf") {
            Some(serde_json::Value::Array(alts)) if alts.len() == 2 => {
                let is_null = |v: &serde_json::Value| v.get("type").is_some_and(|t| t == "null");
                alts.iter()
                    .find(|a| !is_null(a))
                    .filter(|_| alts.iter().any(is_null))
                    .cloned()
            }
            _ => None,
        };
        if let Some(serde_json::Value::Object(inner)) = single {
            obj.remove("anyOf");
            obj.extend(inner);
        }
    }
}

/// Makes a string enum whose variants carry doc comments (`oneOf` one `const` each, which a
/// validator tries branch by branch) one `enum`, the variants' docs joined into its description.
#[derive(Clone)]
struct FlatEnums;

impl Transform for FlatEnums {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        let Some(serde_json::Value::Array(alts)) = obj.get("oneOf") else {
            return;
        };
        let variants: Option<Vec<(serde_json::Value, Option<&str>)>> = alts
            .iter()
            .map(|a| {
                let string = a.get("type").is_some_and(|t| t == "string");
                let value = a.get("const").filter(|_| string)?;
                Some((value.clone(), a.get("description").and_then(|d| d.as_str())))
            })
            .collect();
        let Some(variants) = variants else { return };
        let docs: Vec<String> = variants
            .iter()
            .filter_map(|(v, d)| Some(format!("`{}`: {}", v.as_str()?, (*d)?)))
            .collect();
        let values: Vec<serde_json::Value> = variants.into_iter().map(|(v, _)| v).collect();
        obj.remove("oneOf");
        obj.insert("type".into(), "string".into());
        obj.insert("enum".into(), values.into());
        if !docs.is_empty() {
            let head = obj
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default();
            let joined = docs.join(" ");
            let text = if head.is_empty() {
                joined
            } else {
                format!("{head} {joined}")
            };
            obj.insert("description".into(), text.into());
        }
    }
}

fn settings(serialize: bool) -> SchemaSettings {
    let s = SchemaSettings::draft2020_12();
    let mut s = if serialize { s.for_serialize() } else { s };
    s.inline_subschemas = true;
    s.with_transform(StandardFormats)
        .with_transform(AbsentNotNull)
        .with_transform(FlatEnums)
}

type Cache = Mutex<HashMap<(TypeId, bool), Arc<JsonObject>>>;

fn cached<T: JsonSchema + 'static>(serialize: bool) -> Arc<JsonObject> {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (TypeId::of::<T>(), serialize);
    if let Some(s) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return s.clone();
    }
    let schema = settings(serialize)
        .into_generator()
        .into_root_schema_for::<T>();
    let serde_json::Value::Object(mut object) = schema.to_value() else {
        unreachable!("a struct's schema is an object")
    };
    // The tool's description says it; a root title would only repeat the Rust type's name.
    object.remove("title");
    object.remove("description");
    let object = Arc::new(object);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, object.clone());
    object
}

/// A tool's `inputSchema`: what its arguments deserialise from.
pub fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    cached::<T>(false)
}

/// A tool's `outputSchema`: what its result serialises to.
pub fn output<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    cached::<T>(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema, serde::Serialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u64,
        at: chrono::DateTime<chrono::Utc>,
    }

    #[derive(JsonSchema, serde::Serialize)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(skip_serializing_if = "Option::is_none")]
        maybe: Option<String>,
        inner: Vec<Inner>,
        count: u32,
    }

    #[test]
    fn inlined_standard_and_without_nulls() {
        let s = serde_json::Value::Object((*output::<Outer>()).clone());
        let text = s.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
        assert!(!text.contains("uint") && !text.contains("null"), "{text}");
        assert!(text.contains(r#""format":"date-time""#), "{text}");
        assert_eq!(s["properties"]["maybe"]["type"], "string");
        assert_eq!(s["required"], serde_json::json!(["inner", "count"]));
        assert_eq!(s["properties"]["count"]["minimum"], 0);
    }
}

//! The tools' schemas as strict validators and the real SDKs see them: the Python SDK's
//! `jsonschema` (Draft 2020-12 meta-schema) and the TypeScript SDK's Ajv (its warnings on
//! `tools/list`, then Ajv 2020 in strict mode), and the bounds the model is told.

use std::process::Command;

use serde_json::Value;

use crate::cli::BIN;
use crate::peers::{e2e_dir, node, python};

/// A config that offers every tool and needs no InfluxDB to list them.
fn every_tool_config(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("tokenwarden.toml");
    let text = "[store]\npath = \"tw.db\"\n\n[mcp]\nallow_regenerate = true\n\n[[instances]]\nname = \"local\"\n\
                url = \"http://127.0.0.1:9\"\nedition = \"enterprise\"\ntoken_env = \"TW_SCHEMA_TEST_TOKEN\"\n";
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn run(program: &str, script: &str, cfg: &std::path::Path) -> Value {
    let out = Command::new(program)
        .arg(e2e_dir().join(script))
        .arg(BIN)
        .arg(cfg)
        .env("TW_SCHEMA_TEST_TOKEN", "apiv3_schema-test-not-a-real-token")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

const TOOLS: [&str; 9] = [
    "create_admin_token",
    "create_resource_token",
    "delete_token",
    "get_pending_action",
    "list_databases",
    "list_tokens",
    "prune_expired_tokens",
    "regenerate_operator_token",
    "server_info",
];

#[test]
fn the_typescript_sdk_and_strict_ajv_take_every_schema_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = every_tool_config(dir.path());
    let r = run(node(), "check_schemas.mjs", &cfg);
    assert_eq!(r["tools"], serde_json::json!(TOOLS), "{r}");
    assert_eq!(r["sdk_warnings"], serde_json::json!([]), "{r}");
    assert_eq!(r["ajv_strict_errors"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["untitled"],
        serde_json::json!([]),
        "every tool has a top-level title: {r}"
    );
    assert_eq!(r["without_output_schema"], serde_json::json!([]), "{r}");
}

#[test]
fn every_schema_is_plain_draft_2020_12_with_the_bounds_the_server_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = every_tool_config(dir.path());
    let python = python();
    let r = run(python.to_str().unwrap(), "check_schemas.py", &cfg);
    assert_eq!(r["tools"], serde_json::json!(TOOLS), "{r}");
    assert_eq!(r["meta_schema_errors"], serde_json::json!([]));
    assert_eq!(r["nonstandard_formats"], serde_json::json!([]));
    assert_eq!(r["refs"], 0, "no $ref for a client to resolve");

    let s = &r["schemas"];
    let limit = &s["list_tokens"]["input"]["properties"]["limit"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&1.into(), &500.into()),
        "{limit}"
    );
    let perms = &s["create_resource_token"]["input"]["properties"]["permissions"];
    assert_eq!(perms["minItems"], 1, "{perms}");
    assert_eq!(
        perms["items"]["properties"]["actions"]["minItems"], 1,
        "{perms}"
    );
    // An optional value is left out, never `null`: no schema needs a union type.
    let text = s.to_string();
    assert!(
        !text.contains("\"null\"") && !text.contains(",null]"),
        "{text}"
    );
    let status = &s["delete_token"]["output"]["properties"]["status"];
    assert!(
        status["enum"].as_array().is_some_and(|e| e.len() >= 4) && status.get("oneOf").is_none(),
        "{status}"
    );
}

/// A listed token is described, not typed: the Python SDK would visit a subschema for each of a
/// page's tokens on every call. So the description must name every field a token carries, the
/// same fields a single token's schema types (`create_admin_token`'s `token`).
#[test]
fn a_listed_token_is_described_with_every_field_a_token_has() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = every_tool_config(dir.path());
    let python = python();
    let r = run(python.to_str().unwrap(), "check_schemas.py", &cfg);
    let s = &r["schemas"];
    let tokens = &s["list_tokens"]["output"]["properties"]["tokens"];
    assert_eq!(tokens["type"], "array", "{tokens}");
    assert!(
        tokens.get("items").is_none(),
        "no per-item subschema: {tokens}"
    );
    let described = tokens["description"].as_str().unwrap_or_default();
    let typed = s["create_admin_token"]["output"]["properties"]["token"]["properties"]
        .as_object()
        .expect("a single token is typed field by field");
    assert!(typed.len() >= 8, "{typed:?}");
    for field in typed.keys() {
        assert!(
            described.contains(&format!("`{field}`")),
            "the list's description leaves out `{field}`: {described}"
        );
    }
}

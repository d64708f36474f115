//! InfluxData's official MCP server (`@influxdata/influxdb3-mcp-server` 1.4.1), driven by the
//! TypeScript MCP SDK client through every token tool, every database tool and `query_sql`
//! against `tokenwarden simulate`, in both editions; the simulator's state is then checked on its
//! own with the CLI.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::cli::{run, simulate, write_config};
use crate::peers::{e2e_dir, node};
use crate::support::assert_no_token;

const TOKEN_TOOLS: [&str; 6] = [
    "create_admin_token",
    "list_admin_tokens",
    "list_resource_tokens",
    "create_resource_token",
    "delete_token",
    "regenerate_operator_token",
];
const DATABASE_TOOLS: [&str; 4] = [
    "list_databases",
    "create_database",
    "update_database",
    "delete_database",
];

/// Runs `tests/e2e/official_mcp.mjs` against the simulator and returns its summary line.
fn drive(edition: &str, sim_url: &str, dir: &Path) -> Value {
    let out = Command::new(node())
        .arg(e2e_dir().join("official_mcp.mjs"))
        .args([edition, sim_url])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the official MCP server's run failed:\n{stdout}\n{stderr}"
    );
    assert_no_token("the summary of the official MCP server's run", &stdout);
    assert_no_token("the official MCP server's stderr", &stderr);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The recorded call `label`, which must have succeeded.
fn ok<'a>(summary: &'a Value, label: &str) -> &'a Value {
    let call = &summary["calls"][label];
    assert_eq!(call["error"], false, "{label}: {call}");
    call
}

/// The recorded call `label`, which must have failed, and its text.
fn failed<'a>(summary: &'a Value, label: &str) -> &'a str {
    let call = &summary["calls"][label];
    assert_eq!(call["error"], true, "{label}: {call}");
    call["text"].as_str().unwrap()
}

fn token<'a>(listed: &'a Value, name: &str) -> Option<&'a Value> {
    listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
}

fn every_tool_against(edition: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&[
        "--edition",
        edition,
        "--operator-token-file",
        token_file.to_str().unwrap(),
    ]);
    let enterprise = edition == "enterprise";
    let s = drive(edition, &sim.url, dir.path());

    assert_eq!(s["server"], "influxdb-mcp-server 1.4.1", "{s}");
    let tools = s["tools"].as_array().unwrap();
    for tool in TOKEN_TOOLS
        .iter()
        .chain(&DATABASE_TOOLS)
        .chain(&["query_sql"])
    {
        assert!(tools.contains(&json!(tool)), "{tool} is offered: {s}");
    }

    // Databases: two created, one given a 7-day retention period, the other deleted.
    for label in [
        "create_database",
        "create_scratch",
        "list_databases",
        "update_database",
        "delete_database",
        "list_databases_after",
    ] {
        ok(&s, label);
    }
    assert_eq!(s["databases"], json!(["_internal", "metrics", "scratch"]));
    assert_eq!(s["databases_after"], json!(["_internal", "metrics"]));

    // Admin tokens: the new secret authenticates; lists show it, filtered by name too.
    assert_eq!(ok(&s, "create_admin_token")["secret"], true);
    assert_eq!(s["admin_ping"], 200, "the new admin secret works");
    assert_eq!(
        s["admin_tokens"],
        json!([{"name": "_admin", "permissions": "*:*:*"}, {"name": "mcp-admin", "permissions": "*:*:*"}])
    );
    assert_eq!(
        s["admin_filtered"],
        json!([{"name": "mcp-admin", "permissions": "*:*:*"}])
    );

    // Resource tokens: Enterprise creates them; Core has no such endpoint.
    ok(&s, "list_resource_tokens");
    if enterprise {
        for label in ["create_reader", "create_writer"] {
            assert_eq!(ok(&s, label)["secret"], true, "{label}");
        }
        assert_eq!(s["reader_query"], 200, "the reader reads `metrics`");
        assert_eq!(s["reader_ping"], 403, "and nothing else");
        assert_eq!(
            s["resource_tokens"],
            json!([
                {"name": "mcp-writer", "permissions": "db:metrics:read,write"},
                {"name": "mcp-reader", "permissions": "db:metrics:read"}
            ]),
            "filtered by database and name, ordered by name descending"
        );
    } else {
        for label in ["create_reader", "create_writer"] {
            let text = failed(&s, label);
            assert!(
                text.ends_with("Failed to create resource token: Not found (Status: 404)"),
                "Core answers the endpoint 404 `Not found`: {text}"
            );
        }
        assert_eq!(s["resource_tokens"], json!([]));
    }

    // query_sql, and its follow-up on system.queries found the query's own record.
    ok(&s, "query_sql");
    let mut names = vec!["_admin", "mcp-admin"];
    if enterprise {
        names.extend(["mcp-reader", "mcp-writer"]);
    }
    assert_eq!(s["query_rows"], json!(names));
    assert_eq!(s["query_id_source"], "system.queries.id");
    assert_eq!(s["query_phase"], "success");
    let metadata = s["query_metadata"].as_array().unwrap();
    for key in [
        "plan_duration",
        "execute_duration",
        "end2end_duration",
        "max_memory",
    ] {
        assert!(metadata.contains(&json!(key)), "{key}: {s}");
    }

    // Deletes: the named admin token is gone at once; the operator token cannot go.
    ok(&s, "delete_token");
    assert_eq!(s["deleted_admin_ping"], 401, "a deleted token is refused");
    let text = failed(&s, "delete_operator");
    assert!(
        text.ends_with("cannot delete operator token (Status: 405)"),
        "{text}"
    );

    // Regeneration: the new operator secret works, the old one (the server's own) no longer does.
    assert_eq!(ok(&s, "regenerate_operator_token")["secret"], true);
    assert_eq!(s["new_operator_ping"], 200);
    assert_eq!(s["old_operator_ping"], 401);
    failed(&s, "after_regenerate");

    // The simulator's state, seen through tokenwarden's CLI: first with the old operator token...
    let cfg = write_config(dir.path(), &sim.url);
    let r = run(&cfg, &["check"], "");
    assert_eq!(r.code, 4, "the old operator token is refused: {}", r.stderr);
    assert!(
        r.stderr.contains("rejected tokenwarden's token (401)"),
        "{}",
        r.stderr
    );
    // ...then with the regenerated one.
    std::fs::rename(dir.path().join("operator.new.token"), &token_file).unwrap();
    assert_eq!(run(&cfg, &["check"], "").code, 0);

    let r = run(&cfg, &["tokens", "list", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_token("tokens list --json", &r.stdout);
    let listed: Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let expected: &[&str] = if enterprise {
        &["_admin", "mcp-reader", "mcp-writer"]
    } else {
        &["_admin"]
    };
    assert_eq!(names, expected, "mcp-admin was deleted");
    assert!(
        token(&listed, "_admin").unwrap()["updated_at"].is_string(),
        "regenerated: {listed}"
    );
    if enterprise {
        let reader = token(&listed, "mcp-reader").unwrap();
        assert_eq!(
            (&reader["kind"], &reader["permissions"]),
            (&json!("resource"), &json!(["db:metrics:read"]))
        );
        let created = chrono::DateTime::parse_from_rfc3339(reader["created_at"].as_str().unwrap());
        let expiry = chrono::DateTime::parse_from_rfc3339(reader["expiry"].as_str().unwrap());
        assert_eq!(
            (expiry.unwrap() - created.unwrap()).num_seconds(),
            3600,
            "expiry_secs: {reader}"
        );
        let writer = token(&listed, "mcp-writer").unwrap();
        assert_eq!(
            (&writer["permissions"], &writer["expiry"]),
            (&json!(["db:metrics:read,write"]), &Value::Null)
        );
    }

    let r = run(&cfg, &["databases", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dbs: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(dbs["databases"], json!(["metrics"]), "scratch was deleted");
    assert_eq!(
        dbs["details"][0]["retention_period_secs"],
        7 * 86_400,
        "update_database set the retention period: {dbs}"
    );
}

#[test]
fn the_official_mcp_server_drives_every_tool_against_a_core_simulator() {
    every_tool_against("core");
}

#[test]
fn the_official_mcp_server_drives_every_tool_against_an_enterprise_simulator() {
    every_tool_against("enterprise");
}

//! The built binary driven over stdio and over HTTP by a real MCP client that nobody here wrote:
//! the official Python `mcp` package (2.3.0), in both protocol eras.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::cli::{BIN, simulate, write_config};
use crate::peers::python;
use crate::support::assert_no_token;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/mcp_client.py");

fn run_client(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    assert_no_token("the python client's output", &stdout);
    assert_no_token("the MCP server's stderr (stdio)", &stderr);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check(summary: &Value, transport: &str, mode: &str) {
    let ctx = format!("{transport}/{mode}: {summary}");
    let expected_protocol = if mode == "legacy" {
        "2025-11-25"
    } else {
        "2026-07-28"
    };
    assert_eq!(summary["protocol"], expected_protocol, "{ctx}");
    let tools: Vec<&str> = summary["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"delete_token") && tools.contains(&"create_admin_token"),
        "{ctx}"
    );
    assert_eq!(summary["delete_destructive"], true, "{ctx}");
    assert!(
        summary["listed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "_admin"),
        "{ctx}"
    );
    assert_eq!(summary["create_error"], false, "{ctx}");
    assert_eq!(
        summary["handoff"], "url_elicitation",
        "the client showed the link; the model never saw it: {ctx}"
    );
    assert_eq!(
        summary["ping_with_secret"], 200,
        "the revealed secret authenticates: {ctx}"
    );
    assert_eq!(summary["second_reveal"], 410, "the link works once: {ctx}");
    assert_eq!(summary["delete_status"], "done", "{ctx}");
    assert_eq!(
        summary["forms_answered"], 1,
        "the user typed the name: {ctx}"
    );
    assert_eq!(summary["admin_refused"], true, "{ctx}");
}

#[test]
fn the_python_mcp_client_drives_the_binary_over_stdio_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[mcp.http]\nlisten = \"127.0.0.1:0\"\n\n[[mcp.http.clients]]\nname = \"python\"\ntoken_file = \"mcp.token\"\n");
    std::fs::write(&cfg, text).unwrap();
    let bearer = "twmcp_e2e_bearer_0123456789";
    std::fs::write(dir.path().join("mcp.token"), bearer).unwrap();

    for mode in ["legacy", "auto"] {
        let summary = run_client(&["stdio", mode, BIN, cfg.to_str().unwrap(), &sim.url]);
        check(&summary, "stdio", mode);
    }

    let mut server = Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "mcp",
            "--http",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    for mode in ["legacy", "auto"] {
        let summary = run_client(&["http", mode, &url, bearer, &sim.url]);
        check(&summary, "http", mode);
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_no_token("the MCP server's log (http)", &logs.lock().unwrap());
}

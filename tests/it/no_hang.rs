//! A duration whose date would overflow (`300000y`) answers as a tool error from the real
//! binary, over stdio and over HTTP, and the server goes on answering: no panic, no hung client.

use std::time::Duration;

use serde_json::{Value, json};

use crate::identity::fixture;
use crate::support::rpc_message as message;

/// The text of a tool result, and whether it is an error.
fn tool_text(answer: &Value) -> (bool, String) {
    let result = &answer["result"];
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    (result["isError"] == true, text.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overflowing_duration_is_an_error_over_stdio() {
    let f = fixture("");
    let mut mcp = f.tw.spawn(&["mcp"]);
    mcp.mcp_initialize().await;
    let answer = mcp
        .mcp_call(1, "list_tokens", json!({"expiring_within": "300000y"}))
        .await;
    let (is_error, text) = tool_text(&answer);
    assert!(is_error, "{answer}");
    assert!(text.contains("longer than 100 years"), "{answer}");
    let answer = mcp.mcp_call(2, "list_tokens", json!({})).await;
    assert!(!tool_text(&answer).0, "the server still answers: {answer}");
    mcp.close_stdin();
    let status = mcp.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", mcp.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overflowing_duration_is_an_error_over_http() {
    let f = fixture("\n[mcp.http]\nallow_no_auth = true\n");
    let mut server = f.tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let url = server.listening_url("listening on ").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let post = |session: Option<&str>, body: Value| {
        let mut rb = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(s) = session {
            rb = rb
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        rb.send()
    };
    let r = post(
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let r = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let call = |id: u64, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "list_tokens", "arguments": args}})
    };
    // The client's own timeout above ends a hang as a failure, never as a pass.
    let r = post(
        Some(&session),
        call(1, json!({"expiring_within": "300000y"})),
    )
    .await
    .expect("an answer, not a hang");
    let answer = message(r).await;
    let (is_error, text) = tool_text(&answer);
    assert!(is_error, "{answer}");
    assert!(text.contains("longer than 100 years"), "{answer}");
    let r = post(Some(&session), call(2, json!({}))).await.unwrap();
    let answer = message(r).await;
    assert!(!tool_text(&answer).0, "the server still answers: {answer}");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).await.is_some());
}

//! MCP HTTP sessions (2025-11-25) outlive the process that opened them: another `tokenwarden mcp
//! --http` on the same store (a replica, or the server after a crash) takes a session over, for
//! the client that opened it and nobody else, and a client's DELETE ends it everywhere.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backends::{Backend, on_both_stores};
use crate::identity::fixture;
use crate::procs::Proc;
pub use crate::support::rpc_message as message;

const ALICE: &str = "twmcp_alice_takeover";
const BOB: &str = "twmcp_bob_takeover";

/// `method` on `url` as the client with bearer `token`, in `session` when given.
pub async fn send(
    url: &str,
    method: Method,
    token: &str,
    session: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut rb = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .request(method, url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        rb = rb
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    rb.send().await.unwrap()
}

/// A `tools/call` of `list_tokens` with JSON-RPC id `id`.
pub fn list_tokens(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "list_tokens", "arguments": {}}})
}

async fn start(f: &crate::identity::Fixture) -> (Proc, String) {
    let mut server = f.tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let url = server.listening_url("listening on ").await;
    (server, url)
}

async fn a_session_moves_between_processes_for_its_own_client_only(backend: Backend) {
    let mut f = fixture(
        "\n[[mcp.http.clients]]\nname = \"alice\"\ntoken_file = \"alice.token\"\n\
         \n[[mcp.http.clients]]\nname = \"bob\"\ntoken_file = \"bob.token\"\n",
    );
    f.tw = backend.configure(f.tw.clone());
    for (file, token) in [("alice.token", ALICE), ("bob.token", BOB)] {
        let path = f.dir.path().join(file);
        std::fs::write(&path, token).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (mut first, a) = start(&f).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "takeover-test", "version": "0"}}});
    let r = send(&a, Method::POST, ALICE, None, Some(init)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = send(&a, Method::POST, ALICE, Some(&session), Some(initialized)).await;
    assert!(r.status().is_success(), "{}", r.status());

    // A second process on the same store, while the first still runs.
    let (mut second, b) = start(&f).await;
    let unknown = send(
        &b,
        Method::POST,
        ALICE,
        Some("no-such-session"),
        Some(list_tokens(1)),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown = unknown.text().await.unwrap();
    // Bob asks first, so a takeover on his behalf would make the session his.
    for method in [Method::POST, Method::GET, Method::DELETE] {
        let body = (method == Method::POST).then(|| list_tokens(2));
        let r = send(&b, method.clone(), BOB, Some(&session), body).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "bob's {method}");
        assert_eq!(
            r.text().await.unwrap(),
            unknown,
            "bob's {method} learns nothing"
        );
    }
    let r = send(
        &b,
        Method::POST,
        ALICE,
        Some(&session),
        Some(list_tokens(3)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "taken over for alice");
    let answer = message(r).await;
    assert_eq!(answer["id"], 3, "{answer}");
    assert!(
        answer["result"]["structuredContent"]["tokens"].is_array(),
        "{answer}"
    );
    let r = send(
        &a,
        Method::POST,
        ALICE,
        Some(&session),
        Some(list_tokens(4)),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "and still works where it was opened"
    );
    let _ = r.text().await;

    // The process that opened it dies; a third one starts after it.
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(30)).await;
    let (mut third, c) = start(&f).await;
    let r = send(&c, Method::POST, BOB, Some(&session), Some(list_tokens(5))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "still not bob's");
    let r = send(
        &c,
        Method::POST,
        ALICE,
        Some(&session),
        Some(list_tokens(6)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "alice's after the crash");
    assert_eq!(message(r).await["id"], 6);

    // Alice ends it on the third; no process can take it over again.
    let r = send(&c, Method::DELETE, ALICE, Some(&session), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(
        &c,
        Method::POST,
        ALICE,
        Some(&session),
        Some(list_tokens(7)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "ended");
    third.signal(libc::SIGKILL);
    third.wait_exit(Duration::from_secs(30)).await;
    let (_fourth, d) = start(&f).await;
    let r = send(
        &d,
        Method::POST,
        ALICE,
        Some(&session),
        Some(list_tokens(8)),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "ended for every process that starts later"
    );
    second.signal(libc::SIGKILL);
    second.wait_exit(Duration::from_secs(30)).await;
}

on_both_stores!(a_session_moves_between_processes_for_its_own_client_only);

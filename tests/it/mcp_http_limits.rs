//! The HTTP listeners' limits, as a client meets them: a request whose headers stall and a
//! kept-alive connection left idle are closed, a call waiting on the user is not, and past the
//! connection and session caps come 503s that say why; a handler that panics answers 500.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::mcp_http::{TOKEN, alice, delete, initialize, post, settings, start};
use crate::support::closed_by_server;

const SHORT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_request_whose_headers_stall_is_disconnected() {
    let mut http = settings(alice(), false);
    http.limits.header_read_timeout = SHORT;
    let (addr, _stop, _sim) = start(http).await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(stalled).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

/// The next JSON-RPC message on an SSE answer, waiting for it at most 30 s.
async fn next_message(stream: &mut reqwest::Response, buf: &mut String) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            if let Ok(message) = serde_json::from_str::<Value>(&data) {
                return message;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
            .await
            .expect("no message within 30 s")
            .expect("the stream broke")
            .expect("the stream ended");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// A session of a client that answers forms, initialized; returns its id.
async fn form_session(addr: SocketAddr) -> String {
    let auth = format!("Bearer {TOKEN}");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}},
        "clientInfo": {"name": "t", "version": "0"}}});
    let r = post(addr, &[("authorization", &auth)], init.to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await.unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post(
        addr,
        &session_headers(&auth, &session),
        initialized.to_string(),
    )
    .await;
    assert!(r.status().is_success());
    session
}

fn session_headers<'a>(auth: &'a str, session: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("authorization", auth),
        ("mcp-session-id", session),
        ("mcp-protocol-version", "2025-11-25"),
    ]
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_call_waiting_on_the_user_is_not() {
    let mut http = settings(alice(), false);
    http.limits.header_read_timeout = SHORT;
    http.limits.idle_timeout = SHORT;
    let (addr, _stop, sim) = start(http).await;
    sim.control.create_admin("old-bot", None);
    let session = form_session(addr).await;
    let auth = format!("Bearer {TOKEN}");
    let headers = session_headers(&auth, &session);

    // The delete's answer streams, and waits on the user's confirmation.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "delete_token", "arguments": {"name": "old-bot"}}});
    let mut waiting = post(addr, &headers, call.to_string()).await;
    assert_eq!(waiting.status(), StatusCode::OK);
    let mut buf = String::new();
    let question = next_message(&mut waiting, &mut buf).await;
    assert_eq!(question["method"], "elicitation/create", "{question}");

    // Meanwhile a connection asks once, is answered, and then says nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /reveal/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(idle).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 404"),
        "answered before closed"
    );

    // The user answers only now, longer than the idle timeout after the call was made.
    let reply = json!({"jsonrpc": "2.0", "id": question["id"],
        "result": {"action": "accept", "content": {"token_name": "old-bot"}}});
    let r = post(addr, &headers, reply.to_string()).await;
    assert!(r.status().is_success(), "{}", r.status());
    let result = next_message(&mut waiting, &mut buf).await;
    assert_eq!(result["id"], 2, "{result}");
    assert_eq!(result["result"]["isError"], false, "{result}");
    assert!(
        !sim.control.token_names().contains(&"old-bot".to_owned()),
        "the confirmed delete ran"
    );
}

#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let mut http = settings(alice(), false);
    http.limits.max_connections = 2;
    let (addr, _stop, _sim) = start(http).await;
    let _held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let auth = format!("Bearer {TOKEN}");
    let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    let text = r.text().await.unwrap();
    assert!(text.contains("too many open connections"), "{text}");
}

#[tokio::test]
async fn sessions_past_the_cap_get_503_saying_what_to_do() {
    let mut http = settings(alice(), false);
    http.max_sessions = 1;
    let (addr, _stop, _sim) = start(http).await;
    let auth = format!("Bearer {TOKEN}");
    let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await.unwrap();

    let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(
        v["error"]["message"],
        "too many MCP sessions (limit 1); close one or raise [mcp.http] max_sessions"
    );

    assert_eq!(delete(addr, &first).await.status(), StatusCode::OK);
    let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a closed session frees its place"
    );
}

#[tokio::test]
async fn a_handler_that_panics_answers_500_and_the_connection_serves_on() {
    let app = axum::Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("a bug in a handler");
                }
                "unreachable"
            }),
        )
        .route("/fine", axum::routing::get(|| async { "fine" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = tokenwarden::http_serve::HttpLimits::default();
    tokio::spawn(tokenwarden::http_serve::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    // One kept-alive connection for both requests: the panic did not cost the client it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = r.text().await.unwrap();
    assert!(text.contains("tokenwarden hit a bug"), "{text}");
    let r = client
        .get(format!("http://{addr}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "fine");
}

//! The MCP HTTP transport: bearer auth, Host and Origin checks, loopback-only no-auth.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tokenwarden::mcp::{HttpClient, HttpSettings, McpCore, McpError, McpSettings, serve_http};
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken};

use crate::support::{instance, service, sim};

const TOKEN: &str = "twmcp_test_secret";

fn settings(clients: Vec<HttpClient>, allow_no_auth: bool) -> HttpSettings {
    HttpSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        clients,
        allow_no_auth,
        allowed_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        allowed_origins: vec!["http://localhost:*".into()],
        max_body_bytes: 64 * 1024,
        public_url: None,
    }
}

/// Serves MCP over HTTP on a free port; the server stops when the sender drops.
async fn start(http: HttpSettings) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, impl Drop) {
    let (s, op) = sim(Edition::Core).await;
    let svc = service(
        &s,
        &op,
        instance("local", None, &[], false),
        Store::open_in_memory().unwrap(),
    );
    let core = McpCore::new(Arc::new(svc), McpSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_http(core, http, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx, s)
}

fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
}

async fn post(addr: SocketAddr, headers: &[(&str, &str)], body: String) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.body(body).send().await.unwrap()
}

#[tokio::test]
async fn bearer_tokens_hosts_and_origins() {
    let clients = vec![HttpClient {
        name: "alice".into(),
        token: RawToken::new(TOKEN.into()),
    }];
    let (addr, _stop, _sim) = start(settings(clients, false)).await;
    let auth = format!("Bearer {TOKEN}");

    let r = post(addr, &[], initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"tokenwarden\""
    );
    assert!(r.text().await.unwrap().contains("bearer token"));
    let r = post(
        addr,
        &[("authorization", "Bearer twmcp_wrong")],
        initialize().to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(addr, &[("authorization", TOKEN)], initialize().to_string()).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the scheme is required"
    );

    let r = post(
        addr,
        &[("authorization", &auth), ("host", "evil.example.com")],
        initialize().to_string(),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "DNS rebinding: unknown Host"
    );
    let r = post(
        addr,
        &[
            ("authorization", &auth),
            ("origin", "http://evil.example.com"),
        ],
        initialize().to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "unknown Origin");
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/reveal/abc"))
        .header("host", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "reveal links check Host too"
    );

    let r = post(
        addr,
        &[
            ("authorization", &auth),
            ("origin", "http://localhost:3000"),
        ],
        initialize().to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("mcp-session-id"));

    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(100 * 1024));
    let r = post(addr, &[("authorization", &auth)], big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn no_auth_only_on_loopback_and_only_when_allowed() {
    assert!(matches!(
        settings(vec![], false).check(),
        Err(McpError::NoAuth)
    ));
    let mut open = settings(vec![], true);
    open.listen = "0.0.0.0:8765".parse().unwrap();
    assert!(matches!(open.check(), Err(McpError::NoAuthNotLoopback(_))));

    let (addr, _stop, _sim) = start(settings(vec![], true)).await;
    let r = post(addr, &[], initialize().to_string()).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "loopback without auth when allowed"
    );
}

//! The MCP HTTP transport: bearer auth, Host and Origin checks, loopback-only no-auth.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tokenwarden::http_serve::HttpLimits;
use tokenwarden::mcp::{HttpClient, HttpSettings, McpCore, McpError, McpSettings, serve_http};
use tokenwarden::sim::RunningSim;
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken};

use crate::support::{instance, service, sim};

pub const TOKEN: &str = "twmcp_test_secret";

pub fn settings(clients: Vec<HttpClient>, allow_no_auth: bool) -> HttpSettings {
    HttpSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        clients,
        allow_no_auth,
        allowed_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        allowed_origins: vec!["http://localhost:*".into()],
        max_body_bytes: 64 * 1024,
        public_url: None,
        limits: HttpLimits::default(),
        max_sessions: 256,
    }
}

/// Serves MCP over HTTP on a free port; the server stops when the sender drops.
pub async fn start(
    http: HttpSettings,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, RunningSim) {
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

pub fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
}

pub async fn post(addr: SocketAddr, headers: &[(&str, &str)], body: String) -> reqwest::Response {
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

/// Posts `body` as `content_type` with the test token.
async fn post_as(addr: SocketAddr, content_type: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

pub fn alice() -> Vec<HttpClient> {
    vec![HttpClient {
        name: "alice".into(),
        token: RawToken::new(TOKEN.into()),
    }]
}

/// The JSON-RPC error code and id of a 400 answer, checking it is JSON.
async fn jsonrpc_error(r: reqwest::Response) -> (i64, serde_json::Value) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    (v["error"]["code"].as_i64().unwrap(), v["id"].clone())
}

#[tokio::test]
async fn a_body_that_is_not_one_jsonrpc_message_gets_400_and_a_jsonrpc_error() {
    let (addr, _stop, _sim) = start(settings(alice(), false)).await;
    let json = "application/json";
    for (body, code) in [
        ("not json", -32700),
        ("{\"jsonrpc\": \"2.0\", \"id\": 1,", -32700),
        ("", -32700),
        (r#"{"hello": "world"}"#, -32600),
        ("42", -32600),
        ("[]", -32600),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
    ] {
        let r = post_as(addr, json, body).await;
        assert_eq!(jsonrpc_error(r).await, (code, json!(null)), "{body:?}");
    }
    let r = post_as(addr, "application/json; charset=utf-8", "nope").await;
    assert_eq!(jsonrpc_error(r).await.0, -32700, "parameters do not matter");

    let r = post_as(addr, "text/plain", "not json").await;
    assert_eq!(
        r.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a content type that is not JSON stays 415"
    );
    let r = post_as(addr, json, &initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::OK, "a good message is served");
}

#[tokio::test]
async fn a_request_whose_params_do_not_fit_gets_invalid_params_with_its_id() {
    let (addr, _stop, _sim) = start(settings(alice(), false)).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": 3});
    let r = post_as(addr, "application/json", &body.to_string()).await;
    assert_eq!(jsonrpc_error(r).await, (-32602, json!(9)));
}

#[tokio::test]
async fn unauthenticated_requests_get_401_before_their_body_is_read() {
    let (addr, _stop, _sim) = start(settings(alice(), false)).await;
    for body in ["not json", r#"{"hello": "world"}"#, ""] {
        let r = post(addr, &[], body.to_owned()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{body:?}");
    }
    let r = reqwest::Client::new()
        .delete(format!("http://{addr}/mcp"))
        .header("mcp-session-id", "no-such-session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

pub async fn delete(addr: SocketAddr, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .delete(format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap()
}

/// Opens a 2025-11-25 session as alice (initialize, then initialized) and returns its id.
async fn open_session(addr: SocketAddr) -> String {
    let auth = format!("Bearer {TOKEN}");
    let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await.unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let r = post(addr, &headers, initialized.to_string()).await;
    assert!(r.status().is_success(), "{}", r.status());
    session
}

#[tokio::test]
async fn delete_ends_a_session_with_200_and_then_it_is_gone() {
    let (addr, _stop, _sim) = start(settings(alice(), false)).await;
    let auth = format!("Bearer {TOKEN}");
    let session = open_session(addr).await;
    let in_session = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
    let r = post(addr, &in_session, ping.clone()).await;
    assert_eq!(r.status(), StatusCode::OK, "the session works");

    let r = delete(addr, &session).await;
    assert_eq!(r.status(), StatusCode::OK, "the session ended");
    let r = post(addr, &in_session, ping).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the session is gone");
    let r = delete(addr, &session).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "ended once");
    let r = delete(addr, "no-such-session").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "unknown session");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (addr, _stop, _sim) = start(settings(alice(), false)).await;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {TOKEN}");
        let r = post(addr, &[("authorization", &auth)], initialize().to_string()).await;
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    let r = post(
        addr,
        &[("authorization", &format!("Basic {TOKEN}"))],
        initialize().to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another scheme");
}

const BOB_TOKEN: &str = "twmcp_bobs_secret";

/// `method` on `/mcp` in `session`, with `token`.
async fn in_session(
    addr: SocketAddr,
    method: reqwest::Method,
    token: &str,
    session: &str,
) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .request(method.clone(), format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "application/json, text/event-stream");
    if method == reqwest::Method::POST {
        let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        rb = rb
            .header("content-type", "application/json")
            .body(ping.to_string());
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn one_clients_session_does_not_exist_for_another_client() {
    let mut clients = alice();
    clients.push(HttpClient {
        name: "bob".into(),
        token: RawToken::new(BOB_TOKEN.into()),
    });
    let (addr, _stop, _sim) = start(settings(clients, false)).await;
    let session = open_session(addr).await;

    let unknown = in_session(addr, reqwest::Method::POST, TOKEN, "no-such-session").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let unknown = unknown.text().await.unwrap();
    use reqwest::Method;
    for method in [Method::POST, Method::GET, Method::DELETE] {
        let r = in_session(addr, method.clone(), BOB_TOKEN, &session).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "bob's {method}");
        assert_eq!(
            r.text().await.unwrap(),
            unknown,
            "bob's {method} learns nothing more than for an unknown session"
        );
    }

    let r = in_session(addr, Method::POST, TOKEN, &session).await;
    assert_eq!(r.status(), StatusCode::OK, "alice still uses it");
    let r = in_session(addr, Method::GET, TOKEN, &session).await;
    assert_eq!(r.status(), StatusCode::OK, "alice can watch it");
    drop(r);
    let r = in_session(addr, Method::DELETE, TOKEN, &session).await;
    assert_eq!(r.status(), StatusCode::OK, "alice ends it");
}

/// The JSON-RPC message in an answer to a POST: plain JSON, or the data of its server-sent event.
async fn message_of(r: reqwest::Response) -> serde_json::Value {
    let text = r.text().await.unwrap();
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data: ").filter(|d| d.contains("jsonrpc")))
        .unwrap_or(&text);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A confirmation code works only in the session that asked for it. A 2026-07-28 request is
/// served without a session, so an `Mcp-Session-Id` header it carries (even the right one, by
/// the same client) does not make it that session.
#[tokio::test]
async fn a_stateless_request_naming_a_session_is_not_in_it() {
    let (addr, _stop, sim) = start(settings(alice(), false)).await;
    sim.control.create_admin("victim", None).unwrap();
    let auth = format!("Bearer {TOKEN}");
    let session = open_session(addr).await;
    let in_session = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let call = |id: u64, args: serde_json::Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "delete_token", "arguments": args}})
        .to_string()
    };
    let asked = message_of(post(addr, &in_session, call(2, json!({"name": "victim"}))).await).await;
    let code = asked["result"]["structuredContent"]["confirmation_code"]
        .as_str()
        .unwrap_or_else(|| panic!("{asked}"))
        .to_owned();

    let stateless = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "delete_token", "arguments": {"name": "victim", "confirmation_code": code},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}});
    let spoofed = [
        ("authorization", auth.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "delete_token"),
    ];
    let refused = message_of(post(addr, &spoofed, stateless.to_string()).await).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("only the session that requested"),
        "{refused}"
    );
    assert!(
        sim.control.requests().iter().all(|r| r.method != "DELETE"),
        "nothing was deleted"
    );

    let confirmed = message_of(
        post(
            addr,
            &in_session,
            call(4, json!({"name": "victim", "confirmation_code": code})),
        )
        .await,
    )
    .await;
    assert_eq!(
        confirmed["result"]["structuredContent"]["status"], "done",
        "the code still works in its own session: {confirmed}"
    );
}

//! A tool that panics, served for real: over a pipe (what stdio is) and over streamable HTTP,
//! the client gets a tool error and the session keeps answering. No such tool ships; it is added
//! to the router here only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, Tool};
use serde_json::{Value, json};

use super::*;
use crate::service::Clock;
use crate::store::Store;

/// Generous: only a server that never answers takes this long.
const HANG: Duration = Duration::from_secs(30);
const SECRET: &str = "apiv3_PanicTextMustNeverReachTheClient";

fn boom() -> Result<CallToolResponse, ErrorData> {
    panic!("a tool failed while holding {SECRET}")
}

fn panicking(
    _: ToolCallContext<'_, McpServer>,
) -> BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
    Box::pin(async { boom() })
}

/// The real server for a core with no instances, plus the tool `panics`.
fn server() -> McpServer {
    let service = TokenService::new(
        vec![],
        None,
        Store::open_in_memory().unwrap(),
        Clock::System,
        Duration::from_secs(300),
    );
    let mut server = McpServer::new(McpCore::new(Arc::new(service), McpSettings::default()));
    let schema = json!({"type": "object"});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    let tool = Tool::new("panics", "always panics", Arc::new(schema));
    server
        .tool_router
        .add_route(ToolRoute::new_dyn(tool, panicking));
    server
}

fn text_of(result: &CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap().to_string()
}

#[tokio::test]
async fn a_panicking_tool_answers_a_tool_error_over_a_pipe_and_the_session_goes_on() {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server().serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(client_io).await.unwrap();
    let answer = tokio::time::timeout(HANG, client.call_tool(CallToolRequestParams::new("panics")))
        .await
        .expect("an answer, not a request left hanging")
        .unwrap();
    assert_eq!(answer.is_error, Some(true));
    let text = text_of(&answer);
    assert!(text.contains("internal error"), "{text}");
    assert!(
        !text.contains("apiv3_") && !text.contains("holding"),
        "{text}"
    );
    let again = tokio::time::timeout(HANG, client.call_tool(CallToolRequestParams::new("panics")))
        .await
        .expect("the session still answers")
        .unwrap();
    assert_eq!(again.is_error, Some(true));
}

/// The JSON-RPC message answering `id` in a streamable HTTP reply (plain JSON or SSE).
fn rpc_reply(body: &str, id: u64) -> Value {
    let messages: Vec<Value> = match serde_json::from_str::<Value>(body) {
        Ok(v) => vec![v],
        Err(_) => body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect(),
    };
    messages
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no reply to {id} in {body}"))
}

#[tokio::test]
async fn a_panicking_tool_answers_a_tool_error_over_http_and_the_session_goes_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let settings = HttpSettings {
        listen: addr,
        clients: vec![],
        allow_no_auth: true,
        allowed_hosts: vec!["127.0.0.1".into()],
        allowed_origins: vec![],
        max_body_bytes: 64 * 1024,
        public_url: None,
        limits: crate::http_serve::HttpLimits::default(),
        max_sessions: 256,
    };
    let ct = tokio_util::sync::CancellationToken::new();
    let app = http::router_with(server(), &settings, ct.child_token()).unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::new();
    let post = |session: Option<&str>, body: Value| {
        let mut rb = http
            .post(format!("http://{addr}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(id) = session {
            rb = rb.header("mcp-session-id", id);
        }
        rb.body(body.to_string()).send()
    };
    let r = post(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "panic-test", "version": "0"}}}),
    )
    .await
    .unwrap();
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    rpc_reply(&r.text().await.unwrap(), 1);
    post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    for id in [2, 3] {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "panics", "arguments": {}}});
        let body = tokio::time::timeout(HANG, async {
            post(Some(&session), call)
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await
        .expect("an answer, not a request left hanging");
        let answer = rpc_reply(&body, id);
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        let text = answer["result"]["content"].to_string();
        assert!(text.contains("internal error"), "{text}");
        assert!(!text.contains("apiv3_"), "{text}");
    }
    ct.cancel();
}

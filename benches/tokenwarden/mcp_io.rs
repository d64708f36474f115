//! Speaking MCP to a tokenwarden process: JSON-RPC lines on stdio, streamable HTTP.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use crate::procs::mcp_command;

pub const MCP_TOKEN: &str = "twmcp_bench_token";

/// An MCP server on stdio, spoken to line by line.
pub struct StdioServer {
    pub child: Child,
    tx: Option<ChildStdin>,
    rx: BufReader<ChildStdout>,
    next: u64,
}

impl StdioServer {
    pub fn spawn(cfg: &Path) -> Self {
        Self::spawn_command(mcp_command(cfg))
    }

    /// Any MCP server on stdio (its stderr is discarded).
    pub fn spawn_command(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let tx = child.stdin.take();
        let rx = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            tx,
            rx,
            next: 1,
        }
    }

    /// Writes one message in a single `write`, as an MCP client does. (`writeln!` on the bare
    /// pipe would issue a write per JSON token, waking the server dozens of times a message.)
    pub fn send(&mut self, msg: &Value) {
        let mut line = serde_json::to_vec(msg).unwrap();
        line.push(b'\n');
        self.tx.as_mut().unwrap().write_all(&line).unwrap();
    }

    /// Closes stdin, as a client that is done does.
    pub fn close_stdin(&mut self) {
        self.tx = None;
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.rx.read_line(&mut line).unwrap() > 0,
                "the MCP server closed stdout"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{v}");
                return v;
            }
        }
    }

    pub fn initialize(&mut self) {
        let params = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}});
        self.request("initialize", params);
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP session over streamable HTTP.
#[derive(Clone)]
pub struct HttpSession {
    pub http: reqwest::Client,
    pub url: String,
    pub session: String,
}

pub async fn post_mcp(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> (Option<String>, Option<Value>) {
    let mut rb = http
        .post(url)
        .header("authorization", format!("Bearer {MCP_TOKEN}"))
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    read_reply(rb.send().await.unwrap()).await
}

/// One `tools/call list_tokens` as a 2026-07-28 client makes it: no session, no handshake; the
/// protocol version and capabilities travel with the request.
pub async fn stateless_list(http: &reqwest::Client, url: &str, id: u64) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "list_tokens", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}}}});
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {MCP_TOKEN}"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_tokens")
        .json(&body)
        .send()
        .await
        .unwrap();
    match read_reply(r).await.1 {
        Some(v) if v["result"]["isError"] != true && v.get("error").is_none() => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// The session id and the JSON-RPC answer of one MCP HTTP response.
async fn read_reply(r: reqwest::Response) -> (Option<String>, Option<Value>) {
    let status = r.status();
    if !status.is_success() {
        panic!("{status}: {}", r.text().await.unwrap_or_default());
    }
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.unwrap();
    // An SSE stream, or (stateless with JSON responses) one JSON message.
    let msg = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .or_else(|| serde_json::from_str::<Value>(&text).ok());
    (session, msg)
}

impl HttpSession {
    pub async fn open(http: reqwest::Client, url: String) -> Self {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
        let (session, _) = post_mcp(&http, &url, None, &init).await;
        let session = session.expect("a session id");
        post_mcp(
            &http,
            &url,
            Some(&session),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        Self { http, url, session }
    }

    pub async fn ping(&self, id: u64) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
        let reply = post_mcp(&self.http, &self.url, Some(&self.session), &body).await;
        assert!(reply.1.is_some_and(|v| v.get("result").is_some()));
    }

    pub async fn call(&self, id: u64) -> Result<(), String> {
        self.call_tool(id, "list_tokens", json!({})).await
    }

    /// A tool's structured result.
    pub async fn call_tool_value(
        &self,
        id: u64,
        name: &str,
        arguments: Value,
    ) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        match post_mcp(&self.http, &self.url, Some(&self.session), &body)
            .await
            .1
        {
            Some(v) if v["result"]["isError"] != true && v.get("error").is_none() => {
                Ok(v["result"]["structuredContent"].clone())
            }
            other => Err(format!("{other:?}")),
        }
    }

    pub async fn call_tool(&self, id: u64, name: &str, arguments: Value) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        match post_mcp(&self.http, &self.url, Some(&self.session), &body)
            .await
            .1
        {
            Some(v) if v["result"]["isError"] != true && v.get("error").is_none() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

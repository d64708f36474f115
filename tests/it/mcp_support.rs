//! An in-process MCP client for tests: connects over `tokio::io::duplex` in either protocol
//! era, answers elicitations as scripted, and records what it was asked.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, ElicitationCapability, FormElicitationCapability,
    Implementation, ProtocolVersion, UrlElicitationCapability,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, RequestContext, RoleClient, RunningService,
};
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{Value, json};
use tokenwarden::mcp::{McpCore, McpServer};

use crate::support::assert_no_token;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25: server-to-client elicitation requests.
    Legacy,
    /// 2026-07-28: multi-round-trip `InputRequiredResult`.
    Modern,
}

pub const ERAS: [Era; 2] = [Era::Legacy, Era::Modern];

/// How the scripted user answers a form.
#[derive(Debug, Clone)]
pub enum Form {
    Accept(String),
    Decline,
    Cancel,
}

/// A client; `form`/`url` set mean the capability is declared.
#[derive(Clone, Default)]
pub struct TestClient {
    pub form: Option<Form>,
    pub url: Option<ElicitationAction>,
    pub asked: Arc<Mutex<Vec<ElicitRequestParams>>>,
    /// Runs while the user looks at the question, before the answer goes back.
    pub meanwhile: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl TestClient {
    pub fn plain() -> Self {
        Self::default()
    }

    pub fn form(answer: Form) -> Self {
        Self {
            form: Some(answer),
            ..Self::default()
        }
    }

    pub fn url(action: ElicitationAction) -> Self {
        Self {
            url: Some(action),
            ..Self::default()
        }
    }

    pub fn asked(&self) -> Vec<ElicitRequestParams> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        if self.form.is_some() || self.url.is_some() {
            let mut e = ElicitationCapability::new();
            if self.form.is_some() {
                e = e.with_form(FormElicitationCapability::default());
            }
            if self.url.is_some() {
                e = e.with_url(UrlElicitationCapability::new());
            }
            caps.elicitation = Some(e);
        }
        ClientConfig::new(caps, Implementation::new("tokenwarden-tests", "0.0.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked.lock().unwrap().push(request.clone());
        if let Some(meanwhile) = &self.meanwhile {
            meanwhile();
        }
        Ok(match (&request, &self.form, &self.url) {
            (ElicitRequestParams::FormElicitationParams { .. }, Some(Form::Accept(text)), _) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(
                    json!({ "token_name": text, "instance_name": text, "confirmation": text }),
                )
            }
            (ElicitRequestParams::FormElicitationParams { .. }, Some(Form::Decline), _) => {
                ElicitResult::new(ElicitationAction::Decline)
            }
            (ElicitRequestParams::UrlElicitationParams { .. }, _, Some(action)) => {
                ElicitResult::new(action.clone())
            }
            _ => ElicitResult::new(ElicitationAction::Cancel),
        })
    }
}

pub type Client = RunningService<RoleClient, TestClient>;

/// Starts an MCP server session for `core` and connects `client` to it in `era`.
pub async fn connect(core: &McpCore, client: TestClient, era: Era) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = McpServer::new(core.clone());
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    match era {
        Era::Legacy => client.serve(client_io).await.unwrap(),
        Era::Modern => client
            .serve_with_lifecycle(
                client_io,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap(),
    }
}

/// Calls a tool and checks that nothing in the answer looks like a raw token.
pub async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap();
    assert_no_token(
        &format!("the result of {tool}"),
        &serde_json::to_string(&result).unwrap(),
    );
    result
}

/// The structured content of a successful call.
pub fn ok(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "tool error: {r:?}");
    r.structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content: {r:?}"))
}

/// The text of a tool error.
pub fn err(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected a tool error: {r:?}");
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

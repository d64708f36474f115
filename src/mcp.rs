//! The MCP server: token tools for AI assistants over stdio or streamable HTTP. Deletes and
//! regenerations pass a confirmation gate (elicitation in both protocol eras, else a one-time
//! code, or a human approval elsewhere); new secrets go to the user through a one-time reveal
//! link and never, by default, into a tool result or the model's context.

pub mod args;
mod create;
mod delivery;
mod gated;
mod http;
mod http_fixes;
#[cfg(test)]
mod panic_tests;
mod reply;
mod reveal;
mod schema;
mod sessions;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool_handler};

pub use http::{HttpSettings, serve_http};
pub use reveal::RevealHub;

use crate::actor::{Actor, OsAccount};
use crate::http_serve::HttpLimits;
use crate::service::TokenService;
use crate::tokens::RawToken;

/// How new secrets reach the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretMode {
    /// A one-time reveal link (and URL-mode elicitation where the client supports it).
    RevealLink,
    /// A 0600 file in this folder.
    File(PathBuf),
    /// In the tool result: the model provider sees the secret. An explicit opt-in.
    Inline,
    /// Behind the private reveal page (`/reveal/private`), shown only to the person the MCP
    /// client belongs to (`[[people]]`) once they type their passphrase. Neither a link nor a
    /// path is ever in a result; a client that belongs to nobody with a passphrase is refused
    /// before anything is created.
    Private,
}

/// Deletes need a person's approval elsewhere: in Discord, and from the CLI only when
/// `approve_from` says so (an assistant with a shell runs as the CLI's account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub required: u8,
    pub timeout: Duration,
    pub approve_from: Vec<crate::actor::ActorKind>,
}

/// The MCP server's policy.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// List no tool that changes anything.
    pub read_only: bool,
    /// Offer `regenerate_operator_token`.
    pub allow_regenerate: bool,
    pub secret_mode: SecretMode,
    /// How long a reveal link works.
    pub reveal_ttl: Duration,
    /// Where the reveal-link listener binds in stdio mode (loopback).
    pub reveal_listen: String,
    /// `Some`: deletes need a human approval instead of the user's confirmation.
    pub approvals: Option<ApprovalPolicy>,
    /// How long to wait for the user to answer an elicitation.
    pub elicitation_timeout: Duration,
    /// Timeouts and the connection cap of the reveal-link listener in stdio mode.
    pub reveal_limits: HttpLimits,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            read_only: false,
            allow_regenerate: false,
            secret_mode: SecretMode::RevealLink,
            reveal_ttl: Duration::from_secs(600),
            reveal_listen: "127.0.0.1:0".into(),
            approvals: None,
            elicitation_timeout: Duration::from_secs(120),
            reveal_limits: HttpLimits::default(),
        }
    }
}

/// Why the MCP server could not run.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(
        "the MCP HTTP server needs bearer tokens: add [[mcp.http.clients]] to the config, or set \
         allow_no_auth = true (only possible on a loopback address)"
    )]
    NoAuth,
    #[error(
        "allow_no_auth only works on a loopback address, not {0}; configure [[mcp.http.clients]]"
    )]
    NoAuthNotLoopback(SocketAddr),
    #[error("the MCP session failed: {0}")]
    Session(String),
    #[error(
        "cannot serve the private reveal page on {addr}: {source}. Another program (perhaps another \
         `tokenwarden mcp`) holds that address; people would type their passphrase into it. Stop \
         it, or give this server another mcp.reveal_listen"
    )]
    PrivatePage {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The authenticated HTTP caller, put into request extensions by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

/// State shared by every MCP session of one process.
#[derive(Clone)]
pub struct McpCore {
    service: Arc<TokenService>,
    settings: Arc<McpSettings>,
    reveal: Arc<RevealHub>,
    /// The operating-system account that runs this server: who a stdio client is.
    account: Arc<OsAccount>,
}

impl McpCore {
    pub fn new(service: Arc<TokenService>, settings: McpSettings) -> Self {
        let reveal = RevealHub::new(
            Arc::clone(&service),
            settings.reveal_ttl,
            settings.reveal_listen.clone(),
            settings.reveal_limits,
        );
        Self {
            service,
            settings: Arc::new(settings),
            reveal,
            account: Arc::new(OsAccount::current()),
        }
    }

    /// The same core, taking stdio clients for `account` (tests; the binary uses the
    /// process's own account).
    pub fn with_os_account(mut self, account: OsAccount) -> Self {
        self.account = Arc::new(account);
        self
    }

    pub fn reveal(&self) -> &Arc<RevealHub> {
        &self.reveal
    }

    pub fn service(&self) -> &Arc<TokenService> {
        &self.service
    }
}

/// One MCP session's handler.
#[derive(Clone)]
pub struct McpServer {
    core: McpCore,
    tool_router: ToolRouter<Self>,
    /// Identifies this connection when the transport has no session of its own (stdio).
    connection: String,
}

impl McpServer {
    pub fn new(core: McpCore) -> Self {
        let mut tool_router = Self::tool_router();
        for (name, enabled, _) in tools::availability(&core) {
            if !enabled {
                tool_router.remove_route(name);
            }
        }
        let connection = crate::gate::PendingId::random().to_string();
        Self {
            core,
            tool_router,
            connection,
        }
    }

    /// Who is calling: over HTTP the client entry its bearer token matched, over stdio the
    /// account that runs this process. The name the client gives itself is only shown.
    fn actor(&self, ctx: &RequestContext<RoleServer>) -> Actor {
        let client = ctx
            .client_info()
            .map(|i| i.name)
            .unwrap_or_else(|| "mcp-client".to_owned());
        match ctx.extensions.get::<axum::http::request::Parts>() {
            Some(parts) => {
                let principal = parts.extensions.get::<Principal>().map(|p| p.0.clone());
                // A 2026-07-28 request is served without a session whatever headers it sends:
                // an `Mcp-Session-Id` on it is the client's say-so, never a session it is in.
                let session = (!reply::is_modern(ctx))
                    .then(|| parts.headers.get("mcp-session-id"))
                    .flatten()
                    .and_then(|v| v.to_str().ok());
                Actor::mcp_http(principal.as_deref().unwrap_or("anonymous"), &client)
                    .in_session(session)
            }
            None => {
                Actor::mcp_stdio(&self.core.account, &client).in_session(Some(&self.connection))
            }
        }
    }
}

const INSTRUCTIONS: &str = "tokenwarden manages InfluxDB 3 authorization tokens. Use list_tokens to see \
tokens (never their secrets), list_databases before creating resource tokens, and server_info to see \
instances and which tools are enabled. Creating a token never shows you its secret: the result says \
how the user receives it (usually a one-time link to pass on). Deleting asks the user to confirm; \
never send a confirmation_code the user has not agreed to.";

/// What a client reads when a tool panicked: the call ended, and where to look next.
const TOOL_PANICKED: &str = "tokenwarden hit an internal error and did not finish this call; please \
report it. A change it had started is settled from tokenwarden's journal: call list_tokens to see \
where things stand before trying again.";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "tokenwarden",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    /// The tool router's answer; a panic inside a tool is answered as a tool error. Otherwise rmcp
    /// loses the task that held the request, and the client waits for an answer forever.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.clone();
        let call = ToolCallContext::new(self, request, context);
        match crate::panics::catching(self.tool_router.call(call)).await {
            Ok(answer) => answer,
            Err(panicked) => {
                tracing::error!(tool = %crate::shown::shown(&tool), panic = %panicked.0, "an MCP tool panicked; answered with an error");
                Ok(reply::tool_error(TOOL_PANICKED))
            }
        }
    }
}

/// How long in-flight tool calls may still answer once the server is told to stop. MCP clients
/// send SIGTERM 2 s after closing stdin (the Python SDK), so the stdio server must be done sooner.
const STDIO_DRAIN: Duration = Duration::from_millis(1500);

/// Serves one MCP session on stdin/stdout until the client closes stdin or `shutdown`
/// completes, then withdraws every token whose reveal link was never opened: the links die with
/// this process. Logs must go to stderr.
pub async fn serve_stdio(
    core: McpCore,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpError> {
    let reveal = Arc::clone(&core.reveal);
    if core.settings.secret_mode == SecretMode::Private {
        // Bound now, before any client asks: a page people type their passphrase into must be
        // this server's, never one another program put on the address first.
        reveal
            .private_page()
            .await
            .map_err(|source| McpError::PrivatePage {
                addr: core.settings.reveal_listen.clone(),
                source,
            })?;
    }
    let served = serve_stdio_until(core, shutdown).await;
    reveal
        .withdraw_all("the MCP server stopped before its reveal link was opened")
        .await;
    served
}

async fn serve_stdio_until(
    core: McpCore,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpError> {
    tokio::pin!(shutdown);
    let starting = McpServer::new(core).serve(rmcp::transport::stdio_pipes());
    let running = tokio::select! {
        running = starting => running.map_err(|e| McpError::Session(e.to_string()))?,
        () = &mut shutdown => return Ok(()),
    };
    let stop = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        // stdin closed: rmcp lets in-flight calls answer (a signal meanwhile cuts that short).
        ended = &mut waiting => {
            ended.map_err(|e| McpError::Session(e.to_string()))?;
        }
        () = shutdown => {
            tracing::info!("shutdown signal: stopping the MCP session");
            stop.cancel();
            if tokio::time::timeout(STDIO_DRAIN, waiting).await.is_err() {
                tracing::warn!("in-flight MCP calls did not finish in time; recovery settles what they left");
            }
        }
    }
    Ok(())
}

/// A bearer token an HTTP client presents, with the name the audit log shows for it.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pub name: String,
    pub token: RawToken,
}

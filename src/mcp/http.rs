//! The streamable HTTP transport: `/mcp` behind bearer-token auth (constant-time, 401 with
//! `WWW-Authenticate`), sessions bound to the principal that opened them and capped in number,
//! Host and Origin checks against DNS rebinding, a body size limit, the reveal-link routes,
//! connection limits and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::sessions::{self, Sessions, StoredSessions};
use super::{HttpClient, McpCore, McpError, McpServer, Principal, http_fixes};
use crate::http_serve::{HttpLimits, serve};

/// How the HTTP transport listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Accepted bearer tokens; empty only with `allow_no_auth` on loopback.
    pub clients: Vec<HttpClient>,
    pub allow_no_auth: bool,
    /// `Host` values accepted (names or `host:port`).
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted; any other `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// The public base URL (behind a proxy), for reveal links.
    pub public_url: Option<String>,
    /// Timeouts and the connection cap.
    pub limits: HttpLimits,
    /// How many MCP sessions (2025-11-25 clients and older) may be open at once.
    pub max_sessions: usize,
}

impl HttpSettings {
    /// Refuses configurations that would expose the server without authentication.
    pub fn check(&self) -> Result<(), McpError> {
        if self.clients.is_empty() {
            if !self.allow_no_auth {
                return Err(McpError::NoAuth);
            }
            if !self.listen.ip().is_loopback() {
                return Err(McpError::NoAuthNotLoopback(self.listen));
            }
        }
        Ok(())
    }
}

struct Auth {
    /// (name, SHA-256 of the token): comparing digests keeps the comparison constant-time and length-blind.
    clients: Vec<(String, [u8; 32])>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn bearer(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    if auth.clients.is_empty() {
        req.extensions_mut().insert(Principal("anonymous".into()));
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(digest);
    let mut found = None;
    if let Some(p) = presented {
        for (name, d) in &auth.clients {
            if bool::from(d.ct_eq(&p)) {
                found = Some(name.clone());
            }
        }
    }
    match found {
        Some(name) => {
            req.extensions_mut().insert(Principal(name));
            next.run(req).await
        }
        None => {
            let body = r#"{"error":"missing or wrong bearer token; send Authorization: Bearer <token> configured in [[mcp.http.clients]]"}"#;
            let mut r = (StatusCode::UNAUTHORIZED, body).into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tokenwarden\""),
            );
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive (RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether a `Host` header value names one of `allowed` (a bare name matches any port).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => host
            .rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_owned()),
    };
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == host || a == name || a.trim_start_matches('[').trim_end_matches(']') == name
    })
}

async fn hosts(State(allowed): State<Arc<Vec<String>>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if allowed.is_empty() || host_allowed(host, &allowed) {
        next.run(req).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "Forbidden: Host header is not allowed",
        )
            .into_response()
    }
}

/// The app: `/mcp` and `/reveal/{id}`. Cancelling `ct` ends every MCP session.
pub fn router(
    core: McpCore,
    http: &HttpSettings,
    ct: CancellationToken,
) -> Result<Router, McpError> {
    // rmcp asks for a server per session and per stateless (2026-07-28) request. Building one
    // builds its tool router (descriptions, schemas, the tools this configuration offers, all
    // fixed at start): about 0.03 ms of each stateless call. A copy of one built here takes under
    // 1 µs. The copies share the stdio connection id, which HTTP never uses: actors over HTTP
    // come from the request (principal and session header).
    router_with(McpServer::new(core), http, ct)
}

/// [`router`] serving copies of `server`.
pub(super) fn router_with(
    server: McpServer,
    http: &HttpSettings,
    ct: CancellationToken,
) -> Result<Router, McpError> {
    http.check()?;
    let core = &server.core;
    let base = http.public_url.clone().unwrap_or_else(|| {
        let host = if http.listen.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            http.listen.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!("http://{host}:{}", http.listen.port())
    });
    core.reveal.set_base_url(base);
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(http.allowed_hosts.clone())
        .with_allowed_origins(http.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(http.max_body_bytes)
        // Stateless (2026-07-28) replies as plain JSON unless the tool talks back first.
        .with_json_response(true)
        .with_cancellation_token(ct);
    // A session this process does not hold (opened before a restart, or on another process
    // sharing the store) is taken over from the store, for its principal only (`sessions`).
    config.session_store = Some(Arc::new(StoredSessions(Arc::clone(&core.service))));
    let reveal = core.reveal.router().layer(middleware::from_fn_with_state(
        Arc::new(http.allowed_hosts.clone()),
        hosts,
    ));
    let health = crate::health::routes(Arc::clone(&core.service));
    let sessions = Arc::new(Sessions::new(http.max_sessions, Arc::clone(&core.service)));
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::clone(&sessions), config);
    let auth = Arc::new(Auth {
        clients: http
            .clients
            .iter()
            .map(|c| (c.name.clone(), digest(c.token.expose())))
            .collect(),
    });
    // Layers run outside in: auth first, so nobody unauthenticated gets a body looked at; then
    // the session's owner, before anything else is told about the session.
    let mcp = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&sessions),
            http_fixes::fix,
        ))
        .layer(middleware::from_fn_with_state(sessions, sessions::guard))
        .layer(middleware::from_fn_with_state(auth, bearer));
    Ok(mcp.merge(reveal).merge(health))
}

/// How long open requests may still finish after the shutdown signal. Graceful shutdown alone
/// would wait for every open connection (an SSE stream, a call waiting on the user) forever.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// Serves MCP over HTTP on `listener` until `shutdown` completes and open requests finish (for
/// at most [`HTTP_DRAIN`]), then withdraws every token whose reveal link was never opened.
pub async fn serve_http(
    core: McpCore,
    http: HttpSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    let ct = CancellationToken::new();
    let mut http = http;
    if let Ok(addr) = listener.local_addr() {
        http.listen = addr;
    }
    let reveal = Arc::clone(&core.reveal);
    let app = router(core, &http, ct.child_token())?;
    let stopping = ct.clone();
    let server = serve(listener, app, http.limits, async move {
        shutdown.await;
        ct.cancel();
    });
    let drained = async {
        stopping.cancelled().await;
        tokio::time::sleep(HTTP_DRAIN).await;
    };
    tokio::select! {
        () = server => {}
        () = drained => {
            tracing::warn!(?HTTP_DRAIN, "open MCP requests did not finish in time; closing them");
        }
    }
    reveal
        .withdraw_all("the MCP server stopped before its reveal link was opened")
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_port() {
        let allowed = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "mcp.example.com:443".to_owned(),
        ];
        assert!(host_allowed("localhost:8765", &allowed));
        assert!(host_allowed("127.0.0.1", &allowed));
        assert!(host_allowed("[::1]:8765", &allowed));
        assert!(host_allowed("mcp.example.com:443", &allowed));
        assert!(!host_allowed("evil.example.com", &allowed));
        assert!(!host_allowed("localhost.evil.com:80", &allowed));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}

//! The `[mcp]` section: the MCP server's policy, secret delivery and HTTP transport.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::limits::http_limits;
use super::{TokenSource, parse_duration_key};
use crate::actor::ActorKind;
use crate::http_serve::HttpLimits;
use crate::mcp::{ApprovalPolicy, HttpClient, HttpSettings, McpSettings, SecretMode};

/// The `[mcp]` section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    allow_regenerate: bool,
    secret_delivery: Option<String>,
    secret_dir: Option<PathBuf>,
    reveal_ttl: Option<String>,
    reveal_listen: Option<String>,
    #[serde(default)]
    approve_deletes: bool,
    approval_timeout: Option<String>,
    required_approvals: Option<u8>,
    approve_from: Option<Vec<String>>,
    elicitation_timeout: Option<String>,
    http: Option<RawHttp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    allow_no_auth: bool,
    allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    max_body_bytes: Option<usize>,
    public_url: Option<String>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    max_sessions: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

/// The validated `[mcp]` section; HTTP client tokens are read when the HTTP server starts.
#[derive(Debug, Clone)]
pub struct McpConfig {
    pub settings: McpSettings,
    pub http_listen: SocketAddr,
    pub http_clients: Vec<(String, TokenSource)>,
    pub allow_no_auth: bool,
    pub allowed_hosts: Option<Vec<String>>,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub public_url: Option<String>,
    /// Also the limits of the reveal-link listener in stdio mode.
    pub limits: HttpLimits,
    pub max_sessions: usize,
}

/// How many MCP sessions (2025-11-25 and older clients) may be open at once by default.
pub const DEFAULT_MAX_SESSIONS: usize = 256;

/// Where a stdio server serves the private reveal page unless `reveal_listen` says otherwise.
pub const DEFAULT_PRIVATE_LISTEN: &str = "127.0.0.1:8766";

/// The default address of `tokenwarden mcp --http`.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8765";

impl RawMcp {
    pub(super) fn validate(self, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<McpConfig, String> {
        let d = |key: &str, value: Option<String>, default: &str| {
            parse_duration_key(&format!("mcp.{key}"), value.as_deref().unwrap_or(default))
        };
        let secret_mode = match self.secret_delivery.as_deref().unwrap_or("reveal_link") {
            "reveal_link" => SecretMode::RevealLink,
            "inline" => SecretMode::Inline,
            "private" => SecretMode::Private,
            "file" => {
                SecretMode::File(resolve(self.secret_dir.as_deref().ok_or(
                    "mcp.secret_delivery = \"file\" needs mcp.secret_dir = \"FOLDER\"",
                )?))
            }
            other => {
                return Err(format!(
                    "mcp.secret_delivery = \"{other}\" is not one of reveal_link, private, file, inline"
                ));
            }
        };
        // The private page must be where its people can find it again: a fixed port.
        let private = secret_mode == SecretMode::Private;
        let reveal_listen = self.reveal_listen.unwrap_or_else(|| {
            if private {
                DEFAULT_PRIVATE_LISTEN.into()
            } else {
                "127.0.0.1:0".into()
            }
        });
        let reveal_addr: SocketAddr = reveal_listen.parse().map_err(|_| {
            format!("mcp.reveal_listen = \"{reveal_listen}\" is not an IP:port address")
        })?;
        if !reveal_addr.ip().is_loopback() {
            return Err(format!(
                "mcp.reveal_listen must be a loopback address, not {reveal_addr}"
            ));
        }
        if private && reveal_addr.port() == 0 {
            return Err(
                "mcp.secret_delivery = \"private\" needs a fixed port in mcp.reveal_listen (people open \
                 its page by its address), not port 0"
                    .into(),
            );
        }
        let required = self.required_approvals.unwrap_or(1);
        if required == 0 {
            return Err("mcp.required_approvals must be at least 1".into());
        }
        let approve_from = super::approve_from(
            "mcp.approve_from",
            self.approve_from.as_deref(),
            &[ActorKind::Discord],
        )?;
        let approvals = self
            .approve_deletes
            .then(|| {
                d("approval_timeout", self.approval_timeout.clone(), "1h").map(|timeout| {
                    ApprovalPolicy {
                        required,
                        timeout,
                        approve_from,
                    }
                })
            })
            .transpose()?;
        let http = self.http.unwrap_or_default();
        let limits = http_limits(
            "mcp.http",
            http.header_read_timeout.as_deref(),
            http.idle_timeout.as_deref(),
            http.max_connections,
        )?;
        let max_sessions = http.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        if max_sessions == 0 {
            return Err("mcp.http.max_sessions must be at least 1".into());
        }
        let settings = McpSettings {
            read_only: self.read_only,
            allow_regenerate: self.allow_regenerate,
            secret_mode,
            reveal_ttl: d("reveal_ttl", self.reveal_ttl, "10m")?,
            reveal_listen,
            approvals,
            elicitation_timeout: d("elicitation_timeout", self.elicitation_timeout, "2m")?,
            reveal_limits: limits,
        };
        let listen = http.listen.unwrap_or_else(|| DEFAULT_HTTP_LISTEN.into());
        let http_listen = listen
            .parse()
            .map_err(|_| format!("mcp.http.listen = \"{listen}\" is not an IP:port address"))?;
        let mut http_clients: Vec<(String, TokenSource)> = Vec::new();
        for c in http.clients {
            if c.name.trim().is_empty() || c.name.chars().any(char::is_control) {
                return Err(
                    "mcp.http.clients: every client needs a name without control characters".into(),
                );
            }
            if http_clients.iter().any(|(name, _)| *name == c.name) {
                return Err(format!(
                    "mcp.http.clients: two clients are named `{}`; give each its own name (the \
                     name is who the audit log says acted, and whose sessions and approvals \
                     they are)",
                    c.name
                ));
            }
            if c.name == "anonymous" {
                return Err(
                    "mcp.http.clients: the name `anonymous` is taken by clients of a server with \
                     allow_no_auth; choose another"
                        .into(),
                );
            }
            let source = match (c.token_env, c.token_file) {
                (Some(var), None) => TokenSource::Env(var),
                (None, Some(file)) => TokenSource::File(resolve(&file)),
                _ => {
                    return Err(format!(
                        "mcp.http.clients `{}` needs exactly one of token_env and token_file",
                        c.name
                    ));
                }
            };
            http_clients.push((c.name, source));
        }
        if http.allow_no_auth && http_clients.is_empty() {
            let ip: SocketAddr = http_listen;
            if !ip.ip().is_loopback() {
                return Err(format!(
                    "mcp.http.allow_no_auth only works on a loopback listen address, not {ip}"
                ));
            }
        }
        Ok(McpConfig {
            settings,
            http_listen,
            http_clients,
            allow_no_auth: http.allow_no_auth,
            allowed_hosts: http.allowed_hosts,
            allowed_origins: http.allowed_origins,
            max_body_bytes: http.max_body_bytes.unwrap_or(1024 * 1024),
            public_url: http.public_url,
            limits,
            max_sessions,
        })
    }
}

impl McpConfig {
    /// The HTTP settings for listening on `listen` (the config's address unless overridden),
    /// with the client tokens read now.
    pub fn http(&self, listen: Option<SocketAddr>) -> Result<HttpSettings, super::ConfigError> {
        let listen = listen.unwrap_or(self.http_listen);
        let clients = self
            .http_clients
            .iter()
            .map(|(name, source)| {
                Ok(HttpClient {
                    name: name.clone(),
                    token: source.resolve()?,
                })
            })
            .collect::<Result<Vec<HttpClient>, super::ConfigError>>()?;
        for (i, a) in clients.iter().enumerate() {
            if let Some(b) = clients[i + 1..]
                .iter()
                .find(|b| b.token.expose() == a.token.expose())
            {
                return Err(super::ConfigError::SharedClientToken {
                    first: a.name.clone(),
                    second: b.name.clone(),
                });
            }
        }
        let allowed_hosts = self.allowed_hosts.clone().unwrap_or_else(|| {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
                hosts.push(listen.ip().to_string());
            }
            // Behind a load balancer, requests name the public host.
            if let Some(host) = self
                .public_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .filter(|h| !hosts.contains(h))
            {
                hosts.push(host);
            }
            hosts
        });
        Ok(HttpSettings {
            listen,
            clients,
            allow_no_auth: self.allow_no_auth,
            allowed_hosts,
            allowed_origins: self.allowed_origins.clone(),
            max_body_bytes: self.max_body_bytes,
            public_url: self.public_url.clone(),
            limits: self.limits,
            max_sessions: self.max_sessions,
        })
    }
}

//! The InfluxDB 3 HTTP client (reqwest with rustls) behind [`TokenBackend`]. Reads are retried on
//! connection errors, timeouts and 502/503/504; creates, deletes and regenerations never are, and
//! a mutation whose answer was lost is reported as of unknown outcome.

mod databases;
pub mod decode;
mod query;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;

use crate::tokens::{
    ADMIN_PERMISSION, BackendError, CreatedToken, Database, ListFilter, Page, Permission, RawToken,
    ServerInfo, Token, TokenBackend, TokenName, redact,
};

pub use decode::timestamp as parse_timestamp;

/// How to reach one server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, e.g. `http://127.0.0.1:8181`.
    pub url: String,
    /// `None` only for bootstrapping a server without an operator token.
    pub token: Option<RawToken>,
    pub timeout: Duration,
    /// An extra PEM CA certificate to trust.
    pub ca_file: Option<PathBuf>,
}

/// A client for one InfluxDB 3 server.
#[derive(Debug, Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    url: String,
    /// Replaced when tokenwarden regenerates the operator token it uses.
    token: std::sync::Arc<std::sync::RwLock<Option<RawToken>>>,
    timeout: Duration,
}

/// A complete HTTP answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum Failure {
    Transport(reqwest::Error),
    /// 502/503/504: worth another try for reads.
    Unavailable(Answer),
}

impl InfluxClient {
    pub fn new(opts: ClientOptions) -> Result<Self, BackendError> {
        let mut builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &opts.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                BackendError::Setup(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                BackendError::Setup(format!(
                    "ca_file {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| BackendError::Setup(error_chain(&e)))?;
        Ok(Self {
            http,
            url: opts.url.trim_end_matches('/').to_owned(),
            token: std::sync::Arc::new(std::sync::RwLock::new(opts.token)),
            timeout: opts.timeout,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.url));
        let token = self.token.read().unwrap_or_else(|p| p.into_inner());
        match token.as_ref() {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb,
        }
    }

    async fn once(rb: RequestBuilder) -> Result<Answer, Failure> {
        let resp = rb.send().await.map_err(Failure::Transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(Failure::Transport)?.to_vec();
        let answer = Answer {
            status,
            headers,
            body,
        };
        if matches!(status.as_u16(), 502..=504) {
            Err(Failure::Unavailable(answer))
        } else {
            Ok(answer)
        }
    }

    /// A read: retried twice with backoff on transient failures.
    async fn read(&self, build: impl Fn() -> RequestBuilder) -> Result<Answer, BackendError> {
        let attempt = || Self::once(build());
        let result = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_times(2),
            )
            .when(|f| match f {
                Failure::Transport(e) => e.is_connect() || e.is_timeout(),
                Failure::Unavailable(_) => true,
            })
            .notify(|_, after| tracing::debug!(url = %self.url, ?after, "retrying a read"))
            .await;
        match result {
            Ok(a) | Err(Failure::Unavailable(a)) => Ok(a),
            Err(Failure::Transport(e)) if e.is_timeout() => Err(BackendError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            }),
            Err(Failure::Transport(e)) => Err(self.unreachable(&e)),
        }
    }

    /// A mutation: exactly one attempt. Once the request may have left, a lost answer is `OutcomeUnknown`.
    async fn mutate(
        &self,
        rb: RequestBuilder,
        operation: &'static str,
    ) -> Result<Answer, BackendError> {
        match Self::once(rb).await {
            Ok(a) | Err(Failure::Unavailable(a)) => Ok(a),
            Err(Failure::Transport(e)) if e.is_connect() => Err(self.unreachable(&e)),
            Err(Failure::Transport(e)) => {
                let detail = if e.is_timeout() {
                    format!(
                        "no answer from {} within {}",
                        self.url,
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    redact(&error_chain(&e))
                };
                Err(BackendError::OutcomeUnknown { operation, detail })
            }
        }
    }

    /// A `query_sql` read of `system.tokens` that must answer 200.
    async fn query(&self, body: &serde_json::Value) -> Result<Answer, BackendError> {
        let a = self
            .read(|| {
                self.request(reqwest::Method::POST, "/api/v3/query_sql")
                    .json(body)
            })
            .await?;
        if a.status != StatusCode::OK {
            return Err(self.failure(&a));
        }
        Ok(a)
    }

    fn unreachable(&self, e: &reqwest::Error) -> BackendError {
        BackendError::Unreachable {
            url: self.url.clone(),
            detail: redact(&error_chain(e)),
        }
    }

    /// Maps statuses every endpoint shares; `Rejected` for the rest.
    fn failure(&self, a: &Answer) -> BackendError {
        let message = decode::error_message(&a.body);
        match a.status.as_u16() {
            401 => BackendError::Unauthenticated {
                url: self.url.clone(),
            },
            403 => BackendError::Forbidden {
                url: self.url.clone(),
            },
            405 if message.contains("started without auth") => BackendError::AuthDisabled {
                url: self.url.clone(),
            },
            status => BackendError::Rejected { status, message },
        }
    }

    fn created(
        &self,
        a: &Answer,
        name: &str,
        permissions: Vec<String>,
    ) -> Result<CreatedToken, BackendError> {
        decode::created(&self.url, &a.body, name, permissions, Utc::now())
    }
}

#[async_trait]
impl TokenBackend for InfluxClient {
    fn url(&self) -> &str {
        &self.url
    }

    async fn ping(&self) -> Result<ServerInfo, BackendError> {
        let a = self
            .read(|| self.request(reqwest::Method::GET, "/ping"))
            .await?;
        if a.status != StatusCode::OK {
            return Err(self.failure(&a));
        }
        Ok(decode::ping(&a.headers, &a.body))
    }

    async fn list_tokens(
        &self,
        filter: &ListFilter,
        page: Option<Page>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Token>, BackendError> {
        let (sql, params) = query::list_tokens(filter, page, now);
        let body = json!({ "db": "_internal", "q": sql, "format": "json", "params": params });
        let a = self.query(&body).await?;
        decode::token_rows(&self.url, &a.body)
    }

    async fn list_databases(&self) -> Result<Vec<Database>, BackendError> {
        self.databases().await
    }

    async fn highest_token_id(&self) -> Result<Option<u64>, BackendError> {
        let body = json!({ "db": "_internal", "q": query::HIGHEST_ID, "format": "json" });
        let a = self.query(&body).await?;
        decode::highest_id(&self.url, &a.body)
    }

    async fn create_admin_token(
        &self,
        name: &TokenName,
        expiry_secs: Option<u64>,
    ) -> Result<CreatedToken, BackendError> {
        let body = json!({ "token_name": name.as_str(), "expiry_secs": expiry_secs });
        let rb = self
            .request(reqwest::Method::POST, "/api/v3/configure/token/named_admin")
            .json(&body);
        let a = self.mutate(rb, "token creation").await?;
        match a.status.as_u16() {
            201 => self.created(&a, name.as_str(), vec![ADMIN_PERMISSION.to_owned()]),
            409 => Err(BackendError::AlreadyExists {
                name: name.to_string(),
            }),
            _ => Err(self.failure(&a)),
        }
    }

    async fn create_resource_token(
        &self,
        name: &TokenName,
        permissions: &[Permission],
        expiry_secs: Option<u64>,
    ) -> Result<CreatedToken, BackendError> {
        let wire: Vec<_> = permissions.iter().map(Permission::to_wire).collect();
        let body =
            json!({ "token_name": name.as_str(), "permissions": wire, "expiry_secs": expiry_secs });
        let rb = self
            .request(reqwest::Method::POST, "/api/v3/enterprise/configure/token")
            .json(&body);
        let a = self.mutate(rb, "token creation").await?;
        match a.status.as_u16() {
            201 => self.created(
                &a,
                name.as_str(),
                permissions.iter().map(ToString::to_string).collect(),
            ),
            404 => Err(BackendError::NotEnterprise {
                url: self.url.clone(),
            }),
            409 => Err(BackendError::AlreadyExists {
                name: name.to_string(),
            }),
            _ => Err(unknown_resource(&a, permissions).unwrap_or_else(|| self.failure(&a))),
        }
    }

    async fn delete_token(&self, name: &TokenName) -> Result<(), BackendError> {
        let rb = self
            .request(reqwest::Method::DELETE, "/api/v3/configure/token")
            .query(&[("token_name", name.as_str())]);
        let a = self.mutate(rb, "token deletion").await?;
        match a.status.as_u16() {
            200 | 204 => Ok(()),
            404 => Err(BackendError::NotFound {
                name: name.to_string(),
            }),
            405 if decode::error_message(&a.body).contains("operator token") => {
                Err(BackendError::OperatorUndeletable)
            }
            _ => Err(self.failure(&a)),
        }
    }

    async fn regenerate_operator_token(&self) -> Result<CreatedToken, BackendError> {
        let rb = self.request(
            reqwest::Method::POST,
            "/api/v3/configure/token/admin/regenerate",
        );
        let a = self.mutate(rb, "operator token regeneration").await?;
        match a.status.as_u16() {
            201 => self.created(&a, "_admin", vec![ADMIN_PERMISSION.to_owned()]),
            500 if decode::error_message(&a.body).contains("missing admin token") => {
                Err(BackendError::OperatorMissing)
            }
            _ => Err(self.failure(&a)),
        }
    }

    async fn authenticates(&self, secret: &RawToken) -> Result<bool, BackendError> {
        let a = self
            .read(|| {
                self.http
                    .get(format!("{}/ping", self.url))
                    .bearer_auth(secret.expose())
            })
            .await?;
        match a.status.as_u16() {
            200 => Ok(true),
            401 => Ok(false),
            _ => Err(self.failure(&a)),
        }
    }

    fn set_credential(&self, secret: RawToken) {
        let mut token = self.token.write().unwrap_or_else(|p| p.into_inner());
        *token = Some(secret);
    }

    async fn bootstrap_operator_token(&self) -> Result<CreatedToken, BackendError> {
        // This endpoint is unauthenticated; send no token at all.
        let rb = self
            .http
            .post(format!("{}/api/v3/configure/token/admin", self.url));
        let a = self.mutate(rb, "operator token creation").await?;
        match a.status.as_u16() {
            201 => self.created(&a, "_admin", vec![ADMIN_PERMISSION.to_owned()]),
            409 => Err(BackendError::OperatorExists),
            _ => Err(self.failure(&a)),
        }
    }
}

/// An error and its causes, joined: reqwest's top-level text alone hides the reason.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// InfluxDB refuses a permission naming a database (or system resource) it does not have with
/// `cannot parse token permission, invalid resource name NAME` (reference §2.7); says which.
fn unknown_resource(a: &Answer, permissions: &[Permission]) -> Option<BackendError> {
    let message = decode::error_message(&a.body);
    let (_, name) = message.split_once("invalid resource name ")?;
    let name = name.trim();
    let system = permissions.iter().any(|p| {
        p.resource_type() == crate::tokens::ResourceType::System
            && p.to_wire().resource_names.iter().any(|n| n == name)
    });
    Some(BackendError::UnknownResource {
        kind: if system {
            "system resource"
        } else {
            "database"
        },
        name: name.to_owned(),
    })
}

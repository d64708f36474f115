//! The InfluxDB 3 HTTP client (reqwest with rustls) behind [`TokenBackend`]. Reads are retried on
//! connection errors, timeouts and 502/503/504; creates, deletes and regenerations never are, and
//! a mutation whose answer was lost is reported as of unknown outcome: for a request that makes a
//! secret, so is any answer but a readable 201 or InfluxDB's refusal.

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
    /// Reads the credential again from where it came from (its file), when InfluxDB refuses it.
    reload: Option<Reload>,
}

/// Reads an instance's credential again from its source: `None` if it cannot be read.
#[derive(Clone)]
pub struct Reload(pub std::sync::Arc<dyn Fn() -> Option<RawToken> + Send + Sync>);

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reload")
    }
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
            reload: None,
        })
    }

    /// When InfluxDB answers 401, reads the credential again with `reload` and, if it changed
    /// (another process sharing its file regenerated the operator token), sends the request once
    /// more with it. A 401 means InfluxDB did nothing, so even a create or a delete is safe to
    /// send again.
    pub fn reloading(mut self, reload: Reload) -> Self {
        self.reload = Some(reload);
        self
    }

    /// The credential requests are sent with now.
    fn sent_with(&self) -> Option<RawToken> {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After a 401 to a request sent with `sent`: whether the credential's source holds
    /// another token, which is then used (another request's 401 may have switched to it first).
    async fn reloaded(&self, sent: Option<&RawToken>) -> bool {
        let Some(reload) = self.reload.clone() else {
            return false;
        };
        let Ok(Some(fresh)) = tokio::task::spawn_blocking(move || (reload.0)()).await else {
            return false;
        };
        if sent.is_some_and(|t| t.expose() == fresh.expose()) {
            return false;
        }
        let mut token = self.token.write().unwrap_or_else(|p| p.into_inner());
        if token.as_ref().is_some_and(|t| t.expose() == fresh.expose()) {
            return true;
        }
        *token = Some(fresh);
        tracing::warn!(url = %self.url, "InfluxDB refused the operator token; its file holds a new one (regenerated by another process?), which is used from now on");
        true
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

    /// A read: retried twice with backoff on transient failures, and once more after a 401 if
    /// the credential's file holds a new token.
    async fn read(&self, build: impl Fn() -> RequestBuilder) -> Result<Answer, BackendError> {
        self.again_after_401(|| self.read_once(&build)).await
    }

    /// Makes `attempt`, and once more if InfluxDB answered 401 and the credential's source now
    /// holds another token (a 401 means InfluxDB did nothing, so even a mutation may be sent
    /// again).
    async fn again_after_401<F: Future<Output = Result<Answer, BackendError>>>(
        &self,
        attempt: impl Fn() -> F,
    ) -> Result<Answer, BackendError> {
        let sent = self.sent_with();
        let a = attempt().await?;
        if a.status == StatusCode::UNAUTHORIZED && self.reloaded(sent.as_ref()).await {
            return attempt().await;
        }
        Ok(a)
    }

    async fn read_once(&self, build: &impl Fn() -> RequestBuilder) -> Result<Answer, BackendError> {
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

    /// A mutation: one attempt, and a second only after a 401 if the credential's file holds a
    /// new token (InfluxDB did nothing). Once the request may have left, a lost answer is
    /// `OutcomeUnknown`.
    async fn mutate(
        &self,
        build: impl Fn() -> RequestBuilder,
        operation: &'static str,
    ) -> Result<Answer, BackendError> {
        self.again_after_401(|| self.mutate_once(build(), operation))
            .await
    }

    async fn mutate_once(
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

    /// An answer to `operation` that does not say whether InfluxDB applied it.
    fn unclear(&self, a: &Answer, operation: &'static str) -> BackendError {
        BackendError::OutcomeUnknown {
            operation,
            detail: format!(
                "{} answered {}, which does not say whether InfluxDB applied it: {}",
                self.url,
                a.status,
                decode::error_message(&a.body)
            ),
        }
    }

    /// Reads the answer to a request that makes a secret (a create, a regeneration, the
    /// bootstrap): the new token from a 201, or `None` for InfluxDB's refusal, which the caller
    /// names from the status. Any other answer leaves the outcome unknown, since a token whose
    /// secret nobody holds may exist: a 5xx (a gateway's 502/503/504 after InfluxDB made the
    /// token, a 500 sent after the change was applied) unless InfluxDB sends it before changing
    /// anything, any other status that is no refusal, and a 201 that cannot be read.
    fn made(
        &self,
        a: &Answer,
        operation: &'static str,
        name: &str,
        permissions: impl FnOnce() -> Vec<String>,
    ) -> Result<Option<(CreatedToken, bool)>, BackendError> {
        let lost = |detail| BackendError::OutcomeUnknown { operation, detail };
        match a.status.as_u16() {
            201 => decode::created(&self.url, &a.body, name, permissions(), Utc::now())
                .map(Some)
                .map_err(|e| {
                    let why = match e {
                        BackendError::Decode { detail, .. } => detail,
                        other => other.to_string(),
                    };
                    lost(format!(
                        "{} answered {}, but tokenwarden cannot read the new token in it: {why}",
                        self.url, a.status
                    ))
                }),
            400..=499 => Ok(None),
            _ if decode::refused_unchanged(a.status.as_u16(), &a.body) => Ok(None),
            _ => Err(self.unclear(a, operation)),
        }
    }

    /// `made` with its id: as the answer gave it, else looked up by its name (Enterprise's
    /// resource-token answer is not documented to carry one). A token whose id cannot be
    /// learned could not be withdrawn by id, so its outcome counts as unknown: the journal
    /// then settles it by name.
    async fn with_id(
        &self,
        mut made: CreatedToken,
        id_given: bool,
        operation: &'static str,
    ) -> Result<CreatedToken, BackendError> {
        if id_given {
            return Ok(made);
        }
        let filter = ListFilter {
            name_is: Some(made.token.name.clone()),
            ..ListFilter::default()
        };
        let found = self.list_tokens(&filter, None, Utc::now()).await;
        match found.as_deref() {
            Ok([listed]) => {
                made.token.id = listed.id;
                made.token.created_at = listed.created_at;
                Ok(made)
            }
            _ => Err(BackendError::OutcomeUnknown {
                operation,
                detail: format!(
                    "{} made the token but did not say its id, and tokenwarden could not find it \
                     by its name",
                    self.url
                ),
            }),
        }
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
        let rb = || {
            self.request(reqwest::Method::POST, "/api/v3/configure/token/named_admin")
                .json(&body)
        };
        let operation = "token creation";
        let a = self.mutate(rb, operation).await?;
        let admin = || vec![ADMIN_PERMISSION.to_owned()];
        if let Some((made, id_given)) = self.made(&a, operation, name.as_str(), admin)? {
            return self.with_id(made, id_given, operation).await;
        }
        match a.status.as_u16() {
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
        let rb = || {
            self.request(reqwest::Method::POST, "/api/v3/enterprise/configure/token")
                .json(&body)
        };
        let operation = "token creation";
        let a = self.mutate(rb, operation).await?;
        let listed = || permissions.iter().map(ToString::to_string).collect();
        if let Some((made, id_given)) = self.made(&a, operation, name.as_str(), listed)? {
            return self.with_id(made, id_given, operation).await;
        }
        match a.status.as_u16() {
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
        let rb = || {
            self.request(reqwest::Method::DELETE, "/api/v3/configure/token")
                .query(&[("token_name", name.as_str())])
        };
        let a = self.mutate(rb, "token deletion").await?;
        match a.status.as_u16() {
            200 | 204 => Ok(()),
            404 => Err(BackendError::NotFound {
                name: name.to_string(),
            }),
            405 if decode::error_message(&a.body).contains("operator token") => {
                Err(BackendError::OperatorUndeletable)
            }
            // A 5xx (a gateway's 502/503/504, a 500 after the change) does not say whether the
            // token is gone: the caller looks, and the journal settles what one look cannot.
            500..=599 if !decode::refused_unchanged(a.status.as_u16(), &a.body) => {
                Err(self.unclear(&a, "token deletion"))
            }
            _ => Err(self.failure(&a)),
        }
    }

    async fn regenerate_operator_token(&self) -> Result<CreatedToken, BackendError> {
        // Not sent again after a 401 whose file holds a new secret: another process has just
        // regenerated, and doing it again would revoke the secret that process delivered.
        let sent = self.sent_with();
        let rb = self.request(
            reqwest::Method::POST,
            "/api/v3/configure/token/admin/regenerate",
        );
        let operation = "operator token regeneration";
        let a = self.mutate_once(rb, operation).await?;
        if a.status == StatusCode::UNAUTHORIZED && self.reloaded(sent.as_ref()).await {
            return Err(BackendError::Rejected {
                status: 401,
                message: "the operator token was regenerated by another tokenwarden process a \
                          moment ago (its token_file holds the new secret, now in use); nothing \
                          more was done"
                    .into(),
            });
        }
        let admin = || vec![ADMIN_PERMISSION.to_owned()];
        if let Some((made, _)) = self.made(&a, operation, "_admin", admin)? {
            return Ok(made);
        }
        match a.status.as_u16() {
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
        let operation = "operator token creation";
        let a = self.mutate_once(rb, operation).await?;
        let admin = || vec![ADMIN_PERMISSION.to_owned()];
        if let Some((made, _)) = self.made(&a, operation, "_admin", admin)? {
            return Ok(made);
        }
        match a.status.as_u16() {
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

//! MCP sessions over HTTP (clients of 2025-11-25 and before): rmcp's in-memory session manager,
//! with a cap on how many are open (a new one past it gets 503 and a sentence saying what to
//! do) and the principal that opened each, so that one client's bearer token can neither use,
//! watch nor end another client's session: to it, the session does not exist (404).
//!
//! Each session and its principal are also kept in the store, with the client's `initialize`
//! parameters: a process that does not hold a session in memory (restarted, or another replica
//! sharing the store) takes it over through rmcp's session store, for its own principal only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionRestoreMarker, SessionState, SessionStore,
    SessionStoreError,
};
use serde_json::json;

use super::Principal;
use crate::service::TokenService;

/// The header naming a request's session.
pub(super) const SESSION_HEADER: &str = "mcp-session-id";
/// What the client is asked to wait before opening a session again, in seconds.
const RETRY_AFTER_SECS: &str = "30";
/// The start of the sentence a refused session gets; rmcp passes it on in a 500 we replace.
const FULL: &str = "too many MCP sessions";

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionsError {
    #[error("{FULL} (limit {limit}); close one or raise [mcp.http] max_sessions")]
    Full { limit: usize },
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// Whether a request may go on to session `id`.
enum Admission {
    Admitted,
    /// Another principal's session: to this one it does not exist.
    Refused,
    /// The store, which knows whose a session held elsewhere is, cannot be read.
    Unknowable,
}

/// The open sessions, whose they are, and how many there may be.
pub(super) struct Sessions {
    local: LocalSessionManager,
    /// The principal that opened each session (`None`: none was known, so nobody may use it).
    owners: Mutex<HashMap<SessionId, Option<String>>>,
    max: usize,
    /// Held while a session is created, so that two at once cannot both take the last place.
    creating: tokio::sync::Mutex<()>,
    /// Where each session's principal is kept for the processes sharing the store.
    service: Arc<TokenService>,
}

impl Sessions {
    pub(super) fn new(max: usize, service: Arc<TokenService>) -> Self {
        Self {
            local: LocalSessionManager::default(),
            owners: Mutex::new(HashMap::new()),
            max,
            creating: tokio::sync::Mutex::new(()),
            service,
        }
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<SessionId, Option<String>>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` may use session `id`. A session this process does not hold is looked
    /// up in the store (rmcp then takes it over, or answers 404 for an unknown one).
    async fn admits(&self, id: &str, principal: Option<&Principal>) -> Admission {
        let principal = principal.map(|p| p.0.as_str());
        let local = self.owners().get(id).cloned();
        let owner = match local {
            Some(owner) => owner,
            None => match self.service.stored_session(id).await {
                Ok(None) => return Admission::Admitted,
                Ok(Some(stored)) => Some(stored.principal),
                Err(e) => {
                    tracing::error!(error = %e, "could not read an MCP session's owner from the store");
                    return Admission::Unknowable;
                }
            },
        };
        if owner.is_some() && owner.as_deref() == principal {
            Admission::Admitted
        } else {
            Admission::Refused
        }
    }

    /// Whether session `id` exists, here or in the store (a store that cannot be read: maybe).
    pub(super) async fn known(&self, id: &str) -> bool {
        if self.local.has_session(&id.into()).await.unwrap_or(true) {
            return true;
        }
        !matches!(self.service.stored_session(id).await, Ok(None))
    }

    /// Refuses a new session past the cap.
    async fn check_room(&self) -> Result<(), SessionsError> {
        if self.local.sessions.read().await.len() >= self.max {
            tracing::warn!(
                max_sessions = self.max,
                "refused a new MCP session: the limit is reached"
            );
            return Err(SessionsError::Full { limit: self.max });
        }
        Ok(())
    }
}

/// Whether `message` is rmcp replaying a session's handshake to take it over from the store.
fn is_restore(message: &ClientJsonRpcMessage) -> bool {
    match message {
        ClientJsonRpcMessage::Request(req) => req
            .request
            .extensions()
            .get::<SessionRestoreMarker>()
            .is_some(),
        _ => false,
    }
}

/// rmcp's session store: each session's `initialize` parameters, in the store beside its
/// principal (written by [`Sessions`] when the session opened).
pub(super) struct StoredSessions(pub(super) Arc<TokenService>);

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(stored) = self.0.stored_session(session_id).await? else {
            return Ok(None);
        };
        let Some(state) = stored.state else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(&state)?))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let state = serde_json::to_string(state)?;
        if !self.0.session_state_saved(session_id, state).await? {
            tracing::warn!(
                "an MCP client's initialize parameters are too large to keep; its session works in this process only"
            );
        }
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        Ok(self.0.session_closed(session_id).await?)
    }
}

/// The principal the auth layer put on the HTTP request a message came in.
fn principal_of(message: &ClientJsonRpcMessage) -> Option<String> {
    let ClientJsonRpcMessage::Request(req) = message else {
        return None;
    };
    let parts = req
        .request
        .extensions()
        .get::<axum::http::request::Parts>()?;
    parts.extensions.get::<Principal>().map(|p| p.0.clone())
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        self.check_room().await?;
        Ok(self.local.create_session().await?)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        self.check_room().await?;
        Ok(self.local.restore_session(id).await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // The session id reaches the client only with the answer to this, so nobody can use
        // the session before its owner is known. A session taken over from the store was
        // admitted only to the principal the store names, which is this request's.
        let principal = principal_of(&message);
        let taken_over = is_restore(&message);
        self.owners().insert(id.clone(), principal.clone());
        if let (Some(principal), false) = (principal, taken_over)
            && let Err(e) = self.service.session_opened(id, &principal).await
        {
            tracing::warn!(error = %e, "could not keep an MCP session in the store; it works in this process only");
        }
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.owners().remove(id);
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }
}

/// The middleware, after the auth layer: a session is answered only to its own principal, and
/// a session refused for the cap gets 503.
pub(super) async fn guard(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    match id {
        Some(id) => match sessions
            .admits(&id, req.extensions().get::<Principal>())
            .await
        {
            Admission::Admitted => next.run(req).await,
            Admission::Refused => {
                tracing::warn!("refused a request for another principal's MCP session");
                not_found()
            }
            Admission::Unknowable => store_unavailable(),
        },
        None if req.method() == Method::POST => explain_full(next.run(req).await).await,
        None => next.run(req).await,
    }
}

/// What rmcp answers for a session it does not know.
pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// 503 for a session whose owner cannot be checked: the store cannot be read.
fn store_unavailable() -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
        "message": "tokenwarden cannot read its store to check this session; try again shortly"}});
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Turns rmcp's 500 for a session refused by the cap into 503 with a JSON-RPC error.
async fn explain_full(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    let Some(start) = text.find(FULL) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let message = text[start..].trim_end();
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000, "message": message}});
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(store: crate::store::Store) -> Sessions {
        let service = TokenService::new(
            vec![],
            None,
            store,
            crate::service::Clock::System,
            std::time::Duration::from_secs(300),
        );
        Sessions::new(1, Arc::new(service))
    }

    fn admitted(a: Admission) -> bool {
        matches!(a, Admission::Admitted)
    }

    #[tokio::test]
    async fn a_session_is_allowed_to_its_owner_only() {
        let store = crate::store::Store::open_in_memory().unwrap();
        let sessions = sessions(store.clone());
        sessions
            .owners()
            .insert("a".into(), Some("alice".to_owned()));
        sessions.owners().insert("x".into(), None);
        let alice = Principal("alice".into());
        let bob = Principal("bob".into());
        assert!(admitted(sessions.admits("a", Some(&alice)).await));
        assert!(!admitted(sessions.admits("a", Some(&bob)).await));
        assert!(!admitted(sessions.admits("a", None).await));
        assert!(
            !admitted(sessions.admits("x", Some(&alice)).await),
            "no owner: nobody"
        );
        assert!(
            admitted(sessions.admits("unknown", Some(&bob)).await),
            "rmcp answers 404"
        );
        // Held by another process: the store says whose it is.
        store
            .session_opened("b", "bob", chrono::Utc::now())
            .unwrap();
        assert!(admitted(sessions.admits("b", Some(&bob)).await));
        assert!(!admitted(sessions.admits("b", Some(&alice)).await));
        assert!(sessions.known("b").await && !sessions.known("unknown").await);
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let e = SessionsError::Full { limit: 3 };
        assert_eq!(
            e.to_string(),
            "too many MCP sessions (limit 3); close one or raise [mcp.http] max_sessions"
        );
    }
}

//! MCP sessions over HTTP (clients of 2025-11-25 and before): rmcp's in-memory session manager,
//! with a cap on how many are open (a new one past it gets 503 and a sentence saying what to
//! do) and the principal that opened each, so that one client's bearer token can neither use,
//! watch nor end another client's session: to it, the session does not exist (404).

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
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use serde_json::json;

use super::Principal;

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

/// The open sessions, whose they are, and how many there may be.
pub(super) struct Sessions {
    local: LocalSessionManager,
    /// The principal that opened each session (`None`: none was known, so nobody may use it).
    owners: Mutex<HashMap<SessionId, Option<String>>>,
    max: usize,
    /// Held while a session is created, so that two at once cannot both take the last place.
    creating: tokio::sync::Mutex<()>,
}

impl Sessions {
    pub(super) fn new(max: usize) -> Self {
        Self {
            local: LocalSessionManager::default(),
            owners: Mutex::new(HashMap::new()),
            max,
            creating: tokio::sync::Mutex::new(()),
        }
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<SessionId, Option<String>>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` may use session `id`; a session not known here is rmcp's to refuse.
    fn allows(&self, id: &str, principal: Option<&Principal>) -> bool {
        match self.owners().get(id) {
            None => true,
            Some(owner) => owner.is_some() && owner.as_deref() == principal.map(|p| p.0.as_str()),
        }
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
        if self.local.sessions.read().await.len() >= self.max {
            tracing::warn!(
                max_sessions = self.max,
                "refused a new MCP session: the limit is reached"
            );
            return Err(SessionsError::Full { limit: self.max });
        }
        Ok(self.local.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // The session id reaches the client only with the answer to this, so nobody can use
        // the session before its owner is known.
        self.owners().insert(id.clone(), principal_of(&message));
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
        Some(id) => {
            if sessions.allows(&id, req.extensions().get::<Principal>()) {
                next.run(req).await
            } else {
                tracing::warn!("refused a request for another principal's MCP session");
                not_found()
            }
        }
        None if req.method() == Method::POST => explain_full(next.run(req).await).await,
        None => next.run(req).await,
    }
}

/// What rmcp answers for a session it does not know.
pub(super) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
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

    #[test]
    fn a_session_is_allowed_to_its_owner_only() {
        let sessions = Sessions::new(1);
        sessions
            .owners()
            .insert("a".into(), Some("alice".to_owned()));
        sessions.owners().insert("x".into(), None);
        let alice = Principal("alice".into());
        let bob = Principal("bob".into());
        assert!(sessions.allows("a", Some(&alice)));
        assert!(!sessions.allows("a", Some(&bob)));
        assert!(!sessions.allows("a", None));
        assert!(!sessions.allows("x", Some(&alice)), "no owner: nobody");
        assert!(sessions.allows("unknown", Some(&bob)), "rmcp answers 404");
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

//! Answers in front of rmcp's streamable HTTP service where real MCP clients expect other ones
//! than rmcp 3.11 gives: a POST body that is not one JSON-RPC message gets HTTP 400 with a
//! JSON-RPC error (rmcp: 415), and a DELETE that ends a session gets 200 (rmcp: 202, which the
//! Python SDK logs as a failure), or 404 when there is no such session (rmcp: 202).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use serde_json::{Value, json};

use super::sessions::{SESSION_HEADER, Sessions, not_found};

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// The middleware: mount it between the auth layer and rmcp's service, so that an
/// unauthenticated request is refused before its body is looked at.
pub(super) async fn fix(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
    next: Next,
) -> Response {
    match *req.method() {
        Method::POST if is_json(req.headers()) => post(req, next).await,
        Method::DELETE => delete(&sessions, req, next).await,
        _ => next.run(req).await,
    }
}

/// Whether rmcp takes the body as JSON (`Content-Type: application/json`, any parameters), so
/// that a 415 from it means the body, not the content type, was refused.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(e, _)| e);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

/// Lets rmcp read the body as it comes, keeping the chunks it read (shared, not copied); only
/// when rmcp refuses them are they parsed again, to say why in JSON-RPC terms.
async fn post(req: Request, next: Next) -> Response {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let req = req.map(|inner| {
        Body::new(Recorded {
            inner,
            seen: Arc::clone(&seen),
        })
    });
    let response = next.run(req).await;
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    let chunks = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    let body = match chunks.as_slice() {
        [one] => one.clone(),
        many => Bytes::from(many.concat()),
    };
    let (code, id, message) = refusal(&body);
    tracing::debug!(code, "refused a POST body that is not one JSON-RPC message");
    jsonrpc_error(code, id, message)
}

/// Why `body` is not a JSON-RPC message rmcp can serve: its error code, the request id when one
/// can be read, and a sentence for the client.
fn refusal(body: &[u8]) -> (i64, Value, &'static str) {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(_) => {
            return (
                PARSE_ERROR,
                Value::Null,
                "Parse error: the request body is not JSON",
            );
        }
    };
    let Value::Object(msg) = value else {
        let why = if value.is_array() {
            "Invalid Request: batches are not supported; send one JSON-RPC message per request"
        } else {
            "Invalid Request: the body is JSON but not a JSON-RPC 2.0 message"
        };
        return (INVALID_REQUEST, Value::Null, why);
    };
    let id = match msg.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    let versioned = msg.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    if versioned && msg.get("method").is_some_and(Value::is_string) {
        // A known method whose params do not fit it (unknown methods reach the server).
        return (
            INVALID_PARAMS,
            id,
            "Invalid params: the params do not fit the method",
        );
    }
    (
        INVALID_REQUEST,
        id,
        "Invalid Request: the body is JSON but not a JSON-RPC 2.0 message",
    )
}

fn jsonrpc_error(code: i64, id: Value, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut response = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Ends a session with 200, as clients expect of a DELETE, and answers 404 for a session that
/// does not exist (rmcp would accept closing it).
async fn delete(sessions: &Sessions, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Some(id) = id
        && !sessions.known(id).await
    {
        return not_found();
    }
    let mut response = next.run(req).await;
    if response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

/// A request body that keeps a handle on every chunk read from it.
struct Recorded {
    inner: Body,
    seen: Arc<Mutex<Vec<Bytes>>>,
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push(data.clone());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_refused_with_the_jsonrpc_code_for_what_they_are() {
        let code = |b: &str| refusal(b.as_bytes()).0;
        assert_eq!(code(""), PARSE_ERROR);
        assert_eq!(code("{\"jsonrpc\": \"2.0\", "), PARSE_ERROR);
        assert_eq!(code("not json"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(code("42"), INVALID_REQUEST);
        assert_eq!(code(r#"{"hello": "world"}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            refusal(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":3}"#),
            (
                INVALID_PARAMS,
                json!(7),
                "Invalid params: the params do not fit the method"
            )
        );
        assert_eq!(refusal(br#"{"id":{"x":1}}"#).1, Value::Null);
    }

    #[test]
    fn only_json_content_types_are_looked_at() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/json-seq"));
        assert!(!is_json(&HeaderMap::new()));
    }
}

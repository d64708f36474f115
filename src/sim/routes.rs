//! The simulator's request pipeline, in InfluxDB 3's order: OPTIONS, the `--without-auth` 405,
//! authentication (except on the operator bootstrap path), Enterprise authorization, routing.
//! Every response carries `cluster-uuid`; successful ones add `Access-Control-Allow-Origin: *`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::auth::{Credential, credential};
use super::catalog::{INTERNAL_DB, SimToken};
use super::state::{AfterApply, Reanswer, RecordedRequest, SimState};
use super::{database_api, handlers};

/// The largest request body accepted (InfluxDB's default `--max-http-request-size`).
const MAX_BODY: usize = 10 * 1024 * 1024;
const TOKEN_PATH_PREFIX: &str = "/api/v3/configure/token";
const BOOTSTRAP_PATH: &str = "/api/v3/configure/token/admin";
const DATABASE_PATH: &str = "/api/v3/configure/database";

/// A parsed request as the handlers see it.
pub struct SimRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
    /// The authenticated token (`None` on unauthenticated paths or without auth).
    pub caller: Option<SimToken>,
}

/// Plain text with no Content-Type, as the token endpoints answer errors.
pub fn text(status: u16, body: impl Into<String>) -> Response {
    raw(status, None, body.into())
}

/// A hand-formatted `{"error": "..."}` body without Content-Type, as the auth layer sends.
pub fn auth_error(status: u16, msg: &str) -> Response {
    raw(status, None, format!("{{\"error\": \"{msg}\"}}"))
}

/// A compact `{"error":"..."}` body without Content-Type, as the query and database layers send.
pub fn json_error(status: u16, msg: &str) -> Response {
    raw(
        status,
        None,
        serde_json::json!({ "error": msg }).to_string(),
    )
}

pub fn raw(status: u16, content_type: Option<&str>, body: String) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(Body::from(body)).unwrap_or_default()
}

/// The axum fallback that serves every request.
pub async fn dispatch(State(state): State<Arc<SimState>>, req: Request) -> Response {
    let mut response = serve(&state, req).await;
    let success = response.status().is_success();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&state.cluster_uuid) {
        headers.insert("cluster-uuid", v);
    }
    if success {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

async fn serve(state: &Arc<SimState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return text(413, format!("max request size ({MAX_BODY} bytes) exceeded")),
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    tracing::debug!(method = %parts.method, %path, "simulator request");

    let mut req = SimRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        caller: None,
    };
    let index = state.record(RecordedRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| *k != header::AUTHORIZATION)
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        auth_scheme: req
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(' ').next())
            .map(str::to_owned),
        authenticated_as: None,
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: 0,
        withheld: None,
    });
    let fault = state.take_fault(req.method.as_str(), &req.path);
    if !fault.latency.is_zero() {
        tokio::time::sleep(fault.latency).await;
    }
    if fault.swallow {
        state.record_outcome(index, 0, None, None);
        tracing::debug!(path = %req.path, "simulator swallows the request");
        let _ended = StallEnds;
        return std::future::pending().await;
    }
    if fault.hold {
        // Applied once released, in a task of its own: a client that gave up meanwhile does
        // not stop it, as a proxy forwards what it already holds.
        tracing::debug!(path = %req.path, "simulator holds a request before applying it");
        let (answer, answered) = tokio::sync::oneshot::channel();
        let held = Arc::clone(state);
        tokio::spawn(async move {
            held.wait_released().await;
            let response = route(&held, &mut req);
            let caller = req.caller.as_ref().map(|t| t.name.clone());
            held.record_outcome(index, response.status().as_u16(), None, caller);
            let _ = answer.send(response);
        });
        return answered
            .await
            .unwrap_or_else(|_| text(500, "the simulator stopped"));
    }
    let response = match fault.forced {
        Some(f) => raw(f.status, f.content_type.as_deref(), f.body),
        None => route(state, &mut req),
    };
    let caller = req.caller.as_ref().map(|t| t.name.clone());
    let status = response.status().as_u16();
    match fault.after {
        None => {
            state.record_outcome(index, status, None, caller);
            response
        }
        Some(AfterApply::Withhold) => {
            state.record_outcome(index, 0, Some(status), caller);
            tracing::debug!(path = %req.path, "simulator withholds the answer");
            // Never answers: the future ends only when hyper drops it as the client goes away.
            let _ended = StallEnds;
            std::future::pending().await
        }
        Some(AfterApply::Answer(instead)) => {
            let sent = reanswer(response, instead).await;
            state.record_outcome(index, sent.status().as_u16(), Some(status), caller);
            tracing::debug!(path = %req.path, "simulator sends another answer than its own");
            sent
        }
    }
}

/// The answer sent in place of `own` for a request that was applied.
async fn reanswer(own: Response, instead: Reanswer) -> Response {
    match instead {
        Reanswer::Replace {
            status,
            content_type,
            body,
        } => raw(status, content_type.as_deref(), body),
        Reanswer::Cut { keep } => {
            let (mut parts, body) = own.into_parts();
            let mut bytes = axum::body::to_bytes(body, MAX_BODY)
                .await
                .unwrap_or_default();
            bytes.truncate(keep);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// Logs the end of a withheld answer or a swallowed request (its client went away, or the
/// runtime stopped).
struct StallEnds;

impl Drop for StallEnds {
    fn drop(&mut self) {
        tracing::debug!("a withheld answer ended: its connection closed");
    }
}

fn route(state: &SimState, req: &mut SimRequest) -> Response {
    if req.method == Method::OPTIONS {
        return Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "*")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "*")
            .body(Body::empty())
            .unwrap_or_default();
    }
    let without_auth = state.settings.without_auth;
    if without_auth && req.path.starts_with(TOKEN_PATH_PREFIX) {
        return text(405, "endpoint disabled, started without auth");
    }
    if !without_auth && req.path != BOOTSTRAP_PATH {
        match credential(&req.headers) {
            Credential::Token(t) => match state.authenticate(&t) {
                Some(tok) => req.caller = Some(tok),
                None => return auth_error(401, "the request was not authenticated"),
            },
            Credential::Missing => return auth_error(401, "the request was not authenticated"),
            Credential::Malformed => {
                return auth_error(
                    400,
                    "Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic",
                );
            }
            Credential::NotAscii => {
                return auth_error(500, "to str error: failed to convert header to a str");
            }
        }
    }
    if let Some(denied) = authorize(state, req) {
        return denied;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", BOOTSTRAP_PATH) => handlers::create_operator(state),
        ("POST", "/api/v3/configure/token/named_admin") => handlers::create_named_admin(state, req),
        ("POST", "/api/v3/configure/token/admin/regenerate") => handlers::regenerate(state),
        ("DELETE", TOKEN_PATH_PREFIX) => handlers::delete_token(state, req),
        ("POST", "/api/v3/enterprise/configure/token") if state.is_enterprise() => {
            handlers::create_resource(state, req)
        }
        ("GET" | "POST", "/api/v3/query_sql") => handlers::query_sql(state, req),
        // `influxdb3_server/src/http.rs`, `route_request`: GET `show_databases`, POST
        // `create_database`, PUT `update_database`, DELETE `delete_database`.
        ("GET", DATABASE_PATH) => database_api::list(state, req),
        ("POST", DATABASE_PATH) => database_api::create(state, req),
        ("PUT", DATABASE_PATH) => database_api::update(state, req),
        ("DELETE", DATABASE_PATH) => database_api::delete(state, req),
        ("GET" | "POST", "/ping") => handlers::ping(state),
        ("GET", "/health") => raw(200, Some("text/plain; charset=utf-8"), "OK".into()),
        _ => text(404, "Not found"),
    }
}

/// Enterprise resource tokens may only read the system resources and databases they name. A
/// permission holds database ids, so it follows a database, not a name: after the database is
/// deleted it grants nothing, even on a new database of the same name.
fn authorize(state: &SimState, req: &SimRequest) -> Option<Response> {
    let caller = req.caller.as_ref()?;
    if caller.is_admin() {
        return None;
    }
    let allowed = match req.path.as_str() {
        "/ping" => caller.allows_system("ping"),
        "/health" => caller.allows_system("health"),
        "/api/v3/query_sql" => handlers::query_db(req)
            .filter(|db| db != INTERNAL_DB)
            .is_some_and(|db| {
                // An unknown database passes only a `db:*` grant (and is then a 404).
                let id = state.catalog().database_id(&db);
                caller.allows_db(id, "read")
            }),
        _ => false,
    };
    (!allowed).then(|| {
        auth_error(
            403,
            "unauthorized to perform requested action with the token",
        )
    })
}

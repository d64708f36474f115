//! `GET /health` (the process serves) and `GET /ready` (it can work: the store and the default
//! instance's InfluxDB answer; 503 otherwise), without authentication, on every HTTP server
//! tokenwarden runs. They say nothing secret: states and error texts, never a token.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::service::TokenService;

/// The two routes, for merging into a server's router outside its authentication.
pub fn routes(service: Arc<TokenService>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(service)
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(service): State<Arc<TokenService>>) -> Response {
    let r = service.readiness().await;
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

//! The HTTP interactions endpoint (`POST /interactions`): Ed25519 signature and timestamp
//! freshness checked before anything else, the initial answer as the HTTP response, and the
//! deferred work started only once that answer has gone out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serenity::interactions_endpoint::Verifier;
use serenity::model::application::Interaction;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Bot, DiscordError};
use crate::http_serve::serve;

/// Requests older or newer than this are refused (replays).
const MAX_SKEW_SECS: u64 = 300;
/// How long open requests may still finish after the shutdown signal.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Interaction payloads are small; anything bigger is refused.
const MAX_BODY: usize = 256 * 1024;

struct Endpoint {
    bot: Arc<Bot>,
    verifier: Verifier,
}

/// The `/interactions` route for `bot`.
pub fn interactions_router(bot: Arc<Bot>) -> Result<Router, DiscordError> {
    let key = bot.settings.public_key.ok_or(DiscordError::NoPublicKey)?;
    let verifier = Verifier::try_new(key).map_err(|_| DiscordError::BadPublicKey)?;
    let health = crate::health::routes(Arc::clone(&bot.service));
    Ok(Router::new()
        .route("/interactions", post(interactions))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(Endpoint { bot, verifier }))
        .merge(health))
}

/// Serves the endpoint on `addr` (and the bot's background work) until `stop`.
pub async fn serve_interactions(
    bot: Arc<Bot>,
    addr: SocketAddr,
    stop: CancellationToken,
) -> Result<(), DiscordError> {
    let listen_error = |source| DiscordError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    eprintln!("tokenwarden Discord interactions endpoint listening on http://{local}/interactions");
    serve_interactions_on(bot, listener, stop).await
}

/// Serves the endpoint on `listener`, within the bot's `endpoint_limits`, until `stop`.
pub async fn serve_interactions_on(
    bot: Arc<Bot>,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), DiscordError> {
    let app = interactions_router(Arc::clone(&bot))?;
    tokio::spawn(Arc::clone(&bot).run_background(stop.child_token()));
    let limits = bot.settings.endpoint_limits;
    let stopping = stop.clone();
    let server = serve(listener, app, limits, stop.cancelled_owned());
    // Open requests get a bounded time; what the deferred work leaves is in the journal, and
    // the next process settles it.
    let drained = async {
        stopping.cancelled().await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        () = server => {}
        () = drained => {
            tracing::warn!(?DRAIN, "open Discord requests did not finish in time; closing them");
        }
    }
    Ok(())
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

async fn interactions(
    State(ep): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    ) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing request signature");
    };
    if ep.verifier.verify(signature, timestamp, &body).is_err() {
        return refuse(StatusCode::UNAUTHORIZED, "invalid request signature");
    }
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| chrono::Utc::now().timestamp().abs_diff(t) <= MAX_SKEW_SECS);
    if !fresh {
        return refuse(StatusCode::UNAUTHORIZED, "stale request timestamp");
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "an interaction tokenwarden cannot read");
            return refuse(StatusCode::BAD_REQUEST, "unreadable interaction");
        }
    };
    let reply = ep.bot.handle(interaction).await;
    let json = match serde_json::to_vec(&reply.initial) {
        Ok(j) => j,
        Err(_) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the response",
            );
        }
    };
    let (sent, gone) = oneshot::channel();
    if let Some(later) = reply.later {
        tokio::spawn(async move {
            // Discord only accepts follow-ups once it has the initial response.
            let _ = gone.await;
            later.await;
        });
    }
    let body = Body::new(crate::sent::SentBody::new(Bytes::from(json), sent));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

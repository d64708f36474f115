//! Serves an axum app on a TCP listener with the limits every listener of tokenwarden needs: a
//! deadline for a request's headers, an idle timeout for keep-alive connections (never for one
//! with a request in flight, such as an open SSE stream or a call waiting on the user), a cap on
//! open connections (503 past it), a 500 for a handler that panics, and graceful shutdown. Depends on nothing in the crate.

mod activity;

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use activity::{Activity, Busy, Tracked};

/// How long a client may take to send a request's headers (from connecting, or from the first
/// byte of a later request on the same connection).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a keep-alive connection may wait, with no request in flight, for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many connections a listener serves at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Connections past the cap that are being told 503 at once; past this, they are closed unanswered.
const MAX_REFUSING: usize = 32;
/// What a refused client is asked to wait before trying again, in seconds.
const RETRY_AFTER_SECS: &str = "5";
/// How often, at most, a full listener says so in the log.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this; otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Connections served at once; more are answered 503.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open connections to finish their requests (callers bound that wait themselves).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    let mut warned: Option<Instant> = None;
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            // Without it, a streamed answer (SSE) waits on Nagle's algorithm and delayed ACKs.
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        match Arc::clone(&open).try_acquire_owned() {
            Ok(permit) => {
                let watcher = graceful.watcher();
                tokio::spawn(connection(stream, app.clone(), limits, watcher, permit));
            }
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY) {
                    warned = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "a listener is full: new connections get 503 until some close"
                    );
                }
                refuse(stream, &refusing, limits);
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits out an accept error: a connection that failed before it was accepted costs nothing,
/// but running out of file descriptors would otherwise spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until hyper is done with it (a graceful shutdown lets its requests
/// finish), or until it has sat too long without a request in flight.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: HttpLimits,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) {
    let activity = Activity::new(limits);
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
    let service = Counted {
        app: TowerToHyperService::new(app),
        activity: Arc::clone(&activity),
    };
    let conn = watcher.watch(http1::Builder::new().serve_connection(io, service));
    tokio::select! {
        done = conn => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        }
        () = activity.expired() => {
            tracing::debug!("closed a connection that sent no complete request in time");
        }
    }
    // Only now does the connection stop counting against `max_connections`.
    drop(permit);
}

/// The app, counting the requests in flight on its connection until their answers are sent.
#[derive(Clone)]
struct Counted {
    app: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

type Answer = Result<Response<Body>, Infallible>;

impl hyper::service::Service<Request<Incoming>> for Counted {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = Busy::start(&self.activity);
        let answer = self.app.call(req);
        Box::pin(async move {
            // A handler that panics still answers (500), instead of a connection reset; the
            // panic hook has logged what happened.
            let response = match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(answer) => answer?,
                Err(_) => internal_error(),
            };
            Ok(response.map(|body| busy.until_sent(body)))
        })
    }
}

/// Answers a connection past the cap with 503 (reading its request first, so that the client
/// sees the answer rather than a reset), or closes it when too many are being answered already.
fn refuse(stream: TcpStream, refusing: &Arc<Semaphore>, limits: HttpLimits) {
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(too_many_connections())
        });
        let conn = http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
        drop(permit);
    });
}

fn internal_error() -> Response<Body> {
    let mut r = Response::new(Body::from(
        "Internal Server Error: tokenwarden hit a bug answering this request; it is logged\n",
    ));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn too_many_connections() -> Response<Body> {
    let mut r = Response::new(Body::from(
        "Service Unavailable: too many open connections to this server; retry in a few seconds\n",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = r.headers_mut();
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

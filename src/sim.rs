//! An in-memory InfluxDB 3 token API (Core or Enterprise) that answers as the real server does,
//! for `tokenwarden simulate`, the demo and the tests. Depends only on `tokens`.

mod auth;
mod catalog;
mod database_api;
mod databases;
mod format;
mod handlers;
mod parse;
mod query_log;
mod routes;
mod sql;
mod state;
mod value;

use crate::no_delay;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use catalog::generate_token;
pub use state::{
    AnswerAfterApply, ForcedResponse, HoldBeforeApply, Reanswer, RecordedRequest, SimSettings,
    StallAfterApply, Swallow,
};

use crate::tokens::{OPERATOR_TOKEN_NAME, Permission, RawToken};
use state::SimState;

/// A simulated InfluxDB 3 server.
pub struct Simulator {
    state: Arc<SimState>,
}

/// Test and demo controls for a simulator: seeding, clock, faults and the request log.
#[derive(Clone)]
pub struct SimControl {
    state: Arc<SimState>,
}

/// A simulator serving on a local port, stopped when dropped.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub control: SimControl,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Simulator {
    pub fn new(settings: SimSettings) -> Self {
        Self {
            state: Arc::new(SimState::new(settings)),
        }
    }

    pub fn control(&self) -> SimControl {
        SimControl {
            state: Arc::clone(&self.state),
        }
    }

    /// The axum app (every path goes through InfluxDB's routing order).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(routes::dispatch)
            .with_state(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(no_delay(listener), self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves on `127.0.0.1:0` in a background task.
    pub async fn spawn(self) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let control = self.control();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = self.serve(listener, shutdown).await {
                tracing::error!(error = %e, "the simulator stopped");
            }
        });
        Ok(RunningSim {
            addr,
            control,
            stop: Some(stop),
        })
    }
}

impl SimControl {
    /// Registers `raw` as the operator token `_admin` (like `--admin-token-file`); false if one exists.
    pub fn register_operator(&self, raw: &RawToken) -> bool {
        let now = self.state.now_ms();
        self.state
            .catalog()
            .register(OPERATOR_TOKEN_NAME, raw, None, now)
            .is_some()
    }

    /// Creates the operator token and returns its secret; `None` if it exists.
    pub fn create_operator(&self) -> Option<RawToken> {
        let now = self.state.now_ms();
        self.state
            .catalog()
            .create_operator(now)
            .ok()
            .map(|(_, raw)| raw)
    }

    /// Creates a named admin token; `None` if the name is taken.
    pub fn create_admin(&self, name: &str, expiry: Option<Duration>) -> Option<RawToken> {
        let now = self.state.now_ms();
        let secs = expiry.map(|d| d.as_secs());
        self.state
            .catalog()
            .create_named_admin(name, secs, now)
            .ok()
            .map(|(_, raw)| raw)
    }

    /// Creates a resource token (Enterprise rules apply); the error is the server's message.
    pub fn create_resource(
        &self,
        name: &str,
        permissions: &[Permission],
        expiry: Option<Duration>,
    ) -> Result<RawToken, String> {
        let now = self.state.now_ms();
        let wire = permissions.iter().map(Permission::to_wire).collect();
        let secs = expiry.map(|d| d.as_secs());
        self.state
            .catalog()
            .create_resource(name, wire, secs, now)
            .map(|(_, raw)| raw)
            .map_err(|e| e.message())
    }

    /// Creates a database with no retention period (a name in use is left as it is).
    pub fn create_database(&self, name: &str) {
        self.create_database_with_retention(name, None);
    }

    /// Creates a database whose data is kept for `retention` (whole seconds, as InfluxDB keeps it).
    pub fn create_database_with_retention(&self, name: &str, retention: Option<Duration>) {
        let _ = self.state.catalog().create_database(name, retention);
    }

    /// Soft-deletes a database as another client would; false if there is none by that name.
    pub fn delete_database(&self, name: &str) -> bool {
        let now = self.state.now_ms();
        self.state
            .catalog()
            .delete_database(name, databases::HardDelete::Default, now)
            .is_ok()
    }

    /// Names of all tokens, in id order.
    pub fn token_names(&self) -> Vec<String> {
        self.state
            .catalog()
            .tokens()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The id of the token named `name`, if one exists.
    pub fn token_id(&self, name: &str) -> Option<u64> {
        self.state
            .catalog()
            .tokens()
            .find(|t| t.name == name)
            .map(|t| t.id)
    }

    /// Deletes the token named `name` as another client would; false if there is none.
    pub fn delete_token(&self, name: &str) -> bool {
        self.state.catalog().delete(name).is_ok()
    }

    pub fn token_count(&self) -> usize {
        self.state.catalog().token_count()
    }

    /// Moves the simulator's clock forward, so expiries pass without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.state.advance_clock(by);
    }

    /// Delays every response by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state.set_latency(latency);
    }

    /// Answers matching requests with a canned response.
    pub fn force_response(&self, response: ForcedResponse) {
        self.state.force(response);
    }

    /// Applies matching requests as usual, then never answers them (a lost answer to a change
    /// that happened). A stalled request shows in the log with `withheld` set.
    pub fn stall_after_apply(&self, stall: StallAfterApply) {
        self.state.stall_after_apply(stall);
    }

    /// Applies matching requests as usual, then sends another answer than the simulator's own:
    /// a gateway's 504 or a 500 after the change, a 201 cut short or mistyped. Such a request
    /// shows in the log with the status sent and, in `withheld`, its own.
    pub fn answer_after_apply(&self, answer: AnswerAfterApply) {
        self.state.answer_after_apply(answer);
    }

    /// Neither applies nor answers matching requests (lost on their way); the answer is held
    /// until the client goes away. Such a request shows in the log with status 0 and nothing
    /// withheld.
    pub fn swallow(&self, swallow: Swallow) {
        self.state.swallow(swallow);
    }

    /// Holds matching requests before applying them, until [`SimControl::release_held`]: a
    /// request on its way that lands late. Each shows in the log as it arrives, with status 0
    /// until it is applied.
    pub fn hold_before_apply(&self, hold: HoldBeforeApply) {
        self.state.hold_before_apply(hold);
    }

    /// Applies the held requests (and holds no more until the next [`Self::hold_before_apply`]).
    pub fn release_held(&self) {
        self.state.release_held();
    }

    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// The requests seen so far (needs `record_requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The first request, already logged or arriving within `timeout`, that satisfies `pred`;
    /// wakes on every new request and every outcome (needs `record_requests`).
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        self.state.wait_for_request(pred, timeout).await
    }

    /// The first request to a path starting with `path_prefix` that was applied and then
    /// stalled, waiting up to `timeout` for one.
    pub async fn wait_for_stall(
        &self,
        path_prefix: &str,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        self.wait_for_request(
            |r| r.withheld.is_some() && r.status == 0 && r.path.starts_with(path_prefix),
            timeout,
        )
        .await
    }

    /// Seeds `n` tokens named `load-000001`... for scale tests: a third already expired, a third
    /// expiring within a month, the rest never; on Enterprise every fourth is a resource token
    /// reading `metrics`, which is created only then. Secrets are discarded.
    pub fn seed_tokens(&self, n: usize) {
        let now = self.state.now_ms();
        let enterprise = self.state.is_enterprise();
        let mut catalog = self.state.catalog();
        if enterprise && n >= 4 {
            let _ = catalog.create_database("metrics", None);
        }
        for i in 1..=n {
            let name = format!("load-{i:06}");
            let expiry = match i % 3 {
                0 => Some(0),
                1 => Some((i as u64 % 30 + 1) * 86_400),
                _ => None,
            };
            let created = if enterprise && i % 4 == 0 {
                let read = crate::tokens::WirePermission {
                    resource_type: "db".into(),
                    resource_names: vec!["metrics".into()],
                    actions: vec!["read".into()],
                };
                catalog.create_resource(&name, vec![read], expiry, now)
            } else {
                catalog.create_named_admin(&name, expiry, now)
            };
            drop(created);
        }
    }

    /// Seeds the demo: databases (one with a retention period), and a few tokens in every state
    /// (secrets discarded).
    pub fn seed_demo(&self) {
        let day = Duration::from_secs(86_400);
        self.create_database("metrics");
        self.create_database_with_retention("logs", Some(30 * day));
        self.create_database("iot");
        self.create_admin("ci-deploy", Some(30 * day));
        self.create_admin("grafana-admin", None);
        self.create_admin("expiring-soon", Some(2 * day));
        self.create_admin("old-migration", Some(Duration::from_secs(1)));
        if self.state.is_enterprise() {
            let p = |s: &str| Permission::parse(s).ok();
            let perms = |list: &[&str]| list.iter().filter_map(|s| p(s)).collect::<Vec<_>>();
            let _ = self.create_resource(
                "grafana-reader",
                &perms(&["db:metrics,logs:read"]),
                Some(90 * day),
            );
            let _ = self.create_resource("telegraf-writer", &perms(&["db:metrics:write"]), None);
            let _ = self.create_resource("probe", &perms(&["system:health,ping:read"]), None);
        }
    }
}

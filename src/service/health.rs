//! Readiness: whether this process can do its work now (the store can be written, and the
//! default instance's InfluxDB answers), for a load balancer's `/ready`. Anyone may ask, so
//! the answer is short codes; the details go to the log. Askers who arrive while a check runs
//! share its answer, so a flood of `/ready` is one check at a time on InfluxDB, never a pile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::{ErrorKind, TokenService, blocking};

/// What `/ready` reports: `ok` for each dependency, or a short code saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `ok`, `unavailable`, or `timeout` (no answer within [`READY_WITHIN`]).
    pub store: String,
    /// `ok`, `unreachable`, `timeout`, `unauthorized` or `error`.
    pub influxdb: String,
}

const OK: &str = "ok";

/// How long `/ready` waits for InfluxDB: inside the 5 s a load balancer's check usually allows,
/// whatever the instance's `timeout` and read retries would add up to.
pub const READY_WITHIN: Duration = Duration::from_secs(3);

/// The last check and its number, and how many checks have finished.
#[derive(Default)]
pub(super) struct ReadyCache {
    last: tokio::sync::Mutex<Option<(u64, Readiness)>>,
    finished: AtomicU64,
}

impl TokenService {
    /// Whether this process can work now: a check that finished after this call began (one
    /// running when it arrived), else a new one.
    pub async fn readiness(&self) -> Readiness {
        let cache = &self.ready_cache;
        let arrived_after = cache.finished.load(Ordering::Acquire);
        let mut last = cache.last.lock().await;
        if let Some((n, r)) = last.as_ref()
            && *n > arrived_after
        {
            return r.clone();
        }
        let r = self.check_readiness().await;
        let n = cache.finished.load(Ordering::Acquire) + 1;
        *last = Some((n, r.clone()));
        cache.finished.store(n, Ordering::Release);
        r
    }

    async fn check_readiness(&self) -> Readiness {
        let store = self.store.clone();
        // A database that hangs must not hang the check: a load balancer gives up after a few
        // seconds, and would learn nothing.
        let store = match tokio::time::timeout(READY_WITHIN, blocking(move || store.ping())).await {
            Ok(Ok(())) => OK,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: the store");
                "unavailable"
            }
            Err(_) => {
                tracing::warn!(
                    "not ready: the store did not answer within {} s",
                    READY_WITHIN.as_secs()
                );
                "timeout"
            }
        };
        let influxdb = match tokio::time::timeout(READY_WITHIN, self.server_info(None)).await {
            Ok(Ok(_)) => OK,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: InfluxDB");
                match e.kind() {
                    ErrorKind::Unavailable => "unreachable",
                    ErrorKind::Auth => "unauthorized",
                    _ => "error",
                }
            }
            Err(_) => {
                tracing::warn!(
                    instance = %self.default_instance,
                    "not ready: InfluxDB did not answer /ping within {} s",
                    READY_WITHIN.as_secs()
                );
                "timeout"
            }
        };
        Readiness {
            ready: store == OK && influxdb == OK,
            store: store.to_owned(),
            influxdb: influxdb.to_owned(),
        }
    }
}

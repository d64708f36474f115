//! The simulator's shared state: settings, the catalog, its clock, injected faults and the
//! request log that tests read.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::tokens::Edition;

use super::catalog::{Catalog, SimToken};

/// How a simulated server runs.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub edition: Edition,
    /// Like `influxdb3 serve --without-auth`: every token endpoint answers 405.
    pub without_auth: bool,
    /// Reported in `/ping`.
    pub version: String,
    /// Keep a log of requests for tests to inspect.
    pub record_requests: bool,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            edition: Edition::Core,
            without_auth: false,
            version: "3.10.0".into(),
            record_requests: false,
        }
    }
}

/// A request as the simulator saw it. The `Authorization` value is never kept; only its scheme
/// and the name of the token it authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub auth_scheme: Option<String>,
    pub authenticated_as: Option<String>,
    pub body: String,
    /// The status sent; 0 if the client went away first.
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A canned response for requests whose path starts with `path_prefix`.
#[derive(Debug, Clone)]
pub struct ForcedResponse {
    pub path_prefix: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
    /// How many requests it answers; `None` for all of them.
    pub times: Option<u32>,
}

#[derive(Debug, Default)]
struct Faults {
    latency: Duration,
    forced: Vec<ForcedResponse>,
}

/// Everything a running simulator shares between requests.
#[derive(Debug)]
pub struct SimState {
    pub settings: SimSettings,
    pub cluster_uuid: String,
    pub process_id: String,
    catalog: Mutex<Catalog>,
    clock_offset_ms: AtomicI64,
    faults: Mutex<Faults>,
    requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimState {
    pub fn new(settings: SimSettings) -> Self {
        Self {
            settings,
            cluster_uuid: uuid::Uuid::new_v4().to_string(),
            process_id: uuid::Uuid::new_v4().to_string(),
            catalog: Mutex::new(Catalog::default()),
            clock_offset_ms: AtomicI64::new(0),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The simulator's time in epoch milliseconds (wall clock plus any test offset).
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn is_enterprise(&self) -> bool {
        self.settings.edition == Edition::Enterprise
    }

    pub fn catalog(&self) -> MutexGuard<'_, Catalog> {
        lock(&self.catalog)
    }

    pub fn authenticate(&self, raw: &str) -> Option<SimToken> {
        let now = self.now_ms();
        self.catalog().authenticate(raw, now).cloned()
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.faults).latency = latency;
    }

    pub fn force(&self, response: ForcedResponse) {
        lock(&self.faults).forced.push(response);
    }

    pub fn clear_faults(&self) {
        *lock(&self.faults) = Faults::default();
    }

    /// The latency to add and the forced response (if any) for a request to `path`.
    pub fn take_fault(&self, path: &str) -> (Duration, Option<ForcedResponse>) {
        let mut faults = lock(&self.faults);
        let latency = faults.latency;
        let Some(i) = faults
            .forced
            .iter()
            .position(|f| path.starts_with(&f.path_prefix))
        else {
            return (latency, None);
        };
        let forced = faults.forced[i].clone();
        match &mut faults.forced[i].times {
            Some(1) => {
                faults.forced.remove(i);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        (latency, Some(forced))
    }

    /// Logs a request as it arrives (so a client that gives up still leaves a trace); returns
    /// its index for [`SimState::record_outcome`].
    pub fn record(&self, request: RecordedRequest) -> Option<usize> {
        if !self.settings.record_requests {
            return None;
        }
        let mut log = lock(&self.requests);
        log.push(request);
        Some(log.len() - 1)
    }

    /// Adds the status sent and the token the request authenticated as.
    pub fn record_outcome(
        &self,
        index: Option<usize>,
        status: u16,
        authenticated_as: Option<String>,
    ) {
        if let Some(i) = index
            && let Some(r) = lock(&self.requests).get_mut(i)
        {
            r.status = status;
            r.authenticated_as = authenticated_as;
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }
}

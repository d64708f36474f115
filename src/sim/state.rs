//! The simulator's shared state: settings, the catalog, its clock, injected faults and the
//! request log that tests read.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::tokens::Edition;

use super::catalog::{Catalog, SimToken};
use super::query_log::QueryLog;

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
    /// The status sent; 0 if the client went away first or the answer was withheld.
    pub status: u16,
    /// Set when a [`StallAfterApply`] or [`AnswerAfterApply`] fault held the answer back: the
    /// request was applied and its answer, with this status, was never sent (another may have
    /// been, in `status`).
    pub withheld: Option<u16>,
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

/// For requests whose path starts with `path_prefix` (and whose method is `method`, if given):
/// apply the request as usual, then never answer; the answer is held until the client goes away.
#[derive(Debug, Clone)]
pub struct StallAfterApply {
    pub path_prefix: String,
    pub method: Option<String>,
    /// How many requests it stalls; `None` for all of them.
    pub times: Option<u32>,
}

/// For requests whose path starts with `path_prefix` (and whose method is `method`, if given):
/// apply the request as usual, then send `answer` in place of the simulator's own.
#[derive(Debug, Clone)]
pub struct AnswerAfterApply {
    pub path_prefix: String,
    pub method: Option<String>,
    pub answer: Reanswer,
    /// How many requests it answers; `None` for all of them.
    pub times: Option<u32>,
}

/// For requests whose path starts with `path_prefix` (and whose method is `method`, if given):
/// hold the request before applying it until [`SimState::release_held`], as a slow InfluxDB or
/// a proxy does; it is applied then even if its client has gone away meanwhile.
#[derive(Debug, Clone)]
pub struct HoldBeforeApply {
    pub path_prefix: String,
    pub method: Option<String>,
    /// How many requests it holds; `None` for all of them.
    pub times: Option<u32>,
}

/// For requests whose path starts with `path_prefix` (and whose method is `method`, if given):
/// never apply them and never answer (a request lost on its way, held until the client goes
/// away).
#[derive(Debug, Clone)]
pub struct Swallow {
    pub path_prefix: String,
    pub method: Option<String>,
    /// How many requests it swallows; `None` for all of them.
    pub times: Option<u32>,
}

/// What a request that was applied is answered instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reanswer {
    /// A whole other answer: a gateway's 504 after InfluxDB made the token, a 500 sent after the
    /// change, a 201 whose body is mistyped.
    Replace {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// The simulator's own answer with its body cut to its first `keep` bytes, sent complete (a
    /// proxy that shortened it and its length alike).
    Cut { keep: usize },
}

/// What happens after a request was applied, instead of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterApply {
    /// Never answer.
    Withhold,
    /// Answer this instead.
    Answer(Reanswer),
}

/// The faults that apply to one request.
#[derive(Debug, Default)]
pub struct Fault {
    pub latency: Duration,
    pub forced: Option<ForcedResponse>,
    /// Neither apply the request nor answer it.
    pub swallow: bool,
    /// Hold the request until released, then apply it.
    pub hold: bool,
    /// Apply the request, then withhold its answer or send another.
    pub after: Option<AfterApply>,
}

/// A fault after applying a request, for the requests it matches.
#[derive(Debug, Clone)]
struct AfterRule {
    path_prefix: String,
    method: Option<String>,
    times: Option<u32>,
    then: AfterApply,
}

#[derive(Debug, Default)]
struct Faults {
    latency: Duration,
    forced: Vec<ForcedResponse>,
    swallowed: Vec<Swallow>,
    holds: Vec<HoldBeforeApply>,
    after: Vec<AfterRule>,
}

/// Whether a fault for `prefix` and `wanted` (any method if `None`) covers a request.
fn covers(prefix: &str, wanted: Option<&String>, method: &str, path: &str) -> bool {
    path.starts_with(prefix) && wanted.is_none_or(|m| m.eq_ignore_ascii_case(method))
}

/// Takes one use of the first fault in `list` that `matches`; `times` counts its remaining uses.
fn take_first<T: Clone>(
    list: &mut Vec<T>,
    matches: impl Fn(&T) -> bool,
    times: impl Fn(&mut T) -> &mut Option<u32>,
) -> Option<T> {
    let i = list.iter().position(matches)?;
    let taken = list[i].clone();
    match times(&mut list[i]) {
        Some(1) => {
            list.remove(i);
        }
        Some(n) => *n -= 1,
        None => {}
    }
    Some(taken)
}

/// Everything a running simulator shares between requests.
#[derive(Debug)]
pub struct SimState {
    pub settings: SimSettings,
    pub cluster_uuid: String,
    pub process_id: String,
    catalog: Mutex<Catalog>,
    query_log: Mutex<QueryLog>,
    clock_offset_ms: AtomicI64,
    faults: Mutex<Faults>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Bumped whenever the request log changes, so waiters wake without polling.
    log_version: watch::Sender<u64>,
    /// Set once held requests may go on.
    released: watch::Sender<bool>,
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
            query_log: Mutex::new(QueryLog::default()),
            clock_offset_ms: AtomicI64::new(0),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(Vec::new()),
            log_version: watch::Sender::new(0),
            released: watch::Sender::new(false),
        }
    }

    /// The simulator's time in epoch milliseconds (wall clock plus any test offset).
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now()
            .timestamp_millis()
            .saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // Saturating, not wrapping: a huge step stays in the far future.
        let _ = self
            .clock_offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(ms))
            });
    }

    pub fn is_enterprise(&self) -> bool {
        self.settings.edition == Edition::Enterprise
    }

    pub fn catalog(&self) -> MutexGuard<'_, Catalog> {
        lock(&self.catalog)
    }

    pub fn query_log(&self) -> MutexGuard<'_, QueryLog> {
        lock(&self.query_log)
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

    pub fn stall_after_apply(&self, stall: StallAfterApply) {
        lock(&self.faults).after.push(AfterRule {
            path_prefix: stall.path_prefix,
            method: stall.method,
            times: stall.times,
            then: AfterApply::Withhold,
        });
    }

    pub fn answer_after_apply(&self, answer: AnswerAfterApply) {
        lock(&self.faults).after.push(AfterRule {
            path_prefix: answer.path_prefix,
            method: answer.method,
            times: answer.times,
            then: AfterApply::Answer(answer.answer),
        });
    }

    pub fn swallow(&self, swallow: Swallow) {
        lock(&self.faults).swallowed.push(swallow);
    }

    pub fn hold_before_apply(&self, hold: HoldBeforeApply) {
        self.released.send_replace(false);
        lock(&self.faults).holds.push(hold);
    }

    /// Lets every held request (and any held later) be applied.
    pub fn release_held(&self) {
        self.released.send_replace(true);
    }

    /// Waits until held requests may go on.
    pub async fn wait_released(&self) {
        let _ = self.released.subscribe().wait_for(|r| *r).await;
    }

    /// The faults for a request: latency, and the first of a forced response, swallowing it,
    /// or what follows applying it. Each counted fault loses one use.
    pub fn take_fault(&self, method: &str, path: &str) -> Fault {
        let mut faults = lock(&self.faults);
        let forced = take_first(
            &mut faults.forced,
            |f| path.starts_with(&f.path_prefix),
            |f| &mut f.times,
        );
        let swallow = forced.is_none()
            && take_first(
                &mut faults.swallowed,
                |s| covers(&s.path_prefix, s.method.as_ref(), method, path),
                |s| &mut s.times,
            )
            .is_some();
        let hold = forced.is_none()
            && !swallow
            && take_first(
                &mut faults.holds,
                |h| covers(&h.path_prefix, h.method.as_ref(), method, path),
                |h| &mut h.times,
            )
            .is_some();
        let after = if forced.is_some() || swallow || hold {
            None
        } else {
            take_first(
                &mut faults.after,
                |r| covers(&r.path_prefix, r.method.as_ref(), method, path),
                |r| &mut r.times,
            )
            .map(|r| r.then)
        };
        Fault {
            latency: faults.latency,
            forced,
            swallow,
            hold,
            after,
        }
    }

    /// Logs a request as it arrives (so a client that gives up still leaves a trace); returns
    /// its index for [`SimState::record_outcome`].
    pub fn record(&self, request: RecordedRequest) -> Option<usize> {
        if !self.settings.record_requests {
            return None;
        }
        let index = {
            let mut log = lock(&self.requests);
            log.push(request);
            log.len() - 1
        };
        self.log_version.send_modify(|v| *v += 1);
        Some(index)
    }

    /// Adds the status sent (0 for none), the status of an answer `withheld` after applying the
    /// request, and the token the request authenticated as.
    pub fn record_outcome(
        &self,
        index: Option<usize>,
        sent: u16,
        withheld: Option<u16>,
        authenticated_as: Option<String>,
    ) {
        let Some(i) = index else { return };
        if let Some(r) = lock(&self.requests).get_mut(i) {
            r.status = sent;
            r.withheld = withheld;
            r.authenticated_as = authenticated_as;
        }
        self.log_version.send_modify(|v| *v += 1);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// The first logged request that satisfies `pred`, waiting up to `timeout` for one.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        let mut changes = self.log_version.subscribe();
        let wait = async {
            loop {
                changes.borrow_and_update();
                if let Some(r) = lock(&self.requests).iter().find(|r| pred(r)) {
                    return Some(r.clone());
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

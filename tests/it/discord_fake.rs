//! A local fake of the Discord REST routes the bot uses, recording every request, so serenity's
//! real `Http` can be pointed at it (proxy + rate limiter off). Like Discord, it refuses a body
//! that passes a length limit with 400 `Invalid Form Body`; every wait checks none was refused.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde_json::{Value, json};

/// One request the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub auth: Option<String>,
}

#[derive(Default)]
pub struct FakeState {
    pub calls: Mutex<Vec<Call>>,
    /// Users whose DMs are closed (403, code 50007).
    pub closed: Mutex<HashSet<u64>>,
    /// Users whose DMs close after the first message.
    pub closing: Mutex<HashSet<u64>>,
    /// Requests refused for passing a limit: why, and the path.
    pub refused: Mutex<Vec<String>>,
    /// The WebSocket URL `GET /gateway` answers with; `None` answers 503, as in an outage.
    pub gateway: Mutex<Option<String>>,
    next: AtomicU64,
    /// Woken at every recorded call.
    called: tokio::sync::Notify,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub url: String,
    pub state: Arc<FakeState>,
}

/// DM channel ids are the user id plus this.
pub const DM_BASE: u64 = 9_000_000;

pub fn user_json(id: u64, name: &str) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": name, "avatar": null, "bot": false})
}

fn message(id: u64, channel: &str, body: &Value) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel, "author": user_json(42, "tokenwarden"),
        "content": body.get("content").cloned().unwrap_or(json!("")), "timestamp": "2026-11-28T00:00:00+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": body.get("embeds").cloned().unwrap_or(json!([])), "pinned": false, "type": 0,
        "components": []
    })
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn at_most(what: &str, v: &Value, max: usize) -> Result<(), String> {
    let n = chars(v);
    if n > max {
        return Err(format!("{what} has {n} characters (at most {max})"));
    }
    Ok(())
}

/// Discord's limits on a message body (content, embeds, components) or an interaction
/// response's `data` (the same, plus autocomplete choices).
pub fn limits(body: &Value) -> Result<(), String> {
    at_most("content", &body["content"], 2000)?;
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        return Err(format!("{} embeds (at most 10)", embeds.len()));
    }
    let mut total = 0;
    for e in &embeds {
        at_most("embed title", &e["title"], 256)?;
        at_most("embed description", &e["description"], 4096)?;
        at_most("embed footer", &e["footer"]["text"], 2048)?;
        at_most("embed author", &e["author"]["name"], 256)?;
        total += chars(&e["title"])
            + chars(&e["description"])
            + chars(&e["footer"]["text"])
            + chars(&e["author"]["name"]);
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            return Err(format!("{} embed fields (at most 25)", fields.len()));
        }
        for f in &fields {
            at_most("embed field name", &f["name"], 256)?;
            at_most("embed field value", &f["value"], 1024)?;
            if chars(&f["name"]) == 0 || chars(&f["value"]) == 0 {
                return Err("an empty embed field".into());
            }
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    if total > 6000 {
        return Err(format!("embeds total {total} characters (at most 6000)"));
    }
    for row in body["components"].as_array().into_iter().flatten() {
        for c in row["components"].as_array().into_iter().flatten() {
            at_most("custom_id", &c["custom_id"], 100)?;
            at_most("button label", &c["label"], 80)?;
        }
    }
    let choices = body["choices"].as_array().cloned().unwrap_or_default();
    if choices.len() > 25 {
        return Err(format!("{} choices (at most 25)", choices.len()));
    }
    for c in &choices {
        at_most("choice name", &c["name"], 100)?;
        at_most("choice value", &c["value"], 100)?;
    }
    Ok(())
}

/// Discord's limits on registered commands and their options.
fn command_limits(commands: &Value) -> Result<(), String> {
    fn option(o: &Value) -> Result<(), String> {
        at_most("option name", &o["name"], 32)?;
        at_most("option description", &o["description"], 100)?;
        if o["max_length"].as_u64().is_some_and(|m| m > 6000) {
            return Err("max_length over 6000".into());
        }
        let choices = o["choices"].as_array().cloned().unwrap_or_default();
        if choices.len() > 25 {
            return Err("more than 25 choices".into());
        }
        for c in &choices {
            at_most("choice name", &c["name"], 100)?;
            at_most("choice value", &c["value"], 100)?;
        }
        o["options"]
            .as_array()
            .into_iter()
            .flatten()
            .try_for_each(option)
    }
    commands
        .as_array()
        .into_iter()
        .flatten()
        .try_for_each(option)
}

/// Refuses `body` like Discord when it passes a limit.
fn check(st: &FakeState, uri: &Uri, body: &str, commands: bool) -> Option<Response> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let verdict = if commands {
        command_limits(&v)
    } else {
        limits(&v)
    };
    let why = verdict.err()?;
    st.refused
        .lock()
        .unwrap()
        .push(format!("{} {why}", uri.path()));
    Some(
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 50035, "message": "Invalid Form Body"})),
        )
            .into_response(),
    )
}

fn record(st: &FakeState, method: Method, uri: &Uri, headers: &HeaderMap, body: &str) {
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    st.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        body,
        auth,
    });
    st.called.notify_waiters();
}

async fn dm_channel(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    record(&st, m, &uri, &h, &body);
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let user: u64 = v["recipient_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let channel = json!({"id": (DM_BASE + user).to_string(), "type": 1, "recipients": [user_json(user, "someone")], "last_message_id": null});
    axum::Json(channel).into_response()
}

async fn send(
    State(st): State<Arc<FakeState>>,
    Path(channel): Path<String>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = check(&st, &uri, &body, false) {
        return refusal;
    }
    record(&st, m, &uri, &h, &body);
    let id: u64 = channel.parse().unwrap_or(0);
    if id > DM_BASE {
        let user = id - DM_BASE;
        let closed = st.closed.lock().unwrap().contains(&user);
        if closed {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"code": 50007, "message": "Cannot send messages to this user"})),
            )
                .into_response();
        }
        if st.closing.lock().unwrap().remove(&user) {
            st.closed.lock().unwrap().insert(user);
        }
    }
    let n = st.next.fetch_add(1, Ordering::SeqCst) + 10_000;
    axum::Json(message(
        n,
        &channel,
        &serde_json::from_str(&body).unwrap_or_default(),
    ))
    .into_response()
}

async fn edit(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = check(&st, &uri, &body, false) {
        return refusal;
    }
    record(&st, m, &uri, &h, &body);
    axum::Json(message(
        1,
        "1",
        &serde_json::from_str(&body).unwrap_or_default(),
    ))
    .into_response()
}

async fn no_content(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    let data = serde_json::from_str::<Value>(&body).unwrap_or_default()["data"].to_string();
    if let Some(refusal) = check(&st, &uri, &data, false) {
        return refusal;
    }
    record(&st, m, &uri, &h, &body);
    StatusCode::NO_CONTENT.into_response()
}

async fn commands(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = check(&st, &uri, &body, true) {
        return refusal;
    }
    record(&st, m, &uri, &h, &body);
    axum::Json(json!([])).into_response()
}

/// `GET /gateway` (what serenity's client asks) and `GET /gateway/bot` (the same with sharding
/// advice): the WebSocket URL.
async fn gateway(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    record(&st, m, &uri, &h, &body);
    let Some(url) = st.gateway.lock().unwrap().clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"code": 0, "message": "503: Service Unavailable"})),
        )
            .into_response();
    };
    if !uri.path().ends_with("/bot") {
        return axum::Json(json!({ "url": url })).into_response();
    }
    let limit =
        json!({"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1});
    axum::Json(json!({"url": url, "shards": 1, "session_start_limit": limit})).into_response()
}

async fn unknown(
    State(st): State<Arc<FakeState>>,
    m: Method,
    uri: Uri,
    h: HeaderMap,
    body: String,
) -> Response {
    record(&st, m, &uri, &h, &body);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"code": 0, "message": "404: Not Found"})),
    )
        .into_response()
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/api/v10/users/@me/channels", post(dm_channel))
            .route("/api/v10/channels/{channel}/messages", post(send))
            .route(
                "/api/v10/channels/{channel}/messages/{message}",
                patch(edit),
            )
            .route(
                "/api/v10/webhooks/{app}/{token}/messages/@original",
                patch(edit),
            )
            .route("/api/v10/webhooks/{app}/{token}", post(edit))
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(no_content),
            )
            .route(
                "/api/v10/applications/{app}/guilds/{guild}/commands",
                put(commands),
            )
            .route("/api/v10/applications/{app}/commands", put(commands))
            .route("/api/v10/gateway", get(gateway))
            .route("/api/v10/gateway/bot", get(gateway))
            .fallback(unknown)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Fails the test if Discord would have refused a request, or if a message could mention
    /// (ping) anyone.
    pub fn assert_all_accepted(&self) {
        let refused = self.state.refused.lock().unwrap().clone();
        assert!(refused.is_empty(), "Discord refused: {refused:#?}");
        for c in self.calls() {
            let message = c.path.contains("/messages") || c.path.contains("/webhooks/");
            if message && c.method != "GET" {
                assert_eq!(
                    c.body["allowed_mentions"]["parse"],
                    json!([]),
                    "{} {} may mention someone: {}",
                    c.method,
                    c.path,
                    c.body
                );
            }
        }
    }

    /// Waits (up to 5 s) until a call matching `f` arrives, and returns it.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&Call) -> bool) -> Call {
        self.wait_for_within(what, Duration::from_secs(5), f).await
    }

    /// Waits (up to `within`) until a call matching `f` arrives, woken by each call.
    pub async fn wait_for_within(
        &self,
        what: &str,
        within: Duration,
        f: impl Fn(&Call) -> bool,
    ) -> Call {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let called = self.state.called.notified();
            tokio::pin!(called);
            called.as_mut().enable();
            self.assert_all_accepted();
            if let Some(c) = self.calls().into_iter().find(|c| f(c)) {
                return c;
            }
            if tokio::time::timeout_at(deadline, called).await.is_err() {
                panic!("Discord never saw {what}; calls: {:#?}", self.calls());
            }
        }
    }

    /// Calls whose path ends with `suffix`.
    pub fn calls_to(&self, method: &str, suffix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.ends_with(suffix))
            .collect()
    }
}

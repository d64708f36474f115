//! The built bot in gateway mode (`tokenwarden discord`) against a fake Discord: the gateway URL
//! comes from `[discord] api_base`, a command arriving over the WebSocket is answered over REST,
//! and SIGTERM ends the process promptly whatever state the connection is in.

use crate::backends::{Backend, on_both_stores};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenwarden::sim::RunningSim;
use tokenwarden::tokens::{Edition, RawToken};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::discord_fake::FakeDiscord;
use crate::discord_support::{ALICE, APP, BOT_TOKEN, command};
use crate::gateway_fake::{FakeGateway, Seen};
use crate::procs::{Proc, Tw};
use crate::support;

/// How long to wait for something the bot does.
const WAIT: Duration = Duration::from_secs(30);
/// A guard against a hung bot, not an expectation: it stops in well under a second.
const EXIT_GUARD: Duration = Duration::from_secs(10);

/// A config for the simulator and a `[discord]` section with `api_base`, in `dir`.
fn gateway_bot(dir: &Path, sim: &RunningSim, op: &RawToken, api_base: &str) -> Tw {
    let tw = Tw::new(dir, &sim.url(), op);
    let mut cfg = std::fs::read_to_string(&tw.config).unwrap();
    cfg.push_str(&format!(
        "\n[discord]\napplication_id = \"{APP}\"\nbot_token_file = \"discord.token\"\n\
         api_base = \"{api_base}\"\npoll_interval = \"1h\"\n\n[discord.roles]\nlist = [\"10\"]\n"
    ));
    std::fs::write(&tw.config, cfg).unwrap();
    std::fs::write(dir.join("discord.token"), BOT_TOKEN).unwrap();
    tw
}

/// Fails if the bot token shows in `text`, as is or hex-encoded (as WebSocket frames are logged).
fn assert_no_bot_token(text: &str) {
    assert!(
        !text.contains(BOT_TOKEN) && !text.contains(&hex::encode(BOT_TOKEN)),
        "the output shows the bot token"
    );
}

/// Sends SIGTERM and waits for the exit; says how long it took, for the record.
async fn terminate(bot: &mut Proc, state: &str) {
    bot.signal(libc::SIGTERM);
    let since = Instant::now();
    let status = bot.wait_exit(EXIT_GUARD).await;
    eprintln!(
        "discord_gateway: SIGTERM {state} -> {status:?} in {:?}",
        since.elapsed()
    );
    let status = status.unwrap_or_else(|| {
        panic!(
            "the bot did not exit within {EXIT_GUARD:?} of SIGTERM {state}\n{}",
            bot.seen()
        )
    });
    assert!(status.success(), "{status}\n{}", bot.seen());
    assert_no_bot_token(&bot.seen());
}

#[tokio::test]
async fn a_gateway_bot_takes_its_gateway_from_api_base_and_answers_a_command() {
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("ci-bot", None).unwrap();
    let fake = FakeDiscord::start().await;
    let mut gateway = FakeGateway::start().await;
    *fake.state.gateway.lock().unwrap() = Some(gateway.url.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut bot = gateway_bot(dir.path(), &sim, &op, &fake.url).spawn(&["discord"]);

    let connected = gateway.next(WAIT).await;
    assert!(
        matches!(&connected, Some(Seen::Connected(Some(q))) if q.contains("v=10")),
        "{connected:?}\n{}",
        bot.seen()
    );
    let identify = match gateway.next(WAIT).await {
        Some(Seen::Identified(d)) => d,
        other => panic!("expected IDENTIFY, got {other:?}\n{}", bot.seen()),
    };
    assert!(
        identify["token"]
            .as_str()
            .is_some_and(|t| t.trim_start_matches("Bot ") == BOT_TOKEN),
        "IDENTIFY does not carry the configured bot token"
    );
    assert_eq!(fake.calls_to("GET", "/api/v10/gateway").len(), 1);

    gateway.dispatch(command(4242, ALICE, "list", &[]));
    let answer = fake
        .wait_for("the answer to /token list", |c| {
            c.path == "/api/v10/interactions/4242/itoken-4242/callback"
        })
        .await;
    assert_eq!(
        (&answer.body["type"], &answer.body["data"]["flags"]),
        (&serde_json::json!(5), &serde_json::json!(64)),
        "deferred, only the caller sees it: {}",
        answer.body
    );
    let list = fake
        .wait_for("the list", |c| {
            c.method == "PATCH"
                && c.path == format!("/api/v10/webhooks/{APP}/itoken-4242/messages/@original")
        })
        .await;
    let description = list.body["embeds"][0]["description"].as_str();
    assert!(
        description.is_some_and(|d| d.contains("ci-bot")),
        "{}",
        list.body
    );
    let unknown: Vec<Value> = fake
        .calls()
        .iter()
        .filter(|c| !c.path.starts_with("/api/v10/gateway") && !c.path.contains("4242"))
        .map(|c| serde_json::json!([c.method, c.path]))
        .collect();
    assert!(unknown.is_empty(), "unexpected calls: {unknown:?}");

    terminate(&mut bot, "while connected").await;
    let closed = gateway.next(WAIT).await;
    assert!(
        matches!(closed, Some(Seen::Closed(Some(1000)))),
        "the gateway connection was not closed normally: {closed:?}"
    );
}

/// A port where nothing listens: connections are refused.
fn refusing_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A listener that accepts connections, holds them and never answers; reports each one.
async fn silent_listener() -> (SocketAddr, UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn sigterm_stops_a_gateway_bot_whose_gateway_refuses_connections() {
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    *fake.state.gateway.lock().unwrap() = Some(format!("ws://{}", refusing_port()));
    let dir = tempfile::tempdir().unwrap();
    let mut bot = gateway_bot(dir.path(), &sim, &op, &fake.url).spawn(&["discord"]);

    // serenity retries a failed shard start every 5 s, forever.
    let tried = bot
        .wait_stderr(|l| l.contains("Err starting shard"), WAIT)
        .await;
    assert!(tried.is_some(), "{}", bot.seen());
    terminate(&mut bot, "while the gateway refuses connections").await;
}

#[tokio::test]
async fn sigterm_stops_a_gateway_bot_whose_gateway_never_answers() {
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    let (silent, mut accepted) = silent_listener().await;
    *fake.state.gateway.lock().unwrap() = Some(format!("ws://{silent}"));
    let dir = tempfile::tempdir().unwrap();
    let mut bot = gateway_bot(dir.path(), &sim, &op, &fake.url).spawn(&["discord"]);

    let tried = tokio::time::timeout(WAIT, accepted.recv()).await;
    assert!(matches!(tried, Ok(Some(()))), "{}", bot.seen());
    terminate(&mut bot, "while the WebSocket handshake is unanswered").await;
}

#[tokio::test]
async fn sigterm_stops_a_gateway_bot_whose_rest_api_never_answers() {
    let (sim, op) = support::sim(Edition::Core).await;
    let (silent, mut accepted) = silent_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let api_base = format!("http://{silent}");
    let mut bot = gateway_bot(dir.path(), &sim, &op, &api_base).spawn(&["discord"]);

    let asked = tokio::time::timeout(WAIT, accepted.recv()).await;
    assert!(matches!(asked, Ok(Some(()))), "{}", bot.seen());
    terminate(&mut bot, "while GET /gateway is unanswered").await;
}

/// The next thing the bot does on the gateway, which must be `what`.
async fn expect(gateway: &mut FakeGateway, what: &str, bot: &Proc) {
    let seen = gateway.next(WAIT).await;
    let matched = match (&seen, what) {
        (Some(Seen::Connected(_)), "connected") | (Some(Seen::Identified(_)), "identified") => true,
        (Some(Seen::Closed(code)), "closed") => code.is_none(),
        (Some(Seen::Closed(code)), "closed normally") => *code == Some(1000),
        _ => false,
    };
    let seen = seen.map(|s| s.to_string());
    assert!(matched, "expected {what}, got {seen:?}\n{}", bot.seen());
}

async fn of_gateway_bots_sharing_a_store_one_connects_and_another_takes_over(backend: Backend) {
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    let mut gateway = FakeGateway::start().await;
    *fake.state.gateway.lock().unwrap() = Some(gateway.url.clone());
    let dir = tempfile::tempdir().unwrap();
    let tw = backend.configure(gateway_bot(dir.path(), &sim, &op, &fake.url));
    const WAITS: &str = "another process holds the Discord gateway";

    let mut first = tw.spawn(&["discord"]);
    expect(&mut gateway, "connected", &first).await;
    expect(&mut gateway, "identified", &first).await;
    let mut second = tw.spawn(&["discord"]);
    let waits = second.wait_stderr(|l| l.contains(WAITS), WAIT).await;
    assert!(waits.is_some(), "{}", second.seen());
    assert_eq!(
        fake.calls_to("GET", "/api/v10/gateway").len(),
        1,
        "the waiting bot does not even ask where the gateway is"
    );

    // The holder dies without letting go; the other connects.
    first.signal(libc::SIGKILL);
    first.wait_exit(WAIT).await;
    expect(&mut gateway, "closed", &second).await;
    expect(&mut gateway, "connected", &second).await;
    expect(&mut gateway, "identified", &second).await;
    assert!(
        second
            .wait_stderr(|l| l.contains("took the Discord gateway over"), WAIT)
            .await
            .is_some(),
        "{}",
        second.seen()
    );
    gateway.dispatch(command(4343, ALICE, "list", &[]));
    fake.wait_for("the answer from the bot that took over", |c| {
        c.path == "/api/v10/interactions/4343/itoken-4343/callback"
    })
    .await;

    // A third waits; the holder stops on SIGTERM and lets go, and the third connects.
    let mut third = tw.spawn(&["discord"]);
    let waits = third.wait_stderr(|l| l.contains(WAITS), WAIT).await;
    assert!(waits.is_some(), "{}", third.seen());
    terminate(&mut second, "while holding the gateway").await;
    expect(&mut gateway, "closed normally", &third).await;
    expect(&mut gateway, "connected", &third).await;
    expect(&mut gateway, "identified", &third).await;
    terminate(&mut third, "after taking the gateway over").await;
}

#[tokio::test]
async fn a_bot_that_lost_the_gateway_while_it_could_not_connect_closes_the_late_connection() {
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    // The gateway's port refuses connections for now: the bot holds the lease and retries.
    let port = refusing_port();
    *fake.state.gateway.lock().unwrap() = Some(format!("ws://{port}"));
    let dir = tempfile::tempdir().unwrap();
    let tw = gateway_bot(dir.path(), &sim, &op, &fake.url);
    let mut bot = tw.spawn(&["discord"]);
    let tried = bot
        .wait_stderr(|l| l.contains("Err starting shard"), WAIT)
        .await;
    assert!(tried.is_some(), "{}", bot.seen());

    // Another process (on another host) takes the lease over; the bot notices at its renewal.
    let conn = rusqlite::Connection::open(dir.path().join("tokenwarden.db")).unwrap();
    let stolen = conn
        .execute(
            "UPDATE leases SET holder = 'elsewhere:1:feed', until_ms = until_ms + 3600000 \
             WHERE name = 'discord.gateway'",
            [],
        )
        .unwrap();
    assert_eq!(stolen, 1);
    let lost = bot
        .wait_stderr(|l| l.contains("lease is another process's now"), WAIT)
        .await;
    assert!(lost.is_some(), "{}", bot.seen());

    // The gateway comes up; serenity's retry loop, which cannot be stopped, connects, and the
    // bot closes that connection for good instead of serving without the lease.
    let mut gateway = FakeGateway::start_on(tokio::net::TcpListener::bind(port).await.unwrap());
    expect(&mut gateway, "connected", &bot).await;
    expect(&mut gateway, "identified", &bot).await;
    expect(&mut gateway, "closed normally", &bot).await;
    let closing = bot
        .wait_stderr(
            |l| l.contains("no longer holds the lease for came up"),
            WAIT,
        )
        .await;
    assert!(closing.is_some(), "{}", bot.seen());
    gateway.dispatch(command(4444, ALICE, "list", &[]));
    // serenity would retry a closed connection within about 5 s; none comes.
    let again = gateway.next(Duration::from_secs(12)).await;
    assert!(
        again.is_none(),
        "reconnected: {:?}",
        again.map(|s| s.to_string())
    );
    assert!(
        fake.calls_to("POST", "/api/v10/interactions/4444/itoken-4444/callback")
            .is_empty()
    );
    terminate(&mut bot, "after losing the gateway lease").await;
}

/// Gateway mode has no HTTP server of its own: `--health ADDR` gives a load balancer or a
/// supervisor `/health` and `/ready` (the store and InfluxDB), whatever the gateway is doing.
#[tokio::test]
async fn a_gateway_bot_answers_health_and_readiness_checks_on_request() {
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    *fake.state.gateway.lock().unwrap() = Some(format!("ws://{}", refusing_port()));
    let dir = tempfile::tempdir().unwrap();
    let mut bot = gateway_bot(dir.path(), &sim, &op, &fake.url).spawn(&[
        "discord",
        "--health",
        "127.0.0.1:0",
    ]);
    let base = bot
        .listening_url("tokenwarden health checks listening on ")
        .await;
    let base = base
        .trim_end_matches("/health and /ready")
        .trim_end_matches("/health");
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "the store and InfluxDB answer");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    drop(sim);
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 503, "InfluxDB is gone");
    terminate(&mut bot, "after answering health checks").await;
}

on_both_stores!(of_gateway_bots_sharing_a_store_one_connects_and_another_takes_over);

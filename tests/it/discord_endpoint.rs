//! The Discord interactions endpoint's connection limits, as a client meets them: a request
//! whose headers stall and a kept-alive connection left idle are closed, and past the
//! connection cap comes a 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokenwarden::discord::{Bot, serve_interactions_on};
use tokenwarden::http_serve::HttpLimits;
use tokenwarden::sim::RunningSim;
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::discord_fake::FakeDiscord;
use crate::discord_support::{BOT_TOKEN, settings};
use crate::support::{closed_by_server, instance, service, sim};

const SHORT: Duration = Duration::from_secs(1);

/// The endpoint served by the real listener on a free port, within `limits`; it stops when
/// the guard drops.
async fn endpoint(limits: HttpLimits) -> (SocketAddr, DropGuard, RunningSim, FakeDiscord) {
    let (sim, op) = sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let svc = service(
        &sim,
        &op,
        instance("local", None, &[], false),
        Store::open_in_memory().unwrap(),
    );
    let mut s = settings(&fake.url, &key);
    s.endpoint_limits = limits;
    let bot = Bot::new(Arc::new(svc), s, &RawToken::new(BOT_TOKEN.into()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_interactions_on(bot, listener, stop.clone()));
    (addr, stop.drop_guard(), sim, fake)
}

#[tokio::test]
async fn the_endpoint_disconnects_a_request_whose_headers_stall() {
    let limits = HttpLimits {
        header_read_timeout: SHORT,
        ..HttpLimits::default()
    };
    let (addr, _stop, _sim, _fake) = endpoint(limits).await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /interactions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(stalled).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn the_endpoint_closes_a_kept_alive_connection_left_idle() {
    let limits = HttpLimits {
        idle_timeout: SHORT,
        ..HttpLimits::default()
    };
    let (addr, _stop, _sim, _fake) = endpoint(limits).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"POST /interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let answer = closed_by_server(idle).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "answered first: {answer}"
    );
    assert!(answer.contains("missing request signature"), "{answer}");
}

#[tokio::test]
async fn the_endpoint_answers_503_past_its_connection_cap() {
    let limits = HttpLimits {
        max_connections: 1,
        ..HttpLimits::default()
    };
    let (addr, _stop, _sim, _fake) = endpoint(limits).await;
    let _held = TcpStream::connect(addr).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/interactions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let text = r.text().await.unwrap();
    assert!(text.contains("too many open connections"), "{text}");
}

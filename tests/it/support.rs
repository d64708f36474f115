//! Shared test support: simulators on port 0, clients and services wired to them, a capture of
//! every log line for leak checks, and a delivery port that records what it was given.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::service::{
    Clock, DeliveryFailure, DeliveryReceipt, InstanceSettings, SecretDelivery, Ticket, TokenService,
};
use tokenwarden::sim::{RunningSim, SimSettings, Simulator};
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, ProtectedNames, RawToken, Token, TokenBackend};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Everything any test logged, at every level.
static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(Arc::clone(&buf));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_filter(tokenwarden::logging::filter("trace", "trace"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
    buf
});

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing logs (call first in every test).
pub fn init_logs() {
    LazyLock::force(&LOGS);
}

pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// Fails if `text` holds anything that looks like a raw token.
pub fn assert_no_token(what: &str, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find("apiv3_") {
        let after = &rest[i + 6..];
        assert!(
            after.starts_with("<redacted>")
                || !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{what} holds a raw token near: {}",
            &rest[i..(i + 40).min(rest.len())]
        );
        rest = after;
    }
}

/// Fails if the logs of the whole test binary so far hold a raw token.
pub fn assert_logs_clean() {
    assert_no_token("the log", &logs());
}

pub fn settings(edition: Edition) -> SimSettings {
    SimSettings {
        edition,
        record_requests: true,
        ..Default::default()
    }
}

/// A simulator with an operator token; returns it and the token.
pub async fn sim(edition: Edition) -> (RunningSim, RawToken) {
    init_logs();
    let sim = Simulator::new(settings(edition)).spawn().await.unwrap();
    let op = sim.control.create_operator().unwrap();
    (sim, op)
}

pub fn client(sim: &RunningSim, token: Option<&RawToken>) -> InfluxClient {
    InfluxClient::new(ClientOptions {
        url: sim.url(),
        token: token.cloned(),
        timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .unwrap()
}

/// Per-instance policy for [`service`].
pub fn instance(
    name: &str,
    edition: Option<Edition>,
    protected: &[&str],
    read_only: bool,
) -> InstanceSettings {
    InstanceSettings {
        name: name.into(),
        read_only,
        protected: ProtectedNames::new(protected).unwrap(),
        edition,
        operator_token_file: None,
        credential_file: None,
    }
}

/// A service over one simulator instance named `local`, with a tokio-driven clock.
pub fn service(
    sim: &RunningSim,
    op: &RawToken,
    settings: InstanceSettings,
    store: Store,
) -> TokenService {
    let backend: Arc<dyn TokenBackend> = Arc::new(client(sim, Some(op)));
    TokenService::new(
        vec![(settings, backend)],
        None,
        store,
        Clock::tokio(),
        Duration::from_secs(300),
    )
}

/// A delivery port that keeps what it was handed, or fails on purpose.
#[derive(Default)]
pub struct Recorder {
    pub fail: bool,
    pub delivered: Mutex<Vec<(Token, String)>>,
}

impl Recorder {
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Default::default()
        }
    }

    pub fn secrets(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

#[async_trait]
impl SecretDelivery for Recorder {
    async fn deliver(
        &self,
        token: &Token,
        secret: &RawToken,
        _ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        if self.fail {
            return Err(DeliveryFailure("the recipient's inbox is closed".into()));
        }
        self.delivered
            .lock()
            .unwrap()
            .push((token.clone(), secret.expose().to_owned()));
        Ok(DeliveryReceipt::delivered("recorded"))
    }
}

/// Waits until the server closes `stream`, and returns what it sent before. Fails after 30 s:
/// the bound is only there so that a server that never closes fails the test instead of hanging.
pub async fn closed_by_server(mut stream: tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    got
}

/// The JSON-RPC message in an answer that is either JSON or a server-sent event stream.
pub async fn rpc_message(r: reqwest::Response) -> serde_json::Value {
    let body = r.text().await.unwrap();
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.starts_with('{'))
        .unwrap_or(body.as_str());
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {body}"))
}

//! A local fake of Discord's WebSocket gateway, enough for one bot: HELLO, then READY once the
//! bot sends IDENTIFY, heartbeats acknowledged, and each interaction a test hands it sent as an
//! INTERACTION_CREATE dispatch. What the bot does arrives on a channel, so tests wait on events.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};

use crate::discord_support::APP;

/// Something the bot did on the gateway.
#[derive(Debug)]
pub enum Seen {
    /// It opened a WebSocket, with this query string (`v=10`).
    Connected(Option<String>),
    /// It sent IDENTIFY with this `d` (which holds the bot token: never print it).
    Identified(Value),
    /// It closed the connection, with this close code, or dropped it (`None`).
    Closed(Option<u16>),
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Connected(query) => write!(f, "connected with query {query:?}"),
            Seen::Identified(_) => write!(f, "identified"),
            Seen::Closed(code) => write!(f, "closed with {code:?}"),
        }
    }
}

pub struct FakeGateway {
    /// The URL to hand out from `GET /gateway`.
    pub url: String,
    seen: UnboundedReceiver<Seen>,
    interactions: UnboundedSender<Value>,
}

impl FakeGateway {
    pub async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// A fake gateway on `listener` (a port a bot was already told about, say).
    pub fn start_on(listener: TcpListener) -> Self {
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (seen_tx, seen) = unbounded_channel();
        let (interactions, queued) = unbounded_channel();
        tokio::spawn(serve(listener, seen_tx, queued));
        Self {
            url,
            seen,
            interactions,
        }
    }

    /// The next thing the bot does, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Seen> {
        tokio::time::timeout(timeout, self.seen.recv())
            .await
            .ok()
            .flatten()
    }

    /// Sends `interaction` (as Discord's REST-endpoint payload) as INTERACTION_CREATE once the
    /// bot is identified.
    pub fn dispatch(&self, interaction: Value) {
        self.interactions.send(interaction).unwrap();
    }
}

/// Serves one connection after the other.
async fn serve(
    listener: TcpListener,
    seen: UnboundedSender<Seen>,
    mut queued: UnboundedReceiver<Value>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        session(tcp, &seen, &mut queued).await;
    }
}

fn ready(url: &str) -> Value {
    json!({
        "v": 10, "user": crate::discord_fake::user_json(APP, "tokenwarden"), "guilds": [],
        "session_id": "fake-session", "resume_gateway_url": url, "shard": [0, 1],
        "application": {"id": APP.to_string(), "flags": 0}
    })
}

/// Keeps the query string of the upgrade request.
struct KeepQuery<'a>(&'a mut Option<String>);

impl Callback for KeepQuery<'_> {
    fn on_request(self, req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
        *self.0 = req.uri().query().map(str::to_owned);
        Ok(resp)
    }
}

async fn session(
    tcp: TcpStream,
    seen: &UnboundedSender<Seen>,
    queued: &mut UnboundedReceiver<Value>,
) {
    let url = format!("ws://{}", tcp.local_addr().unwrap());
    let mut query = None;
    let accepted = tokio_tungstenite::accept_hdr_async(tcp, KeepQuery(&mut query)).await;
    let Ok(mut ws) = accepted else { return };
    let _ = seen.send(Seen::Connected(query));
    let text = |v: Value| Message::Text(v.to_string());
    if ws
        .send(text(json!({"op": 10, "d": {"heartbeat_interval": 41_250}})))
        .await
        .is_err()
    {
        return;
    }
    let mut seq = 0;
    let mut identified = false;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let v: Value = match msg {
                    Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap_or_default(),
                    Some(Ok(Message::Close(frame))) => {
                        let _ = seen.send(Seen::Closed(frame.map(|f| u16::from(f.code))));
                        return;
                    }
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => {
                        let _ = seen.send(Seen::Closed(None));
                        return;
                    }
                };
                let reply = match v["op"].as_u64() {
                    Some(1) => json!({"op": 11}),
                    Some(2) => {
                        identified = true;
                        let _ = seen.send(Seen::Identified(v["d"].clone()));
                        seq += 1;
                        json!({"op": 0, "s": seq, "t": "READY", "d": ready(&url)})
                    }
                    _ => continue,
                };
                if ws.send(text(reply)).await.is_err() {
                    return;
                }
            }
            Some(interaction) = queued.recv(), if identified => {
                seq += 1;
                let event = json!({"op": 0, "s": seq, "t": "INTERACTION_CREATE", "d": interaction});
                if ws.send(text(event)).await.is_err() {
                    return;
                }
            }
        }
    }
}

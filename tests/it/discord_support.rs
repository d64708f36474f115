//! Discord test harness: the simulator as InfluxDB, the fake Discord REST API, the bot's real
//! interactions endpoint, and signed interaction payloads shaped like Discord's.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tokenwarden::discord::{Access, Bot, Capability, DiscordSettings, interactions_router};
use tokenwarden::service::TokenService;
use tokenwarden::sim::RunningSim;
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken};

use crate::discord_fake::{FakeDiscord, user_json};
use crate::support::{instance, service, sim};

pub const APP: u64 = 42;
pub const GUILD: u64 = 500;
pub const APPROVALS: u64 = 800;
pub const BOT_TOKEN: &str = "discord-bot-token-for-tests";

/// A Discord user of the tests, with roles in the guild.
#[derive(Clone, Copy)]
pub struct Who {
    pub id: u64,
    pub name: &'static str,
    pub roles: &'static [u64],
}

/// list, create and delete (role 10).
pub const ALICE: Who = Who {
    id: 1,
    name: "alice",
    roles: &[10],
};
/// everything (roles 10 and 20).
pub const BOB: Who = Who {
    id: 2,
    name: "bob",
    roles: &[10, 20],
};
/// approve (role 20).
pub const CAROL: Who = Who {
    id: 3,
    name: "carol",
    roles: &[20],
};
/// approve (role 20).
pub const FRANK: Who = Who {
    id: 7,
    name: "frank",
    roles: &[20],
};
/// nothing.
pub const MALLORY: Who = Who {
    id: 4,
    name: "mallory",
    roles: &[],
};
/// create, with DMs closed.
pub const DAVE: Who = Who {
    id: 5,
    name: "dave",
    roles: &[10],
};
/// create, with DMs that close after the first message.
pub const ERIN: Who = Who {
    id: 6,
    name: "erin",
    roles: &[10],
};

pub fn settings(api_base: &str, key: &SigningKey) -> DiscordSettings {
    let mut access = Access::default();
    for cap in [Capability::List, Capability::Create, Capability::Delete] {
        access.roles.insert(cap, vec![10]);
    }
    access.roles.insert(Capability::Approve, vec![20]);
    DiscordSettings {
        application_id: APP,
        public_key: Some(key.verifying_key().to_bytes()),
        api_base: api_base.to_owned(),
        guild_ids: vec![GUILD],
        approvals_channel_id: Some(APPROVALS),
        approval_timeout: Duration::from_secs(900),
        required_approvals: 1,
        allow_self_approval: false,
        approve_from: vec![
            tokenwarden::actor::ActorKind::Discord,
            tokenwarden::actor::ActorKind::Cli,
        ],
        access,
        poll_interval: Duration::from_secs(3600),
        default_member_permissions: Default::default(),
        endpoint_limits: Default::default(),
    }
}

pub struct Harness {
    pub sim: RunningSim,
    pub op: RawToken,
    pub fake: FakeDiscord,
    pub service: Arc<TokenService>,
    pub bot: Arc<Bot>,
    pub url: String,
    pub key: SigningKey,
    next_id: std::sync::atomic::AtomicU64,
}

/// A core and a bot over `store`, with the endpoint served on a free port.
async fn wire(
    sim: &RunningSim,
    op: &RawToken,
    fake: &FakeDiscord,
    key: &SigningKey,
    store: Store,
    tweak: impl FnOnce(&mut DiscordSettings),
) -> (Arc<TokenService>, Arc<Bot>, String) {
    let svc = Arc::new(service(
        sim,
        op,
        instance("local", None, &["keep-*"], false),
        store,
    ));
    let mut s = settings(&fake.url, key);
    tweak(&mut s);
    let bot = Bot::new(Arc::clone(&svc), s, &RawToken::new(BOT_TOKEN.into()));
    let app = interactions_router(Arc::clone(&bot)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (svc, bot, url)
}

impl Harness {
    pub async fn new(
        edition: Edition,
        store: Store,
        tweak: impl FnOnce(&mut DiscordSettings),
    ) -> Self {
        let (sim, op) = sim(edition).await;
        sim.control.create_database("metrics");
        let fake = FakeDiscord::start().await;
        fake.state.closed.lock().unwrap().insert(DAVE.id);
        fake.state.closing.lock().unwrap().insert(ERIN.id);
        let key = SigningKey::from_bytes(&[7; 32]);
        let (service, bot, url) = wire(&sim, &op, &fake, &key, store, tweak).await;
        Self {
            sim,
            op,
            fake,
            service,
            bot,
            url,
            key,
            next_id: 1000.into(),
        }
    }

    /// A new core and bot (as after a process restart) over `store`, same InfluxDB and Discord.
    pub async fn restart(&mut self, store: Store) {
        let (service, bot, url) =
            wire(&self.sim, &self.op, &self.fake, &self.key, store, |_| {}).await;
        (self.service, self.bot, self.url) = (service, bot, url);
    }

    /// A bot over `service` (another InfluxDB, say), same Discord.
    pub async fn rewire(&mut self, service: Arc<TokenService>) {
        let bot = Bot::new(
            Arc::clone(&service),
            settings(&self.fake.url, &self.key),
            &RawToken::new(BOT_TOKEN.into()),
        );
        let app = interactions_router(Arc::clone(&bot)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.url = format!("http://{}/interactions", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (self.service, self.bot) = (service, bot);
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    /// Posts `body` signed at `ts` (seconds); returns status and body.
    pub async fn post_signed(&self, body: &str, ts: i64, key: &SigningKey) -> (u16, String) {
        let sig = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
        let r = reqwest::Client::new()
            .post(&self.url)
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts.to_string())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Sends an interaction the way Discord does; returns the initial response.
    pub async fn send(&self, interaction: Value) -> Value {
        let (status, body) = self
            .post_signed(
                &interaction.to_string(),
                chrono::Utc::now().timestamp(),
                &self.key,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        // Discord shows "interaction failed" for an answer past its limits.
        if let Err(why) = crate::discord_fake::limits(&answer["data"]) {
            panic!("Discord would refuse this answer ({why}): {answer}");
        }
        if answer["type"] == 4 {
            assert_eq!(
                answer["data"]["allowed_mentions"]["parse"],
                json!([]),
                "{answer}"
            );
        }
        answer
    }

    pub fn has(&self, name: &str) -> bool {
        self.sim.control.token_names().iter().any(|n| n == name)
    }
}

/// A message text as a Discord user reads it: markdown escapes (`\*`, `\-` ...) show as the
/// character they escape.
pub fn shown(text: &Value) -> String {
    let mut out = String::new();
    let mut chars = text.as_str().unwrap_or_default().chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(n)) if n.is_ascii_punctuation() => out.push(chars.next().unwrap_or(c)),
            _ => out.push(c),
        }
    }
    out
}

fn member(who: Who) -> Value {
    json!({
        "user": user_json(who.id, who.name), "roles": who.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "joined_at": "2026-01-01T00:00:00+00:00", "deaf": false, "mute": false, "flags": 0, "permissions": "0",
        "nick": null, "avatar": null, "premium_since": null, "pending": false, "communication_disabled_until": null
    })
}

fn base(kind: u8, id: u64, who: Who, in_guild: bool) -> Value {
    let mut v = json!({
        "id": id.to_string(), "application_id": APP.to_string(), "type": kind, "token": format!("itoken-{id}"),
        "version": 1, "channel_id": "600", "locale": "en-US", "entitlements": [], "attachment_size_limit": 8_388_608,
        "app_permissions": "0", "authorizing_integration_owners": {}, "context": if in_guild { 0 } else { 1 }
    });
    if in_guild {
        v["guild_id"] = json!(GUILD.to_string());
        v["guild_locale"] = json!("en-US");
        v["member"] = member(who);
    } else {
        v["user"] = user_json(who.id, who.name);
    }
    v
}

fn options(opts: &[(&str, &str)]) -> Vec<Value> {
    opts.iter()
        .map(|(n, v)| json!({"name": n, "type": 3, "value": v}))
        .collect()
}

/// `/token <sub> ...` by `who` in the guild.
pub fn command(id: u64, who: Who, sub: &str, opts: &[(&str, &str)]) -> Value {
    let mut v = base(2, id, who, true);
    v["data"] = json!({"id": "700", "name": "token", "type": 1, "options": [{"name": sub, "type": 1, "options": options(opts)}]});
    v
}

/// The same, sent in a DM.
pub fn command_in_dm(id: u64, who: Who, sub: &str) -> Value {
    let mut v = base(2, id, who, false);
    v["data"] = json!({"id": "700", "name": "token", "type": 1, "options": [{"name": sub, "type": 1, "options": []}]});
    v
}

/// A click on button `custom_id` of message `message` in `channel`.
pub fn click(id: u64, who: Who, custom_id: &str, channel: u64, message: u64) -> Value {
    let mut v = base(3, id, who, true);
    v["channel_id"] = json!(channel.to_string());
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v["message"] = json!({
        "id": message.to_string(), "channel_id": channel.to_string(), "author": user_json(APP, "tokenwarden"),
        "content": "", "timestamp": "2026-11-28T00:00:00+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false,
        "type": 0, "components": []
    });
    v
}

/// Autocomplete for option `focused` of `/token <sub>` with `typed` so far.
pub fn autocomplete(id: u64, who: Who, sub: &str, focused: &str, typed: &str) -> Value {
    let mut v = base(4, id, who, true);
    v["data"] = json!({"id": "700", "name": "token", "type": 1, "options": [{"name": sub, "type": 1,
        "options": [{"name": focused, "type": 3, "value": typed, "focused": true}]}]});
    v
}

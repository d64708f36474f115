//! Scenario 5: the initial Discord interaction response while InfluxDB is slow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::tokens::{Edition, RawToken};

use crate::procs::core_sim;
use crate::report::{ms, row, stats, verdict};

pub async fn discord(quick: bool) {
    use ed25519_dalek::{Signer, SigningKey};
    println!("\n5. Discord: time to the initial interaction response while InfluxDB takes 5 s");
    let (sim, op) = core_sim(0).await;
    sim.control.set_latency(Duration::from_secs(5));
    let backend = Arc::new(
        InfluxClient::new(ClientOptions {
            url: sim.url(),
            token: Some(op),
            timeout: Duration::from_secs(10),
            ca_file: None,
        })
        .unwrap(),
    );
    let settings = tokenwarden::service::InstanceSettings {
        name: "bench".into(),
        read_only: false,
        protected: tokenwarden::tokens::ProtectedNames::default(),
        edition: Some(Edition::Core),
        operator_token_file: None,
        credential_file: None,
    };
    let store = tokenwarden::store::Store::open_in_memory().unwrap();
    let service = Arc::new(tokenwarden::service::TokenService::new(
        vec![(settings, backend)],
        None,
        store,
        tokenwarden::service::Clock::System,
        Duration::from_secs(300),
    ));
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut access = tokenwarden::discord::Access::default();
    access
        .roles
        .insert(tokenwarden::discord::Capability::List, vec![10]);
    let discord = tokenwarden::discord::DiscordSettings {
        application_id: 42,
        public_key: Some(key.verifying_key().to_bytes()),
        api_base: "http://127.0.0.1:9".into(),
        guild_ids: vec![],
        approvals_channel_id: None,
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
    };
    let bot = tokenwarden::discord::Bot::new(service, discord, &RawToken::new("bench".into()));
    let app = tokenwarden::discord::interactions_router(bot).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let user = json!({"id": "1", "username": "bench", "discriminator": "0", "global_name": "bench", "avatar": null});
    let http = reqwest::Client::new();
    let runs = if quick { 5 } else { 30 };
    let mut times = vec![];
    for i in 0..runs {
        let body = json!({
            "id": (1000 + i).to_string(), "application_id": "42", "type": 2, "token": format!("t{i}"), "version": 1,
            "channel_id": "600", "guild_id": "500", "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
            "attachment_size_limit": 8_388_608, "app_permissions": "0", "authorizing_integration_owners": {}, "context": 0,
            "member": {"user": user, "roles": ["10"], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": false, "mute": false,
                "flags": 0, "permissions": "0", "nick": null, "avatar": null, "premium_since": null, "pending": false,
                "communication_disabled_until": null},
            "data": {"id": "700", "name": "token", "type": 1, "options": [{"name": "list", "type": 1, "options": []}]}
        })
        .to_string();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
        let t = Instant::now();
        let r = http
            .post(&url)
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts)
            .body(body)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        times.push(t.elapsed());
        assert_eq!(v["type"], 5, "deferred: {v}");
    }
    let s = stats(times);
    row("signed /token list to the deferred answer", &s);
    verdict(
        "median",
        s.median < Duration::from_millis(100),
        ms(s.median),
    );
}

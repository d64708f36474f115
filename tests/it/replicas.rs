//! Replicas sharing a PostgreSQL store: what one does, the others see and honour.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokenwarden::actor::Actor;
use tokenwarden::gate::GateMode;
use tokenwarden::service::{Clock, GateRequest, TokenService};
use tokenwarden::sim::StallAfterApply;
use tokenwarden::tokens::{Edition, TokenName};

use crate::backends::Backend;
use crate::discord_fake::{DM_BASE, FakeDiscord};
use crate::discord_support::{
    ALICE, APP, APPROVALS, BOB, BOT_TOKEN, CAROL, FRANK, GUILD, click, command,
};
use crate::identity::{fixture, listed};
use crate::mcp_takeover::{message, send};
use crate::procs::Tw;
use crate::support::{self, assert_no_token};

/// A regenerated operator secret reaches this process only, unless it lands in the file every
/// replica reads: on a shared store, regenerating into anything else is refused before InfluxDB
/// is asked, and regenerating into that file works for every replica.
#[tokio::test]
async fn regeneration_on_a_shared_store_goes_only_where_every_replica_reads_it() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let tw = backend.configure(Tw::new(dir.path(), &sim.url(), &op));
    let own = dir.path().join("operator.token");
    let elsewhere = dir.path().join("new-operator.token");
    let regenerate_into = |file: &std::path::Path| {
        vec![
            "tokens".to_owned(),
            "regenerate-operator".into(),
            "--yes".into(),
            "--token-file".into(),
            file.display().to_string(),
        ]
    };
    let run = |tw: &Tw, args: Vec<String>| {
        let tw = tw.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tw.run(&args, "").await
        }
    };
    let regenerations = || {
        sim.control
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/regenerate"))
            .count()
    };

    let r = run(&tw, regenerate_into(&elsewhere)).await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("shared by replicas"), "{}", r.stderr);
    assert!(r.stderr.contains("which the replicas read"), "{}", r.stderr);
    assert!(!elsewhere.exists());

    let config = std::fs::read_to_string(&tw.config).unwrap();
    std::fs::write(
        &tw.config,
        config.replace(
            "token_file = \"operator.token\"",
            "token_env = \"TW_OPERATOR\"",
        ),
    )
    .unwrap();
    let from_env = tw.clone().env("TW_OPERATOR", op.expose());
    let r = run(&from_env, regenerate_into(&own)).await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("environment variable"), "{}", r.stderr);
    assert_eq!(regenerations(), 0, "InfluxDB was never asked");
    std::fs::write(&tw.config, config).unwrap();

    let r = run(&tw, regenerate_into(&own)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(regenerations(), 1);
    // Another replica is another process reading the same file.
    let r = tw.run(&["tokens", "list"], "").await;
    assert_eq!(
        r.code, 0,
        "another replica reads the new secret: {}",
        r.stderr
    );
}

/// A TCP proxy on loopback that hands each new connection to the next of `backends` in turn,
/// as a round-robin load balancer does.
pub async fn round_robin(listener: tokio::net::TcpListener, backends: Vec<String>) {
    let mut next = 0usize;
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let target = backends[next % backends.len()].clone();
        next += 1;
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Shifts every reveal link and link deadline of the store an hour into the past: the
/// database's clock is the one links lapse by, so this is an hour passing for them.
fn an_hour_passes_for_links(url: &str) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.batch_execute(
            "UPDATE reveal_links SET expires_ms = expires_ms - 3600000;
             UPDATE journal SET due_at = due_at - 3600000,
                 body = jsonb_set(CAST(body AS jsonb), '{due_at}', to_jsonb(to_char(
                     CAST(CAST(body AS jsonb) ->> 'due_at' AS timestamptz) AT TIME ZONE 'UTC' - interval '1 hour',
                     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')))::text
                 WHERE due_at IS NOT NULL",
        )
        .unwrap();
    })
    .join()
    .unwrap();
}

/// Everything the store's reveal links hold, as text.
fn stored_links(url: &str) -> Vec<String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.query("SELECT id_hash, sealed, held FROM reveal_links", &[])
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2)
                )
            })
            .collect()
    })
    .join()
    .unwrap()
}

pub const MCP_ALICE: &str = "twmcp_alice_replicas";

/// An MCP session of alice's at `url`.
pub async fn session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "replicas-test", "version": "0"}}});
    let r = send(url, Method::POST, MCP_ALICE, None, Some(init)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = send(
        url,
        Method::POST,
        MCP_ALICE,
        Some(&session),
        Some(initialized),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    session
}

/// `create_admin_token` of `name` through MCP HTTP at `url`: the link to its secret.
pub async fn create_with_link(url: &str, name: &str) -> String {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "create_admin_token", "arguments": {"name": name}}});
    let session = session(url).await;
    let r = send(url, Method::POST, MCP_ALICE, Some(&session), Some(call)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer = message(r).await;
    answer["result"]["structuredContent"]["secret_handoff"]["reveal_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// Two `tokenwarden mcp --http` replicas on one PostgreSQL store behind a round-robin proxy:
/// a link made by one opens on the other, once; a delete asked on one is confirmed with its code
/// on the other; a link outlives the replica that made it; and
/// an unopened link's token is withdrawn when the link lapses, not when its maker dies. The
/// store holds the secrets only sealed.
#[tokio::test(flavor = "multi_thread")]
async fn reveal_links_open_on_any_replica_once_and_outlive_their_maker() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(db_url) = backend.clone() else {
        unreachable!()
    };
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let f = fixture(&format!(
        "\n[mcp]\nreveal_ttl = \"10m\"\n\n[mcp.http]\npublic_url = \"{proxy_url}\"\n\
         allowed_hosts = [\"127.0.0.1\"]\n\n[[mcp.http.clients]]\nname = \"alice\"\ntoken_file = \"alice.token\"\n"
    ));
    let alice = f.dir.path().join("alice.token");
    std::fs::write(&alice, MCP_ALICE).unwrap();
    std::fs::set_permissions(&alice, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tw = backend.configure(f.tw.clone());
    let mut a = tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let a_url = a.listening_url("listening on ").await;
    let mut b = tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let b_url = b.listening_url("listening on ").await;
    let authority = |u: &str| {
        u.trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_owned()
    };
    tokio::spawn(round_robin(
        proxy,
        vec![authority(&a_url), authority(&b_url)],
    ));
    let on = |replica: &str, link: &str| {
        link.replacen(&proxy_url, &format!("http://{}", authority(replica)), 1)
    };
    let open = |link: String| async move {
        let r = reqwest::Client::new().post(&link).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };

    // Made on A, opened on B, once.
    let link = create_with_link(&a_url, "made-on-a").await;
    assert!(link.starts_with(&proxy_url), "{link}");
    let page = reqwest::get(on(&b_url, &link)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "B shows A's link");
    let (status, shown) = open(on(&b_url, &link)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown.contains("apiv3_"), "the secret, on B: {shown}");
    let (status, _) = open(on(&a_url, &link)).await;
    assert_eq!(
        status,
        StatusCode::GONE,
        "once, whichever replica is asked next"
    );
    assert!(listed(&tw, "made-on-a"), "an opened link keeps its token");

    // A delete asked on A is confirmed with its code on B, in the same session.
    let session = session(&a_url).await;
    let ask = |code: Option<&str>| {
        let mut arguments = json!({"name": "made-on-a"});
        if let Some(code) = code {
            arguments["confirmation_code"] = json!(code);
        }
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "delete_token", "arguments": arguments}})
    };
    let r = send(
        &a_url,
        Method::POST,
        MCP_ALICE,
        Some(&session),
        Some(ask(None)),
    )
    .await;
    let asked = message(r).await;
    let code = asked["result"]["structuredContent"]["confirmation_code"]
        .as_str()
        .unwrap_or_else(|| panic!("{asked}"))
        .to_owned();
    assert!(listed(&tw, "made-on-a"), "nothing happens before the code");
    let r = send(
        &b_url,
        Method::POST,
        MCP_ALICE,
        Some(&session),
        Some(ask(Some(&code))),
    )
    .await;
    let done = message(r).await;
    assert_ne!(done["result"]["isError"], true, "{done}");
    assert!(!listed(&tw, "made-on-a"), "confirmed on B: {done}");

    // Two more links made on A; A dies.
    let kept = create_with_link(&a_url, "kept").await;
    let lapsing = create_with_link(&a_url, "lapsing").await;
    for row in stored_links(&db_url) {
        assert_no_token("a stored reveal link", &row);
    }
    let r = tw.run(&["store", "check"], "").await;
    assert!(
        r.stdout.contains("reveal links waiting (sealed): 2"),
        "{}",
        r.stdout
    );
    a.kill9();
    a.wait_exit(Duration::from_secs(30)).await;
    // Any command settles what a dead process left, but a link that can still be opened waits.
    assert!(listed(&tw, "lapsing"), "not withdrawn when its maker died");
    let (status, shown) = open(on(&b_url, &kept)).await;
    assert_eq!(status, StatusCode::OK, "a link outlives its maker: {shown}");
    assert!(listed(&tw, "kept"));

    // Its time passes unopened: the next process withdraws its token.
    an_hour_passes_for_links(&db_url);
    assert!(!listed(&tw, "lapsing"), "withdrawn when its link lapsed");
    let r = tw.run(&["audit", "--json"], "").await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        rows.iter().any(|r| r["token_name"] == "lapsing"
            && r["outcome"] == "rolled_back"
            && r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("lapsed unopened")),
        "{rows:#?}"
    );
    let (status, _) = open(on(&b_url, &lapsing)).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        stored_links(&db_url).is_empty(),
        "no link row is left behind"
    );
    b.kill9();
}

/// Posts `interaction` to the interactions endpoint at `url`, signed with `key`.
pub async fn signed(url: &str, key: &SigningKey, interaction: &Value) -> Value {
    let body = interaction.to_string();
    let ts = chrono::Utc::now().timestamp();
    let sig = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
    let r = reqwest::Client::new()
        .post(url)
        .header("x-signature-ed25519", sig)
        .header("x-signature-timestamp", ts.to_string())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// The approve button of the card posted for `name`.
async fn approve_button(fake: &FakeDiscord, name: &str) -> String {
    let card = fake
        .wait_for("the approval card", |c| {
            c.method == "POST"
                && c.path == format!("/api/v10/channels/{APPROVALS}/messages")
                && c.body.to_string().contains(name)
        })
        .await;
    card.body["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// DELETEs InfluxDB was sent for token `name` (answered or not).
fn deletes_of(sim: &tokenwarden::sim::RunningSim, name: &str) -> usize {
    sim.control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.query.contains(&format!("token_name={name}")))
        .count()
}

/// Three `tokenwarden discord --interactions` replicas on one PostgreSQL store: a delete
/// approved by two people clicking on different replicas runs once, whatever is clicked or
/// replayed after; a replica SIGKILLed in the middle of a create, and another in the middle of
/// an approved delete, leave work a surviving replica settles and reports in Discord.
#[tokio::test(flavor = "multi_thread")]
async fn discord_approvals_on_alternating_replicas_run_once_and_survivors_settle_a_killed_one() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("victim", None).unwrap();
    sim.control.create_admin("stalled-victim", None).unwrap();
    let fake = FakeDiscord::start().await;
    let key = SigningKey::from_bytes(&[11; 32]);
    let dir = tempfile::tempdir().unwrap();
    let tw = backend.configure(Tw::new(dir.path(), &sim.url(), &op).env("RUST_LOG", "warn"));
    let mut cfg = std::fs::read_to_string(&tw.config).unwrap();
    cfg.push_str(&format!(
        "\n[discord]\napplication_id = \"{APP}\"\npublic_key = \"{}\"\nbot_token_file = \"discord.token\"\n\
         api_base = \"{}\"\nguild_ids = [\"{GUILD}\"]\napprovals_channel_id = \"{APPROVALS}\"\n\
         required_approvals = 2\npoll_interval = \"1s\"\n\n[discord.roles]\ncreate = [\"10\"]\n\
         delete = [\"10\"]\napprove = [\"20\"]\n",
        hex::encode(key.verifying_key().to_bytes()),
        fake.url
    ));
    std::fs::write(&tw.config, cfg).unwrap();
    std::fs::write(dir.path().join("discord.token"), BOT_TOKEN).unwrap();
    let replica = || async {
        let mut p = tw.spawn(&["discord", "--interactions", "127.0.0.1:0"]);
        let url = p.listening_url("interactions endpoint listening on ").await;
        (p, url)
    };
    let (mut a, a_url) = replica().await;
    let (mut b, b_url) = replica().await;

    // Requested on A, approved on B and then on A: one DELETE.
    signed(
        &a_url,
        &key,
        &command(1, ALICE, "delete", &[("name", "victim")]),
    )
    .await;
    let approve = approve_button(&fake, "victim").await;
    signed(&b_url, &key, &click(2, CAROL, &approve, APPROVALS, 1)).await;
    assert_eq!(deletes_of(&sim, "victim"), 0, "one approval of two");
    let second = click(3, FRANK, &approve, APPROVALS, 1);
    signed(&a_url, &key, &second).await;
    fake.wait_for_within(
        "the card of the done delete",
        Duration::from_secs(30),
        |c| c.method == "PATCH" && c.body.to_string().contains("Deleted; clients using it"),
    )
    .await;
    // A third approver on B, and the second approval replayed on B, change nothing.
    signed(&b_url, &key, &click(4, BOB, &approve, APPROVALS, 1)).await;
    signed(&b_url, &key, &second).await;
    assert_eq!(deletes_of(&sim, "victim"), 1, "deleted once");
    assert!(sim.control.token_id("victim").is_none());

    // A dies while InfluxDB has made its new token and the answer is on its way: B, on its
    // next round, deletes the token nobody holds and tells its requester.
    let named_admin = "/api/v3/configure/token/named_admin";
    sim.control.stall_after_apply(StallAfterApply {
        path_prefix: named_admin.into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    signed(
        &a_url,
        &key,
        &command(5, ALICE, "create-admin", &[("name", "orphan")]),
    )
    .await;
    assert!(
        sim.control
            .wait_for_stall(named_admin, Duration::from_secs(30))
            .await
            .is_some()
    );
    a.kill9();
    assert!(
        sim.control.token_id("orphan").is_some(),
        "made, never delivered"
    );
    fake.wait_for_within(
        "B's notice of the withdrawn token",
        Duration::from_secs(30),
        |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id)
                && c.body.to_string().contains("was deleted again")
        },
    )
    .await;
    assert!(sim.control.token_id("orphan").is_none(), "withdrawn by B");
    sim.control.clear_faults();

    // C starts; B dies in the middle of an approved delete, after InfluxDB applied it: C
    // settles it as done, and its card says so.
    let (_c, c_url) = replica().await;
    signed(
        &b_url,
        &key,
        &command(6, ALICE, "delete", &[("name", "stalled-victim")]),
    )
    .await;
    let approve = approve_button(&fake, "stalled-victim").await;
    signed(&c_url, &key, &click(7, CAROL, &approve, APPROVALS, 2)).await;
    sim.control.stall_after_apply(StallAfterApply {
        path_prefix: "/api/v3/configure/token".into(),
        method: Some("DELETE".into()),
        times: Some(1),
    });
    signed(&b_url, &key, &click(8, FRANK, &approve, APPROVALS, 2)).await;
    let applied = sim.control.wait_for_request(
        |r| {
            r.withheld.is_some()
                && r.method == "DELETE"
                && r.query.contains("token_name=stalled-victim")
        },
        Duration::from_secs(30),
    );
    assert!(applied.await.is_some(), "B sent the approved delete");
    b.kill9();
    sim.control.clear_faults();
    fake.wait_for_within(
        "C's card of the settled delete",
        Duration::from_secs(30),
        |c| {
            c.method == "PATCH"
                && c.body.to_string().contains("stalled-victim")
                && c.body.to_string().contains("Deleted; clients using it")
        },
    )
    .await;
    assert_eq!(
        deletes_of(&sim, "stalled-victim"),
        1,
        "applied once, never sent again"
    );
    fake.assert_all_accepted();
}

/// On a shared store the gate's deadlines follow the database's clock, not a host's: a replica
/// whose clock runs an hour ahead neither gives a request an hour more nor expires the others'
/// requests an hour early. On SQLite (one host) the host's clock is the clock.
#[tokio::test(flavor = "multi_thread")]
async fn gate_deadlines_on_a_shared_store_follow_the_databases_clock_not_a_drifting_host() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("victim", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replica = |clock: Clock| {
        let client: std::sync::Arc<dyn tokenwarden::tokens::TokenBackend> =
            std::sync::Arc::new(support::client(&sim, Some(&op)));
        TokenService::new(
            vec![(support::instance("local", None, &[], false), client)],
            None,
            backend.store(dir.path()),
            clock,
            Duration::from_secs(300),
        )
    };
    let ahead = replica(Clock::Drifting(chrono::Duration::hours(1)));
    let on_time = replica(Clock::System);
    let gate = GateRequest {
        mode: GateMode::Approvals {
            required: 1,
            allow_self: false,
            approve_from: None,
        },
        ttl: Some(Duration::from_secs(300)),
        reason: None,
    };
    let name = TokenName::parse("victim").unwrap();
    let asked = on_time
        .request_delete(&Actor::discord(1, "ann"), None, &name, gate.clone())
        .await
        .unwrap();
    assert!(
        ahead.expire_due().await.unwrap().is_empty(),
        "the replica an hour ahead expires nothing early"
    );
    let mine = ahead
        .request_delete(&Actor::discord(2, "bob"), None, &name, gate)
        .await
        .unwrap();
    let left = mine.pending.expires_at - chrono::Utc::now();
    assert!(
        left <= chrono::Duration::seconds(300) && left > chrono::Duration::seconds(240),
        "five minutes by the database's clock, not an hour and five: {left}"
    );
    assert_eq!(
        ahead.pending(&asked.pending.id).await.unwrap().state,
        tokenwarden::gate::PendingState::Open
    );
}

/// A delivery port that parks the secret behind a link in the store, as the MCP server does.
struct Parker(std::sync::Arc<TokenService>);

#[async_trait::async_trait]
impl tokenwarden::service::SecretDelivery for Parker {
    async fn deliver(
        &self,
        token: &tokenwarden::tokens::Token,
        secret: &tokenwarden::tokens::RawToken,
        ticket: &tokenwarden::service::Ticket,
    ) -> Result<tokenwarden::service::DeliveryReceipt, tokenwarden::service::DeliveryFailure> {
        let held = tokenwarden::service::LinkHeld {
            token_name: TokenName::parse(&token.name).unwrap(),
            token_id: token.id,
            instance: "local".into(),
            requester: Actor::discord(1, "ann"),
            ticket: ticket.clone(),
            for_person: None,
        };
        let id = format!("{:048x}", token.id);
        let until = self
            .0
            .park_link(&id, &held, secret, Duration::from_secs(600), true)
            .await
            .map_err(|e| tokenwarden::service::DeliveryFailure(e.to_string()))?;
        Ok(tokenwarden::service::DeliveryReceipt {
            text: "a one-time link".into(),
            waiting_until: Some(until),
        })
    }
}

/// A person who declines a link through another replica than the one that made it (a session
/// moves between replicas) gets the token withdrawn there, once; until then no replica's
/// recovery touches the live link, even when its maker's clock is hours off.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_declined_through_another_replica_is_withdrawn_there() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = |clock: Clock| {
        let client: std::sync::Arc<dyn tokenwarden::tokens::TokenBackend> =
            std::sync::Arc::new(support::client(&sim, Some(&op)));
        let key = dir.path().join("link.key");
        std::fs::write(&key, crate::backends::LINK_KEY).unwrap();
        std::sync::Arc::new(
            TokenService::new(
                vec![(support::instance("local", None, &[], false), client)],
                None,
                backend.store(dir.path()),
                clock,
                Duration::from_secs(300),
            )
            .with_link_key(tokenwarden::service::LinkKey::from_file(&key).unwrap()),
        )
    };
    // The maker's clock runs two hours behind: its link's deadline is the database's all the same.
    let a = replica(Clock::Drifting(-chrono::Duration::hours(2)));
    let b = replica(Clock::System);
    let ann = Actor::discord(1, "ann");
    let new = tokenwarden::tokens::NewToken {
        name: TokenName::parse_new("declined").unwrap(),
        spec: tokenwarden::tokens::TokenSpec::Admin,
        expiry: tokenwarden::tokens::Expiry::Never,
    };
    a.create(&ann, None, new, &Parker(std::sync::Arc::clone(&a)))
        .await
        .unwrap();
    assert!(sim.control.token_id("declined").is_some());
    b.recover().await;
    assert!(
        sim.control.token_id("declined").is_some(),
        "another replica's recovery leaves a live link alone"
    );
    let why = "the user declined to open its one-time reveal link";
    let someone_else = Actor::discord(2, "bob");
    assert!(
        !b.withdraw_link_of(&someone_else, "local", "declined", why)
            .await
            .unwrap(),
        "only the requester's own decline counts"
    );
    assert!(
        b.withdraw_link_of(&ann, "local", "declined", why)
            .await
            .unwrap()
    );
    assert!(sim.control.token_id("declined").is_none(), "withdrawn by B");
    assert!(
        !a.withdraw_link_of(&ann, "local", "declined", why)
            .await
            .unwrap(),
        "once"
    );
}

/// An approval that waits for the store's write lock (another replica writing) while its
/// request's deadline passes is refused: the deadline is checked once the action is had, by the
/// database's clock, not when the approval arrived.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_that_waited_past_the_deadline_for_the_write_lock_is_refused() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(url) = backend.clone() else {
        unreachable!()
    };
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("victim", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client: std::sync::Arc<dyn tokenwarden::tokens::TokenBackend> =
        std::sync::Arc::new(support::client(&sim, Some(&op)));
    let svc = std::sync::Arc::new(TokenService::new(
        vec![(support::instance("local", None, &[], false), client)],
        None,
        backend.store(dir.path()),
        Clock::System,
        Duration::from_secs(300),
    ));
    let gate = GateRequest {
        mode: GateMode::Approvals {
            required: 1,
            allow_self: false,
            approve_from: None,
        },
        ttl: Some(Duration::from_secs(1)),
        reason: None,
    };
    let asked = svc
        .request_delete(
            &Actor::discord(1, "ann"),
            None,
            &TokenName::parse("victim").unwrap(),
            gate,
        )
        .await
        .unwrap();
    let deadline = asked.pending.expires_at.to_rfc3339();

    // Another replica holds the write lock until the database's clock passes the deadline.
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = db.transaction().unwrap();
        tx.execute("SELECT pg_advisory_xact_lock(8390042714203709810)", &[])
            .unwrap();
        locked_tx.send(()).unwrap();
        release.recv().unwrap();
        tx.execute(
            "SELECT pg_sleep(GREATEST(0, EXTRACT(EPOCH FROM CAST($1::text AS timestamptz) - clock_timestamp())) + 0.05)",
            &[&deadline],
        )
        .unwrap();
        tx.commit().unwrap();
    });
    locked.recv().unwrap();
    let approving = {
        let svc = std::sync::Arc::clone(&svc);
        let id = asked.pending.id.clone();
        tokio::spawn(async move { svc.approve(&Actor::discord(2, "bob"), &id).await })
    };
    release_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();
    let approved = approving.await.unwrap();
    let err = approved.expect_err("refused").to_string();
    assert!(err.contains("expired"), "{err}");
    assert!(
        sim.control.token_id("victim").is_some(),
        "nothing was deleted"
    );
}

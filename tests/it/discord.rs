//! The Discord bot offline: its real interactions endpoint with signed requests, serenity's real
//! `Http` against a fake Discord REST API, and the simulator as InfluxDB.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateMode, PendingId, PendingState};
use tokenwarden::service::GateRequest;
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken, TokenBackend, TokenName};

use crate::discord_fake::{Call, DM_BASE};
use crate::discord_support::*;
use crate::support::{assert_logs_clean, assert_no_token, client};

const EPHEMERAL: u64 = 64;

fn is_ephemeral_message(r: &Value) -> bool {
    r["type"] == 4 && r["data"]["flags"].as_u64() == Some(EPHEMERAL)
}

fn is_deferred(r: &Value) -> bool {
    r["type"] == 5 && r["data"]["flags"].as_u64() == Some(EPHEMERAL)
}

fn original(id: u64) -> String {
    format!("/webhooks/{APP}/itoken-{id}/messages/@original")
}

async fn card_for(h: &Harness, token: &str) -> (Call, String) {
    let card = h
        .fake
        .wait_for("the approval card", |c| {
            c.method == "POST"
                && c.path == format!("/api/v10/channels/{APPROVALS}/messages")
                && c.body.to_string().contains(token)
        })
        .await;
    let approve = card.body["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (card, approve)
}

#[tokio::test]
async fn the_endpoint_verifies_every_request() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let ping = json!({"id": "1", "application_id": APP.to_string(), "type": 1, "token": "t", "version": 1}).to_string();
    let now = chrono::Utc::now().timestamp();
    let (status, body) = h.post_signed(&ping, now, &h.key).await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["type"].as_u64()
        ),
        (200, Some(1)),
        "PING -> PONG"
    );
    let forger = SigningKey::from_bytes(&[9; 32]);
    assert_eq!(
        h.post_signed(&ping, now, &forger).await.0,
        401,
        "bad signature"
    );
    assert_eq!(
        h.post_signed(&ping, now - 600, &h.key).await.0,
        401,
        "stale timestamp"
    );
    assert_eq!(
        h.post_signed(&ping, now + 600, &h.key).await.0,
        401,
        "timestamp from the future"
    );
    let r = reqwest::Client::new()
        .post(&h.url)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unsigned");
    assert_eq!(
        h.post_signed("{\"nonsense\": true}", now, &h.key).await.0,
        400,
        "signed but unreadable"
    );
    let tampered = ping.replace("\"t\"", "\"u\"");
    let sig_for_original = hex::encode(
        ed25519_dalek::Signer::sign(&h.key, format!("{now}{ping}").as_bytes()).to_bytes(),
    );
    let r = reqwest::Client::new()
        .post(&h.url)
        .header("x-signature-ed25519", sig_for_original)
        .header("x-signature-timestamp", now.to_string())
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a body changed after signing");
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    assert_eq!(
        h.post_signed(&huge, now, &h.key).await.0,
        413,
        "oversized bodies are refused unread"
    );
    assert!(h.fake.calls().is_empty(), "nothing reached Discord");
}

#[tokio::test]
async fn permissions_are_checked_on_every_command_and_click() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for sub in ["list", "create-admin", "delete"] {
        let r = h
            .send(command(h.next_id(), MALLORY, sub, &[("name", "x")]))
            .await;
        assert!(is_ephemeral_message(&r), "{r}");
        assert!(
            r["data"]["content"]
                .as_str()
                .unwrap()
                .contains("not allowed"),
            "{r}"
        );
    }
    let r = h
        .send(command(
            h.next_id(),
            CAROL,
            "create-admin",
            &[("name", "x")],
        ))
        .await;
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("[discord.roles] `create`"),
        "{r}"
    );
    let r = h.send(command_in_dm(h.next_id(), ALICE, "list")).await;
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("servers only"),
        "{r}"
    );
    let r = h
        .send(click(
            h.next_id(),
            ALICE,
            &format!("tw:ok:{}", PendingId::random()),
            APPROVALS,
            1,
        ))
        .await;
    assert!(
        is_ephemeral_message(&r) && r["data"]["content"].as_str().unwrap().contains("approve"),
        "{r}"
    );
    let r = h
        .send(click(
            h.next_id(),
            CAROL,
            "somebody-elses-button",
            APPROVALS,
            1,
        ))
        .await;
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("not tokenwarden's"),
        "{r}"
    );
    assert_eq!(h.sim.control.token_count(), 1, "nothing was created");
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn list_is_ephemeral_readable_and_paged() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim.control.create_admin(&format!("ci-{i:02}"), None);
    }
    let id = h.next_id();
    let r = h.send(command(id, ALICE, "list", &[("name", "ci")])).await;
    assert!(is_deferred(&r), "{r}");
    let edit = h
        .fake
        .wait_for("the list", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(id))
        })
        .await;
    let embed = &edit.body["embeds"][0];
    assert!(
        embed["title"].as_str().unwrap().contains("(page 1)"),
        "{embed}"
    );
    assert!(embed["description"].as_str().unwrap().contains("ci-00"));
    assert!(!embed["description"].as_str().unwrap().contains("ci-19"));
    let buttons = &edit.body["components"][0]["components"];
    assert_eq!(
        (
            buttons[0]["disabled"].as_bool(),
            buttons[1]["disabled"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let next = buttons[1]["custom_id"].as_str().unwrap().to_owned();
    let page2 = clicked_page(&h, ALICE, &next).await;
    let text = page2.body["embeds"][0]["description"].as_str().unwrap();
    assert!(text.contains("ci-19") && !text.contains("ci-00"), "{text}");
    assert_eq!(
        page2.body["components"][0]["components"][1]["disabled"], true,
        "the last page"
    );
    let r = h.send(click(h.next_id(), BOB, &next, 600, 1)).await;
    assert!(
        r["data"]["content"].as_str().unwrap().contains("expired"),
        "someone else's list: {r}"
    );
}

/// Clicks page button `custom_id` as `who`; the edit that shows the page.
async fn clicked_page(h: &Harness, who: Who, custom_id: &str) -> Call {
    let paging = h.next_id();
    let r = h.send(click(paging, who, custom_id, 600, 1)).await;
    assert_eq!(
        r["type"], 6,
        "the page is fetched from InfluxDB, not refused: {r}"
    );
    h.fake
        .wait_for("the page", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(paging))
        })
        .await
}

/// The Next button's custom id on the list answered to command `id`.
async fn next_button(h: &Harness, id: u64) -> String {
    let edit = h
        .fake
        .wait_for("the list", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(id))
        })
        .await;
    edit.body["components"][0]["components"][1]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn page_buttons_work_after_a_restart_with_the_filter_they_were_made_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut h = Harness::new(Edition::Core, Store::open(&path).unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim.control.create_admin(&format!("ci-{i:02}"), None);
    }
    h.sim.control.create_admin("zz-not-ci", None);
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[("name", "ci-")])).await;
    let next = next_button(&h, id).await;
    // The process that showed the list is gone (an upgrade, a crash); a new one over the same
    // store answers the click.
    h.restart(Store::open(&path).unwrap()).await;
    let page2 = clicked_page(&h, ALICE, &next).await;
    let text = page2.body["embeds"][0]["description"].as_str().unwrap();
    assert!(text.contains("ci-19") && !text.contains("ci-00"), "{text}");
    assert!(
        !text.contains("zz-not-ci"),
        "the name filter was kept: {text}"
    );
    let r = h.send(click(h.next_id(), BOB, &next, 600, 1)).await;
    assert!(
        is_ephemeral_message(&r) && r["data"]["content"].as_str().unwrap().contains("expired"),
        "still only its maker's list: {r}"
    );
}

#[tokio::test]
async fn a_page_button_of_a_listing_no_store_knows_says_it_expired() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim.control.create_admin(&format!("ci-{i:02}"), None);
    }
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[])).await;
    let next = next_button(&h, id).await;
    let (_, page) = next.rsplit_once(':').unwrap();
    let unknown = format!("tw:pg:0123456789abcdef:{page}");
    assert_ne!(unknown, next);
    let paging = h.next_id();
    let r = h.send(click(paging, ALICE, &unknown, 600, 1)).await;
    assert!(
        is_ephemeral_message(&r) && r["data"]["content"].as_str().unwrap().contains("expired"),
        "{r}"
    );
    assert!(h.fake.calls_to("PATCH", &original(paging)).is_empty());
}

#[tokio::test]
async fn create_sends_the_secret_by_dm_only() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let id = h.next_id();
    let r = h
        .send(command(
            id,
            ALICE,
            "create-admin",
            &[("name", "ci-bot"), ("expires", "30d")],
        ))
        .await;
    assert!(is_deferred(&r), "{r}");
    let done = h
        .fake
        .wait_for("the answer", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        done.body["content"]
            .as_str()
            .unwrap()
            .contains("sent to your DMs"),
        "{}",
        done.body
    );
    let dm = format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id);
    let dms: Vec<String> = h
        .fake
        .calls_to("POST", &dm)
        .into_iter()
        .map(|c| c.body["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dms.len(), 2, "a probe, then the secret: {dms:?}");
    let secret = dms[1]
        .split_whitespace()
        .find(|w| w.starts_with("apiv3_"))
        .unwrap()
        .to_owned();
    client(&h.sim, Some(&RawToken::new(secret.clone())))
        .ping()
        .await
        .expect("the DM'd secret works");
    let everything_else: String = h
        .fake
        .calls()
        .iter()
        .filter(|c| !c.path.ends_with(&dm))
        .map(|c| c.body.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_no_token("channel messages and responses", &everything_else);
    assert_no_token("the initial response", &r.to_string());
    assert!(
        h.fake
            .calls()
            .iter()
            .all(|c| c.auth.as_deref() == Some(&format!("Bot {BOT_TOKEN}"))),
        "serenity sends the bot token"
    );
    assert_no_token(
        "the audit log",
        &format!("{:?}", h.service.audit_log(100).await.unwrap()),
    );
    assert_logs_clean();
}

#[tokio::test]
async fn closed_dms_create_nothing_or_roll_back() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let id = h.next_id();
    h.send(command(id, DAVE, "create-admin", &[("name", "never-made")]))
        .await;
    let done = h
        .fake
        .wait_for("the answer", |c| c.path.ends_with(&original(id)))
        .await;
    let text = done.body["content"].as_str().unwrap();
    assert!(
        text.contains("Nothing was created") && text.contains("direct messages are closed"),
        "{text}"
    );
    assert!(!h.has("never-made"));

    let id = h.next_id();
    h.send(command(
        id,
        ERIN,
        "create-admin",
        &[("name", "rolled-back")],
    ))
    .await;
    let done = h
        .fake
        .wait_for("the answer", |c| c.path.ends_with(&original(id)))
        .await;
    let text = done.body["content"].as_str().unwrap();
    assert!(text.contains("deleted again"), "{text}");
    assert!(!h.has("rolled-back"), "no token exists that nobody holds");
    let audit = h.service.audit_log(1).await.unwrap();
    assert_eq!(
        audit[0].event.outcome,
        tokenwarden::store::AuditOutcome::RolledBack
    );
}

#[tokio::test]
async fn resource_tokens_and_bad_input() {
    let h = Harness::new(
        Edition::Enterprise,
        Store::open_in_memory().unwrap(),
        |_| {},
    )
    .await;
    let r = h
        .send(command(
            h.next_id(),
            ALICE,
            "create-admin",
            &[("name", "bad name")],
        ))
        .await;
    assert!(
        is_ephemeral_message(&r) && shown(&r["data"]["content"]).contains("contains ` `"),
        "{r}"
    );
    let r = h
        .send(command(
            h.next_id(),
            ALICE,
            "create-resource",
            &[("name", "r"), ("permissions", "db:metrics")],
        ))
        .await;
    assert!(
        r["data"]["content"]
            .as_str()
            .unwrap()
            .contains("TYPE:NAMES:ACTIONS"),
        "{r}"
    );
    let id = h.next_id();
    h.send(command(
        id,
        ALICE,
        "create-resource",
        &[("name", "reader"), ("permissions", "db:metrics:read")],
    ))
    .await;
    let done = h
        .fake
        .wait_for("the answer", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        done.body["content"]
            .as_str()
            .unwrap()
            .contains("db:metrics:read"),
        "{}",
        done.body
    );
    assert!(h.has("reader"));
}

#[tokio::test]
async fn delete_needs_another_persons_approval() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    let id = h.next_id();
    let r = h
        .send(command(
            id,
            BOB,
            "delete",
            &[("name", "victim"), ("reason", "leaked in a log")],
        ))
        .await;
    assert!(is_deferred(&r));
    let (card, approve) = card_for(&h, "victim").await;
    let embed = card.body["embeds"][0].to_string();
    assert!(
        embed.contains("Delete token `victim`")
            && embed.contains("leaked in a log")
            && embed.contains("<@2>"),
        "{embed}"
    );
    let buttons = &card.body["components"][0]["components"];
    assert_eq!(
        (buttons[0]["label"].as_str(), buttons[0]["style"].as_u64()),
        (Some("Approve"), Some(3))
    );
    assert_eq!(
        (buttons[1]["label"].as_str(), buttons[1]["style"].as_u64()),
        (Some("Reject"), Some(4))
    );
    let answer = h
        .fake
        .wait_for("the requester's answer", |c| {
            c.path.ends_with(&original(id))
        })
        .await;
    let text = answer.body["content"].as_str().unwrap();
    assert!(text.contains(&format!("<#{APPROVALS}>")), "{text}");
    assert!(text.contains(":f>"), "the deadline with its date: {text}");

    let card_id = 10_000;
    let own = h.next_id();
    let r = h.send(click(own, BOB, &approve, APPROVALS, card_id)).await;
    assert_eq!(r["type"], 6, "clicks are acknowledged at once: {r}");
    let refusal = h
        .fake
        .wait_for("the refusal", |c| {
            c.method == "POST" && c.path == format!("/api/v10/webhooks/{APP}/itoken-{own}")
        })
        .await;
    assert!(
        refusal.body["content"]
            .as_str()
            .unwrap()
            .contains("someone else must approve"),
        "{}",
        refusal.body
    );
    assert_eq!(refusal.body["flags"].as_u64(), Some(EPHEMERAL));
    assert!(h.has("victim"));

    let r = h
        .send(click(h.next_id(), ALICE, &approve, APPROVALS, card_id))
        .await;
    assert!(is_ephemeral_message(&r), "no approve role: {r}");
    assert!(h.has("victim"));

    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, card_id))
        .await;
    let edited = h
        .fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH"
                && c.path == format!("/api/v10/channels/{APPROVALS}/messages/{card_id}")
        })
        .await;
    assert!(
        edited.body["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("Deleted token `victim`"),
        "{}",
        edited.body
    );
    assert_eq!(
        edited.body["components"],
        json!([]),
        "no buttons on a closed card"
    );
    assert!(!h.has("victim"));
    let dm = h
        .fake
        .wait_for("the requester's DM", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + BOB.id)
        })
        .await;
    assert!(
        dm.body["content"]
            .as_str()
            .unwrap()
            .contains("approved and done"),
        "{}",
        dm.body
    );
}

#[tokio::test]
async fn racing_approvals_delete_once() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), ALICE, "delete", &[("name", "victim")]))
        .await;
    let (_, approve) = card_for(&h, "victim").await;
    let (a, b) = (h.next_id(), h.next_id());
    let (ra, rb) = tokio::join!(
        h.send(click(a, CAROL, &approve, APPROVALS, 10_000)),
        h.send(click(b, FRANK, &approve, APPROVALS, 10_000))
    );
    assert_eq!(
        (ra["type"].as_u64(), rb["type"].as_u64()),
        (Some(6), Some(6))
    );
    h.fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted token")
        })
        .await;
    h.fake
        .wait_for("the loser's notice", |c| {
            c.method == "POST"
                && (c.path.ends_with(&format!("itoken-{a}"))
                    || c.path.ends_with(&format!("itoken-{b}")))
        })
        .await;
    let deletes = h
        .sim
        .control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "InfluxDB saw one delete");
    h.fake
        .wait_for("the requester's DM", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id)
        })
        .await;
    h.bot.sweep().await;
    let dms = h.fake.calls_to(
        "POST",
        &format!("/channels/{}/messages", DM_BASE + ALICE.id),
    );
    assert_eq!(dms.len(), 1, "one outcome, told once: {dms:#?}");
    let dm = &dms[0].body;
    assert!(
        dm["content"]
            .as_str()
            .unwrap()
            .contains("approved and done"),
        "{dm}"
    );
    assert_eq!(dm["enforce_nonce"], true, "{dm}");
    assert!(dm["nonce"].as_str().is_some_and(|n| n.len() <= 25), "{dm}");
}

#[tokio::test]
async fn an_outcome_settled_by_another_process_reaches_the_card_and_the_requester_once() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), BOB, "delete", &[("name", "victim")]))
        .await;
    let (card, _) = card_for(&h, "victim").await;
    let footer = card.body["embeds"][0]["footer"]["text"].as_str().unwrap();
    let id = PendingId::parse(footer.trim_start_matches("pending action ")).unwrap();
    let pending = h.service.pending(&id).await.unwrap();
    let target = tokenwarden::tokens::TokenRef {
        name: TokenName::parse("victim").unwrap(),
        id: h.sim.control.token_id("victim").unwrap(),
    };
    // An approver's process released the delete and died before running it; a CLI settles it.
    crate::guardrails::approve_and_die(
        h.service.store(),
        &pending,
        &Actor::discord(CAROL.id, "carol"),
        tokenwarden::store::JournalOp::Delete { target },
    );
    assert_eq!(h.service.recover().await.settled, 1);
    assert!(!h.has("victim"));
    h.bot.sweep().await;
    h.bot.sweep().await;
    let edited = h
        .fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted token `victim`")
        })
        .await;
    assert_eq!(edited.body["components"], json!([]));
    let dms = h
        .fake
        .calls_to("POST", &format!("/channels/{}/messages", DM_BASE + BOB.id));
    assert_eq!(dms.len(), 1, "{dms:#?}");
    assert!(
        dms[0].body["content"]
            .as_str()
            .unwrap()
            .contains("approved and done"),
        "{}",
        dms[0].body
    );
}

#[tokio::test]
async fn an_approval_card_never_deletes_a_token_that_took_the_name() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), ALICE, "delete", &[("name", "victim")]))
        .await;
    let (card, approve) = card_for(&h, "victim").await;
    let shown = h.sim.control.token_id("victim").unwrap();
    assert!(
        card.body["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains(&format!("(id {shown})")),
        "the card shows the id: {}",
        card.body
    );
    assert!(h.sim.control.delete_token("victim"));
    h.sim.control.create_admin("victim", None);
    let successor = h.sim.control.token_id("victim").unwrap();
    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, 10_000))
        .await;
    let edited = h
        .fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("failed")
        })
        .await;
    assert!(
        edited
            .body
            .to_string()
            .contains("was replaced after the request"),
        "{}",
        edited.body
    );
    assert_eq!(h.sim.control.token_id("victim"), Some(successor));
    let dm = h
        .fake
        .wait_for("the requester's DM", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id)
        })
        .await;
    assert!(
        dm.body["content"]
            .as_str()
            .unwrap()
            .contains("nothing was deleted"),
        "{}",
        dm.body
    );
}

#[tokio::test]
async fn reject_closes_the_card() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), ALICE, "delete", &[("name", "victim")]))
        .await;
    let (card, _) = card_for(&h, "victim").await;
    let reject = card.body["components"][0]["components"][1]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.send(click(h.next_id(), CAROL, &reject, APPROVALS, 10_000))
        .await;
    let edited = h
        .fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.path.ends_with("/messages/10000")
        })
        .await;
    assert!(
        edited.body.to_string().contains("Rejected"),
        "{}",
        edited.body
    );
    assert!(h.has("victim"));
    let dm = h
        .fake
        .wait_for("the requester's DM", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id)
        })
        .await;
    let text = shown(&dm.body["content"]);
    assert!(
        text.ends_with(": rejected by carol.") && text.matches("carol").count() == 1,
        "the rejecter is named once: {text}"
    );
}

#[tokio::test]
async fn expiry_edits_the_card_and_removes_its_buttons() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), ALICE, "delete", &[("name", "victim")]))
        .await;
    let (_, approve) = card_for(&h, "victim").await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(901)).await;
    tokio::time::resume();
    h.bot.sweep().await;
    let edited = h
        .fake
        .wait_for("the expiry edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Expired")
        })
        .await;
    assert_eq!(edited.body["components"], json!([]));
    let late = h.next_id();
    let r = h
        .send(click(late, CAROL, &approve, APPROVALS, 10_000))
        .await;
    assert_eq!(r["type"], 6);
    let notice = h
        .fake
        .wait_for("the late click's notice", |c| {
            c.path == format!("/api/v10/webhooks/{APP}/itoken-{late}")
        })
        .await;
    let text = notice.body["content"].as_str().unwrap();
    assert!(
        text.contains("expired at <t:") && text.contains(":f>"),
        "a date and time every reader sees in their own zone: {text}"
    );
    assert!(
        !text.contains(" UTC") && !text.contains("pending action"),
        "{text}"
    );
    assert!(h.has("victim"));
}

#[tokio::test]
async fn an_old_card_still_works_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut h = Harness::new(Edition::Core, Store::open(&path).unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    h.send(command(h.next_id(), ALICE, "delete", &[("name", "victim")]))
        .await;
    let (_, approve) = card_for(&h, "victim").await;
    h.restart(Store::open(&path).unwrap()).await;
    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, 10_000))
        .await;
    h.fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted token")
        })
        .await;
    assert!(!h.has("victim"));
}

#[tokio::test]
async fn a_slow_influxdb_gets_a_deferred_answer_then_a_follow_up() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.set_latency(Duration::from_millis(1500));
    let id = h.next_id();
    let r = h.send(command(id, ALICE, "list", &[])).await;
    assert!(is_deferred(&r), "{r}");
    assert!(
        h.fake.calls_to("PATCH", &original(id)).is_empty(),
        "answered before InfluxDB did"
    );
    let edit = h
        .fake
        .wait_for("the follow-up", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        edit.body["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("_admin")
    );

    h.sim.control.set_latency(Duration::ZERO);
    h.sim
        .control
        .force_response(tokenwarden::sim::ForcedResponse {
            path_prefix: "/api/v3/query_sql".into(),
            status: 503,
            content_type: None,
            body: "down".into(),
            times: None,
        });
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[])).await;
    let edit = h
        .fake
        .wait_for("the error", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        edit.body["content"]
            .as_str()
            .unwrap()
            .contains("Could not list tokens"),
        "{}",
        edit.body
    );
}

#[tokio::test]
async fn autocomplete_suggests_names_and_databases_to_those_allowed() {
    let h = Harness::new(
        Edition::Enterprise,
        Store::open_in_memory().unwrap(),
        |_| {},
    )
    .await;
    h.sim.control.create_admin("victim", None);
    h.sim.control.create_admin("vital", None);
    let r = h
        .send(autocomplete(h.next_id(), ALICE, "delete", "name", "vi"))
        .await;
    assert_eq!(r["type"], 8);
    let names: Vec<&str> = r["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["value"].as_str())
        .collect();
    assert_eq!(names, ["victim", "vital"]);
    let r = h
        .send(autocomplete(h.next_id(), MALLORY, "delete", "name", "vi"))
        .await;
    assert_eq!(
        r["data"]["choices"],
        json!([]),
        "nothing for those without the role"
    );
    let r = h
        .send(autocomplete(
            h.next_id(),
            ALICE,
            "create-resource",
            "permissions",
            "met",
        ))
        .await;
    let values: Vec<&str> = r["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["value"].as_str())
        .collect();
    assert_eq!(values, ["db:metrics:read", "db:metrics:read,write"]);
}

#[tokio::test]
async fn approvals_requested_through_mcp_get_cards_too() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    let mcp = Actor::mcp_http("alice-laptop", "claude");
    let gate = GateRequest {
        mode: GateMode::Approvals {
            required: 1,
            allow_self: false,
            approve_from: None,
        },
        ttl: Some(Duration::from_secs(600)),
        reason: None,
    };
    let req = h
        .service
        .request_delete(&mcp, None, &TokenName::parse("victim").unwrap(), gate)
        .await
        .unwrap();
    h.bot.sweep().await;
    h.bot.sweep().await;
    let (card, approve) = card_for(&h, "victim").await;
    assert!(
        card.body
            .to_string()
            .contains(r"claude via alice\\-laptop (MCP)"),
        "{}",
        card.body
    );
    assert_eq!(
        h.fake
            .calls_to("POST", &format!("/channels/{APPROVALS}/messages"))
            .len(),
        1,
        "one card, however often the sweep runs"
    );
    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, 10_000))
        .await;
    h.fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted token")
        })
        .await;
    assert_eq!(
        h.service.pending(&req.pending.id).await.unwrap().state,
        PendingState::Succeeded,
        "the MCP side sees the outcome"
    );
}

#[tokio::test]
async fn protected_tokens_are_refused_at_once() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("keep-this", None);
    let id = h.next_id();
    h.send(command(id, ALICE, "delete", &[("name", "keep-this")]))
        .await;
    let answer = h
        .fake
        .wait_for("the refusal", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        answer.body["content"]
            .as_str()
            .unwrap()
            .contains("is protected"),
        "{}",
        answer.body
    );
    assert!(
        h.fake
            .calls_to("POST", &format!("/channels/{APPROVALS}/messages"))
            .is_empty(),
        "no card"
    );
}

#[tokio::test]
async fn commands_are_registered_per_guild() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let msg = tokenwarden::discord::register(h.bot.http(), &settings(&h.fake.url, &h.key))
        .await
        .unwrap();
    assert!(msg.contains("1 guild"));
    let put = h.fake.calls_to(
        "PUT",
        &format!("/applications/{APP}/guilds/{GUILD}/commands"),
    );
    assert_eq!(put.len(), 1);
    let cmd = &put[0].body[0];
    assert_eq!(cmd["name"], "token");
    let subs: Vec<&str> = cmd["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(
        subs,
        [
            "list",
            "create-admin",
            "create-resource",
            "delete",
            "prune-expired"
        ]
    );
    assert_eq!(
        cmd["default_member_permissions"], "0",
        "hidden until a server admin allows roles under Integrations"
    );
    assert_eq!(cmd["integration_types"], json!([0]), "guild install only");
    assert_eq!(cmd["contexts"], json!([0]));
    let mut strings = 0;
    for sub in cmd["options"].as_array().unwrap() {
        for o in sub["options"].as_array().into_iter().flatten() {
            if o["type"] == 3 {
                strings += 1;
                let max = o["max_length"].as_u64();
                assert!(max.is_some_and(|m| m <= 1000), "{sub}: {o}");
            }
        }
    }
    assert!(strings >= 15, "{strings}");
    let delete = &cmd["options"][3]["options"];
    assert_eq!(
        (delete[0]["name"].as_str(), delete[0]["max_length"].as_u64()),
        (Some("name"), Some(256))
    );
    assert_eq!(
        (delete[1]["name"].as_str(), delete[1]["max_length"].as_u64()),
        (Some("reason"), Some(1000))
    );
    let mut global = settings(&h.fake.url, &h.key);
    global.guild_ids.clear();
    tokenwarden::discord::register(h.bot.http(), &global)
        .await
        .unwrap();
    assert_eq!(
        h.fake
            .calls_to("PUT", &format!("/applications/{APP}/commands"))
            .len(),
        1,
        "global without guilds"
    );
}

#[tokio::test]
async fn prune_expired_asks_the_team_with_the_list() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let id = h.next_id();
    h.send(command(id, ALICE, "prune-expired", &[])).await;
    let none = h
        .fake
        .wait_for("the answer", |c| c.path.ends_with(&original(id)))
        .await;
    assert!(
        none.body["content"]
            .as_str()
            .unwrap()
            .contains("no expired tokens"),
        "{}",
        none.body
    );
    h.sim.control.create_admin("stale-1", Some(Duration::ZERO));
    h.sim.control.create_admin("stale-2", Some(Duration::ZERO));
    h.sim
        .control
        .create_admin("keep-stale", Some(Duration::ZERO));
    h.send(command(h.next_id(), ALICE, "prune-expired", &[]))
        .await;
    let (card, approve) = card_for(&h, "stale-1").await;
    let text = card.body["embeds"][0].to_string();
    assert!(
        text.contains("Delete 2 expired tokens")
            && text.contains("stale-2")
            && !text.contains("keep-stale"),
        "{text}"
    );
    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, 10_000))
        .await;
    h.fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted 2 expired tokens")
        })
        .await;
    assert!(!h.has("stale-1") && !h.has("stale-2") && h.has("keep-stale"));
}

#[tokio::test]
async fn a_create_whose_bot_died_is_withdrawn_and_its_owner_told_by_dm() {
    let store = Store::open_in_memory().unwrap();
    // The bot's process holds its claims as a process that no longer exists.
    let dead = store.as_owner(crate::guardrails::dead_owner());
    let h = Harness::new(Edition::Core, dead, |_| {}).await;
    h.sim
        .control
        .stall_after_apply(tokenwarden::sim::StallAfterApply {
            path_prefix: "/api/v3/configure/token/named_admin".into(),
            method: Some("POST".into()),
            times: Some(1),
        });
    h.send(command(
        h.next_id(),
        ALICE,
        "create-admin",
        &[("name", "orphan")],
    ))
    .await;
    let applied = h
        .sim
        .control
        .wait_for_stall(
            "/api/v3/configure/token/named_admin",
            Duration::from_secs(10),
        )
        .await;
    assert!(applied.is_some());
    assert!(
        h.has("orphan"),
        "InfluxDB made it; no DM carried its secret"
    );
    // Another process (a CLI, a replica) settles the dead bot's work.
    let live = crate::support::service(
        &h.sim,
        &h.op,
        crate::support::instance("local", None, &[], false),
        store,
    );
    assert_eq!(live.recover().await.settled, 1);
    assert!(!h.has("orphan"), "nobody holds its secret: withdrawn");
    h.bot.sweep().await;
    let told = h
        .fake
        .wait_for("the owner's notice", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + ALICE.id)
                && c.body.to_string().contains("was deleted again")
        })
        .await;
    assert_no_token("the notice", &told.body.to_string());
}

/// A name made outside tokenwarden: long, with markdown, a mention and a backtick in it.
fn odd_name(tail: &str) -> String {
    format!("*bold* @everyone <@1> `tick` {}{tail}", "x".repeat(200))
}

#[tokio::test]
async fn long_odd_names_and_reasons_fit_discord_and_can_still_be_deleted() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let (a, b) = (odd_name("-a"), odd_name("-b"));
    h.sim.control.create_admin(&a, None);
    h.sim.control.create_admin(&b, None);
    let (id_a, id_b) = (
        h.sim.control.token_id(&a).unwrap(),
        h.sim.control.token_id(&b).unwrap(),
    );
    // Autocomplete offers what Discord can carry back: the id, with the name as a label.
    let r = h
        .send(autocomplete(h.next_id(), ALICE, "delete", "name", "bold"))
        .await;
    let choices = r["data"]["choices"].as_array().unwrap();
    let values: Vec<&str> = choices.iter().filter_map(|c| c["value"].as_str()).collect();
    assert_eq!(values, [format!("id:{id_a}"), format!("id:{id_b}")]);
    let labels: Vec<&str> = choices.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_ne!(labels[0], labels[1], "look-alike names stay apart");
    assert!(
        labels[0].starts_with("*bold* @everyone") && labels[0].ends_with(&format!("(id {id_a})"))
    );

    let reason = "r".repeat(1500);
    let id = h.next_id();
    h.send(command(
        id,
        BOB,
        "delete",
        &[("name", values[0]), ("reason", &reason)],
    ))
    .await;
    let (card, approve) = card_for(&h, &format!("(id {id_a})")).await;
    let embed = &card.body["embeds"][0];
    let title = shown(&embed["title"]);
    assert!(
        title.starts_with("Delete token `*bold* @everyone <@1> ˋtickˋ x")
            && title.contains(&format!("(id {id_a})")),
        "the name is shown literally, cut, with its id: {title}"
    );
    let reason_field = embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Reason")
        .unwrap();
    assert!(
        shown(&reason_field["value"]).ends_with("r…"),
        "{reason_field}"
    );
    let answer = h
        .fake
        .wait_for("the requester's answer", |c| {
            c.path.ends_with(&original(id))
        })
        .await;
    assert!(shown(&answer.body["content"]).contains(&format!("(id {id_a})")));
    h.send(click(h.next_id(), CAROL, &approve, APPROVALS, 10_000))
        .await;
    h.fake
        .wait_for("the card edit", |c| {
            c.method == "PATCH" && c.body.to_string().contains("Deleted token")
        })
        .await;
    assert!(!h.has(&a) && h.has(&b), "exactly the chosen token went");
    h.fake
        .wait_for("the requester's DM", |c| {
            c.path == format!("/api/v10/channels/{}/messages", DM_BASE + BOB.id)
        })
        .await;
    h.fake.assert_all_accepted();
}

#[tokio::test]
async fn a_page_of_long_names_and_overlong_options_stay_within_discords_limits() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim
            .control
            .create_admin(&odd_name(&format!("-{i:02}")), None);
    }
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[("name", "bold")]))
        .await;
    let edit = h
        .fake
        .wait_for("the list", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(id))
        })
        .await;
    let text = edit.body["embeds"][0]["description"].as_str().unwrap();
    assert!(text.starts_with("```") && text.ends_with("```"), "{text}");
    assert_eq!(
        text.matches("```").count(),
        2,
        "no name breaks out of the table"
    );
    assert!(text.contains("*bold* @everyone <@1> ˋtickˋ"), "{text}");
    assert!(edit.body["components"][0]["components"][1]["disabled"] == false);

    // Someone bypassing the client's max_length: answered, never "interaction failed".
    let huge = "n".repeat(6000);
    for (sub, opts) in [
        ("list", vec![("instance", huge.as_str())]),
        (
            "create-resource",
            vec![("name", "r"), ("permissions", huge.as_str())],
        ),
        ("create-admin", vec![("name", huge.as_str())]),
        ("delete", vec![("name", huge.as_str())]),
    ] {
        let r = h.send(command(h.next_id(), ALICE, sub, &opts)).await;
        assert!(is_ephemeral_message(&r), "{sub}: {r}");
    }
    let id = h.next_id();
    h.send(command(
        id,
        BOB,
        "delete",
        &[("name", &odd_name("-03")), ("reason", &huge)],
    ))
    .await;
    card_for(&h, "tick").await;
    h.fake.assert_all_accepted();
}

#[tokio::test]
async fn a_replayed_request_is_answered_but_does_nothing() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    h.sim.control.create_admin("victim", None);
    let id = h.next_id();
    let body = command(id, BOB, "delete", &[("name", "victim")]).to_string();
    let ts = chrono::Utc::now().timestamp();
    let (status, first) = h.post_signed(&body, ts, &h.key).await;
    assert_eq!(status, 200);
    assert!(
        is_deferred(&serde_json::from_str(&first).unwrap()),
        "{first}"
    );
    card_for(&h, "victim").await;
    let (status, again) = h.post_signed(&body, ts, &h.key).await;
    assert_eq!(status, 200);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert!(
        is_ephemeral_message(&again)
            && again["data"]["content"]
                .as_str()
                .unwrap()
                .contains("already handled"),
        "{again}"
    );
    h.fake
        .wait_for("the requester's answer", |c| {
            c.path.ends_with(&original(id))
        })
        .await;
    assert_eq!(
        h.fake
            .calls_to("POST", &format!("/channels/{APPROVALS}/messages"))
            .len(),
        1,
        "one card"
    );
    assert_eq!(
        h.service.open_pending().await.unwrap().len(),
        1,
        "one pending action"
    );
}

#[tokio::test]
async fn an_unknown_instance_is_refused_before_any_dm() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let r = h
        .send(command(
            h.next_id(),
            ALICE,
            "create-admin",
            &[("name", "ci"), ("instance", "nope")],
        ))
        .await;
    assert!(
        is_ephemeral_message(&r)
            && shown(&r["data"]["content"]).contains("no instance named `nope`"),
        "{r}"
    );
    assert!(
        h.fake.calls().is_empty(),
        "no DM promised a secret: {:#?}",
        h.fake.calls()
    );
    assert!(!h.has("ci"));
}

#[tokio::test]
async fn page_buttons_check_the_list_capability() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim.control.create_admin(&format!("ci-{i:02}"), None);
    }
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[])).await;
    let edit = h
        .fake
        .wait_for("the list", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(id))
        })
        .await;
    let next = edit.body["components"][0]["components"][1]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let demoted = Who {
        roles: &[],
        ..ALICE
    };
    let paging = h.next_id();
    let r = h.send(click(paging, demoted, &next, 600, 1)).await;
    assert!(
        is_ephemeral_message(&r)
            && r["data"]["content"]
                .as_str()
                .unwrap()
                .contains("not allowed to list"),
        "{r}"
    );
    assert!(
        h.fake.calls_to("PATCH", &original(paging)).is_empty(),
        "no page was shown"
    );
}

#[tokio::test]
async fn a_signed_timestamp_at_either_end_of_time_is_refused_as_stale() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let ping = json!({"id": "1", "application_id": APP.to_string(), "type": 1, "token": "t", "version": 1}).to_string();
    for ts in [i64::MIN, i64::MAX] {
        assert_eq!(
            h.post_signed(&ping, ts, &h.key).await.0,
            401,
            "timestamp {ts}"
        );
    }
}

#[tokio::test]
async fn a_page_button_for_an_impossible_page_answers_an_error_instead_of_going_silent() {
    let h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    for i in 0..20 {
        h.sim.control.create_admin(&format!("ci-{i:02}"), None);
    }
    let id = h.next_id();
    h.send(command(id, ALICE, "list", &[])).await;
    let edit = h
        .fake
        .wait_for("the list", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(id))
        })
        .await;
    let next = edit.body["components"][0]["components"][1]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A crafted click: the page number of a real listing, far past any page.
    let (list, _) = next.rsplit_once(':').unwrap();
    let impossible = format!("{list}:{}", usize::MAX);
    let paging = h.next_id();
    let r = h.send(click(paging, ALICE, &impossible, 600, 1)).await;
    assert_eq!(r["type"], 6, "{r}");
    let answer = h
        .fake
        .wait_for("an answer to the click", |c| {
            c.method == "PATCH" && c.path.ends_with(&original(paging))
        })
        .await;
    assert!(
        answer.body["content"]
            .as_str()
            .is_some_and(|t| t.contains("no such page")),
        "{}",
        answer.body
    );
}

//! Creates and regenerations whose answer does not say what happened: a gateway's 504 after
//! InfluxDB made the token, a 500 sent after the change, a 201 cut short or mistyped, a request
//! lost on its way. They are reported as of unknown outcome (never as rejected), audited so, and
//! settled by the journal: a token whose secret nobody holds is withdrawn, a name whose create
//! may still land stays reserved until a stated time, and a token made after it is left alone.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateMode, PendingState};
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::mcp::{McpCore, McpSettings};
use tokenwarden::service::{Clock, ErrorKind, GateRequest, LATE_WRITES, TokenService};
use tokenwarden::sim::{AnswerAfterApply, Reanswer, RunningSim, Swallow};
use tokenwarden::store::{AuditEntry, AuditOutcome, JournalEntry, LostAnswer, Stage, Store};
use tokenwarden::tokens::{Edition, RawToken};

use crate::mcp_support::{Client, Era, TestClient, call, connect, err};
use crate::support::{assert_no_token, instance, sim};

const NAMED_ADMIN: &str = "/api/v3/configure/token/named_admin";
const RESOURCE: &str = "/api/v3/enterprise/configure/token";
const REGENERATE: &str = "/api/v3/configure/token/admin/regenerate";

/// A simulator, a service over it whose requests give up after 300 ms and which looks again at
/// a lost answer after `late_writes`, and an MCP client.
struct World {
    edition: Edition,
    sim: RunningSim,
    store: Store,
    svc: Arc<TokenService>,
    mcp: Client,
    _core: McpCore,
}

async fn world(edition: Edition) -> World {
    world_watching(edition, LATE_WRITES).await
}

async fn world_watching(edition: Edition, late_writes: Duration) -> World {
    let (sim, op) = sim(edition).await;
    sim.control.create_database("metrics");
    let store = Store::open_in_memory().unwrap();
    let backend = Arc::new(
        InfluxClient::new(ClientOptions {
            url: sim.url(),
            token: Some(op.clone()),
            timeout: Duration::from_millis(300),
            ca_file: None,
        })
        .unwrap(),
    );
    let svc = Arc::new(
        TokenService::new(
            vec![(instance("local", Some(edition), &[], false), backend)],
            None,
            store.clone(),
            Clock::System,
            Duration::from_secs(300),
        )
        .with_late_writes(late_writes),
    );
    let core = McpCore::new(Arc::clone(&svc), McpSettings::default());
    let mcp = connect(&core, TestClient::plain(), Era::Modern).await;
    World {
        edition,
        sim,
        store,
        svc,
        mcp,
        _core: core,
    }
}

impl World {
    /// Asks for `name` through MCP: an admin token on Core, a resource token on Enterprise.
    async fn create(&self, name: &str) -> String {
        let (tool, args) = if self.edition == Edition::Enterprise {
            (
                "create_resource_token",
                json!({"name": name, "permissions": [{"database": "metrics", "actions": ["read"]}]}),
            )
        } else {
            ("create_admin_token", json!({"name": name}))
        };
        err(&call(&self.mcp, tool, args).await)
    }

    fn path(&self) -> &'static str {
        match self.edition {
            Edition::Enterprise => RESOURCE,
            Edition::Core => NAMED_ADMIN,
        }
    }

    async fn audit(&self, n: usize) -> Vec<AuditEntry> {
        let audit = self.svc.audit_log(n).await.unwrap();
        assert_no_token("the audit log", &format!("{audit:?}"));
        audit
    }

    /// The requests that reached the simulator with `method` on a path starting with `path`.
    fn sent(&self, method: &str, path: &str) -> Vec<tokenwarden::sim::RecordedRequest> {
        self.sim
            .control
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(path))
            .collect()
    }
}

fn replace(status: u16, content_type: Option<&str>, body: &str) -> Reanswer {
    Reanswer::Replace {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.to_owned(),
    }
}

/// A deadline as the answers state it.
fn stated(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_create_answered_unclearly_after_influxdb_made_it_is_withdrawn_and_said_so() {
    let gateway = "<html><body><h1>504 Gateway Time-out</h1></body></html>";
    let cases = [
        (
            Edition::Core,
            "504 Gateway Timeout",
            replace(504, Some("text/html"), gateway),
        ),
        (
            Edition::Core,
            "500 Internal Server Error",
            replace(500, None, r#"{"error": "catalog persisted, then failed"}"#),
        ),
        (Edition::Core, "201 Created", Reanswer::Cut { keep: 40 }),
        (
            Edition::Core,
            "201 Created",
            replace(
                201,
                Some("json"),
                r#"{"id":"7","name":"made","token":"apiv3_mistyped","expiry":null}"#,
            ),
        ),
        (
            Edition::Enterprise,
            "502 Bad Gateway",
            replace(502, None, ""),
        ),
        (
            Edition::Enterprise,
            "201 Created",
            Reanswer::Cut { keep: 40 },
        ),
    ];
    for (edition, status, answer) in cases {
        let w = world(edition).await;
        w.sim.control.create_admin("bystander", None).unwrap();
        w.sim.control.answer_after_apply(AnswerAfterApply {
            path_prefix: w.path().into(),
            method: Some("POST".into()),
            answer,
            times: Some(1),
        });
        let text = w.create("made").await;
        let case = format!("{edition:?} {status}");
        assert!(
            text.contains("InfluxDB's answer to the creation of token `made` was lost")
                && text.contains(&format!("answered {status}"))
                && text.contains("InfluxDB had made the token, so tokenwarden deleted it again"),
            "{case}: {text}"
        );
        assert!(!text.contains("rejected"), "{case}: {text}");

        let created = w.sent("POST", w.path());
        assert_eq!(created.len(), 1, "{case}: never retried");
        assert_eq!(created[0].withheld, Some(201), "{case}: InfluxDB made it");
        let deletes = w.sent("DELETE", "/api/v3/configure/token");
        assert_eq!(deletes.len(), 1, "{case}: {deletes:?}");
        assert_eq!(
            (deletes[0].query.as_str(), deletes[0].status),
            ("token_name=made", 200),
            "{case}"
        );
        assert_eq!(w.sim.control.token_id("made"), None, "{case}: withdrawn");
        assert!(w.sim.control.token_id("bystander").is_some(), "{case}");

        let audit = w.audit(2).await;
        let (withdrawn, create) = (&audit[0].event, &audit[1].event);
        assert_eq!(
            (withdrawn.event.as_str(), withdrawn.outcome),
            ("token.withdraw", AuditOutcome::RolledBack),
            "{case}: {audit:?}"
        );
        assert_eq!(
            withdrawn.detail.as_deref(),
            Some("InfluxDB's answer to its creation was lost, so its secret never arrived"),
            "{case}"
        );
        assert_eq!(create.outcome, AuditOutcome::Unknown, "{case}: {audit:?}");
        let detail = create.detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains("may or may not have happened") && detail.contains(status),
            "{case}: {detail}"
        );
        assert!(w.svc.unfinished().await.unwrap().is_empty(), "{case}");
    }
}

#[test]
fn the_cli_says_a_gateway_timeout_after_the_create_left_no_token_behind() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, op) = rt.block_on(sim(Edition::Core));
    s.control.answer_after_apply(AnswerAfterApply {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        answer: replace(504, Some("text/html"), "<html>504 Gateway Time-out</html>"),
        times: Some(1),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &s.url(), &op);
    let r = crate::cli::run(&cfg, &["tokens", "create-admin", "ci"], "");
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(
        r.stderr.contains("answered 504 Gateway Timeout")
            && r.stderr
                .contains("InfluxDB had made the token, so tokenwarden deleted it again"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("rejected"), "{}", r.stderr);
    assert_eq!(s.control.token_id("ci"), None);
    let r = crate::cli::run(&cfg, &["audit", "--json", "--limit", "2"], "");
    let audit: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (&audit[0]["event"], &audit[0]["outcome"]),
        (&json!("token.withdraw"), &json!("rolled_back"))
    );
    assert_eq!(audit[1]["outcome"], "unknown");
}

/// A config in `dir` for the simulator at `url`, whose requests give up after 300 ms.
fn config(dir: &std::path::Path, url: &str, op: &RawToken) -> std::path::PathBuf {
    std::fs::write(dir.join("operator.token"), op.expose()).unwrap();
    let cfg = dir.join("tokenwarden.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"tokenwarden.db\"\n\n[[instances]]\nname = \"local\"\nurl = \"{url}\"\n\
             token_file = \"operator.token\"\ntimeout = \"300ms\"\nedition = \"core\"\n"
        ),
    )
    .unwrap();
    cfg
}

/// Asks for `name` while its request is lost on its way; the answer, and the end of the watch.
async fn lost_on_its_way(w: &World, name: &str) -> (String, DateTime<Utc>) {
    w.sim.control.swallow(Swallow {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    let text = w.create(name).await;
    let open = w.svc.unfinished().await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let e = &open[0];
    assert_eq!(
        (e.stage, e.lost),
        (Stage::Intent, Some(LostAnswer::NoneFound)),
        "{e:?}"
    );
    (text, e.due_at.expect("a watched create"))
}

#[tokio::test]
async fn a_create_lost_on_its_way_reserves_its_name_until_a_stated_time() {
    let w = world(Edition::Core).await;
    let (text, until) = lost_on_its_way(&w, "ci-deploy").await;
    let ahead = until - Utc::now();
    assert!(
        ahead > chrono::Duration::seconds(55) && ahead <= chrono::Duration::seconds(61),
        "watched for a minute: {until}"
    );
    let reserved = format!(
        "The name stays reserved and watched until {}",
        stated(until)
    );
    assert!(
        text.contains("InfluxDB's answer to the creation of token `ci-deploy` was lost")
            && text
                .contains("No token of that name exists now, but InfluxDB may still make it late")
            && text.contains(&reserved)
            && text.contains("do not create it anywhere before then")
            && text.contains("after that it can be created again"),
        "{text}"
    );
    assert!(!text.contains("if you still need it"), "{text}");
    let audit = w.audit(1).await;
    assert_eq!(audit[0].event.outcome, AuditOutcome::Unknown, "{audit:?}");

    // tokenwarden's own create of the name is refused meanwhile, and says until when.
    let again = w.create("ci-deploy").await;
    assert!(
        again.contains(&format!(
            "the name stays reserved and watched until {}",
            stated(until)
        )),
        "{again}"
    );
    assert_eq!(w.sent("POST", NAMED_ADMIN).len(), 1, "nothing sent again");
    let audit = w.audit(1).await;
    assert_eq!(audit[0].event.outcome, AuditOutcome::Refused, "{audit:?}");
}

#[tokio::test]
async fn a_token_made_by_hand_after_the_stated_time_is_never_taken_for_the_lost_create() {
    // A watch that recovery may settle at once; the end it states still lies ahead.
    let w = world_watching(Edition::Core, Duration::ZERO).await;
    let (text, until) = lost_on_its_way(&w, "ci-deploy").await;
    assert!(
        text.contains(&format!("watched until {}", stated(until))),
        "{text}"
    );
    // After that time a person makes it by hand, as the answer said they could.
    let after = until - Utc::now() + chrono::Duration::seconds(1);
    w.sim.control.advance_clock(after.to_std().unwrap());
    w.sim.control.create_admin("ci-deploy", None).unwrap();
    let theirs = w.sim.control.token_id("ci-deploy");
    let entry = w.svc.unfinished().await.unwrap()[0].id.clone();
    assert_eq!(w.svc.recover().await.settled, 1);
    assert_eq!(w.sim.control.token_id("ci-deploy"), theirs, "left alone");
    assert!(w.sent("DELETE", "/api/v3/configure/token").is_empty());
    assert_eq!(w.store.journal_get(&entry).unwrap().stage, Stage::Failed);
    let audit = w.audit(1).await;
    assert_ne!(audit[0].event.event, "token.withdraw", "{audit:?}");
}

#[tokio::test]
async fn a_create_lost_on_its_way_and_applied_late_is_withdrawn_for_that_reason() {
    let w = world(Edition::Core).await;
    let (_, until) = lost_on_its_way(&w, "late").await;
    let left = w.svc.unfinished().await.unwrap().remove(0);
    // The entry it left, as a process that has since stopped holds it: the next process
    // settles it (here before its watch ends), and InfluxDB applied the create meanwhile.
    let dead = w.store.as_owner(crate::guardrails::dead_owner());
    let mut entry = JournalEntry::new("local", &left.actor, left.op.clone(), left.created_at);
    (entry.due_at, entry.lost) = (left.due_at, left.lost);
    dead.journal_begin(&entry).unwrap();
    w.sim.control.create_admin("late", None).unwrap();
    assert!(Utc::now() < until);
    assert_eq!(w.svc.recover().await.settled, 1);
    assert_eq!(w.sim.control.token_id("late"), None, "withdrawn");
    let deletes = w.sent("DELETE", "/api/v3/configure/token");
    assert_eq!(
        deletes.iter().map(|r| r.query.as_str()).collect::<Vec<_>>(),
        ["token_name=late"]
    );
    let audit = w.audit(1).await;
    assert_eq!(
        (audit[0].event.event.as_str(), audit[0].event.outcome),
        ("token.withdraw", AuditOutcome::RolledBack)
    );
    assert_eq!(
        audit[0].event.detail.as_deref(),
        Some(
            "InfluxDB's answer to its creation was lost and InfluxDB made it late, after tokenwarden \
             had found no such token; its secret never arrived"
        )
    );
}

#[test]
fn the_cli_reserves_a_name_whose_create_was_lost_and_refuses_it_until_then() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, op) = rt.block_on(sim(Edition::Core));
    s.control.swallow(Swallow {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &s.url(), &op);
    let r = crate::cli::run(&cfg, &["tokens", "create-admin", "ci"], "");
    assert_eq!(r.code, 9, "{}", r.stderr);
    let (_, rest) = r
        .stderr
        .split_once("The name stays reserved and watched until ")
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let until = &rest[..20];
    assert!(until.parse::<DateTime<Utc>>().is_ok(), "{}", r.stderr);
    assert!(
        r.stderr.contains("after that it can be created again"),
        "{}",
        r.stderr
    );
    let r = crate::cli::run(&cfg, &["tokens", "create-admin", "ci"], "");
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "the name stays reserved and watched until {until}"
        )),
        "{}",
        r.stderr
    );
    let creates = s
        .control
        .requests()
        .iter()
        .filter(|r| r.path == NAMED_ADMIN)
        .count();
    assert_eq!(creates, 1, "the refused create sent nothing");
}

#[tokio::test]
async fn a_regeneration_answered_by_a_gateway_timeout_is_unknown_then_reported_lost() {
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator.token");
    std::fs::write(&file, format!("{}\n", op.expose())).unwrap();
    let mut settings = instance("local", Some(Edition::Core), &[], false);
    settings.operator_token_file = Some(file.clone());
    settings.credential_file = Some(file.clone());
    // Recovery may look again at once, as it would a minute later.
    let svc = crate::support::service(&s, &op, settings, Store::open_in_memory().unwrap())
        .with_late_writes(Duration::ZERO);
    s.control.answer_after_apply(AnswerAfterApply {
        path_prefix: REGENERATE.into(),
        method: None,
        answer: replace(504, None, "upstream timed out"),
        times: Some(1),
    });
    let ann = Actor::discord(1, "ann");
    let gate = GateRequest {
        mode: GateMode::confirm_with("local"),
        ttl: None,
        reason: None,
    };
    let req = svc
        .request_regenerate(&ann, None, gate, None)
        .await
        .unwrap();
    let e = svc
        .confirm(&ann, &req.pending.id, &req.pending.action, "local")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("InfluxDB's answer to the regeneration of the operator token of instance `local` was lost")
            && text.contains("answered 504 Gateway Timeout")
            && text.contains("If InfluxDB applied it, the old secret no longer works and the new one is lost")
            && text.contains("settles this within about a minute"),
        "{text}"
    );
    assert!(!text.contains("rejected"), "{text}");
    let audit = svc.audit_log(1).await.unwrap();
    assert_eq!(audit[0].event.outcome, AuditOutcome::Unknown, "{audit:?}");
    let sent = s.control.requests();
    assert_eq!(
        sent.iter().filter(|r| r.path == REGENERATE).count(),
        1,
        "never sent again"
    );
    let open = svc.unfinished().await.unwrap();
    assert_eq!(open.len(), 1, "left to the journal: {open:?}");

    // Once a late write would have landed, recovery finds the file's secret dead: lost.
    assert_eq!(svc.recover().await.settled, 1);
    let state = svc.pending(&req.pending.id).await.unwrap().state;
    assert!(
        matches!(&state, PendingState::Unknown { reason } if reason.contains("its new secret is lost")),
        "{state:?}"
    );
    let audit = svc.audit_log(1).await.unwrap();
    assert_eq!(audit[0].event.outcome, AuditOutcome::Unknown, "{audit:?}");
    assert_no_token("the audit log", &format!("{audit:?}"));
}

/// A DELETE answered with a gateway's 504 does not say whether the token went: the delete looks.
/// Applied, it is reported deleted; not applied, the answer says the outcome is unknown (never
/// "rejected"), and the DELETE is not sent again.
#[tokio::test]
async fn a_delete_answered_by_a_gateway_timeout_is_looked_at_not_called_rejected() {
    let w = world(Edition::Core).await;
    let delete = |name: &str| {
        let name = name.to_owned();
        let mcp = &w.mcp;
        async move {
            let asked = call(mcp, "delete_token", json!({"name": name})).await;
            let asked = crate::mcp_support::ok(&asked);
            let code = asked["confirmation_code"].as_str().unwrap().to_owned();
            call(
                mcp,
                "delete_token",
                json!({"name": name, "confirmation_code": code}),
            )
            .await
        }
    };
    let gateway = replace(504, Some("text/html"), "<html>504 Gateway Time-out</html>");

    w.sim.control.create_admin("applied", None).unwrap();
    w.sim.control.answer_after_apply(AnswerAfterApply {
        path_prefix: "/api/v3/configure/token".into(),
        method: Some("DELETE".into()),
        answer: gateway.clone(),
        times: Some(1),
    });
    let done = crate::mcp_support::ok(&delete("applied").await);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(w.sent("DELETE", "/api/v3/configure/token").len(), 1);

    w.sim.control.create_admin("untouched", None).unwrap();
    w.sim
        .control
        .force_response(tokenwarden::sim::ForcedResponse {
            path_prefix: "/api/v3/configure/token".into(),
            status: 504,
            content_type: Some("text/html".into()),
            body: "<html>504 Gateway Time-out</html>".into(),
            times: Some(1),
        });
    let unknown = delete("untouched").await;
    let text = format!("{unknown:?}");
    assert!(!text.contains("rejected"), "{text}");
    assert!(
        text.contains("does not say whether InfluxDB applied it"),
        "{text}"
    );
    assert_eq!(
        w.sent("DELETE", "/api/v3/configure/token").len(),
        2,
        "one DELETE each, none sent again"
    );
    let still = w.store.journal_unsettled().unwrap();
    assert_eq!(still.len(), 1, "left for recovery to settle: {still:?}");
    assert_eq!(still[0].sent.len(), 1, "recorded as sent: {still:?}");
}

/// A 201 that does not say the new token's id (Enterprise's resource-token answer is not
/// documented to carry one): the id is looked up by name, so the token can still be withdrawn
/// by id.
#[tokio::test]
async fn a_create_answered_without_its_id_learns_it_by_name() {
    let w = world(Edition::Enterprise).await;
    w.sim.control.answer_after_apply(AnswerAfterApply {
        path_prefix: RESOURCE.into(),
        method: Some("POST".into()),
        answer: replace(
            201,
            Some("application/json"),
            r#"{"token": "apiv3_stand-in-secret-of-this-test", "name": "no-id"}"#,
        ),
        times: Some(1),
    });
    let created = call(
        &w.mcp,
        "create_resource_token",
        json!({"name": "no-id", "permissions": [{"database": "metrics", "actions": ["read"]}]}),
    )
    .await;
    let made = crate::mcp_support::ok(&created);
    let id = w.sim.control.token_id("no-id").expect("made");
    assert_ne!(id, 0);
    assert_eq!(made["token"]["id"], id, "{made}");
    assert_eq!(made["token"]["name"], "no-id", "{made}");
}

//! The crash matrix: a real tokenwarden process is SIGKILLed at three points of each operation
//! (before InfluxDB is called; after InfluxDB applied the change but before its answer arrived;
//! after the answer but before it was recorded), then the next process on the same store
//! settles what was left. Synchronised on the simulator's request log and the pause points the
//! core announces on stderr, never on sleeps.

use std::time::Duration;

use serde_json::Value;
use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateMode, PendingId, PendingState};
use tokenwarden::service::{Clock, TokenService};
use tokenwarden::service::{GateRequest, Operation};
use tokenwarden::sim::{HoldBeforeApply, RunningSim, StallAfterApply};
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken, TokenName};

use crate::backends::{Backend, on_both_stores};
use crate::procs::Tw;
use crate::support::{self, assert_no_token};

/// Where the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    BeforeCall,
    Applied,
    Answered,
}

const POINTS: [Point; 3] = [Point::BeforeCall, Point::Applied, Point::Answered];
const WAIT: Duration = Duration::from_secs(30);

/// What is killed: the command, the request it must not survive, and its pause-point prefix.
struct Case {
    args: Vec<String>,
    path: &'static str,
    method: &'static str,
    pause: &'static str,
}

/// Kills `case` at `point` against `sim`, with `tw`'s config.
async fn kill_at(sim: &RunningSim, tw: &Tw, case: &Case, point: Point) {
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let tw = match point {
        Point::BeforeCall => tw.clone().env(
            "TOKENWARDEN_TEST_PAUSE",
            &format!("{}:before-call", case.pause),
        ),
        Point::Answered => tw.clone().env(
            "TOKENWARDEN_TEST_PAUSE",
            &format!("{}:answered", case.pause),
        ),
        Point::Applied => {
            sim.control.stall_after_apply(StallAfterApply {
                path_prefix: case.path.into(),
                method: Some(case.method.into()),
                times: Some(1),
            });
            tw.clone()
        }
    };
    let mut child = tw.spawn(&args);
    let reached = match point {
        Point::Applied => sim.control.wait_for_stall(case.path, WAIT).await.is_some(),
        _ => child
            .wait_stderr(|l| l.contains("tokenwarden: paused at"), WAIT)
            .await
            .is_some(),
    };
    assert!(
        reached,
        "{:?} {point:?} never reached\n{}",
        case.args,
        child.seen()
    );
    child.kill9();
    sim.control.clear_faults();
}

/// The next process: any command that talks to InfluxDB settles the dead one's work first.
async fn next_process(tw: &Tw) -> Value {
    let r = tw.run(&["tokens", "list", "--json", "--all"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

async fn audit(tw: &Tw) -> Vec<Value> {
    let r = tw.run(&["audit", "--json", "--limit", "200"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_token("the audit log", &r.stdout);
    serde_json::from_str::<Vec<Value>>(&r.stdout).unwrap()
}

/// Nothing is left unfinished, no pending action stays executing, and each pending action's
/// outcome is audited once.
async fn settled(w: &World) {
    let (store, tw) = (w.store(), &w.tw);
    assert!(
        store.journal_unsettled().unwrap().is_empty(),
        "unsettled: {:?}",
        store.journal_unsettled()
    );
    let rows = audit(tw).await;
    let pending: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["pending_id"].as_str())
        .collect();
    for id in pending {
        let p = store
            .get_pending::<Operation>(&PendingId::parse(id).unwrap())
            .unwrap();
        assert_ne!(p.state, PendingState::Executing, "{id} stays executing");
        let finals = rows
            .iter()
            .filter(|r| r["pending_id"] == id)
            .filter(|r| matches!(r["outcome"].as_str(), Some("succeeded" | "failed")))
            .count();
        assert_eq!(
            finals, 1,
            "pending {id}: one outcome, audited once: {rows:#?}"
        );
    }
}

fn names(listed: &Value) -> Vec<String> {
    listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

struct World {
    sim: RunningSim,
    op: RawToken,
    dir: tempfile::TempDir,
    tw: Tw,
    backend: Backend,
}

impl World {
    /// The store its processes share.
    fn store(&self) -> Store {
        self.backend.store(self.dir.path())
    }
}

/// A simulator with a bystander token, and processes configured on a fresh store: each kill
/// point starts over from nothing.
async fn world(backend: &Backend) -> World {
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("bystander", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = match backend {
        Backend::Sqlite => Backend::Sqlite,
        Backend::Postgres(_) => Backend::postgres().expect("a PostgreSQL server, as before"),
    };
    let tw = backend.configure(Tw::new(dir.path(), &sim.url(), &op).env("RUST_LOG", "warn"));
    World {
        sim,
        op,
        dir,
        tw,
        backend,
    }
}

async fn a_create_killed_at_any_point_leaves_no_token_that_nobody_holds(backend: Backend) {
    for point in POINTS {
        let w = world(&backend).await;
        let case = Case {
            args: vec!["tokens".into(), "create-admin".into(), "fresh".into()],
            path: "/api/v3/configure/token/named_admin",
            method: "POST",
            pause: "create",
        };
        kill_at(&w.sim, &w.tw, &case, point).await;
        let listed = next_process(&w.tw).await;
        assert!(
            !names(&listed).contains(&"fresh".to_owned()),
            "{point:?}: {listed}"
        );
        assert!(names(&listed).contains(&"bystander".to_owned()));
        settled(&w).await;
        if point != Point::BeforeCall {
            let rows = audit(&w.tw).await;
            let withdrawn = rows
                .iter()
                .filter(|r| r["token_name"] == "fresh" && r["outcome"] == "rolled_back")
                .count();
            assert_eq!(withdrawn, 1, "{point:?}: {rows:#?}");
        }
    }
}

async fn a_confirmed_delete_killed_at_any_point_ends_with_exactly_that_token_gone(
    backend: Backend,
) {
    for point in POINTS {
        let w = world(&backend).await;
        w.sim.control.create_admin("victim", None).unwrap();
        let case = Case {
            args: vec![
                "tokens".into(),
                "delete".into(),
                "victim".into(),
                "--yes".into(),
            ],
            path: "/api/v3/configure/token",
            method: "DELETE",
            pause: "delete",
        };
        kill_at(&w.sim, &w.tw, &case, point).await;
        let listed = next_process(&w.tw).await;
        assert_eq!(
            names(&listed),
            vec!["_admin".to_owned(), "bystander".into()],
            "{point:?}: the confirmed delete completed, nothing else was touched"
        );
        settled(&w).await;
    }
}

async fn an_approval_killed_at_any_point_runs_the_delete_once(backend: Backend) {
    for point in POINTS {
        let w = world(&backend).await;
        w.sim.control.create_admin("victim", None).unwrap();
        let svc = support::service(
            &w.sim,
            &w.op,
            support::instance("local", None, &[], false),
            w.store(),
        );
        let gate = GateRequest {
            mode: GateMode::Approvals {
                required: 1,
                allow_self: false,
                approve_from: None,
            },
            ttl: Some(Duration::from_secs(3600)),
            reason: None,
        };
        let req = svc
            .request_delete(
                &Actor::discord(7, "requester"),
                None,
                &TokenName::parse("victim").unwrap(),
                gate,
            )
            .await
            .unwrap();
        let case = Case {
            args: vec![
                "approvals".into(),
                "approve".into(),
                req.pending.id.to_string(),
            ],
            path: "/api/v3/configure/token",
            method: "DELETE",
            pause: "delete",
        };
        kill_at(&w.sim, &w.tw, &case, point).await;
        let listed = next_process(&w.tw).await;
        assert!(!names(&listed).contains(&"victim".to_owned()), "{point:?}");
        assert!(names(&listed).contains(&"bystander".to_owned()));
        assert_eq!(
            svc.pending(&req.pending.id).await.unwrap().state,
            PendingState::Succeeded,
            "{point:?}"
        );
        settled(&w).await;
        let deletes = w
            .sim
            .control
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.status == 200)
            .count();
        assert!(deletes <= 1, "{point:?}: deleted once at most");
    }
}

async fn a_prune_killed_at_any_point_deletes_exactly_the_expired_tokens_shown(backend: Backend) {
    for point in POINTS {
        let w = world(&backend).await;
        for n in ["old-a", "old-b"] {
            w.sim.control.create_admin(n, Some(Duration::ZERO)).unwrap();
        }
        let case = Case {
            args: vec!["tokens".into(), "prune-expired".into(), "--yes".into()],
            path: "/api/v3/configure/token",
            method: "DELETE",
            pause: "prune",
        };
        kill_at(&w.sim, &w.tw, &case, point).await;
        let listed = next_process(&w.tw).await;
        assert_eq!(
            names(&listed),
            vec!["_admin".to_owned(), "bystander".into()],
            "{point:?}"
        );
        settled(&w).await;
    }
}

async fn a_regeneration_killed_at_any_point_is_settled_and_says_what_to_do(backend: Backend) {
    for point in POINTS {
        let w = world(&backend).await;
        // On a shared store the new secret must go where every replica reads its credential.
        let file = w.dir.path().join(match w.backend {
            Backend::Sqlite => "new-operator.token",
            Backend::Postgres(_) => "operator.token",
        });
        let case = Case {
            args: vec![
                "tokens".into(),
                "regenerate-operator".into(),
                "--yes".into(),
                "--token-file".into(),
                file.display().to_string(),
            ],
            path: "/api/v3/configure/token/admin/regenerate",
            method: "POST",
            pause: "regenerate",
        };
        kill_at(&w.sim, &w.tw, &case, point).await;
        let store = w.store();
        let old_works = support::client(&w.sim, Some(&w.op));
        let old_works = tokenwarden::tokens::TokenBackend::ping(&old_works)
            .await
            .is_ok();
        assert_eq!(old_works, point == Point::BeforeCall, "{point:?}");
        // The next process: a `check` settles the entry (it cannot list with a dead secret).
        let r = w.tw.run(&["check"], "").await;
        assert_eq!(r.code == 0, old_works, "{point:?}: {}", r.stderr);
        assert!(
            store.journal_unsettled().unwrap().is_empty(),
            "{point:?}: {:?}",
            store.journal_unsettled()
        );
        let rows = audit(&w.tw).await;
        let outcome = rows
            .iter()
            .find(|r| r["event"] == "token.regenerate_operator" && r["outcome"] != "requested")
            .unwrap_or_else(|| panic!("{point:?}: {rows:#?}"));
        if point != Point::BeforeCall {
            assert!(
                outcome["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("recovery listener"),
                "{point:?}: the one remaining risk says what to do: {outcome}"
            );
        }
    }
}

async fn a_create_killed_while_handing_over_its_secret_is_withdrawn_in_doubt(backend: Backend) {
    let w = world(&backend).await;
    let mut child =
        w.tw.clone()
            .env("TOKENWARDEN_TEST_PAUSE", "create:delivering")
            .spawn(&["tokens", "create-admin", "doubtful"]);
    let paused = child
        .wait_stderr(|l| l.contains("tokenwarden: paused at"), WAIT)
        .await;
    assert!(paused.is_some(), "{}", child.seen());
    child.kill9();
    assert!(w.sim.control.token_id("doubtful").is_some());
    let listed = next_process(&w.tw).await;
    assert!(!names(&listed).contains(&"doubtful".to_owned()), "{listed}");
    settled(&w).await;
    let rows = audit(&w.tw).await;
    assert!(
        rows.iter().any(|r| r["token_name"] == "doubtful"
            && r["outcome"] == "rolled_back"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("being handed over"))),
        "{rows:#?}"
    );
}

async fn a_discord_bot_killed_while_its_create_is_unanswered_leaves_nothing_behind(
    backend: Backend,
) {
    use crate::discord_support::{ALICE, BOT_TOKEN, command, settings};
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    let w = world(&backend).await;
    let fake = crate::discord_fake::FakeDiscord::start().await;
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut cfg = std::fs::read_to_string(&w.tw.config).unwrap();
    cfg.push_str(&format!(
        "\n[discord]\napplication_id = \"42\"\npublic_key = \"{}\"\nbot_token_file = \"discord.token\"\n\
         api_base = \"{}\"\npoll_interval = \"1h\"\n\n[discord.roles]\ncreate = [\"10\"]\n",
        hex::encode(key.verifying_key().to_bytes()),
        fake.url
    ));
    std::fs::write(&w.tw.config, cfg).unwrap();
    std::fs::write(w.dir.path().join("discord.token"), BOT_TOKEN).unwrap();
    let named_admin = "/api/v3/configure/token/named_admin";
    w.sim.control.stall_after_apply(StallAfterApply {
        path_prefix: named_admin.into(),
        method: Some("POST".into()),
        times: Some(1),
    });

    let mut bot = w.tw.spawn(&["discord", "--interactions", "127.0.0.1:0"]);
    let url = bot
        .listening_url("interactions endpoint listening on ")
        .await;
    crate::replicas::signed(
        &url,
        &key,
        &command(4242, ALICE, "create-admin", &[("name", "botless")]),
    )
    .await;
    let applied = w.sim.control.wait_for_stall(named_admin, WAIT).await;
    assert!(applied.is_some(), "{}", bot.seen());
    bot.kill9();
    assert!(
        w.sim.control.token_id("botless").is_some(),
        "made, never delivered"
    );

    // The next process settles it; whichever process runs the bot next tells its owner.
    let listed = next_process(&w.tw).await;
    assert!(!names(&listed).contains(&"botless".to_owned()), "{listed}");
    settled(&w).await;
    let svc = support::service(
        &w.sim,
        &w.op,
        support::instance("local", None, &[], false),
        w.store(),
    );
    let next_bot = tokenwarden::discord::Bot::new(
        Arc::new(svc),
        settings(&fake.url, &key),
        &RawToken::new(BOT_TOKEN.into()),
    );
    next_bot.sweep().await;
    fake.wait_for("the owner's notice", |c| {
        c.path
            == format!(
                "/api/v10/channels/{}/messages",
                crate::discord_fake::DM_BASE + ALICE.id
            )
            && c.body.to_string().contains("was deleted again")
    })
    .await;
}

/// Runs `args` and kills it while the DELETE it sends is on its way: the simulator holds it
/// before applying it, as a slow InfluxDB or a proxy would. Counts the DELETEs sent so far.
async fn kill_while_its_delete_is_held(w: &World, args: &[&str]) -> impl Fn() -> usize + use<> {
    w.sim.control.hold_before_apply(HoldBeforeApply {
        path_prefix: "/api/v3/configure/token".into(),
        method: Some("DELETE".into()),
        times: Some(1),
    });
    let mut child = w.tw.spawn(args);
    let on_its_way = w
        .sim
        .control
        .wait_for_request(|r| r.method == "DELETE", WAIT)
        .await;
    assert!(on_its_way.is_some(), "{}", child.seen());
    child.kill9();
    let sim = w.sim.control.clone();
    move || {
        sim.requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    }
}

/// Kills `tokens delete victim --yes` while its DELETE is on its way.
async fn kill_with_a_delete_on_its_way(w: &World) -> impl Fn() -> usize + use<> {
    w.sim.control.create_admin("victim", None).unwrap();
    kill_while_its_delete_is_held(w, &["tokens", "delete", "victim", "--yes"]).await
}

/// A DELETE on its way when its process dies may still land. The next process never sends it
/// again: sent twice, the first landing late would delete the token given the name after the
/// second, one nobody approved.
async fn a_delete_on_its_way_when_killed_is_never_sent_again(backend: Backend) {
    let w = world(&backend).await;
    let deletes = kill_with_a_delete_on_its_way(&w).await;
    let listed = next_process(&w.tw).await;
    assert!(
        names(&listed).contains(&"victim".to_owned()),
        "not deleted by a second DELETE: {listed}"
    );
    assert_eq!(deletes(), 1, "the DELETE on its way was not sent again");

    // It lands late; the name passes to a new token, and nothing deletes that one.
    w.sim.control.release_held();
    let landed = w
        .sim
        .control
        .wait_for_request(|r| r.method == "DELETE" && r.status == 200, WAIT)
        .await;
    assert!(landed.is_some(), "the held DELETE landed");
    w.sim.control.create_admin("victim", None).unwrap();
    let listed = next_process(&w.tw).await;
    assert!(
        names(&listed).contains(&"victim".to_owned()),
        "the new token named victim stays: {listed}"
    );
    assert_eq!(deletes(), 1);
}

/// A DELETE sent that never lands closes, once late writes are no longer expected, as
/// unconfirmed: not sent again, the token left, and the journal and audit log say so. (SQLite:
/// the recovering process's own clock, two minutes on, is the store's clock there.)
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_sent_that_never_lands_closes_unconfirmed_without_a_second_delete() {
    let w = world(&Backend::Sqlite).await;
    let deletes = kill_with_a_delete_on_its_way(&w).await;
    let client: std::sync::Arc<dyn tokenwarden::tokens::TokenBackend> =
        std::sync::Arc::new(support::client(&w.sim, Some(&w.op)));
    let later = TokenService::new(
        vec![(support::instance("local", None, &[], false), client)],
        None,
        w.store(),
        Clock::Drifting(chrono::Duration::minutes(2)),
        Duration::from_secs(300),
    );
    let report = later.recover().await;
    assert_eq!((report.settled, report.left), (1, 0), "{report:?}");
    assert_eq!(deletes(), 1, "not sent again");
    let listed = next_process(&w.tw).await;
    assert!(names(&listed).contains(&"victim".to_owned()), "{listed}");
    assert!(w.store().journal_unsettled().unwrap().is_empty());
    let rows = audit(&w.tw).await;
    assert!(
        rows.iter().any(|r| r["outcome"] == "unknown"
            && r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("never confirmed it") && d.contains("not sent again"))),
        "{rows:#?}"
    );
    w.sim.control.release_held();
}

/// The DELETE that withdraws a token in doubt is on its way when the withdrawing process dies:
/// the next process waits for it to land rather than sending another at once (a second one
/// landing after the first would delete a token given the name in between).
async fn a_withdrawal_on_its_way_when_killed_is_not_sent_again_at_once(backend: Backend) {
    let w = world(&backend).await;
    let mut creating =
        w.tw.clone()
            .env("TOKENWARDEN_TEST_PAUSE", "create:delivering")
            .spawn(&["tokens", "create-admin", "doubtful"]);
    let paused = creating
        .wait_stderr(|l| l.contains("tokenwarden: paused at"), WAIT)
        .await;
    assert!(paused.is_some(), "{}", creating.seen());
    creating.kill9();

    // The next process withdraws it, and dies with the withdrawal's DELETE on its way.
    let deletes = kill_while_its_delete_is_held(&w, &["tokens", "list", "--json", "--all"]).await;

    let listed = next_process(&w.tw).await;
    assert_eq!(deletes(), 1, "not sent again at once");
    assert!(names(&listed).contains(&"doubtful".to_owned()), "{listed}");
    w.sim.control.release_held();
    let landed = w
        .sim
        .control
        .wait_for_request(|r| r.method == "DELETE" && r.status == 200, WAIT)
        .await;
    assert!(landed.is_some(), "the withdrawal landed");
    let listed = next_process(&w.tw).await;
    assert!(!names(&listed).contains(&"doubtful".to_owned()), "{listed}");
    assert_eq!(deletes(), 1);
}

on_both_stores!(
    a_delete_on_its_way_when_killed_is_never_sent_again,
    a_withdrawal_on_its_way_when_killed_is_not_sent_again_at_once,
    a_create_killed_at_any_point_leaves_no_token_that_nobody_holds,
    a_confirmed_delete_killed_at_any_point_ends_with_exactly_that_token_gone,
    an_approval_killed_at_any_point_runs_the_delete_once,
    a_prune_killed_at_any_point_deletes_exactly_the_expired_tokens_shown,
    a_regeneration_killed_at_any_point_is_settled_and_says_what_to_do,
    a_create_killed_while_handing_over_its_secret_is_withdrawn_in_doubt,
    a_discord_bot_killed_while_its_create_is_unanswered_leaves_nothing_behind,
);

//! The two promises under races and crashes, through the core: a gated act hits exactly the
//! token that was shown (names reused meanwhile survive), and work a dead process left is
//! settled by the next one, by id, once.

use std::time::Duration;

use chrono::Utc;
use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateMode, Pending, PendingId, PendingState};
use tokenwarden::service::{
    ApprovalResult, Executed, GateRequest, Operation, ServiceError, TokenService,
};
use tokenwarden::sim::{RunningSim, StallAfterApply};
use tokenwarden::store::{AuditOutcome, JournalEntry, JournalOp, Owner, Stage, Store};
use tokenwarden::tokens::{Edition, Expiry, NewToken, RawToken, TokenName, TokenRef, TokenSpec};

use crate::support::{Recorder, assert_logs_clean, instance, service, sim};

fn ann() -> Actor {
    Actor::discord(1, "ann")
}
fn bob() -> Actor {
    Actor::discord(2, "bob")
}

fn name(s: &str) -> TokenName {
    TokenName::parse(s).unwrap()
}

fn approvals(required: u8) -> GateRequest {
    GateRequest {
        mode: GateMode::Approvals {
            required,
            allow_self: false,
            approve_from: None,
        },
        ttl: Some(Duration::from_secs(3600)),
        reason: None,
    }
}

fn confirm(proof: &str) -> GateRequest {
    GateRequest {
        mode: GateMode::confirm_with(proof),
        ttl: None,
        reason: None,
    }
}

async fn setup() -> (RunningSim, RawToken, TokenService, Store) {
    let (s, op) = sim(Edition::Core).await;
    let store = Store::open_in_memory().unwrap();
    let svc = service(&s, &op, instance("local", None, &[], false), store.clone());
    (s, op, svc, store)
}

/// Deletes `name` behind tokenwarden's back and creates a new token with the same name.
fn replace(s: &RunningSim, name: &str) -> u64 {
    assert!(s.control.delete_token(name));
    s.control.create_admin(name, None).unwrap();
    s.control.token_id(name).unwrap()
}

fn ids(s: &RunningSim, n: &str) -> Option<u64> {
    s.control.token_id(n)
}

/// A process on this host that has exited: its claims are free at once.
pub fn dead_owner() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner::local(pid)
}

#[tokio::test]
async fn a_confirmed_delete_never_hits_a_token_that_took_the_name() {
    let (s, _op, svc, _) = setup().await;
    s.control.create_admin("x", Some(Duration::from_secs(3600)));
    let shown = ids(&s, "x").unwrap();
    let req = svc
        .request_delete(&ann(), None, &name("x"), confirm("x"))
        .await
        .unwrap();
    let successor = replace(&s, "x");
    assert_ne!(successor, shown);
    let err = svc
        .confirm(&ann(), &req.pending.id, &req.pending.action, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Replaced { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("token `x` was replaced after the request")
            && err.to_string().contains("nothing was deleted"),
        "{err}"
    );
    assert_eq!(ids(&s, "x"), Some(successor), "the new token survives");
    let state = svc.pending(&req.pending.id).await.unwrap().state;
    assert!(
        matches!(&state, PendingState::Failed { reason } if reason.contains("replaced")),
        "{state:?}"
    );
    assert!(svc.unfinished().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_approved_delete_never_hits_a_token_that_took_the_name() {
    let (s, _op, svc, _) = setup().await;
    s.control.create_admin("x", None);
    let req = svc
        .request_delete(&ann(), None, &name("x"), approvals(1))
        .await
        .unwrap();
    let successor = replace(&s, "x");
    let ApprovalResult::Executed { pending, result } =
        svc.approve(&bob(), &req.pending.id).await.unwrap()
    else {
        panic!("one approval is enough")
    };
    assert!(
        matches!(result, Err(ServiceError::Replaced { .. })),
        "{result:?}"
    );
    assert!(matches!(pending.state, PendingState::Failed { .. }));
    assert_eq!(ids(&s, "x"), Some(successor));
    let audit = svc.audit_log(1).await.unwrap();
    assert_eq!(audit[0].event.outcome, AuditOutcome::Failed);
    assert!(
        audit[0]
            .event
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("replaced"),
        "{:?}",
        audit[0]
    );
}

/// Two tokens, `old-a` and `old-b`, that expired five seconds ago, and a prune of them asked by
/// ann under one approval.
async fn prune_of_old_a_and_old_b(s: &RunningSim, svc: &TokenService) -> PendingId {
    s.control
        .create_admin("old-a", Some(Duration::from_secs(1)));
    s.control
        .create_admin("old-b", Some(Duration::from_secs(1)));
    s.control.advance_clock(Duration::from_secs(5));
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    let (req, shown) = svc
        .request_prune(&ann(), None, approvals(1))
        .await
        .unwrap()
        .expect("two expired tokens");
    assert_eq!(shown.len(), 2);
    req.pending.id
}

/// bob approves prune `asked`: what it deleted and what it skipped (name, why).
async fn approve_prune(
    svc: &TokenService,
    asked: &PendingId,
) -> (Vec<String>, Vec<(String, String)>) {
    let ApprovalResult::Executed { result, .. } = svc.approve(&bob(), asked).await.unwrap() else {
        panic!("approved")
    };
    let Ok(Executed::Pruned {
        deleted, skipped, ..
    }) = result
    else {
        panic!("{result:?}")
    };
    (deleted, skipped)
}

#[tokio::test]
async fn a_prune_leaves_alone_an_active_token_that_took_an_expired_name() {
    let (s, _op, svc, _) = setup().await;
    s.control.create_admin("keep", None);
    let asked = prune_of_old_a_and_old_b(&s, &svc).await;
    let successor = replace(&s, "old-b");
    let (deleted, skipped) = approve_prune(&svc, &asked).await;
    assert_eq!(deleted, vec!["old-a".to_owned()]);
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].1.contains("replaced after the request"),
        "{skipped:?}"
    );
    assert_eq!(
        ids(&s, "old-b"),
        Some(successor),
        "the active token survives"
    );
    assert!(ids(&s, "keep").is_some());
    let audit = format!("{:?}", svc.audit_log(20).await.unwrap());
    assert!(
        !audit.contains("pruned: expired (id {successor})"),
        "{audit}"
    );
}

/// A shown token that someone else deleted before the approval is not counted as pruned: the
/// answer says what this prune deleted, and nothing else.
#[tokio::test]
async fn a_prune_does_not_count_a_token_deleted_elsewhere_meanwhile() {
    let (s, _op, svc, _) = setup().await;
    let asked = prune_of_old_a_and_old_b(&s, &svc).await;
    assert!(s.control.delete_token("old-b"));
    let (deleted, skipped) = approve_prune(&svc, &asked).await;
    assert_eq!(deleted, vec!["old-a".to_owned()], "{skipped:?}");
    assert_eq!(
        skipped,
        vec![("old-b".to_owned(), "it no longer existed".to_owned())]
    );
    let deletes = s
        .control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "only old-a was sent a DELETE");
}

#[tokio::test]
async fn a_create_left_by_a_dead_process_is_withdrawn_by_the_next() {
    let (s, op, svc, store) = setup().await;
    s.control.stall_after_apply(StallAfterApply {
        path_prefix: "/api/v3/configure/token/named_admin".into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    // A process that dies while InfluxDB holds its create's answer: its future is dropped.
    let dead = store.as_owner(dead_owner());
    let other = service(&s, &op, instance("local", None, &[], false), dead);
    let new = NewToken {
        name: TokenName::parse_new("orphan").unwrap(),
        spec: TokenSpec::Admin,
        expiry: Expiry::Never,
    };
    let rec = Recorder::default();
    let who = ann();
    let creating = other.create(&who, None, new, &rec);
    tokio::select! {
        _ = creating => panic!("the answer is withheld"),
        r = s.control.wait_for_stall("/api/v3/configure/token/named_admin", Duration::from_secs(10)) => {
            assert!(r.is_some(), "the create was applied");
        }
    }
    assert!(ids(&s, "orphan").is_some(), "InfluxDB made it");
    let unfinished = svc.unfinished().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].stage, Stage::Intent);

    let report = svc.recover().await;
    assert_eq!((report.settled, report.left), (1, 0));
    assert_eq!(
        ids(&s, "orphan"),
        None,
        "nobody holds its secret: withdrawn"
    );
    assert!(rec.secrets().is_empty());
    assert!(svc.unfinished().await.unwrap().is_empty());
    assert_eq!(svc.recover().await.settled, 0, "settled once");
    let audit = svc.audit_log(1).await.unwrap();
    assert_eq!(audit[0].event.outcome, AuditOutcome::RolledBack);
    assert_logs_clean();
}

#[tokio::test]
async fn a_create_never_made_is_closed_without_touching_an_older_token() {
    let (s, _op, svc, store) = setup().await;
    s.control.create_admin("taken", None);
    let highest = s.control.token_id("taken");
    let dead = store.as_owner(dead_owner());
    let entry = JournalEntry::new(
        "local",
        &ann(),
        JournalOp::Create {
            name: name("taken"),
            highest_before: highest,
            id: None,
        },
        Utc::now(),
    );
    dead.journal_begin(&entry).unwrap();
    assert_eq!(svc.recover().await.settled, 1);
    assert!(
        ids(&s, "taken").is_some(),
        "a token that existed before the intent is not this create's"
    );
    assert_eq!(store.journal_get(&entry.id).unwrap().stage, Stage::Failed);
}

/// Approves pending action `id` as `approver` through a dead process's store handle, which
/// writes the released intent and then never runs it.
pub fn approve_and_die(store: &Store, p: &Pending<Operation>, approver: &Actor, op: JournalOp) {
    let dead = store.as_owner(dead_owner());
    let approver = approver.clone();
    dead.update_pending_journaled(&p.id, |q: &mut Pending<Operation>| {
        q.approve(&approver, Utc::now()).unwrap();
        let mut e = JournalEntry::new("local", &approver, op, Utc::now());
        e.pending_id = Some(q.id.to_string());
        ((), Some(e))
    })
    .unwrap();
}

#[tokio::test]
async fn an_approved_delete_a_dead_process_never_ran_runs_once_while_its_approval_holds() {
    let (s, _op, svc, store) = setup().await;
    s.control.create_admin("x", None);
    s.control.create_admin("bystander", None);
    let req = svc
        .request_delete(&ann(), None, &name("x"), approvals(1))
        .await
        .unwrap();
    let target = TokenRef {
        name: name("x"),
        id: ids(&s, "x").unwrap(),
    };
    approve_and_die(&store, &req.pending, &bob(), JournalOp::Delete { target });
    assert_eq!(
        svc.pending(&req.pending.id).await.unwrap().state,
        PendingState::Executing
    );
    assert_eq!(svc.recover().await.settled, 1);
    assert_eq!(ids(&s, "x"), None, "the approved delete ran");
    assert!(ids(&s, "bystander").is_some());
    assert_eq!(
        svc.pending(&req.pending.id).await.unwrap().state,
        PendingState::Succeeded
    );
    let notices = store.outbox_claim(10).unwrap();
    assert_eq!(
        notices.len(),
        1,
        "one notice for the requester: {notices:?}"
    );
    assert_eq!(svc.recover().await.settled, 0);
}

#[tokio::test]
async fn an_approved_delete_whose_approval_lapsed_closes_as_failed() {
    let (s, _op, svc, store) = setup().await;
    s.control.create_admin("x", None);
    let mut gate = approvals(1);
    gate.ttl = Some(Duration::from_secs(60));
    let req = svc
        .request_delete(&ann(), None, &name("x"), gate)
        .await
        .unwrap();
    let target = TokenRef {
        name: name("x"),
        id: ids(&s, "x").unwrap(),
    };
    approve_and_die(&store, &req.pending, &bob(), JournalOp::Delete { target });
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(120)).await;
    tokio::time::resume();
    assert_eq!(svc.recover().await.settled, 1);
    assert!(
        ids(&s, "x").is_some(),
        "never run after its approval lapsed"
    );
    let state = svc.pending(&req.pending.id).await.unwrap().state;
    assert!(
        matches!(&state, PendingState::Failed { reason } if reason.contains("approval has lapsed")),
        "{state:?}"
    );
}

#[tokio::test]
async fn an_approved_delete_that_applied_before_the_crash_is_done() {
    let (s, _op, svc, store) = setup().await;
    s.control.create_admin("x", None);
    let req = svc
        .request_delete(&ann(), None, &name("x"), approvals(1))
        .await
        .unwrap();
    let target = TokenRef {
        name: name("x"),
        id: ids(&s, "x").unwrap(),
    };
    approve_and_die(&store, &req.pending, &bob(), JournalOp::Delete { target });
    s.control.delete_token("x");
    s.control.create_admin("x", None);
    assert_eq!(svc.recover().await.settled, 1);
    assert!(ids(&s, "x").is_some(), "the successor is never touched");
    assert_eq!(
        svc.pending(&req.pending.id).await.unwrap().state,
        PendingState::Succeeded,
        "gone means done"
    );
}

#[tokio::test]
async fn cli_approvals_never_delete_a_token_that_took_the_name() {
    let (s, op) = sim(Edition::Core).await;
    s.control.create_admin("x", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tw = crate::procs::Tw::new(dir.path(), &s.url(), &op).env("RUST_LOG", "warn");
    let store = Store::open(&dir.path().join("tokenwarden.db")).unwrap();
    let svc = service(&s, &op, instance("local", None, &[], false), store);
    let req = svc
        .request_delete(&ann(), None, &name("x"), approvals(1))
        .await
        .unwrap();
    let successor = replace(&s, "x");
    let r = tw
        .run(&["approvals", "approve", req.pending.id.as_str()], "")
        .await;
    assert_eq!(r.code, 7, "refused: {}", r.stderr);
    assert!(
        r.stderr
            .contains("token `x` was replaced after the request")
            && r.stderr.contains("nothing was deleted"),
        "{}",
        r.stderr
    );
    assert_eq!(ids(&s, "x"), Some(successor));
}

#[tokio::test]
async fn regenerating_into_its_own_token_file_keeps_tokenwarden_working() {
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let tw = crate::procs::Tw::new(dir.path(), &s.url(), &op).env("RUST_LOG", "warn");
    let refused = tw
        .run(&["tokens", "regenerate-operator", "--yes"], "")
        .await;
    assert_eq!(
        refused.code, 7,
        "no place for the secret: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("operator_token_file"),
        "{}",
        refused.stderr
    );
    let mut cfg = std::fs::read_to_string(&tw.config).unwrap();
    cfg.push_str("operator_token_file = \"operator.token\"\n");
    std::fs::write(&tw.config, cfg).unwrap();
    let r = tw
        .run(&["tokens", "regenerate-operator", "--yes", "--json"], "")
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["own_credential_changed"], true, "{v}");
    crate::support::assert_no_token("the result", &r.stdout);
    let old = crate::support::client(&s, Some(&op));
    assert!(tokenwarden::tokens::TokenBackend::ping(&old).await.is_err());
    let check = tw.run(&["check"], "").await;
    assert_eq!(check.code, 0, "tokenwarden still works: {}", check.stderr);
}

#[tokio::test]
async fn a_create_in_doubt_blocks_a_retry_that_recovery_would_mistake_for_it() {
    let (s, _op, svc, store) = setup().await;
    let dead = store.as_owner(dead_owner());
    let entry = JournalEntry::new(
        "local",
        &ann(),
        JournalOp::Create {
            name: name("ci"),
            highest_before: s.control.token_id("_admin"),
            id: None,
        },
        Utc::now(),
    );
    dead.journal_begin(&entry).unwrap();
    // Not yet claimable by anyone: the dead holder's lease is fresh, but its pid is gone, so
    // release it for later as the live process would.
    dead.journal_release(&entry.id, Duration::from_secs(3600))
        .unwrap();
    let new = NewToken {
        name: TokenName::parse_new("ci").unwrap(),
        spec: TokenSpec::Admin,
        expiry: Expiry::Never,
    };
    let err = svc
        .create(&ann(), None, new, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::CreateInDoubt { .. }), "{err}");
    assert!(ids(&s, "ci").is_none(), "nothing was created");
}

#[tokio::test]
async fn recovery_never_takes_a_token_another_create_recorded() {
    let (s, _op, svc, store) = setup().await;
    let highest = s.control.token_id("_admin");
    s.control.create_admin("ci", None).unwrap();
    let theirs = ids(&s, "ci").unwrap();
    // One create made `ci` and recorded its id; another, whose answer was lost, died.
    let mut recorded = JournalEntry::new(
        "local",
        &bob(),
        JournalOp::Create {
            name: name("ci"),
            highest_before: highest,
            id: Some(theirs),
        },
        Utc::now(),
    );
    recorded.stage = Stage::Done;
    store.journal_begin(&recorded).unwrap();
    let dead = store.as_owner(dead_owner());
    let lost = JournalEntry::new(
        "local",
        &ann(),
        JournalOp::Create {
            name: name("ci"),
            highest_before: highest,
            id: None,
        },
        Utc::now(),
    );
    dead.journal_begin(&lost).unwrap();
    assert_eq!(svc.recover().await.settled, 1);
    assert_eq!(
        ids(&s, "ci"),
        Some(theirs),
        "the other create's token survives"
    );
    assert_eq!(store.journal_get(&lost.id).unwrap().stage, Stage::Failed);
}

#[tokio::test]
async fn recovery_applies_todays_policy_to_an_approved_delete() {
    let (s, op, svc, store) = setup().await;
    s.control.create_admin("x", None).unwrap();
    let req = svc
        .request_delete(&ann(), None, &name("x"), approvals(1))
        .await
        .unwrap();
    let target = TokenRef {
        name: name("x"),
        id: ids(&s, "x").unwrap(),
    };
    approve_and_die(&store, &req.pending, &bob(), JournalOp::Delete { target });
    // Meanwhile the config protects it.
    let now = service(&s, &op, instance("local", None, &["x"], false), store);
    assert_eq!(now.recover().await.settled, 1);
    assert!(ids(&s, "x").is_some());
    let state = now.pending(&req.pending.id).await.unwrap().state;
    assert!(
        matches!(&state, PendingState::Failed { reason } if reason.contains("protected")),
        "{state:?}"
    );
}

#[tokio::test]
async fn a_regeneration_that_never_reached_influxdb_is_not_reported_done() {
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator.token");
    std::fs::write(&file, format!("{}\n", op.expose())).unwrap();
    let store = Store::open_in_memory().unwrap();
    let mut settings = instance("local", None, &[], false);
    settings.operator_token_file = Some(file.clone());
    settings.credential_file = Some(file.clone());
    let svc = service(&s, &op, settings, store.clone());
    let req = svc
        .request_regenerate(&ann(), None, confirm("local"), None)
        .await
        .unwrap();
    // A process released it, fingerprinted the file, and died before calling InfluxDB.
    let before = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(std::fs::read(&file).unwrap()))
    };
    let dead = store.as_owner(dead_owner());
    let requester = ann();
    dead.update_pending_journaled(&req.pending.id, |q: &mut Pending<Operation>| {
        q.confirm(&requester, &q.action.clone(), "local", Utc::now())
            .unwrap();
        let op = JournalOp::Regenerate {
            file: file.clone(),
            before: Some(before),
        };
        let mut e = JournalEntry::new("local", &requester, op, Utc::now());
        e.pending_id = Some(q.id.to_string());
        ((), Some(e))
    })
    .unwrap();
    assert_eq!(svc.recover().await.settled, 1);
    let state = svc.pending(&req.pending.id).await.unwrap().state;
    assert!(
        matches!(&state, PendingState::Failed { reason } if reason.contains("was not regenerated")),
        "the unchanged file's secret still works: {state:?}"
    );
    svc.check(&ann(), None)
        .await
        .expect("the old secret still works");
}

#[tokio::test]
async fn a_backlog_left_by_a_dead_process_is_settled_in_one_go() {
    let (s, _op, svc, store) = setup().await;
    let dead = store.as_owner(dead_owner());
    // Two and a half rounds of creates whose secrets reached nobody.
    for i in 0..250 {
        let n = format!("orphan-{i:03}");
        let highest = s.control.token_id("_admin");
        s.control.create_admin(&n, None).unwrap();
        let op = JournalOp::Create {
            name: name(&n),
            highest_before: highest,
            id: ids(&s, &n),
        };
        let mut entry = JournalEntry::new("local", &ann(), op, Utc::now());
        entry.stage = Stage::Created;
        dead.journal_begin(&entry).unwrap();
    }
    let report = svc
        .recover_backlog(&tokio_util::sync::CancellationToken::new())
        .await;
    assert_eq!((report.settled, report.left), (250, 0));
    let left: Vec<String> = s
        .control
        .token_names()
        .into_iter()
        .filter(|n| n.starts_with("orphan-"))
        .collect();
    assert!(left.is_empty(), "every orphan withdrawn: {left:?}");
    assert!(store.journal_unsettled().unwrap().is_empty());
}

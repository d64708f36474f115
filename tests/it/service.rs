//! The core against the simulator: policy before the gate, the gate's rules end to end,
//! delivery and rollback, and an audit log without secrets.

use std::sync::Arc;
use std::time::Duration;

use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateError, GateMode, PendingState};
use tokenwarden::service::{
    ApprovalResult, ErrorKind, Executed, GateRequest, ServiceError, TokenService,
};
use tokenwarden::sim::{ForcedResponse, RunningSim};
use tokenwarden::store::{AuditOutcome, Store};
use tokenwarden::tokens::{Edition, Expiry, NewToken, Permission, RawToken, TokenName, TokenSpec};

use crate::support::{Recorder, assert_logs_clean, assert_no_token, instance, service, sim};

fn ann() -> Actor {
    Actor::discord(1, "ann")
}
fn bob() -> Actor {
    Actor::discord(2, "bob")
}

fn name(s: &str) -> TokenName {
    TokenName::parse(s).unwrap()
}

fn admin(n: &str) -> NewToken {
    NewToken {
        name: TokenName::parse_new(n).unwrap(),
        spec: TokenSpec::Admin,
        expiry: Expiry::Never,
    }
}

async fn setup(
    edition: Edition,
    protected: &[&str],
    read_only: bool,
) -> (RunningSim, RawToken, TokenService) {
    let (s, op) = sim(edition).await;
    let svc = service(
        &s,
        &op,
        instance("local", None, protected, read_only),
        Store::open_in_memory().unwrap(),
    );
    (s, op, svc)
}

fn confirm_gate(proof: &str) -> GateRequest {
    GateRequest {
        mode: GateMode::confirm_with(proof),
        ttl: None,
        reason: None,
    }
}

fn approval_gate(required: u8, allow_self: bool) -> GateRequest {
    GateRequest {
        mode: GateMode::Approvals {
            required,
            allow_self,
            approve_from: None,
        },
        ttl: Some(Duration::from_secs(900)),
        reason: Some("rotate".into()),
    }
}

async fn audit_text(svc: &TokenService) -> String {
    format!("{:?}", svc.audit_log(1000).await.unwrap())
}

#[tokio::test]
async fn create_delivers_the_secret_once_and_audits_without_it() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    let rec = Recorder::default();
    let done = svc
        .create(&ann(), None, admin("ci-bot"), &rec)
        .await
        .unwrap();
    assert_eq!(done.token.name, "ci-bot");
    let secrets = rec.secrets();
    assert_eq!(secrets.len(), 1);
    assert!(s.control.token_names().contains(&"ci-bot".to_owned()));
    let audit = svc.audit_log(10).await.unwrap();
    let outcomes: Vec<_> = audit.iter().rev().map(|e| e.event.outcome).collect();
    assert_eq!(outcomes, [AuditOutcome::Requested, AuditOutcome::Succeeded]);
    assert_eq!(audit[0].event.actor, ann());
    assert_eq!(audit[0].event.token_name.as_deref(), Some("ci-bot"));
    let text = audit_text(&svc).await;
    assert!(!text.contains(&secrets[0]));
    assert_no_token("the audit log", &text);
    assert!(
        !format!("{done:?}").contains(&secrets[0]),
        "the result holds no secret"
    );
    assert!(
        crate::support::logs().contains("token.create_admin"),
        "the capture sees the audit events"
    );
    assert_logs_clean();
}

#[tokio::test]
async fn a_failed_delivery_deletes_the_new_token_again() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    let err = svc
        .create(&ann(), None, admin("orphan"), &Recorder::failing())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::DeliveryRolledBack { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("it was deleted again"), "{err}");
    assert!(!s.control.token_names().contains(&"orphan".to_owned()));
    assert_eq!(
        svc.audit_log(1).await.unwrap()[0].event.outcome,
        AuditOutcome::RolledBack
    );
}

#[tokio::test]
async fn a_failed_rollback_says_how_to_clean_up() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    /// Fails delivery after breaking deletes on the server.
    struct BreakThenFail(tokenwarden::sim::SimControl);
    #[async_trait::async_trait]
    impl tokenwarden::service::SecretDelivery for BreakThenFail {
        async fn deliver(
            &self,
            _: &tokenwarden::tokens::Token,
            _: &RawToken,
            _: &tokenwarden::service::Ticket,
        ) -> Result<tokenwarden::service::DeliveryReceipt, tokenwarden::service::DeliveryFailure>
        {
            self.0.force_response(ForcedResponse {
                path_prefix: "/api/v3/configure/token".into(),
                status: 500,
                content_type: None,
                body: "disk full".into(),
                times: None,
            });
            Err(tokenwarden::service::DeliveryFailure(
                "DMs are closed".into(),
            ))
        }
    }
    let err = svc
        .create(
            &ann(),
            None,
            admin("stranded"),
            &BreakThenFail(s.control.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::DeliveryStranded { .. }),
        "{err}"
    );
    assert_eq!(
        err.remedy(),
        Some(tokenwarden::service::Remedy::DeleteToken {
            name: "stranded".into()
        }),
        "{err}"
    );
    assert_eq!(
        tokenwarden::cli::explain_error(&err)
            .rsplit("; ")
            .next()
            .unwrap(),
        "or delete it now with `tokenwarden tokens delete stranded`"
    );
}

#[tokio::test]
async fn policy_refuses_before_any_request() {
    let (s, _op, svc) = setup(Edition::Core, &["ci-*"], true).await;
    let before = s.control.requests().len();
    let err = svc
        .create(&ann(), None, admin("x"), &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::ReadOnly { .. }), "{err}");
    let err = svc
        .request_delete(&ann(), None, &name("x"), confirm_gate("x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    let err = svc
        .request_regenerate(&ann(), None, confirm_gate("local"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::ReadOnly { .. }));
    assert_eq!(
        s.control.requests().len(),
        before,
        "nothing reached InfluxDB"
    );

    let (s, _op, svc) = setup(Edition::Core, &["ci-*"], false).await;
    s.control.create_admin("ci-deploy", None);
    let err = svc
        .request_delete(&ann(), None, &name("ci-deploy"), confirm_gate("ci-deploy"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "token `ci-deploy` is protected (matches `ci-*`) and cannot be deleted through tokenwarden"
    );
    let err = svc
        .request_delete(&ann(), None, &name("_admin"), confirm_gate("_admin"))
        .await
        .unwrap_err();
    assert_eq!(
        err.remedy(),
        Some(tokenwarden::service::Remedy::RegenerateOperator),
        "{err}"
    );
    assert!(
        !err.to_string().contains("tokenwarden "),
        "adapter-neutral: {err}"
    );
    assert!(
        svc.open_pending().await.unwrap().is_empty(),
        "no pending action for refused requests"
    );
    assert_eq!(
        svc.audit_log(1).await.unwrap()[0].event.outcome,
        AuditOutcome::Refused
    );
}

#[tokio::test]
async fn resource_tokens_on_core_are_refused_before_creating() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    let new = NewToken {
        name: TokenName::parse_new("reader").unwrap(),
        spec: TokenSpec::Resource(vec![Permission::parse("db:metrics:read").unwrap()]),
        expiry: Expiry::Never,
    };
    let err = svc
        .create(&ann(), None, new, &Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::RequiresEnterprise {
                edition: Edition::Core,
                ..
            }
        ),
        "{err}"
    );
    let paths: Vec<String> = s.control.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/ping"],
        "the edition was detected, nothing was created"
    );
}

#[tokio::test]
async fn confirmation_gate_end_to_end() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let req = svc
        .request_delete(&ann(), None, &name("victim"), confirm_gate("victim"))
        .await
        .unwrap();
    assert_eq!(req.token.as_ref().unwrap().name, "victim");
    let (id, op) = (req.pending.id.clone(), req.pending.action.clone());

    let err = svc.confirm(&bob(), &id, &op, "victim").await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::NotRequester { .. })),
        "{err}"
    );
    let err = svc.confirm(&ann(), &id, &op, "vIctim").await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::WrongProof { .. })),
        "{err}"
    );
    let other = tokenwarden::service::Operation::DeleteToken {
        instance: "local".into(),
        name: name("_admin"),
        id: 0,
    };
    let err = svc
        .confirm(&ann(), &id, &other, "victim")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::ActionMismatch { .. })),
        "{err}"
    );
    assert!(
        s.control.token_names().contains(&"victim".to_owned()),
        "nothing happened yet"
    );

    let done = svc.confirm(&ann(), &id, &op, "victim").await.unwrap();
    assert!(matches!(done, Executed::Deleted { .. }));
    assert!(!s.control.token_names().contains(&"victim".to_owned()));
    let err = svc.confirm(&ann(), &id, &op, "victim").await.unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Gate(GateError::Closed {
                state: "succeeded",
                ..
            })
        ),
        "replay: {err}"
    );
    assert_eq!(
        svc.pending(&id).await.unwrap().state,
        PendingState::Succeeded
    );
}

#[tokio::test]
async fn confirmations_expire() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let req = svc
        .request_delete(&ann(), None, &name("victim"), confirm_gate("victim"))
        .await
        .unwrap();
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(301)).await;
    tokio::time::resume();
    let err = svc
        .confirm(&ann(), &req.pending.id, &req.pending.action, "victim")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::Expired { .. })),
        "{err}"
    );
    assert!(s.control.token_names().contains(&"victim".to_owned()));
    assert_eq!(
        svc.pending(&req.pending.id).await.unwrap().state,
        PendingState::Expired
    );
}

#[tokio::test]
async fn approvals_need_other_people() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let id = svc
        .request_delete(&ann(), None, &name("victim"), approval_gate(2, false))
        .await
        .unwrap()
        .pending
        .id;
    let err = svc.approve(&ann(), &id).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::SelfApproval { .. })),
        "{err}"
    );
    assert!(matches!(
        svc.approve(&bob(), &id).await.unwrap(),
        ApprovalResult::Recorded {
            have: 1,
            need: 2,
            ..
        }
    ));
    let err = svc.approve(&bob(), &id).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Gate(GateError::AlreadyApproved { .. })),
        "{err}"
    );
    assert!(s.control.token_names().contains(&"victim".to_owned()));
    match svc.approve(&Actor::discord(3, "cat"), &id).await.unwrap() {
        ApprovalResult::Executed { pending, result } => {
            assert!(result.is_ok());
            assert_eq!(pending.state, PendingState::Succeeded);
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.control.token_names().contains(&"victim".to_owned()));
}

#[tokio::test]
async fn self_approval_when_the_policy_allows_it() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let id = svc
        .request_delete(&ann(), None, &name("victim"), approval_gate(1, true))
        .await
        .unwrap()
        .pending
        .id;
    assert!(matches!(
        svc.approve(&ann(), &id).await.unwrap(),
        ApprovalResult::Executed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_approvals_execute_once() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let svc = Arc::new(svc);
    let id = svc
        .request_delete(&ann(), None, &name("victim"), approval_gate(1, false))
        .await
        .unwrap()
        .pending
        .id;
    let tasks: Vec<_> = (10..20u64)
        .map(|i| {
            let (svc, id) = (Arc::clone(&svc), id.clone());
            tokio::spawn(async move { svc.approve(&Actor::discord(i, "approver"), &id).await })
        })
        .collect();
    let mut executed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ApprovalResult::Executed { .. }) => executed += 1,
            Ok(other) => panic!("{other:?}"),
            Err(e) => assert!(
                matches!(e, ServiceError::Gate(GateError::Closed { .. })),
                "{e}"
            ),
        }
    }
    assert_eq!(executed, 1);
    let deletes = s
        .control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "InfluxDB saw one delete");
}

#[tokio::test]
async fn a_pending_approval_survives_a_restart() {
    let (s, op) = sim(Edition::Core).await;
    s.control.create_admin("victim", None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let id = {
        let svc = service(
            &s,
            &op,
            instance("local", None, &[], false),
            Store::open(&path).unwrap(),
        );
        svc.request_delete(&ann(), None, &name("victim"), approval_gate(1, false))
            .await
            .unwrap()
            .pending
            .id
    };
    let svc = service(
        &s,
        &op,
        instance("local", None, &[], false),
        Store::open(&path).unwrap(),
    );
    assert_eq!(svc.open_pending().await.unwrap().len(), 1);
    assert!(matches!(
        svc.approve(&bob(), &id).await.unwrap(),
        ApprovalResult::Executed { .. }
    ));
    assert!(!s.control.token_names().contains(&"victim".to_owned()));
}

#[tokio::test]
async fn reject_and_expiry_close_requests() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    s.control.create_admin("victim", None);
    let id = svc
        .request_delete(&ann(), None, &name("victim"), approval_gate(1, false))
        .await
        .unwrap()
        .pending
        .id;
    let p = svc
        .reject(&bob(), &id, Some("still used by CI".into()))
        .await
        .unwrap();
    assert!(matches!(p.state, PendingState::Rejected { .. }));
    let err = svc
        .approve(&Actor::discord(3, "cat"), &id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::Gate(GateError::Closed {
                state: "rejected",
                ..
            })
        ),
        "{err}"
    );

    let id = svc
        .request_delete(&ann(), None, &name("victim"), approval_gate(1, false))
        .await
        .unwrap()
        .pending
        .id;
    assert!(svc.expire_due().await.unwrap().is_empty());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(901)).await;
    tokio::time::resume();
    let expired = svc.expire_due().await.unwrap();
    assert_eq!(
        expired.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        [id]
    );
    assert_eq!(
        svc.audit_log(1).await.unwrap()[0].event.outcome,
        AuditOutcome::Expired
    );
    assert!(s.control.token_names().contains(&"victim".to_owned()));
}

#[tokio::test]
async fn regeneration_needs_a_file_and_keeps_tokenwarden_working() {
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("operator.token");
    std::fs::write(&own, format!("{}\n", op.expose())).unwrap();
    let mut settings = instance("local", None, &[], false);
    let svc = service(&s, &op, settings.clone(), Store::open_in_memory().unwrap());
    let err = svc
        .request_regenerate(&ann(), None, confirm_gate("local"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::NoSecretFile { .. }),
        "no durable place, no regeneration: {err}"
    );
    assert!(err.to_string().contains("operator_token_file"), "{err}");

    settings.operator_token_file = Some(own.clone());
    settings.credential_file = Some(own.clone());
    let svc = service(&s, &op, settings, Store::open_in_memory().unwrap());
    let req = svc
        .request_regenerate(&ann(), None, confirm_gate("local"), None)
        .await
        .unwrap();
    let done = svc
        .confirm(&ann(), &req.pending.id, &req.pending.action, "local")
        .await
        .unwrap();
    let Executed::Regenerated {
        file,
        own_credential,
        ..
    } = done
    else {
        panic!("{done:?}")
    };
    assert_eq!(file, own);
    assert!(own_credential);
    let new = std::fs::read_to_string(&own).unwrap().trim().to_owned();
    assert_ne!(new, op.expose(), "the file holds the new secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&own).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let old = crate::support::client(&s, Some(&op));
    assert!(
        tokenwarden::tokens::TokenBackend::ping(&old).await.is_err(),
        "the old secret is dead"
    );
    svc.check(&ann(), None)
        .await
        .expect("tokenwarden switched to the new secret and still works");
    assert_no_token("the audit log", &audit_text(&svc).await);
    assert_logs_clean();
}

#[tokio::test]
async fn a_delete_whose_answer_is_lost_is_settled_by_looking() {
    let (s, op) = sim(Edition::Core).await;
    s.control.create_admin("victim", None);
    let backend = Arc::new(
        tokenwarden::influx::InfluxClient::new(tokenwarden::influx::ClientOptions {
            url: s.url(),
            token: Some(op.clone()),
            timeout: Duration::from_millis(400),
            ca_file: None,
        })
        .unwrap(),
    );
    let svc = TokenService::new(
        vec![(instance("local", None, &[], false), backend)],
        None,
        Store::open_in_memory().unwrap(),
        tokenwarden::service::Clock::System,
        Duration::from_secs(300),
    );
    let req = svc
        .request_delete(&ann(), None, &name("victim"), confirm_gate("victim"))
        .await
        .unwrap();
    s.control
        .stall_after_apply(tokenwarden::sim::StallAfterApply {
            path_prefix: "/api/v3/configure/token".into(),
            method: Some("DELETE".into()),
            times: Some(1),
        });
    let done = svc
        .confirm(&ann(), &req.pending.id, &req.pending.action, "victim")
        .await
        .unwrap();
    assert!(matches!(done, Executed::Deleted { .. }), "{done:?}");
    assert_eq!(
        svc.pending(&req.pending.id).await.unwrap().state,
        PendingState::Succeeded,
        "InfluxDB applied it; one look settles it"
    );
    assert!(svc.unfinished().await.unwrap().is_empty());
    let deletes = s
        .control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 1, "never retried");
}

#[tokio::test]
async fn listing_pages_through_the_server_in_name_order() {
    let (s, _op, svc) = setup(Edition::Core, &[], false).await;
    for n in ["e", "b", "d", "a", "c", "f"] {
        s.control.create_admin(n, None);
    }
    let page = |offset, limit| tokenwarden::tokens::Page { offset, limit };
    let all = tokenwarden::tokens::ListFilter::default();
    let p1 = svc.list_page(&ann(), None, &all, page(0, 3)).await.unwrap();
    let names = |p: &tokenwarden::service::TokenPage| {
        p.tokens.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        (names(&p1), p1.next),
        (vec!["_admin".to_owned(), "a".into(), "b".into()], Some(3))
    );
    let p2 = svc.list_page(&ann(), None, &all, page(3, 3)).await.unwrap();
    assert_eq!(
        (names(&p2), p2.next),
        (vec!["c".to_owned(), "d".into(), "e".into()], Some(6))
    );
    let p3 = svc.list_page(&ann(), None, &all, page(6, 3)).await.unwrap();
    assert_eq!((names(&p3), p3.next), (vec!["f".to_owned()], None));
    let sent = s
        .control
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/api/v3/query_sql")
        .unwrap();
    assert!(
        sent.body.contains("LIMIT 4 OFFSET 6"),
        "one row more than asked shows whether more follow: {}",
        sent.body
    );
    assert_eq!(
        svc.list(&ann(), None, &all).await.unwrap().len(),
        7,
        "list reads every page"
    );
}

#[tokio::test]
async fn pruning_deletes_exactly_the_expired_unprotected_tokens() {
    let (s, _op, svc) = setup(Edition::Core, &["keep-*"], false).await;
    assert!(
        svc.request_prune(&ann(), None, confirm_gate("prune"))
            .await
            .unwrap()
            .is_none(),
        "nothing to prune yet"
    );
    for n in ["old-1", "old-2", "keep-old"] {
        s.control.create_admin(n, Some(Duration::ZERO));
    }
    s.control
        .create_admin("fresh", Some(Duration::from_secs(3600)));
    let (req, tokens) = svc
        .request_prune(&ann(), None, confirm_gate("prune"))
        .await
        .unwrap()
        .unwrap();
    let listed: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        listed,
        ["old-1", "old-2"],
        "protected and active tokens are left alone"
    );
    assert!(
        req.pending
            .action
            .describe()
            .contains("delete 2 expired tokens"),
        "{}",
        req.pending.action.describe()
    );
    s.control.create_admin("old-3", Some(Duration::ZERO));
    let done = svc
        .confirm(&ann(), &req.pending.id, &req.pending.action, "prune")
        .await
        .unwrap();
    let Executed::Pruned {
        deleted, failed, ..
    } = done
    else {
        panic!("{done:?}")
    };
    assert_eq!(
        (deleted, failed.len()),
        (vec!["old-1".to_owned(), "old-2".to_owned()], 0)
    );
    let left = s.control.token_names();
    assert!(left.contains(&"keep-old".to_owned()) && left.contains(&"fresh".to_owned()));
    assert!(
        left.contains(&"old-3".to_owned()),
        "the confirmed list is exactly what runs; a newer one waits"
    );
    let audit = svc.audit_log(10).await.unwrap();
    let deletes = audit
        .iter()
        .filter(|e| e.event.event == "token.delete" && e.event.outcome == AuditOutcome::Succeeded)
        .count();
    assert_eq!(deletes, 2, "each deletion is audited");
}

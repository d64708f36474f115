//! Regenerations whose answer does not say what happened (a gateway's 504 after InfluxDB
//! applied it, a 500 sent after the change, a 201 cut short): reported as of unknown outcome
//! (never as rejected), audited so, and settled by the journal, which says whether the new secret
//! was lost.

use std::time::Duration;

use tokenwarden::actor::Actor;
use tokenwarden::gate::{GateMode, PendingState};
use tokenwarden::service::{ErrorKind, GateRequest};
use tokenwarden::sim::{AnswerAfterApply, Reanswer};
use tokenwarden::store::{AuditOutcome, Store};
use tokenwarden::tokens::Edition;

use crate::support::{assert_no_token, instance, sim};

const REGENERATE: &str = "/api/v3/configure/token/admin/regenerate";

fn replace(status: u16, content_type: Option<&str>, body: &str) -> Reanswer {
    Reanswer::Replace {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.to_owned(),
    }
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

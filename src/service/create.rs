//! Creating tokens: policy first, then the intent in the journal (with the highest token id seen,
//! which identifies the token later if InfluxDB's answer is lost), the create, and the one
//! delivery of the secret. A failed delivery withdraws the token again, and so does recovery for
//! any token whose secret nobody can be sure to hold. Also the operator token's bootstrap.

use super::{
    Delivered, DeliveryFailure, Instance, LostCreate, SecretDelivery, ServiceError, Ticket,
    TokenService, outcome_of, pause_point,
};
use crate::actor::Actor;
use crate::store::{AuditOutcome, JournalEntry, JournalId, JournalOp, LostAnswer, Stage};
use crate::tokens::{CreatedToken, Edition, NewToken, TokenName, TokenRef, TokenSpec};

impl TokenService {
    /// Creates a token and hands its secret to `delivery`; if delivery fails the token is deleted again.
    pub async fn create(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        new: NewToken,
        delivery: &dyn SecretDelivery,
    ) -> Result<Delivered, ServiceError> {
        let inst = self.instance(instance)?;
        let event = match new.spec {
            TokenSpec::Admin => "token.create_admin",
            TokenSpec::Resource(_) => "token.create_resource",
        };
        let audit = |outcome, detail: Option<String>| {
            self.audit(
                actor,
                event,
                inst,
                Some(new.name.as_str()),
                outcome,
                detail,
                None,
            )
        };
        if let Err(e) = self.may_mutate(inst) {
            audit(AuditOutcome::Refused, Some(e.to_string())).await?;
            return Err(e);
        }
        if let TokenSpec::Resource(perms) = &new.spec {
            if perms.is_empty() {
                return Err(ServiceError::Input(crate::tokens::ParseError(
                    "a resource token needs at least one permission".into(),
                )));
            }
            let edition = self.edition(instance).await?;
            if edition != Edition::Enterprise {
                let e = ServiceError::RequiresEnterprise {
                    instance: inst.settings.name.clone(),
                    edition,
                };
                audit(AuditOutcome::Refused, Some(e.to_string())).await?;
                return Err(e);
            }
        }
        let expiry_secs = new.expiry.expiry_secs(self.now())?;
        let highest_before = inst
            .backend
            .highest_token_id()
            .await
            .map_err(Self::backend_err(inst))?;
        let op = JournalOp::Create {
            name: new.name.clone(),
            highest_before,
            id: None,
        };
        let entry = JournalEntry::new(&inst.settings.name, actor, op, self.now());
        let (store, inst_name, name) = (
            self.store.clone(),
            inst.settings.name.clone(),
            new.name.clone(),
        );
        if let Some(doubt) =
            super::blocking(move || store.journal_create_in_doubt(&inst_name, &name)).await?
        {
            let e = ServiceError::CreateInDoubt {
                name: new.name.to_string(),
                until: doubt.until,
            };
            audit(AuditOutcome::Refused, Some(e.to_string())).await?;
            return Err(e);
        }
        audit(
            AuditOutcome::Requested,
            Some(format!("expiry: {}", new.expiry)),
        )
        .await?;
        self.journal_begin(&entry).await?;
        pause_point("create:before-call").await;
        let created = match &new.spec {
            TokenSpec::Admin => {
                inst.backend
                    .create_admin_token(&new.name, expiry_secs)
                    .await
            }
            TokenSpec::Resource(perms) => {
                inst.backend
                    .create_resource_token(&new.name, perms, expiry_secs)
                    .await
            }
        };
        let CreatedToken { token, secret } = match created {
            Ok(c) => c,
            Err(e) => {
                let outcome = outcome_of(&e);
                let unknown = outcome == AuditOutcome::Unknown;
                self.audit_after(
                    actor,
                    event,
                    inst,
                    Some(new.name.as_str()),
                    outcome,
                    Some(e.to_string()),
                    None,
                )
                .await;
                if unknown {
                    // The secret never arrived: a token made by this request must not stay.
                    let outcome = self.settle_lost_create(inst, &entry).await;
                    return Err(ServiceError::CreateAnswerLost {
                        name: new.name.to_string(),
                        source: e,
                        outcome,
                    });
                }
                self.journal_step(&entry.id, |e| e.stage = Stage::Failed)
                    .await;
                return Err(Self::backend_err(inst)(e));
            }
        };
        pause_point("create:answered").await;
        let id = token.id;
        let noted = self
            .journal_step(&entry.id, move |e| {
                if let JournalOp::Create { id: slot, .. } = &mut e.op {
                    *slot = Some(id);
                }
                e.stage = Stage::Delivering;
            })
            .await;
        if noted.is_none() {
            // Unrecorded (or taken over), a handover could leave a secret nobody knows reached
            // anyone: the token is withdrawn instead.
            let failure = DeliveryFailure("tokenwarden could not record the handover".into());
            return Err(self
                .roll_back(actor, inst, event, &entry, &new.name, token.id, failure)
                .await);
        }
        let ticket = Ticket {
            journal: entry.id.clone(),
        };
        pause_point("create:delivering").await;
        match delivery.deliver(&token, &secret, &ticket).await {
            Ok(receipt) => {
                let waiting = receipt.waiting_until;
                self.journal_step(&entry.id, move |e| match waiting {
                    Some(until) => {
                        e.stage = Stage::AwaitingLink;
                        e.due_at = Some(until);
                    }
                    None => e.stage = Stage::Done,
                })
                .await;
                let detail = Some(format!("id {}; secret {}", token.id, receipt.text));
                self.audit_after(
                    actor,
                    event,
                    inst,
                    Some(new.name.as_str()),
                    AuditOutcome::Succeeded,
                    detail,
                    None,
                )
                .await;
                Ok(Delivered { token, receipt })
            }
            Err(failure) => Err(self
                .roll_back(actor, inst, event, &entry, &new.name, token.id, failure)
                .await),
        }
    }

    /// Settles a create whose answer was just lost: a token InfluxDB made is withdrawn now;
    /// otherwise its name is watched for [`super::LATE_WRITES`], and recovery then withdraws a
    /// token of that name InfluxDB made before the watch ended.
    async fn settle_lost_create(&self, inst: &Instance, entry: &JournalEntry) -> LostCreate {
        let looked = self.settle_create(inst, entry, true).await;
        let (store, id) = (self.store.clone(), entry.id.clone());
        let now = super::blocking(move || store.journal_get(&id)).await.ok();
        match now {
            Some(e) if e.stage == Stage::Withdrawn => return LostCreate::Withdrawn,
            Some(e) if looked && e.lost == Some(LostAnswer::NoneFound) => {
                return LostCreate::Watched { until: e.due_at };
            }
            _ => {}
        }
        let (store, id, after) = (self.store.clone(), entry.id.clone(), self.late_writes);
        let watched =
            super::blocking(move || store.journal_watch(&id, after, LostAnswer::Unsettled)).await;
        match watched {
            Ok(until) => LostCreate::Unsettled { until: Some(until) },
            Err(e) => {
                tracing::warn!(error = %e, journal = %entry.id, "could not leave a lost create to recovery");
                LostCreate::Unsettled { until: None }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn roll_back(
        &self,
        actor: &Actor,
        inst: &Instance,
        event: &str,
        journal: &JournalEntry,
        name: &TokenName,
        id: u64,
        failure: DeliveryFailure,
    ) -> ServiceError {
        let reason = failure.0;
        let why = format!("delivery failed: {reason}");
        let target = TokenRef {
            name: name.clone(),
            id,
        };
        match self
            .withdraw_as(actor, inst, event, journal, &target, &why)
            .await
        {
            Ok(()) => ServiceError::DeliveryRolledBack {
                name: name.to_string(),
                reason,
            },
            Err(e) => ServiceError::DeliveryStranded {
                name: name.to_string(),
                reason,
                rollback: e.to_string(),
            },
        }
    }

    /// A parked secret (a one-time link) is being shown now: from here a crash leaves a doubt
    /// about who holds it, and recovery withdraws the token.
    pub async fn secret_delivering(&self, ticket: &Ticket) -> bool {
        self.journal_step(&ticket.journal, |e| {
            e.stage = Stage::Delivering;
            e.due_at = None;
        })
        .await
        .is_some()
    }

    /// A parked secret reached its owner.
    pub async fn secret_delivered(&self, ticket: &Ticket) {
        pause_point("create:marking-delivered").await;
        self.journal_step(&ticket.journal, |e| {
            e.stage = Stage::Done;
            e.due_at = None;
        })
        .await;
    }

    /// Deletes the token of a parked secret that never reached its owner (its link lapsed or
    /// was declined, or its server is stopping), if it is still the token created; audits why.
    pub async fn withdraw_undelivered(
        &self,
        ticket: &Ticket,
        why: &str,
    ) -> Result<(), ServiceError> {
        let (store, id) = (self.store.clone(), ticket.journal.clone());
        let entry = super::blocking(move || store.journal_get(&id)).await?;
        let JournalOp::Create {
            name, id: Some(id), ..
        } = &entry.op
        else {
            return Ok(());
        };
        let inst = self.instance(Some(&entry.instance))?;
        let target = TokenRef {
            name: name.clone(),
            id: *id,
        };
        self.withdraw_as(&entry.actor, inst, "token.withdraw", &entry, &target, why)
            .await
    }

    /// Deletes `target` if it still is the token created, settles its journal entry as
    /// withdrawn, and audits it. A token already gone, or a name now held by another token,
    /// counts as withdrawn and is left alone.
    pub(super) async fn withdraw_as(
        &self,
        actor: &Actor,
        inst: &Instance,
        event: &str,
        journal: &JournalEntry,
        target: &TokenRef,
        why: &str,
    ) -> Result<(), ServiceError> {
        let audit = |outcome, detail: String| {
            self.audit_after(
                actor,
                event,
                inst,
                Some(target.name.as_str()),
                outcome,
                Some(detail),
                None,
            )
        };
        // A DELETE withdrawing it that was sent before (by a process that then died) may still
        // land: another is sent only once it had time to (a second one landing after the first
        // would delete whichever token holds the name by then).
        if let super::Sent::OnItsWay(at) = self.sent_delete(&journal.sent, target.id).await {
            return Err(ServiceError::Internal(format!(
                "a DELETE withdrawing it was sent at {}; waiting for it to land before sending \
                 another",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let (outcome, detail) = match self.remove_if_still(inst, target, Some(&journal.id)).await {
            Ok(super::Removal::Deleted) => (AuditOutcome::RolledBack, why.to_owned()),
            Ok(super::Removal::Gone) => (
                AuditOutcome::Refused,
                format!("{why}; nothing to delete: it no longer exists"),
            ),
            Ok(super::Removal::Replaced { now }) => (
                AuditOutcome::Refused,
                format!(
                    "{why}; not deleted: the name now belongs to another token (id {now}, not {})",
                    target.id
                ),
            ),
            Err(e) => {
                audit(
                    AuditOutcome::Failed,
                    format!("{why}; deleting it failed: {e}"),
                )
                .await;
                return Err(e);
            }
        };
        let note = detail.clone();
        self.journal_step(&journal.id, move |e| {
            e.stage = Stage::Withdrawn;
            e.due_at = None;
            e.detail = Some(note);
        })
        .await;
        audit(outcome, detail).await;
        Ok(())
    }

    /// Creates `_admin` on a server that has none, delivering its secret.
    pub async fn bootstrap_operator(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        delivery: &dyn SecretDelivery,
    ) -> Result<Delivered, ServiceError> {
        let inst = self.instance(instance)?;
        let event = "token.bootstrap_operator";
        self.may_mutate(inst)?;
        self.audit(
            actor,
            event,
            inst,
            Some("_admin"),
            AuditOutcome::Requested,
            None,
            None,
        )
        .await?;
        let CreatedToken { token, secret } = match inst.backend.bootstrap_operator_token().await {
            Ok(c) => c,
            Err(e) => {
                self.audit_after(
                    actor,
                    event,
                    inst,
                    Some("_admin"),
                    outcome_of(&e),
                    Some(e.to_string()),
                    None,
                )
                .await;
                return Err(Self::backend_err(inst)(e));
            }
        };
        let ticket = Ticket {
            journal: JournalId::random(),
        };
        let result = delivery.deliver(&token, &secret, &ticket).await;
        let (outcome, detail) = match &result {
            Ok(r) => (AuditOutcome::Succeeded, format!("secret {}", r.text)),
            Err(f) => (
                AuditOutcome::Failed,
                format!("created, but delivery failed: {f}"),
            ),
        };
        self.audit_after(
            actor,
            event,
            inst,
            Some("_admin"),
            outcome,
            Some(detail),
            None,
        )
        .await;
        match result {
            Ok(receipt) => Ok(Delivered { token, receipt }),
            Err(f) => Err(ServiceError::RegeneratedUndelivered { reason: f.0 }),
        }
    }
}

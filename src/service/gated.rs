//! Destructive operations through the gate: request (policy first, then a stored pending
//! action), confirm or approve (atomically in the store, so it runs once), execute, audit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Delivered, Instance, SecretDelivery, ServiceError, TokenService, blocking};
use crate::actor::Actor;
use crate::gate::{GateError, GateMode, Outcome, Pending, PendingId, Progress};
use crate::store::AuditOutcome;
use crate::tokens::{BackendError, CreatedToken, OPERATOR_TOKEN_NAME, Token, TokenName};

/// The exact action a pending approval is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    DeleteToken {
        instance: String,
        name: TokenName,
    },
    RegenerateOperator {
        instance: String,
    },
    /// Delete exactly these expired tokens (listed when requested).
    PruneExpired {
        instance: String,
        names: Vec<TokenName>,
    },
}

impl Operation {
    pub fn instance(&self) -> &str {
        match self {
            Self::DeleteToken { instance, .. }
            | Self::RegenerateOperator { instance }
            | Self::PruneExpired { instance, .. } => instance,
        }
    }

    pub fn token_name(&self) -> &str {
        match self {
            Self::DeleteToken { name, .. } => name.as_str(),
            Self::RegenerateOperator { .. } => OPERATOR_TOKEN_NAME,
            Self::PruneExpired { .. } => "(expired tokens)",
        }
    }

    pub(super) fn event(&self) -> &'static str {
        match self {
            Self::DeleteToken { .. } => "token.delete",
            Self::RegenerateOperator { .. } => "token.regenerate_operator",
            Self::PruneExpired { .. } => "token.prune_expired",
        }
    }

    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Self::DeleteToken { instance, name } => {
                format!("delete token `{name}` on instance `{instance}`")
            }
            Self::RegenerateOperator { instance } => {
                format!("regenerate the operator token of instance `{instance}`")
            }
            Self::PruneExpired { instance, names } => {
                let shown: Vec<&str> = names.iter().take(10).map(TokenName::as_str).collect();
                let more = names.len().saturating_sub(shown.len());
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!(
                    "delete {} expired tokens on instance `{instance}` ({}{tail})",
                    names.len(),
                    shown.join(", ")
                )
            }
        }
    }
}

/// How a destructive request is gated.
#[derive(Debug, Clone)]
pub struct GateRequest {
    pub mode: GateMode,
    /// How long the request stays open; `None` uses the configured confirmation timeout.
    pub ttl: Option<Duration>,
    pub reason: Option<String>,
}

/// A stored pending action, with the token it concerns (when it names one).
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub pending: Pending<Operation>,
    pub token: Option<Token>,
}

/// What an executed operation did.
#[derive(Debug, Clone)]
pub enum Executed {
    Deleted {
        instance: String,
        name: TokenName,
    },
    Regenerated(Delivered),
    /// Each expired token either deleted or listed with why not.
    Pruned {
        instance: String,
        deleted: Vec<String>,
        failed: Vec<(String, String)>,
    },
}

/// What an approval led to.
#[derive(Debug)]
pub enum ApprovalResult {
    /// Recorded; more approvals are needed.
    Recorded {
        pending: Pending<Operation>,
        have: usize,
        need: usize,
    },
    /// The last approval: the operation ran (or failed), and `pending` holds its final state.
    Executed {
        pending: Pending<Operation>,
        result: Result<Executed, ServiceError>,
    },
}

impl TokenService {
    /// Asks to delete `name`. Protected tokens and read-only instances are refused before the gate.
    pub async fn request_delete(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        name: &TokenName,
        gate: GateRequest,
    ) -> Result<PendingRequest, ServiceError> {
        let inst = self.instance(instance)?;
        let op = Operation::DeleteToken {
            instance: inst.settings.name.clone(),
            name: name.clone(),
        };
        if let Err(e) = self.policy_allows(inst, &op) {
            return Err(self.refuse(actor, &op, inst, name.as_str(), e).await);
        }
        let token = self.find(actor, instance, name).await?;
        self.open(actor, inst, op, gate, Some(token)).await
    }

    /// Asks to regenerate the operator token (every client using it breaks).
    pub async fn request_regenerate(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        gate: GateRequest,
    ) -> Result<PendingRequest, ServiceError> {
        let inst = self.instance(instance)?;
        let op = Operation::RegenerateOperator {
            instance: inst.settings.name.clone(),
        };
        if let Err(e) = self.policy_allows(inst, &op) {
            return Err(self.refuse(actor, &op, inst, OPERATOR_TOKEN_NAME, e).await);
        }
        self.open(actor, inst, op, gate, None).await
    }

    pub(super) async fn open(
        &self,
        actor: &Actor,
        inst: &Instance,
        op: Operation,
        gate: GateRequest,
        token: Option<Token>,
    ) -> Result<PendingRequest, ServiceError> {
        let ttl = gate.ttl.unwrap_or(self.confirm_ttl);
        let mut pending = Pending::new(op, actor.clone(), gate.mode, ttl, self.now());
        pending.reason = gate.reason;
        let (store, stored) = (self.store.clone(), pending.clone());
        blocking(move || store.insert_pending(&stored)).await?;
        let detail = Some(format!(
            "expires {}",
            pending
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        let event = pending.action.event();
        self.audit(
            actor,
            event,
            inst,
            Some(pending.action.token_name()),
            AuditOutcome::Requested,
            detail,
            Some(pending.id.to_string()),
        )
        .await?;
        Ok(PendingRequest { pending, token })
    }

    /// The requester confirms `op` with `proof`; on success it runs, once.
    pub async fn confirm(
        &self,
        actor: &Actor,
        id: &PendingId,
        op: &Operation,
        proof: &str,
        delivery: &dyn SecretDelivery,
    ) -> Result<Executed, ServiceError> {
        let (who, op2, proof, now) = (actor.clone(), op.clone(), proof.to_owned(), self.now());
        let pending = self
            .transition(actor, id, move |p| {
                p.confirm(&who, &op2, &proof, now).map(|()| p.clone())
            })
            .await?;
        self.execute(actor, pending, delivery).await.1
    }

    /// `actor` approves; the approval that completes the count runs the operation, once.
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &PendingId,
        delivery: &dyn SecretDelivery,
    ) -> Result<ApprovalResult, ServiceError> {
        let (who, now) = (actor.clone(), self.now());
        let (progress, pending) = self
            .transition(actor, id, move |p| {
                p.approve(&who, now).map(|progress| (progress, p.clone()))
            })
            .await?;
        self.audit_pending(actor, &pending, AuditOutcome::Approved, None)
            .await;
        match progress {
            Progress::Recorded { have, need } => Ok(ApprovalResult::Recorded {
                pending,
                have,
                need,
            }),
            Progress::Ready => {
                let (pending, result) = self.execute(actor, pending, delivery).await;
                Ok(ApprovalResult::Executed { pending, result })
            }
        }
    }

    /// Closes a pending action without running it.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &PendingId,
        reason: Option<String>,
    ) -> Result<Pending<Operation>, ServiceError> {
        let (who, now, why) = (actor.clone(), self.now(), reason.clone());
        let pending = self
            .transition(actor, id, move |p| {
                p.reject(&who, why, now).map(|()| p.clone())
            })
            .await?;
        self.audit_pending(actor, &pending, AuditOutcome::Rejected, reason)
            .await;
        Ok(pending)
    }

    /// Applies a gate transition to pending action `id` in one store transaction; a refusal is
    /// audited and returned.
    async fn transition<T: Send + 'static>(
        &self,
        actor: &Actor,
        id: &PendingId,
        step: impl FnOnce(&mut Pending<Operation>) -> Result<T, GateError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let (store, id2) = (self.store.clone(), id.clone());
        match blocking(move || store.update_pending(&id2, step)).await? {
            Ok(t) => Ok(t),
            Err(e) => {
                let op = self.pending(id).await?.action;
                Err(self.refused(actor, &op, id, e).await)
            }
        }
    }

    /// Audits a step of pending action `p`.
    pub(super) async fn audit_pending(
        &self,
        actor: &Actor,
        p: &Pending<Operation>,
        outcome: AuditOutcome,
        detail: Option<String>,
    ) {
        if let Ok(inst) = self.instance(Some(p.action.instance())) {
            let id = Some(p.id.to_string());
            self.audit_after(
                actor,
                p.action.event(),
                inst,
                Some(p.action.token_name()),
                outcome,
                detail,
                id,
            )
            .await;
        }
    }

    async fn refused(
        &self,
        actor: &Actor,
        op: &Operation,
        id: &PendingId,
        e: GateError,
    ) -> ServiceError {
        if let Ok(inst) = self.instance(Some(op.instance())) {
            self.audit_after(
                actor,
                op.event(),
                inst,
                Some(op.token_name()),
                AuditOutcome::Refused,
                Some(e.to_string()),
                Some(id.to_string()),
            )
            .await;
        }
        ServiceError::Gate(e)
    }

    fn policy_allows(&self, inst: &Instance, op: &Operation) -> Result<(), ServiceError> {
        self.may_mutate(inst)?;
        if let Operation::DeleteToken { name, .. } = op {
            if name.is_operator() {
                return Err(ServiceError::OperatorProtected);
            }
            if let Some(pattern) = inst.settings.protected.protecting(name.as_str()) {
                return Err(ServiceError::Protected {
                    name: name.to_string(),
                    pattern: pattern.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Runs an operation the gate released (state `Executing`), records its outcome and audits it.
    async fn execute(
        &self,
        actor: &Actor,
        pending: Pending<Operation>,
        delivery: &dyn SecretDelivery,
    ) -> (Pending<Operation>, Result<Executed, ServiceError>) {
        let result = self.run(&pending.action, delivery).await;
        let (outcome, audit_outcome, detail) = match &result {
            Ok(Executed::Pruned {
                deleted, failed, ..
            }) if !failed.is_empty() => {
                let why = format!(
                    "{} deleted, {} not: {}",
                    deleted.len(),
                    failed.len(),
                    super::prune::summary(failed)
                );
                (
                    Outcome::Failed(why.clone()),
                    AuditOutcome::Failed,
                    Some(why),
                )
            }
            Ok(_) => (Outcome::Succeeded, AuditOutcome::Succeeded, None),
            Err(ServiceError::Backend {
                source: e @ BackendError::OutcomeUnknown { .. },
                ..
            }) => (
                Outcome::Unknown(e.to_string()),
                AuditOutcome::Unknown,
                Some(e.to_string()),
            ),
            Err(e) => (
                Outcome::Failed(e.to_string()),
                AuditOutcome::Failed,
                Some(e.to_string()),
            ),
        };
        let (store, id) = (self.store.clone(), pending.id.clone());
        let finished = blocking(move || {
            store.update_pending(&id, |p: &mut Pending<Operation>| {
                p.finish(outcome);
                p.clone()
            })
        })
        .await;
        let pending = match finished {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, id = %pending.id, "could not record the outcome of a pending action");
                pending
            }
        };
        self.audit_pending(actor, &pending, audit_outcome, detail)
            .await;
        (pending, result)
    }

    async fn run(
        &self,
        op: &Operation,
        delivery: &dyn SecretDelivery,
    ) -> Result<Executed, ServiceError> {
        let inst = self.instance(Some(op.instance()))?;
        // The config may have changed since the request: check the policy again.
        self.policy_allows(inst, op)?;
        let backend_err = Self::backend_err(inst);
        match op {
            Operation::DeleteToken { instance, name } => {
                inst.backend
                    .delete_token(name)
                    .await
                    .map_err(&backend_err)?;
                Ok(Executed::Deleted {
                    instance: instance.clone(),
                    name: name.clone(),
                })
            }
            Operation::RegenerateOperator { .. } => {
                let CreatedToken { token, secret } = inst
                    .backend
                    .regenerate_operator_token()
                    .await
                    .map_err(&backend_err)?;
                let receipt = delivery
                    .deliver(&token, &secret)
                    .await
                    .map_err(|f| ServiceError::RegeneratedUndelivered { reason: f.0 })?;
                Ok(Executed::Regenerated(Delivered { token, receipt }))
            }
            Operation::PruneExpired { instance, names } => {
                Ok(self.prune(inst, instance, names).await)
            }
        }
    }
}

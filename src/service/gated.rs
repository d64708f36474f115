//! Destructive operations through the gate: request (policy first, then a stored pending action
//! bound to the ids of the tokens it shows), confirm or approve (atomically in the store, which
//! writes the operation's intent to the journal in the same transaction), execute, audit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Instance, ServiceError, TokenService, blocking};
use crate::actor::Actor;
use crate::gate::{GateError, GateMode, Outcome, Pending, PendingId, PendingState, Progress};
use crate::shown::{quoted, shown};
use crate::store::{AuditOutcome, JournalEntry, JournalOp};
use crate::tokens::{OPERATOR_TOKEN_NAME, Token, TokenName, TokenRef};

/// An expired token a prune request showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredToken {
    pub name: TokenName,
    pub id: u64,
    pub expired_at: DateTime<Utc>,
}

impl ExpiredToken {
    pub fn target(&self) -> TokenRef {
        TokenRef {
            name: self.name.clone(),
            id: self.id,
        }
    }
}

/// The exact action a pending approval is bound to: the tokens as shown, by name and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    DeleteToken {
        instance: String,
        name: TokenName,
        /// The id of the token shown: a later token given the same name is never deleted.
        id: u64,
    },
    RegenerateOperator {
        instance: String,
        /// Where the new secret is written (0600, atomically) before anything else happens.
        file: PathBuf,
    },
    /// Delete exactly these tokens, each expired when requested.
    PruneExpired {
        instance: String,
        tokens: Vec<ExpiredToken>,
    },
    /// A request stored by an older tokenwarden without the ids of its tokens; closed by the
    /// upgrade and never run.
    Retired { instance: String, was: String },
}

/// What an adapter asks for before the core has looked at the tokens concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Delete { instance: String, name: TokenName },
    Regenerate { instance: String },
    Prune { instance: String },
}

impl Request {
    pub fn instance(&self) -> &str {
        match self {
            Self::Delete { instance, .. }
            | Self::Regenerate { instance }
            | Self::Prune { instance } => instance,
        }
    }
}

impl Operation {
    pub fn instance(&self) -> &str {
        match self {
            Self::DeleteToken { instance, .. }
            | Self::RegenerateOperator { instance, .. }
            | Self::PruneExpired { instance, .. }
            | Self::Retired { instance, .. } => instance,
        }
    }

    pub fn token_name(&self) -> &str {
        match self {
            Self::DeleteToken { name, .. } => name.as_str(),
            Self::RegenerateOperator { .. } => OPERATOR_TOKEN_NAME,
            Self::PruneExpired { .. } => "(expired tokens)",
            Self::Retired { .. } => "(retired request)",
        }
    }

    /// Whether this stored operation is what `request` asks for (the same kind, instance and
    /// name); a repeated tool call names the request, the store holds the bound operation.
    pub fn answers(&self, request: &Request) -> bool {
        match (self, request) {
            (
                Self::DeleteToken { instance, name, .. },
                Request::Delete {
                    instance: i,
                    name: n,
                },
            ) => instance == i && name == n,
            (Self::RegenerateOperator { instance, .. }, Request::Regenerate { instance: i })
            | (Self::PruneExpired { instance, .. }, Request::Prune { instance: i }) => {
                instance == i
            }
            _ => false,
        }
    }

    pub(super) fn event(&self) -> &'static str {
        match self {
            Self::DeleteToken { .. } | Self::Retired { .. } => "token.delete",
            Self::RegenerateOperator { .. } => "token.regenerate_operator",
            Self::PruneExpired { .. } => "token.prune_expired",
        }
    }

    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Self::DeleteToken { instance, name, id } => format!(
                "delete token {} (id {id}) on instance {}",
                quoted(name.as_str()),
                quoted(instance)
            ),
            Self::RegenerateOperator { instance, file } => format!(
                "regenerate the operator token of instance {}, writing the new secret to {}",
                quoted(instance),
                shown(&file.display().to_string())
            ),
            Self::PruneExpired { instance, tokens } => {
                let listed: Vec<String> = tokens
                    .iter()
                    .take(10)
                    .map(|t| quoted(t.name.as_str()))
                    .collect();
                let more = tokens.len().saturating_sub(listed.len());
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                let noun = if tokens.len() == 1 { "token" } else { "tokens" };
                format!(
                    "delete {} expired {noun} on instance {} ({}{tail})",
                    tokens.len(),
                    quoted(instance),
                    listed.join(", ")
                )
            }
            Self::Retired { was, .. } => was.clone(),
        }
    }

    /// The journal record of this operation, written when the gate releases it.
    fn intent(&self) -> Option<JournalOp> {
        match self {
            Self::DeleteToken { name, id, .. } => Some(JournalOp::Delete {
                target: TokenRef {
                    name: name.clone(),
                    id: *id,
                },
            }),
            Self::PruneExpired { tokens, .. } => Some(JournalOp::Prune {
                targets: tokens.iter().map(ExpiredToken::target).collect(),
                settled: vec![],
            }),
            Self::RegenerateOperator { file, .. } => Some(JournalOp::Regenerate {
                file: file.clone(),
                before: None,
            }),
            Self::Retired { .. } => None,
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

/// A stored pending action, with the tokens it showed: the one to delete, or the expired ones
/// a prune covers.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub pending: Pending<Operation>,
    pub token: Option<Token>,
    pub expired: Vec<Token>,
}

/// What an executed operation did.
#[derive(Debug, Clone)]
pub enum Executed {
    Deleted {
        instance: String,
        name: TokenName,
    },
    /// The operator token has a new secret, written to `file`; `own_credential` says whether
    /// that file is tokenwarden's own credential for the instance (which then keeps working).
    Regenerated {
        instance: String,
        id: u64,
        file: PathBuf,
        own_credential: bool,
    },
    /// Each expired token deleted, left alone (with why), or failed (with why).
    Pruned {
        instance: String,
        deleted: Vec<String>,
        skipped: Vec<(String, String)>,
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
    /// Opens the pending action for `request`; `None` when there is nothing to do (no expired
    /// tokens). `file` is where a regenerated secret goes when the caller names one.
    pub async fn request(
        &self,
        actor: &Actor,
        request: &Request,
        gate: GateRequest,
        file: Option<PathBuf>,
    ) -> Result<Option<PendingRequest>, ServiceError> {
        let instance = Some(request.instance());
        match request {
            Request::Delete { name, .. } => self
                .request_delete(actor, instance, name, gate)
                .await
                .map(Some),
            Request::Regenerate { .. } => self
                .request_regenerate(actor, instance, gate, file)
                .await
                .map(Some),
            Request::Prune { .. } => Ok(self.request_prune(actor, instance, gate).await?.map(
                |(mut request, expired)| {
                    request.expired = expired;
                    request
                },
            )),
        }
    }

    /// Asks to delete `name`, bound to the id it has now. Protected tokens and read-only
    /// instances are refused before the gate.
    pub async fn request_delete(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        name: &TokenName,
        gate: GateRequest,
    ) -> Result<PendingRequest, ServiceError> {
        let inst = self.instance(instance)?;
        if let Err(e) = self.may_delete(inst, name) {
            let op = Operation::DeleteToken {
                instance: inst.settings.name.clone(),
                name: name.clone(),
                id: 0,
            };
            return Err(self.refuse(actor, &op, inst, name.as_str(), e).await);
        }
        let token = self.find(actor, instance, name).await?;
        let op = Operation::DeleteToken {
            instance: inst.settings.name.clone(),
            name: name.clone(),
            id: token.id,
        };
        self.open(actor, inst, op, gate, Some(token)).await
    }

    /// Asks to regenerate the operator token (every client using it breaks). The new secret
    /// needs a durable place first: `file`, else the instance's `operator_token_file`.
    pub async fn request_regenerate(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        gate: GateRequest,
        file: Option<PathBuf>,
    ) -> Result<PendingRequest, ServiceError> {
        let inst = self.instance(instance)?;
        let file = file.or_else(|| inst.settings.operator_token_file.clone());
        let op = Operation::RegenerateOperator {
            instance: inst.settings.name.clone(),
            file: file.clone().unwrap_or_default(),
        };
        let refusal = self.may_mutate(inst).err().or_else(|| match &file {
            None => Some(ServiceError::NoSecretFile {
                instance: inst.settings.name.clone(),
            }),
            Some(file) => self.may_regenerate_into(inst, file).err(),
        });
        if let Some(e) = refusal {
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
        let now = self.shared_now().await;
        let mut pending = Pending::new(op, self.identify(actor), gate.mode, ttl, now);
        pending.reason = gate.reason;
        let (store, stored) = (self.store.clone(), pending.clone());
        blocking(move || store.insert_pending(&stored)).await?;
        let detail = Some(format!(
            "{}; expires {}",
            pending.action.describe(),
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
        Ok(PendingRequest {
            pending,
            token,
            expired: vec![],
        })
    }

    /// The requester confirms `op` with `proof`; on success it runs, once.
    pub async fn confirm(
        &self,
        actor: &Actor,
        id: &PendingId,
        op: &Operation,
        proof: &str,
    ) -> Result<Executed, ServiceError> {
        let actor = &self.identify(actor);
        let (who, op2, proof) = (actor.clone(), op.clone(), proof.to_owned());
        let (pending, entry) = self
            .release(actor, id, move |p, now| {
                p.confirm(&who, &op2, &proof, now).map(|()| p.clone())
            })
            .await?;
        self.execute(actor, pending, entry).await.1
    }

    /// `actor` approves; the approval that completes the count runs the operation, once.
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &PendingId,
    ) -> Result<ApprovalResult, ServiceError> {
        let actor = &self.identify(actor);
        let who = actor.clone();
        let ((progress, pending), entry) = self
            .release(actor, id, move |p, now| {
                p.approve(&who, now).map(|progress| (progress, p.clone()))
            })
            .await?;
        self.audit_pending(actor, &pending, AuditOutcome::Approved, None)
            .await;
        match progress {
            Progress::Ready => {
                let (pending, result) = self.execute(actor, pending, entry).await;
                Ok(ApprovalResult::Executed { pending, result })
            }
            Progress::Recorded { have, need } => Ok(ApprovalResult::Recorded {
                pending,
                have,
                need,
            }),
        }
    }

    /// Closes a pending action without running it.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &PendingId,
        reason: Option<String>,
    ) -> Result<Pending<Operation>, ServiceError> {
        let actor = &self.identify(actor);
        let (who, why) = (actor.clone(), reason.clone());
        let (pending, _) = self
            .release(actor, id, move |p, now| {
                p.reject(&who, why, now).map(|()| p.clone())
            })
            .await?;
        self.audit_pending(actor, &pending, AuditOutcome::Rejected, reason)
            .await;
        Ok(pending)
    }

    /// Applies a gate transition to pending action `id` in one store transaction. When it
    /// releases the operation (state `Executing`), the operation's intent is journaled in the
    /// same transaction. `step` is told the time, read once the action is had (a deadline is
    /// not met by waiting for another process's write). A refusal is audited and returned.
    async fn release<T: Send + 'static>(
        &self,
        actor: &Actor,
        id: &PendingId,
        step: impl FnOnce(
            &mut Pending<Operation>,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<T, GateError>
        + Send
        + 'static,
    ) -> Result<(T, Option<JournalEntry>), ServiceError> {
        let (store, id2) = (self.store.clone(), id.clone());
        let (actor2, clock) = (actor.clone(), self.shared_clock());
        let people = Arc::clone(&self.people);
        let released = blocking(move || {
            store.update_pending_at(&id2, clock, |p: &mut Pending<Operation>, now| {
                // A requester recorded as a person whom this configuration does not know: its
                // approvers could not be told apart from them (a config without `[[people]]`
                // must not make a person's own approval count).
                if let Some(person) = p
                    .requester
                    .person
                    .clone()
                    .filter(|name| people.named(name).is_none())
                {
                    let refused = GateError::RequesterUnknown {
                        id: p.id.clone(),
                        person,
                    };
                    return ((Err(refused), None), None);
                }
                // Today's `[[people]]` decides who is whom, also for the requester and the
                // approvals recorded before a config change.
                p.requester = people.identify(&p.requester);
                for a in &mut p.approvals {
                    a.by = people.identify(&a.by);
                }
                let was_open = p.state == PendingState::Open;
                let out = step(p, now);
                let entry = (out.is_ok() && was_open && p.state == PendingState::Executing)
                    .then(|| p.action.intent())
                    .flatten()
                    .map(|op| {
                        let mut e = JournalEntry::new(p.action.instance(), &actor2, op, now);
                        e.pending_id = Some(p.id.to_string());
                        e
                    });
                let keep = entry.clone();
                ((out, keep), entry)
            })
        })
        .await?;
        match released {
            (Ok(t), entry) => Ok((t, entry)),
            (Err(e), _) => {
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

    /// Whether `name` may be deleted on `inst` at all: never `_admin`, never a protected name,
    /// never on a read-only instance.
    pub(super) fn may_delete(&self, inst: &Instance, name: &TokenName) -> Result<(), ServiceError> {
        self.may_mutate(inst)?;
        if name.is_operator() {
            return Err(ServiceError::OperatorProtected);
        }
        if let Some(pattern) = inst.settings.protected.protecting(name.as_str()) {
            return Err(ServiceError::Protected {
                name: name.to_string(),
                pattern: pattern.to_owned(),
            });
        }
        Ok(())
    }

    /// Runs an operation the gate released (state `Executing`) under its journal entry, then
    /// records its outcome on the pending action and audits it. An outcome InfluxDB left
    /// unknown keeps the action executing until recovery settles it.
    async fn execute(
        &self,
        actor: &Actor,
        pending: Pending<Operation>,
        entry: Option<JournalEntry>,
    ) -> (Pending<Operation>, Result<Executed, ServiceError>) {
        let ran = match &entry {
            Some(entry) => self.run(&pending.action, entry).await,
            None => super::run::Ran::settled(Err(ServiceError::Retired {
                was: pending.action.describe(),
            })),
        };
        if !ran.settled {
            let detail = ran.result.as_ref().err().map(|e| {
                format!("{e}; left executing until tokenwarden can ask InfluxDB how it ended")
            });
            self.audit_pending(actor, &pending, AuditOutcome::Unknown, detail)
                .await;
            return (pending, ran.result);
        }
        let pending = match &entry {
            Some(entry) => self.close_with(actor, &pending, entry, &ran.result).await,
            None => self.close_pending(actor, &pending, &ran.result).await,
        };
        (pending, ran.result)
    }

    /// Records how the operation of `pending` ended on the action and on its journal entry in
    /// one transaction, and audits it.
    pub(super) async fn close_with(
        &self,
        actor: &Actor,
        pending: &Pending<Operation>,
        entry: &JournalEntry,
        result: &Result<Executed, ServiceError>,
    ) -> Pending<Operation> {
        let (outcome, audit_outcome, detail) = outcome_of(result);
        let stage = super::run::stage_of(result);
        let note = result.as_ref().err().map(ToString::to_string);
        let (store, id, journal) = (self.store.clone(), pending.id.clone(), entry.id.clone());
        let finished =
            blocking(move || store.finish_journaled(&id, outcome, &journal, stage, note)).await;
        let pending = match finished {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, id = %pending.id, "could not record the outcome of a pending action; recovery will");
                return pending.clone();
            }
        };
        self.audit_pending(actor, &pending, audit_outcome, detail)
            .await;
        pending
    }

    /// Records how the operation of `pending` ended and audits it.
    pub(super) async fn close_pending(
        &self,
        actor: &Actor,
        pending: &Pending<Operation>,
        result: &Result<Executed, ServiceError>,
    ) -> Pending<Operation> {
        let (outcome, audit_outcome, detail) = outcome_of(result);
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
                pending.clone()
            }
        };
        self.audit_pending(actor, &pending, audit_outcome, detail)
            .await;
        pending
    }
}

/// How a run ended, for the pending action and the audit log.
fn outcome_of(result: &Result<Executed, ServiceError>) -> (Outcome, AuditOutcome, Option<String>) {
    match result {
        Ok(Executed::Pruned {
            deleted,
            skipped,
            failed,
            ..
        }) if !failed.is_empty() || !skipped.is_empty() => {
            let mut parts = vec![format!("{} deleted", deleted.len())];
            if !skipped.is_empty() {
                parts.push(format!(
                    "{} left alone: {}",
                    skipped.len(),
                    super::prune::summary(skipped)
                ));
            }
            if !failed.is_empty() {
                parts.push(format!(
                    "{} failed: {}",
                    failed.len(),
                    super::prune::summary(failed)
                ));
            }
            let why = parts.join("; ");
            if failed.is_empty() {
                (Outcome::Succeeded, AuditOutcome::Succeeded, Some(why))
            } else {
                (
                    Outcome::Failed(why.clone()),
                    AuditOutcome::Failed,
                    Some(why),
                )
            }
        }
        Ok(_) => (Outcome::Succeeded, AuditOutcome::Succeeded, None),
        Err(e) if e.kind() == super::ErrorKind::Unknown => (
            Outcome::Unknown(e.to_string()),
            AuditOutcome::Unknown,
            Some(e.to_string()),
        ),
        Err(e) => (
            Outcome::Failed(e.to_string()),
            AuditOutcome::Failed,
            Some(e.to_string()),
        ),
    }
}

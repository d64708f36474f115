//! Pruning expired tokens: InfluxDB keeps them forever. The request lists exactly which tokens,
//! by name and id, each expired at that moment (protected ones never); the gate releases that
//! list once, and each deletion deletes only the token shown, and is audited on its own.

use super::gated::{Executed, ExpiredToken};
use super::run::Ran;
use super::{
    ErrorKind, GateRequest, Instance, Operation, PendingRequest, Removal, ServiceError,
    TokenService, pause_point,
};
use crate::actor::Actor;
use crate::store::{AuditOutcome, JournalEntry, JournalId, JournalOp};
use crate::tokens::{ListFilter, Token, TokenName, TokenRef, TokenStatus};

/// The most tokens one prune request deletes; run it again for more.
pub const MAX_PRUNE: usize = 500;

/// `` `name`: why `` for the first few.
pub(super) fn summary(items: &[(String, String)]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(5)
        .map(|(n, why)| format!("{}: {why}", crate::shown::quoted(n)))
        .collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

/// Where one token of a prune ended.
pub(super) enum Pruned {
    Deleted,
    Skipped(String),
    Failed(String),
}

impl TokenService {
    /// Asks to delete the expired tokens of an instance (at most [`MAX_PRUNE`], protected ones
    /// left alone). `None` when there is nothing to prune. Returns the tokens the request covers.
    pub async fn request_prune(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        gate: GateRequest,
    ) -> Result<Option<(PendingRequest, Vec<Token>)>, ServiceError> {
        let inst = self.instance(instance)?;
        if let Err(e) = self.may_mutate(inst) {
            let op = Operation::PruneExpired {
                instance: inst.settings.name.clone(),
                tokens: vec![],
            };
            return Err(self.refuse(actor, &op, inst, op.token_name(), e).await);
        }
        let filter = ListFilter {
            status: Some(TokenStatus::Expired),
            ..Default::default()
        };
        let now = self.now();
        let mut expired = self.list(actor, instance, &filter).await?;
        expired.retain(|t| {
            inst.settings.protected.protecting(&t.name).is_none()
                && TokenName::parse(&t.name).is_ok()
                && t.expiry.is_some_and(|at| at <= now)
        });
        expired.truncate(MAX_PRUNE);
        let tokens: Vec<ExpiredToken> = expired
            .iter()
            .filter_map(|t| {
                Some(ExpiredToken {
                    name: TokenName::parse(&t.name).ok()?,
                    id: t.id,
                    expired_at: t.expiry?,
                })
            })
            .collect();
        if tokens.is_empty() {
            return Ok(None);
        }
        let op = Operation::PruneExpired {
            instance: inst.settings.name.clone(),
            tokens,
        };
        let request = self.open(actor, inst, op, gate, None).await?;
        Ok(Some((request, expired)))
    }

    /// Deletes each token shown, never retrying; every deletion is audited on its own and
    /// recorded in the journal entry, so a process that dies half-way leaves the rest to recovery.
    pub(super) async fn run_prune(
        &self,
        inst: &Instance,
        tokens: &[ExpiredToken],
        entry: &JournalEntry,
    ) -> Ran {
        let (mut deleted, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        let mut open = false;
        for (i, t) in tokens.iter().enumerate() {
            if i == 0 {
                pause_point("prune:before-call").await;
            }
            let target = t.target();
            match self.prune_one(inst, &target, Some(&entry.id)).await {
                Some(Pruned::Deleted) => deleted.push(target.name.to_string()),
                Some(Pruned::Skipped(why)) => skipped.push((target.name.to_string(), why)),
                Some(Pruned::Failed(why)) => failed.push((target.name.to_string(), why)),
                None => {
                    open = true;
                    failed.push((
                        target.name.to_string(),
                        "InfluxDB did not answer; recovery will check it".to_owned(),
                    ));
                    continue;
                }
            }
            if i == 0 {
                pause_point("prune:answered").await;
            }
            let id = target.id;
            self.journal_step(&entry.id, move |e| {
                if let JournalOp::Prune { settled, .. } = &mut e.op {
                    settled.push(id);
                }
            })
            .await;
        }
        let result = Ok(Executed::Pruned {
            instance: inst.settings.name.clone(),
            deleted,
            skipped,
            failed,
        });
        Ran {
            result,
            settled: !open,
        }
    }

    /// Deletes one expired token if it is still the one shown; `None` when InfluxDB's answer
    /// was lost and a look cannot tell.
    pub(super) async fn prune_one(
        &self,
        inst: &Instance,
        target: &TokenRef,
        journal: Option<&JournalId>,
    ) -> Option<Pruned> {
        if let Err(e) = self.may_delete(inst, &target.name) {
            return Some(Pruned::Skipped(e.to_string()));
        }
        let result = match self.remove_if_still(inst, target, journal).await {
            Err(e) if e.kind() == ErrorKind::Unknown => {
                match self.still_there(inst, target).await {
                    Some(false) => Ok(Removal::Deleted),
                    _ => return None,
                }
            }
            other => other,
        };
        let (pruned, outcome, detail) = match result {
            Ok(Removal::Deleted) => (
                Pruned::Deleted,
                AuditOutcome::Succeeded,
                "pruned: expired".to_owned(),
            ),
            // Deleted elsewhere between the request and now: not this prune's doing, so not
            // counted as pruned.
            Ok(Removal::Gone) => (
                Pruned::Skipped("it no longer existed".to_owned()),
                AuditOutcome::Refused,
                "not pruned: it no longer existed".to_owned(),
            ),
            Ok(Removal::Replaced { now }) => {
                let why = format!(
                    "replaced after the request (the name now belongs to id {now}, not {}); left alone",
                    target.id
                );
                (Pruned::Skipped(why.clone()), AuditOutcome::Refused, why)
            }
            Err(e) => (
                Pruned::Failed(e.to_string()),
                AuditOutcome::Failed,
                e.to_string(),
            ),
        };
        self.audit_after(
            &Actor::system(),
            "token.delete",
            inst,
            Some(target.name.as_str()),
            outcome,
            Some(format!("{detail} (id {})", target.id)),
            None,
        )
        .await;
        Some(pruned)
    }
}

//! Pruning expired tokens: InfluxDB keeps them forever. The request lists exactly which tokens
//! (protected ones never), the gate releases that list once, and each deletion is audited.

use super::{GateRequest, Instance, Operation, PendingRequest, ServiceError, TokenService};
use crate::actor::Actor;
use crate::store::AuditOutcome;
use crate::tokens::{BackendError, ListFilter, Token, TokenName, TokenStatus};

/// The most tokens one prune request deletes; run it again for more.
pub const MAX_PRUNE: usize = 500;

/// `name: why` for the first few failures.
pub(super) fn summary(failed: &[(String, String)]) -> String {
    let shown: Vec<String> = failed
        .iter()
        .take(5)
        .map(|(n, why)| format!("{n}: {why}"))
        .collect();
    let more = failed.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
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
        let op = Operation::PruneExpired {
            instance: inst.settings.name.clone(),
            names: vec![],
        };
        if let Err(e) = self.may_mutate(inst) {
            return Err(self.refuse(actor, &op, inst, op.token_name(), e).await);
        }
        let filter = ListFilter {
            status: Some(TokenStatus::Expired),
            ..Default::default()
        };
        let mut expired = self.list(actor, instance, &filter).await?;
        expired.retain(|t| inst.settings.protected.protecting(&t.name).is_none());
        expired.truncate(MAX_PRUNE);
        let names: Vec<TokenName> = expired
            .iter()
            .filter_map(|t| TokenName::parse(&t.name).ok())
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let op = Operation::PruneExpired {
            instance: inst.settings.name.clone(),
            names,
        };
        let request = self.open(actor, inst, op, gate, None).await?;
        Ok(Some((request, expired)))
    }

    /// Deletes each token, never retrying; every deletion is audited on its own.
    pub(super) async fn prune(
        &self,
        inst: &Instance,
        instance: &str,
        names: &[TokenName],
    ) -> super::Executed {
        let system = Actor::system();
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for name in names {
            if let Some(pattern) = inst.settings.protected.protecting(name.as_str()) {
                failed.push((name.to_string(), format!("protected by `{pattern}` now")));
                continue;
            }
            let result = inst.backend.delete_token(name).await;
            let (outcome, detail) = match &result {
                Ok(()) => (AuditOutcome::Succeeded, Some("pruned: expired".to_owned())),
                Err(BackendError::NotFound { .. }) => (
                    AuditOutcome::Succeeded,
                    Some("pruned: already gone".to_owned()),
                ),
                Err(e @ BackendError::OutcomeUnknown { .. }) => {
                    (AuditOutcome::Unknown, Some(e.to_string()))
                }
                Err(e) => (AuditOutcome::Failed, Some(e.to_string())),
            };
            self.audit_after(
                &system,
                "token.delete",
                inst,
                Some(name.as_str()),
                outcome,
                detail,
                None,
            )
            .await;
            match result {
                Ok(()) | Err(BackendError::NotFound { .. }) => deleted.push(name.to_string()),
                Err(e) => failed.push((name.to_string(), e.to_string())),
            }
        }
        super::Executed::Pruned {
            instance: instance.to_owned(),
            deleted,
            failed,
        }
    }
}

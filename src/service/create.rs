//! Creating tokens: policy first, then the create, then the one delivery of the secret; a
//! failed delivery withdraws the token again. Also the operator token's bootstrap.

use super::{
    Delivered, DeliveryFailure, Instance, SecretDelivery, ServiceError, TokenService, outcome_of,
};
use crate::actor::Actor;
use crate::store::AuditOutcome;
use crate::tokens::{CreatedToken, Edition, NewToken, TokenName, TokenSpec};

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
        audit(
            AuditOutcome::Requested,
            Some(format!("expiry: {}", new.expiry)),
        )
        .await?;
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
                return Err(Self::backend_err(inst)(e));
            }
        };
        match delivery.deliver(&token, &secret).await {
            Ok(receipt) => {
                let detail = Some(format!("id {}; secret {}", token.id, receipt.0));
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
                .roll_back(actor, inst, event, &new.name, token.id, failure)
                .await),
        }
    }

    async fn roll_back(
        &self,
        actor: &Actor,
        inst: &Instance,
        event: &str,
        name: &TokenName,
        id: u64,
        failure: DeliveryFailure,
    ) -> ServiceError {
        let reason = failure.0;
        let why = format!("delivery failed: {reason}");
        match self.withdraw_as(actor, inst, event, name, id, &why).await {
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

    /// Deletes the token `id` whose secret never reached its owner (say, a reveal link expired
    /// unopened), and audits why.
    pub async fn withdraw(
        &self,
        actor: &Actor,
        instance: &str,
        name: &TokenName,
        id: u64,
        why: &str,
    ) -> Result<(), ServiceError> {
        let inst = self.instance(Some(instance))?;
        self.withdraw_as(actor, inst, "token.withdraw", name, id, why)
            .await
    }

    /// Deletes `name` if it still is the token `id` tokenwarden created. InfluxDB deletes by
    /// name, and meanwhile someone may have deleted the token and given its name to a new one,
    /// which must not be hit. A token already gone counts as withdrawn.
    async fn withdraw_as(
        &self,
        actor: &Actor,
        inst: &Instance,
        event: &str,
        name: &TokenName,
        id: u64,
        why: &str,
    ) -> Result<(), ServiceError> {
        let audit = |outcome, detail: String| {
            self.audit_after(
                actor,
                event,
                inst,
                Some(name.as_str()),
                outcome,
                Some(detail),
                None,
            )
        };
        let current = match self
            .find_named(actor, Some(&inst.settings.name), name)
            .await
        {
            Ok(current) => current.map(|t| t.id),
            Err(e) => {
                let detail = format!(
                    "{why}; not deleted: cannot check that it is still the token created: {e}"
                );
                audit(AuditOutcome::Failed, detail).await;
                return Err(e);
            }
        };
        let refused = match current {
            Some(now) if now == id => None,
            Some(now) => Some(format!(
                "{why}; not deleted: the name now belongs to another token (id {now}, not {id})"
            )),
            None => Some(format!("{why}; nothing to delete: it no longer exists")),
        };
        if let Some(detail) = refused {
            audit(AuditOutcome::Refused, detail).await;
            return Ok(());
        }
        let result = inst.backend.delete_token(name).await;
        let (outcome, detail) = match &result {
            Ok(()) => (AuditOutcome::RolledBack, why.to_owned()),
            Err(e) => (
                AuditOutcome::Failed,
                format!("{why}; deleting it failed: {e}"),
            ),
        };
        audit(outcome, detail).await;
        result.map_err(Self::backend_err(inst))
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
        let result = delivery.deliver(&token, &secret).await;
        let (outcome, detail) = match &result {
            Ok(r) => (AuditOutcome::Succeeded, format!("secret {}", r.0)),
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

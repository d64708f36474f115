//! Reading pending actions, the adapters' references to them (a Discord card), expiry, and
//! the outbox of notices their closes leave.

use super::{ServiceError, TokenService, blocking};
use crate::gate::{Pending, PendingId};
use crate::service::Operation;
use crate::store::{AuditOutcome, OutboxItem};

impl TokenService {
    /// A pending action as stored.
    pub async fn pending(&self, id: &PendingId) -> Result<Pending<Operation>, ServiceError> {
        let (store, id) = (self.store.clone(), id.clone());
        blocking(move || store.get_pending(&id)).await
    }

    /// Open pending actions, oldest first.
    pub async fn open_pending(&self) -> Result<Vec<Pending<Operation>>, ServiceError> {
        let store = self.store.clone();
        blocking(move || store.open_pending()).await
    }

    /// Claims the right to attach `adapter`'s reference to pending action `id` (true once).
    pub async fn claim_pending_ref(
        &self,
        id: &PendingId,
        adapter: &'static str,
    ) -> Result<bool, ServiceError> {
        let (store, id) = (self.store.clone(), id.clone());
        blocking(move || store.claim_ref(&id, adapter)).await
    }

    /// Records `adapter`'s reference (a Discord card, say) for pending action `id`.
    pub async fn set_pending_ref(
        &self,
        id: &PendingId,
        adapter: &'static str,
        value: String,
    ) -> Result<(), ServiceError> {
        let (store, id) = (self.store.clone(), id.clone());
        blocking(move || store.set_ref(&id, adapter, &value)).await
    }

    /// `adapter`'s reference for pending action `id`, if set.
    pub async fn pending_ref(
        &self,
        id: &PendingId,
        adapter: &'static str,
    ) -> Result<Option<String>, ServiceError> {
        let (store, id) = (self.store.clone(), id.clone());
        blocking(move || store.get_ref(&id, adapter)).await
    }

    /// Claims up to `limit` notices to send (for the adapter that delivers them).
    pub async fn outbox_claim(&self, limit: usize) -> Result<Vec<OutboxItem>, ServiceError> {
        let store = self.store.clone();
        blocking(move || store.outbox_claim(limit)).await
    }

    /// Marks a claimed notice sent.
    pub async fn outbox_sent(&self, key: &str) -> Result<(), ServiceError> {
        let (store, key) = (self.store.clone(), key.to_owned());
        blocking(move || store.outbox_sent(&key)).await
    }

    /// Marks every open action past its expiry as expired; returns those it changed.
    pub async fn expire_due(&self) -> Result<Vec<Pending<Operation>>, ServiceError> {
        let now = self.shared_now().await;
        let mut expired = Vec::new();
        for p in self
            .open_pending()
            .await?
            .into_iter()
            .filter(|p| p.expires_at <= now)
        {
            let (store, id, clock) = (self.store.clone(), p.id.clone(), self.shared_clock());
            let changed = blocking(move || {
                store.update_pending_at(&id, clock, |q: &mut Pending<Operation>, now| {
                    (q.expire_if_due(now).then(|| q.clone()), None)
                })
            })
            .await?;
            if let Some(q) = changed {
                self.audit_pending(
                    &crate::actor::Actor::system(),
                    &q,
                    AuditOutcome::Expired,
                    None,
                )
                .await;
                expired.push(q);
            }
        }
        Ok(expired)
    }
}

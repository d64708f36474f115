//! The one way tokenwarden deletes a token it was shown: "delete this token if it is still token
//! N". InfluxDB deletes by name only, and names pass from deleted tokens to new ones, so the id is
//! checked right before the delete. Delete, prune, withdrawal and recovery all go through here.

use super::{Instance, ServiceError, TokenService};
use crate::actor::Actor;
use chrono::{DateTime, Utc};

use crate::store::{JournalId, SentDelete};
use crate::tokens::{BackendError, TokenRef};

/// What "delete it if it is still token N" found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It was token N, and it is deleted.
    Deleted,
    /// No token has the name now: token N is gone already.
    Gone,
    /// The name belongs to another token (id `now`); nothing was deleted.
    Replaced { now: u64 },
}

/// Whether a DELETE was sent for a token under a journal entry, and whether it may still land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    Never,
    OnItsWay(DateTime<Utc>),
    Lapsed(DateTime<Utc>),
}

impl TokenService {
    /// Deletes `target` if the name still belongs to its id. Between the check and the delete
    /// (one list query, then the delete) another client could delete the token and create a new
    /// one with the name; InfluxDB offers no delete by id to close that window.
    ///
    /// Under a journal entry (`journal`), the DELETE is recorded as sent before it leaves, so
    /// no process ever sends it a second time (see [`JournalEntry::sent`]); if that record
    /// cannot be written, nothing is sent.
    pub(super) async fn remove_if_still(
        &self,
        inst: &Instance,
        target: &TokenRef,
        journal: Option<&JournalId>,
    ) -> Result<Removal, ServiceError> {
        let current = self
            .find_named(&Actor::system(), Some(&inst.settings.name), &target.name)
            .await?;
        match current.map(|t| t.id) {
            None => Ok(Removal::Gone),
            Some(now) if now != target.id => Ok(Removal::Replaced { now }),
            Some(_) => {
                if let Some(journal) = journal {
                    self.record_sent(journal, target.id).await?;
                }
                self.delete_now(inst, target).await
            }
        }
    }

    /// Where the last DELETE of token `id` recorded in `sent` stands: never sent, perhaps still
    /// on its way (within the late-writes wait after it was sent: InfluxDB may apply it late),
    /// or sent long enough ago that it is not expected to land any more.
    pub(super) async fn sent_delete(&self, sent: &[SentDelete], id: u64) -> Sent {
        let Some(last) = sent.iter().rev().find(|s| s.id == id) else {
            return Sent::Never;
        };
        let late = chrono::Duration::from_std(self.late_writes).unwrap_or(chrono::Duration::MAX);
        if self.shared_now().await < last.at + late {
            Sent::OnItsWay(last.at)
        } else {
            Sent::Lapsed(last.at)
        }
    }

    /// Records in entry `journal` that the DELETE of token `id` is being sent now.
    async fn record_sent(&self, journal: &JournalId, id: u64) -> Result<(), ServiceError> {
        let at = self.shared_now().await;
        self.journal_step(journal, move |e| e.sent.push(SentDelete { id, at }))
            .await
            .map(|_| ())
            .ok_or_else(|| {
                ServiceError::Internal(
                    "could not record the delete before sending it; nothing was sent".into(),
                )
            })
    }

    async fn delete_now(
        &self,
        inst: &Instance,
        target: &TokenRef,
    ) -> Result<Removal, ServiceError> {
        match inst.backend.delete_token(&target.name).await {
            Ok(()) => Ok(Removal::Deleted),
            Err(BackendError::NotFound { .. }) => Ok(Removal::Gone),
            Err(e) => Err(Self::backend_err(inst)(e)),
        }
    }

    /// Whether the name still belongs to `target`'s id: `Some(true)` yes, `Some(false)` it is
    /// gone or taken by another token, `None` InfluxDB could not say.
    pub(super) async fn still_there(&self, inst: &Instance, target: &TokenRef) -> Option<bool> {
        self.find_named(&Actor::system(), Some(&inst.settings.name), &target.name)
            .await
            .ok()
            .map(|t| t.is_some_and(|t| t.id == target.id))
    }
}

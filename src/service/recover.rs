//! Recovery: settling what a dead process left unfinished, by asking InfluxDB, and only by id.
//! A token whose secret nobody can be sure to hold is withdrawn; an approved delete with no
//! outcome is settled (gone means done; still there means it never applied, so it runs now if
//! its approval is still valid); the pending action, its card and its requester follow.

use super::gated::{Executed, Operation};
use super::prune::Pruned;
use super::run::{Ran, deletion_result};
use super::{Instance, Sent, ServiceError, TokenService, blocking};
use crate::actor::Actor;
use crate::gate::{Pending, PendingId, PendingState};
use crate::store::{JournalEntry, JournalOp, LostAnswer, Notice, Stage};
use crate::tokens::TokenRef;

/// What one round of recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Entries settled.
    pub settled: usize,
    /// Entries claimed but not settled (InfluxDB could not be asked); tried again later.
    pub left: usize,
}

/// How many entries one round claims.
const ROUND: usize = 100;

impl TokenService {
    /// Claims and settles the unfinished work of processes that died or stopped renewing their
    /// claims. Safe to run from any number of processes at once: each entry has one claimer.
    pub async fn recover(&self) -> RecoveryReport {
        let store = self.store.clone();
        let instances: Vec<String> = self.instances().map(|i| i.name.clone()).collect();
        let claimed = match blocking(move || store.journal_claim(&instances, ROUND)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for unfinished operations");
                return RecoveryReport::default();
            }
        };
        for e in &claimed.unreadable {
            tracing::error!(error = %e, "an unreadable journal entry");
        }
        let mut report = RecoveryReport::default();
        for entry in claimed.entries {
            if self.settle(&entry).await {
                report.settled += 1;
            } else {
                // InfluxDB could not be asked: any process tries again later.
                self.journal_release(&entry.id).await;
                report.left += 1;
            }
        }
        report
    }

    /// Rounds of [`TokenService::recover`] until one is not full (or `stop`): a backlog left by
    /// a dead process is settled at once, not a round per maintenance tick. A round with an
    /// entry InfluxDB could not answer ends it, so an outage is not asked again and again.
    pub async fn recover_backlog(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> RecoveryReport {
        let mut total = RecoveryReport::default();
        loop {
            let report = self.recover().await;
            total.settled += report.settled;
            total.left += report.left;
            if report.settled < ROUND || stop.is_cancelled() {
                return total;
            }
        }
    }

    /// Settles one claimed entry; false if InfluxDB could not be asked.
    async fn settle(&self, entry: &JournalEntry) -> bool {
        let Ok(inst) = self.instance(Some(&entry.instance)) else {
            let why = format!(
                "instance {} is no longer configured; check it by hand",
                crate::shown::quoted(&entry.instance)
            );
            self.journal_step(&entry.id, move |e| {
                e.stage = Stage::Unknown;
                e.detail = Some(why);
            })
            .await;
            return true;
        };
        match &entry.op {
            JournalOp::Create { .. } => self.settle_create(inst, entry, false).await,
            JournalOp::Delete { .. } | JournalOp::Prune { .. } | JournalOp::Regenerate { .. } => {
                self.settle_gated(inst, entry).await
            }
        }
    }

    /// Withdraws the token of a create that may have happened but whose secret nobody can be
    /// sure to hold. Without an id (the answer was lost), a token holding the name with an id
    /// above the highest seen when the intent was written, made before the watch of its name
    /// ended (its `due_at`, if it has one), is this create's. On the `first_look` right after the
    /// answer was lost, finding none watches the name for [`super::LATE_WRITES`], in case
    /// InfluxDB applies the request late.
    pub(super) async fn settle_create(
        &self,
        inst: &Instance,
        entry: &JournalEntry,
        first_look: bool,
    ) -> bool {
        let JournalOp::Create {
            name,
            highest_before,
            id,
        } = &entry.op
        else {
            return true;
        };
        let id = match id {
            Some(id) => *id,
            None => match self
                .find_named(&Actor::system(), Some(&inst.settings.name), name)
                .await
            {
                Err(_) => return false,
                Ok(Some(t))
                    if highest_before.is_none_or(|h| t.id > h)
                        && entry.due_at.is_none_or(|end| t.created_at < end)
                        && !self.recorded_by_another(inst, t.id, entry).await =>
                {
                    t.id
                }
                Ok(_) if first_look => {
                    let (store, id, after) =
                        (self.store.clone(), entry.id.clone(), self.late_writes);
                    let watch = move || store.journal_watch(&id, after, LostAnswer::NoneFound);
                    if let Err(e) = blocking(watch).await {
                        tracing::warn!(error = %e, journal = %entry.id, "could not leave a lost create to recovery");
                    }
                    return true;
                }
                Ok(_) => {
                    let why = "InfluxDB never created it".to_owned();
                    self.journal_step(&entry.id, move |e| {
                        e.stage = Stage::Failed;
                        e.detail = Some(why);
                    })
                    .await;
                    return true;
                }
            },
        };
        let why = match (entry.stage, entry.lost) {
            (Stage::Delivering, _) => {
                "its secret was being handed over when tokenwarden stopped, so nobody can be sure to hold it"
            }
            (Stage::AwaitingLink, _) if entry.due_at.is_some_and(|due| due <= self.now()) => {
                "its one-time reveal link lapsed unopened"
            }
            (Stage::AwaitingLink, _) => "its one-time link died with the tokenwarden that made it",
            _ if first_look => {
                "InfluxDB's answer to its creation was lost, so its secret never arrived"
            }
            (_, Some(LostAnswer::NoneFound)) => {
                "InfluxDB's answer to its creation was lost and InfluxDB made it late, after tokenwarden had \
                 found no such token; its secret never arrived"
            }
            (_, Some(LostAnswer::Unsettled)) => {
                "InfluxDB's answer to its creation was lost, and tokenwarden could not delete it at once; \
                 its secret never arrived"
            }
            (_, None) => "tokenwarden stopped before its secret was handed over",
        };
        let target = TokenRef {
            name: name.clone(),
            id,
        };
        let system = Actor::system();
        if self
            .withdraw_as(&system, inst, "token.withdraw", entry, &target, why)
            .await
            .is_err()
        {
            return false;
        }
        let notice = Notice::Withdrawn {
            journal_id: entry.id.to_string(),
            owner: entry.actor.clone(),
            instance: inst.settings.name.clone(),
            name: name.to_string(),
            id,
            why: why.to_owned(),
        };
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.outbox_enqueue(&notice)).await {
            tracing::warn!(error = %e, "could not queue the notice of a withdrawn token");
        }
        true
    }

    /// Whether another create recorded token `id` as its own (then it is not this one's).
    async fn recorded_by_another(&self, inst: &Instance, id: u64, entry: &JournalEntry) -> bool {
        let (store, name, except) = (
            self.store.clone(),
            inst.settings.name.clone(),
            entry.id.clone(),
        );
        blocking(move || store.journal_id_recorded(&name, id, &except))
            .await
            .unwrap_or(true)
    }

    /// Settles a released delete, prune or regeneration and closes its pending action.
    async fn settle_gated(&self, inst: &Instance, entry: &JournalEntry) -> bool {
        let pending = match entry
            .pending_id
            .as_deref()
            .and_then(|p| PendingId::parse(p).ok())
        {
            Some(id) => self.pending(&id).await.ok(),
            None => None,
        };
        let Some(pending) = pending.filter(|p| p.state == PendingState::Executing) else {
            // Nothing released it, or it closed already: nothing may run now.
            let why =
                "its pending action is missing or already closed; nothing was done".to_owned();
            self.journal_step(&entry.id, move |e| {
                e.stage = Stage::Unknown;
                e.detail = Some(why);
            })
            .await;
            return true;
        };
        let ran = match &entry.op {
            JournalOp::Delete { target } => self.settle_delete(inst, &pending, target, entry).await,
            JournalOp::Prune { targets, settled } => {
                let rest: Vec<&TokenRef> = targets
                    .iter()
                    .filter(|t| !settled.contains(&t.id))
                    .collect();
                self.settle_prune(inst, &pending, &rest, entry).await
            }
            JournalOp::Regenerate { file, before } => {
                self.settle_regenerate(inst, file, before.as_deref()).await
            }
            JournalOp::Create { .. } => return true,
        };
        if !ran.settled {
            return false;
        }
        self.close_with(&Actor::system(), &pending, entry, &ran.result)
            .await;
        true
    }

    /// An approved delete without an outcome: gone means done. Still the same token: if its
    /// DELETE was never sent, it runs now while its approval is valid; if it was sent, it is
    /// never sent again (it may land late), and after the late-writes wait ([`super::LATE_WRITES`])
    /// without landing the delete closes as unconfirmed.
    async fn settle_delete(
        &self,
        inst: &Instance,
        pending: &Pending<Operation>,
        target: &TokenRef,
        entry: &JournalEntry,
    ) -> Ran {
        // The config may have changed since the approval: the policy still decides.
        if let Err(e) = self.may_delete(inst, &target.name) {
            return Ran::settled(Err(e));
        }
        match self.still_there(inst, target).await {
            None => Ran::unsettled(ServiceError::Internal("InfluxDB could not be asked".into())),
            Some(false) => Ran::settled(deletion_result(
                &inst.settings.name,
                target,
                super::Removal::Deleted,
            )),
            Some(true) => match self.sent_delete(&entry.sent, target.id).await {
                Sent::OnItsWay(_) => Ran::unsettled(ServiceError::Internal(
                    "waiting for a DELETE that may land late".into(),
                )),
                Sent::Lapsed(at) => Ran::settled(Err(unconfirmed(target, at))),
                Sent::Never if self.shared_now().await < pending.expires_at => {
                    match self.remove_if_still(inst, target, Some(&entry.id)).await {
                        Ok(removal) => {
                            Ran::settled(deletion_result(&inst.settings.name, target, removal))
                        }
                        Err(e) if e.kind() == super::ErrorKind::Unknown => Ran::unsettled(e),
                        Err(e) => Ran::settled(Err(e)),
                    }
                }
                Sent::Never => Ran::settled(Err(ServiceError::NeverApplied {
                    what: pending.action.describe(),
                })),
            },
        }
    }

    async fn settle_prune(
        &self,
        inst: &Instance,
        pending: &Pending<Operation>,
        rest: &[&TokenRef],
        entry: &JournalEntry,
    ) -> Ran {
        let valid = self.shared_now().await < pending.expires_at;
        let (mut deleted, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for target in rest {
            let name = target.name.to_string();
            match self.still_there(inst, target).await {
                None => {
                    return Ran::unsettled(ServiceError::Internal(
                        "InfluxDB could not be asked".into(),
                    ));
                }
                Some(false) => deleted.push(name),
                Some(true) => match self.sent_delete(&entry.sent, target.id).await {
                    Sent::OnItsWay(_) => {
                        return Ran::unsettled(ServiceError::Internal(
                            "waiting for a DELETE that may land late".into(),
                        ));
                    }
                    Sent::Lapsed(at) => failed.push((name, unconfirmed(target, at).to_string())),
                    Sent::Never if !valid => {
                        skipped.push((name, "its approval lapsed before it was deleted".to_owned()))
                    }
                    Sent::Never => match self.prune_one(inst, target, Some(&entry.id)).await {
                        Some(Pruned::Deleted) => deleted.push(name),
                        Some(Pruned::Skipped(why)) => skipped.push((name, why)),
                        Some(Pruned::Failed(why)) => failed.push((name, why)),
                        None => {
                            return Ran::unsettled(ServiceError::Internal(
                                "InfluxDB did not answer a delete".into(),
                            ));
                        }
                    },
                },
            }
        }
        Ran::settled(Ok(Executed::Pruned {
            instance: inst.settings.name.clone(),
            deleted,
            skipped,
            failed,
        }))
    }
}

/// The error that closes a delete whose DELETE of `target`, sent at `sent_at`, never landed.
fn unconfirmed(target: &TokenRef, sent_at: chrono::DateTime<chrono::Utc>) -> ServiceError {
    ServiceError::DeleteUnconfirmed {
        name: target.name.to_string(),
        id: target.id,
        sent_at: sent_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

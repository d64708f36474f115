//! The service's side of the journal: writing intents and stages off the async threads, the
//! ticket a parked secret carries, keeping this process's leases alive, and the test-only pause
//! points at which the crash tests kill a process.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{ServiceError, TokenService, blocking};
use crate::store::{JournalEntry, JournalId, KEEP_FINISHED, StoreError};

/// What a parked secret (a one-time link) reports back through: its journal entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    pub journal: JournalId,
}

/// How long an operation whose answer was lost waits before recovery looks at it again, so a
/// request InfluxDB applies late is seen.
pub const LATE_WRITES: Duration = Duration::from_secs(60);

/// How often a server renews its leases and looks for unfinished work of dead processes.
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(10);

/// How often a server forgets finished work older than [`KEEP_FINISHED`].
pub const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// In debug builds, stops at `point` when `TOKENWARDEN_TEST_PAUSE` names it, after saying so on
/// stderr: forever (the crash tests kill the process there), or for
/// `TOKENWARDEN_TEST_PAUSE_MS` milliseconds (a step made slow, as a busy store makes it).
/// Release builds never pause.
pub async fn pause_point(point: &str) {
    if cfg!(debug_assertions) && std::env::var("TOKENWARDEN_TEST_PAUSE").is_ok_and(|p| p == point) {
        eprintln!("tokenwarden: paused at {point}");
        match std::env::var("TOKENWARDEN_TEST_PAUSE_MS").map(|ms| ms.parse::<u64>()) {
            Ok(Ok(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => std::future::pending::<()>().await,
        }
    }
}

impl TokenService {
    /// Writes the intent of an operation; nothing reaches InfluxDB before it is stored.
    pub(super) async fn journal_begin(&self, e: &JournalEntry) -> Result<(), ServiceError> {
        let (store, e) = (self.store.clone(), e.clone());
        blocking(move || store.journal_begin(&e)).await
    }

    /// Moves entry `id` on. A failure is logged: the entry then stays for recovery to settle.
    pub(super) async fn journal_step(
        &self,
        id: &JournalId,
        f: impl FnOnce(&mut JournalEntry) + Send + 'static,
    ) -> Option<JournalEntry> {
        let (store, id2) = (self.store.clone(), id.clone());
        match blocking(move || store.journal_update(&id2, f)).await {
            Ok(e) => Some(e),
            Err(ServiceError::Store(StoreError::LostClaim { .. })) => {
                tracing::warn!(journal = %id, "another process took this operation over");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, journal = %id, "could not record a step of an operation; recovery will settle it");
                None
            }
        }
    }

    /// Leaves entry `id` to recovery (this process's or another's), after [`LATE_WRITES`]: an
    /// operation whose outcome one look could not settle.
    pub(super) async fn journal_release(&self, id: &JournalId) {
        let (store, id2, after) = (self.store.clone(), id.clone(), self.late_writes);
        if let Err(e) = blocking(move || store.journal_release(&id2, after)).await {
            tracing::warn!(error = %e, journal = %id, "could not leave an operation to recovery");
        }
    }

    /// Unsettled journal entries, whoever holds them (for `status` output and tests).
    pub async fn unfinished(&self) -> Result<Vec<JournalEntry>, ServiceError> {
        let store = self.store.clone();
        blocking(move || store.journal_unsettled()).await
    }

    /// Until `stop`: renews this process's leases every [`MAINTAIN_EVERY`], on its own, so
    /// nothing slow (a recovery waiting on InfluxDB) lets them lapse.
    pub async fn keep_leases(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(MAINTAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    let store = self.store.clone();
                    if let Err(e) = blocking(move || store.journal_renew()).await {
                        tracing::warn!(error = %e, "could not renew this process's leases");
                    }
                }
            }
        }
    }

    /// Until `stop`: settles work that dead processes left, every [`MAINTAIN_EVERY`], and
    /// forgets finished work older than [`KEEP_FINISHED`] every [`PRUNE_EVERY`]. Run
    /// [`TokenService::keep_leases`] beside it.
    pub async fn maintain(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(MAINTAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    let report = self.recover_backlog(&stop).await;
                    if report.settled > 0 || report.left > 0 {
                        tracing::info!(settled = report.settled, left = report.left, "recovery");
                    }
                }
                _ = prune.tick() => self.prune_finished().await,
            }
        }
    }

    /// Forgets settled operations, posted notices and closed actions older than
    /// [`KEEP_FINISHED`]; the audit log keeps their story.
    pub async fn prune_finished(&self) {
        let Some(before) = self.now().checked_sub_signed(KEEP_FINISHED) else {
            return;
        };
        let store = self.store.clone();
        match blocking(move || store.prune_finished(before)).await {
            Ok(p) if p == crate::store::Pruned::default() => {}
            Ok(p) => {
                if p.unsent_notices > 0 {
                    tracing::warn!(
                        notices = p.unsent_notices,
                        "dropped Discord notices that nobody sent within {} days (no Discord bot \
                         runs on this store)",
                        KEEP_FINISHED.num_days()
                    );
                }
                tracing::info!(
                    operations = p.operations,
                    notices = p.notices,
                    actions = p.actions,
                    "forgot finished work older than {} days",
                    KEEP_FINISHED.num_days()
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prune finished work; trying again later")
            }
        }
    }
}

//! Running what the gate released, under its journal entry: each run either settles the entry
//! (and then the pending action closes) or, when InfluxDB's answer was lost and one look cannot
//! tell, leaves both open for recovery, which settles them by asking InfluxDB by id.

use super::gated::{Executed, Operation};
use super::{Instance, Removal, ServiceError, TokenService, pause_point};
use crate::store::{JournalEntry, Stage};
use crate::tokens::{TokenName, TokenRef};

/// How a run ended: its result, and whether the operation is settled (else recovery settles it).
pub(super) struct Ran {
    pub result: Result<Executed, ServiceError>,
    pub settled: bool,
}

impl Ran {
    pub fn settled(result: Result<Executed, ServiceError>) -> Self {
        Self {
            result,
            settled: true,
        }
    }

    /// Not settled by this run, for `why`: recovery looks again later.
    pub fn unsettled(why: ServiceError) -> Self {
        Self {
            result: Err(why),
            settled: false,
        }
    }
}

/// The journal stage a settled result leaves.
pub(super) fn stage_of(result: &Result<Executed, ServiceError>) -> Stage {
    match result {
        Ok(Executed::Pruned { failed, .. }) if !failed.is_empty() => Stage::Failed,
        Ok(_) => Stage::Done,
        Err(e) if e.kind() == super::ErrorKind::Unknown => Stage::Unknown,
        Err(_) => Stage::Failed,
    }
}

/// What a deletion of `target` that the run itself made amounts to.
pub(super) fn deletion_result(
    instance: &str,
    target: &TokenRef,
    removal: Removal,
) -> Result<Executed, ServiceError> {
    match removal {
        Removal::Deleted => Ok(Executed::Deleted {
            instance: instance.to_owned(),
            name: target.name.clone(),
        }),
        Removal::Gone => Err(ServiceError::Vanished {
            name: target.name.to_string(),
            id: target.id,
        }),
        Removal::Replaced { now } => Err(ServiceError::Replaced {
            name: target.name.to_string(),
            was: target.id,
            now,
        }),
    }
}

impl TokenService {
    /// Runs `op` (released by the gate) under journal entry `entry`.
    pub(super) async fn run(&self, op: &Operation, entry: &JournalEntry) -> Ran {
        let ran = match self.instance(Some(op.instance())) {
            Err(e) => Ran::settled(Err(e)),
            Ok(inst) => match op {
                Operation::DeleteToken { name, id, .. } => {
                    self.run_delete(inst, name, *id, entry).await
                }
                Operation::PruneExpired { tokens, .. } => self.run_prune(inst, tokens, entry).await,
                Operation::RegenerateOperator { file, .. } => {
                    self.run_regenerate(inst, file, entry).await
                }
                Operation::Retired { was, .. } => {
                    Ran::settled(Err(ServiceError::Retired { was: was.clone() }))
                }
            },
        };
        if !ran.settled {
            self.journal_release(&entry.id).await;
        }
        ran
    }

    async fn run_delete(
        &self,
        inst: &Instance,
        name: &TokenName,
        id: u64,
        entry: &JournalEntry,
    ) -> Ran {
        // The config may have changed since the request: check the policy again.
        if let Err(e) = self.may_delete(inst, name) {
            return Ran::settled(Err(e));
        }
        let target = TokenRef {
            name: name.clone(),
            id,
        };
        pause_point("delete:before-call").await;
        match self.remove_if_still(inst, &target, Some(&entry.id)).await {
            Ok(removal) => {
                pause_point("delete:answered").await;
                Ran::settled(deletion_result(&inst.settings.name, &target, removal))
            }
            Err(e) if e.kind() == super::ErrorKind::Unknown => {
                // One look: if the token is gone, the delete applied.
                match self.still_there(inst, &target).await {
                    Some(false) => Ran::settled(deletion_result(
                        &inst.settings.name,
                        &target,
                        Removal::Deleted,
                    )),
                    _ => Ran::unsettled(e),
                }
            }
            Err(e) => Ran::settled(Err(e)),
        }
    }
}

//! `tokenwarden approvals`: see, approve and reject pending actions that need a person's
//! approval (for example deletes requested through MCP under an approval policy).

use serde_json::json;

use super::{Cli, CliError, print, print_json};
use crate::gate::{GateMode, PendingId};
use crate::service::{ApprovalResult, Executed};

impl Cli<'_> {
    pub async fn approvals_list(&self) -> Result<(), CliError> {
        let mut open = self.service.open_pending().await?;
        let now = self.service.now();
        open.retain(|p| p.expires_at > now && matches!(p.mode, GateMode::Approvals { .. }));
        if self.json {
            let rows: Vec<_> = open
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id.to_string(),
                        "operation": p.action.describe(),
                        "requested_by": p.requester.to_string(),
                        "reason": p.reason,
                        "approvals": p.approvals.len(),
                        "expires_at": p.expires_at,
                    })
                })
                .collect();
            print_json(&rows, true);
        } else if open.is_empty() {
            print("No pending approvals.");
        } else {
            for p in &open {
                let need = p.mode.required();
                // One line per request whatever its outside texts hold.
                print(crate::shown::shown(&format!(
                    "{}  {} (requested by {}{}; {} of {need} approvals; expires {})",
                    p.id,
                    p.action.describe(),
                    p.requester,
                    p.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    p.approvals.len(),
                    p.expires_at.format("%Y-%m-%d %H:%M UTC")
                )));
            }
        }
        Ok(())
    }

    pub async fn approvals_approve(&self, id: &str) -> Result<(), CliError> {
        let id = PendingId::parse(id).map_err(crate::service::ServiceError::from)?;
        let result = self.service.approve(&self.actor, &id).await?;
        match result {
            ApprovalResult::Recorded {
                have,
                need,
                pending,
            } => {
                if self.json {
                    print_json(
                        &json!({ "approved": pending.id.to_string(), "operation": pending.action.describe(),
                                 "approvals": have, "required": need }),
                        false,
                    );
                } else {
                    print(format!(
                        "Approval recorded for {} ({have} of {need}).",
                        pending.action.describe()
                    ));
                }
                Ok(())
            }
            ApprovalResult::Executed { pending, result } => match result? {
                Executed::Deleted { instance, name } => {
                    if self.json {
                        print_json(
                            &json!({ "approved": pending.id.to_string(), "deleted": name, "instance": instance }),
                            false,
                        );
                    } else {
                        print(format!(
                            "Approved ({}): deleted token {} on instance {}.",
                            pending.id,
                            crate::shown::quoted(name.as_str()),
                            crate::shown::quoted(&instance)
                        ));
                    }
                    Ok(())
                }
                regenerated @ Executed::Regenerated { .. } => {
                    self.report_regenerated(regenerated);
                    Ok(())
                }
                pruned @ Executed::Pruned { .. } => self.report_pruned(pruned),
            },
        }
    }

    pub async fn approvals_reject(&self, id: &str, reason: Option<String>) -> Result<(), CliError> {
        let id = PendingId::parse(id).map_err(crate::service::ServiceError::from)?;
        let p = self.service.reject(&self.actor, &id, reason).await?;
        if self.json {
            print_json(
                &json!({ "rejected": p.id.to_string(), "operation": p.action.describe() }),
                false,
            );
        } else {
            print(format!(
                "Rejected: {} will not happen.",
                p.action.describe()
            ));
        }
        Ok(())
    }
}

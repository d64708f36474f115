//! Background work and notices: expiring cards, posting cards for approvals requested elsewhere,
//! and sending the outbox (each closed action's card and its requester's one DM, and the owner of
//! each withdrawn token). Whichever process runs the bot sends them; a DM's nonce makes a resend
//! after a crash harmless.

use serenity::model::id::ChannelId;

use super::Bot;
use super::cards::{ADAPTER, target, token_line};
use super::requests::{INSTANCE_SHOWN, NAME_SHOWN};
use super::text::{FIELD_VALUE, code, plain};
use crate::actor::{Actor, ActorKind};
use crate::gate::{GateMode, Pending, PendingId, PendingState};
use crate::service::Operation;
use crate::store::Notice;

impl Bot {
    /// One round of background work: closes expired cards, and posts cards for approvals
    /// requested outside Discord (MCP under `approve_deletes`).
    pub async fn sweep(&self) {
        if let Err(e) = self.service.expire_due().await {
            tracing::warn!(error = %e, "could not expire pending actions");
        }
        self.flush_outbox().await;
        let Some(channel) = self.settings.approvals_channel_id else {
            return;
        };
        let open = match self.service.open_pending().await {
            Ok(open) => open,
            Err(e) => return tracing::warn!(error = %e, "could not read pending actions"),
        };
        let now = self.service.now();
        for p in open
            .into_iter()
            .filter(|p| matches!(p.mode, GateMode::Approvals { .. }) && p.expires_at > now)
        {
            if !matches!(
                self.service.claim_pending_ref(&p.id, ADAPTER).await,
                Ok(true)
            ) {
                continue;
            }
            let token = match &p.action {
                Operation::DeleteToken { instance, name, id } => self
                    .service
                    .find(&Actor::system(), Some(instance), name)
                    .await
                    .ok()
                    .filter(|t| t.id == *id)
                    .map(|t| token_line(&t)),
                _ => None,
            };
            if let Err(e) = self.post_card(&p, token, ChannelId::new(channel)).await {
                tracing::warn!(error = %e, id = %p.id, "could not post an approval card");
            }
        }
    }

    /// Sends what the outbox holds.
    pub(super) async fn flush_outbox(&self) {
        let items = match self.service.outbox_claim(50).await {
            Ok(items) => items,
            Err(e) => return tracing::warn!(error = %e, "could not read the outbox"),
        };
        for item in items {
            let sent = match &item.notice {
                Notice::PendingClosed { pending_id } => match PendingId::parse(pending_id) {
                    Ok(id) => match self.service.pending(&id).await {
                        Ok(p) => {
                            self.refresh_card(&p).await;
                            self.tell(&p.requester, &item.key, &closed_text(&p)).await
                        }
                        Err(_) => true,
                    },
                    Err(_) => true,
                },
                Notice::Withdrawn {
                    owner,
                    instance,
                    name,
                    id,
                    why,
                    ..
                } => {
                    let text = format!(
                        "Your new token {} (id {id}) on {} was deleted again: {}. Create it again if you still need it.",
                        code(name, NAME_SHOWN),
                        code(instance, INSTANCE_SHOWN),
                        plain(why, FIELD_VALUE)
                    );
                    self.tell(owner, &item.key, &text).await
                }
            };
            if sent && let Err(e) = self.service.outbox_sent(&item.key).await {
                tracing::warn!(error = %e, "could not mark a notice sent");
            }
        }
    }

    /// DMs `who` if they are a Discord user (true when done or nothing to do). The nonce,
    /// derived from the notice, lets Discord drop a duplicate.
    async fn tell(&self, who: &Actor, key: &str, text: &str) -> bool {
        if who.kind != ActorKind::Discord {
            return true;
        }
        let Ok(user) = who.id.parse::<u64>() else {
            return true;
        };
        match super::dm::send_dm_once(&self.http, user.into(), text, key).await {
            Ok(_) => true,
            Err(e) => {
                tracing::info!(error = %e, "could not tell a requester by DM");
                // A closed inbox will not open by retrying; give up on this notice.
                super::dm::is_closed(&e)
            }
        }
    }
}

/// The requester's DM about a closed action.
pub fn closed_text(p: &Pending<Operation>) -> String {
    let what = match &p.action {
        Operation::PruneExpired { .. } | Operation::DeleteToken { .. } => {
            format!("delete {}", target(&p.action))
        }
        Operation::RegenerateOperator { .. } => format!("regenerate {}", target(&p.action)),
        Operation::Retired { .. } => target(&p.action),
    };
    format!("Your request to {what}: {}.", outcome(p))
}

/// How a closed pending action ended, in words.
fn outcome(p: &Pending<Operation>) -> String {
    let why = |r: &str| plain(r, FIELD_VALUE);
    match &p.state {
        PendingState::Succeeded => "approved and done".to_owned(),
        PendingState::Failed { reason } => format!("approved, but it failed: {}", why(reason)),
        PendingState::Unknown { reason } => {
            format!("approved, but its outcome is unknown: {}", why(reason))
        }
        PendingState::Rejected { by, reason } => format!(
            "rejected by {}{}",
            plain(&by.name, NAME_SHOWN),
            reason
                .as_ref()
                .map(|r| format!(" ({})", why(r)))
                .unwrap_or_default()
        ),
        PendingState::Expired => "expired without enough approvals; nothing was done".to_owned(),
        PendingState::Open | PendingState::Executing => "still in progress".to_owned(),
    }
}

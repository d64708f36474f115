//! Approval cards: a message in the approvals channel for each pending delete, with Approve and
//! Reject buttons. Clicks are checked against roles, applied through the gate (which runs the
//! delete once), and the card is edited to show where things stand; expiry closes it.

use serde::{Deserialize, Serialize};
use serenity::builder::{
    CreateActionRow, CreateButton, CreateEmbed, CreateInteractionResponseFollowup, CreateMessage,
    EditMessage,
};
use serenity::model::application::{ButtonStyle, ComponentInteraction};
use serenity::model::id::{ChannelId, MessageId};

use super::{Bot, actor_of};
use crate::actor::{Actor, ActorKind};
use crate::gate::{GateError, GateMode, Pending, PendingId, PendingState};
use crate::service::{ApprovalResult, ExpiredToken, Operation, ServiceError};
use crate::store::Notice;
use crate::tokens::Token;

const ADAPTER: &str = "discord";
pub const APPROVE: &str = "tw:ok:";
pub const REJECT: &str = "tw:no:";

/// Where a card is, and the token as it was when requested.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CardRef {
    channel: u64,
    message: u64,
    token: Option<String>,
}

fn who(a: &Actor) -> String {
    match a.kind {
        ActorKind::Discord => format!("<@{}>", a.id),
        _ => format!("{} ({})", a.name, a.kind_label()),
    }
}

trait KindLabel {
    fn kind_label(&self) -> &'static str;
}

impl KindLabel for Actor {
    fn kind_label(&self) -> &'static str {
        match self.kind {
            ActorKind::Cli => "CLI",
            ActorKind::Mcp => "MCP",
            ActorKind::Discord => "Discord",
            ActorKind::System => "tokenwarden",
        }
    }
}

/// The names a prune covers, within an embed field's 1024 characters.
fn names_field(tokens: &[ExpiredToken]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let piece = format!("`{}` ({}) ", t.name, t.id);
        if out.len() + piece.len() > 980 {
            out.push_str(&format!("and {} more", tokens.len() - i));
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// One line about a token, for the card.
pub fn token_line(t: &Token) -> String {
    format!(
        "{} token, permissions `{}`, created {}, expires {}",
        t.kind,
        t.permissions.join(" "),
        t.created_at.format("%Y-%m-%d %H:%M UTC"),
        t.expiry.map_or("never".to_owned(), |e| e
            .format("%Y-%m-%d %H:%M UTC")
            .to_string())
    )
}

fn required(p: &Pending<Operation>) -> usize {
    p.mode.required()
}

/// The card's embed for the pending action as it stands.
fn embed(p: &Pending<Operation>, token: Option<&str>) -> CreateEmbed {
    let target = match &p.action {
        Operation::DeleteToken { instance, name, id } => {
            format!("token `{name}` (id {id}) on `{instance}`")
        }
        Operation::PruneExpired { instance, tokens } => {
            format!("{} expired tokens on `{instance}`", tokens.len())
        }
        Operation::RegenerateOperator { instance, .. } => {
            format!("the operator token of `{instance}`")
        }
        Operation::Retired { was, .. } => was.clone(),
    };
    let (title, colour) = match &p.state {
        PendingState::Open => (format!("Delete {target}?"), 0xE6_7E_22),
        PendingState::Executing => (format!("Deleting {target}…"), 0x34_98_DB),
        PendingState::Succeeded => (format!("Deleted {target}"), 0x2E_CC_71),
        PendingState::Failed { .. } => (format!("Deleting {target} failed"), 0xE7_4C_3C),
        PendingState::Unknown { .. } => (format!("Deleting {target}: outcome unknown"), 0x95_A5_A6),
        PendingState::Rejected { .. } => (format!("Rejected: delete {target}"), 0x95_A5_A6),
        PendingState::Expired => (format!("Expired: delete {target}"), 0x95_A5_A6),
    };
    let token = match &p.action {
        Operation::PruneExpired { tokens, .. } => Some(names_field(tokens)),
        _ => token.map(str::to_owned),
    };
    let token = token.as_deref();
    let approvals = if p.approvals.is_empty() {
        format!("0 of {}", required(p))
    } else {
        let names: Vec<String> = p.approvals.iter().map(|a| who(&a.by)).collect();
        format!(
            "{} of {}: {}",
            p.approvals.len(),
            required(p),
            names.join(", ")
        )
    };
    let mut e = CreateEmbed::new().title(title).colour(colour).field(
        "Requested by",
        who(&p.requester),
        true,
    );
    if let Some(t) = token {
        e = e.field(
            if matches!(p.action, Operation::PruneExpired { .. }) {
                "Tokens"
            } else {
                "Token"
            },
            t,
            false,
        );
    }
    if let Some(r) = &p.reason {
        e = e.field("Reason", r, false);
    }
    e = e.field("Approvals", approvals, true);
    e = match &p.state {
        PendingState::Open => e.field(
            "Expires",
            format!("<t:{}:R>", p.expires_at.timestamp()),
            true,
        ),
        PendingState::Failed { reason } | PendingState::Unknown { reason } => {
            e.field("Result", reason, false)
        }
        PendingState::Rejected { by, reason } => e.field(
            "Rejected by",
            format!(
                "{}{}",
                who(by),
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            false,
        ),
        PendingState::Expired => e.field(
            "Result",
            "Nobody approved it in time; nothing was deleted.",
            false,
        ),
        PendingState::Succeeded => {
            e.field("Result", "Deleted; clients using it no longer work.", false)
        }
        PendingState::Executing => e,
    };
    e.footer(serenity::builder::CreateEmbedFooter::new(format!(
        "pending action {}",
        p.id
    )))
}

fn buttons(p: &Pending<Operation>) -> Vec<CreateActionRow> {
    if p.state != PendingState::Open {
        return vec![];
    }
    vec![CreateActionRow::Buttons(vec![
        CreateButton::new(format!("{APPROVE}{}", p.id))
            .label("Approve")
            .style(ButtonStyle::Success),
        CreateButton::new(format!("{REJECT}{}", p.id))
            .label("Reject")
            .style(ButtonStyle::Danger),
    ])]
}

impl Bot {
    /// Posts the card for `p` in `channel` and remembers where it is.
    pub(super) async fn post_card(
        &self,
        p: &Pending<Operation>,
        token: Option<String>,
        channel: ChannelId,
    ) -> Result<MessageId, String> {
        let message = CreateMessage::new()
            .embed(embed(p, token.as_deref()))
            .components(buttons(p));
        let posted = channel
            .send_message(&self.http, message)
            .await
            .map_err(|e| format!("cannot post the approval card: {e}"))?;
        let card = CardRef {
            channel: channel.get(),
            message: posted.id.get(),
            token,
        };
        let value = serde_json::to_string(&card).unwrap_or_default();
        if let Err(e) = self.service.set_pending_ref(&p.id, ADAPTER, value).await {
            tracing::error!(error = %e, id = %p.id, "could not record an approval card");
        }
        Ok(posted.id)
    }

    /// Re-renders the card of `p`, if it has one. Editing a card is idempotent.
    async fn refresh_card(&self, p: &Pending<Operation>) {
        let card = match self.service.pending_ref(&p.id, ADAPTER).await {
            Ok(Some(v)) => serde_json::from_str::<CardRef>(&v).ok(),
            _ => None,
        };
        if let Some(card) = card {
            let edit = EditMessage::new()
                .embed(embed(p, card.token.as_deref()))
                .components(buttons(p));
            if let Err(e) = ChannelId::new(card.channel)
                .edit_message(&self.http, MessageId::new(card.message), edit)
                .await
            {
                tracing::warn!(error = %e, id = %p.id, "could not update an approval card");
            }
        }
    }

    /// Sends what the outbox holds: each closed action's card and its requester's one DM, and
    /// the owner of each withdrawn token. Whichever process runs the bot sends them; a DM's
    /// nonce makes a resend after a crash harmless.
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
                            self.tell(
                                &p.requester,
                                &item.key,
                                format!(
                                    "Your request to {}: {}.",
                                    p.action.describe(),
                                    outcome(&p)
                                ),
                            )
                            .await
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
                        "Your new token `{name}` (id {id}) on `{instance}` was deleted again: {why}. Create it again if you still need it."
                    );
                    self.tell(owner, &item.key, text).await
                }
            };
            if sent && let Err(e) = self.service.outbox_sent(&item.key).await {
                tracing::warn!(error = %e, "could not mark a notice sent");
            }
        }
    }

    /// DMs `who` if they are a Discord user (true when done or nothing to do). The nonce,
    /// derived from the notice, lets Discord drop a duplicate.
    async fn tell(&self, who: &Actor, key: &str, text: String) -> bool {
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

    /// A click on Approve or Reject; the initial answer (a deferred update) was sent already.
    pub(super) async fn click(&self, comp: ComponentInteraction, id: PendingId, approve: bool) {
        let actor = actor_of(&comp.user);
        let result = if approve {
            self.service.approve(&actor, &id).await.map(|r| match r {
                ApprovalResult::Recorded { pending, .. } => (pending, None),
                ApprovalResult::Executed { pending, result } => (pending, result.err()),
            })
        } else {
            let why = Some(format!("rejected in Discord by {}", actor.name));
            self.service
                .reject(&actor, &id, why)
                .await
                .map(|p| (p, None))
        };
        match result {
            Ok((pending, failure)) => {
                self.refresh_card(&pending).await;
                self.flush_outbox().await;
                if let Some(e) = failure {
                    self.whisper(&comp, format!("The delete ran and failed: {e}"))
                        .await;
                }
            }
            Err(e) => {
                if let ServiceError::Gate(GateError::Closed { .. } | GateError::Expired { .. }) = &e
                    && let Ok(p) = self.service.pending(&id).await
                {
                    self.refresh_card(&p).await;
                }
                self.whisper(&comp, e.to_string()).await;
            }
        }
    }

    /// An ephemeral follow-up to the person who clicked.
    async fn whisper(&self, comp: &ComponentInteraction, text: String) {
        let followup = CreateInteractionResponseFollowup::new()
            .content(text)
            .ephemeral(true);
        if let Err(e) = comp.create_followup(&self.http, followup).await {
            tracing::warn!(error = %e, "could not answer a button click");
        }
    }

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
}

/// How a closed pending action ended, in words.
fn outcome(p: &Pending<Operation>) -> String {
    match &p.state {
        PendingState::Succeeded => "approved and done".to_owned(),
        PendingState::Failed { reason } => format!("approved, but it failed: {reason}"),
        PendingState::Unknown { reason } => {
            format!("approved, but its outcome is unknown: {reason}")
        }
        PendingState::Rejected { by, reason } => {
            format!(
                "rejected by {}{}",
                by.name,
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        }
        PendingState::Expired => "expired without enough approvals; nothing was done".to_owned(),
        PendingState::Open | PendingState::Executing => "still in progress".to_owned(),
    }
}

/// Claims the card slot for a pending action created in Discord (so the sweeper does not post a second one).
pub(super) async fn claim(bot: &Bot, id: &PendingId) -> bool {
    matches!(bot.service.claim_pending_ref(id, ADAPTER).await, Ok(true))
}

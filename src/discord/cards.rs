//! Approval cards: a message in the approvals channel for each pending delete, with Approve and
//! Reject buttons. Clicks are checked against roles, applied through the gate (which runs the
//! delete once), and the card is edited to show where things stand; expiry closes it.

use serde::{Deserialize, Serialize};
use serenity::builder::{CreateActionRow, CreateButton, CreateEmbed};
use serenity::model::application::{ButtonStyle, ComponentInteraction};
use serenity::model::id::{ChannelId, MessageId};

use super::requests::{INSTANCE_SHOWN, NAME_SHOWN};
use super::text::{self, CONTENT, Embed, FIELD_VALUE, code, plain};
use super::{Bot, actor_of};
use crate::actor::{Actor, ActorKind};
use crate::gate::{GateError, Pending, PendingId, PendingState};
use crate::service::{ApprovalResult, ExpiredToken, Operation, ServiceError};
use crate::tokens::Token;

pub(super) const ADAPTER: &str = "discord";
pub const APPROVE: &str = "tw:ok:";
pub const REJECT: &str = "tw:no:";

/// Where a card is, and the token as it was when requested.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CardRef {
    channel: u64,
    message: u64,
    token: Option<String>,
}

/// Who did something: a Discord user as a mention (it pings nobody), anyone else by name.
fn who(a: &Actor) -> String {
    match (a.kind, a.id.parse::<u64>()) {
        (ActorKind::Discord, Ok(id)) => format!("<@{id}>"),
        _ => match &a.person {
            Some(p) => format!(
                "{} ({}: {})",
                plain(p, NAME_SHOWN),
                a.kind_label(),
                plain(&a.name, NAME_SHOWN)
            ),
            None => format!("{} ({})", plain(&a.name, NAME_SHOWN), a.kind_label()),
        },
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

/// The names a prune covers, within an embed field's limit.
fn names_field(tokens: &[ExpiredToken]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let piece = format!("{} ({}) ", code(t.name.as_str(), 60), t.id);
        if text::len(&out) + text::len(&piece) > FIELD_VALUE - 40 {
            out.push_str(&format!("and {} more", tokens.len() - i));
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// One line about a token, for the card and the creator.
pub fn token_line(t: &Token) -> String {
    format!(
        "{} token, permissions {}, created {}, expires {}",
        t.kind,
        code(&t.permissions.join(" "), 300),
        t.created_at.format("%Y-%m-%d %H:%M UTC"),
        t.expiry.map_or("never".to_owned(), |e| e
            .format("%Y-%m-%d %H:%M UTC")
            .to_string())
    )
}

fn required(p: &Pending<Operation>) -> usize {
    p.mode.required()
}

/// What a pending action acts on, in words (always with the token's id).
pub(super) fn target(action: &Operation) -> String {
    match action {
        Operation::DeleteToken { instance, name, id } => format!(
            "token {} (id {id}) on {}",
            code(name.as_str(), NAME_SHOWN),
            code(instance, INSTANCE_SHOWN)
        ),
        Operation::PruneExpired { instance, tokens } => format!(
            "{} expired tokens on {}",
            tokens.len(),
            code(instance, INSTANCE_SHOWN)
        ),
        Operation::RegenerateOperator { instance, .. } => {
            format!("the operator token of {}", code(instance, INSTANCE_SHOWN))
        }
        Operation::Retired { was, .. } => plain(was, NAME_SHOWN * 2),
    }
}

/// The card's embed for the pending action as it stands; `token` is a [`token_line`].
pub fn card_embed(p: &Pending<Operation>, token: Option<&str>) -> CreateEmbed {
    card(p, token).build()
}

fn card(p: &Pending<Operation>, token: Option<&str>) -> Embed {
    let target = target(&p.action);
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
    let mut e = Embed::new(title)
        .colour(colour)
        .field("Requested by", who(&p.requester), true);
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
        e = e.field("Reason", plain(r, FIELD_VALUE), false);
    }
    e = e.field("Approvals", approvals, true);
    e = match &p.state {
        PendingState::Open => {
            let at = p.expires_at.timestamp();
            e.field("Expires", format!("<t:{at}:f> (<t:{at}:R>)"), true)
        }
        PendingState::Failed { reason } | PendingState::Unknown { reason } => {
            e.field("Result", plain(reason, FIELD_VALUE), false)
        }
        PendingState::Rejected { by, reason } => e.field(
            "Rejected by",
            format!(
                "{}{}",
                who(by),
                reason
                    .as_ref()
                    .map(|r| format!(": {}", plain(r, FIELD_VALUE)))
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
    e.footer(format!("pending action {}", p.id))
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
        let message = text::card_message(card(p, token.as_deref()), buttons(p));
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
    pub(super) async fn refresh_card(&self, p: &Pending<Operation>) {
        let card = match self.service.pending_ref(&p.id, ADAPTER).await {
            Ok(Some(v)) => serde_json::from_str::<CardRef>(&v).ok(),
            _ => None,
        };
        if let Some(card) = card {
            let edit = text::card_edit(self::card(p, card.token.as_deref()), buttons(p));
            if let Err(e) = ChannelId::new(card.channel)
                .edit_message(&self.http, MessageId::new(card.message), edit)
                .await
            {
                tracing::warn!(error = %e, id = %p.id, "could not update an approval card");
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
            // The card and the requester's DM already say who rejected it.
            self.service
                .reject(&actor, &id, None)
                .await
                .map(|p| (p, None))
        };
        match result {
            Ok((pending, failure)) => {
                self.refresh_card(&pending).await;
                self.flush_outbox().await;
                if let Some(e) = failure {
                    let text = format!(
                        "The delete ran and failed: {}",
                        plain(&crate::discord::text::explain(&e), CONTENT)
                    );
                    self.whisper(&comp, &text).await;
                }
            }
            Err(e) => {
                if let ServiceError::Gate(GateError::Closed { .. } | GateError::Expired { .. }) = &e
                    && let Ok(p) = self.service.pending(&id).await
                {
                    self.refresh_card(&p).await;
                }
                let text = match &e {
                    ServiceError::Gate(GateError::Expired { at, .. }) => format!(
                        "This request expired at <t:{}:f>; nothing was done. Request it again if it is still needed.",
                        at.timestamp()
                    ),
                    other => plain(&other.to_string(), CONTENT),
                };
                self.whisper(&comp, &text).await;
            }
        }
    }

    /// An ephemeral follow-up to the person who clicked.
    async fn whisper(&self, comp: &ComponentInteraction, text: &str) {
        if let Err(e) = comp.create_followup(&self.http, text::followup(text)).await {
            tracing::warn!(error = %e, "could not answer a button click");
        }
    }
}

/// Claims the card slot for a pending action created in Discord (so the sweeper does not post a second one).
pub(super) async fn claim(bot: &Bot, id: &PendingId) -> bool {
    matches!(bot.service.claim_pending_ref(id, ADAPTER).await, Ok(true))
}

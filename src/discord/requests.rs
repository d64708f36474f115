//! What commands do once deferred: list a page, create a token (its secret by DM), and ask the
//! team to approve a delete or a prune. Every text names outside things through [`text`].

use std::sync::Arc;

use serenity::model::application::CommandInteraction;
use serenity::model::id::ChannelId;

use super::cards::{claim, token_line};
use super::dm::{DmDelivery, dm_error, send_dm};
use super::options::DeleteTarget;
use super::text::{self, CONTENT, code, plain};
use super::{Bot, actor_of};
use crate::actor::Actor;
use crate::service::{ApprovalPolicy, Channel, GatePolicy, Operation, PendingRequest, Request};
use crate::tokens::{ListFilter, NewToken, TokenName};

/// How much of a token or instance name a sentence shows (the id tells look-alikes apart).
pub const NAME_SHOWN: usize = 100;
pub const INSTANCE_SHOWN: usize = 48;

impl Bot {
    pub(super) async fn list(
        &self,
        cmd: CommandInteraction,
        instance: Option<String>,
        filter: ListFilter,
    ) {
        let edit = match self.first_page(&cmd.user, instance, filter).await {
            Ok((embed, rows)) => text::edit_embed(embed, rows),
            Err(e) => text::edit(&e),
        };
        self.edit(&cmd, edit).await;
    }

    pub(super) async fn create(
        &self,
        cmd: CommandInteraction,
        instance: Option<String>,
        new: NewToken,
    ) {
        let actor = actor_of(&cmd.user);
        let instance = self.service.instance_or_default(instance);
        let (name, shown_instance) = (
            code(new.name.as_str(), NAME_SHOWN),
            code(&instance, INSTANCE_SHOWN),
        );
        let probe = format!(
            "Creating token {name} on {shown_instance} for you; its secret follows in this conversation."
        );
        let channel = match send_dm(&self.http, cmd.user.id, &probe).await {
            Ok(c) => c,
            Err(e) => {
                let text = format!(
                    "Nothing was created: I need to send you the secret by DM, but {}.",
                    plain(&dm_error(&e), CONTENT)
                );
                return self.edit(&cmd, text::edit(&text)).await;
            }
        };
        let delivery = DmDelivery {
            http: Arc::clone(&self.http),
            channel,
            instance: instance.clone(),
        };
        let text = match self
            .service
            .create(&actor, Some(&instance), new, &delivery)
            .await
        {
            Ok(done) => format!(
                "Created token {} (id {}) on {shown_instance} ({}). Its secret was sent to your DMs.",
                code(&done.token.name, NAME_SHOWN),
                done.token.id,
                token_line(&done.token)
            ),
            Err(e) => format!(
                "Could not create the token: {}",
                plain(&crate::discord::text::explain(&e), CONTENT)
            ),
        };
        self.edit(&cmd, text::edit(&text)).await;
    }

    /// Opens `request` for the team's approval, as the core's gate protocol decides.
    async fn ask_for(
        &self,
        actor: &Actor,
        request: &Request,
        reason: Option<String>,
    ) -> Result<Option<PendingRequest>, crate::service::ServiceError> {
        let s = &self.settings;
        let policy = GatePolicy {
            approvals: Some(ApprovalPolicy {
                required: s.required_approvals,
                allow_self: s.allow_self_approval,
                ttl: s.approval_timeout,
                approve_from: s.approve_from.clone(),
            }),
        };
        let opened = self
            .service
            .begin(actor, request, Channel::Team, policy, reason, None)
            .await?;
        Ok(opened.map(|o| o.request))
    }

    /// The name of the token `target` means now, and the id it must still have.
    async fn resolve(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        target: DeleteTarget,
    ) -> Result<(TokenName, Option<u64>), String> {
        let id = match target {
            DeleteTarget::Name(name) => return Ok((name, None)),
            DeleteTarget::Id(id) => id,
        };
        match self.service.find_by_id(actor, instance, id).await {
            Ok(Some(token)) => TokenName::parse(&token.name)
                .map(|name| (name, Some(id)))
                .map_err(|e| plain(&e.to_string(), CONTENT)),
            Ok(None) => Err(format!(
                "no token with id {id} exists on {}; nothing was requested",
                code(
                    &self
                        .service
                        .instance_or_default(instance.map(str::to_owned)),
                    INSTANCE_SHOWN
                )
            )),
            Err(e) => Err(plain(&crate::discord::text::explain(&e), CONTENT)),
        }
    }

    pub(super) async fn request_delete(
        &self,
        cmd: CommandInteraction,
        instance: Option<String>,
        target: DeleteTarget,
        reason: Option<String>,
    ) {
        let actor = actor_of(&cmd.user);
        let (name, expected) = match self.resolve(&actor, instance.as_deref(), target).await {
            Ok(found) => found,
            Err(e) => {
                return self
                    .edit(&cmd, text::edit(&format!("Cannot delete: {}", e)))
                    .await;
            }
        };
        let asked = Request::Delete {
            instance: self.service.instance_or_default(instance),
            name: name.clone(),
        };
        let request = match self.ask_for(&actor, &asked, reason).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                let text = format!(
                    "Cannot delete: {}",
                    plain(&crate::discord::text::explain(&e), CONTENT)
                );
                return self.edit(&cmd, text::edit(&text)).await;
            }
        };
        let bound = match &request.pending.action {
            Operation::DeleteToken { id, .. } => Some(*id),
            _ => None,
        };
        if expected.is_some() && bound != expected {
            // The name passed to another token between the lookup and the request.
            let why = "the name now belongs to another token".to_owned();
            let _ = self
                .service
                .reject(&actor, &request.pending.id, Some(why))
                .await;
            let text = format!(
                "Nothing was requested: token {} changed while asking; run the command again.",
                code(name.as_str(), NAME_SHOWN)
            );
            return self.edit(&cmd, text::edit(&text)).await;
        }
        let what = format!(
            "deleting {} (id {})",
            code(name.as_str(), NAME_SHOWN),
            bound.unwrap_or_default()
        );
        self.ask_team(&cmd, &actor, request, what).await;
    }

    pub(super) async fn request_prune(&self, cmd: CommandInteraction, instance: Option<String>) {
        let actor = actor_of(&cmd.user);
        let asked = Request::Prune {
            instance: self.service.instance_or_default(instance),
        };
        let text = match self
            .ask_for(&actor, &asked, Some("expired tokens".into()))
            .await
        {
            Ok(Some(request)) => {
                let n = request.expired.len();
                let what = format!(
                    "deleting {n} expired {}",
                    if n == 1 { "token" } else { "tokens" }
                );
                return self.ask_team(&cmd, &actor, request, what).await;
            }
            Ok(None) => "There are no expired tokens to prune (protected tokens are never pruned)."
                .to_owned(),
            Err(e) => format!(
                "Cannot prune: {}",
                plain(&crate::discord::text::explain(&e), CONTENT)
            ),
        };
        self.edit(&cmd, text::edit(&text)).await;
    }

    /// Posts the approval card for `request` and tells the requester where it is.
    async fn ask_team(
        &self,
        cmd: &CommandInteraction,
        actor: &Actor,
        request: PendingRequest,
        what: String,
    ) {
        let s = &self.settings;
        let channel = s
            .approvals_channel_id
            .map_or(cmd.channel_id, ChannelId::new);
        let text = if claim(self, &request.pending.id).await {
            match self
                .post_card(
                    &request.pending,
                    request.token.as_ref().map(token_line),
                    channel,
                )
                .await
            {
                Ok(_) => format!(
                    "Asked for approval in <#{channel}>: {what} needs {} approval(s) from another team member \
                     before <t:{}:f>. You will get a DM with the outcome.",
                    s.required_approvals,
                    request.pending.expires_at.timestamp()
                ),
                Err(e) => {
                    let _ = self
                        .service
                        .reject(actor, &request.pending.id, Some(e.clone()))
                        .await;
                    format!("Nothing was requested: {}", plain(&e, CONTENT))
                }
            }
        } else {
            "The approval card is being posted.".to_owned()
        };
        self.edit(cmd, text::edit(&text)).await;
    }
}

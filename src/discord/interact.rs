//! Dispatching interactions: commands, button clicks and autocomplete. Every answer that needs
//! InfluxDB is deferred at once and completed later, so Discord's 3-second limit always holds.

use std::sync::Arc;

use serenity::builder::{CreateInteractionResponse, EditInteractionResponse};
use serenity::model::application::{CommandInteraction, ComponentInteraction, Interaction};
use serenity::model::id::ChannelId;

use super::cards::{APPROVE, REJECT, claim, token_line};
use super::dm::{DmDelivery, dm_error, send_dm};
use super::listing::PAGE_PREFIX;
use super::options::{list_filter, new_token, subcommand};
use super::{Access, Bot, Capability, Reply, actor_of, deferred, ephemeral};
use crate::gate::PendingId;
use crate::service::{ApprovalPolicy, Channel, GatePolicy, PendingRequest, Request};
use crate::tokens::{ListFilter, NewToken, TokenName};

impl Bot {
    /// The answer to one interaction.
    pub async fn handle(self: &Arc<Self>, interaction: Interaction) -> Reply {
        match interaction {
            Interaction::Ping(_) => Reply::now(CreateInteractionResponse::Pong),
            Interaction::Command(cmd) => self.command(cmd),
            Interaction::Component(comp) => self.component(comp),
            Interaction::Autocomplete(ac) => Reply::now(self.autocomplete(&ac).await),
            _ => Reply::now(ephemeral(
                "tokenwarden does not handle this kind of interaction.",
            )),
        }
    }

    pub(super) fn allowed(
        &self,
        cap: Capability,
        cmd_user: &serenity::model::user::User,
        member: Option<&serenity::model::guild::Member>,
    ) -> bool {
        self.settings.access.allows(cap, cmd_user, member)
    }

    fn command(self: &Arc<Self>, cmd: CommandInteraction) -> Reply {
        if cmd.guild_id.is_none() || cmd.member.is_none() {
            return Reply::now(ephemeral(
                "tokenwarden's commands work in servers only, not in direct messages.",
            ));
        }
        let Some((sub, args)) = subcommand(&cmd).filter(|_| cmd.data.name == "token") else {
            return Reply::now(ephemeral(
                "Unknown command; run `tokenwarden discord register` again to update it.",
            ));
        };
        let cap = match sub.as_str() {
            "list" => Capability::List,
            "create-admin" | "create-resource" => Capability::Create,
            "delete" | "prune-expired" => Capability::Delete,
            _ => {
                return Reply::now(ephemeral(
                    "Unknown subcommand; run `tokenwarden discord register` again to update it.",
                ));
            }
        };
        if !self.allowed(cap, &cmd.user, cmd.member.as_deref()) {
            return Reply::now(ephemeral(Access::refusal(cap)));
        }
        let instance = args.get("instance").cloned();
        let bot = Arc::clone(self);
        match sub.as_str() {
            "list" => {
                let filter = match list_filter(&args) {
                    Ok(f) => f,
                    Err(e) => return Reply::now(ephemeral(e.to_string())),
                };
                Reply::then(
                    deferred(),
                    async move { bot.list(cmd, instance, filter).await },
                )
            }
            "prune-expired" => {
                Reply::then(
                    deferred(),
                    async move { bot.request_prune(cmd, instance).await },
                )
            }
            "delete" => match TokenName::parse(args.get("name").map_or("", String::as_str)) {
                Ok(name) => Reply::then(deferred(), async move {
                    bot.request_delete(cmd, instance, name, args.get("reason").cloned())
                        .await
                }),
                Err(e) => Reply::now(ephemeral(e.to_string())),
            },
            _ => match new_token(&sub, &args, self.service.now()) {
                Ok(new) => Reply::then(
                    deferred(),
                    async move { bot.create(cmd, instance, new).await },
                ),
                Err(e) => Reply::now(ephemeral(e.to_string())),
            },
        }
    }

    async fn edit(&self, cmd: &CommandInteraction, edit: EditInteractionResponse) {
        if let Err(e) = cmd.edit_response(&self.http, edit).await {
            tracing::warn!(error = %e, "could not complete a deferred Discord response");
        }
    }

    async fn list(&self, cmd: CommandInteraction, instance: Option<String>, filter: ListFilter) {
        let id = self.keep_list(&cmd.user, instance, filter);
        let edit = match self.list_view(&id, 0).await {
            Ok((embed, rows)) => EditInteractionResponse::new().embed(embed).components(rows),
            Err(e) => EditInteractionResponse::new().content(e),
        };
        self.edit(&cmd, edit).await;
    }

    async fn create(&self, cmd: CommandInteraction, instance: Option<String>, new: NewToken) {
        let actor = actor_of(&cmd.user);
        let instance = self.service.instance_or_default(instance);
        let probe = format!(
            "Creating token `{}` on `{instance}` for you; its secret follows in this conversation.",
            new.name
        );
        let channel = match send_dm(&self.http, cmd.user.id, probe).await {
            Ok(c) => c,
            Err(e) => {
                let text = format!(
                    "Nothing was created: I need to send you the secret by DM, but {}.",
                    dm_error(&e)
                );
                return self
                    .edit(&cmd, EditInteractionResponse::new().content(text))
                    .await;
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
                "Created token `{}` on `{instance}` ({}). Its secret was sent to your DMs.",
                done.token.name,
                token_line(&done.token)
            ),
            Err(e) => format!("Could not create the token: {e}"),
        };
        self.edit(&cmd, EditInteractionResponse::new().content(text))
            .await;
    }

    /// Opens `request` for the team's approval, as the core's gate protocol decides.
    async fn ask_for(
        &self,
        actor: &crate::actor::Actor,
        request: &Request,
        reason: Option<String>,
    ) -> Result<Option<PendingRequest>, crate::service::ServiceError> {
        let s = &self.settings;
        let policy = GatePolicy {
            approvals: Some(ApprovalPolicy {
                required: s.required_approvals,
                allow_self: s.allow_self_approval,
                ttl: s.approval_timeout,
            }),
        };
        let opened = self
            .service
            .begin(actor, request, Channel::Team, policy, reason, None)
            .await?;
        Ok(opened.map(|o| o.request))
    }

    async fn request_delete(
        &self,
        cmd: CommandInteraction,
        instance: Option<String>,
        name: TokenName,
        reason: Option<String>,
    ) {
        let actor = actor_of(&cmd.user);
        let request = Request::Delete {
            instance: self.service.instance_or_default(instance),
            name: name.clone(),
        };
        match self.ask_for(&actor, &request, reason).await {
            Ok(Some(request)) => {
                self.ask_team(&cmd, &actor, request, format!("deleting `{name}`"))
                    .await
            }
            Ok(None) => {}
            Err(e) => {
                self.edit(
                    &cmd,
                    EditInteractionResponse::new().content(format!("Cannot delete: {e}")),
                )
                .await
            }
        }
    }

    async fn request_prune(&self, cmd: CommandInteraction, instance: Option<String>) {
        let actor = actor_of(&cmd.user);
        let request = Request::Prune {
            instance: self.service.instance_or_default(instance),
        };
        match self
            .ask_for(&actor, &request, Some("expired tokens".into()))
            .await
        {
            Ok(Some(request)) => {
                let what = format!("deleting {} expired tokens", request.expired.len());
                self.ask_team(&cmd, &actor, request, what).await;
            }
            Ok(None) => {
                let text =
                    "There are no expired tokens to prune (protected tokens are never pruned).";
                self.edit(&cmd, EditInteractionResponse::new().content(text))
                    .await;
            }
            Err(e) => {
                self.edit(
                    &cmd,
                    EditInteractionResponse::new().content(format!("Cannot prune: {e}")),
                )
                .await
            }
        }
    }

    /// Posts the approval card for `request` and tells the requester where it is.
    async fn ask_team(
        &self,
        cmd: &CommandInteraction,
        actor: &crate::actor::Actor,
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
                     before <t:{}:t>. You will get a DM with the outcome.",
                    s.required_approvals,
                    request.pending.expires_at.timestamp()
                ),
                Err(e) => {
                    let _ = self
                        .service
                        .reject(actor, &request.pending.id, Some(e.clone()))
                        .await;
                    format!("Nothing was requested: {e}")
                }
            }
        } else {
            "The approval card is being posted.".to_owned()
        };
        self.edit(cmd, EditInteractionResponse::new().content(text))
            .await;
    }

    fn component(self: &Arc<Self>, comp: ComponentInteraction) -> Reply {
        let id = comp.data.custom_id.clone();
        if let Some(rest) = id.strip_prefix(PAGE_PREFIX) {
            let page = rest
                .rsplit_once(':')
                .and_then(|(list, p)| Some((list.to_owned(), p.parse::<usize>().ok()?)));
            let Some((list, page)) =
                page.filter(|(list, _)| self.owns_list(list, comp.user.id.get()))
            else {
                return Reply::now(ephemeral("This list expired; run /token list again."));
            };
            let bot = Arc::clone(self);
            return Reply::then(CreateInteractionResponse::Acknowledge, async move {
                let edit = match bot.list_view(&list, page).await {
                    Ok((embed, rows)) => {
                        EditInteractionResponse::new().embed(embed).components(rows)
                    }
                    Err(e) => EditInteractionResponse::new().content(e).components(vec![]),
                };
                if let Err(e) = comp.edit_response(&bot.http, edit).await {
                    tracing::warn!(error = %e, "could not show another page");
                }
            });
        }
        let (approve, pending) = match (id.strip_prefix(APPROVE), id.strip_prefix(REJECT)) {
            (Some(p), _) => (true, p),
            (_, Some(p)) => (false, p),
            _ => {
                return Reply::now(ephemeral(
                    "This button is not tokenwarden's, or it is outdated.",
                ));
            }
        };
        let Ok(pending) = PendingId::parse(pending) else {
            return Reply::now(ephemeral(
                "This button is not tokenwarden's, or it is outdated.",
            ));
        };
        if comp.guild_id.is_none()
            || !self.allowed(Capability::Approve, &comp.user, comp.member.as_ref())
        {
            return Reply::now(ephemeral(Access::refusal(Capability::Approve)));
        }
        let bot = Arc::clone(self);
        Reply::then(CreateInteractionResponse::Acknowledge, async move {
            bot.click(comp, pending, approve).await
        })
    }
}

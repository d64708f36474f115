//! Dispatching interactions: commands, button clicks and autocomplete. A replayed interaction is
//! answered once and ignored; everything is parsed and checked before anything is sent; every
//! answer that needs InfluxDB is deferred at once and completed later, so Discord's 3-second limit
//! always holds. A panic anywhere in that still answers (see `guard`).

use std::sync::Arc;

use serenity::builder::{CreateInteractionResponse, EditInteractionResponse};
use serenity::model::application::{CommandInteraction, ComponentInteraction, Interaction};
use serenity::model::id::InteractionId;

use super::cards::{APPROVE, REJECT};
use super::guard::{Origin, guarded};
use super::listing::PAGE_PREFIX;
use super::options::{delete_target, list_filter, new_token, subcommand};
use super::text::{self, CONTENT};
use super::{Access, Bot, Capability, Reply, deferred, ephemeral};
use crate::gate::PendingId;

/// What a replayed interaction gets.
const REPLAYED: &str = "This interaction was already handled; nothing more was done.";
/// What a page button of a lapsed, unknown or someone else's listing gets.
const LIST_EXPIRED: &str = "This list expired; run /token list again.";

impl Bot {
    /// The answer to one interaction; a panic while handling it is answered as an error too.
    pub async fn handle(self: &Arc<Self>, interaction: Interaction) -> Reply {
        let origin = Origin::of(&interaction);
        guarded(Arc::clone(&self.http), origin, self.dispatch(interaction)).await
    }

    async fn dispatch(self: &Arc<Self>, interaction: Interaction) -> Reply {
        match interaction {
            Interaction::Ping(_) => Reply::now(CreateInteractionResponse::Pong),
            Interaction::Command(cmd) => match self.replayed(cmd.id).await {
                Some(reply) => reply,
                None => self.command(cmd),
            },
            Interaction::Component(comp) => match self.replayed(comp.id).await {
                Some(reply) => reply,
                None => self.component(comp).await,
            },
            Interaction::Autocomplete(ac) => Reply::now(self.autocomplete(&ac).await),
            _ => Reply::now(ephemeral(
                "tokenwarden does not handle this kind of interaction.",
            )),
        }
    }

    /// The answer to an interaction seen before (a replayed request), or `None` the first time.
    async fn replayed(&self, id: InteractionId) -> Option<Reply> {
        match self
            .service
            .first_sighting(&format!("discord:{}", id.get()))
            .await
        {
            Ok(true) => None,
            Ok(false) => Some(Reply::now(ephemeral(REPLAYED))),
            Err(e) => {
                tracing::error!(error = %e, "could not record an interaction id");
                Some(Reply::now(ephemeral(
                    "tokenwarden cannot reach its store right now; nothing was done. Try again in a moment.",
                )))
            }
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
            return Reply::now(ephemeral(&Access::refusal(cap)));
        }
        let refuse = |e: &dyn std::fmt::Display| {
            Reply::now(ephemeral(&text::plain(&e.to_string(), CONTENT)))
        };
        let instance = args.get("instance").cloned();
        if let Err(e) = self.service.check_instance(instance.as_deref()) {
            return refuse(&e);
        }
        let bot = Arc::clone(self);
        match sub.as_str() {
            "list" => match list_filter(&args) {
                Ok(filter) => {
                    Reply::then(
                        deferred(),
                        async move { bot.list(cmd, instance, filter).await },
                    )
                }
                Err(e) => refuse(&e),
            },
            "prune-expired" => {
                Reply::then(
                    deferred(),
                    async move { bot.request_prune(cmd, instance).await },
                )
            }
            "delete" => match delete_target(args.get("name").map_or("", String::as_str)) {
                Ok(target) => Reply::then(deferred(), async move {
                    bot.request_delete(cmd, instance, target, args.get("reason").cloned())
                        .await
                }),
                Err(e) => refuse(&e),
            },
            _ => match new_token(&sub, &args, self.service.now()) {
                Ok(new) => Reply::then(
                    deferred(),
                    async move { bot.create(cmd, instance, new).await },
                ),
                Err(e) => refuse(&e),
            },
        }
    }

    /// Replaces "thinking…" with `edit`.
    pub(super) async fn edit(&self, cmd: &CommandInteraction, edit: EditInteractionResponse) {
        if let Err(e) = cmd.edit_response(&self.http, edit).await {
            tracing::warn!(error = %e, "could not complete a deferred Discord response");
        }
    }

    async fn component(self: &Arc<Self>, comp: ComponentInteraction) -> Reply {
        let id = comp.data.custom_id.clone();
        if let Some(rest) = id.strip_prefix(PAGE_PREFIX) {
            if comp.guild_id.is_none()
                || !self.allowed(Capability::List, &comp.user, comp.member.as_ref())
            {
                return Reply::now(ephemeral(&Access::refusal(Capability::List)));
            }
            let page = rest
                .rsplit_once(':')
                .and_then(|(list, p)| Some((list.to_owned(), p.parse::<usize>().ok()?)));
            let Some((list, page)) = page else {
                return Reply::now(ephemeral(LIST_EXPIRED));
            };
            let listing = match self.listing_of(&comp.user, &list).await {
                Ok(Some(listing)) => listing,
                Ok(None) => return Reply::now(ephemeral(LIST_EXPIRED)),
                Err(e) => return Reply::now(ephemeral(&e)),
            };
            let bot = Arc::clone(self);
            return Reply::then(CreateInteractionResponse::Acknowledge, async move {
                let edit = match bot.list_view(&comp.user, &list, &listing, page).await {
                    Ok((embed, rows)) => text::edit_embed(embed, rows),
                    Err(e) => text::edit(&e).components(vec![]),
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
            return Reply::now(ephemeral(&Access::refusal(Capability::Approve)));
        }
        let bot = Arc::clone(self);
        Reply::then(CreateInteractionResponse::Acknowledge, async move {
            bot.click(comp, pending, approve).await
        })
    }
}

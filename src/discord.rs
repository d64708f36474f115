//! The Discord bot: `/token` slash commands over the core. New secrets go to the caller by
//! direct message; deletes post an approval card that other team members approve or reject;
//! the caller's roles are checked on every command and every click. Runs as a gateway bot or
//! as an HTTP interactions endpoint with verified requests.

mod access;
mod cards;
mod commands;
mod dm;
mod endpoint;
mod gateway;
mod guard;
mod interact;
mod listing;
mod notices;
mod options;
mod requests;
mod suggest;
pub mod text;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serenity::builder::{CreateInteractionResponse, CreateInteractionResponseMessage};
use serenity::http::{Http, HttpBuilder};
use serenity::model::id::ApplicationId;
use serenity::model::user::User;
use tokio_util::sync::CancellationToken;

pub use access::{Access, Capability};
pub use cards::card_embed;
pub use commands::{register, token_command};
pub use dm::secret_text;
pub use endpoint::{interactions_router, serve_interactions, serve_interactions_on};
pub use gateway::run_gateway;
pub use listing::list_embed;
pub use notices::closed_text;
pub use suggest::name_choice;

use crate::actor::Actor;
use crate::http_serve::HttpLimits;
use crate::service::TokenService;
use crate::tokens::RawToken;

/// The public Discord API; any other `api_base` is a proxy or a local fake.
pub const DISCORD_API: &str = "https://discord.com";

/// The bot's configuration.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    pub application_id: u64,
    /// For the interactions endpoint: the application's Ed25519 public key.
    pub public_key: Option<[u8; 32]>,
    pub api_base: String,
    /// Guilds to register commands in; empty registers them globally.
    pub guild_ids: Vec<u64>,
    /// Where approval cards go; the invoking channel when `None`.
    pub approvals_channel_id: Option<u64>,
    pub approval_timeout: Duration,
    pub required_approvals: u8,
    pub allow_self_approval: bool,
    /// The adapters approvals of requests made in Discord may come through.
    pub approve_from: Vec<crate::actor::ActorKind>,
    pub access: Access,
    /// How often expired cards are closed and new MCP approval requests are posted.
    pub poll_interval: Duration,
    /// What a member needs to see `/token` until a server admin allows roles under
    /// Integrations; empty (the default) shows it to administrators only.
    pub default_member_permissions: serenity::model::Permissions,
    /// Timeouts and the connection cap of the interactions endpoint.
    pub endpoint_limits: HttpLimits,
}

/// Why the bot could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    #[error(
        "the interactions endpoint needs [discord] public_key (the application's Ed25519 key, in hex)"
    )]
    NoPublicKey,
    #[error("[discord] public_key is not a valid Ed25519 public key")]
    BadPublicKey,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("Discord refused the command registration: {0}")]
    Register(String),
    #[error(
        "the Discord gateway connection failed: {0}. Check the bot token and [discord] api_base"
    )]
    Gateway(#[source] Box<serenity::Error>),
}

/// What to answer an interaction with now, and what to do after that answer was sent.
pub struct Reply {
    pub initial: CreateInteractionResponse,
    pub later: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Reply {
    fn now(initial: CreateInteractionResponse) -> Self {
        Self {
            initial,
            later: None,
        }
    }

    fn then(
        initial: CreateInteractionResponse,
        later: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            initial,
            later: Some(Box::pin(later)),
        }
    }
}

/// An ephemeral message (only the caller sees it), of text made safe with [`text`].
fn ephemeral(text: &str) -> CreateInteractionResponse {
    text::reply(text)
}

/// "Thinking…", visible only to the caller; the answer follows as an edit.
fn deferred() -> CreateInteractionResponse {
    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true))
}

/// The actor for a Discord user.
fn actor_of(user: &User) -> Actor {
    let name = user
        .global_name
        .clone()
        .unwrap_or_else(|| user.name.clone());
    Actor::discord(user.id.get(), &name)
}

/// The bot: the core, a REST client and the settings, shared by every interaction.
pub struct Bot {
    service: Arc<TokenService>,
    http: Arc<Http>,
    settings: Arc<DiscordSettings>,
}

/// A REST client for the bot: the application id set (for interaction webhooks), and a non-default
/// `api_base` as a proxy. serenity applies a proxy only with its rate limiter off (otherwise it
/// would still call discord.com), so a custom `api_base` also turns the rate limiter off.
pub fn rest_client(settings: &DiscordSettings, bot_token: &RawToken) -> Http {
    let mut builder = HttpBuilder::new(bot_token.expose());
    if let Some(app) = std::num::NonZeroU64::new(settings.application_id) {
        builder = builder.application_id(ApplicationId::from(app));
    }
    let base = settings.api_base.trim_end_matches('/');
    if base != DISCORD_API {
        builder = builder.proxy(base).ratelimiter_disabled(true);
    }
    builder.build()
}

impl Bot {
    pub fn new(
        service: Arc<TokenService>,
        settings: DiscordSettings,
        bot_token: &RawToken,
    ) -> Arc<Self> {
        let http = Arc::new(rest_client(&settings, bot_token));
        Arc::new(Self {
            service,
            http,
            settings: Arc::new(settings),
        })
    }

    pub fn http(&self) -> &Arc<Http> {
        &self.http
    }

    /// Closes expired approval cards and posts cards for approvals requested elsewhere (MCP),
    /// every `poll_interval`, until `stop`.
    pub async fn run_background(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.sweep().await,
            }
        }
    }
}

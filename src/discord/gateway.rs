//! Gateway mode: a normal bot connection; interactions arrive over the WebSocket and the initial
//! answer goes back over REST before any deferred work starts.

use std::sync::Arc;

use serenity::all::{Context, EventHandler, GatewayIntents, Interaction, Ready};
use serenity::client::Client;
use tokio_util::sync::CancellationToken;

use super::{Bot, DiscordError};
use crate::tokens::RawToken;

struct Handler {
    bot: Arc<Bot>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(bot = %ready.user.name, guilds = ready.guilds.len(), "connected to the Discord gateway");
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let http = Arc::clone(self.bot.http());
        let reply = self.bot.handle(interaction.clone()).await;
        let sent = match &interaction {
            Interaction::Command(c) => c.create_response(&http, reply.initial).await,
            Interaction::Component(c) => c.create_response(&http, reply.initial).await,
            Interaction::Autocomplete(c) => c.create_response(&http, reply.initial).await,
            Interaction::Modal(c) => c.create_response(&http, reply.initial).await,
            _ => Ok(()),
        };
        match (sent, reply.later) {
            (Ok(()), Some(later)) => {
                tokio::spawn(later);
            }
            (Ok(()), None) => {}
            (Err(e), _) => tracing::warn!(error = %e, "could not answer an interaction in time"),
        }
    }
}

/// Connects to the gateway and handles interactions (plus the bot's background work) until `stop`.
pub async fn run_gateway(
    bot: Arc<Bot>,
    bot_token: &RawToken,
    stop: CancellationToken,
) -> Result<(), DiscordError> {
    let mut client = Client::builder(bot_token.expose(), GatewayIntents::empty())
        .event_handler(Handler {
            bot: Arc::clone(&bot),
        })
        .await
        .map_err(|e| DiscordError::Gateway(e.to_string()))?;
    tokio::spawn(Arc::clone(&bot).run_background(stop.child_token()));
    let shards = Arc::clone(&client.shard_manager);
    tokio::spawn(async move {
        stop.cancelled().await;
        shards.shutdown_all().await;
    });
    client
        .start()
        .await
        .map_err(|e| DiscordError::Gateway(e.to_string()))
}

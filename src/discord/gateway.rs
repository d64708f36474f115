//! Gateway mode: a normal bot connection; interactions arrive over the WebSocket and the initial
//! answer goes back over REST before any deferred work starts.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{Context, EventHandler, GatewayIntents, Interaction, Ready};
use serenity::client::{Client, ClientBuilder};
use tokio_util::sync::CancellationToken;

use super::{Bot, DiscordError, rest_client};
use crate::tokens::RawToken;

/// How long the shards and the background work may take to stop after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

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

/// Connects to the gateway and handles interactions (plus the bot's background work) until `stop`,
/// which ends it in any state: connected, still connecting, or retrying through an outage.
///
/// The gateway's WebSocket URL comes from `GET {api_base}/api/v10/gateway`, asked with a REST
/// client built like the bot's own, so a proxy or a local fake serves the gateway too.
pub async fn run_gateway(
    bot: Arc<Bot>,
    bot_token: &RawToken,
    stop: CancellationToken,
) -> Result<(), DiscordError> {
    let background = stop.child_token();
    // Whatever way this function ends, the background work ends with it.
    let _background_stops = background.clone().drop_guard();
    let sweeping = tokio::spawn(Arc::clone(&bot).run_background(background.clone()));
    let builder = ClientBuilder::new_with_http(
        rest_client(&bot.settings, bot_token),
        GatewayIntents::empty(),
    )
    .event_handler(Handler {
        bot: Arc::clone(&bot),
    });
    // Building asks the REST API for the gateway URL, which an outage can leave unanswered.
    let mut client = tokio::select! {
        built = builder => built.map_err(gateway_error)?,
        () = stop.cancelled() => return Ok(()),
    };
    tokio::select! {
        ended = client.start() => ended.map_err(gateway_error),
        () = stop.cancelled() => {
            stop_shards(&client, sweeping).await;
            Ok(())
        }
    }
}

/// serenity's error is large; boxed, it keeps `DiscordError` small.
fn gateway_error(e: serenity::Error) -> DiscordError {
    DiscordError::Gateway(Box::new(e))
}

/// Closes the shards that are connected and waits for the background work, for at most
/// [`DRAIN`]. serenity retries a gateway it cannot reach every 5 s without end, and its
/// `shutdown_all` does nothing while no shard is connected; so the client is dropped rather than
/// awaited, and serenity's retry task is left to end with the runtime (the binary exits next).
async fn stop_shards(client: &Client, sweeping: tokio::task::JoinHandle<()>) {
    let shards = Arc::clone(&client.shard_manager);
    let stopped = async {
        let _ = tokio::join!(shards.shutdown_all(), sweeping);
    };
    if tokio::time::timeout(DRAIN, stopped).await.is_err() {
        tracing::warn!(
            ?DRAIN,
            "the Discord gateway connection did not close in time; closing it"
        );
    }
}

//! Gateway mode: a normal bot connection; interactions arrive over the WebSocket and the initial
//! answer goes back over REST before any deferred work starts. Of several processes sharing a
//! store, the one holding a lease in it connects; another takes over when it stops or dies.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{Context, EventHandler, GatewayIntents, Interaction, Ready};
use serenity::client::{Client, ClientBuilder};
use serenity::gateway::ShardRunnerMessage;
use tokio_util::sync::CancellationToken;

use super::{Bot, DiscordError, rest_client};
use crate::store::LeaseHolder;
use crate::tokens::RawToken;

/// How long the shards, and then the background work, may take to stop after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);

struct Handler {
    bot: Arc<Bot>,
    /// Cancelled when this connection's lease is gone: serenity cannot be stopped while it is
    /// still retrying to connect, so a connection that comes up after that closes itself.
    retired: CancellationToken,
}

/// Ends the shard behind `ctx` for good: a shutdown, which serenity does not reconnect (a
/// close alone it would resume).
fn retire(ctx: &Context) {
    ctx.shard
        .send_to_shard(ShardRunnerMessage::Shutdown(ctx.shard_id, 1000));
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        if self.retired.is_cancelled() {
            tracing::info!(
                "a Discord gateway connection this process no longer holds the lease for came up; closing it"
            );
            return retire(&ctx);
        }
        tracing::info!(bot = %ready.user.name, guilds = ready.guilds.len(), "connected to the Discord gateway");
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if self.retired.is_cancelled() {
            // The process holding the lease answers it (its id is in the store either way).
            return retire(&ctx);
        }
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

/// The lease that lets one process at a time hold the gateway connection.
const GATEWAY_LEASE: &str = "discord.gateway";
/// How long the lease lasts unless renewed: the longest another process waits to take the
/// gateway over from a holder that hangs or whose host died.
const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews the lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a process without the lease tries to take it: the longest it waits after the
/// holder stops (it lets go) or dies on the same host.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// How a connection ended.
enum Ended {
    /// The shutdown signal.
    Stopped,
    /// The lease went to another process.
    Lost,
    /// serenity gave up (a refused bot token, say).
    Failed(DiscordError),
}

/// Connects to the gateway and handles interactions (plus the bot's background work) until `stop`,
/// which ends it in any state: waiting for the gateway lease, connected, still connecting, or
/// retrying through an outage.
///
/// Of the processes that share a store, one holds the gateway connection: the holder of a lease
/// in the store, which another takes over within [`LEASE_TTL`] and [`RETRY_EVERY`] when the
/// holder dies (within [`RETRY_EVERY`] when it stops, or dies on the same host). Nothing rests
/// on that alone: an interaction seen twice is answered once (its id is kept in the store).
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
    let result = loop {
        if !take_lease(&bot, &stop).await {
            break Ok(());
        }
        let lost = CancellationToken::new();
        let renewing = tokio::spawn(keep_lease(Arc::clone(&bot), lost.clone()));
        let ended = connect(&bot, bot_token, &stop, &lost).await;
        renewing.abort();
        match ended {
            Ended::Stopped => break Ok(()),
            Ended::Failed(e) => break Err(e),
            Ended::Lost => tracing::warn!(
                "another process took the Discord gateway over; this one waits to take it back"
            ),
        }
    };
    if let Err(e) = bot.service.release_lease(GATEWAY_LEASE).await {
        tracing::warn!(error = %e, "could not let the Discord gateway lease go; another process takes it when it lapses");
    }
    background.cancel();
    if tokio::time::timeout(DRAIN, sweeping).await.is_err() {
        tracing::warn!(?DRAIN, "the bot's background work did not stop in time");
    }
    result
}

/// Waits until this process holds the gateway lease (true) or `stop` (false).
async fn take_lease(bot: &Bot, stop: &CancellationToken) -> bool {
    let mut waiting = false;
    loop {
        match bot.service.take_lease(GATEWAY_LEASE, LEASE_TTL).await {
            Ok(LeaseHolder::Me) => {
                if waiting {
                    tracing::info!("took the Discord gateway over");
                }
                return true;
            }
            Ok(LeaseHolder::Other { holder, .. }) if !waiting => {
                tracing::info!(%holder, "another process holds the Discord gateway; this one takes it over if that one stops");
                waiting = true;
            }
            Ok(LeaseHolder::Other { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the Discord gateway lease"),
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = stop.cancelled() => return false,
        }
    }
}

/// Renews the gateway lease every [`RENEW_EVERY`]; cancels `lost` when another process holds it,
/// or when renewals failed for so long that another may have taken it.
async fn keep_lease(bot: Arc<Bot>, lost: CancellationToken) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        // A renewal stuck on the store's lock must not outlast the lease it renews.
        let renewal = tokio::time::timeout(
            RENEW_EVERY,
            bot.service.take_lease(GATEWAY_LEASE, LEASE_TTL),
        );
        match renewal.await {
            Ok(Ok(LeaseHolder::Me)) => renewed = tokio::time::Instant::now(),
            Ok(Ok(LeaseHolder::Other { holder, .. })) => {
                tracing::warn!(%holder, "the Discord gateway lease is another process's now");
                return lost.cancel();
            }
            failed => {
                match failed {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not renew the Discord gateway lease")
                    }
                    _ => tracing::warn!("renewing the Discord gateway lease took too long"),
                }
                if renewed.elapsed() + RENEW_EVERY >= LEASE_TTL {
                    return lost.cancel();
                }
            }
        }
    }
}

/// One gateway connection, until `stop`, `lost`, or serenity gives up.
async fn connect(
    bot: &Arc<Bot>,
    bot_token: &RawToken,
    stop: &CancellationToken,
    lost: &CancellationToken,
) -> Ended {
    let retired = CancellationToken::new();
    // However this connection ends, a late one from serenity's retry loop closes itself.
    let _retire = retired.clone().drop_guard();
    let builder = ClientBuilder::new_with_http(
        rest_client(&bot.settings, bot_token),
        GatewayIntents::empty(),
    )
    .event_handler(Handler {
        bot: Arc::clone(bot),
        retired,
    });
    // Building asks the REST API for the gateway URL, which an outage can leave unanswered.
    let mut client = tokio::select! {
        built = builder => match built {
            Ok(client) => client,
            Err(e) => return Ended::Failed(gateway_error(e)),
        },
        () = stop.cancelled() => return Ended::Stopped,
        () = lost.cancelled() => return Ended::Lost,
    };
    tokio::select! {
        ended = client.start() => match ended {
            Ok(()) => Ended::Stopped,
            Err(e) => Ended::Failed(gateway_error(e)),
        },
        () = stop.cancelled() => {
            stop_shards(&client).await;
            Ended::Stopped
        }
        () = lost.cancelled() => {
            stop_shards(&client).await;
            Ended::Lost
        }
    }
}

/// serenity's error is large; boxed, it keeps `DiscordError` small.
fn gateway_error(e: serenity::Error) -> DiscordError {
    DiscordError::Gateway(Box::new(e))
}

/// Closes the shards that are connected, for at most [`DRAIN`]. serenity retries a gateway it
/// cannot reach every 5 s without end, and its `shutdown_all` does nothing while no shard is
/// connected; so the client is dropped rather than awaited, and serenity's retry task is left to
/// end with the runtime (the binary exits next), or, if this process goes on without the lease,
/// to connect later to a retired handler, which closes that connection at once.
async fn stop_shards(client: &Client) {
    let shards = Arc::clone(&client.shard_manager);
    if tokio::time::timeout(DRAIN, shards.shutdown_all())
        .await
        .is_err()
    {
        tracing::warn!(
            ?DRAIN,
            "the Discord gateway connection did not close in time; closing it"
        );
    }
}

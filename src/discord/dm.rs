//! Direct messages: the one channel a new token's secret is sent through, a probe that a DM
//! can reach the caller before anything is created, and outcome notices for requesters.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::http::{Http, HttpError};
use serenity::model::id::{ChannelId, UserId};

use super::requests::{INSTANCE_SHOWN, NAME_SHOWN};
use super::text::{self, CONTENT, code};
use crate::service::{DeliveryFailure, DeliveryReceipt, SecretDelivery, Ticket};
use crate::tokens::{RawToken, Token};

/// Discord's error code for "Cannot send messages to this user".
const DMS_CLOSED: isize = 50007;

/// Why a DM failed, in words for the caller.
pub fn dm_error(e: &serenity::Error) -> String {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) if r.error.code == DMS_CLOSED => {
            "your direct messages are closed to this bot; allow DMs from server members and try again".to_owned()
        }
        other => format!("Discord refused the direct message ({other})"),
    }
}

/// Opens (or reuses) the DM channel with `user` and sends `text`.
pub async fn send_dm(http: &Http, user: UserId, text: &str) -> Result<ChannelId, serenity::Error> {
    let channel = user.create_dm_channel(http).await?;
    channel.id.send_message(http, text::message(text)).await?;
    Ok(channel.id)
}

/// Whether a DM failed because the user's inbox is closed to the bot.
pub fn is_closed(e: &serenity::Error) -> bool {
    matches!(e, serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) if r.error.code == DMS_CLOSED)
}

/// Sends `text` to `user` at most once per `key`: Discord drops a second message with the same
/// nonce, so a notice resent after a crash is not shown twice.
pub async fn send_dm_once(
    http: &Http,
    user: UserId,
    text: &str,
    key: &str,
) -> Result<ChannelId, serenity::Error> {
    use sha2::{Digest, Sha256};
    // 24 hex characters: within Discord's 25.
    let nonce = hex::encode(&Sha256::digest(key.as_bytes())[..12]);
    let channel = user.create_dm_channel(http).await?;
    let message = text::message(text)
        .nonce(serenity::model::channel::Nonce::String(nonce))
        .enforce_nonce(true);
    channel.id.send_message(http, message).await?;
    Ok(channel.id)
}

/// The DM that carries a new secret. Everything around the secret is bounded, so the message
/// is never cut (a cut secret would be useless); a secret too long for any message is refused.
pub fn secret_text(token: &Token, instance: &str, secret: &str) -> Result<String, DeliveryFailure> {
    let text = format!(
        "Your new InfluxDB 3 token {} (id {}, instance {}):\n```\n{}\n```\nStore it now: it will not be shown again. \
         Use it as `Authorization: Bearer <token>`. You may delete this message once it is stored.",
        code(&token.name, NAME_SHOWN),
        token.id,
        code(instance, INSTANCE_SHOWN),
        secret
    );
    if text::len(&text) > CONTENT || secret.contains('`') {
        return Err(DeliveryFailure(
            "the secret does not fit in a Discord message".to_owned(),
        ));
    }
    Ok(text)
}

/// Hands a new secret to its owner by DM.
pub struct DmDelivery {
    pub http: Arc<Http>,
    pub channel: ChannelId,
    pub instance: String,
}

#[async_trait]
impl SecretDelivery for DmDelivery {
    async fn deliver(
        &self,
        token: &Token,
        secret: &RawToken,
        _ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        let text = secret_text(token, &self.instance, secret.expose())?;
        self.channel
            .send_message(&self.http, text::message(&text))
            .await
            .map_err(|e| DeliveryFailure(dm_error(&e)))?;
        Ok(DeliveryReceipt::delivered("sent by Discord direct message"))
    }
}

//! Direct messages: the one channel a new token's secret is sent through, a probe that a DM
//! can reach the caller before anything is created, and outcome notices for requesters.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::builder::CreateMessage;
use serenity::http::{Http, HttpError};
use serenity::model::id::{ChannelId, UserId};

use crate::service::{DeliveryFailure, DeliveryReceipt, SecretDelivery};
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
pub async fn send_dm(
    http: &Http,
    user: UserId,
    text: String,
) -> Result<ChannelId, serenity::Error> {
    let channel = user.create_dm_channel(http).await?;
    channel
        .id
        .send_message(http, CreateMessage::new().content(text))
        .await?;
    Ok(channel.id)
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
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        let text = format!(
            "Your new InfluxDB 3 token `{}` (id {}, instance `{}`):\n```\n{}\n```\nStore it now: it will not be shown again. \
             Use it as `Authorization: Bearer <token>`. You may delete this message once it is stored.",
            token.name,
            token.id,
            self.instance,
            secret.expose()
        );
        self.channel
            .send_message(&self.http, CreateMessage::new().content(text))
            .await
            .map_err(|e| DeliveryFailure(dm_error(&e)))?;
        Ok(DeliveryReceipt("sent by Discord direct message".into()))
    }
}

/// For approvals: deletes hand over no secret.
pub struct NoSecret;

#[async_trait]
impl SecretDelivery for NoSecret {
    async fn deliver(
        &self,
        _token: &Token,
        _secret: &RawToken,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        Err(DeliveryFailure(
            "a Discord approval cannot hand over a new secret".into(),
        ))
    }
}

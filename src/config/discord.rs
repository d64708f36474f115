//! The `[discord]` section: the application, its token, where approvals go, and who may do what.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::limits::http_limits;
use super::{TokenSource, parse_duration_key};
use crate::actor::ActorKind;
use crate::discord::{Access, Capability, DISCORD_API, DiscordSettings};

/// A Discord snowflake, written as a string (as Discord shows them) or a number.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum Snowflake {
    Text(String),
    Number(u64),
}

impl Snowflake {
    fn parse(&self, key: &str) -> Result<u64, String> {
        self.id_at(&format!("discord.{key}"))
    }

    /// The id, or an error naming `key` in full.
    pub(super) fn id_at(&self, key: &str) -> Result<u64, String> {
        let id = match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.trim().parse::<u64>().ok(),
        };
        id.filter(|n| *n > 0)
            .ok_or_else(|| format!("{key} must be a Discord id (a number), not {}", self.show()))
    }

    /// A permission bit set, as Discord writes it ("0", "32" for Manage Server).
    fn permissions(&self) -> Result<serenity::model::Permissions, String> {
        let bits = match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.trim().parse::<u64>().ok(),
        };
        bits.and_then(serenity::model::Permissions::from_bits).ok_or_else(|| {
            format!(
                "discord.default_member_permissions must be a Discord permission bit set like \"0\" (administrators \
                 only) or \"32\" (Manage Server), not {}",
                self.show()
            )
        })
    }

    fn show(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => format!("\"{s}\""),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIds {
    #[serde(default)]
    list: Vec<Snowflake>,
    #[serde(default)]
    create: Vec<Snowflake>,
    #[serde(default)]
    delete: Vec<Snowflake>,
    #[serde(default)]
    approve: Vec<Snowflake>,
}

impl RawIds {
    fn parse(&self, table: &str) -> Result<BTreeMap<Capability, Vec<u64>>, String> {
        let mut out = BTreeMap::new();
        for (cap, ids) in [
            (Capability::List, &self.list),
            (Capability::Create, &self.create),
            (Capability::Delete, &self.delete),
            (Capability::Approve, &self.approve),
        ] {
            let key = format!("{table}.{}", cap.key());
            out.insert(
                cap,
                ids.iter()
                    .map(|i| i.parse(&key))
                    .collect::<Result<_, _>>()?,
            );
        }
        Ok(out)
    }
}

/// The `[discord]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscord {
    application_id: Snowflake,
    public_key: Option<String>,
    bot_token_env: Option<String>,
    bot_token_file: Option<PathBuf>,
    api_base: Option<String>,
    #[serde(default)]
    guild_ids: Vec<Snowflake>,
    approvals_channel_id: Option<Snowflake>,
    approval_timeout: Option<String>,
    required_approvals: Option<u8>,
    approve_from: Option<Vec<String>>,
    #[serde(default)]
    allow_self_approval: bool,
    poll_interval: Option<String>,
    default_member_permissions: Option<Snowflake>,
    #[serde(default)]
    roles: RawIds,
    #[serde(default)]
    users: RawIds,
    #[serde(default)]
    endpoint: RawEndpoint,
}

/// `[discord.endpoint]`: the limits of the HTTP interactions endpoint.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
}

/// The validated `[discord]` section; the bot token is read when the bot starts.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub settings: DiscordSettings,
    pub bot_token: TokenSource,
}

impl RawDiscord {
    pub(super) fn validate(
        self,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<DiscordConfig, String> {
        let bot_token = match (self.bot_token_env, self.bot_token_file) {
            (Some(var), None) => TokenSource::Env(var),
            (None, Some(file)) => TokenSource::File(resolve(&file)),
            _ => {
                return Err(
                    "[discord] needs exactly one of bot_token_env and bot_token_file".into(),
                );
            }
        };
        let public_key = self
            .public_key
            .map(|hex_key| {
                let bytes = hex::decode(hex_key.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                bytes.ok_or_else(|| {
                    "discord.public_key must be the application's public key: 64 hex characters"
                        .to_owned()
                })
            })
            .transpose()?;
        let api_base = self.api_base.unwrap_or_else(|| DISCORD_API.to_owned());
        let url = reqwest::Url::parse(&api_base)
            .map_err(|e| format!("discord.api_base `{api_base}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "discord.api_base `{api_base}` must be an http(s) URL"
            ));
        }
        let required_approvals = self.required_approvals.unwrap_or(1);
        if required_approvals == 0 {
            return Err("discord.required_approvals must be at least 1".into());
        }
        let duration = |key: &str, v: Option<String>, default: &str| {
            parse_duration_key(&format!("discord.{key}"), v.as_deref().unwrap_or(default))
        };
        let poll_interval: Duration = duration("poll_interval", self.poll_interval, "10s")?;
        if poll_interval.is_zero() {
            return Err("discord.poll_interval must be more than zero".into());
        }
        let default_member_permissions = match &self.default_member_permissions {
            None => serenity::model::Permissions::empty(),
            Some(p) => p.permissions()?,
        };
        let settings = DiscordSettings {
            application_id: self.application_id.parse("application_id")?,
            public_key,
            api_base: api_base.trim_end_matches('/').to_owned(),
            guild_ids: self
                .guild_ids
                .iter()
                .map(|g| g.parse("guild_ids"))
                .collect::<Result<_, _>>()?,
            approvals_channel_id: self
                .approvals_channel_id
                .map(|c| c.parse("approvals_channel_id"))
                .transpose()?,
            approval_timeout: duration("approval_timeout", self.approval_timeout, "15m")?,
            required_approvals,
            allow_self_approval: self.allow_self_approval,
            approve_from: super::approve_from(
                "discord.approve_from",
                self.approve_from.as_deref(),
                &[ActorKind::Discord, ActorKind::Cli],
            )?,
            access: Access {
                roles: self.roles.parse("roles")?,
                users: self.users.parse("users")?,
            },
            poll_interval,
            default_member_permissions,
            endpoint_limits: http_limits(
                "discord.endpoint",
                self.endpoint.header_read_timeout.as_deref(),
                self.endpoint.idle_timeout.as_deref(),
                self.endpoint.max_connections,
            )?,
        };
        Ok(DiscordConfig {
            settings,
            bot_token,
        })
    }
}

//! The `/token` slash command and its registration (per guild, or global): guild installs only,
//! hidden from members until a server admin enables it for their roles (unless configured
//! otherwise), and every string option bounded so Discord itself stops overlong input.

use serenity::builder::{CreateCommand, CreateCommandOption};
use serenity::http::Http;
use serenity::model::Permissions;
use serenity::model::application::{
    Command, CommandOptionType, InstallationContext, InteractionContext,
};
use serenity::model::id::GuildId;

use super::{DiscordError, DiscordSettings};

/// The longest names of existing tokens (InfluxDB's own limit is not ours to choose).
pub(super) const NAME_MAX: u16 = 256;
/// The longest name for a new token.
const NEW_NAME_MAX: u16 = 128;
const REASON_MAX: u16 = 1000;
const PERMISSIONS_MAX: u16 = 1000;
const EXPIRES_MAX: u16 = 64;
const INSTANCE_MAX: u16 = 100;

fn text(name: &str, description: &str, required: bool, max: u16) -> CreateCommandOption {
    CreateCommandOption::new(CommandOptionType::String, name, description)
        .required(required)
        .max_length(max)
}

fn instance() -> CreateCommandOption {
    text(
        "instance",
        "The configured InfluxDB instance (default: the config's default)",
        false,
        INSTANCE_MAX,
    )
}

fn expires() -> CreateCommandOption {
    text(
        "expires",
        "When it expires: a duration like 30d, a time like 2027-01-01T00:00:00Z, or never",
        false,
        EXPIRES_MAX,
    )
}

/// The `/token` command with its subcommands; `permissions` is what a member needs to see it
/// before a server admin changes it (none: `Permissions::empty()` shows it to admins only).
pub fn token_command(permissions: Permissions) -> CreateCommand {
    let list = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "list",
        "List tokens (only you see the answer)",
    )
    .add_sub_option(text(
        "name",
        "Only names containing this text",
        false,
        NAME_MAX,
    ))
    .add_sub_option(
        text("kind", "admin or resource", false, 16)
            .add_string_choice("admin", "admin")
            .add_string_choice("resource", "resource"),
    )
    .add_sub_option(
        text(
            "database",
            "Only resource tokens for this database",
            false,
            NAME_MAX,
        )
        .set_autocomplete(true),
    )
    .add_sub_option(
        text("status", "active or expired", false, 16)
            .add_string_choice("active", "active")
            .add_string_choice("expired", "expired"),
    )
    .add_sub_option(instance());
    let create_admin = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "create-admin",
        "Create an admin token; its secret comes by DM",
    )
    .add_sub_option(text(
        "name",
        "Letters, digits, - _ . (starting with a letter or digit)",
        true,
        NEW_NAME_MAX,
    ))
    .add_sub_option(expires())
    .add_sub_option(instance());
    let create_resource = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "create-resource",
        "Create a database-scoped token (Enterprise); its secret comes by DM",
    )
    .add_sub_option(text(
        "name",
        "Letters, digits, - _ . (starting with a letter or digit)",
        true,
        NEW_NAME_MAX,
    ))
    .add_sub_option(
        text(
            "permissions",
            "Like db:metrics:read,write (several separated by spaces)",
            true,
            PERMISSIONS_MAX,
        )
        .set_autocomplete(true),
    )
    .add_sub_option(expires())
    .add_sub_option(instance());
    let delete = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "delete",
        "Ask the team to approve deleting a token",
    )
    .add_sub_option(
        text(
            "name",
            "The token's exact name (or id:N, as suggested)",
            true,
            NAME_MAX,
        )
        .set_autocomplete(true),
    )
    .add_sub_option(text("reason", "Why, for the approvers", false, REASON_MAX))
    .add_sub_option(instance());
    let prune = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "prune-expired",
        "Ask the team to approve deleting the expired tokens",
    )
    .add_sub_option(instance());
    CreateCommand::new("token")
        .description("Manage InfluxDB 3 tokens")
        .contexts(vec![InteractionContext::Guild])
        .integration_types(vec![InstallationContext::Guild])
        .default_member_permissions(permissions)
        .add_option(list)
        .add_option(create_admin)
        .add_option(create_resource)
        .add_option(delete)
        .add_option(prune)
}

/// Registers `/token` in each guild (instant), or globally when no guild is given (Discord may
/// take up to an hour to show global commands).
pub async fn register(http: &Http, settings: &DiscordSettings) -> Result<String, DiscordError> {
    let (guild_ids, command) = (
        &settings.guild_ids,
        token_command(settings.default_member_permissions),
    );
    if guild_ids.is_empty() {
        Command::set_global_commands(http, vec![command])
            .await
            .map_err(|e| DiscordError::Register(e.to_string()))?;
        return Ok(
            "Registered /token globally (Discord may take up to an hour to show it).".to_owned(),
        );
    }
    for g in guild_ids {
        GuildId::new(*g)
            .set_commands(http, vec![command.clone()])
            .await
            .map_err(|e| DiscordError::Register(format!("guild {g}: {e}")))?;
    }
    Ok(format!(
        "Registered /token in {} guild(s).",
        guild_ids.len()
    ))
}

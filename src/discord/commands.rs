//! The `/token` slash command and its registration (per guild, or global).

use serenity::builder::{CreateCommand, CreateCommandOption};
use serenity::http::Http;
use serenity::model::application::{Command, CommandOptionType, InteractionContext};
use serenity::model::id::GuildId;

use super::DiscordError;

fn text(name: &str, description: &str, required: bool) -> CreateCommandOption {
    CreateCommandOption::new(CommandOptionType::String, name, description).required(required)
}

fn instance() -> CreateCommandOption {
    text(
        "instance",
        "The configured InfluxDB instance (default: the config's default)",
        false,
    )
}

fn expires() -> CreateCommandOption {
    text(
        "expires",
        "When it expires: a duration like 30d, a time like 2027-01-01T00:00:00Z, or never",
        false,
    )
}

/// The `/token` command with its subcommands.
pub fn token_command() -> CreateCommand {
    let list = CreateCommandOption::new(
        CommandOptionType::SubCommand,
        "list",
        "List tokens (only you see the answer)",
    )
    .add_sub_option(text("name", "Only names containing this text", false))
    .add_sub_option(
        text("kind", "admin or resource", false)
            .add_string_choice("admin", "admin")
            .add_string_choice("resource", "resource"),
    )
    .add_sub_option(
        text("database", "Only resource tokens for this database", false).set_autocomplete(true),
    )
    .add_sub_option(
        text("status", "active or expired", false)
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
    ))
    .add_sub_option(
        text(
            "permissions",
            "Like db:metrics:read,write (several separated by spaces)",
            true,
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
    .add_sub_option(text("name", "The token's exact name", true).set_autocomplete(true))
    .add_sub_option(text("reason", "Why, for the approvers", false))
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
        .add_option(list)
        .add_option(create_admin)
        .add_option(create_resource)
        .add_option(delete)
        .add_option(prune)
}

/// Registers `/token` in each guild (instant), or globally when no guild is given (Discord may
/// take up to an hour to show global commands).
pub async fn register(http: &Http, guild_ids: &[u64]) -> Result<String, DiscordError> {
    if guild_ids.is_empty() {
        Command::set_global_commands(http, vec![token_command()])
            .await
            .map_err(|e| DiscordError::Register(e.to_string()))?;
        return Ok(
            "Registered /token globally (Discord may take up to an hour to show it).".to_owned(),
        );
    }
    for g in guild_ids {
        GuildId::new(*g)
            .set_commands(http, vec![token_command()])
            .await
            .map_err(|e| DiscordError::Register(format!("guild {g}: {e}")))?;
    }
    Ok(format!(
        "Registered /token in {} guild(s).",
        guild_ids.len()
    ))
}

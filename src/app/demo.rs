//! `tokenwarden demo`: a seeded simulator, the MCP server over HTTP and, with `--discord`, the
//! Discord interactions endpoint, with a ready config and instructions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::{AppError, Credentials, build_service, cancel_on, write_private};
use crate::config::Config;
use crate::discord::{self, Bot};
use crate::mcp::{self, McpCore};
use crate::sim::{SimSettings, Simulator};
use crate::tokens::Edition;

/// Options of `tokenwarden demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: String,
    pub mcp_listen: String,
    pub edition: Edition,
    pub dir: PathBuf,
    /// Also serve the Discord interactions endpoint here (needs DISCORD_* variables).
    pub discord: Option<SocketAddr>,
}

/// What the Discord part of the demo needs from the environment.
struct DiscordDemo {
    application_id: String,
    public_key: String,
    guild_id: String,
    role_id: String,
    approvals_channel_id: Option<String>,
}

impl DiscordDemo {
    const REQUIRED: [&str; 5] = [
        "DISCORD_APPLICATION_ID",
        "DISCORD_PUBLIC_KEY",
        "DISCORD_BOT_TOKEN",
        "DISCORD_GUILD_ID",
        "DISCORD_ROLE_ID",
    ];

    fn from_env() -> Result<Self, AppError> {
        let missing: Vec<&str> = Self::REQUIRED
            .iter()
            .copied()
            .filter(|v| std::env::var(v).map_or(true, |x| x.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(AppError::Io(format!(
                "`demo --discord` needs a Discord application: set {} (see the README's Discord section)",
                missing.join(", ")
            )));
        }
        let var = |v: &str| std::env::var(v).unwrap_or_default();
        Ok(Self {
            application_id: var("DISCORD_APPLICATION_ID"),
            public_key: var("DISCORD_PUBLIC_KEY"),
            guild_id: var("DISCORD_GUILD_ID"),
            role_id: var("DISCORD_ROLE_ID"),
            approvals_channel_id: std::env::var("DISCORD_APPROVALS_CHANNEL_ID")
                .ok()
                .filter(|c| !c.is_empty()),
        })
    }

    /// The demo's `[discord]` section: the role may do everything, and may approve its own
    /// deletes so one person can try the whole flow.
    fn config(&self) -> String {
        let channel = self
            .approvals_channel_id
            .as_ref()
            .map(|c| format!("approvals_channel_id = \"{c}\"\n"))
            .unwrap_or_default();
        let role = &self.role_id;
        format!(
            "\n[discord]\napplication_id = \"{}\"\npublic_key = \"{}\"\nbot_token_env = \"DISCORD_BOT_TOKEN\"\n\
             guild_ids = [\"{}\"]\n{channel}allow_self_approval = true\n\n\
             [discord.roles]\nlist = [\"{role}\"]\ncreate = [\"{role}\"]\ndelete = [\"{role}\"]\napprove = [\"{role}\"]\n",
            self.application_id, self.public_key, self.guild_id
        )
    }
}

/// Starts a seeded simulator and an MCP HTTP server for it, writes their config and secrets into
/// `dir`, prints how to use them, and serves until `shutdown`.
pub async fn demo(
    opts: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let discord_demo = opts.discord.map(|_| DiscordDemo::from_env()).transpose()?;
    private_folder(&opts.dir)?;
    let sim = Simulator::new(SimSettings {
        edition: opts.edition,
        ..Default::default()
    });
    let control = sim.control();
    let token_path = opts.dir.join("operator.token");
    let mcp_token_path = opts.dir.join("mcp.token");
    let raw = control
        .create_operator()
        .ok_or_else(|| AppError::Io("the demo operator token exists".into()))?;
    write_private(&token_path, raw.expose())?;
    control.seed_demo();
    let listener = bind_or_any(&opts.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Io(e.to_string()))?;
    let mcp_listener = bind_or_any(&opts.mcp_listen).await?;
    let mcp_addr = mcp_listener
        .local_addr()
        .map_err(|e| AppError::Io(e.to_string()))?;
    let mut bytes = [0u8; 24];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    let bearer = format!("twmcp_{}", hex::encode(bytes));
    write_private(&mcp_token_path, &bearer)?;
    let config_path = opts.dir.join("tokenwarden.toml");
    let mut config_text = demo_config(addr, mcp_addr);
    if let Some(d) = &discord_demo {
        config_text.push_str(&d.config());
    }
    write_private(&config_path, &config_text)?;
    let config = Config::load(&config_path)?;
    let http = config.mcp.http(Some(mcp_addr))?;
    let service = Arc::new(build_service(&config, Credentials::Configured)?);
    let core = McpCore::new(Arc::clone(&service), config.mcp.settings.clone());

    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tokenwarden".into());
    let mcp_url = format!("http://{mcp_addr}/mcp");
    println!(
        "tokenwarden demo: an InfluxDB 3 {} simulator listens on http://{addr} with {} seeded tokens,\n\
         and tokenwarden's MCP server on {mcp_url} (bearer token {bearer}).\n\
         Config, operator token and MCP token are in {}.\n\n\
         The CLI, in another terminal:\n\
         \x20 export TOKENWARDEN_CONFIG={}\n\
         \x20 {exe} tokens list\n\
         \x20 {exe} tokens create-admin my-first-token --expires-in 7d\n\
         \x20 {exe} tokens delete my-first-token\n\
         \x20 {exe} audit\n\n\
         An AI assistant (Claude Code):\n\
         \x20 claude mcp add --transport http tokenwarden {mcp_url} --header \"Authorization: Bearer {bearer}\"\n\
         or any MCP client config:\n\
         \x20 {{\"mcpServers\": {{\"tokenwarden\": {{\"type\": \"http\", \"url\": \"{mcp_url}\", \"headers\": {{\"Authorization\": \"Bearer {bearer}\"}}}}}}}}\n\n\
         {}Press Ctrl-C to stop.",
        opts.edition,
        control.token_count(),
        opts.dir.display(),
        config_path.display(),
        opts.discord.map(discord_note).unwrap_or_default(),
    );
    let stop = cancel_on(shutdown);
    let discord = async {
        match (&config.discord, opts.discord) {
            (Some(d), Some(addr)) => {
                let bot = Bot::new(
                    Arc::clone(&service),
                    d.settings.clone(),
                    &d.bot_token.resolve()?,
                );
                Ok::<(), AppError>(discord::serve_interactions(bot, addr, stop.clone()).await?)
            }
            _ => Ok(()),
        }
    };
    let (sim_result, mcp_result, discord_result) = tokio::join!(
        sim.serve(listener, stop.clone().cancelled_owned()),
        mcp::serve_http(core, http, mcp_listener, stop.clone().cancelled_owned()),
        discord,
    );
    stop.cancel();
    sim_result.map_err(|e| AppError::Io(e.to_string()))?;
    mcp_result?;
    discord_result
}

/// Makes `dir` the demo's own folder: new, or empty and not a symlink, and readable by this
/// user only (0700), since the demo writes secrets into it. A folder that already holds files
/// is refused rather than written through: a file or link planted there beforehand could
/// redirect a secret.
fn private_folder(dir: &Path) -> Result<(), AppError> {
    let refuse = |why: &str| {
        AppError::Io(format!(
            "demo folder {}: {why}; give --dir a new or empty folder (the demo writes secrets into it)",
            dir.display()
        ))
    };
    let io = |e: std::io::Error| AppError::Io(format!("demo folder {}: {e}", dir.display()));
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("it is a symbolic link")),
        Ok(m) if !m.is_dir() => return Err(refuse("it is not a folder")),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
                return Err(refuse("it is not empty"));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::service::private_dir(dir).map_err(io)?;
    Ok(())
}

fn demo_config(addr: SocketAddr, mcp_addr: SocketAddr) -> String {
    format!(
        "# Written by `tokenwarden demo`; points at its simulator.\n\
         [store]\npath = \"tokenwarden.db\"\n\n\
         [[instances]]\nname = \"demo\"\nurl = \"http://{addr}\"\ntoken_file = \"operator.token\"\n\
         protected = [\"grafana-*\"]\n\n\
         [mcp.http]\nlisten = \"{mcp_addr}\"\n\n\
         [[mcp.http.clients]]\nname = \"demo-assistant\"\ntoken_file = \"mcp.token\"\n"
    )
}

fn discord_note(addr: SocketAddr) -> String {
    format!(
        "Discord: the interactions endpoint listens on http://{addr}/interactions. Expose it over HTTPS (a tunnel), \
         set it as the application's Interactions Endpoint URL, and register /token with\n\
         \x20 TOKENWARDEN_CONFIG=... tokenwarden discord register\n\n"
    )
}

/// Binds `addr`, or any free port on the same host when it is taken.
async fn bind_or_any(addr: &str) -> Result<TcpListener, AppError> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(first) => {
            let host = addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            let fallback = format!("{host}:0");
            tracing::warn!(%addr, error = %first, "address taken; using a free port");
            TcpListener::bind(&fallback)
                .await
                .map_err(|source| AppError::Listen {
                    addr: fallback,
                    source,
                })
        }
    }
}

//! The `tokenwarden` binary: parses the command line, sets up logging on stderr, wires the config
//! into the core and runs one command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokenwarden::actor::Actor;
use tokenwarden::app::{self, AppError, Credentials, DemoOptions, SimulateOptions};
use tokenwarden::cli::{Cli, CliError, exit, service_exit_code};
use tokenwarden::config::{Config, DEFAULT_CONFIG_PATH};
use tokenwarden::logging;
use tokenwarden::tokens::{Edition, ListFilter, Page, TokenKind, TokenStatus, parse_duration};

/// Manage InfluxDB 3 authorization tokens: list, create, delete and regenerate them with
/// confirmations, private delivery of secrets, and an audit log.
#[derive(Parser)]
#[command(name = "tokenwarden", version, propagate_version = true)]
struct Opts {
    /// Config file [default: ./tokenwarden.toml]
    #[arg(long, global = true, env = "TOKENWARDEN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The instance to act on [default: the config's default_instance]
    #[arg(long, global = true, value_name = "NAME")]
    instance: Option<String>,
    /// Log filter such as `info` or `tokenwarden=debug` [default: RUST_LOG, else warn (info for servers)]
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log line format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check that an instance answers and that tokenwarden's token works
    Check(JsonFlag),
    /// List, create, delete and regenerate tokens
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// List the databases of an instance (for resource-token permissions)
    Databases(JsonFlag),
    /// Show the audit log, newest first
    Audit {
        /// How many records
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Run the MCP server for AI assistants: stdio by default, or streamable HTTP at /mcp
    Mcp {
        /// Serve streamable HTTP instead of stdio, on ADDR [default: [mcp.http] listen, else 127.0.0.1:8765]
        #[arg(long, value_name = "ADDR")]
        http: Option<Option<SocketAddr>>,
    },
    /// Run the Discord bot (gateway by default), or register its slash command
    Discord(DiscordArgs),
    /// Run the MCP HTTP server and the Discord bot in one process
    Serve {
        /// Address of the MCP HTTP server [default: [mcp.http] listen]
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
        /// Serve Discord's HTTP interactions endpoint on ADDR instead of connecting to the gateway
        #[arg(long, value_name = "ADDR")]
        interactions: Option<SocketAddr>,
    },
    /// List, approve or reject actions waiting for a person's approval
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Set up `[[people]]`: hash the passphrase of a private reveal page
    #[command(subcommand)]
    People(PeopleCommand),
    /// Check the store's schema and the work waiting in it, or migrate it
    #[command(subcommand)]
    Store(StoreCommand),
    /// Run a simulated InfluxDB 3 server (the token API) for trying things out and for tests
    Simulate(SimulateArgs),
    /// Start a seeded simulator with a ready config, and show how to use tokenwarden against it
    Demo(DemoArgs),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Show the store's schema version and its unfinished work, changing nothing
    Check(JsonFlag),
    /// Bring the store to this build's schema (every command also does at start)
    Migrate(JsonFlag),
}

#[derive(Subcommand)]
enum PeopleCommand {
    /// Read a passphrase (without echo, or from a pipe) and print the `passphrase_hash` for a
    /// [[people]] entry; the passphrase itself is kept nowhere
    HashPassphrase,
}

#[derive(Args, Clone, Copy)]
struct JsonFlag {
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExpiryArgs {
    /// Expire after a duration such as 30d, 12h or 1w
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    expires_in: Option<String>,
    /// Expire at an RFC 3339 time such as 2027-01-01T00:00:00Z
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// List tokens, optionally filtered
    List {
        /// Only names containing this text (taken literally)
        #[arg(long, value_name = "SUBSTR")]
        name: Option<String>,
        #[arg(long, value_parser = TokenKind::parse)]
        kind: Option<TokenKind>,
        /// Only resource tokens that grant access to this database
        #[arg(long, value_name = "DB")]
        database: Option<String>,
        #[arg(long, value_parser = TokenStatus::parse)]
        status: Option<TokenStatus>,
        /// Only active tokens that expire within this duration, e.g. 7d
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expiring_within: Option<Duration>,
        /// Tokens per page
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Where the page starts: the cursor printed with the previous page
        #[arg(long, default_value_t = 0)]
        cursor: usize,
        /// Every matching token, however many pages
        #[arg(long, conflicts_with = "cursor")]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Create a named admin token; its secret is printed once
    CreateAdmin {
        name: String,
        #[command(flatten)]
        expiry: ExpiryArgs,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Create a database-scoped resource token (InfluxDB 3 Enterprise); its secret is printed once
    CreateResource {
        name: String,
        /// TYPE:NAMES:ACTIONS, e.g. db:metrics:read,write or system:*:read (repeatable)
        #[arg(long = "permission", value_name = "PERMISSION", required = true)]
        permissions: Vec<String>,
        #[command(flatten)]
        expiry: ExpiryArgs,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a token, after typing its name (or --yes)
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Replace the operator token's secret: every client using it breaks
    RegenerateOperator {
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        /// Write the new secret to this file (mode 0600, replaced atomically) [default: the
        /// instance's operator_token_file; one of them is required]
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete expired tokens (InfluxDB keeps them forever), after showing them and a typed `prune`
    PruneExpired {
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// On a server without an operator token, create it and store its secret in a new 0600 file
    BootstrapOperator {
        #[arg(long, value_name = "PATH")]
        token_file: PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Args)]
struct DiscordArgs {
    #[command(subcommand)]
    action: Option<DiscordAction>,
    /// Serve Discord's HTTP interactions endpoint (POST /interactions) on ADDR instead of the gateway
    #[arg(long, value_name = "ADDR")]
    interactions: Option<SocketAddr>,
    /// Serve GET /health and GET /ready on ADDR (gateway mode has no HTTP server of its own)
    #[arg(long, value_name = "ADDR")]
    health: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum DiscordAction {
    /// Register the /token slash command (in [discord] guild_ids, or globally)
    Register,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Actions waiting for approval
    List(JsonFlag),
    /// Approve an action; the last approval needed runs it
    Approve {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Reject an action so it never runs
    Reject {
        id: String,
        /// Why, for the requester and the audit log
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Args)]
struct SimulateArgs {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:8181")]
    listen: String,
    #[arg(long, value_enum, default_value_t = EditionArg::Core)]
    edition: EditionArg,
    /// Use the token in this file as the operator token, or create one and write it there (0600)
    #[arg(long, value_name = "PATH")]
    operator_token_file: Option<PathBuf>,
    /// Act like `influxdb3 serve --without-auth` (token endpoints answer 405)
    #[arg(long)]
    without_auth: bool,
    /// Databases to create, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "DB,...")]
    seed_databases: Vec<String>,
    /// Seed the demo's databases and tokens
    #[arg(long)]
    seed_demo: bool,
    /// Seed this many tokens (load-000001, ...) for scale tests
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed_tokens: usize,
}

#[derive(Args)]
struct DemoArgs {
    /// Address for the simulator (a free port is used if it is taken)
    #[arg(long, default_value = "127.0.0.1:8181")]
    listen: String,
    /// Address for the MCP HTTP server (a free port is used if it is taken)
    #[arg(long, default_value = tokenwarden::config::DEFAULT_HTTP_LISTEN)]
    mcp_listen: String,
    /// Also serve the Discord interactions endpoint [default ADDR: 127.0.0.1:8080]; needs
    /// DISCORD_APPLICATION_ID, DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN, DISCORD_GUILD_ID, DISCORD_ROLE_ID
    #[arg(long, value_name = "ADDR")]
    discord: Option<Option<SocketAddr>>,
    #[arg(long, value_enum, default_value_t = EditionArg::Enterprise)]
    edition: EditionArg,
    /// A new or empty folder for the demo's config, operator token and store [default: a new private folder in the temp dir]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EditionArg {
    Core,
    Enterprise,
}

impl From<EditionArg> for Edition {
    fn from(e: EditionArg) -> Self {
        match e {
            EditionArg::Core => Edition::Core,
            EditionArg::Enterprise => Edition::Enterprise,
        }
    }
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let server = matches!(
        opts.command,
        Command::Simulate(_) | Command::Demo(_) | Command::Mcp { .. }
    );
    init_logging(
        opts.log_level.as_deref(),
        opts.log_format,
        if server { "info" } else { "warn" },
    );
    let serving = server
        || matches!(
            opts.command,
            Command::Serve { .. } | Command::Discord(DiscordArgs { action: None, .. })
        );
    report_panics(serving);
    // One MCP client on stdio gains nothing from worker threads, only hand-offs between them.
    let stdio_mcp = matches!(opts.command, Command::Mcp { http: None });
    let mut builder = if stdio_mcp {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    // A panic was reported by the hook; the process only has to end with its own exit code.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(opts))));
    // Exit now: a task still parked on a blocking read (stdin that is not a pipe) must not hold
    // the process open after the command has finished its shutdown.
    runtime.shutdown_background();
    match result {
        Err(_) => ExitCode::from(exit::INTERNAL),
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {}", tokenwarden::shown::shown_lines(&explain(&e)));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Reports every panic as one line instead of Rust's message: on stderr for a command, as an
/// error log line for a server (whose tool call or interaction is still answered). Raw tokens
/// in the message are redacted; `RUST_BACKTRACE=1` adds the backtrace.
fn report_panics(serving: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let what = tokenwarden::panics::describe(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if serving {
            tracing::error!(panic = %what, "internal error{at}; please report it");
        } else {
            eprintln!("error: internal error: {what}{at}; please report it");
        }
        let trace = std::backtrace::Backtrace::capture();
        if trace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{trace}");
        }
    }));
}

/// The error with the command that helps, when the core names one.
fn explain(e: &anyhow::Error) -> String {
    let service = match (e.downcast_ref::<CliError>(), e.downcast_ref::<AppError>()) {
        (Some(CliError::Service(s)), _) | (_, Some(AppError::Service(s))) => Some(s),
        _ => e.downcast_ref::<tokenwarden::service::ServiceError>(),
    };
    match service {
        Some(s) => tokenwarden::cli::explain_error(s),
        None => e.to_string(),
    }
}

/// `store check` and `store migrate`: they open the store themselves, so nothing (no
/// migration, no recovery) runs before them.
fn store_command(config: &Config, command: StoreCommand) -> anyhow::Result<()> {
    let location = &config.store;
    let where_text = location.to_string();
    let shown = tokenwarden::shown::shown(&where_text);
    match command {
        StoreCommand::Check(j) => {
            let s = tokenwarden::store::inspect(location).map_err(AppError::from)?;
            if s.too_new() {
                return Err(AppError::from(tokenwarden::store::StoreError::TooNew {
                    found: s.schema_version,
                    supported: s.supported_version,
                })
                .into());
            }
            if j.json {
                tokenwarden::cli::print_json(&s, true);
                return Ok(());
            }
            let schema = if s.schema_version == s.supported_version {
                format!("schema version {} (current)", s.schema_version)
            } else {
                format!(
                    "schema version {}; `tokenwarden store migrate` (or any command) brings it to {}",
                    s.schema_version, s.supported_version
                )
            };
            println!("store {shown}: {schema}");
            println!(
                "open actions: {}, unsettled operations: {}, unsent Discord notices: {}",
                known(s.open_actions),
                known(s.unsettled_operations),
                known(s.unsent_notices)
            );
            println!("MCP HTTP sessions kept: {}", known(s.mcp_sessions));
            println!("reveal links waiting (sealed): {}", known(s.reveal_links));
            match s.leases.as_deref() {
                None => println!("leases: unknown (older schema)"),
                Some([]) => println!("leases: none held"),
                Some(leases) => {
                    for l in leases {
                        let holder = tokenwarden::shown::shown(&l.holder);
                        let name = tokenwarden::shown::shown(&l.name);
                        if l.left_ms > 0 {
                            println!(
                                "lease {name}: held by {holder} for {} s more",
                                (l.left_ms + 999) / 1000
                            );
                        } else {
                            println!("lease {name}: lapsed (last held by {holder})");
                        }
                    }
                }
            }
        }
        StoreCommand::Migrate(j) => {
            let before = tokenwarden::store::migrate(location).map_err(AppError::from)?;
            let now = tokenwarden::store::inspect(location).map_err(AppError::from)?;
            if j.json {
                let v = serde_json::json!({
                    "path": now.path,
                    "url": now.url,
                    "from_version": before,
                    "schema_version": now.schema_version,
                });
                tokenwarden::cli::print_json(&v, true);
                return Ok(());
            }
            match before {
                0 => println!(
                    "store {shown}: created at schema version {}",
                    now.schema_version
                ),
                b if b == now.schema_version => {
                    println!("store {shown}: already at schema version {b}")
                }
                b => println!(
                    "store {shown}: migrated from schema version {b} to {}",
                    now.schema_version
                ),
            }
        }
    }
    Ok(())
}

/// A count, or `unknown` where the store's schema has no table for it yet.
fn known(count: Option<u64>) -> String {
    count.map_or_else(|| "unknown (older schema)".to_owned(), |n| n.to_string())
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(cli) = e.downcast_ref::<CliError>() {
        return cli.exit_code();
    }
    match e.downcast_ref::<AppError>() {
        Some(AppError::Config(_) | AppError::Store(_)) => exit::CONFIG,
        Some(AppError::Service(s)) => service_exit_code(s),
        _ => exit::FAILED,
    }
}

fn init_logging(level: Option<&str>, format: LogFormat, default: &str) {
    let spec = level
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_owned());
    let format = match format {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    };
    logging::init(&spec, default, format);
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let json_of = |c: &Command| match c {
        Command::Check(j) | Command::Databases(j) | Command::Audit { json: j, .. } => j.json,
        Command::Tokens(t) => match t {
            TokensCommand::List { json, .. }
            | TokensCommand::CreateAdmin { json, .. }
            | TokensCommand::CreateResource { json, .. }
            | TokensCommand::Delete { json, .. }
            | TokensCommand::RegenerateOperator { json, .. }
            | TokensCommand::BootstrapOperator { json, .. }
            | TokensCommand::PruneExpired { json, .. } => json.json,
        },
        Command::Approvals(ApprovalsCommand::List(j))
        | Command::Approvals(ApprovalsCommand::Approve { json: j, .. })
        | Command::Approvals(ApprovalsCommand::Reject { json: j, .. }) => j.json,
        Command::Simulate(_)
        | Command::Demo(_)
        | Command::People(_)
        | Command::Store(_)
        | Command::Mcp { .. }
        | Command::Discord(_)
        | Command::Serve { .. } => false,
    };
    let json = json_of(&opts.command);
    let credentials = match &opts.command {
        Command::Tokens(TokensCommand::BootstrapOperator { .. }) => Credentials::None,
        _ => Credentials::Configured,
    };
    let command = match opts.command {
        Command::People(PeopleCommand::HashPassphrase) => {
            println!("{}", tokenwarden::cli::hash_passphrase()?);
            return Ok(());
        }
        Command::Simulate(a) => {
            let options = SimulateOptions {
                listen: a.listen,
                edition: a.edition.into(),
                without_auth: a.without_auth,
                operator_token_file: a.operator_token_file,
                seed_databases: a.seed_databases,
                seed_demo: a.seed_demo,
                seed_tokens: a.seed_tokens,
            };
            return Ok(app::simulate(options, app::shutdown_signal()).await?);
        }
        Command::Demo(a) => {
            // By default a new private folder with an unpredictable name: nothing planted in
            // the temp dir beforehand can redirect what the demo writes.
            let dir = match a.dir {
                Some(d) => d,
                None => tempfile::Builder::new()
                    .prefix("tokenwarden-demo-")
                    .tempdir()
                    .map_err(|e| {
                        anyhow::anyhow!("cannot create the demo's folder in the temp dir: {e}")
                    })?
                    .keep(),
            };
            let options = DemoOptions {
                listen: a.listen,
                mcp_listen: a.mcp_listen,
                discord: a
                    .discord
                    .map(|addr| addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))),
                edition: a.edition.into(),
                dir,
            };
            return Ok(app::demo(options, app::shutdown_signal()).await?);
        }
        other => other,
    };
    let config = Config::load(&config_path).map_err(AppError::from)?;
    match command {
        Command::Store(c) => return store_command(&config, c),
        Command::Mcp { http: None } => {
            return Ok(app::mcp_stdio(&config, app::shutdown_signal()).await?);
        }
        Command::Mcp { http: Some(listen) } => {
            return Ok(app::mcp_http(&config, listen, app::shutdown_signal()).await?);
        }
        Command::Discord(DiscordArgs {
            action: Some(DiscordAction::Register),
            ..
        }) => {
            println!("{}", app::discord_register(&config).await?);
            return Ok(());
        }
        Command::Discord(DiscordArgs {
            action: None,
            interactions,
            health,
        }) => {
            return Ok(
                app::discord_run(&config, interactions, health, app::shutdown_signal()).await?,
            );
        }
        Command::Serve { http, interactions } => {
            return Ok(app::serve(&config, http, interactions, app::shutdown_signal()).await?);
        }
        _ => {}
    }
    let service = std::sync::Arc::new(app::build_service(&config, credentials)?);
    let needs_influx = !matches!(
        command,
        Command::Audit { .. } | Command::Approvals(ApprovalsCommand::List(_))
    );
    if needs_influx {
        app::spawn_lease_keeper(&service, tokio_util::sync::CancellationToken::new());
        app::recover_briefly(&service, Duration::from_secs(2)).await;
    }
    let cli = Cli {
        service: &service,
        actor: Actor::cli(&tokenwarden::actor::OsAccount::current()),
        instance: opts.instance,
        json,
    };
    let result = match command {
        Command::Check(_) => cli.check().await,
        Command::Databases(_) => cli.databases().await,
        Command::Audit { limit, .. } => cli.audit(limit).await,
        Command::Tokens(TokensCommand::List {
            name,
            kind,
            database,
            status,
            expiring_within,
            limit,
            cursor,
            all,
            ..
        }) => {
            let filter = ListFilter {
                name_contains: name,
                name_is: None,
                kind,
                database,
                status,
                expiring_within,
            };
            cli.list(
                &filter,
                Page {
                    offset: cursor,
                    limit: limit as usize,
                },
                all,
            )
            .await
        }
        Command::Tokens(TokensCommand::CreateAdmin { name, expiry, .. }) => {
            cli.create(
                &name,
                &[],
                expiry.expires_in.as_deref(),
                expiry.expires_at.as_deref(),
            )
            .await
        }
        Command::Tokens(TokensCommand::CreateResource {
            name,
            permissions,
            expiry,
            ..
        }) => {
            cli.create(
                &name,
                &permissions,
                expiry.expires_in.as_deref(),
                expiry.expires_at.as_deref(),
            )
            .await
        }
        Command::Tokens(TokensCommand::Delete { name, yes, .. }) => cli.delete(&name, yes).await,
        Command::Tokens(TokensCommand::RegenerateOperator {
            yes, token_file, ..
        }) => cli.regenerate_operator(yes, token_file.as_deref()).await,
        Command::Tokens(TokensCommand::BootstrapOperator { token_file, .. }) => {
            cli.bootstrap_operator(&token_file).await
        }
        Command::Tokens(TokensCommand::PruneExpired { yes, .. }) => cli.prune_expired(yes).await,
        Command::Approvals(ApprovalsCommand::List(_)) => cli.approvals_list().await,
        Command::Approvals(ApprovalsCommand::Approve { id, .. }) => {
            cli.approvals_approve(&id).await
        }
        Command::Approvals(ApprovalsCommand::Reject { id, reason, .. }) => {
            cli.approvals_reject(&id, reason).await
        }
        Command::Simulate(_)
        | Command::Demo(_)
        | Command::People(_)
        | Command::Store(_)
        | Command::Mcp { .. }
        | Command::Discord(_)
        | Command::Serve { .. } => Ok(()),
    };
    Ok(result?)
}

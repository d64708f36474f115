//! Wiring for the binary: builds the core from a [`Config`], and runs the simulator and the demo.
//! Besides `main.rs`, the one module that sees every other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, InstanceConfig, TokenSource};
use crate::discord::{self, Bot, DiscordError};
use crate::influx::{ClientOptions, InfluxClient, Reload};
use crate::mcp::{self, McpCore, McpError};
use crate::service::{Clock, InstanceSettings, LinkKey, ServiceError, TokenService};
use crate::sim::{SimSettings, Simulator};
use crate::store::Store;
mod demo;

pub use demo::{DemoOptions, demo};

use crate::tokens::{
    BackendError, CreatedToken, Database, Edition, ListFilter, Page, Permission, RawToken,
    ServerInfo, Token, TokenBackend, TokenName,
};

/// Why the binary could not start its work.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Mcp(#[from] McpError),
    #[error(transparent)]
    Discord(#[from] DiscordError),
    #[error("the config has no [discord] section; see config.example.toml")]
    NoDiscord,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Which credentials the backends get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// Each instance's configured token.
    Configured,
    /// No token at all (bootstrapping a server that has none).
    None,
}

/// Builds the core for `config`. An instance whose token cannot be read still exists, and every
/// call to it reports why (so one broken instance does not block the others).
pub fn build_service(config: &Config, credentials: Credentials) -> Result<TokenService, AppError> {
    let link_key = match &config.link_key_file {
        Some(file) => LinkKey::from_file(file).map_err(|detail| ConfigError::Invalid {
            path: config.path.clone(),
            detail,
        })?,
        None => LinkKey::ephemeral(),
    };
    let store = Store::connect(&config.store).map_err(ServiceError::from)?;
    let instances = config
        .instances
        .iter()
        .map(|inst| {
            let settings = InstanceSettings {
                name: inst.name.clone(),
                read_only: inst.read_only,
                protected: inst.protected.clone(),
                edition: inst.edition.fixed(),
                operator_token_file: inst.operator_token_file.clone(),
                credential_file: match &inst.token {
                    TokenSource::File(path) => Some(path.clone()),
                    _ => None,
                },
            };
            (settings, backend_for(inst, credentials))
        })
        .collect();
    Ok(TokenService::new(
        instances,
        Some(config.default_instance.clone()),
        store,
        Clock::System,
        config.gate.confirm_timeout,
    )
    .with_people(config.people.clone())
    .with_link_key(link_key))
}

fn backend_for(inst: &InstanceConfig, credentials: Credentials) -> Arc<dyn TokenBackend> {
    let token = match credentials {
        Credentials::None => None,
        Credentials::Configured => match inst.token.resolve() {
            Ok(t) => Some(t),
            Err(e) => {
                return Arc::new(Unusable {
                    url: inst.url.clone(),
                    why: e.to_string(),
                });
            }
        },
    };
    let options = ClientOptions {
        url: inst.url.clone(),
        token,
        timeout: inst.timeout,
        ca_file: inst.ca_file.clone(),
    };
    match InfluxClient::new(options) {
        // A token file shared with other processes may be rewritten by one that regenerates the
        // operator token: the others read it again when InfluxDB refuses the old one.
        Ok(c) => match (&inst.token, credentials) {
            (TokenSource::File(path), Credentials::Configured) => {
                let source = TokenSource::File(path.clone());
                Arc::new(c.reloading(Reload(Arc::new(move || source.resolve().ok()))))
            }
            _ => Arc::new(c),
        },
        Err(e) => Arc::new(Unusable {
            url: inst.url.clone(),
            why: e.to_string(),
        }),
    }
}

/// A backend that cannot be built (missing secret, unreadable CA file): every call says why.
struct Unusable {
    url: String,
    why: String,
}

impl Unusable {
    fn err<T>(&self) -> Result<T, BackendError> {
        Err(BackendError::Setup(self.why.clone()))
    }
}

#[async_trait]
impl TokenBackend for Unusable {
    fn url(&self) -> &str {
        &self.url
    }
    async fn ping(&self) -> Result<ServerInfo, BackendError> {
        self.err()
    }
    async fn list_tokens(
        &self,
        _: &ListFilter,
        _: Option<Page>,
        _: DateTime<Utc>,
    ) -> Result<Vec<Token>, BackendError> {
        self.err()
    }
    async fn list_databases(&self) -> Result<Vec<Database>, BackendError> {
        self.err()
    }
    async fn highest_token_id(&self) -> Result<Option<u64>, BackendError> {
        self.err()
    }
    async fn create_admin_token(
        &self,
        _: &TokenName,
        _: Option<u64>,
    ) -> Result<CreatedToken, BackendError> {
        self.err()
    }
    async fn create_resource_token(
        &self,
        _: &TokenName,
        _: &[Permission],
        _: Option<u64>,
    ) -> Result<CreatedToken, BackendError> {
        self.err()
    }
    async fn delete_token(&self, _: &TokenName) -> Result<(), BackendError> {
        self.err()
    }
    async fn regenerate_operator_token(&self) -> Result<CreatedToken, BackendError> {
        self.err()
    }
    async fn bootstrap_operator_token(&self) -> Result<CreatedToken, BackendError> {
        self.err()
    }
    async fn authenticates(&self, _: &RawToken) -> Result<bool, BackendError> {
        self.err()
    }
    fn set_credential(&self, _: RawToken) {}
}

/// Options of `tokenwarden simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub listen: String,
    pub edition: Edition,
    pub without_auth: bool,
    pub operator_token_file: Option<PathBuf>,
    pub seed_databases: Vec<String>,
    pub seed_demo: bool,
    pub seed_tokens: usize,
}

/// Runs a simulator until `shutdown`, printing its address on stdout once it listens.
pub async fn simulate(
    opts: SimulateOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let sim = Simulator::new(SimSettings {
        edition: opts.edition,
        without_auth: opts.without_auth,
        ..Default::default()
    });
    let control = sim.control();
    let mut note = String::new();
    if let Some(path) = &opts.operator_token_file {
        if opts.without_auth {
            note = format!(" (started without auth: {} is ignored)", path.display());
        } else if path.exists() {
            let raw = TokenSource::File(path.clone()).resolve()?;
            control.register_operator(&raw);
            note = format!("; operator token read from {}", path.display());
        } else if let Some(raw) = control.create_operator() {
            write_private(path, raw.expose())?;
            note = format!("; operator token written to {} (mode 0600)", path.display());
        }
    }
    for db in &opts.seed_databases {
        control.create_database(db);
    }
    if opts.seed_demo {
        control.seed_demo();
    }
    control.seed_tokens(opts.seed_tokens);
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: opts.listen.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Io(e.to_string()))?;
    println!(
        "InfluxDB 3 simulator ({}) listening on http://{addr}{note}",
        opts.edition
    );
    sim.serve(listener, shutdown)
        .await
        .map_err(|e| AppError::Io(e.to_string()))
}

/// Settles what dead processes left unfinished before a command that talks to InfluxDB, for at
/// most `within`; whatever is left waits for the next process.
pub async fn recover_briefly(service: &TokenService, within: std::time::Duration) {
    match tokio::time::timeout(within, service.recover()).await {
        Ok(report) if report.settled > 0 => {
            tracing::info!(
                settled = report.settled,
                "settled unfinished operations of earlier processes"
            );
        }
        Ok(_) => {}
        Err(_) => {
            tracing::info!("recovery of earlier processes' work continues in the next command")
        }
    }
}

/// Keeps this process's leases alive and settles dead processes' work until `stop`.
fn spawn_maintenance(service: &Arc<TokenService>, stop: tokio_util::sync::CancellationToken) {
    spawn_lease_keeper(service, stop.clone());
    let service = Arc::clone(service);
    tokio::spawn(async move { service.maintain(stop).await });
}

/// Keeps this process's leases alive until `stop` (a CLI command that outlasts a lease).
pub fn spawn_lease_keeper(service: &Arc<TokenService>, stop: tokio_util::sync::CancellationToken) {
    let service = Arc::clone(service);
    tokio::spawn(async move { service.keep_leases(stop).await });
}

/// Runs the MCP server on stdin/stdout for the configured instances, until the client closes
/// stdin or `shutdown` completes.
pub async fn mcp_stdio(
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let service = Arc::new(build_service(config, Credentials::Configured)?);
    let stop = tokio_util::sync::CancellationToken::new();
    spawn_maintenance(&service, stop.clone());
    let core = McpCore::new(service, config.mcp.settings.clone());
    let served = mcp::serve_stdio(core, shutdown).await;
    stop.cancel();
    Ok(served?)
}

/// Runs the MCP server over streamable HTTP until `shutdown`, printing its URL on stderr.
pub async fn mcp_http(
    config: &Config,
    listen: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let http = config.mcp.http(listen)?;
    http.check()?;
    let (listener, addr) = bind(http.listen).await?;
    let service = Arc::new(build_service(config, Credentials::Configured)?);
    let stop = cancel_on(shutdown);
    spawn_maintenance(&service, stop.clone());
    let core = McpCore::new(service, config.mcp.settings.clone());
    eprintln!("tokenwarden MCP server listening on http://{addr}/mcp");
    Ok(mcp::serve_http(core, http, listener, stop.cancelled_owned()).await?)
}

/// Binds `addr`, and says where it ended up (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), AppError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| AppError::Io(e.to_string()))?;
    Ok((listener, local))
}

/// Registers the `/token` slash command with Discord.
pub async fn discord_register(config: &Config) -> Result<String, AppError> {
    let d = config.discord.as_ref().ok_or(AppError::NoDiscord)?;
    let http = discord::rest_client(&d.settings, &d.bot_token.resolve()?);
    Ok(discord::register(&http, &d.settings).await?)
}

fn bot(
    config: &Config,
    service: Arc<crate::service::TokenService>,
) -> Result<(Arc<Bot>, crate::tokens::RawToken), AppError> {
    let d = config.discord.as_ref().ok_or(AppError::NoDiscord)?;
    let token = d.bot_token.resolve()?;
    Ok((Bot::new(service, d.settings.clone(), &token), token))
}

/// Runs the Discord bot (gateway, or the interactions endpoint on `interactions`) until `stop`.
async fn discord_with(
    config: &Config,
    service: Arc<crate::service::TokenService>,
    interactions: Option<SocketAddr>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), AppError> {
    let (bot, token) = bot(config, service)?;
    match interactions {
        Some(addr) => Ok(discord::serve_interactions(bot, addr, stop).await?),
        None => Ok(discord::run_gateway(bot, &token, stop).await?),
    }
}

/// Runs the Discord bot until `shutdown`, with `/health` and `/ready` on `health` if given.
pub async fn discord_run(
    config: &Config,
    interactions: Option<SocketAddr>,
    health: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let health = match health {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let service = Arc::new(build_service(config, Credentials::Configured)?);
    let stop = cancel_on(shutdown);
    spawn_maintenance(&service, stop.clone());
    if let Some((listener, addr)) = health {
        eprintln!("tokenwarden health checks listening on http://{addr}/health and /ready");
        tokio::spawn(crate::http_serve::serve(
            listener,
            crate::health::routes(Arc::clone(&service)),
            crate::http_serve::HttpLimits::default(),
            stop.clone().cancelled_owned(),
        ));
    }
    discord_with(config, service, interactions, stop).await
}

/// Runs the MCP HTTP server and the Discord bot in one process, over one core, until `shutdown`.
pub async fn serve(
    config: &Config,
    mcp_listen: Option<SocketAddr>,
    interactions: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let http = config.mcp.http(mcp_listen)?;
    http.check()?;
    let (listener, addr) = bind(http.listen).await?;
    let service = Arc::new(build_service(config, Credentials::Configured)?);
    let core = McpCore::new(Arc::clone(&service), config.mcp.settings.clone());
    let stop = cancel_on(shutdown);
    spawn_maintenance(&service, stop.clone());
    eprintln!("tokenwarden MCP server listening on http://{addr}/mcp");
    let (mcp_result, discord_result) = tokio::join!(
        mcp::serve_http(core, http, listener, stop.clone().cancelled_owned()),
        discord_with(config, service, interactions, stop.clone()),
    );
    stop.cancel();
    mcp_result?;
    discord_result
}

/// A cancellation token cancelled when `shutdown` completes.
fn cancel_on(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    stop
}

/// Writes `secret` to a new file with mode 0600.
pub(crate) fn write_private(path: &Path, secret: &str) -> Result<(), AppError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |e: std::io::Error| AppError::Io(format!("cannot write {}: {e}", path.display()));
    let mut f = options.open(path).map_err(io)?;
    f.write_all(format!("{secret}\n").as_bytes()).map_err(io)
}

/// Completes on the first SIGINT (Ctrl-C), SIGTERM or SIGHUP: every server treats them alike,
/// so a closed terminal or a client's stop signal still runs the shutdown path. The handlers are
/// installed when this is called, not when it is first awaited.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for a shutdown signal");
            None
        }
    };
    async fn recv(signal: Option<Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let interrupt = recv(listen(SignalKind::interrupt()));
    let terminate = recv(listen(SignalKind::terminate()));
    let hangup = recv(listen(SignalKind::hangup()));
    async move {
        tokio::select! {
            () = interrupt => {},
            () = terminate => {},
            () = hangup => {},
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

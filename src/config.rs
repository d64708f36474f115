//! The configuration file: TOML in, a validated [`Config`] out. Unknown keys are errors, paths
//! are relative to the file, and secrets are read from files or the environment, never printed.

mod discord;
mod instance;
mod limits;
mod mcp;
mod people;
mod redact;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::tokens::{Edition, ProtectedNames, RawToken};

pub use discord::DiscordConfig;
pub use mcp::{DEFAULT_HTTP_LISTEN, McpConfig};

/// Warns when a secret's file can be read by other users (InfluxDB 3 warns likewise about its
/// admin token file); the file is still used, as its owner chose the mode.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{mode:o}"),
                    "a secret's file can be read by other users of this host; run chmod 600 on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The file read when neither `--config` nor `TOKENWARDEN_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "tokenwarden.toml";

/// Why the configuration cannot be used. Each message names the file, key, variable or path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no config file at {path}: copy config.example.toml there, pass --config FILE, or run \
         `tokenwarden demo` to try tokenwarden against its built-in simulator"
    )]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("config file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("environment variable {var} is not set; export it or use token_file")]
    MissingEnv { var: String },
    #[error(
        "token_env must name an environment variable (such as INFLUXDB3_AUTH_TOKEN), and its value is not a \
         variable name: if it is the token itself, put the token in a file and set token_file instead"
    )]
    NotAVariable,
    #[error("cannot read token file {path}: {detail}")]
    TokenFile { path: PathBuf, detail: String },
    #[error("the token from {source_name} is empty")]
    EmptyToken { source_name: String },
    #[error("no instance named `{name}`; configured instances: {known}")]
    UnknownInstance { name: String, known: String },
    #[error(
        "mcp.http.clients `{first}` and `{second}` have the same token; give each client its own \
         (the token is how tokenwarden tells which client acted)"
    )]
    SharedClientToken { first: String, second: String },
}

/// Which product an instance runs, or `Auto` to ask its `/ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditionSetting {
    #[default]
    Auto,
    Core,
    Enterprise,
}

impl EditionSetting {
    /// The fixed edition, or `None` for auto-detection.
    pub fn fixed(self) -> Option<Edition> {
        match self {
            Self::Auto => None,
            Self::Core => Some(Edition::Core),
            Self::Enterprise => Some(Edition::Enterprise),
        }
    }
}

/// Where an instance's token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    File(PathBuf),
    Env(String),
    /// Only with `allow_inline_token = true`.
    Inline(RawToken),
}

impl TokenSource {
    /// Reads the token. A file may hold the bare token, or the JSON that
    /// `influxdb3 create token --offline` writes (`{"token": ...}`).
    pub fn resolve(&self) -> Result<RawToken, ConfigError> {
        let (text, source_name) = match self {
            Self::Inline(t) => return Ok(t.clone()),
            Self::Env(var) => match std::env::var(var) {
                Ok(v) => (v, var.clone()),
                Err(_) if !redact::is_variable_name(var) => {
                    return Err(ConfigError::NotAVariable);
                }
                Err(_) => {
                    return Err(ConfigError::MissingEnv { var: var.clone() });
                }
            },
            Self::File(path) => match std::fs::read_to_string(path) {
                Ok(v) => {
                    warn_if_shared(path);
                    (v, path.display().to_string())
                }
                Err(e) => {
                    return Err(ConfigError::TokenFile {
                        path: path.clone(),
                        detail: e.to_string(),
                    });
                }
            },
        };
        let text = text.trim();
        let token = if text.starts_with('{') {
            #[derive(Deserialize)]
            struct OfflineFile {
                token: String,
            }
            serde_json::from_str::<OfflineFile>(text)
                .map(|f| f.token)
                .map_err(|e| ConfigError::TokenFile {
                    path: PathBuf::from(&source_name),
                    detail: format!("JSON without a `token` field ({})", e.classify_name()),
                })?
        } else {
            text.to_owned()
        };
        if token.is_empty() {
            return Err(ConfigError::EmptyToken { source_name });
        }
        Ok(RawToken::new(token))
    }

    /// Where the token is read from, for messages (never the token itself).
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("file {}", p.display()),
            Self::Env(v) => format!("environment variable {v}"),
            Self::Inline(_) => "the config file (inline)".to_owned(),
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "not valid JSON"
            }
            serde_json::error::Category::Data => "unexpected fields",
        }
    }
}

/// One InfluxDB 3 server.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub name: String,
    /// Base URL without a trailing slash.
    pub url: String,
    pub token: TokenSource,
    pub edition: EditionSetting,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub read_only: bool,
    pub protected: ProtectedNames,
    /// Where a regenerated operator secret is written (0600, atomically); regeneration is
    /// refused without it.
    pub operator_token_file: Option<PathBuf>,
}

/// The gate's settings.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// How long a requested confirmation stays valid.
    pub confirm_timeout: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Where the store lives: a SQLite file, or a PostgreSQL database.
    pub store: crate::store::Location,
    /// The key reveal links are sealed with in the store (`[store] link_key_file`), shared by
    /// the replicas; required with PostgreSQL.
    pub link_key_file: Option<PathBuf>,
    pub gate: GateConfig,
    pub instances: Vec<InstanceConfig>,
    /// Name of the instance used when none is given.
    pub default_instance: String,
    /// The `[mcp]` section (defaults when absent).
    pub mcp: McpConfig,
    /// The `[discord]` section, if any.
    pub discord: Option<DiscordConfig>,
    /// The `[[people]]` tables: accounts that are one person.
    pub people: crate::people::People,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    detail: e.to_string(),
                });
            }
        };
        Self::parse(&text, path)
    }

    /// Validates `text` as if read from `path` (relative paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.to_owned(),
            detail: redact::redact(&detail),
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        if raw.instances.is_empty() {
            return Err(invalid(
                "no [[instances]]: configure at least one InfluxDB 3 server".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut instances = Vec::new();
        for inst in raw.instances {
            if !seen.insert(inst.name.clone()) {
                return Err(invalid(format!(
                    "instance name `{}` is used twice",
                    inst.name
                )));
            }
            instances.push(inst.validate(&resolve).map_err(invalid)?);
        }
        let default_instance = match raw.default_instance {
            Some(name) if !seen.contains(&name) => {
                return Err(invalid(format!(
                    "default_instance `{name}` is not one of the [[instances]]"
                )));
            }
            Some(name) => name,
            None => instances[0].name.clone(),
        };
        let store = raw.store.unwrap_or_default();
        let gate = raw.gate.unwrap_or_default();
        let mcp = raw
            .mcp
            .unwrap_or_default()
            .validate(&resolve)
            .map_err(invalid)?;
        let discord = raw
            .discord
            .map(|d| d.validate(&resolve))
            .transpose()
            .map_err(invalid)?;
        let clients: Vec<String> = mcp.http_clients.iter().map(|(n, _)| n.clone()).collect();
        let people = people::validate(raw.people, &clients).map_err(invalid)?;
        if let Some(approvals) = &mcp.settings.approvals
            && discord.is_none()
            && !approvals
                .approve_from
                .contains(&crate::actor::ActorKind::Cli)
        {
            return Err(invalid(
                "mcp.approve_deletes: deletes asked through MCP are approved in Discord, and there is no \
                 [discord] section; configure the bot, or set mcp.approve_from = [\"cli\"] to approve \
                 them with `tokenwarden approvals approve` (read the README's threat model first)"
                    .into(),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            link_key_file: store.link_key_file.as_deref().map(&resolve),
            store: store.validate(&resolve).map_err(invalid)?,
            gate: GateConfig {
                confirm_timeout: parse_duration_key("gate.confirm_timeout", &gate.confirm_timeout)
                    .map_err(invalid)?,
            },
            instances,
            default_instance,
            mcp,
            discord,
            people,
        })
    }

    /// The named instance, or the default one.
    pub fn instance(&self, name: Option<&str>) -> Result<&InstanceConfig, ConfigError> {
        let name = name.unwrap_or(&self.default_instance);
        self.instances
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| ConfigError::UnknownInstance {
                name: name.to_owned(),
                known: self
                    .instances
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default_instance: Option<String>,
    store: Option<RawStore>,
    gate: Option<RawGate>,
    #[serde(default)]
    instances: Vec<instance::RawInstance>,
    mcp: Option<mcp::RawMcp>,
    discord: Option<discord::RawDiscord>,
    #[serde(default)]
    people: Vec<people::RawPerson>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    link_key_file: Option<PathBuf>,
}

impl RawStore {
    fn validate(
        self,
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Result<crate::store::Location, String> {
        use crate::store::{Location, Password, PgTarget};
        let Some(url) = self.url else {
            if self.password_file.is_some() || self.password_env.is_some() || self.ca_file.is_some()
            {
                return Err(
                    "store.password_file, store.password_env and store.ca_file go with store.url (PostgreSQL)"
                        .into(),
                );
            }
            return Ok(Location::File(resolve(
                &self.path.unwrap_or_else(default_store_path),
            )));
        };
        if self.path.is_some() {
            return Err(
                "[store] has both path (SQLite) and url (PostgreSQL); keep the one the store is in"
                    .into(),
            );
        }
        if self.link_key_file.is_none() {
            return Err(
                "[store] url needs link_key_file: a file of at least 32 random bytes that every replica \
                 has (make one with `openssl rand -hex 32`); reveal links are sealed with it in the store, \
                 so that they open on any replica"
                    .into(),
            );
        }
        let password = match (self.password_file, self.password_env) {
            (Some(_), Some(_)) => {
                return Err("[store] has both password_file and password_env; keep one".into());
            }
            (Some(file), None) => Some(Password::File(resolve(&file))),
            (None, Some(var)) => Some(Password::Env(var)),
            (None, None) => None,
        };
        let target = PgTarget {
            url,
            password,
            ca_file: self.ca_file.map(|f| resolve(&f)),
        };
        target.check()?;
        Ok(Location::Postgres(target))
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("tokenwarden.db")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    #[serde(default = "default_confirm_timeout")]
    confirm_timeout: String,
}

impl Default for RawGate {
    fn default() -> Self {
        Self {
            confirm_timeout: default_confirm_timeout(),
        }
    }
}

fn default_confirm_timeout() -> String {
    "5m".into()
}

/// `approve_from = ["discord", "cli"]`: the adapters approvals may come through (`default`
/// when absent). An MCP client cannot approve: tokenwarden offers it no tool to.
fn approve_from(
    key: &str,
    given: Option<&[String]>,
    default: &[crate::actor::ActorKind],
) -> Result<Vec<crate::actor::ActorKind>, String> {
    use crate::actor::ActorKind;
    let Some(given) = given else {
        return Ok(default.to_vec());
    };
    let mut out = Vec::new();
    for name in given {
        let kind = match name.as_str() {
            "discord" => ActorKind::Discord,
            "cli" => ActorKind::Cli,
            other => {
                return Err(format!(
                    "{key}: `{other}` is not one of discord, cli (MCP clients cannot approve)"
                ));
            }
        };
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{key} is empty: nothing could ever approve; list discord, cli or both"
        ));
    }
    Ok(out)
}

fn parse_duration_key(key: &str, value: &str) -> Result<Duration, String> {
    crate::tokens::parse_duration(value).map_err(|e| format!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[store]
path = "tokenwarden.db"

[[instances]]
name = "local"
url = "http://127.0.0.1:8181"
token_file = "operator.token"    # or: token_env = "INFLUXDB3_AUTH_TOKEN"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/tw/tokenwarden.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn no_client_may_be_called_anonymous() {
        let e = err(&format!(
            "{MINIMAL}\n[[mcp.http.clients]]\nname = \"anonymous\"\ntoken_env = \"X\"\n"
        ));
        assert!(e.contains("the name `anonymous` is taken"), "{e}");
    }

    #[test]
    fn each_client_has_its_own_name_and_its_own_token() {
        let twice = err(&format!(
            "{MINIMAL}\n[[mcp.http.clients]]\nname = \"ci\"\ntoken_env = \"A\"\n\
             [[mcp.http.clients]]\nname = \"ci\"\ntoken_env = \"B\"\n"
        ));
        assert!(twice.contains("two clients are named `ci`"), "{twice}");
        for odd in ["", " ", "ci\\nroot"] {
            let e = err(&format!(
                "{MINIMAL}\n[[mcp.http.clients]]\nname = \"{odd}\"\ntoken_env = \"A\"\n"
            ));
            assert!(
                e.contains("a name without control characters"),
                "{odd:?}: {e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        for (file, token) in [("a", "same-secret\n"), ("b", "same-secret"), ("c", "other")] {
            std::fs::write(dir.path().join(file), token).unwrap();
        }
        let clients = |second: &str| {
            format!(
                "{MINIMAL}\n[[mcp.http.clients]]\nname = \"laptop\"\ntoken_file = \"a\"\n\
                 [[mcp.http.clients]]\nname = \"ci\"\ntoken_file = \"{second}\"\n"
            )
        };
        let cfg = dir.path().join("tokenwarden.toml");
        let shared = Config::parse(&clients("b"), &cfg).unwrap().mcp.http(None);
        let e = shared.unwrap_err().to_string();
        assert!(
            e.contains("`laptop` and `ci` have the same token") && !e.contains("same-secret"),
            "{e}"
        );
        let own = Config::parse(&clients("c"), &cfg).unwrap().mcp.http(None);
        assert_eq!(own.unwrap().clients.len(), 2);
    }

    #[test]
    fn the_minimal_file_from_the_readme_works() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.store,
            crate::store::Location::File("/etc/tw/tokenwarden.db".into())
        );
        assert_eq!(c.default_instance, "local");
        let i = c.instance(None).unwrap();
        assert_eq!(i.url, "http://127.0.0.1:8181");
        assert!(
            matches!(&i.token, TokenSource::File(p) if p == Path::new("/etc/tw/operator.token"))
        );
        assert_eq!(i.edition, EditionSetting::Auto);
        assert_eq!(i.timeout, Duration::from_secs(10));
        assert_eq!(i.protected.protecting("_admin"), Some("_admin"));
        assert_eq!(c.gate.confirm_timeout, Duration::from_secs(300));
    }

    #[test]
    fn a_postgres_store_needs_a_link_key_and_no_password_in_its_url() {
        let base = "[[instances]]\nname = \"a\"\nurl = \"http://h\"\ntoken_env = \"T\"\n";
        let with = |store: &str| format!("[store]\n{store}\n{base}");
        let e = err(&with("url = \"postgres://tw@db/tw\""));
        assert!(e.contains("needs link_key_file"), "{e}");
        let e = err(&with(
            "url = \"postgres://tw:hunter2@db/tw\"\nlink_key_file = \"k\"",
        ));
        assert!(
            e.contains("holds a password") && !e.contains("hunter2"),
            "{e}"
        );
        let e = err(&with(
            "path = \"x.db\"\nurl = \"postgres://tw@db/tw\"\nlink_key_file = \"k\"",
        ));
        assert!(e.contains("both path (SQLite) and url"), "{e}");
        let e = err(&with("password_env = \"PG\""));
        assert!(e.contains("go with store.url"), "{e}");
        let c = parse(&with(
            "url = \"postgres://tw@db/tw?sslmode=require\"\npassword_file = \"pg.pw\"\nlink_key_file = \"k\"",
        ))
        .unwrap();
        assert_eq!(
            c.store,
            crate::store::Location::Postgres(crate::store::PgTarget {
                url: "postgres://tw@db/tw?sslmode=require".into(),
                password: Some(crate::store::Password::File("/etc/tw/pg.pw".into())),
                ca_file: None,
            })
        );
        assert_eq!(c.link_key_file, Some("/etc/tw/k".into()));
    }

    #[test]
    fn the_public_urls_host_is_allowed_by_default() {
        let c = parse(
            "[[instances]]\nname = \"a\"\nurl = \"http://h\"\ntoken_env = \"T\"\n\
             [mcp.http]\npublic_url = \"https://tw.example.com\"\nallow_no_auth = true\n",
        )
        .unwrap();
        let http = c.mcp.http(None).unwrap();
        assert!(
            http.allowed_hosts.contains(&"tw.example.com".to_owned()),
            "{:?}",
            http.allowed_hosts
        );
    }

    #[test]
    fn the_example_file_parses() {
        let c = Config::parse(
            include_str!("../config.example.toml"),
            Path::new("config.example.toml"),
        )
        .unwrap();
        assert!(c.instances.len() >= 2);
        assert!(
            c.instance(Some("prod"))
                .unwrap()
                .protected
                .protecting("grafana-prod")
                .is_some()
        );
    }

    #[test]
    fn approvals_of_mcp_requests_come_from_discord_unless_the_cli_is_let_in() {
        use crate::actor::ActorKind;
        let with = |text: &str| parse(&format!("{MINIMAL}\n{text}\n"));
        let alone = with("[mcp]\napprove_deletes = true")
            .unwrap_err()
            .to_string();
        assert!(
            alone.contains("there is no [discord] section")
                && alone.contains("mcp.approve_from = [\"cli\"]"),
            "{alone}"
        );
        let cli = with("[mcp]\napprove_deletes = true\napprove_from = [\"cli\", \"cli\"]").unwrap();
        assert_eq!(
            cli.mcp.settings.approvals.unwrap().approve_from,
            [ActorKind::Cli]
        );
        let example = Config::parse(
            include_str!("../config.example.toml"),
            Path::new("/x/config.example.toml"),
        )
        .unwrap();
        assert_eq!(
            example.discord.unwrap().settings.approve_from,
            [ActorKind::Discord, ActorKind::Cli]
        );
        for (text, want) in [
            ("[mcp]\napprove_from = []", "mcp.approve_from is empty"),
            (
                "[mcp]\napprove_from = [\"mcp\"]",
                "MCP clients cannot approve",
            ),
            (
                "[mcp]\napprove_from = [\"slack\"]",
                "`slack` is not one of discord, cli",
            ),
        ] {
            let got = with(text).unwrap_err().to_string();
            assert!(got.contains(want), "{text}: {got}");
        }
    }

    #[test]
    fn people_tie_accounts_to_configured_clients() {
        let text = format!(
            "{MINIMAL}\n[[mcp.http.clients]]\nname = \"ann-laptop\"\ntoken_env = \"X\"\n\n\
             [[people]]\nname = \"ann\"\nmcp_clients = [\"ann-laptop\"]\ndiscord_user_ids = [\"42\"]\n"
        );
        let c = parse(&text).unwrap();
        let ann = c.people.named("ann").unwrap();
        assert!(ann.mcp_clients.contains("ann-laptop") && ann.discord.contains(&42));
        let typo = err(&text.replace("mcp_clients = [\"ann-laptop\"]", "mcp_clients = [\"ann\"]"));
        assert!(typo.contains("no [[mcp.http.clients]] entry"), "{typo}");
        // A pasted passphrase is not echoed in the error.
        let pasted = err(&format!(
            "{MINIMAL}\n[[people]]\nname = \"ann\"\npassphrase_hash = \"correct horse\n"
        ));
        assert!(!pasted.contains("correct horse"), "{pasted}");
    }

    #[test]
    fn the_mcp_section_has_safe_defaults_and_checks_its_values() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.mcp.settings.secret_mode,
            crate::mcp::SecretMode::RevealLink
        );
        assert!(
            !c.mcp.settings.read_only
                && !c.mcp.settings.allow_regenerate
                && c.mcp.settings.approvals.is_none()
        );
        assert_eq!(c.mcp.http_listen.to_string(), "127.0.0.1:8765");
        let example = Config::parse(
            include_str!("../config.example.toml"),
            Path::new("/x/config.example.toml"),
        )
        .unwrap();
        assert_eq!(example.mcp.http_clients.len(), 1);

        let with = |mcp: &str| err(&format!("{MINIMAL}\n{mcp}\n"));
        assert!(
            with("[mcp]\nsecret_delivery = \"email\"")
                .contains("is not one of reveal_link, private, file, inline")
        );
        assert!(with("[mcp]\nsecret_delivery = \"file\"").contains("needs mcp.secret_dir"));
        assert!(
            with("[mcp]\nreveal_listen = \"0.0.0.0:9000\"").contains("must be a loopback address")
        );
        assert!(
            with("[mcp.http]\nlisten = \"0.0.0.0:8765\"\nallow_no_auth = true")
                .contains("only works on a loopback")
        );
        assert!(with("[mcp]\nrequired_approvals = 0").contains("at least 1"));
        assert!(with("[mcp.http]\nlistne = \"x\"").contains("unknown field `listne`"));
        let file = parse(&format!(
            "{MINIMAL}\n[mcp]\nsecret_delivery = \"file\"\nsecret_dir = \"secrets\"\n"
        ))
        .unwrap();
        assert_eq!(
            file.mcp.settings.secret_mode,
            crate::mcp::SecretMode::File("/etc/tw/secrets".into())
        );
    }

    /// The example with its commented `# key = value` lines for `keys` written out.
    fn uncommented(keys: &[&str]) -> String {
        let example = include_str!("../config.example.toml");
        let line = |l: &str| {
            let written = l.strip_prefix("# ").filter(|rest| {
                keys.iter()
                    .any(|k| rest.strip_prefix(k).is_some_and(|r| r.starts_with(" =")))
            });
            written.unwrap_or(l).to_owned()
        };
        example.lines().map(line).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn the_example_states_the_defaults_of_the_listener_limits() {
        use crate::http_serve::HttpLimits;
        let path = Path::new("/x/config.example.toml");
        let plain = Config::parse(include_str!("../config.example.toml"), path).unwrap();
        let keys = [
            "header_read_timeout",
            "idle_timeout",
            "max_connections",
            "max_sessions",
        ];
        let text = uncommented(&keys);
        assert_eq!(text.matches("header_read_timeout =").count(), 2);
        let written = Config::parse(&text, path).unwrap();
        assert_eq!(plain.mcp.limits, HttpLimits::default());
        assert_eq!(written.mcp.limits, plain.mcp.limits);
        assert_eq!(written.mcp.max_sessions, plain.mcp.max_sessions);
        assert_eq!(plain.mcp.max_sessions, mcp::DEFAULT_MAX_SESSIONS);
        assert_eq!(plain.mcp.settings.reveal_limits, plain.mcp.limits);
        assert!(
            plain.mcp.allowed_origins.is_empty(),
            "no browser origin unless configured"
        );
        let endpoint = |c: Config| c.discord.unwrap().settings.endpoint_limits;
        assert_eq!(endpoint(written), HttpLimits::default());
        assert_eq!(endpoint(plain), HttpLimits::default());

        let with = |extra: &str| err(&format!("{MINIMAL}\n{extra}\n"));
        assert!(with("[mcp.http]\nmax_sessions = 0").contains("mcp.http.max_sessions"));
        assert!(
            with("[mcp.http]\nidle_timeout = \"0s\"")
                .contains("mcp.http.idle_timeout must be more than zero")
        );
        let base = "[discord]\napplication_id = \"42\"\nbot_token_env = \"T\"\n";
        assert!(
            with(&format!("{base}[discord.endpoint]\nmax_sessions = 3"))
                .contains("unknown field `max_sessions`")
        );
        let set = parse(&format!(
            "{MINIMAL}\n[mcp.http]\nheader_read_timeout = \"3s\"\nmax_sessions = 9\n\
             {base}[discord.endpoint]\nmax_connections = 7\n"
        ))
        .unwrap();
        assert_eq!(set.mcp.limits.header_read_timeout, Duration::from_secs(3));
        assert_eq!(set.mcp.max_sessions, 9);
        assert_eq!(endpoint(set).max_connections, 7);
    }

    #[test]
    fn the_discord_section_is_checked() {
        let example = Config::parse(
            include_str!("../config.example.toml"),
            Path::new("/x/config.example.toml"),
        )
        .unwrap();
        let d = example.discord.unwrap();
        assert_eq!(d.settings.application_id, 123_456_789_012_345_678);
        assert_eq!(d.settings.guild_ids, vec![234_567_890_123_456_789]);
        assert_eq!(d.settings.approval_timeout, Duration::from_secs(900));
        let approvers = &d.settings.access.roles[&crate::discord::Capability::Approve];
        assert_eq!(approvers, &vec![567_890_123_456_789_012]);
        assert!(parse(MINIMAL).unwrap().discord.is_none());

        let base = "[discord]\napplication_id = \"42\"\nbot_token_env = \"T\"\n";
        let with = |extra: &str| err(&format!("{MINIMAL}\n{base}{extra}\n"));
        assert!(parse(&format!("{MINIMAL}\n{base}")).is_ok());
        assert!(with("guild_ids = [\"abc\"]").contains("discord.guild_ids must be a Discord id"));
        assert!(with("public_key = \"abcd\"").contains("64 hex characters"));
        assert!(
            with("bot_token_file = \"f\"")
                .contains("exactly one of bot_token_env and bot_token_file")
        );
        assert!(with("required_approvals = 0").contains("at least 1"));
        assert!(with("[discord.roles]\nadmin = [\"1\"]").contains("unknown field `admin`"));
        assert!(with("api_base = \"ftp://x\"").contains("must be an http(s) URL"));
        assert!(
            d.settings.default_member_permissions.is_empty(),
            "admins only by default"
        );
        let manage = parse(&format!(
            "{MINIMAL}\n{base}default_member_permissions = \"32\"\n"
        ))
        .unwrap();
        assert_eq!(
            manage
                .discord
                .unwrap()
                .settings
                .default_member_permissions
                .bits(),
            32
        );
        assert!(with("default_member_permissions = \"admins\"").contains("permission bit set"));
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let e = err(&format!("{MINIMAL}\ntimeuot = \"5s\"\n"));
        assert!(e.contains("/etc/tw/tokenwarden.toml"), "{e}");
        assert!(e.contains("unknown field `timeuot`"), "{e}");
        let e = err(
            "[store]\npaht = \"x\"\n[[instances]]\nname=\"a\"\nurl=\"http://h\"\ntoken_env=\"T\"",
        );
        assert!(e.contains("unknown field `paht`"), "{e}");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let inst =
            |extra: &str| format!("[[instances]]\nname = \"a\"\nurl = \"http://h:1\"\n{extra}\n");
        assert!(err("").contains("no [[instances]]"));
        assert!(err(&inst("")).contains("needs token_file"));
        assert!(err(&inst("token = \"apiv3_x\"")).contains("puts a secret in the config file"));
        assert!(err(&inst("token_env = \"A\"\ntoken_file = \"f\"")).contains("only one of"));
        assert!(
            err(&inst("token_env = \"A\"\ntimeout = \"soon\""))
                .contains("timeout: `soon` is not a duration")
        );
        assert!(
            err(&inst("token_env = \"A\"\nedition = \"cloud\""))
                .contains("unknown variant `cloud`")
        );
        assert!(err(&inst("token_env = \"A\"\nprotected = [\"[x\"]")).contains("not a valid glob"));
        let dup = format!("{}{}", inst("token_env = \"A\""), inst("token_env = \"B\""));
        assert!(err(&dup).contains("used twice"));
        let bad_url = "[[instances]]\nname = \"a\"\nurl = \"ftp://h\"\ntoken_env = \"A\"";
        assert!(err(bad_url).contains("must be http:// or https://"));
        let bad_default = format!("default_instance = \"b\"\n{}", inst("token_env = \"A\""));
        assert!(err(&bad_default).contains("default_instance `b`"));
    }

    #[test]
    fn missing_secrets_name_their_source() {
        let c = parse(&MINIMAL.replace(
            "token_file = \"operator.token\"",
            "token_env = \"TW_TEST_SURELY_UNSET\"",
        ))
        .unwrap();
        let e = c.instances[0].token.resolve().unwrap_err().to_string();
        assert!(e.contains("TW_TEST_SURELY_UNSET is not set"), "{e}");
        let e = parse(MINIMAL).unwrap().instances[0]
            .token
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/tw/operator.token"), "{e}");
    }

    #[test]
    fn token_files_hold_a_bare_token_or_offline_json() {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("bare");
        std::fs::write(&bare, "apiv3_abc\n").unwrap();
        assert_eq!(
            TokenSource::File(bare).resolve().unwrap().expose(),
            "apiv3_abc"
        );
        let json = dir.path().join("json");
        std::fs::write(&json, r#"{"token":"apiv3_def","name":"_admin"}"#).unwrap();
        assert_eq!(
            TokenSource::File(json).resolve().unwrap().expose(),
            "apiv3_def"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(
            TokenSource::File(empty)
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
    }

    #[test]
    fn secrets_never_print() {
        let text = "[[instances]]\nname=\"a\"\nurl=\"http://h\"\ntoken=\"apiv3_topsecret\"\nallow_inline_token=true";
        let c = parse(text).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn unknown_instance_lists_the_known_ones() {
        let e = parse(MINIMAL)
            .unwrap()
            .instance(Some("prod"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no instance named `prod`; configured instances: local");
    }
}

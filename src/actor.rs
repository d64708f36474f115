//! Who asks: the identity every operation carries into policy, the gate and the audit log.
//!
//! An actor is an authenticated account, never a name someone typed: a Discord user id, an MCP
//! HTTP client's bearer entry, or an operating-system account (the process's uid on this host)
//! for the CLI and the stdio MCP server. `[[people]]` in the config can tie several accounts to
//! one person ([`crate::people`]); the gate then compares people.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::shown::shown;

/// The adapter an actor came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person at the human CLI.
    Cli,
    /// An MCP client (an AI assistant), identified by its HTTP principal or, over stdio, by the
    /// operating-system account that runs the server.
    Mcp,
    /// A Discord user.
    Discord,
    /// tokenwarden itself (expiry sweeps, rollbacks).
    System,
}

impl ActorKind {
    /// The adapter's name as the config writes it (`approve_from = ["discord", "cli"]`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Mcp => "mcp",
            Self::Discord => "discord",
            Self::System => "system",
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// An operating-system account on a host: what the kernel says the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsAccount {
    pub uid: u32,
    /// The account's name from the account database (`getpwuid`), if it has one.
    pub user: Option<String>,
    pub host: String,
}

impl OsAccount {
    /// The account this process runs as: its real uid and the host's name. Environment
    /// variables such as `$USER` are never consulted: anyone can set them.
    pub fn current() -> Self {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name);
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            uid: uid.as_raw(),
            user,
            host,
        }
    }

    /// The stable key the gate compares: `os:UID@HOST`.
    pub fn key(&self) -> String {
        format!("os:{}@{}", self.uid, self.host)
    }

    /// `NAME@HOST`, or `uid UID@HOST` for an account without a name.
    pub fn label(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => format!("uid {}@{}", self.uid, self.host),
        }
    }
}

/// Who asks for an operation. `id` is the account's stable key and is what the gate compares
/// (with `person`, when the config maps the account to one); `name` is for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub name: String,
    /// The `[[people]]` entry this account belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The MCP session (or stdio connection) the request came in: a one-time confirmation
    /// code works only in the conversation it was given to. Not part of who the actor is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl Actor {
    /// A person at the CLI, as the operating-system account that runs it.
    pub fn cli(account: &OsAccount) -> Self {
        Self::new(ActorKind::Cli, account.key(), account.label())
    }

    /// An MCP client over HTTP: `principal` is the `[[mcp.http.clients]]` entry its bearer
    /// token matched (or `anonymous`), `client` the name it gave itself (for people only).
    pub fn mcp_http(principal: &str, client: &str) -> Self {
        Self::new(
            ActorKind::Mcp,
            format!("client:{principal}"),
            format!("{client} via {principal}"),
        )
    }

    /// An MCP client over stdio: whoever runs the server's process, the same account a shell
    /// tool of the assistant would run as.
    pub fn mcp_stdio(account: &OsAccount, client: &str) -> Self {
        Self::new(
            ActorKind::Mcp,
            account.key(),
            format!("{client} as {}", account.label()),
        )
    }

    /// A Discord user by snowflake id and display name.
    pub fn discord(user_id: u64, name: &str) -> Self {
        Self::new(ActorKind::Discord, user_id.to_string(), name.to_owned())
    }

    /// tokenwarden acting on its own behalf.
    pub fn system() -> Self {
        Self::new(
            ActorKind::System,
            "tokenwarden".to_owned(),
            "tokenwarden".to_owned(),
        )
    }

    fn new(kind: ActorKind, id: String, name: String) -> Self {
        Self {
            kind,
            id,
            name,
            person: None,
            session: None,
        }
    }

    /// The same actor, speaking in MCP session (or stdio connection) `session`.
    pub fn in_session(mut self, session: Option<&str>) -> Self {
        self.session = session.map(str::to_owned);
        self
    }

    /// The account, comparable across adapters: the CLI and a stdio MCP server under one OS
    /// account are one account.
    pub fn account(&self) -> String {
        match self.kind {
            ActorKind::Discord => format!("discord:{}", self.id),
            ActorKind::System => "system".to_owned(),
            ActorKind::Cli | ActorKind::Mcp => self.id.clone(),
        }
    }

    /// Whether two actors are the same person: the same `[[people]]` entry when both have one,
    /// else the same account.
    pub fn same_as(&self, other: &Actor) -> bool {
        match (&self.person, &other.person) {
            (Some(a), Some(b)) => a == b,
            _ => self.account() == other.account(),
        }
    }
}

/// `kind:id (name)`. A client's chosen name may hold newlines, escape sequences and bidi
/// overrides: shown escaped, it can neither forge a log line nor reorder the line around it.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)?;
        match (&self.person, self.id == self.name) {
            (Some(p), true) => write!(f, " (person {p})"),
            (Some(p), false) => write!(f, " ({}; person {p})", shown(&self.name)),
            (None, true) => Ok(()),
            (None, false) => write!(f, " ({})", shown(&self.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(uid: u32, user: &str) -> OsAccount {
        OsAccount {
            uid,
            user: Some(user.to_owned()),
            host: "h1".to_owned(),
        }
    }

    #[test]
    fn a_name_chosen_by_a_client_cannot_forge_a_log_line() {
        let forged = "x\n2026-12-01T00:00:00Z INFO audit actor=discord:1 (bob)\u{1b}[2K\u{202e}";
        let shown = Actor::mcp_http("laptop", forged).to_string();
        assert!(!shown.chars().any(crate::shown::hidden), "{shown}");
        assert_eq!(
            shown,
            "mcp:client:laptop (x\\n2026-12-01T00:00:00Z INFO audit actor=discord:1 (bob)\\x1b[2K\\u{202e} via laptop)"
        );
    }

    #[test]
    fn same_person_needs_same_account() {
        let a = Actor::discord(1, "ann");
        assert!(a.same_as(&Actor::discord(1, "renamed")));
        assert!(!a.same_as(&Actor::discord(2, "ann")));
        assert!(!Actor::mcp_http("1", "c").same_as(&Actor::discord(1, "1")));
    }

    #[test]
    fn the_cli_and_a_stdio_server_of_one_account_are_one_account() {
        let cli = Actor::cli(&account(1000, "ann"));
        assert!(cli.same_as(&Actor::mcp_stdio(&account(1000, "ann"), "claude")));
        // The account is the uid, not the name the account database or anyone else gives.
        assert!(cli.same_as(&Actor::cli(&account(1000, "bob"))));
        assert!(!cli.same_as(&Actor::cli(&account(1001, "ann"))));
        let elsewhere = OsAccount {
            host: "h2".into(),
            ..account(1000, "ann")
        };
        assert!(!cli.same_as(&Actor::cli(&elsewhere)));
    }

    #[test]
    fn people_join_accounts_and_keep_others_apart() {
        let mut ann_cli = Actor::cli(&account(1000, "ann"));
        let mut ann_discord = Actor::discord(7, "Ann");
        assert!(!ann_cli.same_as(&ann_discord));
        ann_cli.person = Some("ann".into());
        ann_discord.person = Some("ann".into());
        assert!(ann_cli.same_as(&ann_discord));
        let mut bob = Actor::discord(8, "Bob");
        bob.person = Some("bob".into());
        assert!(!ann_discord.same_as(&bob));
    }

    #[test]
    fn display_shows_account_name_and_person() {
        assert_eq!(Actor::discord(42, "ann").to_string(), "discord:42 (ann)");
        assert_eq!(
            Actor::mcp_http("ops", "claude").to_string(),
            "mcp:client:ops (claude via ops)"
        );
        let mut cli = Actor::cli(&account(0, "root"));
        cli.person = Some("ann".into());
        assert_eq!(cli.to_string(), "cli:os:0@h1 (root@h1; person ann)");
    }

    #[test]
    fn the_current_account_is_the_process_uid() {
        let me = OsAccount::current();
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        assert!(!me.host.is_empty());
    }
}

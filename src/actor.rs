//! Who asks: the identity every operation carries into policy, the gate and the audit log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The adapter an actor came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person at the human CLI.
    Cli,
    /// An MCP client (an AI assistant), identified by its HTTP principal and session.
    Mcp,
    /// A Discord user.
    Discord,
    /// tokenwarden itself (expiry sweeps, rollbacks).
    System,
}

/// Who asks for an operation. `id` is stable and is what the gate compares; `name` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub name: String,
}

impl Actor {
    /// The person running the CLI, named by `$USER` (or `unknown`).
    pub fn cli_user() -> Self {
        let user = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            kind: ActorKind::Cli,
            id: user.clone(),
            name: user,
        }
    }

    /// An MCP client: `principal` is the authenticated HTTP caller (if any), `session` the MCP session.
    pub fn mcp(client: &str, principal: Option<&str>, session: Option<&str>) -> Self {
        let id = format!("{}/{}", principal.unwrap_or("-"), session.unwrap_or("-"));
        Self {
            kind: ActorKind::Mcp,
            id,
            name: client.to_owned(),
        }
    }

    /// A Discord user by snowflake id and display name.
    pub fn discord(user_id: u64, name: &str) -> Self {
        Self {
            kind: ActorKind::Discord,
            id: user_id.to_string(),
            name: name.to_owned(),
        }
    }

    /// tokenwarden acting on its own behalf.
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: "tokenwarden".to_owned(),
            name: "tokenwarden".to_owned(),
        }
    }

    /// Whether two actors are the same person (same adapter and same stable id).
    pub fn same_as(&self, other: &Actor) -> bool {
        self.kind == other.kind && self.id == other.id
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ActorKind::Cli => "cli",
            ActorKind::Mcp => "mcp",
            ActorKind::Discord => "discord",
            ActorKind::System => "system",
        };
        if self.id == self.name {
            write!(f, "{kind}:{}", self.id)
        } else {
            write!(f, "{kind}:{} ({})", self.id, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_person_needs_same_adapter_and_id() {
        let a = Actor::discord(1, "ann");
        assert!(a.same_as(&Actor::discord(1, "renamed")));
        assert!(!a.same_as(&Actor::discord(2, "ann")));
        assert!(!Actor::mcp("c", Some("1"), None).same_as(&Actor::discord(1, "1")));
    }

    #[test]
    fn display_shows_id_and_name() {
        assert_eq!(Actor::discord(42, "ann").to_string(), "discord:42 (ann)");
        assert_eq!(
            Actor::mcp("claude", Some("ops"), Some("s1")).to_string(),
            "mcp:ops/s1 (claude)"
        );
    }
}

//! The token domain: names, permissions, expiries, the token view, and the backend port that an
//! InfluxDB 3 client implements. Depends on nothing else in the crate.

mod database;
mod error;
mod expiry;
mod name;
mod permission;
mod protect;
mod secret;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use database::{Database, Retention};
pub use error::{BackendError, ParseError};
pub use expiry::{Expiry, MAX_DURATION, later, parse_duration};
pub use name::{OPERATOR_TOKEN_NAME, TokenName};
pub use permission::{
    ADMIN_PERMISSION, Action, Permission, ResourceType, Resources, SYSTEM_RESOURCES,
    WirePermission, listed_grants_database, split_listed_permissions, validate_database_name,
};
pub use protect::ProtectedNames;
pub use secret::{RawToken, TOKEN_PREFIX, redact};

/// Admin tokens can do everything; resource tokens (Enterprise) hold database or system permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Admin,
    Resource,
}

impl TokenKind {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "resource" => Ok(Self::Resource),
            other => Err(ParseError::new(format!(
                "unknown token kind `{other}`; use admin or resource"
            ))),
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Admin => "admin",
            Self::Resource => "resource",
        })
    }
}

/// Whether a token still authenticates. InfluxDB never removes expired tokens, so both are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
}

impl TokenStatus {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(Self::Active),
            "expired" => Ok(Self::Expired),
            other => Err(ParseError::new(format!(
                "unknown token status `{other}`; use active or expired"
            ))),
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Expired => "expired",
        })
    }
}

/// A token as listed by the server. Never holds the secret: servers only keep its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: u64,
    pub name: String,
    pub kind: TokenKind,
    /// Permission strings as the server lists them (`*:*:*` for admin tokens).
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expiry: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The id of the token that created this one, when the server records it.
    pub created_by: Option<u64>,
    pub description: Option<String>,
}

impl Token {
    /// Active while the expiry lies after `now`, as InfluxDB's authenticator decides.
    pub fn status(&self, now: DateTime<Utc>) -> TokenStatus {
        match self.expiry {
            Some(at) if at <= now => TokenStatus::Expired,
            _ => TokenStatus::Active,
        }
    }

    pub fn is_operator(&self) -> bool {
        self.name == OPERATOR_TOKEN_NAME
    }

    /// Whether any permission of this resource token covers database `db`.
    pub fn grants_database(&self, db: &str) -> bool {
        self.kind == TokenKind::Resource
            && self
                .permissions
                .iter()
                .any(|p| listed_grants_database(p, db))
    }

    /// The kind a permission column implies.
    pub fn kind_of(permissions: &[String]) -> TokenKind {
        if permissions.iter().any(|p| p == ADMIN_PERMISSION) {
            TokenKind::Admin
        } else {
            TokenKind::Resource
        }
    }
}

/// One token as it was seen: its name, and the id that tells it apart from a later token given
/// the same name (InfluxDB never reuses ids, but frees names on delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    pub name: TokenName,
    pub id: u64,
}

impl TokenRef {
    /// The reference to `token`, if its name is one tokenwarden can address.
    pub fn of(token: &Token) -> Result<Self, ParseError> {
        Ok(Self {
            name: TokenName::parse(&token.name)?,
            id: token.id,
        })
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (id {})",
            crate::shown::quoted(self.name.as_str()),
            self.id
        )
    }
}

/// Which tokens to list. Backends may push these down into their query; [`ListFilter::matches`]
/// is the definition every result must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// A substring of the name, matched literally (no wildcards).
    pub name_contains: Option<String>,
    /// Exactly this name.
    pub name_is: Option<String>,
    pub kind: Option<TokenKind>,
    /// Resource tokens that grant access to this database (by name or `db:*`).
    pub database: Option<String>,
    pub status: Option<TokenStatus>,
    /// Active tokens whose expiry falls within this time from now.
    pub expiring_within: Option<Duration>,
}

impl ListFilter {
    pub fn matches(&self, token: &Token, now: DateTime<Utc>) -> bool {
        let name_ok = self
            .name_contains
            .as_deref()
            .is_none_or(|s| token.name.contains(s));
        let exact_ok = self.name_is.as_deref().is_none_or(|n| token.name == n);
        let kind_ok = self.kind.is_none_or(|k| token.kind == k);
        let db_ok = self
            .database
            .as_deref()
            .is_none_or(|db| token.grants_database(db));
        let status_ok = self.status.is_none_or(|s| token.status(now) == s);
        let expiring_ok = self.expiring_within.is_none_or(|within| {
            let until = later(now, within);
            token.expiry.is_some_and(|at| at > now && at <= until)
        });
        name_ok && exact_ok && kind_ok && db_ok && status_ok && expiring_ok
    }
}

/// A window of a listing, in the server's order (by name, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

/// What a new token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSpec {
    /// A named admin token (`*:*:*`).
    Admin,
    /// An Enterprise resource token with these permissions (at least one).
    Resource(Vec<Permission>),
}

/// A token to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: TokenName,
    pub spec: TokenSpec,
    pub expiry: Expiry,
}

/// A token just created or regenerated: its metadata, and the secret for its one delivery.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: Token,
    pub secret: RawToken,
}

/// The InfluxDB 3 product a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Core,
    Enterprise,
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Core => "core",
            Self::Enterprise => "enterprise",
        })
    }
}

/// What `/ping` tells about a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `None` when the server did not say (neither header nor product name).
    pub edition: Option<Edition>,
    pub version: Option<String>,
    pub revision: Option<String>,
    pub product_name: Option<String>,
}

/// The port through which the core reaches an InfluxDB 3 server. Implementations must never
/// retry a create, delete or regenerate.
#[async_trait]
pub trait TokenBackend: Send + Sync {
    /// The server's address, for messages.
    fn url(&self) -> &str;
    async fn ping(&self) -> Result<ServerInfo, BackendError>;
    /// Tokens matching `filter` at time `now`, in name order, within `page` when given (a
    /// backend may return tokens the filter does not match; callers re-check). The page counts
    /// the server's rows, so re-checking may leave a page shorter than its limit.
    async fn list_tokens(
        &self,
        filter: &ListFilter,
        page: Option<Page>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Token>, BackendError>;
    /// Live databases, `_internal` included, with what the server tells of each.
    async fn list_databases(&self) -> Result<Vec<Database>, BackendError>;
    /// The highest token id the server has given so far (`None` with no tokens). Ids only grow,
    /// so a token with a higher id was created after this was asked.
    async fn highest_token_id(&self) -> Result<Option<u64>, BackendError>;
    async fn create_admin_token(
        &self,
        name: &TokenName,
        expiry_secs: Option<u64>,
    ) -> Result<CreatedToken, BackendError>;
    async fn create_resource_token(
        &self,
        name: &TokenName,
        permissions: &[Permission],
        expiry_secs: Option<u64>,
    ) -> Result<CreatedToken, BackendError>;
    async fn delete_token(&self, name: &TokenName) -> Result<(), BackendError>;
    async fn regenerate_operator_token(&self) -> Result<CreatedToken, BackendError>;
    /// Whether `secret` authenticates (a `/ping` with it).
    async fn authenticates(&self, secret: &RawToken) -> Result<bool, BackendError>;
    /// Uses `secret` from now on (after regenerating the operator token that tokenwarden uses).
    fn set_credential(&self, secret: RawToken);
    /// Creates `_admin` on a server that has none; needs no token.
    async fn bootstrap_operator_token(&self) -> Result<CreatedToken, BackendError>;
}

/// `1 token`, `2 tokens`, `1 expired token`: a count and its noun (`what` in the singular,
/// an optional adjective first), for every text that counts tokens.
pub fn count_tokens(n: usize, adjective: &str) -> String {
    let adjective = if adjective.is_empty() {
        String::new()
    } else {
        format!("{adjective} ")
    };
    let noun = if n == 1 { "token" } else { "tokens" };
    format!("{n} {adjective}{noun}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(super::count_tokens(1, "expired"), "1 expired token");
        assert_eq!(super::count_tokens(0, ""), "0 tokens");
        assert_eq!(super::count_tokens(2, "expired"), "2 expired tokens");
    }

    use super::*;

    fn token(name: &str, perms: &[&str], expiry: Option<&str>) -> Token {
        let permissions: Vec<String> = perms.iter().map(|s| s.to_string()).collect();
        Token {
            id: 1,
            name: name.into(),
            kind: Token::kind_of(&permissions),
            permissions,
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            expiry: expiry.map(|e| e.parse().unwrap()),
            updated_at: None,
            created_by: None,
            description: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn status_is_computed_like_the_server() {
        assert_eq!(
            token("a", &["*:*:*"], None).status(now()),
            TokenStatus::Active
        );
        assert_eq!(
            token("a", &["*:*:*"], Some("2026-11-28T00:00:00Z")).status(now()),
            TokenStatus::Expired
        );
        assert_eq!(
            token("a", &["*:*:*"], Some("2026-11-28T00:00:01Z")).status(now()),
            TokenStatus::Active
        );
    }

    #[test]
    fn filter_matches_each_field() {
        let reader = token(
            "grafana-reader",
            &["db:metrics:read"],
            Some("2026-12-01T00:00:00Z"),
        );
        let f = |f: ListFilter| f.matches(&reader, now());
        assert!(f(ListFilter {
            name_contains: Some("fana".into()),
            ..Default::default()
        }));
        assert!(!f(ListFilter {
            name_contains: Some("%".into()),
            ..Default::default()
        }));
        assert!(f(ListFilter {
            kind: Some(TokenKind::Resource),
            ..Default::default()
        }));
        assert!(f(ListFilter {
            database: Some("metrics".into()),
            ..Default::default()
        }));
        assert!(!f(ListFilter {
            database: Some("metric".into()),
            ..Default::default()
        }));
        assert!(f(ListFilter {
            expiring_within: Some(Duration::from_secs(7 * 86400)),
            ..Default::default()
        }));
        assert!(!f(ListFilter {
            expiring_within: Some(Duration::from_secs(86400)),
            ..Default::default()
        }));
        assert!(!f(ListFilter {
            status: Some(TokenStatus::Expired),
            ..Default::default()
        }));
    }

    #[test]
    fn admin_tokens_grant_no_specific_database() {
        assert!(!token("a", &["*:*:*"], None).grants_database("metrics"));
    }
}

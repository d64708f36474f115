//! The MCP tools' arguments and results. Field names are part of the interface; doc comments
//! become the JSON schema descriptions the model reads.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tokens::{Database, Retention, Token, TokenKind, TokenStatus};

/// `admin` or `resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Admin,
    Resource,
}

impl From<Kind> for TokenKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Admin => TokenKind::Admin,
            Kind::Resource => TokenKind::Resource,
        }
    }
}

/// `active` or `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Expired,
}

impl From<Status> for TokenStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Active => TokenStatus::Active,
            Status::Expired => TokenStatus::Expired,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTokensArgs {
    /// Only tokens whose name contains this text (taken literally, no wildcards).
    pub name: Option<String>,
    /// Only `admin` or only `resource` tokens.
    pub kind: Option<Kind>,
    /// Only resource tokens that grant access to this database (by name or through `db:*`).
    pub database: Option<String>,
    /// Only `active` or only `expired` tokens (InfluxDB keeps expired tokens until deleted).
    pub status: Option<Status>,
    /// Only active tokens expiring within this duration, such as `7d` or `12h`.
    pub expiring_within: Option<String>,
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
    /// Tokens per page, 1 to 500; 50 when omitted.
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, to read the next one.
    pub cursor: Option<String>,
}
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceArgs {
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminArgs {
    /// Name of the new token: 1-128 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
    pub name: String,
    /// Expire after this duration, such as `30d` or `12h`. Give this or `expires_at`, or neither for no expiry.
    pub expires_in: Option<String>,
    /// Expire at this RFC 3339 time, such as `2027-01-01T00:00:00Z`.
    pub expires_at: Option<String>,
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
}

/// What a resource token may do on a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbAction {
    Read,
    Write,
    Create,
    Describe,
    Delete,
}

impl DbAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Describe => "describe",
            Self::Delete => "delete",
        }
    }
}

/// A system resource a token may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemResource {
    Health,
    Ping,
    Metrics,
    Ready,
    #[serde(rename = "*")]
    All,
}

impl SystemResource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Ping => "ping",
            Self::Metrics => "metrics",
            Self::Ready => "ready",
            Self::All => "*",
        }
    }
}

/// One grant: a database, or a system resource.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePermission {
    /// A database name (see `list_databases`), or `*` for every database. Give this or `system`.
    pub database: Option<String>,
    /// Instead of a database, a system endpoint: `health`, `ping`, `metrics`, `ready`, or `*` for
    /// all of them. System grants allow `read` only.
    pub system: Option<SystemResource>,
    /// What the token may do there: usually `read` and/or `write` on a database; `read` on `system`.
    #[schemars(length(min = 1))]
    pub actions: Vec<DbAction>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceArgs {
    /// Name of the new token: 1-128 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
    pub name: String,
    /// One entry per database or system resource; at least one.
    #[schemars(length(min = 1))]
    pub permissions: Vec<ResourcePermission>,
    /// Expire after this duration, such as `30d` or `12h`.
    pub expires_in: Option<String>,
    /// Expire at this RFC 3339 time, such as `2027-01-01T00:00:00Z`.
    pub expires_at: Option<String>,
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// The exact name of the token to delete.
    pub name: String,
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
    /// The code from an earlier `confirmation_required` answer, sent only after the user agreed.
    pub confirmation_code: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatedArgs {
    /// The configured InfluxDB instance; the default instance when omitted.
    pub instance: Option<String>,
    /// The code from an earlier `confirmation_required` answer, sent only after the user agreed.
    pub confirmation_code: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingArgs {
    /// The id returned with `approval_required`.
    pub id: String,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TokenView {
    pub name: String,
    pub id: u64,
    pub kind: Kind,
    pub status: Status,
    /// `*:*:*` for admin tokens; `TYPE:NAMES:ACTIONS` otherwise.
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Absent when the token never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<DateTime<Utc>>,
    /// The id of the token that created this one, when InfluxDB records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<u64>,
}

impl TokenView {
    pub fn new(t: &Token, now: DateTime<Utc>) -> Self {
        Self {
            name: t.name.clone(),
            id: t.id,
            kind: match t.kind {
                TokenKind::Admin => Kind::Admin,
                TokenKind::Resource => Kind::Resource,
            },
            status: match t.status(now) {
                TokenStatus::Active => Status::Active,
                TokenStatus::Expired => Status::Expired,
            },
            permissions: t.permissions.clone(),
            created_at: t.created_at,
            expiry: t.expiry,
            created_by: t.created_by,
        }
    }
}

/// The tokens of a list: an array whose elements are described, not typed one by one. The Python
/// MCP SDK checks every result against its output schema with `jsonschema`, which visits each
/// item a subschema applies to: a fully typed token costs about 27 µs (1.35 ms for a page of 50,
/// more than tokenwarden's whole answer), and even `items: {"type": "object"}` costs 150 µs a
/// page, 3 µs per item for a check no server answer can fail; without `items` the check takes
/// 12 µs (BENCHMARKS.md, "Real SDK clients"). A single token, as in the `create_*` and
/// `delete_token` answers, is typed in full (`TokenView`).
const LISTED_TOKENS: &str = "The tokens, each an object, never with its secret: `name` (string), `id` \
    (integer), `kind` (`admin` or `resource`), `status` (`active` or `expired`), `permissions` (strings: `*:*:*` \
    for admin tokens, `TYPE:NAMES:ACTIONS` otherwise), `created_at` (RFC 3339), and when set `expiry` (RFC 3339) \
    and `created_by` (the id of the token that created it).";

fn listed_tokens(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "array", "description": LISTED_TOKENS })
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenList {
    pub instance: String,
    /// Tokens on this page.
    pub count: usize,
    #[schemars(schema_with = "listed_tokens")]
    pub tokens: Vec<TokenView>,
    /// Pass this as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
#[derive(Debug, Serialize, JsonSchema)]
pub struct DatabaseList {
    pub instance: String,
    /// Database names, for resource-token permissions.
    pub databases: Vec<String>,
    /// The same databases with their retention period and table count, where the server tells them.
    pub details: Vec<DatabaseView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DatabaseView {
    pub name: String,
    /// How long data is kept, e.g. `30days`; `indefinite` for no limit; absent if unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<String>,
    /// The retention period in seconds; absent if indefinite or unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_period_secs: Option<u64>,
    /// Tables in the database; absent if unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
}

impl From<&Database> for DatabaseView {
    fn from(db: &Database) -> Self {
        Self {
            name: db.name.clone(),
            retention_period: db.retention_period.map(|r| r.to_string()),
            retention_period_secs: match db.retention_period {
                Some(Retention::Period(d)) => Some(d.as_secs()),
                _ => None,
            },
            tables: db.tables.map(|n| n as u64),
        }
    }
}

/// How the new secret reached (or will reach) the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Handoff {
    /// The client showed the user a one-time link; the secret never passed through the model.
    UrlElicitation,
    /// A one-time link to give the user; the page shows the secret once.
    RevealLink,
    /// On tokenwarden's private page, shown to the user after their passphrase; no link here.
    Private,
    /// Written to a file readable only by the server's user.
    File,
    /// In this result (configured `inline`: the model provider sees it).
    Inline,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretHandoff {
    pub method: Handoff,
    /// For `reveal_link`: the link to give the user. It works once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reveal_url: Option<String>,
    /// When the link (or the private page's wait) ends; the token is deleted if nobody saw the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reveal_expires_at: Option<DateTime<Utc>>,
    /// For `file`: where the secret is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For `inline` only: the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    pub instance: String,
    pub token: TokenView,
    pub secret_handoff: SecretHandoff,
    /// What to tell the user.
    pub next_step: String,
}

/// Where a destructive request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Done.
    Done,
    /// Show the user what will happen; call again with `confirmation_code` only if they agree.
    ConfirmationRequired,
    /// A person must approve elsewhere; poll `get_pending_action`.
    ApprovalRequired,
    /// The user declined; nothing happened. Do not ask again unless the user asks.
    Declined,
    /// What the user typed did not match; nothing happened. Do not retry unless the user asks.
    ConfirmationMismatch,
}

/// An expired token a prune would delete (or deleted).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExpiredView {
    pub name: String,
    pub id: u64,
    pub expired_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GateAnswer {
    pub status: GateStatus,
    pub instance: String,
    /// The token concerned, as it is now (deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenView>,
    /// The expired tokens concerned (prunes), each exactly as the request recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_tokens: Option<Vec<ExpiredView>>,
    /// For `confirmation_required`: pass it back after the user agreed. Single use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation_code: Option<String>,
    /// For `approval_required`: the id to give approvers and to poll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_id: Option<String>,
    /// When the code or the request expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// For a regenerated operator token: how its new secret reaches the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_handoff: Option<SecretHandoff>,
    pub message: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PendingView {
    pub id: String,
    /// What was asked.
    pub operation: String,
    /// `open`, `executing`, `succeeded`, `failed`, `unknown`, `rejected` or `expired`.
    pub state: String,
    pub requested_by: String,
    pub approvals: usize,
    pub required_approvals: usize,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why it failed or was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InstanceInfo {
    pub name: String,
    pub default: bool,
    /// `core`, `enterprise`, or `unknown` when it could not be detected.
    pub edition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub read_only: bool,
    /// Why the instance could not be asked, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ToolInfo {
    pub name: String,
    pub enabled: bool,
    pub why: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerInfoView {
    pub tokenwarden_version: String,
    pub instances: Vec<InstanceInfo>,
    pub tools: Vec<ToolInfo>,
    /// How new secrets are handed over.
    pub secret_delivery: String,
    /// How deletes are confirmed.
    pub delete_gate: String,
}

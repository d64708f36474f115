//! The core's error: every failure of an operation, as a sentence that says what to do next.

use chrono::{DateTime, Utc};

use crate::gate::GateError;
use crate::shown::quoted;
use crate::store::StoreError;
use crate::tokens::{BackendError, Edition, ParseError};

/// Why an operation did not happen (or did not fully happen).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Input(#[from] ParseError),
    #[error("no instance named {}; configured instances: {known}", quoted(.name))]
    UnknownInstance { name: String, known: String },
    #[error(
        "instance {} is read-only (read_only = true in the config); nothing was changed", quoted(.instance)
    )]
    ReadOnly { instance: String },
    #[error(
        "token {} is protected (matches {}) and cannot be deleted through tokenwarden", quoted(.name), quoted(.pattern)
    )]
    Protected { name: String, pattern: String },
    #[error(
        "the operator token `_admin` cannot be deleted; its secret can be replaced (regenerated) instead"
    )]
    OperatorProtected,
    #[error(
        "instance {} runs InfluxDB 3 {edition}, and only Enterprise has database-scoped resource \
         tokens; create an admin token instead", quoted(.instance)
    )]
    RequiresEnterprise { instance: String, edition: Edition },
    #[error(
        "cannot tell whether instance {} runs InfluxDB 3 Core or Enterprise (its /ping does not say); \
         set edition = \"core\" or \"enterprise\" for it in the config", quoted(.instance)
    )]
    EditionUnknown { instance: String },
    #[error("instance {}: {source}", quoted(.instance))]
    Backend {
        instance: String,
        #[source]
        source: BackendError,
    },
    #[error("{0}")]
    Gate(#[from] GateError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "the new token {} was created but its secret could not be delivered ({reason}); it was deleted \
         again, so no token exists that nobody holds. Fix the delivery and create it again", quoted(.name)
    )]
    DeliveryRolledBack { name: String, reason: String },
    #[error(
        "the new token {} was created but its secret could not be delivered ({reason}), and deleting it \
         again failed ({rollback}). It is in tokenwarden's journal, and the next tokenwarden command or server \
         that reaches InfluxDB deletes it", quoted(.name)
    )]
    DeliveryStranded {
        name: String,
        reason: String,
        rollback: String,
    },
    #[error(
        "the operator token was regenerated but its new secret could not be delivered ({reason}); the old \
         secret no longer works. Regenerate it again where the secret can be delivered"
    )]
    RegeneratedUndelivered { reason: String },
    #[error(
        "instance {} has no place for a regenerated operator secret: set operator_token_file for it in \
         the config (to its token_file if tokenwarden uses the operator token), so the new secret is written \
         there before anything else happens; without it a lost answer would lock everyone out", quoted(.instance)
    )]
    NoSecretFile { instance: String },
    #[error(
        "instance {}: this store is PostgreSQL, shared by replicas, and {why}; a regenerated operator \
         secret would reach this process only, and every other replica would be locked out with the old one. \
         Give the instance a token_file that every replica reads (shared storage, or a file a secret manager \
         mounts), set operator_token_file to the same file, and regenerate again", quoted(.instance)
    )]
    UnsharedCredential { instance: String, why: String },
    #[error(
        "{was}: this request was stored by an older tokenwarden and was closed unrun; request it again"
    )]
    Retired { was: String },
    #[error(
        "token {} was replaced after the request (the request was for id {was}; the name now belongs to id \
         {now}); nothing was deleted. Request it again if the new token should go too", quoted(.name)
    )]
    Replaced { name: String, was: u64, now: u64 },
    #[error("token {} (id {id}) no longer exists; nothing was deleted", quoted(.name))]
    Vanished { name: String, id: u64 },
    #[error(
        "the DELETE of token {} (id {id}) was sent at {sent_at} but InfluxDB never confirmed it, and the token \
         is still there; it was not sent again, because a DELETE that lands late deletes whichever token holds the \
         name by then. Request the delete again if it is still wanted", quoted(.name)
    )]
    DeleteUnconfirmed {
        name: String,
        id: u64,
        sent_at: String,
    },
    #[error(
        "cannot prepare {path} for the regenerated operator secret ({detail}); nothing was regenerated"
    )]
    SecretFile {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "the operator token was regenerated but its new secret could not be written to {path} ({detail}); the old \
         secret no longer works. Use InfluxDB's admin-token recovery listener or another admin token to regenerate it again"
    )]
    RegeneratedUnsaved {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "the regeneration of the operator token of instance {} lost its answer, and the secret in {} does \
         not authenticate: if the regeneration applied, its new secret is lost. If the operator token no longer \
         works, regenerate it with another admin token or through InfluxDB's admin-token recovery listener \
         (--admin-token-recovery-http-bind)", quoted(.instance), path.display()
    )]
    RegeneratedLost {
        instance: String,
        path: std::path::PathBuf,
    },
    #[error(
        "InfluxDB's answer to the regeneration of the operator token of instance `{instance}` was lost: {}. It was \
         not retried. If InfluxDB applied it, the old secret no longer works and the new one is lost; tokenwarden \
         settles this within about a minute, by whether the secret in {} still authenticates, and the audit log \
         says which", lost_detail(source), path.display()
    )]
    RegenerationAnswerLost {
        instance: String,
        path: std::path::PathBuf,
        #[source]
        source: BackendError,
    },
    #[error(
        "{what}: it was approved, but tokenwarden stopped before InfluxDB applied it, and its approval has lapsed \
         since; nothing was deleted. Request it again"
    )]
    NeverApplied { what: String },
    #[error(
        "InfluxDB's answer to the creation of token {} was lost: {}. The creation was not retried. \
         {outcome}",
        quoted(.name),
        lost_detail(source)
    )]
    CreateAnswerLost {
        name: String,
        #[source]
        source: BackendError,
        outcome: LostCreate,
    },
    #[error("that confirmation_code is malformed; request the action again without one")]
    MalformedCode,
    #[error(
        "an earlier creation of token {} lost InfluxDB's answer; {}",
        quoted(.name),
        in_doubt(until)
    )]
    CreateInDoubt {
        name: String,
        until: Option<DateTime<Utc>>,
    },
    #[error(
        "the operator token was not regenerated: tokenwarden stopped before InfluxDB applied it, and the old \
         secret still works; request it again if it should be replaced"
    )]
    NotRegenerated,
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a create whose answer was lost stands once tokenwarden has looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostCreate {
    /// InfluxDB had made the token, and it was deleted again.
    Withdrawn,
    /// No token of its name existed; the name is watched until then, or while no end could be
    /// recorded (`None`), until recovery settles it.
    Watched { until: Option<DateTime<Utc>> },
    /// InfluxDB could not be asked, or deleting the token it had made failed; the same watch.
    Unsettled { until: Option<DateTime<Utc>> },
}

impl std::fmt::Display for LostCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Withdrawn => f.write_str(
                "InfluxDB had made the token, so tokenwarden deleted it again: its secret never arrived. \
                 Create it again if you still need it",
            ),
            Self::Watched { until } => write!(
                f,
                "No token of that name exists now, but InfluxDB may still make it late. {}",
                reserved(until)
            ),
            Self::Unsettled { until } => write!(
                f,
                "tokenwarden could not make sure at once that InfluxDB made no such token (it could not ask \
                 InfluxDB, or delete the token again). {}",
                reserved(until)
            ),
        }
    }
}

/// What a lost create's watch means for its name.
fn reserved(until: &Option<DateTime<Utc>>) -> String {
    let watch = "a token of that name made before then is deleted again, since nobody would hold its \
                 secret, so do not create it anywhere before then";
    match until {
        Some(t) => format!(
            "The name stays reserved and watched until {} ({watch}); after that it can be created again",
            at(*t)
        ),
        None => format!(
            "The name stays reserved and watched until tokenwarden has settled this creation ({watch}); \
             creating it through tokenwarden is refused until then"
        ),
    }
}

/// Why a create of a name is refused while an earlier one's answer is in doubt.
fn in_doubt(until: &Option<DateTime<Utc>>) -> String {
    match until {
        Some(t) => format!(
            "the name stays reserved and watched until {}, in case InfluxDB makes that token late; create it \
             after that",
            at(*t)
        ),
        None => "tokenwarden is settling it now; try again in a minute".to_owned(),
    }
}

/// A deadline as people read it: UTC, to the second (deadlines are whole seconds).
fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What was lost, from the backend's error.
fn lost_detail(e: &BackendError) -> String {
    match e {
        BackendError::OutcomeUnknown { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

/// Broad classes of failure, for exit codes and adapter replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or an unknown instance.
    Usage,
    /// The configuration cannot work (a missing secret, an unreadable CA file).
    Config,
    /// Refused by policy or the gate (read-only, protected, wrong edition, self-approval ...).
    Refused,
    /// The token or pending action does not exist.
    NotFound,
    /// A token with that name exists already.
    Conflict,
    /// InfluxDB rejected tokenwarden's credentials.
    Auth,
    /// InfluxDB could not be reached or did not answer in time.
    Unavailable,
    /// A mutation was sent but its outcome is unknown.
    Unknown,
    /// Anything else.
    Failed,
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Input(_) | Self::UnknownInstance { .. } | Self::MalformedCode => ErrorKind::Usage,
            Self::ReadOnly { .. }
            | Self::NoSecretFile { .. }
            | Self::UnsharedCredential { .. }
            | Self::Retired { .. }
            | Self::CreateInDoubt { .. }
            | Self::NeverApplied { .. }
            | Self::Replaced { .. }
            | Self::Protected { .. }
            | Self::OperatorProtected
            | Self::RequiresEnterprise { .. }
            | Self::EditionUnknown { .. } => ErrorKind::Refused,
            // The [store] points at a file or database this build cannot use.
            Self::Store(
                StoreError::Open { .. }
                | StoreError::Connect { .. }
                | StoreError::TooNew { .. }
                | StoreError::Foreign { .. },
            ) => ErrorKind::Config,
            Self::Gate(GateError::NotFound { .. })
            | Self::Store(StoreError::NotFound { .. })
            | Self::Vanished { .. } => ErrorKind::NotFound,
            Self::Gate(_) => ErrorKind::Refused,
            Self::Backend { source, .. } => match source {
                BackendError::NotFound { .. } | BackendError::UnknownResource { .. } => {
                    ErrorKind::NotFound
                }
                BackendError::AlreadyExists { .. } | BackendError::OperatorExists => {
                    ErrorKind::Conflict
                }
                BackendError::Unauthenticated { .. } | BackendError::Forbidden { .. } => {
                    ErrorKind::Auth
                }
                BackendError::Unreachable { .. } | BackendError::Timeout { .. } => {
                    ErrorKind::Unavailable
                }
                BackendError::OutcomeUnknown { .. } => ErrorKind::Unknown,
                BackendError::Setup(_) => ErrorKind::Config,
                BackendError::OperatorUndeletable
                | BackendError::NotEnterprise { .. }
                | BackendError::AuthDisabled { .. } => ErrorKind::Refused,
                _ => ErrorKind::Failed,
            },
            Self::DeliveryStranded { .. }
            | Self::RegeneratedUndelivered { .. }
            | Self::SecretFile { .. }
            | Self::RegeneratedUnsaved { .. }
            | Self::NotRegenerated => ErrorKind::Failed,
            Self::RegeneratedLost { .. }
            | Self::RegenerationAnswerLost { .. }
            | Self::CreateAnswerLost { .. }
            | Self::DeleteUnconfirmed { .. } => ErrorKind::Unknown,
            Self::DeliveryRolledBack { .. } | Self::Store(_) | Self::Internal(_) => {
                ErrorKind::Failed
            }
        }
    }
}

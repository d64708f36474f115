//! The core's error: every failure of an operation, as a sentence that says what to do next.

use crate::gate::GateError;
use crate::store::StoreError;
use crate::tokens::{BackendError, Edition, ParseError};

/// Why an operation did not happen (or did not fully happen).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Input(#[from] ParseError),
    #[error("no instance named `{name}`; configured instances: {known}")]
    UnknownInstance { name: String, known: String },
    #[error(
        "instance `{instance}` is read-only (read_only = true in the config); nothing was changed"
    )]
    ReadOnly { instance: String },
    #[error(
        "token `{name}` is protected (matches `{pattern}`) and cannot be deleted through tokenwarden"
    )]
    Protected { name: String, pattern: String },
    #[error(
        "the operator token `_admin` cannot be deleted; use `tokenwarden tokens regenerate-operator` to \
         replace its secret instead"
    )]
    OperatorProtected,
    #[error(
        "instance `{instance}` runs InfluxDB 3 {edition}, and only Enterprise has database-scoped resource \
         tokens; create an admin token instead"
    )]
    RequiresEnterprise { instance: String, edition: Edition },
    #[error(
        "cannot tell whether instance `{instance}` runs InfluxDB 3 Core or Enterprise (its /ping does not say); \
         set edition = \"core\" or \"enterprise\" for it in the config"
    )]
    EditionUnknown { instance: String },
    #[error("instance `{instance}`: {source}")]
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
        "the new token `{name}` was created but its secret could not be delivered ({reason}); it was deleted \
         again, so no token exists that nobody holds. Fix the delivery and create it again"
    )]
    DeliveryRolledBack { name: String, reason: String },
    #[error(
        "the new token `{name}` was created but its secret could not be delivered ({reason}), and deleting it \
         again failed ({rollback}). Delete it with `tokenwarden tokens delete {name}`"
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
    #[error("internal error: {0}")]
    Internal(String),
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
            Self::Input(_) | Self::UnknownInstance { .. } => ErrorKind::Usage,
            Self::ReadOnly { .. }
            | Self::Protected { .. }
            | Self::OperatorProtected
            | Self::RequiresEnterprise { .. }
            | Self::EditionUnknown { .. } => ErrorKind::Refused,
            Self::Gate(GateError::NotFound { .. }) | Self::Store(StoreError::NotFound { .. }) => {
                ErrorKind::NotFound
            }
            Self::Gate(_) => ErrorKind::Refused,
            Self::Backend { source, .. } => match source {
                BackendError::NotFound { .. } => ErrorKind::NotFound,
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
            Self::DeliveryStranded { .. } | Self::RegeneratedUndelivered { .. } => {
                ErrorKind::Failed
            }
            Self::DeliveryRolledBack { .. } | Self::Store(_) | Self::Internal(_) => {
                ErrorKind::Failed
            }
        }
    }
}

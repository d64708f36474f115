//! What to do after a refusal or a failure, named for no adapter in particular: the CLI phrases
//! a remedy as a command, MCP as a tool to call, Discord as a slash command. Error texts say what
//! happened; the remedy says what to do next.

/// Something a person (or an assistant) can do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// See the tokens as they are now (the names, or the server's state after an unknown outcome).
    ListTokens { why: &'static str },
    /// See the instance's databases.
    ListDatabases,
    /// Replace the operator token's secret instead of deleting it.
    RegenerateOperator,
    /// Create the operator token first.
    BootstrapOperator,
    /// Delete this token now rather than wait for recovery.
    DeleteToken { name: String },
    /// Check that the instance answers and that tokenwarden's credential works.
    CheckInstance,
}

impl super::ServiceError {
    /// What to do next, where the error has one step that helps.
    pub fn remedy(&self) -> Option<Remedy> {
        use super::ServiceError as S;
        use crate::tokens::BackendError as B;
        match self {
            S::OperatorProtected => Some(Remedy::RegenerateOperator),
            S::DeliveryStranded { name, .. } => Some(Remedy::DeleteToken { name: name.clone() }),
            S::RegeneratedLost { .. } | S::RegenerationAnswerLost { .. } => {
                Some(Remedy::CheckInstance)
            }
            S::Backend { source, .. } => match source {
                B::NotFound { .. } => Some(Remedy::ListTokens {
                    why: "to see the names",
                }),
                B::OutcomeUnknown { .. } => Some(Remedy::ListTokens {
                    why: "to see the server's state before trying again",
                }),
                B::UnknownResource { .. } => Some(Remedy::ListDatabases),
                B::OperatorUndeletable | B::OperatorExists => Some(Remedy::RegenerateOperator),
                B::OperatorMissing => Some(Remedy::BootstrapOperator),
                _ => None,
            },
            _ => None,
        }
    }
}

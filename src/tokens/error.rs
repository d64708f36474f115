//! Errors of the token domain: bad user input, and what a token backend reports.

use std::time::Duration;

use crate::shown::quoted;

/// Input that does not make a valid token name, permission or expiry. The text says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// What a token backend (an InfluxDB 3 server) reported. Every message says what to do next.
/// Server-provided text is redacted of anything that looks like a raw token before it lands here.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "InfluxDB at {url} rejected tokenwarden's token (401): it is wrong, expired or deleted. \
         Check the instance's token_file or token_env"
    )]
    Unauthenticated { url: String },
    #[error(
        "InfluxDB at {url} refused the request (403): tokenwarden's token is not an admin token. \
         Configure an admin token for this instance"
    )]
    Forbidden { url: String },
    #[error(
        "InfluxDB at {url} was started with --without-auth, so its token endpoints are disabled (405). \
         Restart it with authentication to manage tokens"
    )]
    AuthDisabled { url: String },
    #[error("no token named {} exists", quoted(.name))]
    NotFound { name: String },
    #[error(
        "a token named {} already exists; pick another name or delete the old token first", quoted(.name)
    )]
    AlreadyExists { name: String },
    #[error(
        "the operator token `_admin` cannot be deleted; its secret can be replaced (regenerated) instead"
    )]
    OperatorUndeletable,
    #[error(
        "this server already has an operator token `_admin`; its secret can be replaced (regenerated)"
    )]
    OperatorExists,
    #[error("this server has no operator token `_admin` to regenerate; it has to be created first")]
    OperatorMissing,
    #[error(
        "InfluxDB at {url} has no resource-token endpoint (404): it is InfluxDB 3 Core, and only Enterprise \
         has database-scoped tokens. Create an admin token instead, or set edition = \"core\" for this instance"
    )]
    NotEnterprise { url: String },
    #[error("no such {kind} {} on this instance; nothing was created", quoted(.name))]
    UnknownResource { kind: &'static str, name: String },
    #[error("InfluxDB rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error(
        "could not reach InfluxDB at {url}: {detail}. Check the url and that the server is running"
    )]
    Unreachable { url: String, detail: String },
    #[error("InfluxDB at {url} did not answer within {}. Check the server's health or raise the instance's timeout", humantime::format_duration(*.after))]
    Timeout { url: String, after: Duration },
    #[error("the {operation} may or may not have happened: {detail}. It was not retried")]
    OutcomeUnknown {
        operation: &'static str,
        detail: String,
    },
    #[error("InfluxDB at {url} sent a response tokenwarden cannot read ({what}): {detail}")]
    Decode {
        url: String,
        what: &'static str,
        detail: String,
    },
    #[error("cannot set up the InfluxDB client: {0}")]
    Setup(String),
}

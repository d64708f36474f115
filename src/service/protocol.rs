//! The gate protocol, written once: given what is asked, the policy, and what the adapter's
//! client can do, the core picks the gate (a typed phrase, a one-time code, approvals by other
//! people) and its expiry, opens the pending action, and answers what must happen next as data.
//! Adapters render that step and pass the answer back.

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;

use super::gated::{PendingRequest, Request};
use super::{ServiceError, TokenService};
use crate::actor::{Actor, ActorKind};
use crate::gate::{GateError, GateMode, PendingId};
use crate::service::{Executed, GateRequest, Operation};

/// What the adapter's client can do to give the go-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A person at a terminal types the phrase.
    Terminal,
    /// An MCP client shows the user a form to type the phrase in.
    Form,
    /// An MCP client that cannot ask the user: the assistant relays a one-time code, once the
    /// user agreed to what it was shown.
    Code,
    /// A team channel with approve and reject buttons (Discord).
    Team,
}

/// Approvals by other people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// How many people must approve; at least one.
    pub required: u8,
    /// Whether the requester may be one of them.
    pub allow_self: bool,
    /// How long the request stays open.
    pub ttl: Duration,
    /// The adapters approvals may come through.
    pub approve_from: Vec<ActorKind>,
}

/// How an adapter's destructive requests are gated, from its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatePolicy {
    /// `Some`: deletes and prunes need approvals instead of the requester's own confirmation.
    /// Regenerations are always confirmed by the requester.
    pub approvals: Option<ApprovalPolicy>,
}

/// What must happen next for a pending action to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// The requester types `phrase` exactly (at a terminal, or in a form).
    Type { phrase: String },
    /// The client sends `code` back with the same request, and only after the user agreed.
    SendCode { code: String },
    /// `need` people other than the requester (unless `allow_self`) approve; `have` did.
    Approve {
        have: usize,
        need: usize,
        allow_self: bool,
    },
}

/// A pending action just opened, and what must happen next.
#[derive(Debug, Clone)]
pub struct Opened {
    pub request: PendingRequest,
    pub next: NextStep,
}

impl Request {
    /// What the requester types to confirm: the token's name, the instance's name, or `prune`.
    pub fn phrase(&self) -> String {
        match self {
            Self::Delete { name, .. } => name.to_string(),
            Self::Regenerate { instance } => instance.clone(),
            Self::Prune { .. } => "prune".to_owned(),
        }
    }

    /// Deletes (one token, or the expired ones) fall under an approval policy.
    pub fn deletes(&self) -> bool {
        !matches!(self, Self::Regenerate { .. })
    }
}

/// A fresh one-time code's secret part.
fn nonce() -> String {
    let mut bytes = [0u8; 6];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The gate for `request` from `channel` under `policy`: its mode, its time to live (`None`:
/// the configured confirmation timeout) and the step the requester takes. Deletes and prunes
/// under an approval policy, and everything asked in a team channel, need approvals by other
/// people; otherwise the requester types the phrase, or relays a one-time code.
fn plan(
    request: &Request,
    channel: Channel,
    policy: GatePolicy,
    default_ttl: Duration,
) -> (GateMode, Option<Duration>, NextStep) {
    let approvals = match (policy.approvals, channel) {
        (Some(a), _) if request.deletes() => Some(a),
        (a, Channel::Team) => Some(a.unwrap_or(ApprovalPolicy {
            required: 1,
            allow_self: false,
            ttl: default_ttl,
            approve_from: vec![ActorKind::Discord, ActorKind::Cli],
        })),
        _ => None,
    };
    match (approvals, channel) {
        (Some(a), _) => {
            let mode = GateMode::Approvals {
                required: a.required.max(1),
                allow_self: a.allow_self,
                approve_from: Some(a.approve_from.clone()),
            };
            let next = NextStep::Approve {
                have: 0,
                need: mode.required(),
                allow_self: a.allow_self,
            };
            (mode, Some(a.ttl), next)
        }
        (None, Channel::Code) => {
            let secret = nonce();
            let mode = GateMode::confirm_with(&secret);
            (mode, None, NextStep::SendCode { code: secret })
        }
        (None, _) => {
            let phrase = request.phrase();
            (
                GateMode::confirm_with(&phrase),
                None,
                NextStep::Type { phrase },
            )
        }
    }
}

impl TokenService {
    /// Opens the pending action for `request` through the gate that fits `policy` and
    /// `channel`, and says what must happen next. `None` when there is nothing to do (no
    /// expired tokens to prune). `file` is where a regenerated secret goes, if the caller names one.
    pub async fn begin(
        &self,
        actor: &Actor,
        request: &Request,
        channel: Channel,
        policy: GatePolicy,
        reason: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Opened>, ServiceError> {
        let (mode, ttl, next) = plan(request, channel, policy, self.confirm_ttl);
        let gate = GateRequest { mode, ttl, reason };
        let Some(opened) = self.request(actor, request, gate, file).await? else {
            return Ok(None);
        };
        let next = match next {
            NextStep::SendCode { code } => NextStep::SendCode {
                code: format!("{}-{code}", opened.pending.id),
            },
            other => other,
        };
        Ok(Some(Opened {
            request: opened,
            next,
        }))
    }

    /// The operation pending action `id` is bound to, if it answers `request`.
    pub async fn bound(
        &self,
        id: &PendingId,
        request: &Request,
    ) -> Result<Operation, ServiceError> {
        let p = self.pending(id).await?;
        if p.action.answers(request) {
            Ok(p.action)
        } else {
            Err(ServiceError::Gate(GateError::ActionMismatch {
                id: id.clone(),
            }))
        }
    }

    /// The requester typed `typed` for pending action `id`, repeating `request`.
    pub async fn confirm_typed(
        &self,
        actor: &Actor,
        id: &PendingId,
        request: &Request,
        typed: &str,
    ) -> Result<Executed, ServiceError> {
        let op = self.bound(id, request).await?;
        self.confirm(actor, id, &op, typed).await
    }

    /// The client sent back the one-time `code` with `request`.
    pub async fn confirm_code(
        &self,
        actor: &Actor,
        request: &Request,
        code: &str,
    ) -> Result<Executed, ServiceError> {
        let (id, secret) = code
            .trim()
            .split_once('-')
            .ok_or(ServiceError::MalformedCode)?;
        let id = PendingId::parse(id)?;
        self.confirm_typed(actor, &id, request, secret).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenName;

    const TTL: Duration = Duration::from_secs(300);

    fn delete() -> Request {
        Request::Delete {
            instance: "local".into(),
            name: TokenName::parse("ci").unwrap(),
        }
    }

    fn approvals(required: u8) -> GatePolicy {
        GatePolicy {
            approvals: Some(ApprovalPolicy {
                required,
                allow_self: false,
                ttl: Duration::from_secs(3600),
                approve_from: vec![ActorKind::Discord],
            }),
        }
    }

    #[test]
    fn the_phrase_is_the_name_the_instance_or_prune() {
        assert_eq!(delete().phrase(), "ci");
        let regenerate = Request::Regenerate {
            instance: "prod".into(),
        };
        assert_eq!(regenerate.phrase(), "prod");
        let prune = Request::Prune {
            instance: "prod".into(),
        };
        assert_eq!(prune.phrase(), "prune");
    }

    #[test]
    fn terminals_and_forms_type_the_phrase_and_code_clients_relay_a_code() {
        for channel in [Channel::Terminal, Channel::Form] {
            let (mode, ttl, next) = plan(&delete(), channel, GatePolicy::default(), TTL);
            assert_eq!(
                next,
                NextStep::Type {
                    phrase: "ci".into()
                }
            );
            assert_eq!(mode, GateMode::confirm_with("ci"));
            assert_eq!(ttl, None);
        }
        let (mode, _, next) = plan(&delete(), Channel::Code, GatePolicy::default(), TTL);
        let NextStep::SendCode { code } = next else {
            panic!("{next:?}")
        };
        assert_eq!(mode, GateMode::confirm_with(&code), "the code is the proof");
        assert_ne!(code, "ci");
    }

    #[test]
    fn an_approval_policy_covers_deletes_and_prunes_but_not_regenerations() {
        let (mode, ttl, next) = plan(&delete(), Channel::Code, approvals(2), TTL);
        assert_eq!(mode.required(), 2);
        assert_eq!(ttl, Some(Duration::from_secs(3600)));
        assert!(matches!(
            next,
            NextStep::Approve {
                need: 2,
                have: 0,
                ..
            }
        ));
        let regenerate = Request::Regenerate {
            instance: "local".into(),
        };
        let (_, _, next) = plan(&regenerate, Channel::Form, approvals(2), TTL);
        assert!(matches!(next, NextStep::Type { .. }));
    }

    #[test]
    fn a_team_channel_always_needs_at_least_one_approval() {
        let (mode, ttl, next) = plan(&delete(), Channel::Team, GatePolicy::default(), TTL);
        assert_eq!(mode.required(), 1);
        assert_eq!(ttl, Some(TTL));
        assert!(matches!(next, NextStep::Approve { need: 1, .. }));
        let (mode, _, _) = plan(&delete(), Channel::Team, approvals(0), TTL);
        assert_eq!(mode.required(), 1, "zero means one");
    }
}

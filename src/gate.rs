//! The gate for destructive actions: a pending action is bound to one exact action, expires, runs
//! at most once, and needs either its requester's proof or other people's approvals. Pure state
//! transitions; the store persists them atomically. Depends only on `actor`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::actor::{Actor, ActorKind};

/// An unguessable id for a pending action (20 hex characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingId(String);

impl PendingId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 10];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// An id given back by a user; only its shape is checked here.
    pub fn parse(s: &str) -> Result<Self, GateError> {
        let s = s.trim();
        if s.len() == 20 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(GateError::NotFound { id: s.to_owned() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PendingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a pending action gets the go-ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum GateMode {
    /// The requester confirms with a proof: a typed token name or a one-time code. Only its
    /// SHA-256 digest is kept.
    Confirm { proof_sha256: String },
    /// `required` other people approve; the requester counts only if `allow_self`. Approvals
    /// come only through the adapters in `approve_from` (`None`: any, as rows written before
    /// the setting existed).
    Approvals {
        required: u8,
        allow_self: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approve_from: Option<Vec<ActorKind>>,
    },
}

impl GateMode {
    /// How many approvals release the action: at least one.
    pub fn required(&self) -> usize {
        match self {
            Self::Approvals { required, .. } => usize::from((*required).max(1)),
            Self::Confirm { .. } => 1,
        }
    }

    /// A confirmation gate whose proof is `proof`.
    pub fn confirm_with(proof: &str) -> Self {
        Self::Confirm {
            proof_sha256: digest(proof),
        }
    }
}

/// Where a pending action stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PendingState {
    Open,
    /// Approved; the action is running (or the process died while it ran: outcome unknown).
    Executing,
    Succeeded,
    Failed {
        reason: String,
    },
    /// The action was sent but its outcome could not be learned.
    Unknown {
        reason: String,
    },
    Rejected {
        by: Actor,
        reason: Option<String>,
    },
    Expired,
}

impl PendingState {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Executing => "executing",
            Self::Succeeded => "succeeded",
            Self::Failed { .. } => "failed",
            Self::Unknown { .. } => "unknown",
            Self::Rejected { .. } => "rejected",
            Self::Expired => "expired",
        }
    }
}

/// One approval given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// What an approval achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Recorded; more approvals are needed.
    Recorded { have: usize, need: usize },
    /// The last approval needed: the caller now owns the one execution.
    Ready,
}

/// How the executed action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    Unknown(String),
}

/// Why the gate said no. Each message tells the user what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("no pending action {} exists; request the action again", crate::shown::quoted(.id))]
    NotFound { id: String },
    #[error("pending action {id} expired at {}; request it again", at.format("%Y-%m-%d %H:%M UTC"))]
    Expired { id: PendingId, at: DateTime<Utc> },
    #[error("pending action {id} is already {state}; nothing more can happen to it")]
    Closed { id: PendingId, state: &'static str },
    #[error("only the session that requested action {id} can confirm it")]
    NotRequester { id: PendingId },
    #[error(
        "the confirmation is for a different action than pending action {id}; request the action again"
    )]
    ActionMismatch { id: PendingId },
    #[error("the confirmation for action {id} does not match; nothing was done")]
    WrongProof { id: PendingId },
    #[error("you requested action {id}; someone else must approve it")]
    SelfApproval { id: PendingId },
    #[error("you already approved action {id}; it needs another person's approval")]
    AlreadyApproved { id: PendingId },
    #[error(
        "action {id} was requested by {person}, whom this configuration's [[people]] does not \
         list; approve it with the configuration it was requested under"
    )]
    RequesterUnknown { id: PendingId, person: String },
    #[error(
        "action {id} was asked through {origin}, whose requests are approved through {} only, not \
         through {through}; to allow it, add \"{through}\" to approve_from in the config's [{origin}] \
         section (the README's threat model says what that gives up)",
        kinds(allowed)
    )]
    NotApprovableThere {
        id: PendingId,
        origin: ActorKind,
        through: ActorKind,
        allowed: Vec<ActorKind>,
    },
    #[error("action {id} needs {expected}, not {given}")]
    WrongMode {
        id: PendingId,
        expected: &'static str,
        given: &'static str,
    },
}

/// `discord and cli`.
fn kinds(list: &[ActorKind]) -> String {
    list.iter()
        .map(|k| k.key())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A destructive action waiting for the go-ahead. `A` is the exact action it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending<A> {
    pub id: PendingId,
    pub action: A,
    pub requester: Actor,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub mode: GateMode,
    pub approvals: Vec<Approval>,
    pub state: PendingState,
}

impl<A: PartialEq> Pending<A> {
    pub fn new(
        action: A,
        requester: Actor,
        mode: GateMode,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: PendingId::random(),
            action,
            requester,
            reason: None,
            created_at: now,
            expires_at: crate::tokens::later(now, ttl),
            mode,
            approvals: Vec::new(),
            state: PendingState::Open,
        }
    }

    /// Confirmation gate: the requester proves intent for exactly `action`. On success the
    /// caller owns the one execution.
    pub fn confirm(
        &mut self,
        by: &Actor,
        action: &A,
        proof: &str,
        now: DateTime<Utc>,
    ) -> Result<(), GateError> {
        self.check_open(now)?;
        let GateMode::Confirm { proof_sha256 } = &self.mode else {
            return Err(self.wrong_mode("an approval", "a confirmation"));
        };
        // The very account and session that asked: a code is a proof of intent in one
        // conversation, not something another client of the same person may redeem.
        if by.account() != self.requester.account() || by.session != self.requester.session {
            return Err(GateError::NotRequester {
                id: self.id.clone(),
            });
        }
        if *action != self.action {
            return Err(GateError::ActionMismatch {
                id: self.id.clone(),
            });
        }
        if !bool::from(digest(proof).as_bytes().ct_eq(proof_sha256.as_bytes())) {
            return Err(GateError::WrongProof {
                id: self.id.clone(),
            });
        }
        self.approvals.push(Approval {
            by: by.clone(),
            at: now,
        });
        self.state = PendingState::Executing;
        Ok(())
    }

    /// Approval gate: `by` approves. [`Progress::Ready`] hands the one execution to the caller.
    pub fn approve(&mut self, by: &Actor, now: DateTime<Utc>) -> Result<Progress, GateError> {
        self.check_open(now)?;
        let GateMode::Approvals {
            allow_self,
            ref approve_from,
            ..
        } = self.mode
        else {
            return Err(self.wrong_mode("a confirmation", "an approval"));
        };
        if let Some(from) = approve_from
            && !from.contains(&by.kind)
        {
            return Err(GateError::NotApprovableThere {
                id: self.id.clone(),
                origin: self.requester.kind,
                through: by.kind,
                allowed: from.clone(),
            });
        }
        if !allow_self && by.same_as(&self.requester) {
            return Err(GateError::SelfApproval {
                id: self.id.clone(),
            });
        }
        if self.approvals.iter().any(|a| a.by.same_as(by)) {
            return Err(GateError::AlreadyApproved {
                id: self.id.clone(),
            });
        }
        self.approvals.push(Approval {
            by: by.clone(),
            at: now,
        });
        let need = self.mode.required();
        if self.approvals.len() >= need {
            self.state = PendingState::Executing;
            Ok(Progress::Ready)
        } else {
            Ok(Progress::Recorded {
                have: self.approvals.len(),
                need,
            })
        }
    }

    /// Closes the action without running it (an approver's rejection or the requester's decline).
    pub fn reject(
        &mut self,
        by: &Actor,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), GateError> {
        self.check_open(now)?;
        self.state = PendingState::Rejected {
            by: by.clone(),
            reason,
        };
        Ok(())
    }

    /// Records how the execution ended. Only meaningful after `confirm` or a `Ready` approval.
    pub fn finish(&mut self, outcome: Outcome) {
        if self.state == PendingState::Executing {
            self.state = match outcome {
                Outcome::Succeeded => PendingState::Succeeded,
                Outcome::Failed(reason) => PendingState::Failed { reason },
                Outcome::Unknown(reason) => PendingState::Unknown { reason },
            };
        }
    }

    /// Marks an open action expired once its time has come; true if it changed.
    pub fn expire_if_due(&mut self, now: DateTime<Utc>) -> bool {
        if self.state == PendingState::Open && now >= self.expires_at {
            self.state = PendingState::Expired;
            true
        } else {
            false
        }
    }

    fn check_open(&mut self, now: DateTime<Utc>) -> Result<(), GateError> {
        self.expire_if_due(now);
        match self.state {
            PendingState::Open => Ok(()),
            PendingState::Expired => Err(GateError::Expired {
                id: self.id.clone(),
                at: self.expires_at,
            }),
            ref other => Err(GateError::Closed {
                id: self.id.clone(),
                state: other.label(),
            }),
        }
    }

    fn wrong_mode(&self, expected: &'static str, given: &'static str) -> GateError {
        GateError::WrongMode {
            id: self.id.clone(),
            expected,
            given,
        }
    }
}

fn digest(proof: &str) -> String {
    hex::encode(Sha256::digest(proof.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn ann() -> Actor {
        Actor::discord(1, "ann")
    }
    fn bob() -> Actor {
        Actor::discord(2, "bob")
    }
    fn cat() -> Actor {
        Actor::discord(3, "cat")
    }

    fn approvals(required: u8, allow_self: bool) -> Pending<String> {
        Pending::new(
            "delete x".to_owned(),
            ann(),
            GateMode::Approvals {
                required,
                allow_self,
                approve_from: None,
            },
            TTL,
            t(0),
        )
    }

    #[test]
    fn approvals_come_only_through_the_allowed_adapters() {
        use crate::actor::OsAccount;
        let account = OsAccount {
            uid: 1000,
            user: None,
            host: "h".into(),
        };
        let mut p = Pending::new(
            "delete x".to_owned(),
            Actor::mcp_stdio(&account, "claude"),
            GateMode::Approvals {
                required: 1,
                allow_self: false,
                approve_from: Some(vec![ActorKind::Discord]),
            },
            TTL,
            t(0),
        );
        let other = OsAccount {
            uid: 1001,
            ..account
        };
        let refused = p.approve(&Actor::cli(&other), t(1)).unwrap_err();
        assert!(matches!(refused, GateError::NotApprovableThere { .. }));
        assert!(refused.to_string().contains(
            "asked through mcp, whose requests are approved through discord only, not through cli"
        ));
        assert_eq!(p.state, PendingState::Open);
        assert_eq!(p.approve(&bob(), t(2)), Ok(Progress::Ready));
    }

    #[test]
    fn one_person_is_one_approval_whatever_the_adapter() {
        let mut p = approvals(2, false);
        let mut bob_discord = bob();
        bob_discord.person = Some("bob".into());
        let mut bob_cli = Actor::cli(&crate::actor::OsAccount {
            uid: 1002,
            user: None,
            host: "h".into(),
        });
        bob_cli.person = Some("bob".into());
        assert!(p.approve(&bob_discord, t(1)).is_ok());
        assert_eq!(
            p.approve(&bob_cli, t(2)),
            Err(GateError::AlreadyApproved { id: p.id.clone() })
        );
        let mut ann_cli = bob_cli.clone();
        ann_cli.person = Some("ann".into());
        p.requester.person = Some("ann".into());
        assert_eq!(
            p.approve(&ann_cli, t(3)),
            Err(GateError::SelfApproval { id: p.id.clone() })
        );
    }

    #[test]
    fn confirm_needs_requester_same_action_and_proof() {
        let mut p = Pending::new(
            "delete x".to_owned(),
            ann(),
            GateMode::confirm_with("x"),
            TTL,
            t(0),
        );
        assert_eq!(
            p.confirm(&bob(), &"delete x".into(), "x", t(1)),
            Err(GateError::NotRequester { id: p.id.clone() })
        );
        assert_eq!(
            p.confirm(&ann(), &"delete y".into(), "x", t(1)),
            Err(GateError::ActionMismatch { id: p.id.clone() })
        );
        assert_eq!(
            p.confirm(&ann(), &"delete x".into(), "X", t(1)),
            Err(GateError::WrongProof { id: p.id.clone() })
        );
        assert_eq!(p.confirm(&ann(), &"delete x".into(), "x", t(1)), Ok(()));
        assert_eq!(p.state, PendingState::Executing);
        // Replay: the action is no longer open.
        let replay = p.confirm(&ann(), &"delete x".into(), "x", t(2));
        assert!(matches!(
            replay,
            Err(GateError::Closed {
                state: "executing",
                ..
            })
        ));
    }

    #[test]
    fn a_code_is_confirmed_only_by_the_account_that_asked_not_by_the_same_person_elsewhere() {
        let mut laptop = Actor::mcp_http("ann-laptop", "claude");
        laptop.person = Some("ann".into());
        let mut ci = Actor::mcp_http("ann-ci", "claude");
        ci.person = Some("ann".into());
        let mut p = Pending::new(
            "delete x".to_owned(),
            laptop.clone(),
            GateMode::confirm_with("x"),
            TTL,
            t(0),
        );
        assert_eq!(
            p.confirm(&ci, &"delete x".into(), "x", t(1)),
            Err(GateError::NotRequester { id: p.id.clone() })
        );
        assert_eq!(p.confirm(&laptop, &"delete x".into(), "x", t(1)), Ok(()));
    }

    #[test]
    fn expired_actions_cannot_be_confirmed_or_approved() {
        let mut p = Pending::new(
            "a".to_owned(),
            ann(),
            GateMode::confirm_with("a"),
            TTL,
            t(0),
        );
        assert!(matches!(
            p.confirm(&ann(), &"a".into(), "a", t(300)),
            Err(GateError::Expired { .. })
        ));
        assert_eq!(p.state, PendingState::Expired);
        let mut q = approvals(1, false);
        assert!(matches!(
            q.approve(&bob(), t(301)),
            Err(GateError::Expired { .. })
        ));
    }

    #[test]
    fn self_approval_is_refused_unless_allowed() {
        let mut p = approvals(1, false);
        assert_eq!(
            p.approve(&ann(), t(1)),
            Err(GateError::SelfApproval { id: p.id.clone() })
        );
        let mut q = approvals(1, true);
        assert_eq!(q.approve(&ann(), t(1)), Ok(Progress::Ready));
    }

    #[test]
    fn several_approvals_count_distinct_people() {
        let mut p = approvals(2, false);
        assert_eq!(
            p.approve(&bob(), t(1)),
            Ok(Progress::Recorded { have: 1, need: 2 })
        );
        assert_eq!(
            p.approve(&bob(), t(2)),
            Err(GateError::AlreadyApproved { id: p.id.clone() })
        );
        assert_eq!(p.approve(&cat(), t(3)), Ok(Progress::Ready));
        assert!(matches!(
            p.approve(&Actor::discord(4, "dan"), t(4)),
            Err(GateError::Closed { .. })
        ));
    }

    #[test]
    fn reject_closes_and_finish_records_the_outcome() {
        let mut p = approvals(1, false);
        p.reject(&bob(), Some("no".into()), t(1)).unwrap();
        assert!(matches!(
            p.approve(&cat(), t(2)),
            Err(GateError::Closed {
                state: "rejected",
                ..
            })
        ));
        let mut q = approvals(1, false);
        q.finish(Outcome::Succeeded);
        assert_eq!(
            q.state,
            PendingState::Open,
            "finish before execution changes nothing"
        );
        q.approve(&bob(), t(1)).unwrap();
        q.finish(Outcome::Unknown("timeout".into()));
        assert_eq!(
            q.state,
            PendingState::Unknown {
                reason: "timeout".into()
            }
        );
    }

    #[test]
    fn modes_do_not_mix() {
        let mut p = approvals(1, false);
        assert!(matches!(
            p.confirm(&ann(), &"delete x".into(), "x", t(1)),
            Err(GateError::WrongMode { .. })
        ));
    }

    #[test]
    fn ids_are_random_and_parse_back() {
        let a = PendingId::random();
        assert_ne!(a, PendingId::random());
        assert_eq!(PendingId::parse(a.as_str()).unwrap(), a);
        assert!(PendingId::parse("../etc").is_err());
    }

    #[test]
    fn serialises_without_the_proof() {
        let p = Pending::new(
            "a".to_owned(),
            ann(),
            GateMode::confirm_with("secret-code"),
            TTL,
            t(0),
        );
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("secret-code"));
        let back: Pending<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}

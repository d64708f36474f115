//! How the MCP server hands over a new secret: a one-time reveal link, the private page of the
//! person the client belongs to, a 0600 file, or (opt-in) inline. The link or path is kept here
//! for the tool result; the audit log only learns the method.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::SecretMode;
use super::args::{Handoff, SecretHandoff};
use super::reveal::{RevealHub, RevealLink};
use crate::actor::Actor;
use crate::service::LinkHeld;
use crate::service::{DeliveryFailure, DeliveryReceipt, SecretDelivery, Ticket};
use crate::tokens::{RawToken, Token, TokenName};

/// What was handed over, for the tool result.
#[derive(Debug, Clone)]
pub enum Handed {
    Link(RevealLink),
    /// Waits for `person` on the private page at `page` (never put in a result).
    Private {
        person: String,
        page: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    File(PathBuf),
    Inline(RawToken),
}

impl Handed {
    pub fn handoff(&self) -> SecretHandoff {
        let mut h = SecretHandoff {
            method: Handoff::RevealLink,
            reveal_url: None,
            reveal_expires_at: None,
            file: None,
            secret: None,
        };
        match self {
            Self::Link(link) => {
                h.reveal_url = Some(link.url.clone());
                h.reveal_expires_at = Some(link.expires_at);
            }
            Self::Private { expires_at, .. } => {
                h.method = Handoff::Private;
                h.reveal_expires_at = Some(*expires_at);
            }
            Self::File(path) => {
                h.method = Handoff::File;
                h.file = Some(path.display().to_string());
            }
            Self::Inline(secret) => {
                h.method = Handoff::Inline;
                h.secret = Some(secret.expose().to_owned());
            }
        }
        h
    }

    /// A sentence for the user.
    pub fn next_step(&self) -> String {
        match self {
            Self::Link(link) => format!(
                "Give the user this one-time link: {} . It shows the secret once and stops working at {}; \
                 if nobody opens it by then, the token is deleted again.",
                link.url,
                link.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Self::Private {
                person, expires_at, ..
            } => format!(
                "The secret waits for {person} on tokenwarden's private page, which asks for their \
                 passphrase; you cannot open it and it is not in this result. Tell the user to open \
                 tokenwarden's private page (the address their administrator gave them) before {}; \
                 if nobody does, the token is deleted again.",
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Self::File(path) => format!(
                "The secret is in {} (readable only by tokenwarden's user).",
                path.display()
            ),
            Self::Inline(_) => {
                "The secret is in `secret_handoff.secret`; show it to the user once.".to_owned()
            }
        }
    }
}

/// The delivery port for one MCP request.
pub struct McpDelivery {
    mode: SecretMode,
    hub: Arc<RevealHub>,
    instance: String,
    requester: Actor,
    /// For private delivery: the person the requester belongs to.
    for_person: Option<String>,
    handed: Mutex<Option<Handed>>,
}

impl McpDelivery {
    pub fn new(mode: SecretMode, hub: Arc<RevealHub>, instance: String, requester: Actor) -> Self {
        Self {
            mode,
            hub,
            instance,
            requester,
            for_person: None,
            handed: Mutex::new(None),
        }
    }

    /// Private delivery to `person` (checked before anything is created).
    pub fn for_person(mut self, person: String) -> Self {
        self.for_person = Some(person);
        self
    }

    /// What was handed over, once `deliver` ran.
    pub fn handed(&self) -> Option<Handed> {
        self.handed.lock().ok().and_then(|h| h.clone())
    }

    /// Keeps `secret` in the reveal hub (for `person` alone, on the private page, if given).
    async fn hold(
        &self,
        token: &Token,
        secret: &RawToken,
        ticket: &Ticket,
        for_person: Option<String>,
        listener: &str,
    ) -> Result<RevealLink, DeliveryFailure> {
        let token_name =
            TokenName::parse(&token.name).map_err(|e| DeliveryFailure(e.to_string()))?;
        self.hub
            .register(
                LinkHeld {
                    token_name,
                    token_id: token.id,
                    instance: self.instance.clone(),
                    requester: self.requester.clone(),
                    ticket: ticket.clone(),
                    for_person,
                },
                secret,
            )
            .await
            .map_err(|e| DeliveryFailure(format!("cannot start {listener}: {e}")))
    }

    fn keep(&self, h: Handed) {
        if let Ok(mut slot) = self.handed.lock() {
            *slot = Some(h);
        }
    }
}

#[async_trait]
impl SecretDelivery for McpDelivery {
    async fn deliver(
        &self,
        token: &Token,
        secret: &RawToken,
        ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        match &self.mode {
            SecretMode::Private => {
                let person = self.for_person.clone().ok_or_else(|| {
                    DeliveryFailure("private delivery without a person; this is a bug".into())
                })?;
                let listener = "the private page's listener";
                let link = self
                    .hold(token, secret, ticket, Some(person.clone()), listener)
                    .await?;
                let page = self
                    .hub
                    .private_page()
                    .await
                    .map_err(|e| DeliveryFailure(format!("cannot start {listener}: {e}")))?;
                let until = link.expires_at;
                let receipt = format!(
                    "kept for {person} on the private reveal page, expires {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                self.keep(Handed::Private {
                    person,
                    page,
                    expires_at: until,
                });
                Ok(DeliveryReceipt::waiting(receipt, until))
            }
            SecretMode::RevealLink => {
                let link = self
                    .hold(token, secret, ticket, None, "the reveal-link listener")
                    .await?;
                let until = link.expires_at;
                let receipt = format!(
                    "one-time reveal link, expires {}",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                self.keep(Handed::Link(link));
                Ok(DeliveryReceipt::waiting(receipt, until))
            }
            SecretMode::File(dir) => {
                let path = dir.join(format!("{}-{}.token", token.name, token.id));
                write_private(&path, secret.expose()).map_err(|e| {
                    DeliveryFailure(format!("cannot write {}: {e}", path.display()))
                })?;
                self.keep(Handed::File(path.clone()));
                Ok(DeliveryReceipt::delivered(format!(
                    "written to {}",
                    path.display()
                )))
            }
            SecretMode::Inline => {
                self.keep(Handed::Inline(secret.clone()));
                Ok(DeliveryReceipt::delivered(
                    "returned inline to the MCP client (configured)",
                ))
            }
        }
    }
}

fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::service::private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(format!("{secret}\n").as_bytes())?;
    f.sync_all()
}

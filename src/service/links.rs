//! Reveal links in the store: a new secret waits sealed (XChaCha20-Poly1305) under a key from
//! configuration that every replica shares and the database never sees, so the link opens on
//! any replica, once, and its row is deleted when opened or withdrawn. Without a configured
//! key each process seals with a key of its own, made at start: its links open only there.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ServiceError, Ticket, TokenService, blocking};
use crate::actor::Actor;
use crate::store::{ParkedLink, Pick, SignIn, Taken};
use crate::tokens::{RawToken, TokenName};

/// The key reveal links are sealed with.
pub struct LinkKey {
    cipher: XChaCha20Poly1305,
    /// A fingerprint, so a replica with another key says so instead of failing to decrypt.
    id: String,
    /// From configuration (shared by the replicas), or made by this process alone.
    shared: bool,
}

/// The least a key file holds: 32 bytes of randomness, in any encoding (`openssl rand -hex 32`).
pub const MIN_KEY_FILE_BYTES: usize = 32;

impl LinkKey {
    /// The key in `path` (its whole content, hashed into a key; at least
    /// [`MIN_KEY_FILE_BYTES`] bytes once trailing whitespace is trimmed).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read store.link_key_file {}: {e}", path.display()))?;
        let material = text.trim_ascii_end();
        if material.len() < MIN_KEY_FILE_BYTES {
            return Err(format!(
                "store.link_key_file {} holds {} bytes; it needs at least {MIN_KEY_FILE_BYTES} random ones \
                 (make one with `openssl rand -hex 32 > {}`)",
                path.display(),
                material.len(),
                path.display()
            ));
        }
        Ok(Self::from_material(material, true))
    }

    /// A key of this process's own: its links die with it.
    pub fn ephemeral() -> Self {
        let mut material = [0u8; 32];
        rand::rng().fill_bytes(&mut material);
        Self::from_material(&material, false)
    }

    fn from_material(material: &[u8], shared: bool) -> Self {
        let key = Sha256::new()
            .chain_update(b"tokenwarden reveal links v1\0")
            .chain_update(material)
            .finalize();
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self {
            cipher: XChaCha20Poly1305::new_from_slice(&key).expect("a 32-byte key"),
            id,
            shared,
        }
    }

    /// Whether other processes configured alike can open this key's links.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// `secret` sealed for the link row `bound_to` (a ciphertext moved to another row does not
    /// open).
    fn seal(&self, bound_to: &str, secret: &RawToken) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("sealing cannot fail for a short secret");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    fn open(&self, bound_to: &str, sealed: &str) -> Option<RawToken> {
        let bytes = STANDARD.decode(sealed).ok()?;
        let (nonce, body) = bytes.split_at_checked(24)?;
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: bound_to.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok().map(RawToken::new)
    }
}

/// What settles a link's token, kept beside its sealed secret (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHeld {
    pub token_name: TokenName,
    /// The created token's id: its name may pass to another token before the link settles.
    pub token_id: u64,
    pub instance: String,
    pub requester: Actor,
    pub ticket: Ticket,
    /// For private delivery: the `[[people]]` entry that alone may see it, on the private page.
    pub for_person: Option<String>,
}

impl LinkHeld {
    /// Whether this is the link of token `token_name` on `instance` that `requester` asked for.
    pub fn is_of(&self, requester: &Actor, instance: &str, token_name: &str) -> bool {
        self.requester.same_as(requester)
            && self.instance == instance
            && self.token_name.as_str() == token_name
    }
}

/// A link as a page sees it before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting to be opened.
    Waiting(Box<LinkHeld>),
    /// Opened, withdrawn or lapsed.
    Gone,
}

/// The store's name for link `id`: the id itself is the bearer's secret.
pub fn link_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn held_of(link: &ParkedLink) -> Result<LinkHeld, ServiceError> {
    serde_json::from_str(&link.held)
        .map_err(|e| ServiceError::Internal(format!("a stored reveal link cannot be read: {e}")))
}

impl TokenService {
    /// Whether reveal links are sealed with a key the replicas share (from configuration).
    pub fn link_key_shared(&self) -> bool {
        self.link_key.shared()
    }

    /// Parks `secret` behind link `id` for `ttl`; `served` when the link's URL reaches any
    /// replica (a shared server), not this process's own listener. Returns when the link lapses
    /// by the store's clock: the deadline its token is settled by.
    pub async fn park_link(
        &self,
        id: &str,
        held: &LinkHeld,
        secret: &RawToken,
        ttl: Duration,
        served: bool,
    ) -> Result<chrono::DateTime<chrono::Utc>, ServiceError> {
        let id_hash = link_hash(id);
        let link = ParkedLink {
            sealed: self.link_key.seal(&id_hash, secret),
            journal: held.ticket.journal.to_string(),
            for_person: held.for_person.clone(),
            shared: served && self.link_key.shared(),
            key_id: self.link_key.id.clone(),
            held: serde_json::to_string(held).map_err(|e| ServiceError::Internal(e.to_string()))?,
            id_hash,
        };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let store = self.store.clone();
        blocking(move || store.link_park(&link, ttl_ms)).await
    }

    /// Whether link `id` waits; `None` for one this store never had.
    pub async fn link_state(&self, id: &str) -> Result<Option<LinkState>, ServiceError> {
        let (store, id_hash) = (self.store.clone(), link_hash(id));
        match blocking(move || store.link_peek(&id_hash)).await? {
            Some((link, true)) => Ok(Some(LinkState::Waiting(Box::new(held_of(&link)?)))),
            Some((_, false)) => Ok(Some(LinkState::Gone)),
            None => Ok(None),
        }
    }

    /// Takes a link for this process: its secret, and what settles its token (whose journal
    /// entry this process now holds). `None` when another opener or a withdrawal was first, or
    /// it lapsed; `even_lapsed` takes a lapsed one too (to withdraw it).
    pub async fn take_link(
        &self,
        pick: LinkPick,
    ) -> Result<Option<(LinkHeld, RawToken)>, ServiceError> {
        let (store, key_id) = (self.store.clone(), self.link_key.id.clone());
        let taken = blocking(move || {
            let pick = match &pick {
                LinkPick::Open(id) => Pick::Hash {
                    id_hash: id,
                    even_lapsed: false,
                },
                LinkPick::Withdraw(id) => Pick::Hash {
                    id_hash: id,
                    even_lapsed: true,
                },
                LinkPick::OldestFor(person) => Pick::OldestFor(person),
            };
            store.link_take(pick, &key_id)
        })
        .await?;
        let link = match taken {
            Taken::Link(link) => link,
            Taken::Gone => return Ok(None),
            Taken::OtherKey => {
                return Err(ServiceError::Internal(
                    "this reveal link was sealed by a tokenwarden with another store.link_key_file; \
                     every replica needs the same key"
                        .into(),
                ));
            }
        };
        let held = held_of(&link)?;
        let secret = self
            .link_key
            .open(&link.id_hash, &link.sealed)
            .ok_or_else(|| {
                ServiceError::Internal(
                    "a stored reveal link's secret does not open with this key".into(),
                )
            })?;
        Ok(Some((held, secret)))
    }
}

impl TokenService {
    /// Withdraws the waiting link of token `token_name` on `instance` that `requester` asked
    /// for, whichever process made it (the requester declined it, perhaps through another
    /// replica): true if there was one and this call took it.
    pub async fn withdraw_link_of(
        &self,
        requester: &Actor,
        instance: &str,
        token_name: &str,
        why: &str,
    ) -> Result<bool, ServiceError> {
        let store = self.store.clone();
        let links = blocking(move || store.link_list()).await?;
        let theirs = links
            .into_iter()
            .find(|link| held_of(link).is_ok_and(|h| h.is_of(requester, instance, token_name)));
        let Some(link) = theirs else {
            return Ok(false);
        };
        let Some((held, _secret)) = self.take_link(LinkPick::Withdraw(link.id_hash)).await? else {
            return Ok(false);
        };
        if let Err(e) = self.withdraw_undelivered(&held.ticket, why).await {
            tracing::error!(error = %e, token = %held.token_name, "could not withdraw an undelivered token; recovery will");
        }
        Ok(true)
    }
}

/// Wrong passphrases on the private reveal page after which a person's waiting secrets are
/// withdrawn and their sign-in locked: whoever is guessing gets nothing, and the person asks
/// again.
pub const MAX_PASSPHRASE_FAILURES: u32 = 5;

/// How long a person's sign-in stays locked after too many wrong passphrases.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);

fn lockout_ms() -> i64 {
    i64::try_from(LOCKOUT.as_millis()).unwrap_or(i64::MAX / 2)
}

impl TokenService {
    /// Counts a sign-in attempt of `person` before their passphrase is checked, on every
    /// replica at once; `Some(left)` when their sign-in is locked (the attempt is refused). The
    /// attempt that locks it, whichever it is, withdraws every secret waiting for them.
    pub async fn signin_begin(&self, person: &str) -> Result<Option<Duration>, ServiceError> {
        let (store, who) = (self.store.clone(), person.to_owned());
        let answer =
            blocking(move || store.signin_begin(&who, MAX_PASSPHRASE_FAILURES, lockout_ms()))
                .await?;
        match answer {
            SignIn::Try => Ok(None),
            SignIn::Locked { left_ms, now } => {
                if now {
                    self.locked_out(person).await;
                }
                Ok(Some(Duration::from_millis(
                    u64::try_from(left_ms).unwrap_or(0),
                )))
            }
        }
    }

    /// A wrong passphrase of `person`; true when it locks their sign-in (every secret waiting
    /// for them is then withdrawn).
    pub async fn signin_failed(&self, person: &str) -> Result<bool, ServiceError> {
        let (store, who) = (self.store.clone(), person.to_owned());
        let locked =
            blocking(move || store.signin_failed(&who, MAX_PASSPHRASE_FAILURES, lockout_ms()))
                .await?;
        if locked {
            self.locked_out(person).await;
        }
        Ok(locked)
    }

    /// Withdraws every secret waiting for `person`, whose sign-in was just locked: whoever is
    /// guessing gets nothing, and the person asks again. One that cannot be taken now (sealed
    /// with another key, or the store failing) is withdrawn when its link lapses.
    async fn locked_out(&self, person: &str) {
        let why = format!(
            "{MAX_PASSPHRASE_FAILURES} wrong passphrases were typed on the private reveal page"
        );
        loop {
            match self.take_link(LinkPick::OldestFor(person.to_owned())).await {
                Ok(Some((held, _secret))) => {
                    if let Err(e) = self.withdraw_undelivered(&held.ticket, &why).await {
                        tracing::error!(error = %e, token = %held.token_name, "could not withdraw an undelivered token; recovery will");
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    return tracing::error!(error = %e, "could not withdraw a locked-out person's secrets; their links lapse");
                }
            }
        }
    }

    /// `person` signed in: their count starts over.
    pub async fn signin_succeeded(&self, person: &str) -> Result<(), ServiceError> {
        let (store, person) = (self.store.clone(), person.to_owned());
        blocking(move || store.signin_succeeded(&person)).await
    }
}

/// Which link [`TokenService::take_link`] takes (ids hashed already).
#[derive(Debug, Clone)]
pub enum LinkPick {
    /// The link with this id hash, to show it (only while live).
    Open(String),
    /// The link with this id hash, to withdraw it (even once lapsed).
    Withdraw(String),
    /// A person's longest-waiting live link.
    OldestFor(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_row_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
        let (a, b) = (
            LinkKey::from_file(&file).unwrap(),
            LinkKey::from_file(&file).unwrap(),
        );
        assert!(a.shared() && a.id == b.id);
        let secret = RawToken::new("apiv3_secret".into());
        let sealed = a.seal("row-1", &secret);
        assert!(!sealed.contains("apiv3_secret"));
        assert_eq!(b.open("row-1", &sealed).unwrap().expose(), "apiv3_secret");
        assert!(b.open("row-2", &sealed).is_none(), "bound to its row");
        let other = LinkKey::ephemeral();
        assert!(!other.shared() && other.id != a.id);
        assert!(other.open("row-1", &sealed).is_none());
        std::fs::write(&file, "short\n").unwrap();
        let err = LinkKey::from_file(&file).err().unwrap();
        assert!(err.contains("at least 32"), "{err}");
    }
}

//! People: one person behind several accounts (Discord users, operating-system accounts, MCP
//! HTTP clients), from the config's `[[people]]`. The gate counts people, so one person cannot
//! approve their own request from another adapter, nor approve twice.

use std::collections::BTreeSet;

use crate::actor::{Actor, ActorKind};

/// One person and the accounts that are theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    /// Discord user ids.
    pub discord: BTreeSet<u64>,
    /// Operating-system accounts as `(uid, host)`.
    pub os_accounts: BTreeSet<(u32, String)>,
    /// `[[mcp.http.clients]]` entries (bearer tokens) this person's assistants use.
    pub mcp_clients: BTreeSet<String>,
    /// An Argon2 hash (PHC string) of the passphrase the private reveal page asks for.
    pub passphrase_argon2: Option<String>,
}

impl Person {
    /// Whether `actor`'s account is one of this person's.
    pub fn owns(&self, actor: &Actor) -> bool {
        match actor.kind {
            ActorKind::Discord => actor
                .id
                .parse::<u64>()
                .is_ok_and(|id| self.discord.contains(&id)),
            ActorKind::Cli | ActorKind::Mcp => {
                if let Some(client) = actor.id.strip_prefix("client:") {
                    self.mcp_clients.contains(client)
                } else if let Some((uid, host)) = os_account(&actor.id) {
                    self.os_accounts.contains(&(uid, host.to_owned()))
                } else {
                    false
                }
            }
            ActorKind::System => false,
        }
    }
}

impl Person {
    /// Whether `typed` is this person's passphrase. Slow on purpose (Argon2): call it off the
    /// async runtime.
    pub fn verify_passphrase(&self, typed: &str) -> bool {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let Some(hash) = &self.passphrase_argon2 else {
            return false;
        };
        PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(typed.as_bytes(), &h)
                .is_ok()
        })
    }
}

/// The Argon2id hash (PHC string) of `passphrase` with a fresh salt, for `passphrase_hash`.
pub fn hash_passphrase(passphrase: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand::Rng;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2::Argon2::default()
        .hash_password(passphrase.as_bytes(), &salt)?
        .to_string())
}

/// `os:UID@HOST` as `(UID, HOST)`.
fn os_account(id: &str) -> Option<(u32, &str)> {
    let (uid, host) = id.strip_prefix("os:")?.split_once('@')?;
    Some((uid.parse().ok()?, host))
}

/// Everyone the config names. Each account belongs to at most one person (the config refuses
/// anything else).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People(Vec<Person>);

impl People {
    pub fn new(people: Vec<Person>) -> Self {
        Self(people)
    }

    /// The person whose account `actor` is.
    pub fn of(&self, actor: &Actor) -> Option<&Person> {
        self.0.iter().find(|p| p.owns(actor))
    }

    /// The person named `name`.
    pub fn named(&self, name: &str) -> Option<&Person> {
        self.0.iter().find(|p| p.name == name)
    }

    /// `actor` with its person set from this map (or cleared when the map no longer has one).
    pub fn identify(&self, actor: &Actor) -> Actor {
        let mut actor = actor.clone();
        actor.person = self.of(&actor).map(|p| p.name.clone());
        actor
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::OsAccount;

    fn ann() -> Person {
        Person {
            name: "ann".into(),
            discord: [7].into(),
            os_accounts: [(1000, "h1".to_owned())].into(),
            mcp_clients: ["ann-laptop".to_owned()].into(),
            passphrase_argon2: None,
        }
    }

    fn os(uid: u32, host: &str) -> OsAccount {
        OsAccount {
            uid,
            user: None,
            host: host.into(),
        }
    }

    #[test]
    fn every_account_of_a_person_is_that_person() {
        let people = People::new(vec![ann()]);
        let actors = [
            Actor::discord(7, "Ann"),
            Actor::cli(&os(1000, "h1")),
            Actor::mcp_stdio(&os(1000, "h1"), "claude"),
            Actor::mcp_http("ann-laptop", "claude"),
        ];
        let identified: Vec<Actor> = actors.iter().map(|a| people.identify(a)).collect();
        for a in &identified {
            assert_eq!(a.person.as_deref(), Some("ann"), "{a}");
            assert!(a.same_as(&identified[0]), "{a}");
        }
    }

    #[test]
    fn a_passphrase_hash_verifies_only_its_passphrase() {
        let hash = hash_passphrase("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(hash, hash_passphrase("correct horse").unwrap(), "salted");
        let with_hash = Person {
            passphrase_argon2: Some(hash),
            ..ann()
        };
        assert!(with_hash.verify_passphrase("correct horse"));
        assert!(!with_hash.verify_passphrase("correct horse "));
        assert!(!with_hash.verify_passphrase(""));
        assert!(!ann().verify_passphrase(""), "no hash, no passphrase");
    }

    #[test]
    fn other_accounts_are_nobody() {
        let people = People::new(vec![ann()]);
        for a in [
            Actor::discord(8, "Ann"),
            Actor::cli(&os(1000, "h2")),
            Actor::cli(&os(1001, "h1")),
            Actor::mcp_http("bob-laptop", "ann-laptop"),
            Actor::system(),
        ] {
            assert_eq!(people.identify(&a).person, None, "{a}");
        }
    }
}

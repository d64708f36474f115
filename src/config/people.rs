//! The `[[people]]` tables: which Discord users, operating-system accounts and MCP clients are
//! one person, and the hash of the passphrase their private reveal page asks for.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::discord::Snowflake;
use crate::people::{People, Person};

/// One `[[people]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    name: String,
    #[serde(default)]
    discord_user_ids: Vec<Snowflake>,
    #[serde(default)]
    os_accounts: Vec<String>,
    #[serde(default)]
    mcp_clients: Vec<String>,
    passphrase_hash: Option<String>,
}

/// Validates the tables: names unique, every account someone's at most once, MCP clients among
/// `[[mcp.http.clients]]`, OS accounts known here, passphrase hashes Argon2 PHC strings.
pub(super) fn validate(raw: Vec<RawPerson>, mcp_clients: &[String]) -> Result<People, String> {
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut people = Vec::new();
    for r in raw {
        let key = format!("people `{}`", r.name);
        if r.name.trim().is_empty() || r.name.chars().any(char::is_control) {
            return Err("people: every entry needs a name without control characters".into());
        }
        if !names.insert(r.name.clone()) {
            return Err(format!("{key} is named twice"));
        }
        let mut person = Person {
            name: r.name.clone(),
            ..Person::default()
        };
        for id in &r.discord_user_ids {
            person
                .discord
                .insert(id.id_at(&format!("{key}: discord_user_ids"))?);
        }
        for account in &r.os_accounts {
            person.os_accounts.insert(os_account(&key, account)?);
        }
        for client in &r.mcp_clients {
            if !mcp_clients.contains(client) {
                return Err(format!(
                    "{key}: mcp_clients names `{client}`, which no [[mcp.http.clients]] entry is"
                ));
            }
            person.mcp_clients.insert(client.clone());
        }
        if let Some(hash) = &r.passphrase_hash {
            argon2::PasswordHash::new(hash)
                .ok()
                .filter(|h| h.algorithm.as_str().starts_with("argon2"))
                .ok_or_else(|| {
                    format!(
                        "{key}: passphrase_hash must be an Argon2 hash as `tokenwarden people \
                         hash-passphrase` prints it ($argon2id$...)"
                    )
                })?;
            person.passphrase_argon2 = Some(hash.clone());
        }
        let accounts = person
            .discord
            .iter()
            .map(|d| format!("Discord user {d}"))
            .chain(
                person
                    .os_accounts
                    .iter()
                    .map(|(uid, host)| format!("OS account {uid}@{host}")),
            )
            .chain(person.mcp_clients.iter().map(|c| format!("MCP client {c}")));
        for account in accounts {
            if !seen.insert(account.clone()) {
                return Err(format!(
                    "{key}: {account} is listed for two people; an account is one person's"
                ));
            }
        }
        people.push(person);
    }
    Ok(People::new(people))
}

/// `NAME@HOST` or `UID@HOST` as `(uid, host)`. A name is looked up in this host's account
/// database, so it must exist here; accounts of other hosts are written by uid.
fn os_account(key: &str, text: &str) -> Result<(u32, String), String> {
    let bad = |why: &str| {
        format!(
            "{key}: os_accounts entry `{text}` {why}; write NAME@HOST or UID@HOST (HOST as `hostname` prints it)"
        )
    };
    let (user, host) = text
        .rsplit_once('@')
        .filter(|(u, h)| !u.is_empty() && !h.is_empty())
        .ok_or_else(|| bad("is not an account at a host"))?;
    let uid = match user.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .ok_or_else(|| bad("names no account on this host"))?,
    };
    // Host names compare case-insensitively, as DNS names do.
    Ok((uid, host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, clients: &[&str]) -> Result<People, String> {
        #[derive(Deserialize)]
        struct Doc {
            people: Vec<RawPerson>,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        let clients: Vec<String> = clients.iter().map(|c| (*c).to_owned()).collect();
        validate(doc.people, &clients)
    }

    #[test]
    fn a_person_with_every_kind_of_account() {
        let people = parse(
            r#"
[[people]]
name = "ann"
discord_user_ids = ["80351110224678912", 42]
os_accounts = ["root@build-1", "1000@laptop"]
mcp_clients = ["ann-laptop"]
"#,
            &["ann-laptop"],
        )
        .unwrap();
        let ann = people.named("ann").unwrap();
        assert_eq!(ann.discord, [42, 80351110224678912].into());
        assert_eq!(
            ann.os_accounts,
            [(0, "build-1".to_owned()), (1000, "laptop".to_owned())].into()
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "[[people]]\nname = \"a\"\nmcp_clients = [\"ghost\"]",
                "no [[mcp.http.clients]] entry",
            ),
            (
                "[[people]]\nname = \"a\"\nos_accounts = [\"root\"]",
                "is not an account at a host",
            ),
            (
                "[[people]]\nname = \"a\"\nos_accounts = [\"no-such-user-here@h\"]",
                "names no account on this host",
            ),
            (
                "[[people]]\nname = \"a\"\ndiscord_user_ids = [\"x\"]",
                "people `a`: discord_user_ids must be a Discord id",
            ),
            (
                "[[people]]\nname = \"a\"\n[[people]]\nname = \"a\"",
                "named twice",
            ),
            (
                "[[people]]\nname = \"a\"\ndiscord_user_ids = [1]\n[[people]]\nname = \"b\"\ndiscord_user_ids = [1]",
                "Discord user 1 is listed for two people",
            ),
            (
                "[[people]]\nname = \"a\"\npassphrase_hash = \"hunter2\"",
                "must be an Argon2 hash",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text, &[]).unwrap_err();
            assert!(got.contains(want), "{text}: {got}");
        }
    }
}

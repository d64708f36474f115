//! Who may do what in Discord: capabilities mapped to role ids and user ids, default deny,
//! checked on every command and every button click.

use std::collections::BTreeMap;

use serenity::model::guild::Member;
use serenity::model::user::User;

/// What a Discord user may do through the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    List,
    Create,
    /// Request a delete (an approval card).
    Delete,
    Approve,
}

impl Capability {
    pub const ALL: [Capability; 4] = [Self::List, Self::Create, Self::Delete, Self::Approve];

    pub fn key(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Approve => "approve",
        }
    }
}

/// Role ids and user ids per capability. Nobody may do anything that is not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub roles: BTreeMap<Capability, Vec<u64>>,
    pub users: BTreeMap<Capability, Vec<u64>>,
}

impl Access {
    /// Whether `user` (with `member`'s roles in this guild) holds `cap`.
    pub fn allows(&self, cap: Capability, user: &User, member: Option<&Member>) -> bool {
        let by_user = self
            .users
            .get(&cap)
            .is_some_and(|ids| ids.contains(&user.id.get()));
        let by_role = member.is_some_and(|m| {
            self.roles
                .get(&cap)
                .is_some_and(|ids| m.roles.iter().any(|r| ids.contains(&r.get())))
        });
        by_user || by_role
    }

    /// The refusal a user sees.
    pub fn refusal(cap: Capability) -> String {
        format!(
            "You are not allowed to {} tokens here. An admin can add your role under [discord.roles] `{}` \
             (or your user id under [discord.users]) in tokenwarden's config.",
            match cap {
                Capability::List => "list",
                Capability::Create => "create",
                Capability::Delete => "request deleting",
                Capability::Approve => "approve or reject deleting",
            },
            cap.key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> User {
        let mut u = User::default();
        u.id = id.into();
        u
    }

    fn member(roles: &[u64]) -> Member {
        let mut m: Member = serde_json::from_value(serde_json::json!({
            "user": {"id": "1", "username": "x", "discriminator": "0", "global_name": null, "avatar": null},
            "roles": [], "joined_at": "2026-01-01T00:00:00Z", "deaf": false, "mute": false, "flags": 0,
            "guild_id": "5"
        }))
        .unwrap();
        m.roles = roles.iter().map(|r| (*r).into()).collect();
        m
    }

    #[test]
    fn default_deny_then_roles_or_users() {
        let mut a = Access::default();
        assert!(!a.allows(Capability::List, &user(1), Some(&member(&[10]))));
        a.roles.insert(Capability::List, vec![10]);
        a.users.insert(Capability::Approve, vec![2]);
        assert!(a.allows(Capability::List, &user(1), Some(&member(&[10, 11]))));
        assert!(!a.allows(Capability::List, &user(1), Some(&member(&[11]))));
        assert!(
            !a.allows(Capability::List, &user(1), None),
            "roles need a guild member"
        );
        assert!(a.allows(Capability::Approve, &user(2), None));
        assert!(!a.allows(Capability::Create, &user(2), Some(&member(&[10]))));
    }
}

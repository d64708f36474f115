//! Reading slash-command options into domain values, before anything runs.

use std::collections::HashMap;

use serenity::model::application::{CommandInteraction, ResolvedOption, ResolvedValue};

use crate::tokens::{
    Expiry, ListFilter, NewToken, ParseError, Permission, TokenKind, TokenName, TokenSpec,
    TokenStatus,
};

/// A subcommand's name and its string options.
pub(super) fn subcommand(cmd: &CommandInteraction) -> Option<(String, HashMap<String, String>)> {
    let options = cmd.data.options();
    let ResolvedOption {
        name,
        value: ResolvedValue::SubCommand(sub),
        ..
    } = options.into_iter().next()?
    else {
        return None;
    };
    let args = sub
        .into_iter()
        .filter_map(|o| match o.value {
            ResolvedValue::String(s) => Some((o.name.to_owned(), s.to_owned())),
            _ => None,
        })
        .collect();
    Some((name.to_owned(), args))
}

/// What `/token delete` names: a token by name, or by id (`id:123`, as autocomplete offers
/// for names Discord cannot carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeleteTarget {
    Name(TokenName),
    Id(u64),
}

/// The prefix of a token id given where a name is expected.
pub(super) const ID_PREFIX: &str = "id:";

pub(super) fn delete_target(s: &str) -> Result<DeleteTarget, ParseError> {
    match s.strip_prefix(ID_PREFIX).map(|n| n.trim().parse::<u64>()) {
        Some(Ok(id)) => Ok(DeleteTarget::Id(id)),
        // Longer than the option allows: not from a Discord client; a long name goes by its id.
        _ if s.chars().count() > usize::from(super::commands::NAME_MAX) => {
            Err(ParseError(format!(
                "a name here is at most {} characters; pick a longer one by its id (autocomplete offers `id:N`)",
                super::commands::NAME_MAX
            )))
        }
        _ => TokenName::parse(s).map(DeleteTarget::Name),
    }
}

pub(super) fn list_filter(args: &HashMap<String, String>) -> Result<ListFilter, ParseError> {
    Ok(ListFilter {
        name_contains: args.get("name").cloned(),
        name_is: None,
        kind: args.get("kind").map(|k| TokenKind::parse(k)).transpose()?,
        database: args.get("database").cloned(),
        status: args
            .get("status")
            .map(|s| TokenStatus::parse(s))
            .transpose()?,
        expiring_within: None,
    })
}

pub(super) fn new_token(
    sub: &str,
    args: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NewToken, ParseError> {
    let name = TokenName::parse_new(args.get("name").map_or("", String::as_str))?;
    let expiry = match args.get("expires") {
        Some(e) => Expiry::parse_any(e, now)?,
        None => Expiry::Never,
    };
    let spec = if sub == "create-resource" {
        let perms = args.get("permissions").map_or("", String::as_str);
        let parsed = perms
            .split_whitespace()
            .map(Permission::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(ParseError(
                "give at least one permission, like db:metrics:read".into(),
            ));
        }
        TokenSpec::Resource(parsed)
    } else {
        TokenSpec::Admin
    };
    Ok(NewToken { name, spec, expiry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_parsed_before_anything_runs() {
        let now = chrono::Utc::now();
        let args = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(
            new_token(
                "create-admin",
                &args(&[("name", "ok"), ("expires", "7d")]),
                now
            )
            .is_ok()
        );
        assert!(new_token("create-admin", &args(&[("name", "bad name")]), now).is_err());
        let e = new_token(
            "create-resource",
            &args(&[("name", "r"), ("permissions", "db:metrics")]),
            now,
        )
        .unwrap_err();
        assert!(e.0.contains("TYPE:NAMES:ACTIONS"));
        let r = new_token(
            "create-resource",
            &args(&[("name", "r"), ("permissions", "db:a:read  db:b:write")]),
            now,
        )
        .unwrap();
        assert!(matches!(r.spec, TokenSpec::Resource(p) if p.len() == 2));
    }

    #[test]
    fn deletes_name_a_token_or_its_id() {
        assert_eq!(delete_target("id:42").unwrap(), DeleteTarget::Id(42));
        assert!(
            matches!(delete_target("id:x").unwrap(), DeleteTarget::Name(n) if n.as_str() == "id:x")
        );
        assert!(matches!(
            delete_target("ci").unwrap(),
            DeleteTarget::Name(_)
        ));
        assert!(delete_target("").is_err());
    }
}

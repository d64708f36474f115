//! Autocomplete: token names for deletes, databases for permissions and filters, only for
//! those allowed, and always within Discord's time limit.

use std::time::Duration;

use serenity::builder::{CreateAutocompleteResponse, CreateInteractionResponse};
use serenity::model::application::CommandInteraction;

use super::options::ID_PREFIX;
use super::text::{self, CHOICE};
use super::{Bot, Capability, actor_of};
use crate::tokens::{Database, ListFilter, Page, Token};

/// How long autocomplete may wait for InfluxDB (Discord allows 3 s in all).
const SUGGEST_WITHIN: Duration = Duration::from_millis(2_000);
/// The most choices Discord shows.
const MAX_CHOICES: usize = 25;

impl Bot {
    pub(super) async fn autocomplete(&self, ac: &CommandInteraction) -> CreateInteractionResponse {
        let none = CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new());
        let Some(focused) = ac.data.autocomplete() else {
            return none;
        };
        let sub = ac
            .data
            .options
            .first()
            .map(|o| o.name.as_str())
            .unwrap_or_default();
        let (cap, wants_dbs) = match (sub, focused.name) {
            ("delete", "name") => (Capability::Delete, false),
            ("create-resource", "permissions") => (Capability::Create, true),
            ("list", "database") => (Capability::List, true),
            _ => return none,
        };
        if ac.guild_id.is_none() || !self.allowed(cap, &ac.user, ac.member.as_deref()) {
            return none;
        }
        let actor = actor_of(&ac.user);
        let typed = focused.value.to_owned();
        let choices: Vec<(String, String)> = if wants_dbs {
            let dbs =
                tokio::time::timeout(SUGGEST_WITHIN, self.service.list_databases(&actor, None))
                    .await;
            let dbs = dbs.ok().and_then(Result::ok).unwrap_or_default();
            if sub == "list" {
                dbs.into_iter()
                    .filter(|d| d.name.starts_with(&typed))
                    .map(|d| (db_label(&d), d.name))
                    .collect()
            } else {
                let names: Vec<String> = dbs.into_iter().map(|d| d.name).collect();
                permission_choices(&typed, &names)
            }
        } else {
            let filter = ListFilter {
                name_contains: (!typed.is_empty()).then_some(typed.clone()),
                ..Default::default()
            };
            // One page covers Discord's 25 choices, even with the operator token among them.
            let page = Page {
                offset: 0,
                limit: MAX_CHOICES + 1,
            };
            let listed = self.service.list_page(&actor, None, &filter, page);
            let listed = tokio::time::timeout(SUGGEST_WITHIN, listed).await;
            let tokens = listed.ok().and_then(Result::ok).map(|p| p.tokens);
            tokens
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !t.is_operator())
                .map(|t| name_choice(&t))
                .collect()
        };
        let mut response = CreateAutocompleteResponse::new();
        for (name, value) in choices
            .into_iter()
            .filter(|(_, v)| text::len(v) <= CHOICE)
            .take(MAX_CHOICES)
        {
            response = response.add_string_choice(text::label(&name, CHOICE), value);
        }
        CreateInteractionResponse::Autocomplete(response)
    }
}

/// `metrics (retention 30days, 3 tables)`: the name alone if nothing more is known or the label
/// would pass Discord's 100 characters. The value stays the name.
fn db_label(db: &Database) -> String {
    let summary = db.summary();
    let label = format!("{} ({summary})", db.name);
    if summary.is_empty() || label.len() > 100 {
        db.name.clone()
    } else {
        label
    }
}

/// A token as a choice for `/token delete`: its name as the value when Discord can carry it
/// back as typed, else `id:N` (the delete resolves it); the label shows the name, cut, and the
/// id whenever the name alone might not identify it.
pub fn name_choice(t: &Token) -> (String, String) {
    let carried = text::len(&t.name) <= CHOICE
        && !t.name.starts_with(ID_PREFIX)
        && text::label(&t.name, CHOICE) == t.name;
    if carried {
        return (t.name.clone(), t.name.clone());
    }
    let suffix = format!(" (id {})", t.id);
    let name = text::label(&t.name, CHOICE - text::len(&suffix));
    (format!("{name}{suffix}"), format!("{ID_PREFIX}{}", t.id))
}

/// Suggestions for the last word of a permissions field: `db:<db>:read` and `db:<db>:read,write`.
fn permission_choices(typed: &str, dbs: &[String]) -> Vec<(String, String)> {
    let (head, last) = match typed.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), typed),
    };
    let needle = last
        .trim_start_matches("db:")
        .split(':')
        .next()
        .unwrap_or_default();
    dbs.iter()
        .filter(|d| d.starts_with(needle))
        .flat_map(|d| {
            [
                format!("{head}db:{d}:read"),
                format!("{head}db:{d}:read,write"),
            ]
        })
        .map(|v| (v.clone(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_suggestions_complete_the_last_word() {
        let dbs = vec!["metrics".to_owned(), "logs".to_owned()];
        let c = permission_choices("db:logs:read me", &dbs);
        assert_eq!(c[0].1, "db:logs:read db:metrics:read");
        assert_eq!(c[1].1, "db:logs:read db:metrics:read,write");
        assert_eq!(permission_choices("", &dbs).len(), 4);
    }

    #[test]
    fn database_labels_show_retention_within_discords_limit() {
        let mut db = Database::named("logs");
        assert_eq!(db_label(&db), "logs");
        db.retention_period = Some(crate::tokens::Retention::Period(Duration::from_secs(
            86_400,
        )));
        db.tables = Some(2);
        assert_eq!(db_label(&db), "logs (retention 1day, 2 tables)");
        db.name = "x".repeat(90);
        assert_eq!(db_label(&db), db.name);
    }
}

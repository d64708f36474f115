//! Human output: token tables, times relative to now, and JSON for scripts.

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use serde_json::json;

use crate::shown::shown;
use crate::store::AuditEntry;
use crate::tokens::{Database, Retention, Token, TokenStatus};

/// `3d`, `5h`, `12m`, `40s`: the largest whole unit.
pub fn short_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `2026-12-01 00:00 (in 3d)` or `2026-11-20 10:00 (expired 8d ago)` or `never`.
pub fn expiry_text(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match expiry {
        None => "never".to_owned(),
        Some(at) if at <= now => format!(
            "{} (expired {} ago)",
            at.format("%Y-%m-%d %H:%M"),
            short_duration(now - at)
        ),
        Some(at) => format!(
            "{} (in {})",
            at.format("%Y-%m-%d %H:%M"),
            short_duration(at - now)
        ),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// Table cells come from outside (names, actors, reasons): each is one line, escapes visible.
fn cells(values: Vec<String>) -> Vec<String> {
    values.into_iter().map(|v| shown(&v).into_owned()).collect()
}

/// Databases as a table: name, retention period and tables (`-` where the server did not say).
pub fn databases_table(dbs: &[Database]) -> String {
    if dbs.is_empty() {
        return "No databases.".to_owned();
    }
    let mut t = table(&["NAME", "RETENTION", "TABLES"]);
    for db in dbs {
        t.add_row(cells(vec![
            db.name.clone(),
            db.retention_period
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            db.tables.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ]));
    }
    t.to_string()
}

/// The JSON form of a database: `retention_period` is `"30days"`, `"indefinite"` or null
/// (unknown); `retention_period_secs` and `tables` are null when unknown or indefinite.
pub fn database_json(db: &Database) -> serde_json::Value {
    json!({
        "name": db.name,
        "retention_period": db.retention_period.map(|r| r.to_string()),
        "retention_period_secs": match db.retention_period {
            Some(Retention::Period(d)) => Some(d.as_secs()),
            _ => None,
        },
        "tables": db.tables,
    })
}

/// The JSON form of a token for scripts (no secret: tokens never hold one).
pub fn token_json(t: &Token, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "id": t.id,
        "name": t.name,
        "kind": t.kind,
        "status": t.status(now),
        "permissions": t.permissions,
        "created_at": t.created_at,
        "expiry": t.expiry,
        "updated_at": t.updated_at,
        "created_by": t.created_by,
    })
}

pub fn tokens_table(tokens: &[Token], now: DateTime<Utc>) -> String {
    if tokens.is_empty() {
        return "No tokens match.".to_owned();
    }
    let mut t = table(&[
        "NAME",
        "ID",
        "KIND",
        "STATUS",
        "PERMISSIONS",
        "CREATED",
        "EXPIRES",
    ]);
    for tok in tokens {
        let status = match tok.status(now) {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "EXPIRED",
        };
        t.add_row(cells(vec![
            tok.name.clone(),
            tok.id.to_string(),
            tok.kind.to_string(),
            status.to_owned(),
            tok.permissions.join(" "),
            tok.created_at.format("%Y-%m-%d %H:%M").to_string(),
            expiry_text(tok.expiry, now),
        ]));
    }
    let active = tokens
        .iter()
        .filter(|t| t.status(now) == TokenStatus::Active)
        .count();
    format!(
        "{t}\n{} ({active} active, {} expired)",
        crate::tokens::count_tokens(tokens.len(), ""),
        tokens.len() - active
    )
}

pub fn audit_table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "The audit log is empty.".to_owned();
    }
    let mut t = table(&[
        "#", "WHEN", "ACTOR", "EVENT", "INSTANCE", "TOKEN", "OUTCOME", "DETAIL",
    ]);
    for e in entries {
        let ev = &e.event;
        t.add_row(cells(vec![
            e.seq.to_string(),
            ev.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ev.actor.to_string(),
            ev.event.clone(),
            ev.instance.clone().unwrap_or_default(),
            ev.token_name.clone().unwrap_or_default(),
            serde_json::to_value(ev.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            ev.detail.clone().unwrap_or_default(),
        ]));
    }
    t.to_string()
}

/// One token described in a sentence, for confirmations.
pub fn token_summary(t: &Token, now: DateTime<Utc>) -> String {
    format!(
        "{} (id {}, {}, {}, permissions {}, created {}, expires {})",
        crate::shown::quoted(&t.name),
        t.id,
        t.kind,
        t.status(now),
        t.permissions.join(" "),
        t.created_at.format("%Y-%m-%d %H:%M"),
        expiry_text(t.expiry, now)
    )
}

/// A failure of the core as a person at the terminal reads it: what happened, then the command
/// that helps.
pub fn explain(e: &crate::service::ServiceError) -> String {
    use crate::service::Remedy;
    let step = match e.remedy() {
        None => return e.to_string(),
        Some(Remedy::ListTokens { why }) => format!("run `tokenwarden tokens list` {why}"),
        Some(Remedy::ListDatabases) => "run `tokenwarden databases` to see the names".to_owned(),
        Some(Remedy::RegenerateOperator) => {
            "use `tokenwarden tokens regenerate-operator` for that".to_owned()
        }
        Some(Remedy::BootstrapOperator) => {
            "create it with `tokenwarden tokens bootstrap-operator`".to_owned()
        }
        Some(Remedy::DeleteToken { name }) => {
            format!("or delete it now with `tokenwarden tokens delete {name}`")
        }
        Some(Remedy::CheckInstance) => {
            "run `tokenwarden check` to see whether the operator token still works".to_owned()
        }
    };
    format!("{e}; {step}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_pick_the_largest_unit() {
        let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        assert_eq!(expiry_text(None, now), "never");
        assert_eq!(
            expiry_text(Some("2026-12-01T00:00:00Z".parse().unwrap()), now),
            "2026-12-01 00:00 (in 3d)"
        );
        assert_eq!(
            expiry_text(Some("2026-11-27T22:00:00Z".parse().unwrap()), now),
            "2026-11-27 22:00 (expired 2h ago)"
        );
    }
}

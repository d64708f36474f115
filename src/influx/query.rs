//! The `system.tokens` query for a [`ListFilter`]: fixed SQL text, every user value in `params`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::tokens::{ADMIN_PERMISSION, ListFilter, Page, TokenKind, TokenStatus};

const COLUMNS: &str =
    "token_id, name, created_at, description, created_by_token_id, updated_at, expiry, permissions";

/// SQL text and its parameters. The text only ever contains constants, `$name` placeholders and
/// the page's numbers.
pub fn list_tokens(
    filter: &ListFilter,
    page: Option<Page>,
    now: DateTime<Utc>,
) -> (String, Map<String, Value>) {
    let mut params = Map::new();
    let mut conditions: Vec<&str> = Vec::new();
    let mut param = |name: &str, value: String| {
        params.insert(name.to_owned(), Value::String(value));
    };
    if let Some(name) = &filter.name_is {
        conditions.push("name = $name");
        param("name", name.clone());
    }
    if let Some(name) = &filter.name_contains {
        conditions.push("name LIKE $name_pattern");
        param("name_pattern", format!("%{}%", escape_like(name)));
    }
    match filter.kind {
        Some(TokenKind::Admin) => conditions.push("permissions = $admin_permission"),
        Some(TokenKind::Resource) => conditions.push("permissions <> $admin_permission"),
        None => {}
    }
    if filter.kind.is_some() {
        param("admin_permission", ADMIN_PERMISSION.to_owned());
    }
    if let Some(db) = &filter.database {
        // Coarse in SQL (names may be listed together); the caller checks exactly.
        conditions.push("(permissions LIKE $db_pattern OR permissions LIKE $db_any_pattern)");
        param("db_pattern", format!("%{}%", escape_like(db)));
        param("db_any_pattern", "%db:*:%".to_owned());
    }
    let needs_now = filter.status.is_some() || filter.expiring_within.is_some();
    match filter.status {
        Some(TokenStatus::Expired) => conditions.push("expiry <= CAST($now AS TIMESTAMP)"),
        Some(TokenStatus::Active) => {
            conditions.push("(expiry IS NULL OR expiry > CAST($now AS TIMESTAMP))")
        }
        None => {}
    }
    if let Some(within) = filter.expiring_within {
        conditions.push("expiry > CAST($now AS TIMESTAMP) AND expiry <= CAST($until AS TIMESTAMP)");
        let until = crate::tokens::later(now, within);
        param("until", sql_timestamp(until));
    }
    if needs_now {
        param("now", sql_timestamp(now));
    }
    debug_assert!(
        conditions.iter().all(|c| !c.contains('\'')),
        "no literals in conditions"
    );
    let mut sql = format!("SELECT {COLUMNS} FROM system.tokens");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY name, token_id");
    if let Some(p) = page {
        sql.push_str(&format!(" LIMIT {} OFFSET {}", p.limit, p.offset));
    }
    (sql, params)
}

/// The newest token's id: ids only grow, so this is the highest.
pub const HIGHEST_ID: &str = "SELECT token_id FROM system.tokens ORDER BY token_id DESC LIMIT 1";

/// A timestamp as `system.tokens` writes them: UTC, no zone suffix.
fn sql_timestamp(t: DateTime<Utc>) -> String {
    t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Makes `s` match literally inside a LIKE pattern (backslash is the escape character).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00.5Z".parse().unwrap()
    }

    #[test]
    fn no_filter_lists_everything_by_name() {
        let (sql, params) = list_tokens(&ListFilter::default(), None, now());
        assert_eq!(
            sql,
            format!("SELECT {COLUMNS} FROM system.tokens ORDER BY name, token_id")
        );
        assert!(params.is_empty());
        let (sql, _) = list_tokens(
            &ListFilter::default(),
            Some(Page {
                offset: 100,
                limit: 51,
            }),
            now(),
        );
        assert!(
            sql.ends_with("ORDER BY name, token_id LIMIT 51 OFFSET 100"),
            "{sql}"
        );
    }

    #[test]
    fn user_text_only_reaches_params() {
        let evil = "x'; DROP TABLE t; -- %_\\";
        let filter = ListFilter {
            name_contains: Some(evil.into()),
            database: Some(evil.into()),
            ..Default::default()
        };
        let (sql, params) = list_tokens(&filter, None, now());
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(params["name_pattern"], "%x'; DROP TABLE t; -- \\%\\_\\\\%");
    }

    #[test]
    fn status_and_expiry_use_time_parameters() {
        let filter = ListFilter {
            status: Some(TokenStatus::Active),
            expiring_within: Some(Duration::from_secs(86_400)),
            kind: Some(TokenKind::Admin),
            ..Default::default()
        };
        let (sql, params) = list_tokens(&filter, None, now());
        assert!(sql.contains("permissions = $admin_permission AND (expiry IS NULL OR expiry > CAST($now AS TIMESTAMP))"), "{sql}");
        assert_eq!(params["now"], "2026-11-28T00:00:00.500");
        assert_eq!(params["until"], "2026-11-29T00:00:00.500");
        assert_eq!(params["admin_permission"], "*:*:*");
    }
}

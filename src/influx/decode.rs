//! Reading what InfluxDB 3 sends: create responses (`Content-Type: json`), `system.tokens` rows
//! (timestamps without `Z`, null keys dropped), `/ping`, and error bodies. Server text is
//! redacted before it can reach an error.

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::tokens::{
    BackendError, CreatedToken, Edition, RawToken, ServerInfo, Token, redact,
    split_listed_permissions,
};

/// Parses a timestamp with or without a zone (`2026-06-17T10:00:00.123`, `...Z`) as UTC.
pub fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // `NaiveDateTime`'s own parser (`%Y-%m-%dT%H:%M:%S%.f`) is several times faster than a
    // format string, which is re-read for every value; SQL output may use a space for the `T`.
    let naive = match (s.get(..10), s.get(10..11), s.get(11..)) {
        (Some(date), Some(" "), Some(time)) => format!("{date}T{time}").parse::<NaiveDateTime>(),
        _ => s.parse::<NaiveDateTime>(),
    };
    naive.ok().map(|t| t.and_utc())
}

/// The create-token response. Enterprise's resource-token body is undocumented beyond `token`,
/// so everything else is optional.
#[derive(Deserialize)]
struct CreateBody {
    id: Option<u64>,
    token_id: Option<u64>,
    name: Option<String>,
    token: String,
    created_at: Option<String>,
    expiry: Option<String>,
}

/// Decodes a 201 body into the new token's metadata and secret, and whether the body gave the
/// token's id (without it, the id is 0 until the caller looks it up).
pub fn created(
    url: &str,
    body: &[u8],
    fallback_name: &str,
    permissions: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(CreatedToken, bool), BackendError> {
    let b: CreateBody = serde_json::from_slice(body).map_err(|e| BackendError::Decode {
        url: url.to_owned(),
        what: "create-token response",
        // serde may quote the input; never let a token through.
        detail: redact(&e.to_string()),
    })?;
    let kind = Token::kind_of(&permissions);
    let id = b.id.or(b.token_id);
    let token = Token {
        id: id.unwrap_or_default(),
        name: b.name.unwrap_or_else(|| fallback_name.to_owned()),
        kind,
        permissions,
        created_at: b.created_at.as_deref().and_then(timestamp).unwrap_or(now),
        expiry: b.expiry.as_deref().and_then(timestamp),
        updated_at: None,
        created_by: None,
        description: None,
    };
    Ok((
        CreatedToken {
            token,
            secret: RawToken::new(b.token),
        },
        id.is_some(),
    ))
}

/// One row of `system.tokens` as JSON.
#[derive(Deserialize)]
struct Row {
    token_id: u64,
    name: String,
    created_at: String,
    description: Option<String>,
    created_by_token_id: Option<u64>,
    updated_at: Option<String>,
    expiry: Option<String>,
    permissions: Option<String>,
}

/// Decodes a `format=json` answer of the list query.
pub fn token_rows(url: &str, body: &[u8]) -> Result<Vec<Token>, BackendError> {
    let decode_err = |detail: String| BackendError::Decode {
        url: url.to_owned(),
        what: "token list",
        detail,
    };
    let rows: Vec<Row> =
        serde_json::from_slice(body).map_err(|e| decode_err(redact(&e.to_string())))?;
    rows.into_iter()
        .map(|r| {
            let permissions = split_listed_permissions(r.permissions.as_deref().unwrap_or("*:*:*"));
            Ok(Token {
                id: r.token_id,
                kind: Token::kind_of(&permissions),
                permissions,
                created_at: timestamp(&r.created_at)
                    .ok_or_else(|| decode_err(format!("created_at `{}`", r.created_at)))?,
                expiry: r.expiry.as_deref().and_then(timestamp),
                updated_at: r.updated_at.as_deref().and_then(timestamp),
                created_by: r.created_by_token_id,
                description: r.description,
                name: r.name,
            })
        })
        .collect()
}

/// Decodes the answer to [`super::query::HIGHEST_ID`] (`[]` or `[{"token_id": N}]`).
pub fn highest_id(url: &str, body: &[u8]) -> Result<Option<u64>, BackendError> {
    #[derive(Deserialize)]
    struct IdRow {
        token_id: u64,
    }
    let rows: Vec<IdRow> = serde_json::from_slice(body).map_err(|e| BackendError::Decode {
        url: url.to_owned(),
        what: "highest token id",
        detail: redact(&e.to_string()),
    })?;
    Ok(rows.first().map(|r| r.token_id))
}

/// Decodes the database list (`[{"iox::database": "metrics"}, ...]`).
pub fn databases(url: &str, body: &[u8]) -> Result<Vec<String>, BackendError> {
    #[derive(Deserialize)]
    struct Db {
        #[serde(rename = "iox::database")]
        name: String,
    }
    let rows: Vec<Db> = serde_json::from_slice(body).map_err(|e| BackendError::Decode {
        url: url.to_owned(),
        what: "database list",
        detail: redact(&e.to_string()),
    })?;
    Ok(rows.into_iter().map(|d| d.name).collect())
}

/// Reads `/ping`: the `X-Influxdb-Build` header first, then the body's `product_name`.
pub fn ping(headers: &HeaderMap, body: &[u8]) -> ServerInfo {
    #[derive(Deserialize, Default)]
    struct Ping {
        product_name: Option<String>,
        version: Option<String>,
        revision: Option<String>,
    }
    let body: Ping = serde_json::from_slice(body).unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let edition_of = |s: &str| {
        let s = s.to_ascii_lowercase();
        if s.contains("enterprise") {
            Some(Edition::Enterprise)
        } else if s.contains("core") {
            Some(Edition::Core)
        } else {
            None
        }
    };
    let edition = header("x-influxdb-build")
        .as_deref()
        .and_then(edition_of)
        .or_else(|| body.product_name.as_deref().and_then(edition_of));
    ServerInfo {
        edition,
        version: header("x-influxdb-version").or(body.version),
        revision: body.revision,
        product_name: body.product_name,
    }
}

/// Whether a 5xx answer to a change is a refusal InfluxDB sends before changing anything: only
/// `missing admin token, cannot update`, to a regeneration on a server without `_admin`
/// (reference §7.1). Any other may come after the change was applied, or from a gateway in
/// front of InfluxDB that gave up waiting.
pub fn refused_unchanged(status: u16, body: &[u8]) -> bool {
    status == 500 && error_message(body).contains("missing admin token")
}

/// The message in an error body: JSON `error`, then `message`, else the text. Redacted and
/// shortened; an HTML page is named as such.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Some(m) = v
            .get("error")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
    {
        return redact(m);
    }
    if text.starts_with('<') {
        return "an HTML page instead of an InfluxDB answer (is the url pointing at a proxy or another service?)".into();
    }
    if text.is_empty() {
        return "an empty body".into();
    }
    let short: String = text.chars().take(300).collect();
    redact(&short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenKind;

    const URL: &str = "http://influx";

    #[test]
    fn reads_every_timestamp_shape_influxdb_sends() {
        let at = |s: &str| timestamp(s).map(|t| t.to_rfc3339());
        let ms = Some("2026-11-28T00:21:41.016+00:00".to_owned());
        assert_eq!(at("2026-11-28T00:21:41.016"), ms);
        assert_eq!(at("2026-11-28 00:21:41.016"), ms);
        assert_eq!(at("2026-11-28T00:21:41.016Z"), ms);
        assert_eq!(at("2026-11-28T01:21:41.016+01:00"), ms);
        assert_eq!(
            at("2026-11-28T00:21:41"),
            Some("2026-11-28T00:21:41+00:00".to_owned())
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-28",
            "2026-11-28 ",
            "2026-13-28T00:00:00",
            "2026-11-28é00:21:41",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decodes_the_captured_create_response() {
        let body = br#"{"id":3,"name":"grafana-reader","token":"apiv3_xyz","hash":"ba2d","created_at":"2026-11-28T00:22:37.188Z","expiry":"2026-11-29T00:22:37.188Z"}"#;
        let (c, id_given) = created(URL, body, "x", vec!["*:*:*".into()], Utc::now()).unwrap();
        assert!(id_given);
        assert_eq!((c.token.id, c.token.name.as_str()), (3, "grafana-reader"));
        assert_eq!(
            c.token.expiry.unwrap().to_rfc3339(),
            "2026-11-29T00:22:37.188+00:00"
        );
        assert_eq!(c.secret.expose(), "apiv3_xyz");
    }

    #[test]
    fn a_create_body_without_an_id_says_so() {
        let (c, id_given) =
            created(URL, br#"{"token":"apiv3_xyz"}"#, "x", vec![], Utc::now()).unwrap();
        assert!(!id_given);
        assert_eq!(c.token.name.as_str(), "x");
    }

    #[test]
    fn a_bad_create_body_never_leaks_the_token() {
        let body = br#"{"id":"apiv3_leak","token":5}"#;
        let err = created(URL, body, "x", vec![], Utc::now())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("apiv3_leak"), "{err}");
    }

    #[test]
    fn decodes_the_captured_token_list() {
        let body = br#"[{"token_id":0,"name":"_admin","hash":"4c9b19329","created_at":"2026-11-28T00:21:41.016","updated_at":"2026-11-28T00:21:50.420","updated_by_token_id":0,"permissions":"*:*:*"},{"token_id":3,"name":"grafana-reader","hash":"ba2dd2a77","created_at":"2026-11-28T00:22:37.188","expiry":"2026-11-29T00:22:37.188","permissions":"db:metrics:read"}]"#;
        let tokens = token_rows(URL, body).unwrap();
        assert_eq!(tokens[0].kind, TokenKind::Admin);
        assert!(tokens[0].expiry.is_none());
        assert!(tokens[0].updated_at.is_some());
        assert_eq!(tokens[1].kind, TokenKind::Resource);
        assert_eq!(
            tokens[1].expiry.unwrap().to_rfc3339(),
            "2026-11-29T00:22:37.188+00:00"
        );
    }

    #[test]
    fn ping_prefers_the_header_then_the_body() {
        let mut h = HeaderMap::new();
        h.insert("x-influxdb-build", "Enterprise".parse().unwrap());
        h.insert("x-influxdb-version", "3.10.0".parse().unwrap());
        let info = ping(&h, br#"{"product_name":"InfluxDB 3 Core"}"#);
        assert_eq!(
            (info.edition, info.version.as_deref()),
            (Some(Edition::Enterprise), Some("3.10.0"))
        );
        let info = ping(
            &HeaderMap::new(),
            br#"{"product_name":"InfluxDB 3 Core","version":"3.9"}"#,
        );
        assert_eq!(info.edition, Some(Edition::Core));
        assert_eq!(ping(&HeaderMap::new(), b"garbage").edition, None);
    }

    #[test]
    fn error_messages_read_every_shape() {
        assert_eq!(
            error_message(br#"{"error": "the request was not authenticated"}"#),
            "the request was not authenticated"
        );
        assert_eq!(
            error_message(b"token name already exists, ci-bot"),
            "token name already exists, ci-bot"
        );
        assert!(error_message(b"<html><body>502 Bad Gateway</body></html>").contains("HTML page"));
        assert_eq!(error_message(b"saw apiv3_abc"), "saw apiv3_<redacted>");
    }
}

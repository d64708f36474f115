//! InfluxDB's token answers with any dates (any JSON scalar where a date belongs, any body at
//! all), read at any time chrono can hold: decoding, filtering and every rendering answer or
//! refuse, never panic, and never show the secret in an error.
#![no_main]
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokenwarden::influx::decode;
use tokenwarden::mcp::args::TokenView;
use tokenwarden::tokens::{ListFilter, MAX_DURATION, Token};

const SECRET: &str = "apiv3_FuzzSecretFuzzSecretFuzzSecret";

/// A date field as `kind` picks it: absent, a number, or one of the two texts.
fn date(kind: u8, number: i64, a: &str, b: &str) -> Value {
    match kind % 5 {
        0 => Value::Null,
        1 => json!(number),
        2 => json!(number as f64 / 1000.0),
        3 => json!(a),
        _ => json!(b),
    }
}

fn render(tokens: &[Token], now: DateTime<Utc>, within: u64) {
    let filter = ListFilter {
        expiring_within: Some(std::time::Duration::from_secs(
            within % (MAX_DURATION.as_secs() + 1),
        )),
        ..ListFilter::default()
    };
    for t in tokens {
        let _ = t.status(now);
        let _ = filter.matches(t, now);
        let _ = tokenwarden::cli::token_json(t, now);
        let _ = serde_json::to_string(&TokenView::new(t, now));
    }
    let _ = tokenwarden::cli::tokens_table(tokens, now);
    let _ = tokenwarden::discord::list_embed("local", tokens, 0, now);
}

fuzz_target!(|input: (i64, u32, u8, u8, u64, String, String)| {
    let (secs, nanos, created_kind, expiry_kind, within, a, b) = input;
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let now = DateTime::from_timestamp(secs.clamp(min, max), nanos % 1_000_000_000)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let created_at = date(created_kind, secs, &a, &b);
    let expiry = date(expiry_kind, secs.wrapping_mul(1000), &b, &a);
    let mut tokens = Vec::new();
    let body =
        json!({"id": 1, "name": "t", "token": SECRET, "created_at": created_at, "expiry": expiry});
    for body in [body.to_string(), a.clone()] {
        match decode::created(
            "http://influx",
            body.as_bytes(),
            "t",
            vec!["*:*:*".into()],
            now,
        ) {
            Ok((c, _)) => tokens.push(c.token),
            Err(e) => assert!(!e.to_string().contains(SECRET)),
        }
    }
    let rows = json!([{"token_id": 2, "name": "r", "created_at": created_at, "expiry": expiry,
        "updated_at": date(expiry_kind.wrapping_add(created_kind), secs, &a, &b), "permissions": b}]);
    for body in [rows.to_string(), b.clone()] {
        if let Ok(rows) = decode::token_rows("http://influx", body.as_bytes()) {
            tokens.extend(rows);
        }
    }
    render(&tokens, now, within);
});

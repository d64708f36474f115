//! `/api/v3/configure/database`: list (GET), create (POST), update (PUT) and soft delete
//! (DELETE), answered as `influxdb3_server/src/http.rs` does at `d7834110b3` (3.10.0-nightly):
//! `show_databases`, `create_database`, `update_database` and `delete_database`.

// Handlers return an early `Response` as their error (see `handlers.rs`).
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::response::Response;
use serde::{Deserialize, Deserializer};

use crate::tokens::{MAX_DURATION, validate_database_name};

use super::databases::{DbError, HardDelete, SimDatabase};
use super::format::Format;
use super::handlers::{json_body, rendered};
use super::routes::{SimRequest, json_error, text};
use super::sql::QueryOutput;
use super::state::SimState;
use super::value::Value;

/// `Option<Duration>` as `#[serde(with = "humantime_serde", default)]` reads it for
/// `retention_period` (`influxdb3_types/src/http.rs`: `CreateDatabaseRequest`,
/// `UpdateDatabaseRequest`): absent or `null` is none, a string is a humantime duration
/// (`"30d"`, `"1h 30m"`), anything else is a serde error. Beyond 100 years ([`MAX_DURATION`]) is
/// a serde error too: the simulator's `retention_period_ns` would overflow past 584 years, and
/// what InfluxDB itself does with such a period is not known.
fn humantime_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration of at most 100 years")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v)
                .ok()
                .filter(|d| *d <= MAX_DURATION)
                .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
    struct Wrapped(Duration);
    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(V).map(Wrapped)
        }
    }
    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

#[derive(Deserialize)]
struct DbBody {
    db: String,
    #[serde(default, deserialize_with = "humantime_opt")]
    retention_period: Option<Duration>,
}

fn db_error(e: &DbError) -> Response {
    text(e.status(), e.message())
}

fn ok() -> Response {
    text(200, "")
}

/// `show_databases` with `ShowDatabasesRequest { format, show_deleted }`: `format` is required
/// (no default in the struct); rows are sorted by `deleted`, then name
/// (`influxdb3_query_executor/src/lib.rs`: `show_databases`), and `show_deleted=true` adds a
/// `deleted` column and the renamed deleted databases.
pub fn list(state: &SimState, req: &SimRequest) -> Response {
    #[derive(Deserialize)]
    struct Query {
        format: Format,
        #[serde(default)]
        show_deleted: bool,
    }
    let q: Query = match serde_urlencoded::from_str(&req.query) {
        Ok(q) => q,
        Err(e) => return text(400, format!("serde error: {e}")),
    };
    let mut dbs: Vec<SimDatabase> = state
        .catalog()
        .databases()
        .filter(|d| q.show_deleted || !d.deleted)
        .cloned()
        .collect();
    dbs.sort_by(|a, b| (a.deleted, &a.name).cmp(&(b.deleted, &b.name)));
    let mut columns = vec!["iox::database".to_owned()];
    if q.show_deleted {
        columns.push("deleted".into());
    }
    let rows = dbs
        .into_iter()
        .map(|d| {
            let mut row = vec![Value::Str(d.name)];
            if q.show_deleted {
                row.push(Value::Bool(d.deleted));
            }
            row
        })
        .collect();
    rendered(&QueryOutput { columns, rows }, q.format)
}

/// `create_database`: `read_body_json` (415 without a JSON content type), `validate_db_name`
/// (400 with a JSON body), then `create_database_opts` (409 `AlreadyExists`, plain text).
pub fn create(state: &SimState, req: &SimRequest) -> Response {
    let body: DbBody = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if validate_database_name(&body.db).is_err() {
        return json_error(
            400,
            "invalid character in database or rp name: must be ASCII, containing only letters, numbers, underscores, or hyphens",
        );
    }
    match state
        .catalog()
        .create_database(&body.db, body.retention_period)
    {
        Ok(_) => ok(),
        Err(e) => db_error(&e),
    }
}

/// `update_database`: `UpdateDatabaseRequest { db, retention_period }`; a period sets it
/// (`set_retention_period_for_database`), none clears it (`clear_retention_period_for_database`).
/// The name is not validated; an unknown one is 404 `NotFound`, a deleted one 409, `_internal`
/// 500 `cannot modify internal db`.
pub fn update(state: &SimState, req: &SimRequest) -> Response {
    let body: DbBody = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match state
        .catalog()
        .set_retention(&body.db, body.retention_period)
    {
        Ok(()) => ok(),
        Err(e) => db_error(&e),
    }
}

/// `delete_database`: `DeleteDatabaseRequest { db, hard_delete_at }` from the query string;
/// `hard_delete_at` is `never`, `now`, `default` (72 hours) or an RFC 3339 time (a past one means
/// now). The soft delete renames the database, so its name is free at once.
///
/// Tokens that named it keep its id (`capture_db_name_in_tokens`,
/// `influxdb3_catalog/src/format/records/database.rs`): they stay listed with the old name and
/// grant nothing on a new database of that name. The simulator never runs the hard delete: the
/// deleted database stays in `show_deleted` and `system.databases` with its hard-delete time.
pub fn delete(state: &SimState, req: &SimRequest) -> Response {
    #[derive(Deserialize)]
    struct Query {
        db: String,
        hard_delete_at: Option<String>,
    }
    let q: Query = match serde_urlencoded::from_str(&req.query) {
        Ok(q) => q,
        Err(e) => return text(400, format!("serde error: {e}")),
    };
    let now = state.now_ms();
    let when = match q.hard_delete_at.as_deref().unwrap_or("default") {
        "never" => HardDelete::Never,
        "now" => HardDelete::Now,
        "default" => HardDelete::Default,
        ts => match chrono::DateTime::parse_from_rfc3339(ts) {
            Ok(t) if t.timestamp_millis() < now => HardDelete::Now,
            Ok(t) => HardDelete::At(t.timestamp_millis()),
            Err(e) => return text(400, format!("Cannot parse the timestamp: {e}")),
        },
    };
    match state.catalog().delete_database(&q.db, when, now) {
        Ok(_) => ok(),
        Err(e) => db_error(&e),
    }
}

/// The rows of `system.databases` (`influxdb3_system_tables/src/databases.rs`: `DatabasesTable`),
/// every database including deleted ones, in catalog order.
pub const DATABASES_COLUMNS: [&str; 4] = [
    "database_name",
    "retention_period_ns",
    "deleted",
    "hard_deletion_time",
];

pub fn database_rows(state: &SimState) -> Vec<Vec<Value>> {
    state
        .catalog()
        .databases()
        .map(|d| {
            vec![
                Value::Str(d.name.clone()),
                d.retention_secs.map_or(Value::Null, |s| {
                    Value::UInt(s.saturating_mul(1_000_000_000))
                }),
                Value::Bool(d.deleted),
                // `Timestamp(Second, Some("UTC"))`, which Arrow's JSON writer prints with a `Z`.
                // Kept as text: the simulator compares it as a string, not as a time.
                d.hard_delete_at.map_or(Value::Null, |ms| {
                    Value::Str(
                        chrono::DateTime::from_timestamp(ms.div_euclid(1000), 0)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or_default(),
                    )
                }),
            ]
        })
        .collect()
}

/// The columns of `system.tables` (`influxdb3_system_tables/src/tables.rs`: `TablesTable`). The
/// simulator holds no tables, so it has no rows.
pub const TABLES_COLUMNS: [&str; 8] = [
    "database_name",
    "table_name",
    "column_count",
    "series_key_columns",
    "last_cache_count",
    "distinct_cache_count",
    "deleted",
    "hard_deletion_time",
];

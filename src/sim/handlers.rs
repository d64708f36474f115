//! The simulator's endpoint handlers, answering with InfluxDB 3's statuses, bodies and
//! content types (see `influxdb3-token-api.md` and the Core captures).

// Handlers return an early `Response` as their error: built once, on a cold path, so its size
// does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::http::header;
use axum::response::Response;
use chrono::SecondsFormat;
use serde::Deserialize;

use crate::tokens::{RawToken, WirePermission};

use super::catalog::{CatalogError, INTERNAL_DB, SimToken};
use super::database_api::{DATABASES_COLUMNS, TABLES_COLUMNS, database_rows};
use super::format::{Format, render};
use super::query_log::QUERIES_COLUMNS;
use super::routes::{SimRequest, json_error, raw, text};
use super::sql::{self, QueryOutput, TOKENS_TABLE};
use super::state::SimState;
use super::value::Value;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// 201 with `Content-Type: json` and the create-token JSON.
fn created(token: &SimToken, secret: &RawToken) -> Response {
    let body = serde_json::json!({
        "id": token.id,
        "name": token.name,
        "token": secret.expose(),
        "hash": hex::encode(token.hash),
        "created_at": rfc3339(token.created_at),
        "expiry": token.expiry.map(rfc3339),
    });
    raw(201, Some("json"), body.to_string())
}

fn catalog_error(e: &CatalogError) -> Response {
    let status = match e {
        CatalogError::NameExists(_) => 409,
        CatalogError::NotFound(_) => 404,
        CatalogError::CannotDeleteOperator => 405,
        CatalogError::MissingAdmin => 500,
        CatalogError::BadPermission(_) => 400,
    };
    text(status, e.message())
}

fn result(r: Result<(SimToken, RawToken), CatalogError>) -> Response {
    match r {
        Ok((token, secret)) => created(&token, &secret),
        Err(e) => catalog_error(&e),
    }
}

/// `application/json`, `application/*+json`, with or without parameters.
fn is_json(req: &SimRequest) -> bool {
    let Some(v) = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = v
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.split_once('/')
        .is_some_and(|(t, sub)| t == "application" && (sub == "json" || sub.ends_with("+json")))
}

pub(super) fn json_body<T: serde::de::DeserializeOwned>(req: &SimRequest) -> Result<T, Response> {
    if !is_json(req) {
        return Err(text(
            415,
            "unacceptable content-type, expected: application/json",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| text(400, format!("serde json error: {e}")))
}

pub fn create_operator(state: &SimState) -> Response {
    let now = state.now_ms();
    result(state.catalog().create_operator(now))
}

pub fn create_named_admin(state: &SimState, req: &SimRequest) -> Response {
    #[derive(Deserialize)]
    struct Body {
        token_name: String,
        expiry_secs: Option<u64>,
    }
    let body: Body = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = state.now_ms();
    result(
        state
            .catalog()
            .create_named_admin(&body.token_name, body.expiry_secs, now),
    )
}

pub fn create_resource(state: &SimState, req: &SimRequest) -> Response {
    #[derive(Deserialize)]
    struct Body {
        token_name: String,
        permissions: Vec<WirePermission>,
        expiry_secs: Option<u64>,
    }
    let body: Body = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = state.now_ms();
    result(state.catalog().create_resource(
        &body.token_name,
        body.permissions,
        body.expiry_secs,
        now,
    ))
}

pub fn regenerate(state: &SimState) -> Response {
    let now = state.now_ms();
    result(state.catalog().regenerate_operator(now))
}

pub fn delete_token(state: &SimState, req: &SimRequest) -> Response {
    #[derive(Deserialize)]
    struct Query {
        token_name: String,
    }
    let q: Query = match serde_urlencoded::from_str(&req.query) {
        Ok(q) => q,
        Err(e) => return text(400, format!("serde error: {e}")),
    };
    match state.catalog().delete(&q.token_name) {
        Ok(()) => text(200, ""),
        Err(e) => catalog_error(&e),
    }
}

pub fn ping(state: &SimState) -> Response {
    let (build, product) = if state.is_enterprise() {
        ("Enterprise", "InfluxDB 3 Enterprise")
    } else {
        ("Core", "InfluxDB 3 Core")
    };
    let body = serde_json::json!({
        "product_name": product,
        "version": state.settings.version,
        "revision": "simulated",
        "process_id": state.process_id,
    });
    let mut r = raw(200, Some("application/json"), body.to_string());
    let request_id = uuid::Uuid::new_v4().to_string();
    for (k, v) in [
        ("x-influxdb-build", build.to_owned()),
        ("x-influxdb-version", state.settings.version.clone()),
        ("request-id", request_id.clone()),
        ("x-request-id", request_id),
    ] {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

#[derive(Deserialize)]
struct QueryRequest {
    db: String,
    q: String,
    format: Option<Format>,
    params: Option<HashMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct QueryString {
    db: String,
    q: String,
    format: Option<Format>,
    params: Option<String>,
}

/// The database a `query_sql` request names, if it can be read.
pub fn query_db(req: &SimRequest) -> Option<String> {
    parse_query(req).ok().map(|q| q.db)
}

fn parse_query(req: &SimRequest) -> Result<QueryRequest, Response> {
    if req.method == axum::http::Method::GET {
        let qs: QueryString = serde_urlencoded::from_str(&req.query)
            .map_err(|e| text(400, format!("serde error: {e}")))?;
        let params = qs
            .params
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| text(400, format!("serde json error: {e}")))?;
        Ok(QueryRequest {
            db: qs.db,
            q: qs.q,
            format: qs.format,
            params,
        })
    } else {
        serde_json::from_slice(&req.body).map_err(|e| text(400, format!("serde json error: {e}")))
    }
}

/// The format an `Accept` header asks for; `Err` for values InfluxDB refuses.
fn accept_format(req: &SimRequest) -> Result<Format, Response> {
    let Some(v) = req.headers.get(header::ACCEPT) else {
        return Ok(Format::Json);
    };
    let s = String::from_utf8_lossy(v.as_bytes()).into_owned();
    match s.as_str() {
        "application/json" | "*/*" => Ok(Format::Json),
        "text/csv" => Ok(Format::Csv),
        "text/plain" => Ok(Format::Pretty),
        "application/vnd.apache.parquet" => Ok(Format::Parquet),
        other if other.contains("text/html") || other.contains("*/*") => Ok(Format::Json),
        other => Err(text(400, format!("invalid mime type ({other})"))),
    }
}

pub fn query_sql(state: &SimState, req: &SimRequest) -> Response {
    let accepted = match accept_format(req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let q = match parse_query(req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let format = q.format.unwrap_or(accepted);
    if state.catalog().database_id(&q.db).is_none() {
        return json_error(404, &format!("query error: database not found: {}", q.db));
    }
    let mut params = HashMap::new();
    for (k, v) in q.params.unwrap_or_default() {
        match Value::from_json(&v) {
            Ok(v) => params.insert(k, v),
            Err(e) => return text(400, e),
        };
    }
    let with_hash = !state.settings.without_auth;
    let internal = q.db == INTERNAL_DB;
    // Every database has `system.queries`; `_internal` also has the catalog's tables
    // (`influxdb3_system_tables/src/lib.rs`: `AllSystemSchemaTablesProvider::new`). The
    // simulator holds no other tables.
    let columns_of = |table: &str| -> Option<Vec<&'static str>> {
        match table {
            "system.queries" => Some(QUERIES_COLUMNS.to_vec()),
            TOKENS_TABLE if internal => Some(token_columns(with_hash)),
            "system.databases" if internal => Some(DATABASES_COLUMNS.to_vec()),
            "system.tables" if internal => Some(TABLES_COLUMNS.to_vec()),
            _ => None,
        }
    };
    let now = state.now_ms();
    let id = state.query_log().start(&q.q, now);
    // Rows are read only once the query is planned, and `query_database_sql` records success
    // before the stream is read (`influxdb3_query_executor/src/lib.rs`).
    let mut executed = false;
    let out = sql::run(&q.q, &params, columns_of, |table| {
        executed = true;
        state.query_log().succeed(&id);
        match table {
            "system.queries" => state.query_log().rows(),
            "system.databases" => database_rows(state),
            TOKENS_TABLE => state
                .catalog()
                .tokens()
                .map(|t| token_row(t, with_hash))
                .collect(),
            _ => Vec::new(),
        }
    });
    // A planning error, or one DataFusion raises while planning that the simulator meets only on a
    // row (a type it cannot coerce).
    if out
        .as_ref()
        .is_err_and(|e| !executed || e.message.starts_with("Error during planning"))
    {
        state.query_log().fail(&id);
    }
    match out {
        Ok(out) => rendered(&out, format),
        Err(e) => text(e.status, e.message),
    }
}

pub(super) fn rendered(out: &QueryOutput, format: Format) -> Response {
    match render(out, format) {
        Some(body) => raw(200, Some(format.content_type()), body),
        None => text(
            400,
            "the InfluxDB 3 simulator does not produce parquet; use json, jsonl, csv or pretty",
        ),
    }
}

fn token_columns(with_hash: bool) -> Vec<&'static str> {
    [
        "token_id",
        "name",
        "hash",
        "created_at",
        "description",
        "created_by_token_id",
        "updated_at",
        "updated_by_token_id",
        "expiry",
        "permissions",
    ]
    .into_iter()
    .filter(|c| with_hash || *c != "hash")
    .collect()
}

fn token_row(t: &SimToken, with_hash: bool) -> Vec<Value> {
    let opt_ts = |v: Option<i64>| v.map_or(Value::Null, Value::Ts);
    let mut row = vec![Value::UInt(t.id), Value::Str(t.name.clone())];
    if with_hash {
        row.push(Value::Str(t.hash_prefix.clone()));
    }
    row.extend([
        Value::Ts(t.created_at),
        Value::Null,
        Value::Null,
        opt_ts(t.updated_at),
        t.updated_by.map_or(Value::Null, Value::UInt),
        opt_ts(t.expiry),
        Value::Str(t.permissions_column().to_owned()),
    ]);
    row
}

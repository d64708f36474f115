//! The simulator answers as InfluxDB 3 does: the captured exchanges in
//! `influxdb3-core-captures.md` are the golden fixtures (status, content type, body).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use tokenwarden::sim::{AnswerAfterApply, Reanswer, Simulator, StallAfterApply, Swallow};
use tokenwarden::tokens::{Edition, Permission, RawToken};

use crate::support::{self, sim};

/// Status, content type (None when absent) and body of one request.
struct Reply {
    status: u16,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn call(
    base: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<(&str, &str)>,
) -> Reply {
    let mut rb = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    if let Some((ct, b)) = body {
        if !ct.is_empty() {
            rb = rb.header("content-type", ct);
        }
        rb = rb.body(b.to_owned());
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    Reply {
        status,
        content_type,
        headers,
        body: r.text().await.unwrap(),
    }
}

fn bearer(t: &RawToken) -> String {
    format!("Bearer {}", t.expose())
}

const JSON: &str = "application/json";

#[tokio::test]
async fn ping_reports_the_edition_and_needs_a_token() {
    let (s, op) = sim(Edition::Core).await;
    let r = call(&s.url(), Method::GET, "/ping", Some(&bearer(&op)), None).await;
    assert_eq!((r.status, r.content_type.as_deref()), (200, Some(JSON)));
    assert_eq!(r.headers["x-influxdb-build"], "Core");
    assert!(r.headers.contains_key("x-influxdb-version"));
    assert!(r.headers.contains_key("cluster-uuid"));
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(r.json()["product_name"], "InfluxDB 3 Core");

    let r = call(&s.url(), Method::GET, "/ping", None, None).await;
    assert_eq!((r.status, r.content_type.as_deref()), (401, None));
    assert_eq!(r.body, r#"{"error": "the request was not authenticated"}"#);
    assert!(
        r.headers.contains_key("cluster-uuid"),
        "errors carry cluster-uuid too"
    );
    assert!(!r.headers.contains_key("access-control-allow-origin"));

    let (e, op) = sim(Edition::Enterprise).await;
    let r = call(&e.url(), Method::GET, "/ping", Some(&bearer(&op)), None).await;
    assert_eq!(r.headers["x-influxdb-build"], "Enterprise");
}

#[tokio::test]
async fn authorization_header_rules() {
    let (s, op) = sim(Edition::Core).await;
    let ok = |auth: String| {
        let url = s.url();
        async move {
            call(&url, Method::GET, "/health", Some(&auth), None)
                .await
                .status
        }
    };
    assert_eq!(ok(bearer(&op)).await, 200);
    assert_eq!(ok(format!("Token {}", op.expose())).await, 200);
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("me:{}", op.expose()));
    assert_eq!(ok(format!("Basic {basic}")).await, 200);
    let r = call(
        &s.url(),
        Method::GET,
        "/health",
        Some(&format!("bearer {}", op.expose())),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"error": "Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"}"#
    );
    assert_eq!(ok("Bearer apiv3_unknown".into()).await, 401);
    let r = call(&s.url(), Method::GET, "/health", Some(&bearer(&op)), None).await;
    assert_eq!(
        (r.content_type.as_deref(), r.body.as_str()),
        (Some("text/plain; charset=utf-8"), "OK")
    );
}

#[tokio::test]
async fn named_admin_tokens_match_the_captures() {
    let (s, op) = sim(Edition::Core).await;
    let auth = bearer(&op);
    let post = |body: &'static str| {
        let (url, auth) = (s.url(), auth.clone());
        async move {
            call(
                &url,
                Method::POST,
                "/api/v3/configure/token/named_admin",
                Some(&auth),
                Some((JSON, body)),
            )
            .await
        }
    };
    let r = post(r#"{"token_name": "grafana-reader", "expiry_secs": 86400}"#).await;
    assert_eq!((r.status, r.content_type.as_deref()), (201, Some("json")));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["id", "name", "token", "hash", "created_at", "expiry"]
    );
    let token = v["token"].as_str().unwrap();
    assert!(
        token.starts_with("apiv3_") && token.len() == 92,
        "{}",
        token.len()
    );
    assert_eq!(v["hash"], hex::encode(Sha512::digest(token.as_bytes())));
    let created = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
    let expiry = chrono::DateTime::parse_from_rfc3339(v["expiry"].as_str().unwrap()).unwrap();
    assert_eq!((expiry - created).num_seconds(), 86_400);
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));

    let r = post(r#"{"token_name": "ci-bot"}"#).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["expiry"], Value::Null, "expiry is always present");

    let r = post(r#"{"token_name": "ci-bot"}"#).await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (409, None, "token name already exists, ci-bot")
    );
    let r = post(r#"{"expiry_secs": 5}"#).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "serde json error: missing field `token_name` at line 1 column 18"
        )
    );
    let r = post(r#"{"token_name": "neg", "expiry_secs": -5}"#).await;
    assert_eq!(
        r.body,
        "serde json error: invalid value: integer `-5`, expected u64 at line 1 column 39"
    );
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/token/named_admin",
        Some(&auth),
        Some(("text/plain", "{}")),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (415, "unacceptable content-type, expected: application/json")
    );
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/token/named_admin",
        Some(&auth),
        Some((
            "application/vnd.x+json; charset=utf-8",
            r#"{"token_name":"plus"}"#,
        )),
    )
    .await;
    assert_eq!(r.status, 201, "+json with parameters is accepted");
}

#[tokio::test]
async fn expiry_really_expires() {
    let (s, op) = sim(Edition::Core).await;
    let short = s
        .control
        .create_admin("short", Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        call(
            &s.url(),
            Method::GET,
            "/health",
            Some(&bearer(&short)),
            None
        )
        .await
        .status,
        200
    );
    s.control.advance_clock(Duration::from_secs(61));
    let r = call(
        &s.url(),
        Method::GET,
        "/health",
        Some(&bearer(&short)),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, r#"{"error": "the request was not authenticated"}"#)
    );
    // Expired tokens stay listed.
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/query_sql",
        Some(&bearer(&op)),
        Some((JSON, r#"{"db":"_internal","q":"SELECT name FROM system.tokens WHERE name = 'short'","format":"json"}"#)),
    )
    .await;
    assert_eq!(r.body, r#"[{"name":"short"}]"#);
}

#[tokio::test]
async fn listing_matches_the_captures() {
    let (s, op) = sim(Edition::Core).await;
    s.control
        .create_admin("short-1", Some(Duration::from_secs(1)));
    s.control
        .create_admin("grafana-reader", Some(Duration::from_secs(86_400)));
    s.control.create_admin("ci-bot", None);
    let q = |body: String| {
        let (url, auth) = (s.url(), bearer(&op));
        async move {
            call(
                &url,
                Method::POST,
                "/api/v3/query_sql",
                Some(&auth),
                Some((JSON, &body)),
            )
            .await
        }
    };
    let r = q(
        json!({"db":"_internal","q":"SELECT * FROM system.tokens","format":"json","params":null})
            .to_string(),
    )
    .await;
    assert_eq!((r.status, r.content_type.as_deref()), (200, Some(JSON)));
    let rows = r.json();
    let admin = &rows[0];
    let keys: Vec<&str> = admin
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["token_id", "name", "hash", "created_at", "permissions"],
        "null keys are dropped"
    );
    assert_eq!(admin["hash"].as_str().unwrap().len(), 9);
    assert!(!admin["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(rows[2]["expiry"].is_string());

    let sql = "SELECT token_id, name, expiry FROM system.tokens WHERE name LIKE $pat ORDER BY name LIMIT 10";
    let r = q(json!({"db":"_internal","q":sql,"format":"json","params":{"pat":"%i%"}}).to_string())
        .await;
    assert_eq!(
        r.body,
        r#"[{"token_id":0,"name":"_admin"},{"token_id":3,"name":"ci-bot"}]"#
    );

    let sql = "SELECT name, permissions FROM system.tokens ORDER BY token_id";
    let r = q(json!({"db":"_internal","q":sql,"format":"jsonl"}).to_string()).await;
    assert_eq!(r.content_type.as_deref(), Some("application/jsonl"));
    assert_eq!(
        r.body.lines().next(),
        Some(r#"{"name":"_admin","permissions":"*:*:*"}"#)
    );
    let r = q(json!({"db":"_internal","q":sql,"format":"csv"}).to_string()).await;
    assert_eq!(r.content_type.as_deref(), Some("text/csv"));
    assert!(
        r.body
            .starts_with("name,permissions\n_admin,*:*:*\nshort-1,*:*:*\n"),
        "{}",
        r.body
    );
    let r = q(json!({"db":"_internal","q":sql,"format":"pretty"}).to_string()).await;
    assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert!(
        r.body.starts_with("+----------------+-------------+\n| name           | permissions |\n+----------------+-------------+\n| _admin "),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn query_errors_match_the_captures() {
    let (s, op) = sim(Edition::Core).await;
    let q = |sql: &str, db: &str| {
        let (url, auth) = (s.url(), bearer(&op));
        let body = json!({"db": db, "q": sql, "format": "json", "params": null}).to_string();
        async move {
            call(
                &url,
                Method::POST,
                "/api/v3/query_sql",
                Some(&auth),
                Some((JSON, &body)),
            )
            .await
        }
    };
    let r = q("SELECT nope FROM system.tokens", "_internal").await;
    assert_eq!((r.status, r.content_type.as_deref()), (500, None));
    assert_eq!(
        r.body,
        "Schema error: No field named nope. Valid fields are system.tokens.token_id, system.tokens.name, system.tokens.hash, system.tokens.created_at, system.tokens.description, system.tokens.created_by_token_id, system.tokens.updated_at, system.tokens.updated_by_token_id, system.tokens.expiry, system.tokens.permissions."
    );
    let r = q("SELEC name FROM system.tokens", "_internal").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            r#"SQL error: ParserError("Expected: an SQL statement, found: SELEC at Line: 1, Column: 1")"#
        )
    );
    let r = q(
        "SELECT name FROM system.tokens WHERE name = $missing",
        "_internal",
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "Error during planning: No value found for placeholder with name $missing"
        )
    );
    let r = q("SELECT * FROM system.tokens", "nosuchdb").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            r#"{"error":"query error: database not found: nosuchdb"}"#
        )
    );
    let r = q("SELECT count(*) FROM system.tokens", "_internal").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("does not support"), "{}", r.body);

    let mut rb = reqwest::Client::new()
        .get(format!("{}/api/v3/query_sql", s.url()))
        .query(&[
            ("db", "_internal"),
            ("q", "SELECT name FROM system.tokens WHERE name = $n"),
            ("params", r#"{"n":"_admin"}"#),
        ]);
    rb = rb.header("authorization", bearer(&op));
    assert_eq!(
        rb.send().await.unwrap().text().await.unwrap(),
        r#"[{"name":"_admin"}]"#,
        "GET with params"
    );
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v3/query_sql?db=_internal&q=SELECT%20name%20FROM%20system.tokens",
            s.url()
        ))
        .header("authorization", bearer(&op))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (400, "invalid mime type (application/xml)".into())
    );
}

#[tokio::test]
async fn databases_match_the_captures() {
    let (s, op) = sim(Edition::Core).await;
    let auth = bearer(&op);
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/database",
        Some(&auth),
        Some((JSON, r#"{"db": "metrics"}"#)),
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (200, None, "")
    );
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/database",
        Some(&auth),
        Some((JSON, r#"{"db": "bad name!"}"#)),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            r#"{"error":"invalid character in database or rp name: must be ASCII, containing only letters, numbers, underscores, or hyphens"}"#
        )
    );
    let r = call(
        &s.url(),
        Method::GET,
        "/api/v3/configure/database?format=json",
        Some(&auth),
        None,
    )
    .await;
    assert_eq!(
        r.body,
        r#"[{"iox::database":"_internal"},{"iox::database":"metrics"}]"#
    );
}

#[tokio::test]
async fn delete_rules_match_the_captures() {
    let (s, op) = sim(Edition::Core).await;
    let auth = bearer(&op);
    let ci = s.control.create_admin("ci-bot", None).unwrap();
    let del = |q: &'static str| {
        let (url, auth) = (s.url(), auth.clone());
        async move {
            call(
                &url,
                Method::DELETE,
                &format!("/api/v3/configure/token{q}"),
                Some(&auth),
                None,
            )
            .await
        }
    };
    let r = del("?token_name=ci-bot").await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (200, None, "")
    );
    assert_eq!(
        call(&s.url(), Method::GET, "/health", Some(&bearer(&ci)), None)
            .await
            .status,
        401,
        "deleted tokens stop at once"
    );
    let r = del("?token_name=ci-bot").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "the requested resource was not found: ci-bot")
    );
    let r = del("").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "serde error: missing field `token_name`")
    );
    let r = del("?token_name=_admin").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (405, "cannot delete operator token")
    );
    s.control.create_admin("with space", None).unwrap();
    assert_eq!(
        del("?token_name=with+space").await.status,
        200,
        "+ decodes to a space"
    );
}

#[tokio::test]
async fn routing_order_and_fallbacks() {
    let (s, op) = sim(Edition::Core).await;
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/enterprise/configure/token",
        Some(&bearer(&op)),
        Some((JSON, "{}")),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "Not found"),
        "Core has no resource tokens"
    );
    assert_eq!(
        call(&s.url(), Method::GET, "/api/v3/configure/token", None, None)
            .await
            .status,
        401,
        "auth comes before routing"
    );
    assert_eq!(
        call(
            &s.url(),
            Method::POST,
            "/api/v3/configure/token",
            Some(&bearer(&op)),
            None
        )
        .await
        .status,
        404
    );
    let r = call(
        &s.url(),
        Method::OPTIONS,
        "/api/v3/configure/token",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 204, "OPTIONS before auth");
}

#[tokio::test]
async fn operator_token_bootstrap_and_regeneration() {
    support::init_logs();
    let s = Simulator::new(support::settings(Edition::Core))
        .spawn()
        .await
        .unwrap();
    let boot = || {
        let url = s.url();
        async move {
            call(
                &url,
                Method::POST,
                "/api/v3/configure/token/admin",
                Some("garbage header"),
                None,
            )
            .await
        }
    };
    let r = boot().await;
    assert_eq!(
        (r.status, r.content_type.as_deref()),
        (201, Some("json")),
        "unauthenticated, header ignored"
    );
    let first: String = r.json()["token"].as_str().unwrap().into();
    let id = r.json()["id"].clone();
    let r = boot().await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (409, "token name already exists, _admin")
    );

    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/token/admin/regenerate",
        Some(&format!("Bearer {first}")),
        None,
    )
    .await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert_eq!((v["id"].clone(), v["name"].as_str()), (id, Some("_admin")));
    let second = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            &s.url(),
            Method::GET,
            "/health",
            Some(&format!("Bearer {first}")),
            None
        )
        .await
        .status,
        401
    );
    let body = json!({"db":"_internal","q":"SELECT name, updated_at, updated_by_token_id FROM system.tokens"}).to_string();
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/query_sql",
        Some(&format!("Bearer {second}")),
        Some((JSON, &body)),
    )
    .await;
    let row = &r.json()[0];
    assert!(
        row["updated_at"].is_string() && row["updated_by_token_id"] == 0,
        "{row}"
    );

    let empty = Simulator::new(support::settings(Edition::Core))
        .spawn()
        .await
        .unwrap();
    let named = empty.control.create_admin("named", None).unwrap();
    let r = call(
        &empty.url(),
        Method::POST,
        "/api/v3/configure/token/admin/regenerate",
        Some(&bearer(&named)),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "missing admin token, cannot update")
    );
}

#[tokio::test]
async fn without_auth_disables_token_endpoints() {
    support::init_logs();
    let settings = tokenwarden::sim::SimSettings {
        without_auth: true,
        ..support::settings(Edition::Core)
    };
    let s = Simulator::new(settings).spawn().await.unwrap();
    for (m, p) in [
        (Method::POST, "/api/v3/configure/token/admin"),
        (Method::POST, "/api/v3/configure/token/named_admin"),
        (Method::DELETE, "/api/v3/configure/token?token_name=x"),
        (Method::GET, "/api/v3/configure/tokenX"),
    ] {
        let r = call(&s.url(), m, p, None, None).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (405, "endpoint disabled, started without auth"),
            "{p}"
        );
    }
    assert_eq!(
        call(&s.url(), Method::GET, "/ping", None, None)
            .await
            .status,
        200
    );
    s.control.create_admin("x", None);
    let body = r#"{"db":"_internal","q":"SELECT * FROM system.tokens"}"#;
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/query_sql",
        None,
        Some((JSON, body)),
    )
    .await;
    assert!(
        r.json()[0].get("hash").is_none(),
        "no hash column without auth: {}",
        r.body
    );
}

#[tokio::test]
async fn enterprise_resource_tokens_and_their_limits() {
    let (s, op) = sim(Edition::Enterprise).await;
    s.control.create_database("metrics");
    let body = r#"{"token_name": "r", "permissions": [{"resource_type": "db", "resource_names": ["metrics"], "actions": ["read"]}], "expiry_secs": 3600}"#;
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/enterprise/configure/token",
        Some(&bearer(&op)),
        Some((JSON, body)),
    )
    .await;
    assert_eq!((r.status, r.content_type.as_deref()), (201, Some("json")));
    let resource = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let bad = r#"{"token_name": "r2", "permissions": [{"resource_type": "db", "resource_identifier": ["metrics"], "actions": ["read"]}]}"#;
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/enterprise/configure/token",
        Some(&bearer(&op)),
        Some((JSON, bad)),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .starts_with("serde json error: missing field `resource_names`"),
        "{}",
        r.body
    );
    let nodb = body.replace("metrics", "nope").replace("\"r\"", "\"r3\"");
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/enterprise/configure/token",
        Some(&bearer(&op)),
        Some((JSON, &nodb)),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "cannot parse token permission, invalid resource name nope"
        )
    );

    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/configure/token/named_admin",
        Some(&resource),
        Some((JSON, r#"{"token_name":"x"}"#)),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            403,
            r#"{"error": "unauthorized to perform requested action with the token"}"#
        )
    );
    let q = r#"{"db":"_internal","q":"SELECT * FROM system.tokens"}"#;
    assert_eq!(
        call(
            &s.url(),
            Method::POST,
            "/api/v3/query_sql",
            Some(&resource),
            Some((JSON, q))
        )
        .await
        .status,
        403
    );
    let r = call(
        &s.url(),
        Method::POST,
        "/api/v3/query_sql",
        Some(&bearer(&op)),
        Some((JSON, &q.replace('*', "name, permissions"))),
    )
    .await;
    assert_eq!(
        r.json()[1],
        json!({"name": "r", "permissions": "db:metrics:read"})
    );

    let probe = s
        .control
        .create_resource(
            "probe",
            &[Permission::parse("system:ping:read").unwrap()],
            None,
        )
        .unwrap();
    assert_eq!(
        call(&s.url(), Method::GET, "/ping", Some(&bearer(&probe)), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &s.url(),
            Method::GET,
            "/health",
            Some(&bearer(&probe)),
            None
        )
        .await
        .status,
        403
    );
}

const NAMED_ADMIN: &str = "/api/v3/configure/token/named_admin";

/// Posts a named admin create for `name` with a client that gives up after 300ms.
async fn create_quickly(base: &str, op: &RawToken, name: &str) -> reqwest::Result<u16> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?
        .post(format!("{base}{NAMED_ADMIN}"))
        .header("authorization", bearer(op))
        .json(&json!({ "token_name": name }))
        .send()
        .await
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn stall_after_apply_changes_the_catalog_but_never_answers() {
    let (s, op) = sim(Edition::Core).await;
    s.control.stall_after_apply(StallAfterApply {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    let err = create_quickly(&s.url(), &op, "lost").await.unwrap_err();
    assert!(err.is_timeout(), "no answer came: {err}");
    assert!(s.control.token_names().contains(&"lost".to_owned()));
    let stalled = s
        .control
        .wait_for_stall(NAMED_ADMIN, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((stalled.status, stalled.withheld), (0, Some(201)));
    assert_eq!(stalled.authenticated_as.as_deref(), Some("_admin"));

    assert_eq!(
        create_quickly(&s.url(), &op, "answered").await.unwrap(),
        201
    );
    let last = s.control.requests().pop().unwrap();
    assert_eq!(
        (last.status, last.withheld),
        (201, None),
        "times: 1 stalls once"
    );
}

#[tokio::test]
async fn answer_after_apply_changes_the_catalog_and_sends_the_answer_given() {
    let (s, op) = sim(Edition::Core).await;
    let gateway = "<html><body><h1>504 Gateway Time-out</h1></body></html>";
    s.control.answer_after_apply(AnswerAfterApply {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        answer: Reanswer::Replace {
            status: 504,
            content_type: Some("text/html".into()),
            body: gateway.into(),
        },
        times: Some(1),
    });
    s.control.answer_after_apply(AnswerAfterApply {
        path_prefix: NAMED_ADMIN.into(),
        method: None,
        answer: Reanswer::Cut { keep: 40 },
        times: Some(1),
    });
    let (url, auth) = (s.url(), bearer(&op));
    let create = |body: &'static str| {
        call(
            &url,
            Method::POST,
            NAMED_ADMIN,
            Some(&auth),
            Some(("application/json", body)),
        )
    };
    let late = create(r#"{"token_name": "late"}"#).await;
    assert_eq!((late.status, late.body.as_str()), (504, gateway));
    let cut = create(r#"{"token_name": "cut"}"#).await;
    assert_eq!((cut.status, cut.body.len()), (201, 40), "{}", cut.body);
    assert!(cut.body.starts_with(r#"{"id":"#), "{}", cut.body);
    assert_eq!(s.control.token_names(), ["_admin", "late", "cut"]);
    let seen: Vec<_> = s
        .control
        .requests()
        .into_iter()
        .filter(|r| r.path == NAMED_ADMIN)
        .map(|r| (r.status, r.withheld))
        .collect();
    assert_eq!(seen, [(504, Some(201)), (201, Some(201))]);
    let whole = create(r#"{"token_name": "whole"}"#).await;
    assert!(whole.json()["token"].is_string(), "each answered once");
}

#[tokio::test]
async fn a_swallowed_request_is_neither_applied_nor_answered() {
    let (s, op) = sim(Edition::Core).await;
    s.control.swallow(Swallow {
        path_prefix: NAMED_ADMIN.into(),
        method: Some("POST".into()),
        times: Some(1),
    });
    let err = create_quickly(&s.url(), &op, "lost").await.unwrap_err();
    assert!(err.is_timeout(), "no answer came: {err}");
    let swallowed = s
        .control
        .wait_for_request(|r| r.path == NAMED_ADMIN, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((swallowed.status, swallowed.withheld), (0, None));
    assert_eq!(s.control.token_names(), ["_admin"], "never applied");
    assert_eq!(create_quickly(&s.url(), &op, "lost").await.unwrap(), 201);
}

#[tokio::test]
async fn stall_after_apply_can_be_limited_to_one_method() {
    let (s, op) = sim(Edition::Core).await;
    s.control.create_admin("doomed", None).unwrap();
    s.control.stall_after_apply(StallAfterApply {
        path_prefix: "/api/v3/configure/token".into(),
        method: Some("DELETE".into()),
        times: None,
    });
    assert_eq!(create_quickly(&s.url(), &op, "kept").await.unwrap(), 201);
    let err = reqwest::Client::new()
        .delete(format!(
            "{}/api/v3/configure/token?token_name=doomed",
            s.url()
        ))
        .header("authorization", bearer(&op))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(s.control.token_names(), ["_admin", "kept"]);
    let delete = s
        .control
        .wait_for_request(|r| r.method == "DELETE", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(delete.withheld, Some(200));
}

#[tokio::test]
async fn wait_for_request_sees_the_past_and_wakes_for_the_future() {
    let (s, op) = sim(Edition::Core).await;
    let get = |path: &'static str| {
        let (url, auth) = (s.url(), bearer(&op));
        async move {
            call(&url, Method::GET, path, Some(&auth), None)
                .await
                .status
        }
    };
    get("/ping").await;
    let past = s
        .control
        .wait_for_request(|r| r.path == "/ping", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(past.status, 200);
    let none = s
        .control
        .wait_for_request(|r| r.path == "/health", Duration::from_millis(50))
        .await;
    assert!(none.is_none(), "nothing matches yet");

    // The request only starts once the waiter is parked (the test runtime has one thread).
    let later = tokio::spawn(get("/health"));
    let seen = s
        .control
        .wait_for_request(|r| r.path == "/health", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(later.await.unwrap(), 200);
    let answered = s
        .control
        .wait_for_request(
            |r| r.path == "/health" && r.status != 0,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(answered.status, 200);
}

/// `POST /api/v3/query_sql` with a JSON body, as the official MCP server sends it.
async fn sql(base: &str, token: &RawToken, db: &str, q: &str) -> Reply {
    let body = json!({"db": db, "q": q, "format": "json"}).to_string();
    call(
        base,
        Method::POST,
        "/api/v3/query_sql",
        Some(&bearer(token)),
        Some((JSON, &body)),
    )
    .await
}

async fn db_call(base: &str, token: &RawToken, method: Method, query: &str, body: &str) -> Reply {
    let path = format!("/api/v3/configure/database{query}");
    let body = (!body.is_empty()).then_some((JSON, body));
    call(base, method, &path, Some(&bearer(token)), body).await
}

const DATABASES_SQL: &str = "SELECT database_name, retention_period_ns, deleted FROM system.databases WHERE database_name = 'metrics'";

#[tokio::test]
async fn databases_are_created_updated_and_deleted_as_influxdb_3_does() {
    let (s, op) = sim(Edition::Core).await;
    let url = s.url();
    let r = db_call(
        &url,
        &op,
        Method::POST,
        "",
        r#"{"db": "metrics", "retention_period": "30d"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (200, None, "")
    );
    let r = sql(&url, &op, "_internal", DATABASES_SQL).await;
    assert_eq!(
        r.json(),
        json!([{"database_name": "metrics", "retention_period_ns": 2_592_000_000_000_000u64, "deleted": false}])
    );
    let r = db_call(&url, &op, Method::POST, "", r#"{"db": "metrics"}"#).await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (
            409,
            None,
            "attempted to create a resource that already exists"
        )
    );
    let r = db_call(
        &url,
        &op,
        Method::POST,
        "",
        r#"{"db": "m2", "retention_period": 5}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .starts_with("serde json error: invalid type: integer `5`, expected a duration"),
        "{}",
        r.body
    );

    // PUT sets the retention period, or clears it when there is none.
    let r = db_call(
        &url,
        &op,
        Method::PUT,
        "",
        r#"{"db": "metrics", "retention_period": "1h"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (200, None, "")
    );
    assert_eq!(
        sql(&url, &op, "_internal", DATABASES_SQL).await.json()[0]["retention_period_ns"],
        3_600_000_000_000u64
    );
    let r = db_call(&url, &op, Method::PUT, "", r#"{"db": "metrics"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        sql(&url, &op, "_internal", DATABASES_SQL).await.json(),
        json!([{"database_name": "metrics", "deleted": false}]),
        "no retention period: the null is dropped"
    );
    let r = db_call(
        &url,
        &op,
        Method::PUT,
        "",
        r#"{"db": "nope", "retention_period": "1h"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "the requested resource was not found: nope")
    );
    let r = db_call(&url, &op, Method::PUT, "", r#"{"db": "_internal"}"#).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "cannot modify internal db")
    );
    let r = call(
        &url,
        Method::PUT,
        "/api/v3/configure/database",
        Some(&bearer(&op)),
        Some(("text/plain", "{}")),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (415, "unacceptable content-type, expected: application/json")
    );

    // DELETE is a soft delete: the database is renamed, so its name is free at once.
    let r = db_call(&url, &op, Method::DELETE, "", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "serde error: missing field `db`")
    );
    let r = db_call(&url, &op, Method::DELETE, "?db=_internal", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "cannot delete internal db")
    );
    let r = db_call(
        &url,
        &op,
        Method::DELETE,
        "?db=metrics&hard_delete_at=soon",
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with("Cannot parse the timestamp: "),
        "{}",
        r.body
    );
    let r = db_call(&url, &op, Method::DELETE, "?db=metrics", "").await;
    assert_eq!(
        (r.status, r.content_type.as_deref(), r.body.as_str()),
        (200, None, "")
    );
    let r = db_call(&url, &op, Method::DELETE, "?db=metrics", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "the requested resource was not found: metrics")
    );
    let r = db_call(&url, &op, Method::GET, "?format=json", "").await;
    assert_eq!(r.body, r#"[{"iox::database":"_internal"}]"#);
    let listed = db_call(&url, &op, Method::GET, "?format=json&show_deleted=true", "")
        .await
        .json();
    assert_eq!(
        listed[0],
        json!({"iox::database": "_internal", "deleted": false})
    );
    let renamed = listed[1]["iox::database"].as_str().unwrap().to_owned();
    assert_eq!(listed[1]["deleted"], true);
    assert!(
        renamed.starts_with("metrics-") && renamed.len() == "metrics-20260617T130233".len(),
        "{renamed}"
    );
    let rows = sql(&url, &op, "_internal", "SELECT database_name, deleted, hard_deletion_time FROM system.databases WHERE deleted = true").await.json();
    assert_eq!(rows[0]["database_name"], renamed.as_str());
    assert!(
        rows[0]["hard_deletion_time"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{rows}"
    );
    let r = db_call(&url, &op, Method::POST, "", r#"{"db": "metrics"}"#).await;
    assert_eq!(r.status, 200, "the name is free again");

    let r = db_call(&url, &op, Method::GET, "", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "serde error: missing field `format`")
    );
}

#[tokio::test]
async fn system_queries_answers_the_official_mcp_servers_follow_up() {
    let (s, op) = sim(Edition::Core).await;
    s.control.create_database("metrics");
    let url = s.url();
    let asked = "SELECT name FROM system.tokens";
    assert_eq!(sql(&url, &op, "_internal", asked).await.status, 200);
    // `query.service.ts`, `findQueryHistoryMetadata`, in influxdata/influxdb3_mcp_server.
    let follow_up = format!(
        "SELECT id, phase, query_type, success, running, cancelled, plan_duration, permit_duration, \
         execute_duration, end2end_duration, compute_duration, max_memory FROM system.queries \
         WHERE query_text = '{}' AND query_type = 'sql' ORDER BY issue_time DESC LIMIT 1",
        asked.replace('\'', "''")
    );
    let r = sql(&url, &op, "_internal", &follow_up).await;
    assert_eq!(
        (r.status, r.content_type.as_deref()),
        (200, Some(JSON)),
        "{}",
        r.body
    );
    let row = &r.json()[0];
    assert_eq!(
        (
            &row["phase"],
            &row["query_type"],
            &row["success"],
            &row["running"],
            &row["cancelled"]
        ),
        (
            &json!("success"),
            &json!("sql"),
            &json!(true),
            &json!(false),
            &json!(false)
        )
    );
    assert_eq!(row["id"].as_str().unwrap().len(), 36, "{row}");
    // Every database has system.queries, and a failed query is logged as one.
    assert_eq!(
        sql(&url, &op, "metrics", "SELECT nope FROM system.tokens")
            .await
            .status,
        400
    );
    let r = sql(
        &url,
        &op,
        "metrics",
        "SELECT phase, query_text, running FROM system.queries",
    )
    .await;
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(
        rows[rows.len() - 2],
        json!({"phase": "fail", "query_text": "SELECT nope FROM system.tokens", "running": false})
    );
    assert_eq!(
        rows[rows.len() - 1],
        json!({"phase": "success", "query_text": "SELECT phase, query_text, running FROM system.queries", "running": false}),
        "InfluxDB records success before the stream is read, so the reading query sees itself done"
    );
}

/// A duration as Arrow's JSON writer prints it (ISO 8601).
fn is_iso_duration(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s == "P0D"
            || s.strip_prefix("PT")
                .and_then(|s| s.strip_suffix('S'))
                .is_some_and(|n| n.parse::<f64>().is_ok())
    })
}

/// `system.queries` carries what InfluxDB 3's query log records (`QueryCompletedToken` in
/// `iox_query/src/query_log.rs`): a planned query has file counts, its durations, compute time
/// and memory; one that failed in planning has only its end-to-end duration.
#[tokio::test]
async fn system_queries_rows_carry_the_query_logs_figures() {
    let (s, op) = sim(Edition::Core).await;
    let url = s.url();
    assert_eq!(
        sql(&url, &op, "_internal", "SELECT name FROM system.tokens")
            .await
            .status,
        200
    );
    assert_eq!(
        sql(&url, &op, "_internal", "SELECT nope FROM system.tokens")
            .await
            .status,
        500
    );
    let r = sql(
        &url,
        &op,
        "_internal",
        "SELECT * FROM system.queries WHERE query_text LIKE '% FROM system.tokens' ORDER BY issue_time",
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_deref()),
        (200, Some(JSON)),
        "{}",
        r.body
    );
    let rows = r.json();
    let [ok, failed] = rows.as_array().unwrap().as_slice() else {
        panic!("{rows}")
    };
    let keys = |row: &Value| row.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(ok),
        [
            "id",
            "phase",
            "issue_time",
            "query_type",
            "query_text",
            "partitions",
            "parquet_files",
            "plan_duration",
            "permit_duration",
            "execute_duration",
            "end2end_duration",
            "compute_duration",
            "max_memory",
            "success",
            "running",
            "cancelled"
        ],
        "{ok}"
    );
    for d in [
        "plan_duration",
        "permit_duration",
        "execute_duration",
        "end2end_duration",
    ] {
        assert!(is_iso_duration(&ok[d]), "{d}: {ok}");
    }
    assert_eq!(
        (
            &ok["phase"],
            &ok["partitions"],
            &ok["parquet_files"],
            &ok["compute_duration"],
            &ok["max_memory"],
            &ok["success"],
            &ok["running"],
            &ok["cancelled"]
        ),
        (
            &json!("success"),
            &json!(0),
            &json!(0),
            &json!("P0D"),
            &json!(0),
            &json!(true),
            &json!(false),
            &json!(false)
        )
    );
    assert_eq!(
        keys(failed),
        [
            "id",
            "phase",
            "issue_time",
            "query_type",
            "query_text",
            "end2end_duration",
            "success",
            "running",
            "cancelled"
        ],
        "{failed}"
    );
    assert_eq!(
        (&failed["phase"], &failed["success"]),
        (&json!("fail"), &json!(false))
    );
    assert!(is_iso_duration(&failed["end2end_duration"]), "{failed}");
}

#[tokio::test]
async fn a_token_for_a_deleted_database_grants_nothing_on_its_namesake() {
    let (s, op) = sim(Edition::Enterprise).await;
    s.control.create_database("metrics");
    let reader = s
        .control
        .create_resource(
            "reader",
            &[Permission::parse("db:metrics:read").unwrap()],
            None,
        )
        .unwrap();
    let url = s.url();
    let q = "SELECT id FROM system.queries LIMIT 1";
    assert_eq!(sql(&url, &reader, "metrics", q).await.status, 200);
    assert!(s.control.delete_database("metrics"));
    s.control.create_database("metrics");
    let r = sql(&url, &reader, "metrics", q).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            403,
            r#"{"error": "unauthorized to perform requested action with the token"}"#
        )
    );
    let r = sql(
        &url,
        &op,
        "_internal",
        "SELECT permissions FROM system.tokens WHERE name = 'reader'",
    )
    .await;
    assert_eq!(
        r.json(),
        json!([{"permissions": "db:metrics:read"}]),
        "still listed under the old name"
    );
}

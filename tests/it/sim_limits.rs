//! Inputs at the limits of what the simulator can hold (deep SQL, numbers beyond their types,
//! durations beyond any date): a `tokenwarden simulate` child process answers each with a clear
//! 4xx and keeps serving, where it used to abort or panic.

use serde_json::{Value, json};

use crate::cli::{SimProcess, simulate};

/// A simulator child process and its operator token.
fn sim_process(dir: &std::path::Path) -> (SimProcess, String) {
    let token_file = dir.join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let token = std::fs::read_to_string(&token_file).unwrap();
    (sim, token.trim().to_owned())
}

/// Status and body of `POST /api/v3/query_sql` on `_internal`.
async fn query(sim: &SimProcess, token: &str, q: &str, params: Value) -> (u16, String) {
    let body = json!({"db": "_internal", "q": q, "format": "json", "params": params});
    let r = reqwest::Client::new()
        .post(format!("{}/api/v3/query_sql", sim.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the simulator answered instead of dropping the connection");
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The simulator still answers an ordinary query.
async fn assert_still_serving(sim: &SimProcess, token: &str) {
    let (status, body) = query(
        sim,
        token,
        "SELECT name FROM system.tokens WHERE name = $n",
        json!({"n": "_admin"}),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"[{"name":"_admin"}]"#));
}

#[tokio::test]
async fn a_query_with_five_thousand_ors_is_refused_with_400_and_the_simulator_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, token) = sim_process(dir.path());
    let terms = vec!["name = 'x'"; 5_000].join(" OR ");
    let (status, body) = query(
        &sim,
        &token,
        &format!("SELECT name FROM system.tokens WHERE {terms}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.starts_with("SQL error:") && body.contains("too complex"),
        "{body}"
    );
    assert_still_serving(&sim, &token).await;
}

#[tokio::test]
async fn deeply_nested_parentheses_are_refused_with_400_and_the_simulator_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, token) = sim_process(dir.path());
    for depth in [60, 10_000] {
        let q = format!(
            "SELECT name FROM system.tokens WHERE {}name = 'x'{}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let (status, body) = query(&sim, &token, &q, Value::Null).await;
        assert_eq!(
            (status, body.as_str()),
            (400, "SQL error: RecursionLimitExceeded"),
            "depth {depth}: DataFusion's parser refuses what is nested deeper than 50"
        );
    }
    // Chains that need no parentheses to nest: NOT NOT ..., a long arithmetic-free comparison chain.
    let nots = format!(
        "SELECT name FROM system.tokens WHERE {}name = 'x'",
        "NOT ".repeat(10_000)
    );
    let (status, body) = query(&sim, &token, &nots, Value::Null).await;
    assert_eq!(status, 400, "{body}");
    let chain = format!(
        "SELECT name FROM system.tokens WHERE name{}",
        " IS NULL".repeat(10_000)
    );
    let (status, body) = query(&sim, &token, &chain, Value::Null).await;
    assert_eq!(status, 400, "{body}");
    assert_still_serving(&sim, &token).await;
}

#[tokio::test]
async fn negating_the_smallest_integer_parameter_is_a_400_not_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, token) = sim_process(dir.path());
    let (status, body) = query(
        &sim,
        &token,
        "SELECT name FROM system.tokens WHERE token_id = -$n",
        json!({"n": i64::MIN}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Overflow"), "{body}");
    assert_still_serving(&sim, &token).await;
}

/// `POST` of `body` to `path` with the operator token; status and body.
async fn post(sim: &SimProcess, token: &str, path: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sim.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the simulator answered");
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_retention_period_beyond_100_years_is_a_400_like_any_bad_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, token) = sim_process(dir.path());
    let path = "/api/v3/configure/database";
    for period in ["300000y", "18446744073709551615s"] {
        let (status, body) = post(
            &sim,
            &token,
            path,
            json!({"db": "metrics", "retention_period": period}),
        )
        .await;
        assert_eq!(status, 400, "{period}: {body}");
        assert!(
            body.starts_with("serde json error: invalid value") && body.contains("100 years"),
            "{period}: {body}"
        );
    }
    let (status, body) = post(
        &sim,
        &token,
        path,
        json!({"db": "metrics", "retention_period": "100y"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_expiry_past_the_last_representable_date_means_no_expiry_as_in_influxdb() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, token) = sim_process(dir.path());
    // 10^13 s is about 317,000 years: past chrono's last date, though within i64 milliseconds.
    let (status, body) = post(
        &sim,
        &token,
        "/api/v3/configure/token/named_admin",
        json!({"token_name": "forever", "expiry_secs": 10_000_000_000_000_u64}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["expiry"], Value::Null, "{body}");
    let (status, body) = query(
        &sim,
        &token,
        "SELECT name, expiry FROM system.tokens WHERE name = 'forever'",
        Value::Null,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"[{"name":"forever"}]"#));
}

//! The InfluxDB 3 client against the simulator: every endpoint and documented error, in both
//! editions, and what went over the wire.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::sim::{AnswerAfterApply, ForcedResponse, Reanswer, SimSettings, Simulator};
use tokenwarden::tokens::{
    BackendError, Database, Edition, ListFilter, Permission, RawToken, Retention, TokenBackend,
    TokenKind, TokenName, TokenStatus,
};

use crate::support::{self, assert_logs_clean, assert_no_token, client, sim};

fn name(s: &str) -> TokenName {
    TokenName::parse(s).unwrap()
}

fn body(r: &tokenwarden::sim::RecordedRequest) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn ping_detects_the_edition() {
    for edition in [Edition::Core, Edition::Enterprise] {
        let (s, op) = sim(edition).await;
        let info = client(&s, Some(&op)).ping().await.unwrap();
        assert_eq!(info.edition, Some(edition));
        assert_eq!(info.version.as_deref(), Some("3.10.0"));
    }
}

#[tokio::test]
async fn create_admin_sends_the_documented_request() {
    let (s, op) = sim(Edition::Core).await;
    let c = client(&s, Some(&op));
    let created = c
        .create_admin_token(&name("ci-bot"), Some(3600))
        .await
        .unwrap();
    assert_eq!(
        (created.token.name.as_str(), created.token.kind),
        ("ci-bot", TokenKind::Admin)
    );
    let expiry = created.token.expiry.unwrap();
    assert!((expiry - created.token.created_at).num_seconds() == 3600);
    assert!(created.secret.expose().starts_with("apiv3_"));

    let r = s.control.requests().into_iter().last().unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.status),
        ("POST", "/api/v3/configure/token/named_admin", 201)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        (r.auth_scheme.as_deref(), r.authenticated_as.as_deref()),
        (Some("Bearer"), Some("_admin"))
    );
    assert_eq!(
        body(&r),
        serde_json::json!({"token_name": "ci-bot", "expiry_secs": 3600})
    );

    let err = c
        .create_admin_token(&name("ci-bot"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "a token named `ci-bot` already exists; pick another name or delete the old token first"
    );
    assert_no_token("an error", &err.to_string());
    assert_logs_clean();
}

#[tokio::test]
async fn resource_tokens_on_enterprise_and_core() {
    let (s, op) = sim(Edition::Enterprise).await;
    s.control.create_database("metrics");
    let c = client(&s, Some(&op));
    let perms = vec![
        Permission::parse("db:metrics:read,write").unwrap(),
        Permission::parse("system:*:read").unwrap(),
    ];
    let created = c
        .create_resource_token(&name("writer"), &perms, None)
        .await
        .unwrap();
    assert_eq!(created.token.kind, TokenKind::Resource);
    assert_eq!(
        created.token.permissions,
        ["db:metrics:read,write", "system:*:read"]
    );
    let r = s.control.requests().into_iter().last().unwrap();
    assert_eq!(r.path, "/api/v3/enterprise/configure/token");
    assert_eq!(
        body(&r),
        serde_json::json!({"token_name": "writer", "expiry_secs": null, "permissions": [
            {"resource_type": "db", "resource_names": ["metrics"], "actions": ["read", "write"]},
            {"resource_type": "system", "resource_names": ["*"], "actions": ["read"]}]})
    );
    let listed = c
        .list_tokens(
            &ListFilter {
                kind: Some(TokenKind::Resource),
                ..Default::default()
            },
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].grants_database("metrics"));

    let bad = vec![Permission::parse("db:nope:read").unwrap()];
    let err = c
        .create_resource_token(&name("x"), &bad, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no such database `nope` on this instance; nothing was created"
    );

    let (core, op) = sim(Edition::Core).await;
    let err = client(&core, Some(&op))
        .create_resource_token(&name("x"), &perms, None)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::NotEnterprise { .. }), "{err}");
    assert!(err.to_string().contains("it is InfluxDB 3 Core"), "{err}");
}

#[tokio::test]
async fn delete_and_its_errors() {
    let (s, op) = sim(Edition::Core).await;
    let c = client(&s, Some(&op));
    s.control.create_admin("odd name", None);
    c.delete_token(&name("odd name")).await.unwrap();
    let r = s.control.requests().into_iter().last().unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_str()),
        ("DELETE", "/api/v3/configure/token", "token_name=odd+name")
    );
    let err = c.delete_token(&name("odd name")).await.unwrap_err();
    assert!(matches!(err, BackendError::NotFound { .. }), "{err}");
    let err = c.delete_token(&name("_admin")).await.unwrap_err();
    assert!(matches!(err, BackendError::OperatorUndeletable), "{err}");
}

#[tokio::test]
async fn regenerate_and_bootstrap_the_operator_token() {
    support::init_logs();
    let s = Simulator::new(support::settings(Edition::Core))
        .spawn()
        .await
        .unwrap();
    let anonymous = client(&s, None);
    let first = anonymous.bootstrap_operator_token().await.unwrap();
    assert_eq!(first.token.name, "_admin");
    let r = s.control.requests().into_iter().last().unwrap();
    assert_eq!(
        (r.path.as_str(), r.auth_scheme.as_deref()),
        ("/api/v3/configure/token/admin", None),
        "no token is sent"
    );
    assert!(matches!(
        anonymous.bootstrap_operator_token().await.unwrap_err(),
        BackendError::OperatorExists
    ));

    let c = client(&s, Some(&first.secret));
    let second = c.regenerate_operator_token().await.unwrap();
    assert_eq!(second.token.id, first.token.id);
    let err = c.ping().await.unwrap_err();
    assert!(
        matches!(err, BackendError::Unauthenticated { .. }),
        "the old secret is dead: {err}"
    );
    assert!(err.to_string().contains("wrong, expired or deleted"));
    client(&s, Some(&second.secret)).ping().await.unwrap();

    let empty = Simulator::new(support::settings(Edition::Core))
        .spawn()
        .await
        .unwrap();
    let named = empty.control.create_admin("named", None).unwrap();
    let err = client(&empty, Some(&named))
        .regenerate_operator_token()
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::OperatorMissing), "{err}");
    assert_logs_clean();
}

#[tokio::test]
async fn adversarial_filters_list_nothing_extra_and_break_nothing() {
    let (s, op) = sim(Edition::Core).await;
    for n in ["alpha", "beta", "100%", "a_b"] {
        s.control.create_admin(n, None);
    }
    let c = client(&s, Some(&op));
    let list = |needle: &str| {
        let filter = ListFilter {
            name_contains: Some(needle.to_owned()),
            ..Default::default()
        };
        let c = c.clone();
        async move {
            let mut names: Vec<String> = c
                .list_tokens(&filter, None, Utc::now())
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.name)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(list("%").await, ["100%"]);
    assert_eq!(list("_").await, ["_admin", "a_b"]);
    for evil in [
        "'",
        "' OR '1'='1",
        "x'; DROP TABLE system.tokens; --",
        "SELECT",
        "\\",
        "$name_pattern",
    ] {
        assert!(list(evil).await.is_empty(), "{evil}");
    }
    let last = s.control.requests().into_iter().last().unwrap();
    let sent = body(&last);
    assert!(
        !sent["q"].as_str().unwrap().contains("name_pattern\""),
        "{sent}"
    );
    assert_eq!(sent["params"]["name_pattern"], "%$name\\_pattern%");
    assert_eq!(s.control.token_count(), 5, "nothing was broken");
}

#[tokio::test]
async fn filters_are_pushed_down_and_exact() {
    let (s, op) = sim(Edition::Enterprise).await;
    for db in ["metrics", "metrics2"] {
        s.control.create_database(db);
    }
    let p = |x: &str| vec![Permission::parse(x).unwrap()];
    s.control
        .create_resource("m", &p("db:metrics:read"), None)
        .unwrap();
    s.control
        .create_resource("m2", &p("db:metrics2:read"), None)
        .unwrap();
    s.control
        .create_resource("all", &p("db:*:read"), None)
        .unwrap();
    s.control
        .create_admin("soon", Some(Duration::from_secs(3600)));
    s.control
        .create_admin("later", Some(Duration::from_secs(30 * 86_400)));
    s.control.create_admin("past", Some(Duration::from_secs(1)));
    let c = client(&s, Some(&op));
    let now = Utc::now() + chrono::Duration::seconds(2);
    let names = |f: ListFilter| {
        let c = c.clone();
        async move {
            let mut v: Vec<String> = c
                .list_tokens(&f, None, now)
                .await
                .unwrap()
                .into_iter()
                .filter(|t| f.matches(t, now))
                .map(|t| t.name)
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        names(ListFilter {
            database: Some("metrics".into()),
            ..Default::default()
        })
        .await,
        ["all", "m"]
    );
    assert_eq!(
        names(ListFilter {
            status: Some(TokenStatus::Expired),
            ..Default::default()
        })
        .await,
        ["past"]
    );
    assert_eq!(
        names(ListFilter {
            expiring_within: Some(Duration::from_secs(86_400)),
            ..Default::default()
        })
        .await,
        ["soon"]
    );
    assert_eq!(
        names(ListFilter {
            kind: Some(TokenKind::Admin),
            status: Some(TokenStatus::Active),
            ..Default::default()
        })
        .await,
        ["_admin", "later", "soon"]
    );
    // The expired filter really ran in SQL: the server sent back only matching rows.
    let f = ListFilter {
        status: Some(TokenStatus::Expired),
        ..Default::default()
    };
    assert_eq!(c.list_tokens(&f, None, now).await.unwrap().len(), 1);
}

#[tokio::test]
async fn databases_are_listed_with_retention_and_tables() {
    let (s, op) = sim(Edition::Enterprise).await;
    s.control.create_database("metrics");
    let month = Duration::from_secs(30 * 86_400);
    s.control
        .create_database_with_retention("logs", Some(month));
    let db = |name: &str, retention, tables| Database {
        name: name.into(),
        retention_period: retention,
        tables,
    };
    assert_eq!(
        client(&s, Some(&op)).list_databases().await.unwrap(),
        [
            db("_internal", Some(Retention::Indefinite), Some(0)),
            db("logs", Some(Retention::Period(month)), Some(0)),
            db("metrics", Some(Retention::Indefinite), Some(0)),
        ]
    );
    // A server that will not answer queries on `_internal` still gives the names.
    s.control.force_response(ForcedResponse {
        path_prefix: "/api/v3/query_sql".into(),
        status: 403,
        content_type: None,
        body: String::new(),
        times: None,
    });
    let names_only = client(&s, Some(&op)).list_databases().await.unwrap();
    assert_eq!(names_only[2], Database::named("metrics"));
}

#[tokio::test]
async fn credentials_and_server_mode_errors() {
    let (s, op) = sim(Edition::Enterprise).await;
    let wrong = client(&s, Some(&RawToken::new("apiv3_wrong".into())));
    assert!(matches!(
        wrong
            .list_tokens(&ListFilter::default(), None, Utc::now())
            .await
            .unwrap_err(),
        BackendError::Unauthenticated { .. }
    ));
    s.control.create_database("metrics");
    let reader = s
        .control
        .create_resource(
            "reader",
            &[Permission::parse("db:metrics:read").unwrap()],
            None,
        )
        .unwrap();
    let err = client(&s, Some(&reader))
        .create_admin_token(&name("x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Forbidden { .. }), "{err}");
    let _ = op;

    support::init_logs();
    let open = Simulator::new(SimSettings {
        without_auth: true,
        ..support::settings(Edition::Core)
    })
    .spawn()
    .await
    .unwrap();
    let err = client(&open, None)
        .create_admin_token(&name("x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AuthDisabled { .. }), "{err}");
    assert!(err.to_string().contains("--without-auth"));
}

fn quick(url: String, token: &RawToken, timeout: Duration) -> InfluxClient {
    InfluxClient::new(ClientOptions {
        url,
        token: Some(token.clone()),
        timeout,
        ca_file: None,
    })
    .unwrap()
}

#[tokio::test]
async fn reads_retry_but_mutations_never_do() {
    let (s, op) = sim(Edition::Core).await;
    let c = client(&s, Some(&op));
    s.control.force_response(ForcedResponse {
        path_prefix: "/".into(),
        status: 503,
        content_type: None,
        body: "busy".into(),
        times: Some(2),
    });
    c.ping().await.expect("the third attempt succeeds");
    assert_eq!(
        s.control
            .requests()
            .iter()
            .filter(|r| r.path == "/ping")
            .count(),
        3
    );

    s.control.force_response(ForcedResponse {
        path_prefix: "/".into(),
        status: 503,
        content_type: None,
        body: "busy".into(),
        times: Some(1),
    });
    let err = c.create_admin_token(&name("once"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::OutcomeUnknown { .. }), "{err}");
    assert_eq!(
        s.control
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("named_admin"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_lost_answer_to_a_mutation_is_an_unknown_outcome() {
    let (s, op) = sim(Edition::Core).await;
    s.control.set_latency(Duration::from_millis(1500));
    let c = quick(s.url(), &op, Duration::from_millis(300));
    let err = c.create_admin_token(&name("slow"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::OutcomeUnknown { .. }), "{err}");
    assert!(
        err.to_string().contains("may or may not have happened"),
        "{err}"
    );
    let err = c.delete_token(&name("slow")).await.unwrap_err();
    assert!(matches!(err, BackendError::OutcomeUnknown { .. }), "{err}");
    let creates = s
        .control
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("named_admin"))
        .count();
    assert_eq!(creates, 1, "never retried");
    let err = c.ping().await.unwrap_err();
    assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("did not answer within 300ms"),
        "{err}"
    );
}

/// Answers that do not say whether a token was made: after the simulator made it, a gateway's
/// 502/503/504, a 500, a 201 cut short or mistyped.
fn unclear_answers() -> Vec<(&'static str, Reanswer)> {
    let replace = |status, content_type: Option<&str>, body: &str| Reanswer::Replace {
        status,
        content_type: content_type.map(str::to_owned),
        body: body.to_owned(),
    };
    let html = Some("text/html");
    vec![
        (
            "502 Bad Gateway",
            replace(502, html, "<html><h1>502 Bad Gateway</h1></html>"),
        ),
        ("503 Service Unavailable", replace(503, None, "busy")),
        (
            "504 Gateway Timeout",
            replace(504, html, "<html><h1>504 Gateway Time-out</h1></html>"),
        ),
        (
            "500 Internal Server Error",
            replace(
                500,
                None,
                r#"internal: could not persist {"id":9,"token":"apiv3_echoedsecret"}"#,
            ),
        ),
        ("201 Created", Reanswer::Cut { keep: 40 }),
        (
            "201 Created",
            replace(
                201,
                Some("json"),
                r#"{"id":"9","name":"x","token":"apiv3_mistyped","expiry":null}"#,
            ),
        ),
    ]
}

#[tokio::test]
async fn an_answer_that_does_not_say_whether_a_token_was_made_is_an_unknown_outcome() {
    for edition in [Edition::Core, Edition::Enterprise] {
        let (s, op) = sim(edition).await;
        s.control.create_database("metrics");
        let c = client(&s, Some(&op));
        let read = Permission::parse("db:metrics:read").unwrap();
        for (i, (status, answer)) in unclear_answers().into_iter().enumerate() {
            let path = match edition {
                Edition::Core => "/api/v3/configure/token/named_admin",
                Edition::Enterprise => "/api/v3/enterprise/configure/token",
            };
            s.control.answer_after_apply(AnswerAfterApply {
                path_prefix: path.into(),
                method: None,
                answer,
                times: Some(1),
            });
            let n = name(&format!("made-{i}"));
            let err = match edition {
                Edition::Core => c.create_admin_token(&n, None).await,
                Edition::Enterprise => {
                    c.create_resource_token(&n, std::slice::from_ref(&read), None)
                        .await
                }
            }
            .unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, BackendError::OutcomeUnknown { .. }),
                "{edition:?} {status}: {text}"
            );
            assert!(
                text.contains(&format!("answered {status}")),
                "{edition:?}: {text}"
            );
            assert_no_token("the error", &text);
            assert!(s.control.token_id(n.as_str()).is_some(), "it was made");
        }
    }
}

#[tokio::test]
async fn a_regeneration_or_bootstrap_answered_unclearly_is_an_unknown_outcome() {
    for (status, answer) in unclear_answers() {
        let (s, op) = sim(Edition::Core).await;
        let c = client(&s, Some(&op));
        let path = "/api/v3/configure/token/admin";
        s.control.answer_after_apply(AnswerAfterApply {
            path_prefix: format!("{path}/regenerate"),
            method: None,
            answer: answer.clone(),
            times: Some(1),
        });
        let err = c.regenerate_operator_token().await.unwrap_err();
        assert!(
            matches!(err, BackendError::OutcomeUnknown { .. }),
            "{status}: {err}"
        );
        assert!(
            client(&s, Some(&op)).ping().await.is_err(),
            "it was regenerated"
        );
        assert_no_token("the error", &err.to_string());

        let fresh = Simulator::new(support::settings(Edition::Core))
            .spawn()
            .await
            .unwrap();
        fresh.control.answer_after_apply(AnswerAfterApply {
            path_prefix: path.into(),
            method: None,
            answer,
            times: Some(1),
        });
        let err = client(&fresh, None)
            .bootstrap_operator_token()
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::OutcomeUnknown { .. }),
            "{status}: {err}"
        );
        assert!(fresh.control.token_id("_admin").is_some(), "it was made");
    }
}

#[tokio::test]
async fn influxdbs_own_refusals_of_a_create_stay_refusals() {
    let (s, op) = sim(Edition::Core).await;
    let c = client(&s, Some(&op));
    c.create_admin_token(&name("taken"), None).await.unwrap();
    let err = c
        .create_admin_token(&name("taken"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err}");
    s.control.force_response(ForcedResponse {
        path_prefix: "/api/v3/configure/token/named_admin".into(),
        status: 400,
        content_type: None,
        body: "serde json error: missing field `token_name`".into(),
        times: Some(1),
    });
    let err = c.create_admin_token(&name("bad"), None).await.unwrap_err();
    assert!(
        matches!(err, BackendError::Rejected { status: 400, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_and_garbled_servers() {
    let (s, op) = sim(Edition::Core).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = quick(format!("http://{closed}"), &op, Duration::from_secs(2));
    for err in [
        c.ping().await.unwrap_err(),
        c.create_admin_token(&name("x"), None).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, BackendError::Unreachable { .. }),
            "a refused connection sent nothing: {err}"
        );
        assert!(
            err.to_string().contains("could not reach InfluxDB"),
            "{err}"
        );
    }
    let c = client(&s, Some(&op));
    s.control.force_response(ForcedResponse {
        path_prefix: "/api/v3/query_sql".into(),
        status: 200,
        content_type: Some("application/json".into()),
        body: r#"[{"token_id":"#.into(),
        times: Some(1),
    });
    let err = c
        .list_tokens(&ListFilter::default(), None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Decode { .. }), "{err}");
    s.control.force_response(ForcedResponse {
        path_prefix: "/api/v3/configure/token".into(),
        status: 500,
        content_type: Some("text/html".into()),
        body: "<html><h1>Internal Server Error</h1></html>".into(),
        times: Some(1),
    });
    let err = c.delete_token(&name("x")).await.unwrap_err();
    assert!(err.to_string().contains("an HTML page"), "{err}");
}

/// A client that reads its credential again from `file` after a 401, as `build_service` sets up
/// for an instance's `token_file`.
fn reloading(
    s: &tokenwarden::sim::RunningSim,
    op: &RawToken,
    file: &std::path::Path,
) -> InfluxClient {
    let file = file.to_owned();
    client(s, Some(op)).reloading(tokenwarden::influx::Reload(std::sync::Arc::new(
        move || {
            std::fs::read_to_string(&file)
                .ok()
                .map(|t| RawToken::new(t.trim().to_owned()))
        },
    )))
}

#[tokio::test]
async fn after_another_process_regenerates_a_client_follows_the_file_but_never_regenerates_again() {
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator.token");
    std::fs::write(&file, op.expose()).unwrap();
    let (a, b) = (reloading(&s, &op, &file), reloading(&s, &op, &file));
    // Process A regenerates into the shared file.
    let fresh = a.regenerate_operator_token().await.unwrap().secret;
    std::fs::write(&file, fresh.expose()).unwrap();
    // B, still on the old secret, is asked to regenerate too: it picks up A's secret and stops.
    let err = b.regenerate_operator_token().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("regenerated by another tokenwarden process"),
        "{err}"
    );
    let still = client(&s, Some(&fresh));
    assert!(still.ping().await.is_ok(), "A's secret was not revoked");
    // Another client still on the old secret: two reads refused at once both go through.
    let c = reloading(&s, &op, &file);
    let all = ListFilter::default();
    let listed = tokio::join!(
        c.list_tokens(&all, None, Utc::now()),
        c.list_tokens(&all, None, Utc::now()),
    );
    assert!(listed.0.is_ok() && listed.1.is_ok(), "{listed:?}");
}

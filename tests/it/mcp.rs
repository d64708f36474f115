//! The MCP server with a real rmcp client over duplex, in both protocol eras, against the
//! simulator: tools/list, every tool, the delete gate, secret handoff.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ElicitRequestParams, ElicitationAction};
use serde_json::{Value, json};
use tokenwarden::actor::{Actor, ActorKind, OsAccount};
use tokenwarden::mcp::{ApprovalPolicy, McpCore, McpSettings};
use tokenwarden::service::ApprovalResult;
use tokenwarden::sim::RunningSim;
use tokenwarden::store::{AuditOutcome, Store};
use tokenwarden::tokens::{Edition, RawToken, TokenBackend, TokenName};

use crate::mcp_support::{ERAS, Era, Form, TestClient, call, connect, err, ok};
use crate::support::{assert_logs_clean, assert_no_token, client, instance, service, sim};

pub async fn setup(edition: Edition, settings: McpSettings) -> (RunningSim, McpCore) {
    let (s, _, core) = setup_with_operator(edition, settings).await;
    (s, core)
}

/// [`setup`], and the simulator's operator token for changes behind tokenwarden's back.
async fn setup_with_operator(
    edition: Edition,
    settings: McpSettings,
) -> (RunningSim, RawToken, McpCore) {
    let (s, op) = sim(edition).await;
    s.control.create_database("metrics");
    let svc = service(
        &s,
        &op,
        instance("local", None, &["keep-*"], false),
        Store::open_in_memory().unwrap(),
    );
    (s, op, McpCore::new(Arc::new(svc), settings))
}

fn has(s: &RunningSim, name: &str) -> bool {
    s.control.token_names().iter().any(|n| n == name)
}

/// Opens a reveal link like a person: the page, then the button. Returns the secret.
async fn reveal(url: &str) -> String {
    let http = reqwest::Client::new();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    assert!(!body.contains("apiv3_"), "the page alone shows no secret");
    let shown = http.post(url).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    let body = shown.text().await.unwrap();
    let start = body.find("apiv3_").expect("the secret is on the page");
    body[start..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn tools_list_names_annotations_and_schemas() {
    for era in ERAS {
        let (_s, core) = setup(Edition::Enterprise, McpSettings::default()).await;
        let c = connect(&core, TestClient::plain(), era).await;
        let tools = c.list_all_tools().await.unwrap();
        let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "create_admin_token",
                "create_resource_token",
                "delete_token",
                "get_pending_action",
                "list_databases",
                "list_tokens",
                "prune_expired_tokens",
                "server_info"
            ]),
            "{era:?}"
        );
        let tool = |n: &str| tools.iter().find(|t| t.name == n).unwrap();
        let hints = |n: &str| {
            let a = tool(n).annotations.clone().unwrap();
            (
                a.read_only_hint,
                a.destructive_hint,
                a.idempotent_hint,
                a.open_world_hint,
            )
        };
        assert_eq!(
            hints("list_tokens"),
            (Some(true), Some(false), Some(true), Some(false))
        );
        assert_eq!(
            hints("delete_token"),
            (Some(false), Some(true), Some(false), Some(false))
        );
        assert_eq!(
            hints("create_admin_token"),
            (Some(false), Some(false), Some(false), Some(false))
        );
        let input = serde_json::to_value(&tool("delete_token").input_schema).unwrap();
        let props: BTreeSet<&str> = input["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            props,
            BTreeSet::from(["name", "instance", "confirmation_code"])
        );
        assert_eq!(input["required"], json!(["name"]));
        assert_eq!(input["additionalProperties"], json!(false));
        let input = serde_json::to_value(&tool("create_resource_token").input_schema).unwrap();
        assert!(input["properties"]["permissions"].is_object(), "{input}");
        for n in [
            "list_tokens",
            "create_admin_token",
            "delete_token",
            "server_info",
        ] {
            assert!(tool(n).output_schema.is_some(), "{n} has an output schema");
        }
        assert!(
            tool("delete_token")
                .description
                .as_deref()
                .unwrap()
                .contains("confirmation_code")
        );
    }

    let read_only = McpSettings {
        read_only: true,
        ..Default::default()
    };
    let (_s, core) = setup(Edition::Core, read_only).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let names: BTreeSet<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(
            [
                "get_pending_action",
                "list_databases",
                "list_tokens",
                "server_info"
            ]
            .map(String::from)
        )
    );

    let regen = McpSettings {
        allow_regenerate: true,
        ..Default::default()
    };
    let (_s, core) = setup(Edition::Core, regen).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    assert!(
        c.list_all_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "regenerate_operator_token")
    );
}

#[tokio::test]
async fn list_databases_and_server_info() {
    for era in ERAS {
        let (s, core) = setup(Edition::Enterprise, McpSettings::default()).await;
        s.control.create_admin("ci-bot", None);
        s.control.create_admin("old", Some(Duration::from_secs(1)));
        let c = connect(&core, TestClient::plain(), era).await;
        let v = ok(&call(&c, "list_tokens", json!({"name": "ci"})).await);
        assert_eq!(v["count"], 1);
        assert_eq!(v["tokens"][0]["name"], "ci-bot");
        assert_eq!(v["tokens"][0]["kind"], "admin");
        assert_eq!(v["tokens"][0]["status"], "active");
        let v = ok(&call(
            &c,
            "list_tokens",
            json!({"kind": "admin", "expiring_within": "30d"}),
        )
        .await);
        assert_eq!(
            (v["count"].as_u64(), v["tokens"][0]["name"].as_str()),
            (Some(1), Some("old")),
            "{v}"
        );
        let e = err(&call(&c, "list_tokens", json!({"expiring_within": "soon"})).await);
        assert!(e.contains("not a duration"), "{e}");
        // A duration whose date would overflow is refused, not a panic that hangs the client.
        let e = err(&call(&c, "list_tokens", json!({"expiring_within": "300000y"})).await);
        assert!(e.contains("longer than 100 years"), "{e}");
        let e = err(&call(&c, "list_tokens", json!({"instance": "prod"})).await);
        assert!(e.contains("no instance named `prod`"), "{e}");
        let v = ok(&call(&c, "list_databases", json!({})).await);
        assert_eq!(v["databases"], json!(["metrics"]));
        assert_eq!(
            v["details"],
            json!([{"name": "metrics", "retention_period": "indefinite", "tables": 0}])
        );
        let v = ok(&call(&c, "server_info", json!({})).await);
        assert_eq!(v["instances"][0]["edition"], "enterprise");
        assert_eq!(v["instances"][0]["default"], true);
        let regen = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "regenerate_operator_token")
            .unwrap();
        assert_eq!(regen["enabled"], false);
        assert!(regen["why"].as_str().unwrap().contains("allow_regenerate"));
    }
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_happens() {
    let (s, core) = setup(Edition::Core, McpSettings::default()).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    for (bad, why) in [
        (
            json!({"name": 5}),
            "invalid type: integer `5`, expected a string",
        ),
        (
            json!({"name": "x", "surprise": true}),
            "unknown field `surprise`",
        ),
        (json!({}), "missing field `name`"),
    ] {
        let e = err(&call(&c, "create_admin_token", bad.clone()).await);
        assert!(
            e.contains("failed to deserialize parameters") && e.contains(why),
            "{bad}: {e}"
        );
    }
    let e = err(&call(&c, "create_admin_token", json!({"name": "bad name"})).await);
    assert!(e.contains("contains ` `"), "{e}");
    let e = err(&call(
        &c,
        "create_admin_token",
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await);
    assert!(e.contains("in the past"), "{e}");
    let huge = "a".repeat(100_000);
    let e = err(&call(&c, "delete_token", json!({"name": huge})).await);
    assert!(e.contains("at most 16384 bytes"), "{e}");
    assert_eq!(s.control.token_count(), 1, "nothing was created");
}

#[tokio::test]
async fn create_hands_over_a_one_time_reveal_link() {
    for era in ERAS {
        let (s, core) = setup(Edition::Core, McpSettings::default()).await;
        let c = connect(&core, TestClient::plain(), era).await;
        let v = ok(&call(
            &c,
            "create_admin_token",
            json!({"name": "ci-bot", "expires_in": "7d"}),
        )
        .await);
        assert_eq!(v["token"]["name"], "ci-bot");
        assert_eq!(v["secret_handoff"]["method"], "reveal_link");
        assert_eq!(v["secret_handoff"]["secret"], Value::Null);
        let url = v["secret_handoff"]["reveal_url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(v["next_step"].as_str().unwrap().contains(&url));
        let secret = reveal(&url).await;
        client(&s, Some(&RawToken::new(secret)))
            .ping()
            .await
            .expect("the revealed secret works");
        let again = reqwest::Client::new().post(&url).send().await.unwrap();
        assert_eq!(again.status(), 410, "shown once");
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 410);
        let unknown = url.rsplit_once('/').unwrap().0.to_owned() + "/nope";
        assert_eq!(reqwest::get(&unknown).await.unwrap().status(), 404);
    }
    assert_logs_clean();
}

#[tokio::test]
async fn an_unopened_reveal_link_withdraws_its_token() {
    let settings = McpSettings {
        reveal_ttl: Duration::from_millis(300),
        ..Default::default()
    };
    let (s, core) = setup(Edition::Core, settings).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let v = ok(&call(&c, "create_admin_token", json!({"name": "forgotten"})).await);
    assert!(has(&s, "forgotten"));
    assert!(
        core.reveal().settled(1, Duration::from_secs(10)).await,
        "the lapsed link was never settled"
    );
    assert!(!has(&s, "forgotten"), "withdrawn after the link expired");
    let url = v["secret_handoff"]["reveal_url"].as_str().unwrap();
    assert_eq!(
        reqwest::Client::new()
            .post(url)
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    let audit = core.service().audit_log(1).await.unwrap();
    assert_eq!(audit[0].event.event, "token.withdraw");
    assert!(
        audit[0]
            .event
            .detail
            .as_deref()
            .unwrap()
            .contains("expired unopened")
    );
}

#[tokio::test]
async fn a_link_to_a_token_deleted_meanwhile_shows_no_secret() {
    let (s, op, core) = setup_with_operator(Edition::Core, McpSettings::default()).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let v = ok(&call(&c, "create_admin_token", json!({"name": "short-lived"})).await);
    let url = v["secret_handoff"]["reveal_url"].as_str().unwrap();
    client(&s, Some(&op))
        .delete_token(&TokenName::parse("short-lived").unwrap())
        .await
        .unwrap();
    s.control.create_admin("short-lived", None).unwrap();
    let shown = reqwest::Client::new().post(url).send().await.unwrap();
    assert_eq!(shown.status(), 410);
    let body = shown.text().await.unwrap();
    assert!(
        body.contains("was deleted after this link was made"),
        "{body}"
    );
    assert!(!body.contains("apiv3_"), "no secret: {body}");
    assert!(
        has(&s, "short-lived"),
        "the new token of that name is left alone"
    );
}

#[tokio::test]
async fn a_delete_confirmed_after_its_name_was_reused_deletes_nothing() {
    for era in ERAS {
        let (s, _op, core) = setup_with_operator(Edition::Core, McpSettings::default()).await;
        // The code flow: the name changes hands between the answer and the code.
        s.control.create_admin("x", None).unwrap();
        let c = connect(&core, TestClient::plain(), era).await;
        let first = ok(&call(&c, "delete_token", json!({"name": "x"})).await);
        let shown = first["token"]["id"].as_u64().unwrap();
        let code = first["confirmation_code"].as_str().unwrap().to_owned();
        assert!(s.control.delete_token("x"));
        s.control.create_admin("x", None).unwrap();
        let successor = s.control.token_id("x").unwrap();
        assert_ne!(successor, shown);
        let text = err(&call(
            &c,
            "delete_token",
            json!({"name": "x", "confirmation_code": code}),
        )
        .await);
        assert!(
            text.contains("token `x` was replaced after the request")
                && text.contains("nothing was deleted"),
            "{era:?}: {text}"
        );
        assert_eq!(s.control.token_id("x"), Some(successor));

        // Elicitation: the name changes hands while the user reads the form.
        s.control.create_admin("y", None).unwrap();
        let sim = s.control.clone();
        let mut client = TestClient::form(Form::Accept("y".into()));
        client.meanwhile = Some(Arc::new(move || {
            if sim.delete_token("y") {
                sim.create_admin("y", None);
            }
        }));
        let c = connect(&core, client, era).await;
        let text = err(&call(&c, "delete_token", json!({"name": "y"})).await);
        assert!(text.contains("token `y` was replaced"), "{era:?}: {text}");
        assert!(has(&s, "y"), "{era:?}: the new `y` survives");
    }
}

#[tokio::test]
async fn an_expiring_link_never_deletes_a_token_that_took_its_name() {
    let settings = McpSettings {
        reveal_ttl: Duration::from_millis(400),
        ..Default::default()
    };
    let (s, op, core) = setup_with_operator(Edition::Core, settings).await;
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    ok(&call(&c, "create_admin_token", json!({"name": "reused"})).await);
    ok(&call(&c, "create_admin_token", json!({"name": "gone"})).await);
    // Before the links expire, someone deletes both and gives one name to a new token.
    let influx = client(&s, Some(&op));
    for name in ["reused", "gone"] {
        influx
            .delete_token(&TokenName::parse(name).unwrap())
            .await
            .unwrap();
    }
    s.control.create_admin("reused", None).unwrap();
    assert!(
        core.reveal().settled(2, Duration::from_secs(10)).await,
        "the lapsed links were never settled"
    );
    assert!(has(&s, "reused"), "the new token named `reused` survives");
    let audit = core.service().audit_log(2).await.unwrap();
    let details: Vec<&str> = audit
        .iter()
        .map(|a| a.event.detail.as_deref().unwrap())
        .collect();
    assert!(
        audit
            .iter()
            .all(|a| a.event.outcome == AuditOutcome::Refused)
    );
    for expected in [
        "not deleted: the name now belongs to another token",
        "nothing to delete: it no longer exists",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected}: {details:?}"
        );
    }
    let deletes = s
        .control
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(
        deletes, 2,
        "only the test's own two deletes reached InfluxDB"
    );
}

#[tokio::test]
async fn url_elicitation_shows_the_link_to_the_user_not_the_model() {
    for era in ERAS {
        let (s, core) = setup(Edition::Core, McpSettings::default()).await;
        let user = TestClient::url(ElicitationAction::Accept);
        let c = connect(&core, user.clone(), era).await;
        let v = ok(&call(&c, "create_admin_token", json!({"name": "shown"})).await);
        assert_eq!(
            v["secret_handoff"]["method"], "url_elicitation",
            "{era:?}: {v}"
        );
        assert_eq!(
            v["secret_handoff"]["reveal_url"],
            Value::Null,
            "the model never sees the link"
        );
        let asked = user.asked();
        let Some(ElicitRequestParams::UrlElicitationParams { url, .. }) = asked.first() else {
            panic!("{asked:?}")
        };
        let secret = reveal(url).await;
        client(&s, Some(&RawToken::new(secret)))
            .ping()
            .await
            .unwrap();

        let c = connect(&core, TestClient::url(ElicitationAction::Decline), era).await;
        let e = err(&call(&c, "create_admin_token", json!({"name": "unwanted"})).await);
        assert!(e.contains("deleted again"), "{e}");
        assert!(
            !has(&s, "unwanted"),
            "{era:?}: a declined secret withdraws its token"
        );
    }
}

#[tokio::test]
async fn resource_tokens_need_enterprise() {
    for era in ERAS {
        let (_s, core) = setup(Edition::Core, McpSettings::default()).await;
        let c = connect(&core, TestClient::plain(), era).await;
        let args = json!({"name": "reader", "permissions": [{"database": "metrics", "actions": ["read"]}]});
        let e = err(&call(&c, "create_resource_token", args.clone()).await);
        assert!(e.contains("runs InfluxDB 3 core"), "{e}");

        let (s, core) = setup(Edition::Enterprise, McpSettings::default()).await;
        let c = connect(&core, TestClient::plain(), era).await;
        let v = ok(&call(&c, "create_resource_token", args).await);
        assert_eq!(v["token"]["permissions"], json!(["db:metrics:read"]));
        assert!(has(&s, "reader"));
        let e = err(&call(
            &c,
            "create_resource_token",
            json!({"name": "x", "permissions": []}),
        )
        .await);
        assert!(e.contains("at least one permission"), "{e}");
        let bad =
            json!({"name": "x", "permissions": [{"database": "bad db", "actions": ["read"]}]});
        assert!(
            err(&call(&c, "create_resource_token", bad).await).contains("invalid database name")
        );
    }
}

#[tokio::test]
async fn delete_with_form_elicitation_in_both_eras() {
    for era in ERAS {
        let (s, core) = setup(Edition::Core, McpSettings::default()).await;
        for n in ["a", "b", "c", "d"] {
            s.control.create_admin(n, None);
        }
        let user = TestClient::form(Form::Accept("a".into()));
        let c = connect(&core, user.clone(), era).await;
        let v = ok(&call(&c, "delete_token", json!({"name": "a"})).await);
        assert_eq!(v["status"], "done", "{era:?}: {v}");
        assert!(!has(&s, "a"));
        let Some(ElicitRequestParams::FormElicitationParams { message, .. }) =
            user.asked().first().cloned()
        else {
            panic!()
        };
        assert!(
            message.contains("Delete token `a`") && message.contains("admin token"),
            "{message}"
        );

        assert!(message.contains("It is an admin token"), "{message}");
        let c = connect(&core, TestClient::form(Form::Decline), era).await;
        let v = ok(&call(&c, "delete_token", json!({"name": "b"})).await);
        assert_eq!(v["status"], "declined", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("Do not ask again unless the user asks"),
            "{v}"
        );
        let c = connect(&core, TestClient::form(Form::Cancel), era).await;
        assert_eq!(
            ok(&call(&c, "delete_token", json!({"name": "c"})).await)["status"],
            "declined"
        );
        // A wrong name is the user's answer, not the model's mistake: a normal result.
        let c = connect(&core, TestClient::form(Form::Accept("D".into())), era).await;
        let v = ok(&call(&c, "delete_token", json!({"name": "d"})).await);
        assert_eq!(v["status"], "confirmation_mismatch", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("Do not retry unless the user asks"),
            "{v}"
        );
        assert!(
            has(&s, "b") && has(&s, "c") && has(&s, "d"),
            "{era:?}: nothing else was deleted"
        );
        assert!(
            core.service().open_pending().await.unwrap().is_empty(),
            "declined and failed requests are closed"
        );
    }
}

#[tokio::test]
async fn delete_with_a_confirmation_code() {
    for era in ERAS {
        let (s, core) = setup(Edition::Core, McpSettings::default()).await;
        s.control.create_admin("victim", None);
        let c = connect(&core, TestClient::plain(), era).await;
        let first = ok(&call(&c, "delete_token", json!({"name": "victim"})).await);
        assert_eq!(first["status"], "confirmation_required");
        assert_eq!(first["token"]["name"], "victim");
        assert!(first["expires_at"].is_string());
        assert!(
            has(&s, "victim"),
            "nothing happens before the code comes back"
        );
        let code = first["confirmation_code"].as_str().unwrap().to_owned();

        let wrong = format!("{}-000000000000", code.split('-').next().unwrap());
        assert!(
            err(&call(
                &c,
                "delete_token",
                json!({"name": "victim", "confirmation_code": wrong})
            )
            .await)
            .contains("does not belong to this request")
        );
        let other = connect(&core, TestClient::plain(), era).await;
        let e = err(&call(
            &other,
            "delete_token",
            json!({"name": "victim", "confirmation_code": code}),
        )
        .await);
        assert!(
            e.contains("only the session that requested"),
            "{era:?}: another session cannot use the code: {e}"
        );
        s.control.create_admin("bystander", None);
        let e = err(&call(
            &c,
            "delete_token",
            json!({"name": "bystander", "confirmation_code": code}),
        )
        .await);
        assert!(
            e.contains("different action"),
            "the code is bound to the token: {e}"
        );

        let done = ok(&call(
            &c,
            "delete_token",
            json!({"name": "victim", "confirmation_code": code}),
        )
        .await);
        assert_eq!(done["status"], "done");
        assert!(!has(&s, "victim"));
        let e = err(&call(
            &c,
            "delete_token",
            json!({"name": "victim", "confirmation_code": code}),
        )
        .await);
        assert!(e.contains("already succeeded"), "single use: {e}");
        assert!(has(&s, "bystander"));
    }
}

#[tokio::test]
async fn confirmation_codes_expire() {
    let (s, core) = setup(Edition::Core, McpSettings::default()).await;
    s.control.create_admin("victim", None);
    let c = connect(&core, TestClient::plain(), Era::Modern).await;
    let first = ok(&call(&c, "delete_token", json!({"name": "victim"})).await);
    let code = first["confirmation_code"].as_str().unwrap().to_owned();
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(301)).await;
    tokio::time::resume();
    let e = err(&call(
        &c,
        "delete_token",
        json!({"name": "victim", "confirmation_code": code}),
    )
    .await);
    assert!(e.contains("expired"), "{e}");
    assert!(has(&s, "victim"));
}

fn approvals_from(from: &[ActorKind]) -> McpSettings {
    McpSettings {
        approvals: Some(ApprovalPolicy {
            required: 1,
            timeout: Duration::from_secs(3600),
            approve_from: from.to_vec(),
        }),
        ..Default::default()
    }
}

/// The account the in-process stdio server runs as in these tests, and another one.
fn server_account() -> OsAccount {
    OsAccount {
        uid: 1000,
        user: Some("dev".into()),
        host: "laptop".into(),
    }
}

/// `victim` created, and its delete asked over stdio by the server's account (a client that
/// would type the name); the core as that server, its client and the answer.
async fn delete_victim_as_server(
    s: &RunningSim,
    core: McpCore,
) -> (McpCore, crate::mcp_support::Client, Value) {
    let core = core.with_os_account(server_account());
    s.control.create_admin("victim", None);
    let c = connect(
        &core,
        TestClient::form(Form::Accept("victim".into())),
        Era::Legacy,
    )
    .await;
    let v = ok(&call(&c, "delete_token", json!({"name": "victim"})).await);
    (core, c, v)
}

#[tokio::test]
async fn deletes_can_require_a_human_approval_elsewhere() {
    let (s, core) = setup(Edition::Core, approvals_from(&[ActorKind::Discord])).await;
    let (core, c, v) = delete_victim_as_server(&s, core).await;
    assert_eq!(v["status"], "approval_required", "{v}");
    let id = v["pending_id"].as_str().unwrap().to_owned();
    // Who approves, and how, is for the team to know; the model is told neither.
    let message = v["message"].as_str().unwrap();
    assert!(message.contains(&id), "{message}");
    assert!(
        !message.contains("tokenwarden") && !message.contains("approvals approve"),
        "{message}"
    );
    let p = ok(&call(&c, "get_pending_action", json!({"id": id})).await);
    assert_eq!(
        (
            p["state"].as_str(),
            p["approvals"].as_u64(),
            p["required_approvals"].as_u64()
        ),
        (Some("open"), Some(0), Some(1))
    );
    assert!(has(&s, "victim"));

    // By default requests made through MCP are approved in Discord: a CLI approval, even by
    // another account of this host, is refused and changes nothing.
    let pid = tokenwarden::gate::PendingId::parse(&id).unwrap();
    let someone_else = OsAccount {
        uid: 1001,
        ..server_account()
    };
    let refused = core
        .service()
        .approve(&Actor::cli(&someone_else), &pid)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("approved through discord only, not through cli")
            && refused.contains("approve_from"),
        "{refused}"
    );
    assert!(has(&s, "victim"));
    let approved = core
        .service()
        .approve(&Actor::discord(77, "bob"), &pid)
        .await
        .unwrap();
    assert!(matches!(approved, ApprovalResult::Executed { .. }));
    assert!(!has(&s, "victim"));
    assert_eq!(
        ok(&call(&c, "get_pending_action", json!({"id": id})).await)["state"],
        "succeeded"
    );
    assert!(
        err(&call(&c, "get_pending_action", json!({"id": "nonsense"})).await)
            .contains("no pending action")
    );
}

#[tokio::test]
async fn with_cli_approvals_on_the_servers_own_account_still_cannot_approve() {
    let (s, core) = setup(
        Edition::Core,
        approvals_from(&[ActorKind::Discord, ActorKind::Cli]),
    )
    .await;
    let (core, _client, v) = delete_victim_as_server(&s, core).await;
    let pid = tokenwarden::gate::PendingId::parse(v["pending_id"].as_str().unwrap()).unwrap();
    // The assistant's shell runs as the server's account, whatever name it gives itself.
    let same_account = OsAccount {
        user: Some("someone-else".into()),
        ..server_account()
    };
    let refused = core
        .service()
        .approve(&Actor::cli(&same_account), &pid)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("someone else must approve"), "{refused}");
    assert!(has(&s, "victim"));
    let other = OsAccount {
        uid: 1001,
        ..server_account()
    };
    let approved = core
        .service()
        .approve(&Actor::cli(&other), &pid)
        .await
        .unwrap();
    assert!(matches!(approved, ApprovalResult::Executed { .. }));
    assert!(!has(&s, "victim"));
}

#[tokio::test]
async fn protected_tokens_are_refused_before_any_gate() {
    let (s, core) = setup(Edition::Core, McpSettings::default()).await;
    s.control.create_admin("keep-me", None);
    let user = TestClient::form(Form::Accept("keep-me".into()));
    let c = connect(&core, user.clone(), Era::Legacy).await;
    assert!(
        err(&call(&c, "delete_token", json!({"name": "keep-me"})).await)
            .contains("is protected (matches `keep-*`)")
    );
    let e = err(&call(&c, "delete_token", json!({"name": "_admin"})).await);
    assert!(e.contains("regenerate_operator_token tool"), "{e}");
    assert!(
        !e.contains("tokenwarden tokens"),
        "no command the assistant cannot run: {e}"
    );
    assert!(user.asked().is_empty(), "the user was never asked");
    assert!(core.service().open_pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn regenerate_is_gated_and_writes_the_new_secret_to_its_file() {
    let settings = McpSettings {
        allow_regenerate: true,
        ..Default::default()
    };
    let (s, op) = sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator.token");
    let mut inst = instance("local", None, &[], false);
    let svc = service(&s, &op, inst.clone(), Store::open_in_memory().unwrap());
    let core = McpCore::new(Arc::new(svc), settings.clone());
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let refused = err(&call(&c, "regenerate_operator_token", json!({})).await);
    assert!(refused.contains("operator_token_file"), "{refused}");

    inst.operator_token_file = Some(file.clone());
    let svc = service(&s, &op, inst, Store::open_in_memory().unwrap());
    let core = McpCore::new(Arc::new(svc), settings);
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let first = ok(&call(&c, "regenerate_operator_token", json!({})).await);
    assert_eq!(first["status"], "confirmation_required");
    let code = first["confirmation_code"].as_str().unwrap();
    let done = ok(&call(
        &c,
        "regenerate_operator_token",
        json!({"confirmation_code": code}),
    )
    .await);
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        done["message"].as_str().unwrap().contains("did not change"),
        "{done}"
    );
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_no_token("the tool result", &done.to_string());
    client(&s, Some(&RawToken::new(secret)))
        .ping()
        .await
        .expect("the new operator secret works");

    let c = connect(
        &core,
        TestClient::form(Form::Accept("wrong".into())),
        Era::Modern,
    )
    .await;
    let v = ok(&call(&c, "regenerate_operator_token", json!({})).await);
    assert_eq!(v["status"], "confirmation_mismatch", "{v}");
}

#[tokio::test]
async fn secrets_can_go_to_a_private_file_or_inline_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let file_mode = McpSettings {
        secret_mode: tokenwarden::mcp::SecretMode::File(dir.path().join("secrets")),
        ..Default::default()
    };
    let (s, core) = setup(Edition::Core, file_mode).await;
    let c = connect(
        &core,
        TestClient::url(ElicitationAction::Accept),
        Era::Legacy,
    )
    .await;
    let v = ok(&call(&c, "create_admin_token", json!({"name": "to-file"})).await);
    assert_eq!(v["secret_handoff"]["method"], "file");
    let path = std::path::PathBuf::from(v["secret_handoff"]["file"].as_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let secret = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    client(&s, Some(&RawToken::new(secret)))
        .ping()
        .await
        .unwrap();

    let inline = McpSettings {
        secret_mode: tokenwarden::mcp::SecretMode::Inline,
        ..Default::default()
    };
    let (s, core) = setup(Edition::Core, inline).await;
    let c = connect(&core, TestClient::plain(), Era::Modern).await;
    let args = json!({"name": "inline"}).as_object().cloned().unwrap();
    let r = c
        .call_tool(
            rmcp::model::CallToolRequestParams::new("create_admin_token").with_arguments(args),
        )
        .await
        .unwrap();
    let v = ok(&r);
    assert_eq!(v["secret_handoff"]["method"], "inline");
    let secret = v["secret_handoff"]["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("apiv3_"),
        "the explicit opt-in puts the secret in the result"
    );
    client(&s, Some(&RawToken::new(secret.to_owned())))
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn list_tokens_pages_with_a_cursor() {
    let (s, core) = setup(Edition::Core, McpSettings::default()).await;
    for i in 0..5 {
        s.control.create_admin(&format!("t{i}"), None);
    }
    let c = connect(&core, TestClient::plain(), Era::Modern).await;
    let p1 = ok(&call(&c, "list_tokens", json!({"limit": 4})).await);
    assert_eq!(
        (p1["count"].as_u64(), p1["next_cursor"].as_str()),
        (Some(4), Some("4"))
    );
    let p2 = ok(&call(&c, "list_tokens", json!({"limit": 4, "cursor": "4"})).await);
    assert_eq!(
        (p2["count"].as_u64(), p2["next_cursor"].clone()),
        (Some(2), Value::Null)
    );
    assert_eq!(p2["tokens"][1]["name"], "t4");
    assert!(
        err(&call(&c, "list_tokens", json!({"cursor": "abc"})).await).contains("not a next_cursor")
    );
    assert!(
        err(&call(&c, "list_tokens", json!({"limit": 0})).await).contains("limit must be 1 to 500")
    );
    let default = ok(&call(&c, "list_tokens", json!({})).await);
    assert_eq!(default["count"], 6, "the default page (50) holds them all");
}

#[tokio::test]
async fn prune_expired_tokens_is_gated_in_both_eras() {
    for era in ERAS {
        let (s, core) = setup(Edition::Core, McpSettings::default()).await;
        s.control.create_admin("old-a", Some(Duration::ZERO));
        s.control.create_admin("old-b", Some(Duration::ZERO));
        s.control.create_admin("fresh", None);
        let c = connect(&core, TestClient::plain(), era).await;
        let first = ok(&call(&c, "prune_expired_tokens", json!({})).await);
        assert_eq!(first["status"], "confirmation_required");
        assert!(
            first["message"]
                .as_str()
                .unwrap()
                .contains("delete 2 expired tokens"),
            "{first}"
        );
        // The list the user confirms is data, not only prose; a prune concerns no single token.
        assert!(first.get("token").is_none(), "{first}");
        let listed: Vec<(&str, u64)> = first["expired_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap(), t["id"].as_u64().unwrap()))
            .collect();
        let ids = |n| s.control.token_id(n).unwrap();
        assert_eq!(
            listed,
            [("old-a", ids("old-a")), ("old-b", ids("old-b"))],
            "{first}"
        );
        assert!(
            first["expired_tokens"][0]["expired_at"].is_string(),
            "{first}"
        );
        assert!(has(&s, "old-a"));
        let code = first["confirmation_code"].as_str().unwrap();
        let done = ok(&call(
            &c,
            "prune_expired_tokens",
            json!({"confirmation_code": code}),
        )
        .await);
        assert_eq!(done["status"], "done");
        assert!(
            done["message"]
                .as_str()
                .unwrap()
                .contains("Deleted 2 expired tokens"),
            "{done}"
        );
        assert!(!has(&s, "old-a") && !has(&s, "old-b") && has(&s, "fresh"));
        let none = ok(&call(&c, "prune_expired_tokens", json!({})).await);
        assert!(
            none["message"]
                .as_str()
                .unwrap()
                .contains("no expired tokens"),
            "{none}"
        );

        s.control.create_admin("old-c", Some(Duration::ZERO));
        let user = TestClient::form(Form::Accept("prune".into()));
        let c = connect(&core, user.clone(), era).await;
        let done = ok(&call(&c, "prune_expired_tokens", json!({})).await);
        assert_eq!(done["status"], "done", "{era:?}: {done}");
        assert!(!has(&s, "old-c"));
        let Some(ElicitRequestParams::FormElicitationParams { message, .. }) =
            user.asked().first().cloned()
        else {
            panic!()
        };
        assert!(
            message.contains("old-c") && message.contains("Type `prune`"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn errors_name_tools_the_assistant_has_not_commands_it_cannot_run() {
    let (s, core) = setup(Edition::Enterprise, McpSettings::default()).await;
    s.control.create_database("metrics");
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;

    let e = err(&call(
        &c,
        "create_resource_token",
        json!({"name": "reader", "permissions": [{"database": "nope", "actions": ["read"]}]}),
    )
    .await);
    assert!(e.contains("no such database `nope`"), "{e}");
    assert!(e.contains("call list_databases"), "{e}");
    assert!(
        !e.contains("invalid resource name"),
        "InfluxDB's raw text stays inside: {e}"
    );

    let e = err(&call(&c, "delete_token", json!({"name": "ghost"})).await);
    assert!(
        e.contains("no token named `ghost`") && e.contains("call list_tokens"),
        "{e}"
    );

    let e = err(&call(
        &c,
        "create_resource_token",
        json!({"name": "reader", "permissions": [{"database": "metrics", "actions": []}]}),
    )
    .await);
    assert!(e.contains("at least one action"), "{e}");
    assert!(
        !e.contains("TYPE:NAMES:ACTIONS") && !e.contains("db:"),
        "no CLI syntax: {e}"
    );
}

#[tokio::test]
async fn a_resource_token_can_read_system_endpoints() {
    let (s, core) = setup(Edition::Enterprise, McpSettings::default()).await;
    s.control.create_database("metrics");
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let v = ok(&call(
        &c,
        "create_resource_token",
        json!({"name": "scraper", "permissions": [
            {"database": "metrics", "actions": ["read"]},
            {"system": "metrics", "actions": ["read"]}
        ]}),
    )
    .await);
    assert_eq!(
        v["token"]["permissions"],
        json!(["db:metrics:read", "system:metrics:read"]),
        "{v}"
    );
    let e = err(&call(
        &c,
        "create_resource_token",
        json!({"name": "both", "permissions": [{"database": "metrics", "system": "ping", "actions": ["read"]}]}),
    )
    .await);
    assert!(e.contains("a `database` or a `system` resource"), "{e}");
    let e = err(&call(
        &c,
        "create_resource_token",
        json!({"name": "sysw", "permissions": [{"system": "*", "actions": ["write"]}]}),
    )
    .await);
    assert!(e.contains("only allow `read`"), "{e}");
    assert_eq!(s.control.token_id("both"), None);
}

//! Every InfluxDB fault through every adapter (CLI, MCP, Discord): a clear message that says
//! what to check, no panic, nothing half done; a create whose answer is lost is reported as
//! unknown and audited as such, never retried.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::mcp::{McpCore, McpSettings};
use tokenwarden::service::{Clock, TokenService};
use tokenwarden::sim::{ForcedResponse, RunningSim, SimSettings, Simulator};
use tokenwarden::store::{AuditOutcome, Store};
use tokenwarden::tokens::{Edition, RawToken};

use crate::support::{assert_no_token, instance};

/// An InfluxDB that misbehaves in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Down,
    Slow,
    Html500,
    Truncated,
    Revoked,
    WithoutAuth,
    Dns,
}

const FAULTS: [Fault; 7] = [
    Fault::Down,
    Fault::Slow,
    Fault::Html500,
    Fault::Truncated,
    Fault::Revoked,
    Fault::WithoutAuth,
    Fault::Dns,
];

impl Fault {
    /// What the message must say, and the CLI's exit code.
    fn expect(self) -> (&'static str, i32) {
        match self {
            Self::Down | Self::Dns => ("could not reach InfluxDB", 8),
            Self::Slow => ("did not answer within", 8),
            Self::Html500 => ("an HTML page instead of an InfluxDB answer", 1),
            Self::Truncated => ("cannot read (token list)", 1),
            Self::Revoked => ("rejected tokenwarden's token (401)", 4),
            Self::WithoutAuth => ("started with --without-auth", 7),
        }
    }

    /// WithoutAuth only shows on token endpoints; the others show on a read.
    fn creates(self) -> bool {
        self == Self::WithoutAuth
    }
}

/// A simulator that creates tokens but never answers the create: the answer is lost.
async fn lost_answer() -> Setup {
    let s = setup(Fault::Down).await;
    let sim = s._sim.unwrap();
    sim.control
        .stall_after_apply(tokenwarden::sim::StallAfterApply {
            path_prefix: "/api/v3/configure/token/named_admin".into(),
            method: Some("POST".into()),
            times: None,
        });
    Setup {
        url: sim.url(),
        token: s.token,
        timeout: Duration::from_millis(300),
        _sim: Some(sim),
        _reserved: None,
    }
}

/// Where tokenwarden should look, with which token and timeout, to meet `fault`.
struct Setup {
    _sim: Option<RunningSim>,
    /// For `Down`: a port bound but not listening, so connecting is refused and no other test
    /// can take the port meanwhile.
    _reserved: Option<tokio::net::TcpSocket>,
    url: String,
    token: RawToken,
    timeout: Duration,
}

async fn setup(fault: Fault) -> Setup {
    crate::support::init_logs();
    let without_auth = fault == Fault::WithoutAuth;
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        without_auth,
        record_requests: true,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim
        .control
        .create_operator()
        .unwrap_or_else(|| RawToken::new("apiv3_unused".into()));
    let mut s = Setup {
        url: sim.url(),
        token: op.clone(),
        timeout: Duration::from_secs(5),
        _sim: None,
        _reserved: None,
    };
    match fault {
        Fault::Down => {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            s.url = format!("http://{}", socket.local_addr().unwrap());
            s._reserved = Some(socket);
        }
        Fault::Dns => s.url = "http://tokenwarden-nowhere.invalid:8181".into(),
        Fault::Slow => {
            sim.control.set_latency(Duration::from_millis(1500));
            s.timeout = Duration::from_millis(300);
        }
        Fault::Html500 => sim.control.force_response(ForcedResponse {
            path_prefix: "/api/v3/query_sql".into(),
            status: 500,
            content_type: Some("text/html".into()),
            body: "<html><body><h1>500 Internal Server Error</h1></body></html>".into(),
            times: None,
        }),
        Fault::Truncated => sim.control.force_response(ForcedResponse {
            path_prefix: "/api/v3/query_sql".into(),
            status: 200,
            content_type: Some("application/json".into()),
            body: r#"[{"token_id":0,"name":"_adm"#.into(),
            times: None,
        }),
        Fault::Revoked => {
            // tokenwarden works with a named admin token that someone deletes mid-session.
            s.token = sim.control.create_admin("tokenwarden", None).unwrap();
            let r = reqwest::Client::new()
                .delete(format!(
                    "{}/api/v3/configure/token?token_name=tokenwarden",
                    sim.url()
                ))
                .bearer_auth(op.expose())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        Fault::WithoutAuth => {}
    }
    s._sim = Some(sim);
    s
}

fn service(s: &Setup, store: Store) -> Arc<TokenService> {
    let backend = Arc::new(
        InfluxClient::new(ClientOptions {
            url: s.url.clone(),
            token: Some(s.token.clone()),
            timeout: s.timeout,
            ca_file: None,
        })
        .unwrap(),
    );
    let settings = instance("local", Some(Edition::Core), &[], false);
    Arc::new(TokenService::new(
        vec![(settings, backend)],
        None,
        store,
        Clock::System,
        Duration::from_secs(300),
    ))
}

#[test]
fn the_cli_explains_every_fault() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for fault in FAULTS {
        let dir = tempfile::tempdir().unwrap();
        let s = rt.block_on(setup(fault));
        std::fs::write(dir.path().join("tw.token"), s.token.expose()).unwrap();
        let cfg = dir.path().join("tokenwarden.toml");
        let timeout = format!("{}ms", s.timeout.as_millis());
        std::fs::write(
            &cfg,
            format!("[[instances]]\nname = \"local\"\nurl = \"{}\"\ntoken_file = \"tw.token\"\ntimeout = \"{timeout}\"\nedition = \"core\"\n", s.url),
        )
        .unwrap();
        let args: &[&str] = if fault.creates() {
            &["tokens", "create-admin", "x"]
        } else {
            &["tokens", "list"]
        };
        let r = crate::cli::run(&cfg, args, "");
        let (phrase, code) = fault.expect();
        assert_eq!(r.code, code, "{fault:?}: {}", r.stderr);
        assert!(r.stderr.contains(phrase), "{fault:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{fault:?}: {}", r.stderr);
    }
}

#[tokio::test]
async fn mcp_tools_explain_every_fault() {
    for fault in FAULTS {
        let s = setup(fault).await;
        let core = McpCore::new(
            service(&s, Store::open_in_memory().unwrap()),
            McpSettings::default(),
        );
        let c = crate::mcp_support::connect(
            &core,
            crate::mcp_support::TestClient::plain(),
            crate::mcp_support::Era::Modern,
        )
        .await;
        let r = if fault.creates() {
            crate::mcp_support::call(&c, "create_admin_token", json!({"name": "x"})).await
        } else {
            crate::mcp_support::call(&c, "list_tokens", json!({})).await
        };
        let text = crate::mcp_support::err(&r);
        assert!(text.contains(fault.expect().0), "{fault:?}: {text}");
    }
}

#[tokio::test]
async fn discord_replies_explain_every_fault() {
    use crate::discord_support::{ALICE, Harness, command};
    for fault in FAULTS {
        let s = setup(fault).await;
        let mut h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
        h.rewire(service(&s, Store::open_in_memory().unwrap()))
            .await;
        let id = h.next_id();
        let (sub, args): (&str, &[(&str, &str)]) = if fault.creates() {
            ("create-admin", &[("name", "x")])
        } else {
            ("list", &[])
        };
        let r = h.send(command(id, ALICE, sub, args)).await;
        assert_eq!(
            r["type"], 5,
            "{fault:?}: answered at once, whatever InfluxDB does"
        );
        let path = format!("/webhooks/42/itoken-{id}/messages/@original");
        let edit = h
            .fake
            .wait_for("the explanation", |c| c.path.ends_with(&path))
            .await;
        let text = crate::discord_support::shown(&edit.body["content"]);
        assert!(text.contains(fault.expect().0), "{fault:?}: {}", edit.body);
    }
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_withdrawn_everywhere() {
    let s = lost_answer().await;
    // MCP
    let svc = service(&s, Store::open_in_memory().unwrap());
    let core = McpCore::new(Arc::clone(&svc), McpSettings::default());
    let c = crate::mcp_support::connect(
        &core,
        crate::mcp_support::TestClient::plain(),
        crate::mcp_support::Era::Legacy,
    )
    .await;
    let text = crate::mcp_support::err(
        &crate::mcp_support::call(&c, "create_admin_token", json!({"name": "lost"})).await,
    );
    assert!(
        text.contains("InfluxDB's answer to the creation of token `lost` was lost")
            && text.contains("deleted it again"),
        "{text}"
    );
    let audit = svc.audit_log(2).await.unwrap();
    assert_eq!(audit[0].event.outcome, AuditOutcome::RolledBack);
    assert_eq!(audit[1].event.outcome, AuditOutcome::Unknown);
    assert_no_token("the audit log", &format!("{audit:?}"));
    let sim = s._sim.as_ref().unwrap();
    assert!(
        !sim.control.token_names().contains(&"lost".to_owned()),
        "the token nobody holds was withdrawn"
    );
    let creates = s
        ._sim
        .as_ref()
        .unwrap()
        .control
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("named_admin"))
        .count();
    assert_eq!(creates, 1, "never retried");
}

#[test]
fn the_cli_reports_an_unknown_create_and_never_retries() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = rt.block_on(lost_answer());
    std::fs::write(dir.path().join("tw.token"), s.token.expose()).unwrap();
    let cfg = dir.path().join("tokenwarden.toml");
    std::fs::write(
        &cfg,
        format!("[[instances]]\nname = \"local\"\nurl = \"{}\"\ntoken_file = \"tw.token\"\ntimeout = \"300ms\"\nedition = \"core\"\n", s.url),
    )
    .unwrap();
    let r = crate::cli::run(&cfg, &["tokens", "create-admin", "lost"], "");
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("InfluxDB's answer to the creation of token `lost` was lost")
            && r.stderr.contains("The creation was not retried"),
        "{}",
        r.stderr
    );
    let r = crate::cli::run(&cfg, &["audit", "--json", "--limit", "2"], "");
    let audit: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(audit[0]["outcome"], "rolled_back");
    assert_eq!(audit[1]["outcome"], "unknown");
}

#[tokio::test]
async fn discord_reports_an_unknown_create() {
    use crate::discord_support::{ALICE, Harness, command};
    let s = lost_answer().await;
    let mut h = Harness::new(Edition::Core, Store::open_in_memory().unwrap(), |_| {}).await;
    let svc = service(&s, Store::open_in_memory().unwrap());
    h.rewire(Arc::clone(&svc)).await;
    let id = h.next_id();
    h.send(command(id, ALICE, "create-admin", &[("name", "lost")]))
        .await;
    let path = format!("/webhooks/42/itoken-{id}/messages/@original");
    let edit = h
        .fake
        .wait_for("the explanation", |c| c.path.ends_with(&path))
        .await;
    let text = crate::discord_support::shown(&edit.body["content"]);
    assert!(
        text.contains("InfluxDB's answer to the creation of token `lost` was lost"),
        "{}",
        edit.body
    );
    assert_eq!(
        svc.audit_log(1).await.unwrap()[0].event.outcome,
        AuditOutcome::RolledBack
    );
}

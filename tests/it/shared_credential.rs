//! Processes that share an instance's token file: when one regenerates the operator token into
//! it, the others (which still hold the old one) read the file again at InfluxDB's first 401 and
//! go on working, instead of failing until restarted.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::identity::fixture;
use crate::mcp_takeover::{list_tokens, message, send};

const CLIENT: &str = "twmcp_shared_credential";

#[tokio::test(flavor = "multi_thread")]
async fn a_server_goes_on_after_another_process_regenerates_into_the_shared_token_file() {
    let f = fixture(
        "operator_token_file = \"operator.token\"\n\
         \n[[mcp.http.clients]]\nname = \"assistant\"\ntoken_file = \"mcp.token\"\n",
    );
    let token_file = f.dir.path().join("mcp.token");
    std::fs::write(&token_file, CLIENT).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut server = f.tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let url = server.listening_url("listening on ").await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "shared-credential-test", "version": "0"}}});
    let r = send(&url, Method::POST, CLIENT, None, Some(init)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = r.text().await;
    let (url, session) = (&url, &session);
    let listed = |id| async move {
        let r = send(
            url,
            Method::POST,
            CLIENT,
            Some(session),
            Some(list_tokens(id)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        message(r).await
    };
    let before = listed(1).await;
    assert_eq!(before["result"]["isError"], false, "{before}");

    // Another process regenerates the operator token into the file both read it from.
    let r =
        f.tw.run(&["tokens", "regenerate-operator", "--yes", "--json"], "")
            .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fresh = std::fs::read_to_string(f.dir.path().join("operator.token")).unwrap();
    assert_ne!(fresh.trim(), f.operator, "the file holds the new secret");

    let after = listed(2).await;
    assert!(
        after["result"]["isError"] == false
            && after["result"]["structuredContent"]["tokens"].is_array(),
        "the server reads the new secret and lists: {after}\n{}",
        server.seen()
    );
    let switched = server
        .wait_stderr(
            |l| l.contains("its file holds a new one"),
            Duration::from_secs(30),
        )
        .await;
    assert!(switched.is_some(), "{}", server.seen());
    crate::support::assert_no_token("the server's log", &server.seen());
    assert!(
        !server.seen().contains(fresh.trim()),
        "the new secret is never logged"
    );
}

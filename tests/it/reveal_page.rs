//! The one-time reveal page: the page a link opens never holds the secret; the page that shows
//! it has a copy button whose script the Content-Security-Policy allows by its hash, and
//! nothing else.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokenwarden::mcp::{McpCore, McpSettings};
use tokenwarden::sim::RunningSim;
use tokenwarden::store::Store;
use tokenwarden::tokens::{Edition, RawToken, TokenBackend};

use crate::mcp_support::{Era, TestClient, call, connect, ok};
use crate::support::{assert_logs_clean, assert_no_token, client, instance, service, sim};

/// A simulator and a fresh reveal link for a new admin token made through MCP.
async fn new_link() -> (RunningSim, McpCore, String) {
    let (s, op) = sim(Edition::Core).await;
    let svc = service(
        &s,
        &op,
        instance("local", None, &[], false),
        Store::open_in_memory().unwrap(),
    );
    let core = McpCore::new(Arc::new(svc), McpSettings::default());
    let c = connect(&core, TestClient::plain(), Era::Legacy).await;
    let v = ok(&call(&c, "create_admin_token", json!({"name": "ci-bot"})).await);
    let url = v["secret_handoff"]["reveal_url"]
        .as_str()
        .unwrap()
        .to_owned();
    (s, core, url)
}

/// The CSP hash source of an inline element's text.
fn csp_hash(text: &str) -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The text between the first `open` and the `close` after it.
fn between<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    let start = page.find(open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let len = page[start..]
        .find(close)
        .unwrap_or_else(|| panic!("no {close}"));
    &page[start..start + len]
}

/// The policy a page must carry: only its own style and script, by hash.
fn policy_for(page: &str) -> String {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
        csp_hash(between(page, "<script>", "</script>")),
        csp_hash(between(page, "<style>", "</style>")),
    )
}

fn assert_private(r: &reqwest::Response) {
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_secret_page_has_a_copy_button_and_a_policy_that_allows_only_its_script() {
    let (s, _core, url) = new_link().await;
    let http = reqwest::Client::new();

    let opened = http.get(&url).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    assert_private(&opened);
    let opened_csp = opened.headers()["content-security-policy"].clone();
    let page = opened.text().await.unwrap();
    assert_no_token("the page a link opens", &page);
    assert!(!page.contains("apiv3_"), "no secret before the button");
    assert!(
        !page.contains("<script"),
        "the page a link opens runs no script"
    );

    let shown = http.post(&url).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    assert_private(&shown);
    let csp = shown.headers()["content-security-policy"].to_str().unwrap();
    let csp = csp.to_owned();
    let page = shown.text().await.unwrap();
    assert_eq!(csp, policy_for(&page), "the exact policy");
    assert_eq!(opened_csp, csp.as_str(), "one policy for every reveal page");

    assert!(page.contains(r#"<button type="button" id="copy" hidden>Copy</button>"#));
    let script = between(&page, "<script>", "</script>");
    for part in [
        "getElementById(\"copy\")",
        "getElementById(\"secret\")",
        "navigator.clipboard.writeText(secret.textContent)",
        "\"Copied\"",
        "selectNodeContents(secret)",
        "button.hidden = false",
    ] {
        assert!(script.contains(part), "the copy script has {part}");
    }
    assert_eq!(page.matches("<script").count(), 1, "one script, inline");
    assert!(
        !page.contains("src=") && !page.contains("href="),
        "no external resources"
    );

    let secret = between(&page, r#"<code id="secret">"#, "</code>");
    assert!(
        secret.starts_with("apiv3_"),
        "the secret is what the script copies"
    );
    client(&s, Some(&RawToken::new(secret.to_owned())))
        .ping()
        .await
        .expect("the copied text is the working secret");

    let again = http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert_no_token("the page of a used link", &again.text().await.unwrap());
    assert_logs_clean();
}

#[tokio::test]
async fn the_stdio_reveal_listener_answers_only_to_its_own_address() {
    let (_s, _core, url) = new_link().await;
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let port = authority.rsplit_once(':').unwrap().1;
    let http = reqwest::Client::new();
    let get = |host: String| http.get(&url).header("host", host).send();

    let r = get(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(r.status(), 403, "a rebound name is refused");
    let text = r.text().await.unwrap();
    assert!(text.contains("Host header is not allowed"), "{text}");
    assert!(!text.contains("ci-bot"), "nothing about the link: {text}");
    let r = get("127.0.0.1:1".to_owned()).await.unwrap();
    assert_eq!(r.status(), 403, "another port is another server");

    let r = get(authority.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "the address the link names");
    let r = get(format!("localhost:{port}")).await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "not localhost: a browser may take it to ::1, where another account can listen"
    );
}

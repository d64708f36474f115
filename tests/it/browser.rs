//! The reveal pages in a real browser: headless Chromium over the DevTools protocol
//! (`tests/e2e/browser_reveal.mjs`). A one-time link and the private page's sign-in each deliver
//! the secret to the person in front of the browser, its copy button copies exactly it, nothing
//! on the page breaks its content policy, and the token then outlives the server (delivered, not
//! withdrawn). Chromium is `$TOKENWARDEN_TEST_CHROMIUM` or the first of `chromium`,
//! `chromium-browser` and `google-chrome` found; `.ci/run` installs Debian's. Without one these
//! tests say so and pass, except under `CI`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::identity::listed;
use crate::peers::{e2e_dir, node};
use crate::private_delivery::{PASSPHRASE, free_port, waiting_for_ann};

/// A Chromium to drive, or None after saying why (a panic under CI).
fn chromium() -> Option<String> {
    let found = std::env::var("TOKENWARDEN_TEST_CHROMIUM").ok().or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(str::to_owned)
    });
    if found.is_none() {
        eprintln!(
            "SKIPPED: no Chromium here (install Debian's `chromium`, or set \
             TOKENWARDEN_TEST_CHROMIUM); the reveal pages were not tried in a browser"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser tests"
        );
    }
    found
}

/// Opens `url` in Chromium; with `sign_in`, signs in on the private page's form, else presses
/// the one-time link's button. What the page showed, as the script reports it.
async fn in_browser(chromium: &str, url: &str, sign_in: Option<(&str, &str)>) -> Value {
    let mut cmd = tokio::process::Command::new(node());
    cmd.arg(e2e_dir().join("browser_reveal.mjs"))
        .arg(chromium)
        .arg(url)
        .kill_on_drop(true);
    if let Some((person, passphrase)) = sign_in {
        cmd.args([person, passphrase]);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the browser script did not finish within 90 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("apiv3_"),
        "the script never prints a secret"
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{v}");
    v
}

/// What every delivered secret page must show in the browser.
fn assert_delivered(page: &Value) {
    assert_eq!(page["title"], "Your InfluxDB 3 token", "{page}");
    assert_eq!(page["shows_secret"], true, "{page}");
    assert_eq!(page["copy_button_visible"], true, "{page}");
    assert_eq!(page["copy_button_says"], "Copied", "{page}");
    assert_eq!(page["copied_the_secret"], true, "{page}");
    assert_eq!(
        page["problems"],
        json!([]),
        "no console error or CSP violation: {page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_time_link_delivers_in_a_browser_and_its_copy_button_copies_the_secret() {
    let Some(chromium) = chromium() else { return };
    let port = free_port();
    let f = crate::identity::fixture(&format!("\n[mcp]\nreveal_listen = \"127.0.0.1:{port}\"\n"));
    let mut server = f.tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let created = server
        .mcp_call(1, "create_admin_token", json!({"name": "browser-link"}))
        .await;
    let url = created["result"]["structuredContent"]["secret_handoff"]["reveal_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no reveal link: {created}"))
        .to_owned();
    let page = in_browser(&chromium, &url, None).await;
    assert_delivered(&page);
    server.close_stdin();
    assert!(server.wait_exit(Duration::from_secs(30)).await.is_some());
    assert!(
        listed(&f.tw, "browser-link"),
        "a delivered token is not withdrawn when the server stops"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_private_page_signs_a_browser_in_and_delivers_the_secret() {
    let Some(chromium) = chromium() else { return };
    let (f, mut server, url) = waiting_for_ann("browser-private").await;
    let page = in_browser(&chromium, &url, Some(("ann", PASSPHRASE))).await;
    assert_delivered(&page);
    let posted = &page["posted"][0];
    assert_eq!(posted["sec_fetch_site"], "same-origin", "{page}");
    server.close_stdin();
    assert!(server.wait_exit(Duration::from_secs(30)).await.is_some());
    assert!(
        listed(&f.tw, "browser-private"),
        "a delivered token is not withdrawn when the server stops"
    );
}

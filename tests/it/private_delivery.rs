//! `secret_delivery = "private"` with the real binary: no link and no path ever reaches a tool
//! result; the secret waits on the private page for the person the client belongs to, behind
//! their passphrase, once; wrong passphrases withdraw it; a client that belongs to nobody with a
//! passphrase is refused before anything is created.

use serde_json::{Value, json};
use tokenwarden::actor::OsAccount;

use crate::identity::{fixture, listed};

pub const PASSPHRASE: &str = "correct horse battery";

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A simulator and a config with private delivery on `port` for person `ann`, who is this
/// test's own OS account (or, with `account`, another) and has `hash` as passphrase hash.
pub fn ann_private(
    port: u16,
    account: Option<&str>,
    hash: Option<&str>,
) -> crate::identity::Fixture {
    let me = OsAccount::current();
    let account = account.map_or_else(|| format!("{}@{}", me.uid, me.host), str::to_owned);
    let hash = hash.map_or_else(String::new, |h| format!("passphrase_hash = \"{h}\"\n"));
    fixture(&format!(
        "\n[mcp]\nsecret_delivery = \"private\"\nreveal_listen = \"127.0.0.1:{port}\"\n\n\
         [[people]]\nname = \"ann\"\nos_accounts = [\"{account}\"]\n{hash}"
    ))
}

/// A server with private delivery for `ann` (this test's account, with [`PASSPHRASE`]) and a
/// secret of token `name` waiting for her: the server, and the private page's URL.
pub async fn waiting_for_ann(name: &str) -> (crate::identity::Fixture, crate::procs::Proc, String) {
    let port = free_port();
    let hash = tokenwarden::people::hash_passphrase(PASSPHRASE).unwrap();
    let f = ann_private(port, None, Some(&hash));
    let mut server = f.tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let created = server
        .mcp_call(1, "create_admin_token", json!({"name": name}))
        .await;
    assert_ne!(created["result"]["isError"], true, "{created}");
    (f, server, format!("http://127.0.0.1:{port}/reveal/private"))
}

async fn sign_in(page: &str, person: &str, passphrase: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(page)
        .form(&[("person", person), ("passphrase", passphrase)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Asserts a tool answer holds neither a URL, a reveal path, a file path nor a secret.
fn assert_nothing_to_follow(answer: &Value, dir: &std::path::Path) {
    let text = answer.to_string();
    for leak in [
        "http://",
        "https://",
        "/reveal",
        "apiv3_",
        &dir.display().to_string(),
    ] {
        assert!(!text.contains(leak), "`{leak}` in {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn private_delivery_shows_the_secret_only_to_its_person() {
    let hash = {
        let f = fixture("");
        let r =
            f.tw.run(&["people", "hash-passphrase"], &format!("{PASSPHRASE}\n"))
                .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout.trim().to_owned()
    };
    let port = free_port();
    let f = ann_private(port, None, Some(&hash));
    let mut server = f.tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let created = server
        .mcp_call(1, "create_admin_token", json!({"name": "ann-ci"}))
        .await;
    let result = &created["result"];
    assert_ne!(result["isError"], true, "{created}");
    assert_eq!(
        result["structuredContent"]["secret_handoff"]["method"], "private",
        "{created}"
    );
    assert_nothing_to_follow(&created, f.dir.path());
    assert!(listed(&f.tw, "ann-ci"));

    let page = format!("http://127.0.0.1:{port}/reveal/private");
    let form = reqwest::get(&page).await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("type=\"password\""));
    for (person, passphrase) in [("ann", "wrong horse battery"), ("mallory", PASSPHRASE)] {
        let (status, body) = sign_in(&page, person, passphrase).await;
        assert_eq!(status, 403, "{body}");
        assert!(!body.contains("apiv3_"), "{body}");
    }
    let (status, body) = sign_in(&page, "ann", PASSPHRASE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("apiv3_") && body.contains("ann-ci"), "{body}");
    let (status, body) = sign_in(&page, "ann", PASSPHRASE).await;
    assert_eq!(status, 404, "shown once: {body}");
    assert!(listed(&f.tw, "ann-ci"), "a delivered token stays");

    // Someone guessing: after five wrong passphrases the waiting secret is withdrawn.
    let created = server
        .mcp_call(2, "create_admin_token", json!({"name": "ann-guessed"}))
        .await;
    assert_nothing_to_follow(&created, f.dir.path());
    for _ in 0..5 {
        let (status, _) = sign_in(&page, "ann", "guess guess guess").await;
        assert_eq!(status, 403);
    }
    assert!(
        !listed(&f.tw, "ann-guessed"),
        "the guessed-at token is deleted again"
    );
    let (status, body) = sign_in(&page, "ann", PASSPHRASE).await;
    assert_eq!(
        status, 429,
        "locked for a while, even with the passphrase: {body}"
    );
    assert!(
        body.contains("Signing in is possible again in 15 minutes"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_private_page_refuses_other_sites_and_other_names_for_itself() {
    let (f, _server, page) = waiting_for_ann("ann-x").await;
    let http = reqwest::Client::new();
    let form = [("person", "ann"), ("passphrase", PASSPHRASE)];

    // A page of another site posting the form, even with the right passphrase, gets nothing,
    // and a flood of such posts cannot lock ann out.
    for _ in 0..6 {
        let r = http
            .post(&page)
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("came from another site"));
    }
    let r = http
        .post(&page)
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // `localhost` may lead a browser to ::1, where another account can listen on this port.
    let r = http
        .post(page.replace("127.0.0.1", "localhost"))
        .form(&form)
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 403, "only {page} is this page");
    }
    assert!(listed(&f.tw, "ann-x"), "nothing above withdrew it");

    // `Origin: null` is a sandboxed frame's, or an old browser's under `no-referrer`: refused
    // unless `Sec-Fetch-Site` says the post came from this page.
    for site in [None, Some("cross-site"), Some("same-site")] {
        let mut post = http.post(&page).header("origin", "null");
        if let Some(site) = site {
            post = post.header("sec-fetch-site", site);
        }
        let r = post.form(&form).send().await.unwrap();
        assert_eq!(r.status(), 403, "Origin: null, Sec-Fetch-Site: {site:?}");
    }
    assert!(listed(&f.tw, "ann-x"), "nothing above withdrew it");

    // The form asks browsers for a real Origin on its own post...
    let form_page = http.get(&page).send().await.unwrap();
    assert_eq!(form_page.headers()["referrer-policy"], "same-origin");
    // ...and the page posting to itself works, with the headers Chromium 156 sends under the
    // former `no-referrer` too (`Origin: null`, `Sec-Fetch-Site: same-origin`).
    let r = http
        .post(&page)
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("apiv3_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_without_sec_fetch_posting_the_form_to_itself_is_let_in() {
    let (_f, _server, page) = waiting_for_ann("ann-y").await;
    let r = reqwest::Client::new()
        .post(&page)
        .header("origin", page.trim_end_matches("/reveal/private"))
        .form(&[("person", "ann"), ("passphrase", PASSPHRASE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("apiv3_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_whose_private_page_address_is_taken_does_not_start() {
    // Another program (here this test; in life perhaps another account's fake page) holds the
    // address people would type their passphrase into.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let f = ann_private(port, None, None);
    let mut server = f.tw.spawn(&["mcp"]);
    let status = server
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .expect("it exits at once");
    assert_ne!(status.code(), Some(0));
    let seen = server.seen();
    assert!(
        seen.contains(&format!(
            "cannot serve the private reveal page on 127.0.0.1:{port}"
        )),
        "{seen}"
    );
    drop(squatter);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_belongs_to_nobody_gets_nothing_created() {
    let port = free_port();
    let f = ann_private(port, Some("4242@elsewhere"), None);
    let mut server = f.tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let refused = server
        .mcp_call(1, "create_admin_token", json!({"name": "orphan"}))
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let text = refused["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("Nothing was created")
            && text.contains("belongs to nobody with a passphrase"),
        "{text}"
    );
    assert_nothing_to_follow(&refused, f.dir.path());
    assert!(!listed(&f.tw, "orphan"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_that_hang_up_still_count_and_the_lockout_holds() {
    let port = free_port();
    let hash = tokenwarden::people::hash_passphrase(PASSPHRASE).unwrap();
    let f = ann_private(port, None, Some(&hash));
    let tw =
        f.tw.clone()
            .env("RUST_LOG", "warn,tokenwarden::mcp::reveal=debug");
    let mut server = tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let created = server
        .mcp_call(1, "create_admin_token", json!({"name": "ann-dropped"}))
        .await;
    assert_ne!(created["result"]["isError"], true, "{created}");
    // Five wrong sign-ins whose clients hang up while the passphrase is being checked.
    let body = "person=ann&passphrase=wrong+wrong+wrong";
    for _ in 0..5 {
        use tokio::io::AsyncWriteExt;
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!(
            "POST /reveal/private HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        server
            .wait_stderr(
                |l| l.contains("checking a sign-in"),
                std::time::Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|| panic!("the sign-in was not received: {}", server.seen()));
        drop(conn);
    }
    server
        .wait_stderr(
            |l| l.contains("their waiting secrets were withdrawn"),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|| panic!("the hung-up attempts were not counted: {}", server.seen()));
    assert!(!listed(&f.tw, "ann-dropped"), "withdrawn, as the page says");
    let page = format!("http://127.0.0.1:{port}/reveal/private");
    let (status, body) = sign_in(&page, "ann", PASSPHRASE).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("15 minutes"), "{body}");
}

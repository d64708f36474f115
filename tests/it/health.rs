//! `/health` and `/ready` on every server the binary runs: open without a bearer token (a load
//! balancer has none), `/ready` 503 with the reason once InfluxDB is gone, `/health` still 200.

use serde_json::Value;

use crate::identity::{Fixture, fixture};

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get_owned(url: String) -> (u16, Value) {
    get(&url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_says_whether_it_is_alive_and_whether_it_can_work() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let Fixture { dir, sim, tw, .. } = fixture(&format!(
        "\n[[mcp.http.clients]]\nname = \"t\"\ntoken_file = \"mcp.token\"\n\n[discord]\n\
         application_id = \"42\"\npublic_key = \"{}\"\nbot_token_file = \"discord.token\"\n\
         api_base = \"http://127.0.0.1:9\"\n",
        hex::encode(key.verifying_key().to_bytes())
    ));
    std::fs::write(dir.path().join("mcp.token"), "twmcp_health").unwrap();
    std::fs::write(dir.path().join("discord.token"), "bot").unwrap();
    let mut serve = tw.spawn(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--interactions",
        "127.0.0.1:0",
    ]);
    let mcp = serve.listening_url("MCP server listening on ").await;
    let discord = serve
        .listening_url("interactions endpoint listening on ")
        .await;
    let bases = [
        mcp.trim_end_matches("/mcp").to_owned(),
        discord.trim_end_matches("/interactions").to_owned(),
    ];
    for base in &bases {
        let (status, body) = get(&format!("{base}/health")).await;
        assert_eq!((status, &body["status"]), (200, &"ok".into()), "{base}");
        let (status, body) = get(&format!("{base}/ready")).await;
        assert_eq!(status, 200, "{base}: {body}");
        assert_eq!(body["ready"], true);
        assert_eq!(body["store"], "ok");
        assert_eq!(body["influxdb"], "ok");
    }
    let r = reqwest::Client::new().post(&mcp).send().await.unwrap();
    assert_eq!(r.status(), 401, "/mcp itself still needs the bearer token");

    drop(sim);
    for base in &bases {
        let (status, body) = get(&format!("{base}/ready")).await;
        assert_eq!(status, 503, "{base}: {body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["store"], "ok");
        // Anyone may ask: a short code, no address or instance name.
        assert_eq!(body["influxdb"], "unreachable", "{body}");
        let (status, _) = get(&format!("{base}/health")).await;
        assert_eq!(status, 200, "alive, only not ready");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_answers_in_time_when_influxdb_hangs() {
    // An "InfluxDB" that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counting = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((conn, _)) = silent.accept().await {
            counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let tw = crate::procs::Tw::new(
        dir.path(),
        &url,
        &tokenwarden::tokens::RawToken::new("apiv3_unused".into()),
    );
    let mut config = std::fs::read_to_string(&tw.config).unwrap();
    config.push_str("\n[mcp.http]\nallow_no_auth = true\n");
    std::fs::write(&tw.config, config).unwrap();
    let mut server = tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let mcp = server.listening_url("MCP server listening on ").await;
    let (status, body) = get(&mcp.replace("/mcp", "/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["influxdb"], "timeout", "{body}");
    assert_eq!(body["store"], "ok");
    // A flood of checks while InfluxDB hangs shares checks instead of piling connections on it.
    let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
    let ready = mcp.replace("/mcp", "/ready");
    let flood: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get_owned(ready.clone())))
        .collect();
    for answer in flood {
        let (status, body) = answer.await.unwrap();
        assert_eq!((status, &body["influxdb"]), (503, &"timeout".into()));
    }
    let opened = accepted.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(
        opened <= 2,
        "{opened} connections to InfluxDB for 20 concurrent /ready"
    );
    server
        .wait_stderr(
            |l| l.contains("did not answer /ping within 3 s"),
            std::time::Duration::from_secs(30),
        )
        .await
        .expect("the details are in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_says_unavailable_when_the_store_file_is_gone() {
    let f = fixture("\n[mcp.http]\nallow_no_auth = true\n");
    let mut server = f.tw.spawn(&["mcp", "--http", "127.0.0.1:0"]);
    let mcp = server.listening_url("MCP server listening on ").await;
    let ready = mcp.replace("/mcp", "/ready");
    // The server has the store open; its file goes away under it (an operator's mistake, a
    // volume unmounted). The first check after that sees it (the test above shows 200 before).
    let db = f.dir.path().join("tokenwarden.db");
    std::fs::rename(&db, f.dir.path().join("moved.db")).unwrap();
    let (status, body) = get(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"], "unavailable", "{body}");
}

//! `/health` and `/ready` on every server the binary runs: open without a bearer token (a load
//! balancer has none), `/ready` 503 with the reason once InfluxDB is gone, `/health` still 200.

use serde_json::Value;

use crate::identity::{Fixture, fixture};

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
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
        assert_eq!(body["instance"], "local");
    }
    let r = reqwest::Client::new().post(&mcp).send().await.unwrap();
    assert_eq!(r.status(), 401, "/mcp itself still needs the bearer token");

    drop(sim);
    for base in &bases {
        let (status, body) = get(&format!("{base}/ready")).await;
        assert_eq!(status, 503, "{base}: {body}");
        assert_eq!(body["ready"], false);
        assert_eq!(body["store"], "ok");
        let why = body["influxdb"].as_str().unwrap();
        assert!(why.contains("local"), "{why}");
        assert!(!why.contains("apiv3_"), "{why}");
        let (status, _) = get(&format!("{base}/health")).await;
        assert_eq!(status, 200, "alive, only not ready");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_answers_in_time_when_influxdb_hangs() {
    // An "InfluxDB" that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((conn, _)) = silent.accept().await {
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
    let why = body["influxdb"].as_str().unwrap();
    assert!(why.contains("did not answer /ping within 3 s"), "{why}");
    assert_eq!(body["store"], "ok");
}

//! The README's deployment section, run: its config and its systemd unit's commands, with a
//! throwaway PostgreSQL database, the simulator, a fake Discord and a round-robin proxy in place
//! of the real ones. What a site must change (addresses, paths) is replaced; nothing else is.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use serde_json::json;
use tokenwarden::tokens::Edition;

use crate::backends::{Backend, LINK_KEY};
use crate::discord_fake::FakeDiscord;
use crate::procs::Tw;
use crate::replicas::{MCP_ALICE, create_with_link, round_robin, signed};
use crate::support;

/// The fenced block after `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme
        .split_once(marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"))
        .1;
    let body = after.split_once("```").unwrap().1;
    let body = body.split_once('\n').unwrap().1;
    body.split_once("```").unwrap().0.to_owned()
}

/// The arguments after `--config FILE` of the unit's `key=` line.
fn unit_command(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in the unit"));
    let args = line
        .strip_prefix("/usr/local/bin/tokenwarden --config /etc/tokenwarden/tokenwarden.toml ")
        .unwrap_or_else(|| panic!("{key} runs something else: {line}"));
    args.split_whitespace()
        .map(|a| {
            a.replace("0.0.0.0:8080", "127.0.0.1:0")
                .replace("0.0.0.0:8081", "127.0.0.1:0")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_deployment_runs_two_replicas_on_postgresql() {
    let Some(Backend::Postgres(db_url)) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    let fake = FakeDiscord::start().await;
    let key = SigningKey::from_bytes(&[23; 32]);
    let dir = tempfile::tempdir().unwrap();
    let (etc, shared) = (dir.path().join("etc"), dir.path().join("shared"));
    for d in [&etc, &shared] {
        std::fs::create_dir_all(d).unwrap();
    }
    let private = |path: std::path::PathBuf, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    private(
        etc.join("pg.password"),
        "the test cluster trusts loopback\n",
    );
    private(etc.join("link.key"), LINK_KEY);
    private(etc.join("mcp-assistant.token"), MCP_ALICE);
    private(etc.join("discord.token"), crate::discord_support::BOT_TOKEN);
    private(shared.join("operator.token"), op.expose());
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());

    let site = |text: &str| {
        text.replace("/etc/tokenwarden/", &format!("{}/", etc.display()))
            .replace(
                "/srv/shared/tokenwarden/",
                &format!("{}/", shared.display()),
            )
    };
    let config = readme_block("<!-- deployment-config -->");
    let config = site(&config)
        .replace(
            "postgres://tokenwarden@db.internal:5432/tokenwarden?sslmode=require",
            &db_url,
        )
        .replace("https://influxdb.internal:8181", &sim.url())
        .replace("https://tokenwarden.example.com", &proxy_url)
        .replace(
            "[discord]\n",
            &format!("[discord]\napi_base = \"{}\"\n", fake.url),
        )
        .replace(
            "0f4c8a2b1d9e7f6a5b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a",
            &hex::encode(key.verifying_key().to_bytes()),
        );
    let tw = Tw::new(dir.path(), &sim.url(), &op).env("RUST_LOG", "warn");
    std::fs::write(&tw.config, &config).unwrap();
    let unit = readme_block("<!-- deployment-unit -->");

    let migrate = unit_command(&unit, "ExecStartPre");
    let migrate: Vec<&str> = migrate.iter().map(String::as_str).collect();
    let r = tw.run(&migrate, "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let serve = unit_command(&unit, "ExecStart");
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut p = tw.spawn(&serve);
        let mcp = p.listening_url("MCP server listening on ").await;
        let interactions = p.listening_url("interactions endpoint listening on ").await;
        replicas.push((p, mcp, interactions));
    }
    let authority = |u: &str| {
        u.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    tokio::spawn(round_robin(
        proxy,
        replicas.iter().map(|(_, mcp, _)| authority(mcp)).collect(),
    ));

    // The load balancer's health check reaches both.
    for _ in 0..2 {
        let ready = reqwest::get(format!("{proxy_url}/ready")).await.unwrap();
        assert_eq!(
            ready.status(),
            StatusCode::OK,
            "{}",
            ready.text().await.unwrap()
        );
    }
    // An assistant creates through the balancer; the link opens once, wherever it lands.
    let link = create_with_link(&format!("{proxy_url}/mcp"), "deployed").await;
    assert!(link.starts_with(&proxy_url), "{link}");
    let shown = reqwest::Client::new().post(&link).send().await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    let again = reqwest::Client::new().post(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    // Discord's endpoint answers on both.
    let ping = json!({"id": "1", "application_id": "123456789012345678", "type": 1, "token": "t", "version": 1});
    for (_, _, interactions) in &replicas {
        assert_eq!(signed(interactions, &key, &ping).await["type"], 1);
    }
    // SIGTERM stops each, as systemd does.
    for (mut p, _, _) in replicas {
        p.signal(libc::SIGTERM);
        let status = p.wait_exit(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| s.success()), "{}", p.seen());
    }
}

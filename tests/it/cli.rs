//! The CLI end to end: the built binary against `tokenwarden simulate` started by the test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::assert_no_token;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");

/// A `tokenwarden simulate` child process, killed on drop.
pub struct SimProcess {
    child: Child,
    pub url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn simulate(args: &[&str]) -> SimProcess {
    let mut child = Command::new(BIN)
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches(';')
        .to_owned();
    SimProcess { child, url }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(config: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_token("stderr (logs and errors)", &r.stderr);
    r
}

/// The README's minimal config, pointing at `url`, with relative paths.
pub fn write_config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("tokenwarden.toml");
    let text = format!(
        "[store]\npath = \"tokenwarden.db\"\n\n[[instances]]\nname = \"local\"\nurl = \"{url}\"\ntoken_file = \"operator.token\"    # or: token_env = \"INFLUXDB3_AUTH_TOKEN\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_cli_manages_tokens_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&[
        "--edition",
        "enterprise",
        "--seed-databases",
        "metrics",
        "--operator-token-file",
        token_file.to_str().unwrap(),
    ]);
    let cfg = write_config(dir.path(), &sim.url);

    let r = run(&cfg, &["check"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("InfluxDB 3 enterprise")
            && r.stdout.contains("tokenwarden's token works"),
        "{}",
        r.stdout
    );

    let r = run(
        &cfg,
        &["tokens", "create-admin", "ci-bot", "--expires-in", "7d"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("will not be shown again"), "{}", r.stdout);
    let secret = r
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("apiv3_"))
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 92);

    let r = run(&cfg, &["tokens", "list", "--json"], "");
    assert_eq!(r.code, 0);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed["next_cursor"], serde_json::Value::Null);
    let ci = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci-bot")
        .unwrap();
    assert_eq!(
        (ci["kind"].as_str(), ci["status"].as_str()),
        (Some("admin"), Some("active"))
    );
    assert!(!r.stdout.contains(&secret));

    let r = run(&cfg, &["tokens", "list", "--limit", "1", "--json"], "");
    let first: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (
            first["tokens"][0]["name"].as_str(),
            first["next_cursor"].as_str()
        ),
        (Some("_admin"), Some("1"))
    );
    let r = run(
        &cfg,
        &["tokens", "list", "--limit", "1", "--cursor", "1", "--json"],
        "",
    );
    let second: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (
            second["tokens"][0]["name"].as_str(),
            second["next_cursor"].as_str()
        ),
        (Some("ci-bot"), None)
    );
    let r = run(&cfg, &["tokens", "list", "--limit", "1"], "");
    assert!(
        r.stdout.contains("More tokens follow: add --cursor 1"),
        "{}",
        r.stdout
    );
    let r = run(
        &cfg,
        &["tokens", "list", "--all", "--limit", "1", "--json"],
        "",
    );
    let all: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(all["next_cursor"], serde_json::Value::Null);
    assert!(all["tokens"].as_array().unwrap().len() >= 2);

    let r = run(&cfg, &["tokens", "list", "--name", "ci"], "");
    assert!(
        r.stdout.contains("ci-bot") && !r.stdout.contains("_admin"),
        "{}",
        r.stdout
    );

    let r = run(&cfg, &["tokens", "create-admin", "ci-bot"], "");
    assert_eq!(r.code, 6, "conflict: {}", r.stderr);
    assert!(
        r.stderr.contains("a token named `ci-bot` already exists"),
        "{}",
        r.stderr
    );

    let r = run(
        &cfg,
        &[
            "tokens",
            "create-resource",
            "reader",
            "--permission",
            "db:metrics:read",
            "--json",
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(created["permissions"][0], "db:metrics:read");
    assert!(created["token"].as_str().unwrap().starts_with("apiv3_"));

    let r = run(
        &cfg,
        &[
            "tokens",
            "create-resource",
            "bad",
            "--permission",
            "db:metrics",
        ],
        "",
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("is not TYPE:NAMES:ACTIONS"),
        "{}",
        r.stderr
    );

    // Durations whose dates would overflow: a clear refusal, from the flags and from the config.
    let r = run(
        &cfg,
        &["tokens", "list", "--expiring-within", "300000y"],
        "",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("longer than 100 years"), "{}", r.stderr);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let far = dir.path().join("far.toml");
    std::fs::write(
        &far,
        format!("{text}\n[gate]\nconfirm_timeout = \"300000y\"\n"),
    )
    .unwrap();
    let r = run(&far, &["tokens", "list"], "");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("confirm_timeout") && r.stderr.contains("longer than 100 years"),
        "{}",
        r.stderr
    );

    // A database InfluxDB does not have: said plainly, with the command that lists the names.
    let r = run(
        &cfg,
        &[
            "tokens",
            "create-resource",
            "bad",
            "--permission",
            "db:nope:read",
        ],
        "",
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such database `nope`")
            && r.stderr
                .contains("run `tokenwarden databases` to see the names"),
        "{}",
        r.stderr
    );
    let r = run(&cfg, &["tokens", "delete", "ghost", "--yes"], "");
    assert!(
        r.stderr
            .contains("no token named `ghost` exists; run `tokenwarden tokens list`"),
        "{}",
        r.stderr
    );

    let r = run(&cfg, &["tokens", "delete", "ci-bot"], "wrong\n");
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not match; nothing was done"),
        "{}",
        r.stderr
    );
    let r = run(&cfg, &["tokens", "delete", "ci-bot"], "");
    assert_eq!(r.code, 7);
    assert!(
        r.stderr.contains("not confirmed; nothing was changed"),
        "{}",
        r.stderr
    );
    let r = run(&cfg, &["tokens", "delete", "ci-bot"], "ci-bot\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Type the token name to confirm"));
    assert_eq!(
        r.stdout.trim(),
        "Deleted token `ci-bot` on instance `local`."
    );
    let r = run(&cfg, &["tokens", "delete", "ci-bot", "--yes"], "");
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = run(&cfg, &["tokens", "delete", "_admin", "--yes"], "");
    assert_eq!(r.code, 7);
    assert!(r.stderr.contains("regenerate-operator"), "{}", r.stderr);

    let r = run(&cfg, &["tokens", "prune-expired"], "");
    assert_eq!(
        (r.code, r.stdout.trim()),
        (
            0,
            "No expired tokens to prune (protected tokens are never pruned)."
        )
    );

    let r = run(&cfg, &["databases"], "");
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .collect()
        })
        .filter(|w: &Vec<&str>| !w.is_empty())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "RETENTION", "TABLES"],
            vec!["metrics", "indefinite", "0"]
        ],
        "{}",
        r.stdout
    );

    let r = run(&cfg, &["audit", "--json", "--limit", "100"], "");
    assert_eq!(r.code, 0);
    assert_no_token("the audit log", &r.stdout);
    let audit: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let events: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["event"], e["outcome"]))
        .collect();
    assert!(
        events.contains(&"\"token.delete\" \"succeeded\"".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"\"token.delete\" \"refused\"".to_owned()),
        "{events:?}"
    );

    let r = run(
        &cfg,
        &[
            "tokens",
            "regenerate-operator",
            "--yes",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("apiv3_"),
        "the secret went to the file: {}",
        r.stdout
    );
    let r = run(&cfg, &["check"], "");
    assert_eq!(
        r.code, 0,
        "the new operator token in the file works: {}",
        r.stderr
    );

    drop(sim);
    let r = run(&cfg, &["tokens", "list"], "");
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr.contains("could not reach InfluxDB"),
        "{}",
        r.stderr
    );
}

#[test]
fn bootstrap_writes_a_private_token_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulate(&[]);
    let cfg = write_config(dir.path(), &sim.url);
    let file = dir.path().join("operator.token");
    let r = run(
        &cfg,
        &[
            "tokens",
            "bootstrap-operator",
            "--token-file",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("apiv3_"), "{}", r.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(run(&cfg, &["check"], "").code, 0);

    let again = dir.path().join("second.token");
    let r = run(
        &cfg,
        &[
            "tokens",
            "bootstrap-operator",
            "--token-file",
            again.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("already has an operator token"),
        "{}",
        r.stderr
    );
    assert!(!again.exists(), "no file is left behind");
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
    let r = run(
        &cfg,
        &[
            "tokens",
            "bootstrap-operator",
            "--token-file",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(r.stderr.contains("exists already"), "{}", r.stderr);
}

#[test]
fn config_problems_exit_3_with_the_promised_messages() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let r = run(&missing, &["tokens", "list"], "");
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("no config file at") && r.stderr.contains("tokenwarden demo"),
        "{}",
        r.stderr
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[instances]]\nname = \"a\"\nurl = \"http://h\"\ntoken_env = \"X\"\nretries = 3\n",
    )
    .unwrap();
    let r = run(&bad, &["tokens", "list"], "");
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("unknown field `retries`"),
        "{}",
        r.stderr
    );

    let env = dir.path().join("env.toml");
    std::fs::write(&env, "[[instances]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"TW_SURELY_UNSET_VAR\"\n").unwrap();
    let r = run(&env, &["tokens", "list"], "");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("TW_SURELY_UNSET_VAR is not set"),
        "{}",
        r.stderr
    );

    let r = run(&env, &["tokens", "list", "--kind", "bogus"], "");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown token kind `bogus`"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_demo_serves_the_cli_and_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--mcp-listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !printed.contains("Press Ctrl-C") {
        assert!(
            out.read_line(&mut printed).unwrap() > 0,
            "the demo stopped early: {printed}"
        );
    }
    let cfg = dir.path().join("tokenwarden.toml");
    assert!(
        printed.contains(&format!("export TOKENWARDEN_CONFIG={}", cfg.display())),
        "{printed}"
    );
    assert!(
        printed.contains("claude mcp add --transport http tokenwarden http://127.0.0.1:"),
        "{printed}"
    );
    let r = run(&cfg, &["tokens", "list", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<String> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"grafana-reader".to_owned()) && names.contains(&"_admin".to_owned()),
        "{names:?}"
    );
    let mcp_url = printed
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.ends_with("/mcp"))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(mcp_url)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 401, "the MCP endpoint wants the bearer token");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_demo_can_serve_the_discord_interactions_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |envs: &[(&str, String)]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--mcp-listen",
            "127.0.0.1:0",
            "--discord",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for v in [
            "DISCORD_APPLICATION_ID",
            "DISCORD_PUBLIC_KEY",
            "DISCORD_BOT_TOKEN",
            "DISCORD_GUILD_ID",
            "DISCORD_ROLE_ID",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    };
    let out = demo(&[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a Discord application") && err.contains("DISCORD_PUBLIC_KEY"),
        "{err}"
    );

    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let envs = [
        ("DISCORD_APPLICATION_ID", "42".to_owned()),
        (
            "DISCORD_PUBLIC_KEY",
            hex::encode(key.verifying_key().to_bytes()),
        ),
        ("DISCORD_BOT_TOKEN", "demo-bot-token".to_owned()),
        ("DISCORD_GUILD_ID", "500".to_owned()),
        ("DISCORD_ROLE_ID", "10".to_owned()),
    ];
    let mut child = demo(&envs);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let endpoint = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the demo stopped early"
        );
        if let Some(rest) = line.split("interactions endpoint listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (unsigned, pong) = rt.block_on(async {
        let http = reqwest::Client::new();
        let unsigned = http
            .post(&endpoint)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status();
        let body = r#"{"id":"1","application_id":"42","type":1,"token":"t","version":1}"#;
        let ts = chrono::Utc::now().timestamp();
        let sig = hex::encode(
            ed25519_dalek::Signer::sign(&key, format!("{ts}{body}").as_bytes()).to_bytes(),
        );
        let pong = http
            .post(&endpoint)
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts.to_string())
            .body(body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (unsigned, pong)
    });
    assert_eq!(unsigned, 401);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pong).unwrap()["type"],
        1
    );
    let config = std::fs::read_to_string(dir.path().join("tokenwarden.toml")).unwrap();
    assert!(
        config.contains("[discord]") && config.contains("bot_token_env = \"DISCORD_BOT_TOKEN\""),
        "{config}"
    );
    assert!(
        !config.contains("demo-bot-token"),
        "the bot token stays in the environment"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_runs_mcp_and_the_discord_endpoint_over_one_core() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[mcp.http.clients]]\nname = \"t\"\ntoken_file = \"mcp.token\"\n\n[discord]\napplication_id = \"42\"\npublic_key = \"{}\"\n\
         bot_token_file = \"discord.token\"\napi_base = \"http://127.0.0.1:9\"\n",
        hex::encode(key.verifying_key().to_bytes())
    ));
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(dir.path().join("mcp.token"), "twmcp_serve").unwrap();
    std::fs::write(dir.path().join("discord.token"), "bot").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--http",
            "127.0.0.1:0",
            "--interactions",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut mcp, mut discord) = (None, None);
    while mcp.is_none() || discord.is_none() {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve stopped early"
        );
        if let Some(url) = line
            .split("listening on ")
            .nth(1)
            .map(|u| u.trim().to_owned())
        {
            if url.ends_with("/mcp") {
                mcp = Some(url)
            } else {
                discord = Some(url)
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async {
        let http = reqwest::Client::new();
        let a = http.post(mcp.unwrap()).send().await.unwrap().status();
        let b = http
            .post(discord.unwrap())
            .body("{}")
            .send()
            .await
            .unwrap()
            .status();
        (a, b)
    });
    assert_eq!(
        statuses,
        (
            reqwest::StatusCode::UNAUTHORIZED,
            reqwest::StatusCode::UNAUTHORIZED
        )
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Creates tokens `names` and asks to delete each as MCP client `laptop` would, under `mode`,
/// through the store in `dir` (as another process sharing it does); the pending ids.
pub fn ask_elsewhere(
    dir: &Path,
    sim_url: &str,
    operator: &str,
    names: &[&str],
    mode: tokenwarden::gate::GateMode,
) -> Vec<String> {
    ask_elsewhere_knowing(
        dir,
        sim_url,
        operator,
        names,
        mode,
        tokenwarden::people::People::default(),
    )
}

/// [`ask_elsewhere`] by an MCP client `laptop` that `people` may map to a person.
pub fn ask_elsewhere_knowing(
    dir: &Path,
    sim_url: &str,
    operator: &str,
    names: &[&str],
    mode: tokenwarden::gate::GateMode,
    people: tokenwarden::people::People,
) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let op = tokenwarden::tokens::RawToken::new(operator.to_owned());
    rt.block_on(async {
        let backend = std::sync::Arc::new(
            tokenwarden::influx::InfluxClient::new(tokenwarden::influx::ClientOptions {
                url: sim_url.to_owned(),
                token: Some(op),
                timeout: std::time::Duration::from_secs(5),
                ca_file: None,
            })
            .unwrap(),
        );
        let store = tokenwarden::store::Store::open(&dir.join("tokenwarden.db")).unwrap();
        let svc = tokenwarden::service::TokenService::new(
            vec![(crate::support::instance("local", None, &[], false), backend)],
            None,
            store,
            tokenwarden::service::Clock::System,
            std::time::Duration::from_secs(300),
        )
        .with_people(people);
        let actor = tokenwarden::actor::Actor::mcp_http("laptop", "claude");
        let mut ids = vec![];
        for name in names {
            let token = tokenwarden::tokens::TokenName::parse_new(name).unwrap();
            let new = tokenwarden::tokens::NewToken {
                name: token.clone(),
                spec: tokenwarden::tokens::TokenSpec::Admin,
                expiry: tokenwarden::tokens::Expiry::Never,
            };
            svc.create(&actor, None, new, &crate::support::Recorder::default())
                .await
                .unwrap();
            let gate = tokenwarden::service::GateRequest {
                mode: mode.clone(),
                ttl: Some(std::time::Duration::from_secs(600)),
                reason: Some("rotation".into()),
            };
            ids.push(
                svc.request_delete(&actor, None, &token, gate)
                    .await
                    .unwrap()
                    .pending
                    .id
                    .to_string(),
            );
        }
        ids
    })
}

/// A simulator and a config, and the ids of two deletes (`doomed`, then `spared`) that another
/// process (an MCP server under approve_deletes) asked for approval through the shared store.
fn two_deletes_asked_elsewhere() -> (tempfile::TempDir, SimProcess, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    let op = std::fs::read_to_string(&token_file).unwrap();
    let ids = ask_elsewhere(
        dir.path(),
        &sim.url,
        op.trim(),
        &["doomed", "spared"],
        tokenwarden::gate::GateMode::Approvals {
            required: 1,
            allow_self: false,
            approve_from: None,
        },
    );
    (dir, sim, cfg, ids)
}

#[test]
fn approvals_from_another_process_are_approved_on_the_cli() {
    let (_dir, _sim, cfg, ids) = two_deletes_asked_elsewhere();
    let r = run(&cfg, &["approvals", "list"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&ids[0])
            && r.stdout.contains("delete token `doomed`")
            && r.stdout.contains("rotation"),
        "{}",
        r.stdout
    );
    let r = run(&cfg, &["approvals", "approve", &ids[0]], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("deleted token `doomed`"), "{}", r.stdout);
    let r = run(
        &cfg,
        &["approvals", "reject", &ids[1], "--reason", "still used"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&cfg, &["approvals", "approve", &ids[1]], "");
    assert_eq!(
        r.code, 7,
        "a rejected action cannot be approved: {}",
        r.stderr
    );
    let r = run(&cfg, &["approvals", "approve", "nonsense"], "");
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = run(&cfg, &["tokens", "list", "--json"], "");
    assert!(
        !r.stdout.contains("doomed") && r.stdout.contains("spared"),
        "{}",
        r.stdout
    );
}

/// `--json` on `approvals approve` and `reject` prints one JSON object, as every other command
/// with `--json` does.
#[test]
fn approvals_approve_and_reject_answer_in_json_when_asked() {
    let (_dir, _sim, cfg, ids) = two_deletes_asked_elsewhere();
    let json = |args: &[&str]| -> serde_json::Value {
        let r = run(&cfg, args, "");
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
    };
    let approved = json(&["approvals", "approve", &ids[0], "--json"]);
    assert_eq!(
        approved,
        serde_json::json!({"approved": ids[0], "deleted": "doomed", "instance": "local"})
    );
    let rejected = json(&["approvals", "reject", &ids[1], "--json"]);
    assert_eq!(rejected["rejected"], ids[1].as_str(), "{rejected}");
    assert!(
        rejected["operation"]
            .as_str()
            .is_some_and(|o| o.contains("spared")),
        "{rejected}"
    );
}

#[test]
fn prune_expired_shows_the_list_then_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&[
        "--operator-token-file",
        token_file.to_str().unwrap(),
        "--seed-tokens",
        "9",
    ]);
    let cfg = write_config(dir.path(), &sim.url);
    let r = run(&cfg, &["tokens", "prune-expired"], "no\n");
    assert_eq!(r.code, 7, "anything but `prune` declines: {}", r.stderr);
    assert!(
        r.stdout.contains("load-000003") && r.stdout.contains("3 tokens (0 active, 3 expired)"),
        "{}",
        r.stdout
    );
    let r = run(&cfg, &["tokens", "prune-expired"], "prune\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Deleted 3 expired tokens"),
        "{}",
        r.stdout
    );
    let r = run(
        &cfg,
        &["tokens", "list", "--status", "expired", "--json"],
        "",
    );
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed["tokens"], serde_json::json!([]));
    let r = run(&cfg, &["tokens", "list", "--json", "--all"], "");
    let all: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        all["tokens"].as_array().unwrap().len(),
        7,
        "_admin and the 6 unexpired seeds"
    );
}

#[test]
fn seeded_databases_are_all_there_is_and_show_their_details() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&[
        "--edition",
        "enterprise",
        "--seed-databases",
        "a,b",
        "--operator-token-file",
        token_file.to_str().unwrap(),
    ]);
    let cfg = write_config(dir.path(), &sim.url);
    let r = run(&cfg, &["databases", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["databases"],
        serde_json::json!(["a", "b"]),
        "no `metrics` unless asked for"
    );
    assert_eq!(
        v["details"][0],
        serde_json::json!({"name": "a", "retention_period": "indefinite", "retention_period_secs": null, "tables": 0})
    );
}

#[test]
fn config_errors_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "apiv3_c0nfigSecretThatMustNotShow";
    let cases = [
        // A TOML syntax error on the secret's own line: TOML quotes the line.
        format!("[store]\npath = \"tw.db\"\n[[instances]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\ninfluxdb_token = \"{secret}\" oops\n"),
        // An unknown key holding a secret: serde names the key and TOML quotes the line.
        format!("[store]\npath = \"tw.db\"\n[[instances]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"t\"\ninfluxdb_token = \"{secret}\"\n"),
        // A Discord bot token on a line with a type error.
        "[store]\npath = \"tw.db\"\n[discord]\nbot_token = 5\npublic = \"MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz012345\" x\n".to_owned(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let r = run(&cfg, &["tokens", "list"], "");
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            !r.stderr.contains("c0nfigSecret") && !r.stderr.contains("GaBcDe.abcdef"),
            "case {i}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("<redacted>"), "case {i}: {}", r.stderr);
    }
    // A token pasted where a variable's name belongs is not echoed as "variable apiv3_... is not set".
    let cfg = dir.path().join("env.toml");
    std::fs::write(
        &cfg,
        format!("[store]\npath = \"tw.db\"\n[[instances]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"{secret}\"\n"),
    )
    .unwrap();
    let r = run(&cfg, &["tokens", "list"], "");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stderr.contains("c0nfigSecret"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("token_env must name an environment variable"),
        "{}",
        r.stderr
    );
}

/// Creates admin tokens on the simulator behind tokenwarden's back, as another InfluxDB client could.
pub fn create_outside(sim_url: &str, operator: &str, names: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        for name in names {
            let status = http
                .post(format!("{sim_url}/api/v3/configure/token/named_admin"))
                .bearer_auth(operator)
                .json(&serde_json::json!({ "token_name": name }))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, reqwest::StatusCode::CREATED, "{name:?}");
        }
    });
}

#[test]
fn hostile_names_are_shown_escaped_and_odd_names_can_still_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    let operator = std::fs::read_to_string(&token_file).unwrap();
    // Clears the screen, hides what follows, writes the clipboard (OSC 52), forges a row.
    let hostile = "x\u{1b}[2J\u{1b}[H\u{1b}[8m\u{1b}]52;c;cHduZWQ=\u{7}\nadmin-forged";
    let padded = " padded";
    let long = "l".repeat(300);
    create_outside(&sim.url, operator.trim(), &[hostile, padded, &long]);

    let r = run(&cfg, &["tokens", "list"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'),
        "no raw escape reaches the terminal: {:?}",
        r.stdout
    );
    assert!(r.stdout.contains("x\\x1b[2J"), "{}", r.stdout);
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.trim_start_matches(['│', ' ']).starts_with("admin-forged")),
        "a newline in a name forges no row: {}",
        r.stdout
    );

    // Names tokenwarden would never create are still deleted by their exact name.
    for name in [padded, long.as_str(), hostile] {
        let r = run(&cfg, &["tokens", "delete", name, "--yes"], "");
        assert_eq!(r.code, 0, "{name:?}: {}", r.stderr);
        assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
        assert_eq!(
            r.stdout.lines().count(),
            1,
            "a name adds no line: {:?}",
            r.stdout
        );
    }
    let r = run(&cfg, &["tokens", "list", "--json"], "");
    let names: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(names, ["_admin"], "{names:?}");
}

#[test]
fn the_demo_writes_only_into_a_new_private_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let demo = |folder: &Path| {
        Command::new(BIN)
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--mcp-listen",
                "127.0.0.1:0",
                "--dir",
            ])
            .arg(folder)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A folder with a planted link where the config goes: refused, the link's target untouched.
    let planted = dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("tokenwarden.toml")).unwrap();
    let out = demo(&planted);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // The folder itself a link: refused.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
    let stderr = String::from_utf8_lossy(&demo(&link).stderr).into_owned();
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!dir.path().join("elsewhere").exists());

    // A new folder is made private before anything is written into it.
    let fresh = dir.path().join("fresh");
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--mcp-listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(&fresh)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !printed.contains("Press Ctrl-C") {
        assert!(
            out.read_line(&mut printed).unwrap() > 0,
            "the demo stopped early: {printed}"
        );
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("tokenwarden.toml")), 0o600);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_secret_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    let r = run(&cfg, &["tokens", "list"], "");
    assert!(
        !r.stderr.contains("other users"),
        "0600 is fine: {}",
        r.stderr
    );
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&cfg, &["tokens", "list"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("can be read by other users") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    crate::support::assert_no_token("the warning", &r.stderr);
}

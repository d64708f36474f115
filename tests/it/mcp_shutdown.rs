//! Stopping the built MCP server withdraws every token whose reveal link was never opened: the
//! stdio server on stdin EOF, SIGTERM, SIGHUP and SIGINT, the HTTP server on SIGHUP; and keeps
//! what was delivered just before. Each test prints how long the process took to exit, for the
//! record; none asserts on it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{BIN, SimProcess, run, simulate, write_config};
use crate::support::assert_no_token;

/// A guard against a hung server, not an expectation: exits take well under a second.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A simulator and a config pointing at it, in a temporary folder.
struct Setup {
    _dir: tempfile::TempDir,
    _sim: SimProcess,
    cfg: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let cfg = write_config(dir.path(), &sim.url);
    Setup {
        _dir: dir,
        _sim: sim,
        cfg,
    }
}

/// Collects a child's stderr on a thread, so the pipe never fills.
fn collect(stderr: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    })
}

/// Waits for the child to exit (bounded by [`EXIT_DEADLINE`]) and says how long it took. A
/// thread blocks in `waitid` with `WNOWAIT`, which wakes at the exit without collecting it, so
/// `child` still reaps its own status.
fn wait_exit(child: &mut Child, since: Instant, what: &str) -> ExitStatus {
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: `info` is a zeroed `siginfo_t` that `waitid` fills in; nothing else is touched.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        let _ = exited.send(r);
    });
    if exit
        .recv_timeout(EXIT_DEADLINE.saturating_sub(since.elapsed()))
        .is_err()
    {
        let _ = child.kill();
        panic!("the MCP server did not exit within {EXIT_DEADLINE:?} after {what}");
    }
    let status = child.wait().unwrap();
    eprintln!(
        "mcp_shutdown: {what} -> exit in {:?} ({status})",
        since.elapsed()
    );
    status
}

/// Asserts that `name` no longer exists and that the audit log records its withdrawal.
fn assert_withdrawn(cfg: &Path, name: &str) {
    let r = run(cfg, &["tokens", "list", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        !listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == name),
        "the undelivered token {name} still exists: {listed}"
    );
    let r = run(cfg, &["audit", "--json", "--limit", "100"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_token("the audit log", &r.stdout);
    let audit: Value = serde_json::from_str(&r.stdout).unwrap();
    let withdrawn = audit.as_array().unwrap().iter().any(|e| {
        e["token_name"] == name
            && e["outcome"] == "rolled_back"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("MCP server stopped"))
    });
    assert!(withdrawn, "no rolled_back record for {name}: {audit:#}");
}

/// `tokenwarden mcp` on pipes, spoken to one JSON-RPC message a line.
struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
}

impl StdioServer {
    fn start(cfg: &Path) -> Self {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = Some(collect(child.stderr.take().unwrap()));
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The response to request `id`, skipping notifications and server requests.
    fn response(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the server closed stdout before answering {id}");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    /// Initializes a session (no elicitation) and creates admin token `name`, leaving its
    /// reveal link unopened.
    fn create_unopened(&mut self, name: &str) {
        self.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "shutdown-test", "version": "0"}}}),
        );
        let init = self.response(1);
        assert!(init.get("result").is_some(), "{init}");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        self.send(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "create_admin_token", "arguments": {"name": name}}}),
        );
        let created = self.response(2);
        let url = &created["result"]["structuredContent"]["secret_handoff"]["reveal_url"];
        assert!(url.is_string(), "a reveal link was made: {created}");
        assert_ne!(created["result"]["isError"], true, "{created}");
    }

    /// Waits for the exit after `what` happened at `since`, and checks the logs held no secret.
    /// SIGKILL leaves no chance to withdraw: the next process on the store must.
    fn exited(mut self, since: Instant, what: &str) {
        let status = wait_exit(&mut self.child, since, what);
        let logs = self.stderr.take().unwrap().join().unwrap();
        assert!(status.success(), "{what}: exit {status}; logs:\n{logs}");
        assert_no_token("the MCP server's stderr", &logs);
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Creates a token over stdio, stops the server with `stop`, and checks the token is withdrawn.
fn stdio_withdraws_on(what: &str, name: &str, stop: impl FnOnce(&mut StdioServer)) {
    let s = setup();
    let mut server = StdioServer::start(&s.cfg);
    server.create_unopened(name);
    let since = Instant::now();
    stop(&mut server);
    server.exited(since, what);
    assert_withdrawn(&s.cfg, name);
}

#[test]
fn stdio_withdraws_unopened_links_when_the_client_closes_stdin() {
    stdio_withdraws_on("stdin EOF", "eof-bot", |server| {
        drop(server.stdin.take());
    });
}

#[test]
fn stdio_withdraws_unopened_links_on_sigterm() {
    stdio_withdraws_on("SIGTERM", "term-bot", |server| {
        signal(&server.child, libc::SIGTERM);
    });
}

#[test]
fn stdio_withdraws_unopened_links_on_sighup() {
    stdio_withdraws_on("SIGHUP", "hup-bot", |server| {
        signal(&server.child, libc::SIGHUP);
    });
}

#[test]
fn a_killed_stdio_server_leaves_its_unopened_link_to_the_next_process() {
    let s = setup();
    let mut server = StdioServer::start(&s.cfg);
    server.create_unopened("kill-bot");
    signal(&server.child, libc::SIGKILL);
    let status = server.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // Any next command that talks to InfluxDB settles the dead server's link: it died with it.
    let r = run(&s.cfg, &["tokens", "list", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("kill-bot"), "{}", r.stdout);
    let r = run(&s.cfg, &["audit", "--json", "--limit", "100"], "");
    let audit: Value = serde_json::from_str(&r.stdout).unwrap();
    let withdrawn = audit.as_array().unwrap().iter().any(|e| {
        e["token_name"] == "kill-bot"
            && e["outcome"] == "rolled_back"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("link died with the tokenwarden that made it"))
    });
    assert!(withdrawn, "{audit:#}");
}

#[test]
fn stdio_withdraws_unopened_links_on_sigint() {
    stdio_withdraws_on("SIGINT", "int-bot", |server| {
        signal(&server.child, libc::SIGINT);
    });
}

/// The JSON-RPC message answering `id` in a streamable HTTP reply (plain JSON or SSE).
fn rpc_reply(body: &str, id: u64) -> Value {
    let messages: Vec<Value> = match serde_json::from_str::<Value>(body) {
        Ok(v) => vec![v],
        Err(_) => body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect(),
    };
    messages
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no reply to {id} in {body}"))
}

#[tokio::test]
async fn http_withdraws_unopened_links_on_sighup() {
    let s = setup();
    let mut text = std::fs::read_to_string(&s.cfg).unwrap();
    text.push_str("\n[mcp.http]\nlisten = \"127.0.0.1:0\"\nallow_no_auth = true\n");
    std::fs::write(&s.cfg, text).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.cfg)
        .args(["mcp", "--http"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no address printed"
        );
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let logs = collect(stderr);

    let http = reqwest::Client::new();
    let post = |session: Option<&str>, body: Value| {
        let mut rb = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(id) = session {
            rb = rb.header("mcp-session-id", id);
        }
        rb.body(body.to_string()).send()
    };
    let r = post(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "shutdown-test", "version": "0"}}}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    rpc_reply(&r.text().await.unwrap(), 1);
    let r = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "create_admin_token", "arguments": {"name": "http-hup-bot"}}}),
    )
    .await
    .unwrap();
    let created = rpc_reply(&r.text().await.unwrap(), 2);
    let link = &created["result"]["structuredContent"]["secret_handoff"]["reveal_url"];
    assert!(link.is_string(), "a reveal link was made: {created}");

    let since = Instant::now();
    signal(&child, libc::SIGHUP);
    let status = wait_exit(&mut child, since, "SIGHUP (mcp --http)");
    let logs = logs.join().unwrap();
    assert!(status.success(), "exit {status}; logs:\n{logs}");
    assert_no_token("the MCP server's stderr (http)", &logs);
    assert_withdrawn(&s.cfg, "http-hup-bot");
}

/// A secret whose page has just reached the browser when the client closes stdin stays
/// delivered: the server waits for the journal to record it (slowed here, as a busy store slows
/// it) before exiting, instead of leaving the token for recovery to withdraw as in doubt.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_opened_just_before_stdin_closes_stays_delivered() {
    let port = crate::private_delivery::free_port();
    let f = crate::identity::fixture(&format!("\n[mcp]\nreveal_listen = \"127.0.0.1:{port}\"\n"));
    let tw =
        f.tw.env("TOKENWARDEN_TEST_PAUSE", "create:marking-delivered")
            .env("TOKENWARDEN_TEST_PAUSE_MS", "500");
    let mut server = tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let created = server
        .mcp_call(1, "create_admin_token", json!({"name": "just-opened"}))
        .await;
    let url = created["result"]["structuredContent"]["secret_handoff"]["reveal_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let page = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("apiv3_"));
    server
        .wait_stderr(
            |l| l.contains("paused at create:marking-delivered"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|| panic!("never paused: {}", server.seen()));
    server.close_stdin();
    let status = server.wait_exit(EXIT_DEADLINE).await;
    assert!(status.is_some_and(|s| s.success()), "{}", server.seen());
    assert!(
        crate::identity::listed(&tw, "just-opened"),
        "the delivered token was withdrawn as in doubt"
    );
    let r = tw.run(&["store", "check", "--json"], "").await;
    let check: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr));
    assert_eq!(check["unsettled_operations"], 0, "{check}");
}

//! tokenwarden's benchmarks: medians and p99 for the five scenarios in BENCHMARKS.md.
//!
//! `cargo bench --bench tokenwarden -- [overhead|concurrency|scale|startup|discord ...] [--quick]`
//! (all five when none is named); `cargo bench --bench tokenwarden -- soak [--minutes 3]` for the
//! soak test. Release builds of the binary and this program; the
//! simulator plays InfluxDB 3.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::sim::{SimSettings, Simulator};
use tokenwarden::tokens::{Edition, ListFilter, Page, RawToken, TokenBackend};

/// The tokenwarden under test: this build's, or `TOKENWARDEN_BENCH_BIN` to compare another.
fn bin() -> String {
    std::env::var("TOKENWARDEN_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tokenwarden").to_owned())
}
const MCP_TOKEN: &str = "twmcp_bench_token";

/// Latency statistics of one measured thing.
struct Stats {
    median: Duration,
    p99: Duration,
    n: usize,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let n = v.len();
    let p99 = v[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
    Stats {
        median: v[n / 2],
        p99,
        n,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn row(what: &str, s: &Stats) {
    println!(
        "  {what:<44} median {:>12}   p99 {:>12}   (n={})",
        ms(s.median),
        ms(s.p99),
        s.n
    );
}

fn verdict(what: &str, ok: bool, detail: String) {
    println!(
        "  => {what}: {detail} [{}]",
        if ok {
            "meets the target"
        } else {
            "MISSES the target"
        }
    );
}

/// A config for the simulator at `url`, with an MCP HTTP client token.
fn write_config(dir: &Path, url: &str, op: &RawToken) -> PathBuf {
    std::fs::write(dir.join("operator.token"), op.expose()).unwrap();
    std::fs::write(dir.join("mcp.token"), MCP_TOKEN).unwrap();
    let cfg = dir.join("tokenwarden.toml");
    let text = format!(
        "[store]\npath = \"tokenwarden.db\"\n\n[[instances]]\nname = \"bench\"\nurl = \"{url}\"\ntoken_file = \"operator.token\"\nedition = \"core\"\n\n\
         [mcp.http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1048576\n\n[[mcp.http.clients]]\nname = \"bench\"\ntoken_file = \"mcp.token\"\n"
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// An MCP server on stdio, spoken to line by line.
struct Stdio_ {
    child: Child,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
    next: u64,
}

impl Stdio_ {
    fn spawn(cfg: &Path) -> Self {
        let mut child = Command::new(bin())
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--log-level",
                "error",
                "mcp",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let tx = child.stdin.take().unwrap();
        let rx = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            tx,
            rx,
            next: 1,
        }
    }

    /// Writes one message in a single `write`, as an MCP client does. (`writeln!` on the bare
    /// pipe would issue a write per JSON token, waking the server dozens of times a message.)
    fn send(&mut self, msg: &Value) {
        let mut line = serde_json::to_vec(msg).unwrap();
        line.push(b'\n');
        self.tx.write_all(&line).unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.rx.read_line(&mut line).unwrap() > 0,
                "the MCP server closed stdout"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{v}");
                return v;
            }
        }
    }

    fn initialize(&mut self) {
        let params = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}});
        self.request("initialize", params);
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }
}

impl Drop for Stdio_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP session over streamable HTTP.
#[derive(Clone)]
struct HttpSession {
    http: reqwest::Client,
    url: String,
    session: String,
}

async fn post_mcp(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> (Option<String>, Option<Value>) {
    let mut rb = http
        .post(url)
        .header("authorization", format!("Bearer {MCP_TOKEN}"))
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    read_reply(rb.send().await.unwrap()).await
}

/// One `tools/call list_tokens` as a 2026-07-28 client makes it: no session, no handshake; the
/// protocol version and capabilities travel with the request.
async fn stateless_list(http: &reqwest::Client, url: &str, id: u64) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "list_tokens", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}}}});
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {MCP_TOKEN}"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_tokens")
        .json(&body)
        .send()
        .await
        .unwrap();
    match read_reply(r).await.1 {
        Some(v) if v["result"]["isError"] != true && v.get("error").is_none() => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// The session id and the JSON-RPC answer of one MCP HTTP response.
async fn read_reply(r: reqwest::Response) -> (Option<String>, Option<Value>) {
    let status = r.status();
    if !status.is_success() {
        panic!("{status}: {}", r.text().await.unwrap_or_default());
    }
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = r.text().await.unwrap();
    // An SSE stream, or (stateless with JSON responses) one JSON message.
    let msg = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .or_else(|| serde_json::from_str::<Value>(&text).ok());
    (session, msg)
}

impl HttpSession {
    async fn open(http: reqwest::Client, url: String) -> Self {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
        let (session, _) = post_mcp(&http, &url, None, &init).await;
        let session = session.expect("a session id");
        post_mcp(
            &http,
            &url,
            Some(&session),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        Self { http, url, session }
    }

    async fn ping(&self, id: u64) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
        let reply = post_mcp(&self.http, &self.url, Some(&self.session), &body).await;
        assert!(reply.1.is_some_and(|v| v.get("result").is_some()));
    }

    async fn call(&self, id: u64) -> Result<(), String> {
        self.call_tool(id, "list_tokens", json!({})).await
    }

    async fn call_tool(&self, id: u64, name: &str, arguments: Value) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        match post_mcp(&self.http, &self.url, Some(&self.session), &body)
            .await
            .1
        {
            Some(v) if v["result"]["isError"] != true && v.get("error").is_none() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }
}

/// Starts `tokenwarden mcp --http 127.0.0.1:0` and returns it with its URL (the caller kills
/// and waits for it).
#[allow(clippy::zombie_processes)]
fn spawn_http(cfg: &Path) -> (Child, String) {
    let mut child = Command::new(bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--log-level",
            "error",
            "mcp",
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the MCP HTTP server stopped"
        );
        if let Some(url) = line.split("listening on ").nth(1) {
            let url = url.trim().to_owned();
            std::thread::spawn(move || for _ in err.lines() {});
            return (child, url);
        }
    }
}

/// `tokenwarden simulate` as a child process with `seed` tokens: the process, its URL and its
/// operator token.
fn spawn_sim(dir: &Path, seed: usize) -> (Child, String, RawToken) {
    let op_file = dir.join("sim-operator.token");
    let mut child = Command::new(bin())
        .args([
            "--log-level",
            "error",
            "simulate",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--seed-tokens", &seed.to_string(), "--operator-token-file"])
        .arg(&op_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(
        out.read_line(&mut line).unwrap() > 0,
        "the simulator stopped"
    );
    let url = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .to_owned();
    std::thread::spawn(move || for _ in out.lines() {});
    let op = RawToken::new(std::fs::read_to_string(&op_file).unwrap().trim().to_owned());
    (child, url, op)
}

fn list_sql() -> Value {
    let sql = "SELECT token_id, name, created_at, description, created_by_token_id, updated_at, expiry, permissions \
               FROM system.tokens ORDER BY name, token_id LIMIT 51 OFFSET 0";
    json!({"db": "_internal", "q": sql, "format": "json", "params": {}})
}

async fn overhead(quick: bool) {
    println!(
        "\n1. Overhead of tokenwarden on one list_tokens call (1,000 tokens in the simulator)"
    );
    let n = if quick { 100 } else { 1000 };
    let dir = tempfile::tempdir().unwrap();
    // The simulator runs as its own process, as InfluxDB would, so that every path below (the
    // direct ones too) crosses a process boundary to reach it.
    let (mut sim, sim_url, op) = spawn_sim(dir.path(), 999);
    let cfg = write_config(dir.path(), &sim_url, &op);

    let http = reqwest::Client::new();
    let url = format!("{sim_url}/api/v3/query_sql");
    let health = format!("{sim_url}/health");
    let client = InfluxClient::new(ClientOptions {
        url: sim_url.clone(),
        token: Some(op.clone()),
        timeout: Duration::from_secs(10),
        ca_file: None,
    })
    .unwrap();
    let (mut server, mcp_url) = spawn_http(&cfg);
    let session = HttpSession::open(reqwest::Client::new(), mcp_url).await;
    let rt = tokio::runtime::Handle::current();
    // The eight calls take turns, so a noisy neighbour slows them alike and each overhead is
    // the median of per-round differences. Blocking pipe reads run in `block_in_place`, which
    // hands this worker's other tasks to another thread.
    let series = tokio::task::block_in_place(|| {
        let mut stdio = Stdio_::spawn(&cfg);
        stdio.initialize();
        let mut series: [Vec<Duration>; 8] = Default::default();
        for i in 0..n + 50 {
            let id = 3 * i as u64;
            let mut times = [Duration::ZERO; 8];
            let t = Instant::now();
            rt.block_on(async {
                let r = http
                    .post(&url)
                    .bearer_auth(op.expose())
                    .json(&list_sql())
                    .send()
                    .await
                    .unwrap();
                let _ = r.bytes().await.unwrap();
            });
            times[0] = t.elapsed();
            let t = Instant::now();
            let page = Some(Page {
                offset: 0,
                limit: 51,
            });
            rt.block_on(client.list_tokens(&ListFilter::default(), page, chrono::Utc::now()))
                .unwrap();
            times[1] = t.elapsed();
            let t = Instant::now();
            stdio.request("ping", json!({}));
            times[2] = t.elapsed();
            let t = Instant::now();
            let r = stdio.request(
                "tools/call",
                json!({"name": "list_tokens", "arguments": {}}),
            );
            times[3] = t.elapsed();
            assert_ne!(r["result"]["isError"], true, "{r}");
            let t = Instant::now();
            rt.block_on(session.ping(id + 1));
            times[4] = t.elapsed();
            let t = Instant::now();
            rt.block_on(session.call(id + 2)).unwrap();
            times[5] = t.elapsed();
            let t = Instant::now();
            rt.block_on(stateless_list(&session.http, &session.url, id + 3))
                .unwrap();
            times[6] = t.elapsed();
            let t = Instant::now();
            rt.block_on(async {
                let r = http.get(&health).bearer_auth(op.expose()).send().await;
                assert!(r.unwrap().status().is_success());
            });
            times[7] = t.elapsed();
            if i >= 50 {
                for (s, t) in series.iter_mut().zip(times) {
                    s.push(t);
                }
            }
        }
        series
    });
    for child in [&mut server, &mut sim] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let [
        raw,
        direct,
        ping,
        stdio,
        ping_http,
        legacy,
        stateless,
        bare_http,
    ] = series;
    row("bare HTTP exchange (simulator /health)", &stats(bare_http));
    row(
        "raw HTTP query (reqwest, no tokenwarden)",
        &stats(raw.clone()),
    );
    row("tokenwarden's client, in process", &stats(direct.clone()));
    row("MCP ping over stdio (the hop alone)", &stats(ping));
    row(
        "MCP tools/call list_tokens over stdio",
        &stats(stdio.clone()),
    );
    row(
        "MCP ping over HTTP, session (the hop alone)",
        &stats(ping_http),
    );
    row(
        "MCP list_tokens over HTTP, session (2025-11-25)",
        &stats(legacy.clone()),
    );
    row(
        "MCP list_tokens over HTTP, stateless (2026-07-28)",
        &stats(stateless.clone()),
    );
    // Judged on the larger of the two overheads: over the in-process client (which, like an MCP
    // client, parses the answer) and over the raw query (which does not).
    for (what, via_mcp) in [
        ("stdio", &stdio),
        ("HTTP, session", &legacy),
        ("HTTP, stateless", &stateless),
    ] {
        let (over_client, over_raw) = (
            paired_overhead(via_mcp, &direct),
            paired_overhead(via_mcp, &raw),
        );
        verdict(
            &format!("{what}: overhead (median of per-round differences)"),
            over_client.max(over_raw) < Duration::from_micros(500),
            format!(
                "{} over the in-process client, {} over the raw query",
                ms(over_client),
                ms(over_raw)
            ),
        );
    }
}

/// The median of `slow[i] - fast[i]`, taken round by round (zero if negative).
fn paired_overhead(slow: &[Duration], fast: &[Duration]) -> Duration {
    let mut diffs: Vec<i128> = slow
        .iter()
        .zip(fast)
        .map(|(s, f)| s.as_nanos() as i128 - f.as_nanos() as i128)
        .collect();
    diffs.sort_unstable();
    let median = diffs.get(diffs.len() / 2).copied().unwrap_or(0);
    Duration::from_nanos(median.max(0) as u64)
}

async fn concurrency(quick: bool) {
    let (sessions, calls) = if quick { (20, 20) } else { (100, 100) };
    println!("\n2. {sessions} concurrent MCP HTTP sessions x {calls} list_tokens calls");
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim.control.create_operator().unwrap();
    sim.control.seed_tokens(99);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &sim.url(), &op);
    let (mut server, url) = spawn_http(&cfg);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(sessions)
        .build()
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let s = HttpSession::open(http, url).await;
                let (mut lat, mut errors) = (vec![], 0usize);
                for i in 0..calls {
                    let t = Instant::now();
                    if s.call(i as u64 + 1).await.is_err() {
                        errors += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (vec![], 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let wall = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    let total = all.len();
    let s = stats(all);
    row("per call", &s);
    println!(
        "  throughput {:.0} calls/s over {:.2} s, {errors} errors",
        total as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
    verdict("errors", errors == 0, errors.to_string());
}

/// Runs a child to completion and returns its wall time and peak resident memory.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak memory
fn measure_child(cmd: &mut Command) -> (Duration, u64, std::process::ExitStatus) {
    let t = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid as u32, child.id());
    use std::os::unix::process::ExitStatusExt;
    (
        t.elapsed(),
        usage.ru_maxrss as u64 * 1024,
        std::process::ExitStatus::from_raw(status),
    )
}

async fn scale(quick: bool) {
    let tokens = if quick { 20_000 } else { 100_000 };
    println!(
        "\n3. Listing with {tokens} tokens in the simulator, filtered and paged (50 per page)"
    );
    let dir = tempfile::tempdir().unwrap();
    let op_file = dir.path().join("operator.token");
    let mut sim = Command::new(bin())
        .args([
            "--log-level",
            "error",
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--seed-tokens",
            &tokens.to_string(),
        ])
        .arg("--operator-token-file")
        .arg(&op_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches(';')
        .to_owned();
    let op = RawToken::new(std::fs::read_to_string(&op_file).unwrap().trim().to_owned());
    let cfg = write_config(dir.path(), &url, &op);
    let runs = if quick { 5 } else { 20 };
    let queries: [(&str, &[&str]); 3] = [
        (
            "first page, no filter",
            &["tokens", "list", "--limit", "50"],
        ),
        (
            "expired, name filter, page 3",
            &[
                "tokens", "list", "--status", "expired", "--name", "load-0", "--limit", "50",
                "--cursor", "100",
            ],
        ),
        (
            "expiring within 7 days",
            &["tokens", "list", "--expiring-within", "7d", "--limit", "50"],
        ),
    ];
    let mut peak = 0;
    for (what, args) in queries {
        let mut times = vec![];
        for _ in 0..runs {
            let (t, rss, status) =
                measure_child(Command::new(bin()).arg("--config").arg(&cfg).args(args));
            assert!(status.success(), "{what}");
            times.push(t);
            peak = peak.max(rss);
        }
        let s = stats(times);
        row(&format!("CLI (whole process): {what}"), &s);
        verdict(
            "median",
            s.median < Duration::from_millis(200),
            ms(s.median),
        );
    }
    let client = InfluxClient::new(ClientOptions {
        url,
        token: Some(op),
        timeout: Duration::from_secs(30),
        ca_file: None,
    })
    .unwrap();
    let filter = ListFilter {
        status: Some(tokenwarden::tokens::TokenStatus::Expired),
        ..Default::default()
    };
    let mut times = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        client
            .list_tokens(
                &filter,
                Some(Page {
                    offset: 1000,
                    limit: 51,
                }),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    row(
        "client in process: expired, page at offset 1000",
        &stats(times),
    );
    verdict(
        "peak memory of the tokenwarden CLI",
        peak < 64 * 1024 * 1024,
        format!("{:.1} MiB", peak as f64 / 1048576.0),
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

async fn startup(quick: bool) {
    println!("\n4. Start-up to the first tools/list answer over stdio, and idle memory");
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim.control.create_operator().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &sim.url(), &op);
    let runs = if quick { 5 } else { 30 };
    let (mut times, mut idle) = (vec![], 0);
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = Stdio_::spawn(&cfg);
        s.initialize();
        let tools = s.request("tools/list", json!({}));
        times.push(t.elapsed());
        assert!(
            tools["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );
        std::thread::sleep(Duration::from_millis(300));
        idle = idle.max(rss_of(s.child.id()));
    }
    let s = stats(times);
    row("spawn to tools/list answer", &s);
    verdict(
        "median start-up",
        s.median < Duration::from_millis(50),
        ms(s.median),
    );
    verdict(
        "idle resident memory",
        idle < 20 * 1024 * 1024,
        format!("{:.1} MiB", idle as f64 / 1048576.0),
    );
}

async fn discord(quick: bool) {
    use ed25519_dalek::{Signer, SigningKey};
    println!("\n5. Discord: time to the initial interaction response while InfluxDB takes 5 s");
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim.control.create_operator().unwrap();
    sim.control.set_latency(Duration::from_secs(5));
    let backend = Arc::new(
        InfluxClient::new(ClientOptions {
            url: sim.url(),
            token: Some(op),
            timeout: Duration::from_secs(10),
            ca_file: None,
        })
        .unwrap(),
    );
    let settings = tokenwarden::service::InstanceSettings {
        name: "bench".into(),
        read_only: false,
        protected: tokenwarden::tokens::ProtectedNames::default(),
        edition: Some(Edition::Core),
    };
    let store = tokenwarden::store::Store::open_in_memory().unwrap();
    let service = Arc::new(tokenwarden::service::TokenService::new(
        vec![(settings, backend)],
        None,
        store,
        tokenwarden::service::Clock::System,
        Duration::from_secs(300),
    ));
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut access = tokenwarden::discord::Access::default();
    access
        .roles
        .insert(tokenwarden::discord::Capability::List, vec![10]);
    let discord = tokenwarden::discord::DiscordSettings {
        application_id: 42,
        public_key: Some(key.verifying_key().to_bytes()),
        api_base: "http://127.0.0.1:9".into(),
        guild_ids: vec![],
        approvals_channel_id: None,
        approval_timeout: Duration::from_secs(900),
        required_approvals: 1,
        allow_self_approval: false,
        access,
        poll_interval: Duration::from_secs(3600),
    };
    let bot = tokenwarden::discord::Bot::new(service, discord, &RawToken::new("bench".into()));
    let app = tokenwarden::discord::interactions_router(bot).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let user = json!({"id": "1", "username": "bench", "discriminator": "0", "global_name": "bench", "avatar": null});
    let http = reqwest::Client::new();
    let runs = if quick { 5 } else { 30 };
    let mut times = vec![];
    for i in 0..runs {
        let body = json!({
            "id": (1000 + i).to_string(), "application_id": "42", "type": 2, "token": format!("t{i}"), "version": 1,
            "channel_id": "600", "guild_id": "500", "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
            "attachment_size_limit": 8_388_608, "app_permissions": "0", "authorizing_integration_owners": {}, "context": 0,
            "member": {"user": user, "roles": ["10"], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": false, "mute": false,
                "flags": 0, "permissions": "0", "nick": null, "avatar": null, "premium_since": null, "pending": false,
                "communication_disabled_until": null},
            "data": {"id": "700", "name": "token", "type": 1, "options": [{"name": "list", "type": 1, "options": []}]}
        })
        .to_string();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes());
        let t = Instant::now();
        let r = http
            .post(&url)
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts)
            .body(body)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        times.push(t.elapsed());
        assert_eq!(v["type"], 5, "deferred: {v}");
    }
    let s = stats(times);
    row("signed /token list to the deferred answer", &s);
    verdict(
        "median",
        s.median < Duration::from_millis(100),
        ms(s.median),
    );
}

/// Mixed MCP calls over HTTP for `minutes`: list, create, confirm-code delete, server info;
/// resident memory sampled every 10 s should stay flat. Not part of the default run.
async fn soak(minutes: u64) {
    println!(
        "\n6. Soak: mixed MCP calls over HTTP for {minutes} minute(s), memory sampled every 10 s"
    );
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim.control.create_operator().unwrap();
    sim.control.seed_tokens(500);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &sim.url(), &op);
    let (mut server, url) = spawn_http(&cfg);
    let pid = server.id();
    let s = HttpSession::open(reqwest::Client::new(), url).await;
    let call = |id: u64, name: &str, args: Value| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}});
    let (started, mut next_sample, mut id, mut calls, mut errors) =
        (Instant::now(), Instant::now(), 1u64, 0u64, 0u64);
    let mut samples = vec![];
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        if Instant::now() >= next_sample {
            samples.push(rss_of(pid));
            next_sample += Duration::from_secs(10);
        }
        let name = format!("soak-{id}");
        let steps = [
            call(id, "list_tokens", json!({"limit": 50})),
            call(
                id + 1,
                "create_admin_token",
                json!({"name": name, "expires_in": "1h"}),
            ),
            call(id + 2, "delete_token", json!({"name": name})),
        ];
        id += 3;
        for step in steps {
            calls += 1;
            match post_mcp(&s.http, &s.url, Some(&s.session), &step).await.1 {
                Some(v) if v["result"]["isError"] != true => {
                    let structured = &v["result"]["structuredContent"];
                    if let Some(link) = structured["secret_handoff"]["reveal_url"].as_str() {
                        calls += 1;
                        match s.http.post(link).send().await {
                            Ok(r) if r.status().is_success() => {}
                            _ => errors += 1,
                        }
                    }
                    if let Some(code) = structured["confirmation_code"].as_str() {
                        calls += 1;
                        let confirm = call(
                            id,
                            "delete_token",
                            json!({"name": name, "confirmation_code": code}),
                        );
                        id += 1;
                        if post_mcp(&s.http, &s.url, Some(&s.session), &confirm)
                            .await
                            .1
                            .is_none()
                        {
                            errors += 1;
                        }
                    }
                }
                _ => errors += 1,
            }
        }
    }
    samples.push(rss_of(pid));
    let _ = server.kill();
    let _ = server.wait();
    let mib = |b: u64| format!("{:.1}", b as f64 / 1048576.0);
    let shown: Vec<String> = samples.iter().map(|b| mib(*b)).collect();
    println!(
        "  {calls} calls, {errors} errors; resident MiB every 10 s: {}",
        shown.join(" ")
    );
    // The first third warms up (allocator arenas, SQLite's page cache, connection pools); after
    // that a steady load must not make the process grow.
    let (warm, last) = (
        samples.get(samples.len() / 3).copied().unwrap_or(0),
        samples.last().copied().unwrap_or(0),
    );
    let grew = last.saturating_sub(warm);
    verdict(
        "growth after the first third of the soak",
        grew < 2 * 1024 * 1024,
        format!("{} MiB", mib(grew)),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| named.is_empty() || named.contains(&name);
    let named_soak_only = named == ["soak"];
    let wants = |name: &str| !named_soak_only && wants(name);
    println!(
        "tokenwarden benchmarks ({} build, {})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if quick { "quick" } else { "full" }
    );
    if wants("overhead") {
        overhead(quick).await;
    }
    if wants("concurrency") {
        concurrency(quick).await;
    }
    if wants("scale") {
        scale(quick).await;
    }
    if wants("startup") {
        startup(quick).await;
    }
    if wants("discord") {
        discord(quick).await;
    }
    if named.contains(&"soak") {
        let minutes = args
            .iter()
            .position(|a| a == "--minutes")
            .and_then(|i| args.get(i + 1))
            .and_then(|m| m.parse().ok());
        soak(minutes.unwrap_or(3)).await;
    }
}

//! The processes under test: tokenwarden, its simulator, their config and memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokenwarden::sim::{RunningSim, SimSettings, Simulator};
use tokenwarden::tokens::{Edition, RawToken};

use crate::mcp_io::MCP_TOKEN;

/// The tokenwarden under test: this build's, or `TOKENWARDEN_BENCH_BIN` to compare another.
pub fn bin() -> String {
    std::env::var("TOKENWARDEN_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tokenwarden").to_owned())
}

/// A config for the simulator at `url`, with an MCP HTTP client token.
pub fn write_config(dir: &Path, url: &str, op: &RawToken) -> PathBuf {
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

/// Points the config `cfg` (from [`write_config`]) at the PostgreSQL database `url`, with a
/// link key beside it.
pub fn use_postgres(cfg: &Path, url: &str) {
    let dir = cfg.parent().unwrap();
    std::fs::write(dir.join("link.key"), "0123456789abcdef0123456789abcdef").unwrap();
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "[store]\npath = \"tokenwarden.db\"\n",
        &format!("[store]\nurl = \"{url}\"\nlink_key_file = \"link.key\"\n"),
    );
    std::fs::write(cfg, text).unwrap();
}

/// `tokenwarden --config CFG --log-level error mcp`, to which a caller adds its transport.
pub fn mcp_command(cfg: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(cfg)
        .args(["--log-level", "error", "mcp"]);
    cmd
}

/// Starts `tokenwarden mcp --http 127.0.0.1:0` and returns it with its URL (the caller kills
/// and waits for it).
#[allow(clippy::zombie_processes)]
pub fn spawn_http(cfg: &Path) -> (Child, String) {
    let mut child = mcp_command(cfg)
        .args(["--http", "127.0.0.1:0"])
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
pub fn spawn_sim(dir: &Path, seed: usize) -> (Child, String, RawToken) {
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

/// Runs a child to completion and returns its wall time and peak resident memory.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak memory
pub fn measure_child(cmd: &mut Command) -> (Duration, u64, std::process::ExitStatus) {
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

pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// An in-process simulator (Core) with an operator token and `seed` tokens.
pub async fn core_sim(seed: usize) -> (RunningSim, RawToken) {
    let sim = Simulator::new(SimSettings {
        edition: Edition::Core,
        ..Default::default()
    })
    .spawn()
    .await
    .unwrap();
    let op = sim.control.create_operator().unwrap();
    if seed > 0 {
        sim.control.seed_tokens(seed);
    }
    (sim, op)
}

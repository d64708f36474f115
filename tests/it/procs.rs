//! The built binary as a child process for crash tests: spawn it, watch its output line by line
//! without blocking the runtime, SIGKILL it at a chosen point, and run the next one to the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokenwarden::tokens::{Edition, RawToken};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::cli::{BIN, Run, write_config};
use crate::support::{self, assert_no_token};

/// A config (one instance `local`) and its operator token file in a directory, and the
/// environment every process started from it gets.
#[derive(Clone)]
pub struct Tw {
    pub config: PathBuf,
    env: Vec<(String, String)>,
    /// Run as this account (`runuser`, as root) from this copy of the binary.
    as_user: Option<(String, PathBuf)>,
}

impl Tw {
    pub fn new(dir: &Path, sim_url: &str, operator: &RawToken) -> Self {
        std::fs::write(dir.join("operator.token"), operator.expose()).unwrap();
        Self {
            config: write_config(dir, sim_url),
            env: vec![("RUST_LOG".into(), "trace".into())],
            as_user: None,
        }
    }

    /// Runs every later process as operating-system account `user`, through `runuser` (which
    /// needs root), from `bin`: a copy of the binary that account can execute.
    pub fn run_as(mut self, user: &str, bin: &Path) -> Self {
        self.as_user = Some((user.into(), bin.into()));
        self
    }

    /// Sets `key=value` for every later `spawn` and `run` (e.g. `TOKENWARDEN_TEST_PAUSE`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.as_user {
            Some((user, bin)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(bin);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts `tokenwarden --config CFG ARGS...` with its output collected line by line.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        let mut child = self.command(args).spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Proc {
            child,
            stdin,
            stdout,
            stderr,
            seen_stdout: Vec::new(),
            seen_stderr: Vec::new(),
        }
    }

    /// Runs `tokenwarden --config CFG ARGS...` to the end with `stdin` as its input, on a
    /// blocking thread; fails if stderr holds a raw token.
    pub async fn run(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.command(args).spawn().unwrap();
        let input = stdin.to_owned();
        let mut pipe = child.stdin.take().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            pipe.write_all(input.as_bytes()).unwrap();
            drop(pipe);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_no_token("stderr (logs and errors)", &r.stderr);
        r
    }
}

/// Forwards each line of `pipe` from a thread; the channel closes at end of file.
fn lines(pipe: impl Read + Send + 'static) -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running tokenwarden, SIGKILLed on drop if still alive.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: UnboundedReceiver<String>,
    stderr: UnboundedReceiver<String>,
    seen_stdout: Vec<String>,
    seen_stderr: Vec<String>,
}

/// Takes lines from `rx` into `seen` until one satisfies `pred`; `None` at the end of output
/// or after `timeout`.
async fn wait_line(
    rx: &mut UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    pred: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Option<String> {
    let wait = async {
        while let Some(line) = rx.recv().await {
            seen.push(line.clone());
            if pred(&line) {
                return Some(line);
            }
        }
        None
    };
    tokio::time::timeout(timeout, wait).await.ok().flatten()
}

impl Proc {
    /// Writes `text` to the process's stdin.
    pub fn write_stdin(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The first stdout line from now on that satisfies `pred`.
    pub async fn wait_stdout(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        wait_line(&mut self.stdout, &mut self.seen_stdout, pred, timeout).await
    }

    /// The first stderr line (logs go there) from now on that satisfies `pred`.
    pub async fn wait_stderr(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        wait_line(&mut self.stderr, &mut self.seen_stderr, pred, timeout).await
    }

    /// The stdout and stderr lines the waits have read so far, for failure messages.
    pub fn seen(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.seen_stdout.join("\n"),
            self.seen_stderr.join("\n")
        )
    }

    /// Sends `sig` (such as `libc::SIGTERM`) to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid this test spawned and has not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Reads the rest of the output until the process closes it (it exits), then reaps it;
    /// `None` if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        async fn drain(rx: &mut UnboundedReceiver<String>, seen: &mut Vec<String>) {
            while let Some(line) = rx.recv().await {
                seen.push(line);
            }
        }
        let (err, seen_err) = (&mut self.stderr, &mut self.seen_stderr);
        let (out, seen_out) = (&mut self.stdout, &mut self.seen_stdout);
        let closed = async {
            drain(err, seen_err).await;
            drain(out, seen_out).await;
        };
        tokio::time::timeout(timeout, closed).await.ok()?;
        Some(self.child.wait().unwrap())
    }

    /// The URL a server logs when `marker` (such as "interactions endpoint listening on") appears
    /// on its stderr.
    /// Lines already read are searched first, so servers may log in any order.
    pub async fn listening_url(&mut self, marker: &str) -> String {
        let earlier = self
            .seen_stderr
            .iter()
            .find(|l| l.contains(marker))
            .cloned();
        let line = match earlier {
            Some(line) => line,
            None => self
                .wait_stderr(|l| l.contains(marker), Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("no `{marker}`: {}", self.seen())),
        };
        line.split(marker).nth(1).unwrap().trim().to_owned()
    }

    /// Speaks MCP to a stdio `tokenwarden mcp`: initializes a session (no elicitation).
    pub async fn mcp_initialize(&mut self) {
        self.mcp_initialize_as("test-client", serde_json::json!({}))
            .await;
    }

    /// Initializes a session as a client named `client` declaring `capabilities`.
    pub async fn mcp_initialize_as(&mut self, client: &str, capabilities: serde_json::Value) {
        let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities,
            "clientInfo": {"name": client, "version": "0"}}});
        self.write_stdin(&format!("{init}\n"));
        self.wait_stdout(|l| l.contains("\"id\":0"), Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no answer to initialize: {}", self.seen()));
        let done = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.write_stdin(&format!("{done}\n"));
    }

    /// Calls `tool` as request `id` over stdio; the whole JSON-RPC answer.
    pub async fn mcp_call(
        &mut self,
        id: u64,
        tool: &str,
        args: serde_json::Value,
    ) -> serde_json::Value {
        let call = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        self.write_stdin(&format!("{call}\n"));
        let want = format!("\"id\":{id}");
        let line = self
            .wait_stdout(|l| l.contains(&want), Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no answer to {tool}: {}", self.seen()));
        serde_json::from_str(&line).unwrap()
    }

    /// The next JSON-RPC request or response the stdio server sends (notifications skipped).
    pub async fn mcp_next(&mut self) -> serde_json::Value {
        let line = self
            .wait_stdout(
                |l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .is_ok_and(|m| m.get("id").is_some())
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|| panic!("no message from the server: {}", self.seen()));
        serde_json::from_str(&line).unwrap()
    }

    /// Answers the server's request `id` with `result`.
    pub fn mcp_answer(&mut self, id: &serde_json::Value, result: serde_json::Value) {
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
        self.write_stdin(&format!("{answer}\n"));
    }

    /// Sends SIGKILL (no chance to clean up) and reaps the process.
    pub fn kill9(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid this test spawned and has not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The prompt on stderr, the answer on stdin and the result on stdout, seen line by line.
#[tokio::test]
async fn a_spawned_cli_is_driven_through_its_prompt() {
    let (sim, op) = support::sim(Edition::Core).await;
    sim.control.create_admin("old", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tw = Tw::new(dir.path(), &sim.url(), &op).env("RUST_LOG", "warn");

    let mut delete = tw.spawn(&["tokens", "delete", "old"]);
    let wait = Duration::from_secs(20);
    let asked = delete
        .wait_stderr(|l| l.starts_with("About to delete token"), wait)
        .await;
    assert!(asked.is_some(), "{}", delete.seen());
    delete.write_stdin("old\n");
    delete.close_stdin();
    let done = delete
        .wait_stdout(|l| l.starts_with("Deleted token `old`"), wait)
        .await;
    assert!(done.is_some(), "{}", delete.seen());
    assert_eq!(sim.control.token_names(), ["_admin"]);
}

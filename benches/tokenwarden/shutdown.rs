//! How long a stdio MCP server takes, from the client closing stdin or a signal, to withdraw an
//! unopened reveal link and exit. The Python SDK waits 2 s after closing stdin before SIGTERM.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::mcp_io::StdioServer;
use crate::procs::{core_sim, write_config};
use crate::report::{ms, row, stats, verdict};

/// How the server is told to stop.
#[derive(Clone, Copy)]
enum Stop {
    Eof,
    Signal(libc::c_int, &'static str),
}

pub async fn shutdown(quick: bool) {
    println!(
        "\nShutdown: stdin EOF or a signal, to an unopened link withdrawn and the process gone"
    );
    let (sim, op) = core_sim(0).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &sim.url(), &op);
    let runs = if quick { 5 } else { 20 };
    let stops = [
        Stop::Eof,
        Stop::Signal(libc::SIGTERM, "SIGTERM"),
        Stop::Signal(libc::SIGHUP, "SIGHUP"),
        Stop::Signal(libc::SIGINT, "SIGINT"),
    ];
    for stop in stops {
        let mut times = vec![];
        for i in 0..runs {
            let name = format!("bye-{i}-{}", times.len());
            let mut s = StdioServer::spawn(&cfg);
            s.initialize();
            s.request(
                "tools/call",
                json!({"name": "create_admin_token", "arguments": {"name": name}}),
            );
            let t = Instant::now();
            match stop {
                Stop::Eof => s.close_stdin(),
                Stop::Signal(sig, _) => {
                    // SAFETY: kill(2) on the pid of a child this benchmark spawned.
                    unsafe { libc::kill(s.child.id() as libc::pid_t, sig) };
                }
            }
            let status = s.child.wait().unwrap();
            times.push(t.elapsed());
            assert!(status.success(), "{status}");
            assert!(
                !sim.control.token_names().contains(&name),
                "the unopened link's token was withdrawn"
            );
        }
        let label = match stop {
            Stop::Eof => "stdin EOF",
            Stop::Signal(_, name) => name,
        };
        let s = stats(times);
        row(&format!("{label} to exit, link withdrawn"), &s);
        verdict(
            &format!("{label}: p99 under the 2 s the Python SDK waits"),
            s.p99 < Duration::from_secs(2),
            ms(s.p99),
        );
    }
}

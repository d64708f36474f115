//! Scenario 2: 100 concurrent MCP HTTP sessions x 100 calls.

use std::time::Instant;

use crate::mcp_io::HttpSession;
use crate::procs::{core_sim, spawn_http, write_config};
use crate::report::{row, stats, verdict};

pub async fn concurrency(quick: bool) {
    let (sessions, calls) = if quick { (20, 20) } else { (100, 100) };
    println!("\n2. {sessions} concurrent MCP HTTP sessions x {calls} list_tokens calls");
    let (sim, op) = core_sim(99).await;
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

//! Scenario 4: start-up to the first `tools/list` answer over stdio; idle memory.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::mcp_io::StdioServer;
use crate::procs::{core_sim, rss_of, write_config};
use crate::report::{ms, row, stats, verdict};

pub async fn startup(quick: bool) {
    println!("\n4. Start-up to the first tools/list answer over stdio, and idle memory");
    let (sim, op) = core_sim(0).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &sim.url(), &op);
    let runs = if quick { 5 } else { 30 };
    let (mut times, mut idle) = (vec![], 0);
    for _ in 0..runs {
        let t = Instant::now();
        let mut s = StdioServer::spawn(&cfg);
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

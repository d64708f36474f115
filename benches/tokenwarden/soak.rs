//! The soak: mixed MCP calls for minutes while resident memory is sampled.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mcp_io::{HttpSession, post_mcp};
use crate::procs::{core_sim, rss_of, spawn_http, write_config};
use crate::report::verdict;

/// Mixed MCP calls over HTTP for `minutes`: list, create, confirm-code delete, server info;
/// resident memory sampled every 10 s should stay flat. Not part of the default run.
pub async fn soak(minutes: u64) {
    println!(
        "\n6. Soak: mixed MCP calls over HTTP for {minutes} minute(s), memory sampled every 10 s"
    );
    let (sim, op) = core_sim(500).await;
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

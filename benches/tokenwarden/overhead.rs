//! Scenario 1: the overhead of one MCP `list_tokens` call over the direct query.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::tokens::{ListFilter, Page, TokenBackend};

use crate::mcp_io::{HttpSession, StdioServer, stateless_list};
use crate::procs::{spawn_http, spawn_sim, write_config};
use crate::report::{ms, paired_overhead, row, stats, verdict};

pub fn list_sql() -> Value {
    let sql = "SELECT token_id, name, created_at, description, created_by_token_id, updated_at, expiry, permissions \
               FROM system.tokens ORDER BY name, token_id LIMIT 51 OFFSET 0";
    json!({"db": "_internal", "q": sql, "format": "json", "params": {}})
}

pub async fn overhead(quick: bool) {
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
        let mut stdio = StdioServer::spawn(&cfg);
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

//! Scenario 3: listing with 100,000 tokens, filtered and paged; peak memory.

use std::process::Command;
use std::time::{Duration, Instant};

use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::tokens::{ListFilter, Page, TokenBackend};

use crate::procs::{bin, measure_child, spawn_sim, write_config};
use crate::report::{ms, row, stats, verdict};

pub async fn scale(quick: bool) {
    let tokens = if quick { 20_000 } else { 100_000 };
    println!(
        "\n3. Listing with {tokens} tokens in the simulator, filtered and paged (50 per page)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, url, op) = spawn_sim(dir.path(), tokens);
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

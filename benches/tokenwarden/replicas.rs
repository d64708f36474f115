//! Replicas: gated deletes through MCP HTTP (a request, then its confirmation with the code it
//! got) by concurrent clients, with one process on SQLite, one replica on PostgreSQL, and two
//! replicas on PostgreSQL where each client's session alternates between the replicas, so each
//! confirmation reaches the other replica than its request.
//! Deletes per second, p50 and p99 per delete, and CPU time per delete: tokenwarden's (what
//! more replicas divide) and the PostgreSQL server's (what they share).

use std::process::Child;
use std::time::Instant;

use serde_json::{Value, json};

use crate::mcp_io::HttpSession;
use crate::pg_cluster;
use crate::procs::{core_sim, spawn_http, use_postgres, write_config};
use crate::report::{ms, row, stats, verdict};

/// CPU seconds (user and system) the processes `pids` have used so far.
fn cpu_of(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks
}

/// Every process named `postgres` on this machine (the test cluster's server and backends).
fn postgres_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .collect()
}

async fn delete_call(
    s: &HttpSession,
    id: u64,
    name: &str,
    code: Option<&str>,
) -> Result<Value, String> {
    let mut arguments = json!({"name": name});
    if let Some(code) = code {
        arguments["confirmation_code"] = json!(code);
    }
    s.call_tool_value(id, "delete_token", arguments).await
}

pub async fn replicas(quick: bool) {
    let (deletes, clients) = if quick { (60, 4) } else { (400, 8) };
    println!(
        "\nReplicas: {deletes} gated deletes through MCP HTTP (request, then confirm with its code) by {clients} \
         concurrent clients"
    );
    let runs: [(&str, bool, usize); 3] = [
        ("SQLite, one process", false, 1),
        ("PostgreSQL, one replica", true, 1),
        ("PostgreSQL, two replicas", true, 2),
    ];
    for (label, on_postgres, replicas) in runs {
        let (sim, op) = core_sim(0).await;
        let names: Vec<String> = (0..deletes).map(|i| format!("victim-{i:05}")).collect();
        for n in &names {
            sim.control.create_admin(n, None).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), &sim.url(), &op);
        if on_postgres {
            let Some(url) = pg_cluster::fresh_database() else {
                println!("  {label}: skipped, no PostgreSQL here");
                continue;
            };
            use_postgres(&cfg, &url);
        }
        let mut servers: Vec<(Child, String)> = (0..replicas).map(|_| spawn_http(&cfg)).collect();
        let pids: Vec<u32> = servers.iter().map(|(c, _)| c.id()).collect();
        let pg_pids = if on_postgres {
            postgres_pids()
        } else {
            Vec::new()
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients * 2)
            .build()
            .unwrap();
        let urls: Vec<String> = servers.iter().map(|(_, u)| u.clone()).collect();
        let (cpu_before, pg_before) = (cpu_of(&pids), cpu_of(&pg_pids));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (http, urls) = (http.clone(), urls.clone());
                let mine: Vec<String> = names.iter().skip(c).step_by(clients).cloned().collect();
                tokio::spawn(async move {
                    // One MCP session, which moves to whichever replica gets its next request.
                    let first = HttpSession::open(http.clone(), urls[0].clone()).await;
                    let sessions: Vec<HttpSession> = urls
                        .iter()
                        .map(|u| HttpSession {
                            url: u.clone(),
                            ..first.clone()
                        })
                        .collect();
                    let (mut lat, mut errors) = (Vec::new(), 0usize);
                    for (k, name) in mine.iter().enumerate() {
                        let t = Instant::now();
                        let asked = &sessions[k % sessions.len()];
                        let confirmed = &sessions[(k + 1) % sessions.len()];
                        let code = delete_call(asked, 2 * k as u64 + 1, name, None)
                            .await
                            .ok()
                            .and_then(|v| v["confirmation_code"].as_str().map(str::to_owned));
                        let done = match code {
                            Some(code) => {
                                delete_call(confirmed, 2 * k as u64 + 2, name, Some(&code)).await
                            }
                            None => Err("no confirmation code".into()),
                        };
                        if let Err(e) = &done {
                            if errors == 0 {
                                eprintln!("  first error: {e}");
                            }
                            errors += 1;
                        }
                        lat.push(t.elapsed());
                    }
                    (lat, errors)
                })
            })
            .collect();
        let (mut all, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (lat, e) = t.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        let wall = started.elapsed();
        let (cpu_after, pg_after) = (cpu_of(&pids), cpu_of(&pg_pids));
        for (child, _) in &mut servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let left = names
            .iter()
            .filter(|n| sim.control.token_id(n).is_some())
            .count();
        let total = all.len();
        let s = stats(all);
        row(&format!("{label}: per delete"), &s);
        let per = |cpu: f64| cpu * 1000.0 / total.max(1) as f64;
        println!(
            "  {label}: {:.0} deletes/s over {:.2} s; CPU per delete: tokenwarden {:.2} ms{}",
            total as f64 / wall.as_secs_f64(),
            wall.as_secs_f64(),
            per(cpu_after - cpu_before),
            if on_postgres {
                format!(", PostgreSQL server {:.2} ms", per(pg_after - pg_before))
            } else {
                String::new()
            }
        );
        verdict(
            &format!("{label}: every delete done once, no errors"),
            errors == 0 && left == 0,
            format!("{errors} errors, {left} tokens left; p50 {}", ms(s.median)),
        );
    }
}

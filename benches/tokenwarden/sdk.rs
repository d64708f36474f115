//! Real SDK clients, side by side: tokenwarden and InfluxData's official MCP server over stdio on
//! one simulator, driven by the Python and TypeScript MCP SDKs (`tests/e2e/bench_sdk.*`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenwarden::tokens::RawToken;

use crate::mcp_io::StdioServer;
use crate::peers;
use crate::procs::{bin, spawn_sim, write_config};
use crate::report::{row, stats, verdict};

/// Seeded tokens, all admin tokens on Core: with the operator token, 50 admin tokens, so one
/// `list_tokens` page (limit 50) holds every token `list_admin_tokens` lists.
const SEEDED: usize = 49;
const WARMUP: usize = 50;
const OFFICIAL: &str = "node_modules/@influxdata/influxdb3-mcp-server/build/index.js";

pub async fn sdk(quick: bool) {
    println!(
        "\nReal SDK clients, side by side: tokenwarden's list_tokens and the official MCP server's \
         list_admin_tokens over stdio (50 admin tokens)"
    );
    let (rounds, profile_calls) = if quick { (100, 50) } else { (500, 200) };
    tokio::task::block_in_place(|| {
        let dir = tempfile::tempdir().unwrap();
        let (mut sim, sim_url, op) = spawn_sim(dir.path(), SEEDED);
        let cfg = write_config(dir.path(), &sim_url, &op);
        let node = peers::node();
        let entry = peers::e2e_dir().join(OFFICIAL);
        let env = json!({"INFLUX_DB_PRODUCT_TYPE": "core", "INFLUX_DB_INSTANCE_URL": sim_url,
                         "MCP_LOG_TOOL_CALLS": "false"});
        let spec = json!({
            "tokenwarden": {"command": bin(), "args": ["--config", cfg, "--log-level", "error", "mcp"]},
            "official": {"command": node, "args": [entry], "env": env,
                         "token_file": dir.path().join("operator.token")},
            "warmup": WARMUP, "rounds": rounds, "profile_calls": profile_calls, "lockstep": true,
        });
        let spec_file = dir.path().join("spec.json");
        std::fs::write(&spec_file, spec.to_string()).unwrap();
        let official = || {
            let mut cmd = Command::new(node);
            cmd.arg(&entry).env("INFLUX_DB_TOKEN", op.expose());
            for (k, v) in env.as_object().unwrap() {
                cmd.env(k, v.as_str().unwrap());
            }
            cmd
        };
        for (sdk, program, script) in [
            ("Python", peers::python(), "bench_sdk.py"),
            ("TypeScript", node.into(), "bench_sdk.mjs"),
        ] {
            let (out, bare) = run(&program, script, &spec_file, &cfg, official(), rounds, &op);
            report(sdk, &out, bare);
        }
        let _ = sim.kill();
        let _ = sim.wait();
    });
}

/// Runs one driver script in lockstep with the bench's bare JSON-RPC client: each round, the
/// bench makes the script's three calls itself (no SDK, no schema validation: the floor for each
/// call on each server), then lets the script make its round, so a noisy host slows both alike.
/// Returns the script's JSON line and the bare series. On failure it shows the script's stderr
/// with the operator token (which the official server gets) blanked out.
fn run(
    program: &Path,
    script: &str,
    spec: &Path,
    cfg: &Path,
    official: Command,
    rounds: usize,
    op: &RawToken,
) -> (Value, [Vec<Duration>; 3]) {
    let err_file = spec.with_extension(format!("{script}.stderr"));
    let mut child = Command::new(program)
        .arg(peers::e2e_dir().join(script))
        .arg(spec)
        .current_dir(peers::e2e_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let failed = |why: String| -> ! {
        let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
        panic!(
            "{script}: {why}\n{}",
            stderr.replace(op.expose(), "[operator token]")
        );
    };
    let (mut go, mut done) = (
        child.stdin.take().unwrap(),
        BufReader::new(child.stdout.take().unwrap()),
    );
    let mut tw = StdioServer::spawn(cfg);
    let mut off = StdioServer::spawn_command(official);
    tw.initialize();
    off.initialize();
    let list = json!({"name": "list_tokens", "arguments": {"kind": "admin", "limit": 50}});
    let admin = json!({"name": "list_admin_tokens", "arguments": {}});
    let help = json!({"name": "get_help", "arguments": {}});
    let mut bare: [Vec<Duration>; 3] = Default::default();
    let mut line = String::new();
    for i in 0..WARMUP + rounds {
        for (k, call) in [&list, &admin, &help].into_iter().enumerate() {
            let server = if k == 0 { &mut tw } else { &mut off };
            let t = Instant::now();
            let r = server.request("tools/call", call.clone());
            let took = t.elapsed();
            assert_ne!(r["result"]["isError"], true, "{r}");
            if i >= WARMUP {
                bare[k].push(took);
            }
        }
        line.clear();
        if go.write_all(b"\n").is_err() || done.read_line(&mut line).unwrap_or(0) == 0 {
            failed(format!("stopped in round {i}"));
        }
    }
    drop(go);
    let mut rest = String::new();
    done.read_to_string(&mut rest).unwrap();
    if !child.wait().unwrap().success() {
        failed("failed".into());
    }
    let json = rest
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_default();
    let out = serde_json::from_str(json).unwrap_or_else(|e| failed(format!("no JSON line: {e}")));
    (out, bare)
}

fn series(v: &Value) -> Vec<Duration> {
    let us = v.as_array().expect("a series of microseconds");
    us.iter()
        .map(|t| Duration::from_nanos((t.as_f64().unwrap() * 1000.0) as u64))
        .collect()
}

/// `a - b` in milliseconds, signed.
fn minus(a: Duration, b: Duration) -> String {
    format!("{:.3} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
}

fn report(sdk: &str, out: &Value, bare: [Vec<Duration>; 3]) {
    let (p, l) = (&out["protocols"], &out["listed"]);
    println!(
        "  {} (protocol: tokenwarden {}, official {}); listed {} and {} tokens",
        out["sdk"].as_str().unwrap_or(sdk),
        p["tokenwarden"].as_str().unwrap_or("?"),
        p["official"].as_str().unwrap_or("?"),
        l["tokenwarden"],
        l["official"]
    );
    assert_eq!(
        l["same_names"], true,
        "the two servers listed different tokens: {l}"
    );
    let us = &out["us"];
    let [tw, off, help] =
        ["tokenwarden_list", "official_list", "official_help"].map(|k| stats(series(&us[k])));
    let [bare_tw, bare_off, bare_help] = bare.map(stats);
    row("tokenwarden list_tokens, via the SDK", &tw);
    let check = stats(series(&us["tokenwarden_output_schema"]));
    row("  of which the SDK's output-schema check", &check);
    row("official list_admin_tokens, via the SDK", &off);
    row("official get_help, via the SDK", &help);
    row("tokenwarden list_tokens, bare JSON-RPC", &bare_tw);
    row("official list_admin_tokens, bare JSON-RPC", &bare_off);
    row("official get_help, bare JSON-RPC", &bare_help);
    let ratio = tw.median.as_secs_f64() / off.median.as_secs_f64();
    verdict(
        &format!("{sdk}: tokenwarden / official, p50 (target 0.6, stretch 0.5)"),
        ratio <= 0.6,
        format!("{ratio:.2}"),
    );
    println!(
        "  {sdk}'s fixed cost per call (SDK p50 - bare p50, no output schema): get_help {}, \
         list_admin_tokens {}; on tokenwarden's list_tokens: {}",
        minus(help.median, bare_help.median),
        minus(off.median, bare_off.median),
        minus(tw.median, bare_tw.median)
    );
    if let Some(parts) = out["parts_us"].as_object() {
        let each: Vec<String> = parts
            .iter()
            .map(|(k, v)| match k.strip_suffix("_bytes") {
                Some(what) => format!("{what} {v} bytes"),
                None => format!("{k} {:.0} us", v.as_f64().unwrap_or(0.0)),
            })
            .collect();
        println!(
            "  {sdk}, one list_tokens answer, each step alone (median): {}",
            each.join(", ")
        );
    }
    if let Some(groups) = out["profile"]["groups_us"].as_object() {
        let prof = &out["profile"];
        println!(
            "  {sdk}, cProfile over {} list_tokens calls ({:.0} us per call, profiler included):",
            prof["calls"],
            prof["per_call_us"].as_f64().unwrap_or(0.0)
        );
        for (k, v) in groups {
            println!("    {:>8.0} us  {k}", v.as_f64().unwrap_or(0.0));
        }
        let top = prof["top_tottime_us"].as_array().into_iter().flatten();
        let top: Vec<String> = top
            .take(6)
            .map(|e| {
                format!(
                    "{} {:.0} us",
                    e[0].as_str().unwrap_or("?"),
                    e[1].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!("    top by own time: {}", top.join("; "));
    }
}

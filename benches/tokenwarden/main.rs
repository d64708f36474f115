//! tokenwarden's benchmarks: medians and p99 for the five scenarios in BENCHMARKS.md.
//!
//! `cargo bench --bench tokenwarden -- [overhead|concurrency|scale|startup|discord ...] [--quick]`
//! (all five when none is named); `cargo bench --bench tokenwarden -- soak [--minutes 3]` for the
//! soak test; `-- shutdown` for how fast a stopping stdio server withdraws; `-- recovery` for what
//! settling 1,000 operations left by a dead process costs; `-- sdk` for real MCP SDK clients
//! against tokenwarden and the official server; `-- replicas` for gated deletes with one and
//! two replicas on PostgreSQL beside SQLite (a throwaway cluster, as the tests start one). Release builds of the binary and this
//! program; the simulator plays InfluxDB 3.

mod concurrency;
mod discord;
mod mcp_io;
mod overhead;
// The test peers (Python venv, npm packages) are installed in one place, shared with the tests.
#[path = "../../tests/it/peers.rs"]
mod peers;
// The tests' PostgreSQL server: TOKENWARDEN_TEST_DATABASE_URL, or a throwaway cluster.
#[allow(dead_code)]
#[path = "../../tests/it/pg_cluster.rs"]
mod pg_cluster;
mod procs;
mod recovery;
mod replicas;
mod report;
mod scale;
mod sdk;
mod shutdown;
mod soak;
mod startup;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| named.is_empty() || named.contains(&name);
    let named_soak_only = named == ["soak"];
    let wants = |name: &str| !named_soak_only && wants(name);
    println!(
        "tokenwarden benchmarks ({} build, {})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if quick { "quick" } else { "full" }
    );
    if wants("overhead") {
        overhead::overhead(quick).await;
    }
    if wants("concurrency") {
        concurrency::concurrency(quick).await;
    }
    if wants("scale") {
        scale::scale(quick).await;
    }
    if wants("startup") {
        startup::startup(quick).await;
    }
    if wants("discord") {
        discord::discord(quick).await;
    }
    if named.contains(&"shutdown") {
        shutdown::shutdown(quick).await;
    }
    if named.contains(&"recovery") {
        recovery::recovery(quick).await;
    }
    if named.contains(&"replicas") {
        replicas::replicas(quick).await;
    }
    if named.contains(&"sdk") {
        sdk::sdk(quick).await;
    }
    if named.contains(&"soak") {
        let minutes = args
            .iter()
            .position(|a| a == "--minutes")
            .and_then(|i| args.get(i + 1))
            .and_then(|m| m.parse().ok());
        soak::soak(minutes.unwrap_or(3)).await;
    }
}

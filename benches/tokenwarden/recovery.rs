//! What recovery costs when a dead process left many operations unfinished: creates whose
//! tokens exist in InfluxDB but whose secrets reached nobody, settled (each token withdrawn, by
//! id) by the next process, in rounds of 100 claims: one round before a CLI command's own work,
//! the whole backlog at a server's next maintenance tick. The simulator runs as its own process,
//! so this process's CPU time is tokenwarden's.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokenwarden::actor::Actor;
use tokenwarden::app::{Credentials, build_service};
use tokenwarden::config::Config;
use tokenwarden::influx::{ClientOptions, InfluxClient};
use tokenwarden::store::{JournalEntry, JournalOp, Owner, Stage, Store};
use tokenwarden::tokens::{ListFilter, TokenBackend, TokenName};

use crate::procs::{spawn_sim, use_postgres, write_config};
use crate::report::ms;

/// This process's user and system CPU time so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A process on this host that has exited: its claims are free at once.
fn dead_owner() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner::local(pid)
}

pub async fn recovery(quick: bool) {
    let n = if quick { 200 } else { 1000 };
    println!(
        "\nRecovery: {n} creates left unfinished by a dead process (tokens made, secrets delivered to nobody)"
    );
    recovery_on(n, None).await;
    match crate::pg_cluster::fresh_database() {
        Some(url) => recovery_on(n, Some(url)).await,
        None => println!("  on PostgreSQL: skipped, no PostgreSQL here"),
    }
}

/// The backlog of `n` on SQLite, or on the PostgreSQL database at `postgres`.
async fn recovery_on(n: usize, postgres: Option<String>) {
    println!(
        "  on {}:",
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, url, op) = tokio::task::block_in_place(|| spawn_sim(dir.path(), 0));
    let cfg = write_config(dir.path(), &url, &op);
    if let Some(db) = &postgres {
        use_postgres(&cfg, db);
    }
    let config = Config::load(&cfg).unwrap();
    let client = InfluxClient::new(ClientOptions {
        url: url.clone(),
        token: Some(op.clone()),
        timeout: Duration::from_secs(30),
        ca_file: None,
    })
    .unwrap();
    let dead = Store::connect(&config.store)
        .unwrap()
        .as_owner(dead_owner());
    for i in 0..n {
        let name = TokenName::parse_new(&format!("orphan-{i:05}")).unwrap();
        let highest_before = client.highest_token_id().await.unwrap();
        let made = client.create_admin_token(&name, None).await.unwrap();
        let op = JournalOp::Create {
            name,
            highest_before,
            id: Some(made.token.id),
        };
        let mut entry = JournalEntry::new("bench", &Actor::system(), op, Utc::now());
        entry.stage = Stage::Created;
        dead.journal_begin(&entry).unwrap();
    }
    let orphans = ListFilter {
        name_contains: Some("orphan-".into()),
        ..ListFilter::default()
    };
    let count = |c: &InfluxClient| {
        let c = c.clone();
        let f = orphans.clone();
        async move { c.list_tokens(&f, None, Utc::now()).await.unwrap().len() }
    };
    assert_eq!(count(&client).await, n);

    let service = build_service(&config, Credentials::Configured).unwrap();
    // A CLI command settles one round before its own work; a server settles the whole backlog
    // at its next maintenance tick (`recover_backlog`), round after round.
    let (wall, cpu) = (Instant::now(), cpu_time());
    let first = service.recover().await;
    let first_round = wall.elapsed();
    let rest = service
        .recover_backlog(&tokio_util::sync::CancellationToken::new())
        .await;
    let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
    assert_eq!(
        first.left + rest.left,
        0,
        "InfluxDB answered every question"
    );
    assert_eq!(first.settled + rest.settled, n, "every entry settled");
    assert_eq!(
        count(&client).await,
        0,
        "every orphaned token was withdrawn"
    );
    let per = |d: Duration| d / u32::try_from(n).unwrap();
    println!(
        "    all {n} settled: {} in all, {} per entry; tokenwarden's CPU {} in all, {} per entry",
        ms(wall),
        ms(per(wall)),
        ms(cpu),
        ms(per(cpu))
    );
    println!(
        "    a CLI command settles one round of {} before its own work: {}",
        first.settled,
        ms(first_round)
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

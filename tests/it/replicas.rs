//! Replicas sharing a PostgreSQL store: what one does, the others see and honour.

use tokenwarden::tokens::Edition;

use crate::backends::Backend;
use crate::procs::Tw;
use crate::support;

/// A regenerated operator secret reaches this process only, unless it lands in the file every
/// replica reads: on a shared store, regenerating into anything else is refused before InfluxDB
/// is asked, and regenerating into that file works for every replica.
#[tokio::test]
async fn regeneration_on_a_shared_store_goes_only_where_every_replica_reads_it() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (sim, op) = support::sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let tw = backend.configure(Tw::new(dir.path(), &sim.url(), &op));
    let own = dir.path().join("operator.token");
    let elsewhere = dir.path().join("new-operator.token");
    let regenerate_into = |file: &std::path::Path| {
        vec![
            "tokens".to_owned(),
            "regenerate-operator".into(),
            "--yes".into(),
            "--token-file".into(),
            file.display().to_string(),
        ]
    };
    let run = |tw: &Tw, args: Vec<String>| {
        let tw = tw.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tw.run(&args, "").await
        }
    };
    let regenerations = || {
        sim.control
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/regenerate"))
            .count()
    };

    let r = run(&tw, regenerate_into(&elsewhere)).await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("shared by replicas"), "{}", r.stderr);
    assert!(r.stderr.contains("which the replicas read"), "{}", r.stderr);
    assert!(!elsewhere.exists());

    let config = std::fs::read_to_string(&tw.config).unwrap();
    std::fs::write(
        &tw.config,
        config.replace(
            "token_file = \"operator.token\"",
            "token_env = \"TW_OPERATOR\"",
        ),
    )
    .unwrap();
    let from_env = tw.clone().env("TW_OPERATOR", op.expose());
    let r = run(&from_env, regenerate_into(&own)).await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("environment variable"), "{}", r.stderr);
    assert_eq!(regenerations(), 0, "InfluxDB was never asked");
    std::fs::write(&tw.config, config).unwrap();

    let r = run(&tw, regenerate_into(&own)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(regenerations(), 1);
    // Another replica is another process reading the same file.
    let r = tw.run(&["tokens", "list"], "").await;
    assert_eq!(
        r.code, 0,
        "another replica reads the new secret: {}",
        r.stderr
    );
}

//! `tokenwarden store check` and `store migrate` with the real binary: a check changes nothing,
//! a migration creates or upgrades the file once, unfinished work is counted, and a store from
//! a newer tokenwarden is refused by both with the configuration exit code.

use serde_json::{Value, json};
use tokenwarden::gate::GateMode;

use tokenwarden::tokens::Edition;

use crate::backends::Backend;
use crate::cli::ask_elsewhere;
use crate::identity::fixture;
use crate::procs::Tw;
use crate::support;

#[tokio::test(flavor = "multi_thread")]
async fn store_check_and_migrate() {
    let f = fixture("");
    let db = f.dir.path().join("tokenwarden.db");

    let r = f.tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("no file there yet"), "{}", r.stderr);
    assert!(!db.exists(), "a check creates nothing");

    let r = f.tw.run(&["store", "migrate"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("created at schema version"),
        "{}",
        r.stdout
    );
    let r = f.tw.run(&["store", "migrate"], "").await;
    assert!(
        r.stdout.contains("already at schema version"),
        "{}",
        r.stdout
    );

    let r = f.tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("(current)"), "{}", r.stdout);
    assert!(r.stdout.contains("open actions: 0"), "{}", r.stdout);

    tokio::task::block_in_place(|| {
        ask_elsewhere(
            f.dir.path(),
            &f.sim.url,
            &f.operator,
            &["waiting"],
            GateMode::Approvals {
                required: 1,
                allow_self: false,
                approve_from: None,
            },
        )
    });
    let r = f.tw.run(&["store", "check", "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["open_actions"], 1, "{v}");
    assert_eq!(v["schema_version"], v["supported_version"], "{v}");
    let current = v["schema_version"].as_i64().unwrap();
    assert_eq!(
        (&v["mcp_sessions"], &v["reveal_links"], &v["leases"]),
        (&json!(0), &json!(0), &json!([])),
        "{v}"
    );

    // A process holds the Discord gateway: the check says who, and for how long.
    let holder = tokenwarden::store::Store::open(&db).unwrap();
    holder.take_lease("discord.gateway", 60_000).unwrap();
    let r = f.tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let me = holder.owner().to_string();
    assert!(
        r.stdout.contains(&format!(
            "lease discord.gateway: held by {me} for 60 s more"
        )) || r.stdout.contains(&format!(
            "lease discord.gateway: held by {me} for 59 s more"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("MCP HTTP sessions kept: 0"),
        "{}",
        r.stdout
    );
    holder.release_lease("discord.gateway").unwrap();
    drop(holder);

    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", current + 1)
        .unwrap();
    drop(conn);
    for args in [&["store", "check"][..], &["store", "migrate"], &["audit"]] {
        let r = f.tw.run(args, "").await;
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("written by a newer tokenwarden"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// The same commands on a PostgreSQL store: an empty database is version 0 until migrated, the
/// check names the database by its URL, and a password that cannot be read, or one written into
/// the URL, is a configuration error that never shows the password.
#[tokio::test(flavor = "multi_thread")]
async fn store_check_and_migrate_on_postgres() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(url) = backend.clone() else {
        unreachable!()
    };
    let (sim, op) = support::sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let tw = backend.configure(Tw::new(dir.path(), &sim.url(), &op));

    let r = tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("store {url}: schema version 0;")),
        "{}",
        r.stdout
    );
    let r = tw.run(&["store", "migrate"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("at schema version"), "{}", r.stdout);
    let r = tw.run(&["store", "check", "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["url"], url.as_str(), "{v}");
    assert!(v.get("path").is_none(), "{v}");
    assert_eq!(v["schema_version"], v["supported_version"], "{v}");
    assert_eq!(v["open_actions"], 0, "{v}");
    assert!(
        !dir.path().join("tokenwarden.db").exists(),
        "no SQLite file on the side"
    );

    let config = std::fs::read_to_string(&tw.config).unwrap();
    let url_line = format!("url = \"{url}\"\n");
    let with = |extra: &str| {
        std::fs::write(&tw.config, config.replace(&url_line, extra)).unwrap();
    };
    with(&format!("{url_line}password_file = \"no-such-file\"\n"));
    let r = tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot read store.password_file"),
        "{}",
        r.stderr
    );
    let with_password = url.replacen("tw@", "tw:hunter2@", 1);
    with(&format!("url = \"{with_password}\"\n"));
    let r = tw.run(&["store", "check"], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("holds a password"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
}

/// A certificate authority, and a server certificate it signed for 127.0.0.1: (CA PEM,
/// certificate PEM, key PEM).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tokenwarden test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let server = server.signed_by(&server_key, &ca, &ca_key).unwrap();
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

/// `sslmode=require` encrypts and checks the server's certificate: a server whose CA is in
/// `ca_file` is used; without that CA the certificate is refused. The password comes from
/// `password_file` or `password_env`; a wrong one is refused, and no password is ever shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_store_over_tls_checks_the_certificate_and_takes_its_password_from_a_file() {
    const PASSWORD: &str = "correct-horse-battery-staple";
    let (ca, cert, key) = test_pki();
    let Some(server) = crate::pg_cluster::guarded_cluster(crate::pg_cluster::Guard {
        cert_pem: cert,
        key_pem: key,
        password: PASSWORD.into(),
    }) else {
        return;
    };
    let db = crate::pg_cluster::database_on(&server).replacen(&format!("tw:{PASSWORD}@"), "tw@", 1);
    let (sim, op) = support::sim(Edition::Core).await;
    let dir = tempfile::tempdir().unwrap();
    let tw = Backend::Postgres(format!("{db}?sslmode=require")).configure(Tw::new(
        dir.path(),
        &sim.url(),
        &op,
    ));
    let config = std::fs::read_to_string(&tw.config).unwrap();
    let with = |store: &str| {
        std::fs::write(
            &tw.config,
            config.replace("[store]\n", &format!("[store]\n{store}\n")),
        )
        .unwrap();
    };
    std::fs::write(dir.path().join("db-ca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("pg.password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(dir.path().join("wrong.password"), "guess\n").unwrap();
    let migrate = |tw: Tw| async move {
        let r = tw.run(&["store", "migrate"], "").await;
        assert!(
            !r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD),
            "{}",
            r.stderr
        );
        r
    };

    with("password_file = \"pg.password\"");
    let r = migrate(tw.clone()).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("certificate"),
        "without the CA: {}",
        r.stderr
    );

    with("ca_file = \"db-ca.pem\"\npassword_file = \"wrong.password\"");
    let r = migrate(tw.clone()).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );

    with("ca_file = \"db-ca.pem\"\npassword_file = \"pg.password\"");
    let r = migrate(tw.clone()).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = tw.run(&["tokens", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    with("ca_file = \"db-ca.pem\"\npassword_env = \"TW_PG_PASSWORD\"");
    let r = migrate(tw.clone()).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("TW_PG_PASSWORD (store.password_env) is not set"),
        "{}",
        r.stderr
    );
    let r = migrate(tw.clone().env("TW_PG_PASSWORD", PASSWORD)).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
}

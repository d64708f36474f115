//! `tokenwarden store check` and `store migrate` with the real binary: a check changes nothing,
//! a migration creates or upgrades the file once, unfinished work is counted, and a store from
//! a newer tokenwarden is refused by both with the configuration exit code.

use serde_json::{Value, json};
use tokenwarden::gate::GateMode;

use crate::cli::ask_elsewhere;
use crate::identity::fixture;

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
        (&v["mcp_sessions"], &v["leases"]),
        (&json!(0), &json!([])),
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

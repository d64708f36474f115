//! Who approves is an operating-system account, not a name: `$USER` changes nobody, the stdio
//! MCP server's own account cannot approve what it asked for, and another account (a real one,
//! through `runuser`) can, where the config lets the CLI approve MCP requests at all.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use tokenwarden::actor::ActorKind;
use tokenwarden::gate::GateMode;
use tokenwarden::tokens::RawToken;

use crate::cli::{BIN, SimProcess, ask_elsewhere, ask_elsewhere_knowing, create_outside, simulate};
use crate::procs::Tw;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sim: SimProcess,
    pub operator: String,
    pub tw: Tw,
}

/// A simulator and a config for it, with `extra` appended to the config.
pub fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("operator.token");
    let sim = simulate(&["--operator-token-file", token_file.to_str().unwrap()]);
    let operator = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let tw =
        Tw::new(dir.path(), &sim.url, &RawToken::new(operator.clone())).env("RUST_LOG", "warn");
    let mut config = std::fs::read_to_string(&tw.config).unwrap();
    config.push_str(extra);
    std::fs::write(&tw.config, config).unwrap();
    Fixture {
        dir,
        sim,
        operator,
        tw,
    }
}

pub fn listed(tw: &Tw, name: &str) -> bool {
    let rt = tokio::runtime::Handle::current();
    let r = tokio::task::block_in_place(|| rt.block_on(tw.run(&["tokens", "list", "--json"], "")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_account_is_one_approver_whatever_user_says() {
    let f = fixture("");
    let ids = tokio::task::block_in_place(|| {
        ask_elsewhere(
            f.dir.path(),
            &f.sim.url,
            &f.operator,
            &["doomed"],
            GateMode::Approvals {
                required: 2,
                allow_self: false,
                approve_from: Some(vec![ActorKind::Cli]),
            },
        )
    });
    let as_ann = f.tw.clone().env("USER", "ann").env("LOGNAME", "ann");
    let r = as_ann.run(&["approvals", "approve", &ids[0]], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("(1 of 2)"), "{}", r.stdout);
    let as_bob = f.tw.clone().env("USER", "bob").env("LOGNAME", "bob");
    let r = as_bob.run(&["approvals", "approve", &ids[0]], "").await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("you already approved"), "{}", r.stderr);
    assert!(
        listed(&f.tw, "doomed"),
        "one account cannot be two approvers"
    );
}

/// Hands `dir` and everything in it to account `nobody`, and puts there a copy of the binary
/// it can run (the build folder may be private to root).
fn share_with_nobody(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("tokenwarden");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("an account `nobody`");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::chown(&path, Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw()))
            .unwrap();
    }
    std::os::unix::fs::chown(dir, Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw())).unwrap();
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_servers_own_account_cannot_approve_its_request() {
    let f = fixture("\n[mcp]\napprove_deletes = true\napprove_from = [\"discord\", \"cli\"]\n");
    tokio::task::block_in_place(|| create_outside(&f.sim.url, &f.operator, &["victim"]));
    let root = nix::unistd::geteuid().is_root();
    let nobody = root.then(|| {
        let bin = share_with_nobody(f.dir.path());
        f.tw.clone().run_as("nobody", &bin)
    });
    if let Some(nobody) = &nobody {
        // The store is created by `nobody`, so both accounts can open it (SQLite hands the
        // side files root makes to the database file's owner).
        let r = nobody.run(&["approvals", "list"], "").await;
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    let mut server = f.tw.spawn(&["mcp"]);
    server.mcp_initialize().await;
    let answer = server
        .mcp_call(2, "delete_token", json!({"name": "victim"}))
        .await;
    let result = &answer["result"]["structuredContent"];
    assert_eq!(result["status"], "approval_required", "{answer}");
    let id = result["pending_id"].as_str().unwrap().to_owned();
    assert!(
        !answer.to_string().contains("approvals approve"),
        "the model is not told how to approve: {answer}"
    );

    // The assistant's shell is the server's account, whatever it says its name is.
    for tw in [
        f.tw.clone(),
        f.tw.clone().env("USER", "nobody").env("LOGNAME", "nobody"),
    ] {
        let r = tw.run(&["approvals", "approve", &id], "").await;
        assert_eq!(r.code, 7, "{}", r.stderr);
        assert!(
            r.stderr.contains("someone else must approve"),
            "{}",
            r.stderr
        );
    }
    assert!(listed(&f.tw, "victim"));

    let Some(nobody) = nobody else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must cross a real account boundary: run the tests as root so runuser works"
        );
        eprintln!(
            "identity: not root, so the approval by another real account (runuser) was not tried"
        );
        return;
    };
    let r = nobody.run(&["approvals", "approve", &id], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("deleted token `victim`"), "{}", r.stdout);
    assert!(!listed(&f.tw, "victim"));
    let r = f.tw.run(&["audit", "--json", "--limit", "20"], "").await;
    assert!(
        r.stdout.contains("os:65534@"),
        "the audit names the approving account: {}",
        r.stdout
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_without_people_cannot_make_a_persons_own_approval_count() {
    // ann's MCP client `laptop` asks; her shell account is ann too, in the server's config.
    let me = tokenwarden::actor::OsAccount::current();
    let ann = tokenwarden::people::Person {
        name: "ann".into(),
        mcp_clients: ["laptop".to_owned()].into(),
        os_accounts: [(me.uid, me.host.clone())].into(),
        ..Default::default()
    };
    let f = fixture("\n[mcp]\napprove_deletes = true\napprove_from = [\"cli\"]\n");
    let ids = tokio::task::block_in_place(|| {
        ask_elsewhere_knowing(
            f.dir.path(),
            &f.sim.url,
            &f.operator,
            &["anns-own"],
            GateMode::Approvals {
                required: 1,
                allow_self: false,
                approve_from: Some(vec![ActorKind::Cli]),
            },
            tokenwarden::people::People::new(vec![ann]),
        )
    });
    // The approver's config (the fixture's) lists no [[people]]: ann's account would pass for
    // someone else. Refused instead.
    let r = f.tw.run(&["approvals", "approve", &ids[0]], "").await;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("requested by ann, whom this configuration's [[people]] does not list"),
        "{}",
        r.stderr
    );
    assert!(listed(&f.tw, "anns-own"));
}

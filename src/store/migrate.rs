//! Versioned schema migrations, one numbering for both backends (SQLite keeps the number in its
//! `user_version`, PostgreSQL in the table `tokenwarden_schema`): each step runs once, in order,
//! inside one write transaction; a store written by a newer tokenwarden is refused.

use serde_json::{Value, json};

use super::StoreError;
use super::sql::{Conn, Dialect, Tx, args};

/// The schema version this build writes.
pub const CURRENT: i64 = 6;

const V1_V2: &str = r#"
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    instance    TEXT,
    token_name  TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    pending_id  TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS pending (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_state ON pending (state, expires_at);
CREATE TABLE IF NOT EXISTS pending_refs (
    pending_id  TEXT NOT NULL,
    adapter     TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (pending_id, adapter)
);
"#;

const V3: &str = r#"
CREATE TABLE journal (
    id          TEXT PRIMARY KEY,
    op          TEXT NOT NULL,
    instance    TEXT NOT NULL,
    stage       TEXT NOT NULL,
    settled     INTEGER NOT NULL DEFAULT 0,
    owner       TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    due_at      INTEGER,
    pending_id  TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX journal_unsettled ON journal (settled, lease_until);
CREATE TABLE outbox (
    key         TEXT PRIMARY KEY,
    pending_id  TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    owner       TEXT,
    lease_until INTEGER
);
CREATE INDEX outbox_unsent ON outbox (sent_at);
"#;

/// Interaction ids already handled (seconds since the epoch), so a replay is recognised.
const V4: &str = r#"
CREATE TABLE interactions (
    id          TEXT PRIMARY KEY,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX interactions_seen ON interactions (seen_at);
"#;

/// Listings people page through (Discord's `/token list`), and MCP HTTP sessions with the
/// principal that opened each, so a page button or a session works in any process that shares
/// the store, and after a restart (times in seconds since the epoch); named leases held by one
/// process at a time, such as the Discord gateway connection (in the database's milliseconds).
const V5: &str = r#"
CREATE TABLE listings (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    instance    TEXT,
    filter      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX listings_created ON listings (created_at);
CREATE TABLE mcp_sessions (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    state       TEXT,
    opened_at   BIGINT NOT NULL
);
CREATE INDEX mcp_sessions_opened ON mcp_sessions (opened_at);
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    until_ms    BIGINT NOT NULL
);
"#;

/// Reveal links kept for any process to open (the secret sealed with a key from each
/// process's configuration), and sign-in attempts on the private reveal page; times in the
/// database's milliseconds. The same for both backends.
const V6: &str = r#"
CREATE TABLE reveal_links (
    id_hash     TEXT PRIMARY KEY,
    journal_id  TEXT NOT NULL,
    for_person  TEXT,
    shared      BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    held        TEXT NOT NULL,
    made_ms     BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX reveal_links_person ON reveal_links (for_person, made_ms);
CREATE INDEX reveal_links_journal ON reveal_links (journal_id);
CREATE TABLE signin_attempts (
    person          TEXT PRIMARY KEY,
    tried           BIGINT NOT NULL,
    locked_until_ms BIGINT
);
"#;

/// The first steps for PostgreSQL: times kept as text compare bytewise (`COLLATE "C"`), ids
/// are identity columns, and the audit log refuses changes through a trigger function. Later
/// steps are one text for both databases.
const PG_V1_V2: &str = r#"
CREATE TABLE IF NOT EXISTS tokenwarden_schema (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT COLLATE "C" NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    instance    TEXT,
    token_name  TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    pending_id  TEXT
);
CREATE OR REPLACE FUNCTION tokenwarden_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $f$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $f$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION tokenwarden_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION tokenwarden_audit_append_only();
CREATE TABLE IF NOT EXISTS pending (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    expires_at  TEXT COLLATE "C" NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_state ON pending (state, expires_at);
CREATE TABLE IF NOT EXISTS pending_refs (
    pending_id  TEXT NOT NULL,
    adapter     TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (pending_id, adapter)
);
"#;

const PG_V3: &str = r#"
CREATE TABLE journal (
    id          TEXT PRIMARY KEY,
    op          TEXT NOT NULL,
    instance    TEXT NOT NULL,
    stage       TEXT NOT NULL,
    settled     BIGINT NOT NULL DEFAULT 0,
    owner       TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    due_at      BIGINT,
    pending_id  TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX journal_unsettled ON journal (settled, lease_until);
CREATE TABLE outbox (
    key         TEXT PRIMARY KEY,
    pending_id  TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    sent_at     TEXT COLLATE "C",
    owner       TEXT,
    lease_until BIGINT
);
CREATE INDEX outbox_unsent ON outbox (sent_at);
"#;

/// Each version's schema change, for SQLite and for PostgreSQL.
const STEPS: &[(i64, &str, &str)] = &[
    (2, V1_V2, PG_V1_V2),
    (3, V3, PG_V3),
    (4, V4, V4),
    (5, V5, V5),
    (6, V6, V6),
];

/// How long a migration waits for other processes' writes to finish.
const MIGRATE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The schema version the store has (0: new or empty).
pub(super) fn version(conn: &mut dyn Conn) -> Result<i64, StoreError> {
    match conn.dialect() {
        Dialect::Sqlite => conn.scalar("PRAGMA user_version", &[]),
        Dialect::Postgres => {
            if !table_exists(conn, "tokenwarden_schema")? {
                return Ok(0);
            }
            let version: Option<i64> =
                conn.scalar("SELECT MAX(version) FROM tokenwarden_schema", &[])?;
            Ok(version.unwrap_or(0))
        }
    }
}

fn set_version(conn: &mut dyn Conn, version: i64) -> Result<(), StoreError> {
    match conn.dialect() {
        Dialect::Sqlite => conn.batch(&format!("PRAGMA user_version = {version}")),
        Dialect::Postgres => {
            conn.execute("DELETE FROM tokenwarden_schema", &[])?;
            conn.execute(
                "INSERT INTO tokenwarden_schema (version) VALUES (?1)",
                args![version],
            )?;
            Ok(())
        }
    }
}

/// Whether the store's database has a table named `name` (in its current schema).
pub(super) fn table_exists(conn: &mut dyn Conn, name: &str) -> Result<bool, StoreError> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)"
        }
        Dialect::Postgres => {
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?1)"
        }
    };
    conn.scalar(sql, args![name])
}

/// Brings the schema to [`CURRENT`].
pub fn run(conn: &mut dyn Conn) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found > CURRENT {
        return Err(StoreError::TooNew {
            found,
            supported: CURRENT,
        });
    }
    if found == CURRENT {
        return Ok(());
    }
    if found == 0 {
        refuse_foreign(conn)?;
    }
    let dialect = conn.dialect();
    let mut tx = Tx::begin(conn, MIGRATE_WAIT)?;
    let c = tx.conn();
    // Another process may have migrated while this one waited for the lock.
    let found = version(c)?;
    if found > CURRENT {
        return Err(StoreError::TooNew {
            found,
            supported: CURRENT,
        });
    }
    for &(step, sqlite, postgres) in STEPS {
        if step <= found {
            continue;
        }
        c.batch(match dialect {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        })?;
        if step == 3 {
            retire_nameonly_actions(c)?;
        }
    }
    if found < CURRENT {
        set_version(c, CURRENT)?;
    }
    tx.commit()
}

/// The tables tokenwarden makes; SQLite adds `sqlite_sequence` for AUTOINCREMENT.
const OURS: &[&str] = &[
    "audit",
    "pending",
    "pending_refs",
    "journal",
    "outbox",
    "interactions",
    "listings",
    "mcp_sessions",
    "leases",
    "reveal_links",
    "signin_attempts",
    "sqlite_sequence",
    "tokenwarden_schema",
];

/// A store at version 0 is new or empty; one with other tables is another program's database,
/// which tokenwarden must not add its tables to.
pub(super) fn refuse_foreign(conn: &mut dyn Conn) -> Result<(), StoreError> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Dialect::Postgres => {
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        }
    };
    let mut foreign = Vec::new();
    for row in conn.query(sql, &[])? {
        let table: String = row.get(0)?;
        if !OURS.contains(&table.as_str()) {
            foreign.push(table);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    Err(StoreError::Foreign {
        tables: foreign.join(", "),
    })
}

/// Before version 3 a pending delete or prune named its tokens without their ids, and a
/// regeneration had no file for the new secret. Such a request cannot be bound to what it
/// showed, so it is closed, never guessed into ids: the action is kept as a description, and an
/// open or executing one fails with a message to ask again.
fn retire_nameonly_actions(tx: &mut dyn Conn) -> Result<(), StoreError> {
    for row in tx.query("SELECT id, body FROM pending", &[])? {
        let id: String = row.get(0)?;
        let body: String = row.get(1)?;
        let Ok(mut p) = serde_json::from_str::<Value>(&body) else {
            continue;
        };
        let Some(was) = nameonly_description(&p["action"]) else {
            continue;
        };
        let instance = p["action"]["instance"].clone();
        p["action"] = json!({ "op": "retired", "instance": instance, "was": was });
        let state = p["state"]["state"].as_str().unwrap_or_default().to_owned();
        if state == "open" || state == "executing" {
            p["state"] = json!({
                "state": "failed",
                "reason": "closed when tokenwarden was upgraded: the request named its tokens without their ids, \
                           so it could hit a token that later took one of those names; nothing was done. Request it again"
            });
        }
        let label = p["state"]["state"].as_str().unwrap_or("failed").to_owned();
        tx.execute(
            "UPDATE pending SET state = ?2, body = ?3 WHERE id = ?1",
            args![&id, label, p.to_string()],
        )?;
    }
    Ok(())
}

/// What an old name-only action did, or `None` if it is not one.
fn nameonly_description(action: &Value) -> Option<String> {
    let instance = action["instance"].as_str().unwrap_or("?");
    match action["op"].as_str()? {
        "delete_token" if action.get("id").is_none() => Some(format!(
            "delete token `{}` on instance `{instance}`",
            action["name"].as_str().unwrap_or("?")
        )),
        "prune_expired" if action.get("names").is_some() => Some(format!(
            "delete {} expired tokens on instance `{instance}`",
            action["names"].as_array().map_or(0, Vec::len)
        )),
        "regenerate_operator" if action.get("file").is_none() => Some(format!(
            "regenerate the operator token of instance `{instance}` (without a file for the new secret)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, params};

    fn v2_store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1_V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn
    }

    fn insert(conn: &Connection, id: &str, body: Value) {
        conn.execute(
            "INSERT INTO pending (id, state, created_at, expires_at, body) VALUES (?1, ?2, 'x', 'x', ?3)",
            params![id, body["state"]["state"].as_str().unwrap(), body.to_string()],
        )
        .unwrap();
    }

    #[test]
    fn old_name_only_requests_are_closed_not_guessed() {
        let mut conn = v2_store();
        insert(
            &conn,
            "a",
            json!({"action": {"op": "delete_token", "instance": "local", "name": "x"}, "state": {"state": "open"}}),
        );
        insert(
            &conn,
            "b",
            json!({"action": {"op": "prune_expired", "instance": "local", "names": ["p", "q"]}, "state": {"state": "succeeded"}}),
        );
        insert(
            &conn,
            "c",
            json!({"action": {"op": "regenerate_operator", "instance": "local"}, "state": {"state": "open"}}),
        );
        run(&mut conn).unwrap();
        let body = |id: &str| -> Value {
            let b: String = conn
                .query_row("SELECT body FROM pending WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            serde_json::from_str(&b).unwrap()
        };
        let a = body("a");
        assert_eq!(a["action"]["op"], "retired");
        assert_eq!(a["action"]["was"], "delete token `x` on instance `local`");
        assert_eq!(a["state"]["state"], "failed");
        assert!(
            a["state"]["reason"]
                .as_str()
                .unwrap()
                .contains("Request it again")
        );
        let b = body("b");
        assert_eq!(
            b["action"]["was"],
            "delete 2 expired tokens on instance `local`"
        );
        assert_eq!(
            b["state"]["state"], "succeeded",
            "closed rows keep their outcome"
        );
        let c = body("c");
        assert_eq!(
            c["action"]["op"], "retired",
            "a regeneration needs a file now"
        );
        assert_eq!(c["state"]["state"], "failed");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT);
    }

    crate::store::testing::contract! {
        fn a_newer_store_is_refused_and_left_alone(db) {
            let store = db.open();
            store.write(|c| set_version(c, CURRENT + 1)).unwrap();
            drop(store);
            let err = crate::store::Store::connect(db.location()).err().unwrap();
            assert!(err.to_string().contains("newer tokenwarden"), "{err}");
            let status = crate::store::inspect(db.location()).unwrap();
            assert!(status.too_new());
            assert_eq!(version(db.raw().as_mut()).unwrap(), CURRENT + 1);
        }

        fn another_programs_database_is_refused_and_left_alone(db) {
            db.raw().batch("CREATE TABLE customers (id BIGINT)").unwrap();
            for err in [
                crate::store::Store::connect(db.location()).err().unwrap(),
                crate::store::inspect(db.location()).unwrap_err(),
                crate::store::migrate(db.location()).unwrap_err(),
            ] {
                assert!(err.to_string().contains("tables (customers)"), "{err}");
            }
            assert!(!table_exists(db.raw().as_mut(), "audit").unwrap());
        }

        fn processes_starting_at_once_migrate_once(db) {
            std::thread::scope(|s| {
                let opened: Vec<_> = (0..6).map(|_| s.spawn(|| db.open())).collect();
                for store in opened {
                    drop(store.join().unwrap());
                }
            });
            let mut conn = db.raw();
            assert_eq!(version(conn.as_mut()).unwrap(), CURRENT);
            assert!(table_exists(conn.as_mut(), "leases").unwrap());
        }
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT);
    }
}

//! Versioned schema migrations, numbered by SQLite's `user_version`: each step runs once, in
//! order, inside one transaction; a store written by a newer tokenwarden is refused.

use rusqlite::{Connection, Transaction, params};
use serde_json::{Value, json};

use super::StoreError;

/// The schema version this build writes.
pub const CURRENT: i64 = 5;

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
    seen_at     INTEGER NOT NULL
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
    created_at  INTEGER NOT NULL
);
CREATE INDEX listings_created ON listings (created_at);
CREATE TABLE mcp_sessions (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    state       TEXT,
    opened_at   INTEGER NOT NULL
);
CREATE INDEX mcp_sessions_opened ON mcp_sessions (opened_at);
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    until_ms    INTEGER NOT NULL
);
"#;

/// Brings the schema to [`CURRENT`].
pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT {
        return Err(StoreError::TooNew {
            found: version,
            supported: CURRENT,
        });
    }
    if version == CURRENT {
        return Ok(());
    }
    if version == 0 {
        refuse_foreign(conn)?;
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    // Another process may have migrated while this one waited for the lock.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 2 {
        tx.execute_batch(V1_V2)?;
    }
    if version < 3 {
        tx.execute_batch(V3)?;
        retire_nameonly_actions(&tx)?;
    }
    if version < 4 {
        tx.execute_batch(V4)?;
    }
    if version < 5 {
        tx.execute_batch(V5)?;
    }
    tx.pragma_update(None, "user_version", CURRENT)?;
    tx.commit()?;
    Ok(())
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
    "sqlite_sequence",
];

/// A file at version 0 is new or empty; one with other tables is another program's database,
/// which tokenwarden must not add its tables to.
pub(super) fn refuse_foreign(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let foreign: Vec<String> = tables
        .into_iter()
        .filter(|t| !OURS.contains(&t.as_str()))
        .collect();
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
fn retire_nameonly_actions(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT id, body FROM pending")?;
        let mapped = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        mapped.collect::<Result<_, _>>()?
    };
    for (id, body) in rows {
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
            params![id, label, p.to_string()],
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

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        let err = run(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer tokenwarden"), "{err}");
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

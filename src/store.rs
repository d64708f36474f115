//! SQLite persistence: the append-only audit log and the pending actions of the gate. Several
//! processes may share one file: every read-modify-write of a pending action runs in an
//! immediate transaction, so two approvals racing execute the action once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::gate::{Pending, PendingId, PendingState};
use crate::tokens::redact;

const SCHEMA: &str = r#"
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
PRAGMA user_version = 2;
"#;

/// What went wrong with the store file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {detail}. Check the [store] path and its folder's permissions"
    )]
    Open { path: PathBuf, detail: String },
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the stored pending action {id} cannot be read: {detail}")]
    Corrupt { id: String, detail: String },
    #[error("no pending action `{id}` exists; request the action again")]
    NotFound { id: String },
}

/// How an audited step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Requested,
    Approved,
    Rejected,
    Expired,
    Refused,
    Succeeded,
    Failed,
    /// Sent, but whether it took effect is unknown.
    Unknown,
    /// A created token was deleted again because its secret could not be delivered.
    RolledBack,
}

impl AuditOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Refused => "refused",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::RolledBack => "rolled_back",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// One audit record: who did what to which token on which instance, and how it ended. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// What was attempted, e.g. `token.delete`.
    pub event: String,
    pub instance: Option<String>,
    pub token_name: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    pub pending_id: Option<String>,
}

/// A stored audit record with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// A handle on the store; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates, mode 0600) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |detail: String| StoreError::Open {
            path: path.to_owned(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        create_private_file(path).map_err(|e| open_err(e.to_string()))?;
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(e.to_string()))?;
        Self::init(conn).map_err(|e| open_err(e.to_string()))
    }

    /// A private store for tests and the demo.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back on drop).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one audit record; text fields are redacted of anything that looks like a token.
    pub fn append(&self, e: &AuditEvent) -> Result<i64, StoreError> {
        let actor = serde_json::to_string(&e.actor).map_err(|err| StoreError::Corrupt {
            id: "audit".into(),
            detail: err.to_string(),
        })?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at, actor, event, instance, token_name, outcome, detail, pending_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.at.to_rfc3339(),
                redact(&actor),
                e.event,
                e.instance,
                e.token_name.as_deref().map(redact),
                e.outcome.as_str(),
                e.detail.as_deref().map(redact),
                e.pending_id,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest `limit` audit records, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, actor, event, instance, token_name, outcome, detail, pending_id
             FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, actor, event, instance, token_name, outcome, detail, pending_id) = row?;
            let corrupt = |detail: String| StoreError::Corrupt {
                id: format!("audit #{seq}"),
                detail,
            };
            let event = AuditEvent {
                at: DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| corrupt(e.to_string()))?
                    .with_timezone(&Utc),
                actor: serde_json::from_str(&actor).map_err(|e| corrupt(e.to_string()))?,
                event,
                instance,
                token_name,
                outcome: AuditOutcome::parse(&outcome)
                    .ok_or_else(|| corrupt(format!("outcome {outcome}")))?,
                detail,
                pending_id,
            };
            out.push(AuditEntry { seq, event });
        }
        Ok(out)
    }

    /// Stores a new pending action.
    pub fn insert_pending<A: Serialize>(&self, p: &Pending<A>) -> Result<(), StoreError> {
        let body = to_body(p)?;
        self.conn().execute(
            "INSERT INTO pending (id, state, created_at, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![p.id.as_str(), p.state.label(), p.created_at.to_rfc3339(), p.expires_at.to_rfc3339(), body],
        )?;
        Ok(())
    }

    /// Reads a pending action.
    pub fn get_pending<A: DeserializeOwned>(
        &self,
        id: &PendingId,
    ) -> Result<Pending<A>, StoreError> {
        let conn = self.conn();
        load(&conn, id)
    }

    /// Runs `f` on a pending action inside one immediate transaction and stores the result, so
    /// concurrent callers (threads or processes) see each other's changes in order.
    pub fn update_pending<A, T>(
        &self,
        id: &PendingId,
        f: impl FnOnce(&mut Pending<A>) -> T,
    ) -> Result<T, StoreError>
    where
        A: Serialize + DeserializeOwned,
    {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut pending: Pending<A> = load(&tx, id)?;
        let out = f(&mut pending);
        tx.execute(
            "UPDATE pending SET state = ?2, body = ?3 WHERE id = ?1",
            params![id.as_str(), pending.state.label(), to_body(&pending)?],
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// Claims the right to attach `adapter`'s reference (say, a Discord card) to a pending action:
    /// true for exactly one caller, whichever process it runs in.
    pub fn claim_ref(&self, id: &PendingId, adapter: &str) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "INSERT INTO pending_refs (pending_id, adapter, value) VALUES (?1, ?2, '') ON CONFLICT DO NOTHING",
            params![id.as_str(), adapter],
        )?;
        Ok(changed == 1)
    }

    /// Records `adapter`'s reference for a pending action.
    pub fn set_ref(&self, id: &PendingId, adapter: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO pending_refs (pending_id, adapter, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (pending_id, adapter) DO UPDATE SET value = excluded.value",
            params![id.as_str(), adapter, value],
        )?;
        Ok(())
    }

    /// `adapter`'s reference for a pending action, once set.
    pub fn get_ref(&self, id: &PendingId, adapter: &str) -> Result<Option<String>, StoreError> {
        let value: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM pending_refs WHERE pending_id = ?1 AND adapter = ?2",
                params![id.as_str(), adapter],
                |r| r.get(0),
            )
            .optional()?;
        Ok(value.filter(|v| !v.is_empty()))
    }

    /// Pending actions still open (possibly past their expiry), oldest first.
    pub fn open_pending<A: DeserializeOwned>(&self) -> Result<Vec<Pending<A>>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, body FROM pending WHERE state = ?1 ORDER BY created_at")?;
        let rows = stmt.query_map(params![PendingState::Open.label()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.map(|row| {
            let (id, body): (String, String) = row?;
            from_body(&id, &body)
        })
        .collect()
    }
}

fn load<A: DeserializeOwned>(conn: &Connection, id: &PendingId) -> Result<Pending<A>, StoreError> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM pending WHERE id = ?1",
            params![id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let body = body.ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    from_body(id.as_str(), &body)
}

fn to_body<A: Serialize>(p: &Pending<A>) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::Corrupt {
        id: p.id.to_string(),
        detail: e.to_string(),
    })
}

fn from_body<A: DeserializeOwned>(id: &str, body: &str) -> Result<Pending<A>, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{GateMode, Progress};
    use std::time::Duration;

    fn event(outcome: AuditOutcome, detail: &str) -> AuditEvent {
        AuditEvent {
            at: Utc::now(),
            actor: Actor::discord(1, "ann"),
            event: "token.delete".into(),
            instance: Some("local".into()),
            token_name: Some("ci".into()),
            outcome,
            detail: Some(detail.into()),
            pending_id: None,
        }
    }

    #[test]
    fn audit_is_append_only_and_redacted() {
        let store = Store::open_in_memory().unwrap();
        store
            .append(&event(AuditOutcome::Requested, "fine"))
            .unwrap();
        store
            .append(&event(AuditOutcome::Failed, "server said apiv3_abcdef"))
            .unwrap();
        let rows = store.recent_audit(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].event.detail.as_deref(),
            Some("server said apiv3_<redacted>")
        );
        assert_eq!(rows[1].event.outcome, AuditOutcome::Requested);
        let conn = store.conn();
        let err = conn
            .execute("DELETE FROM audit", [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{err}");
        assert!(conn.execute("UPDATE audit SET detail = 'x'", []).is_err());
    }

    #[test]
    fn pending_actions_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.db");
        let p = Pending::new(
            "delete ci".to_owned(),
            Actor::discord(1, "ann"),
            GateMode::Approvals {
                required: 1,
                allow_self: false,
            },
            Duration::from_secs(60),
            Utc::now(),
        );
        Store::open(&path).unwrap().insert_pending(&p).unwrap();
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.get_pending::<String>(&p.id).unwrap(), p);
        assert_eq!(reopened.open_pending::<String>().unwrap(), vec![p.clone()]);
        let progress = reopened.update_pending(&p.id, |q: &mut Pending<String>| {
            q.approve(&Actor::discord(2, "bob"), Utc::now())
        });
        assert_eq!(progress.unwrap(), Ok(Progress::Ready));
        assert!(reopened.open_pending::<String>().unwrap().is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn concurrent_approvals_across_connections_execute_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let p = Pending::new(
            "delete ci".to_owned(),
            Actor::discord(1, "ann"),
            GateMode::Approvals {
                required: 1,
                allow_self: false,
            },
            Duration::from_secs(60),
            Utc::now(),
        );
        Store::open(&path).unwrap().insert_pending(&p).unwrap();
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let path = path.clone();
                let id = p.id.clone();
                std::thread::spawn(move || {
                    // A separate connection per thread, like separate processes.
                    let store = Store::open(&path).unwrap();
                    store
                        .update_pending(&id, |q: &mut Pending<String>| {
                            q.approve(&Actor::discord(10 + i, "x"), Utc::now())
                        })
                        .unwrap()
                })
            })
            .collect();
        let ready = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|r| r == &Ok(Progress::Ready))
            .count();
        assert_eq!(ready, 1);
    }

    #[test]
    fn references_are_claimed_once_and_kept() {
        let store = Store::open_in_memory().unwrap();
        let id = PendingId::random();
        assert!(store.claim_ref(&id, "discord").unwrap());
        assert!(!store.claim_ref(&id, "discord").unwrap());
        assert_eq!(
            store.get_ref(&id, "discord").unwrap(),
            None,
            "claimed but not set"
        );
        store.set_ref(&id, "discord", "1:2").unwrap();
        assert_eq!(
            store.get_ref(&id, "discord").unwrap().as_deref(),
            Some("1:2")
        );
        assert_eq!(store.get_ref(&id, "other").unwrap(), None);
    }

    #[test]
    fn unknown_ids_are_not_found() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .get_pending::<String>(&PendingId::random())
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }
}

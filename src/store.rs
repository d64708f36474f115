//! SQLite persistence: the append-only audit log, the pending actions of the gate, the journal of
//! operations, the outbox of notifications, the listings people page through, the MCP HTTP
//! sessions with their principals, and named leases. Several processes may share one file: every
//! read-modify-write runs in an immediate transaction, so two approvals racing execute the action
//! once, and work is claimed by one process at a time.

mod interactions;
mod journal;
mod leases;
mod links;
mod listings;
mod migrate;
mod outbox;
mod owner;
mod pending;
mod pg;
mod prune;
mod sessions;
mod signins;
mod sql;
mod sqlite;
mod status;
#[cfg(test)]
mod testing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::tokens::redact;

pub use journal::{
    Claimed, CreateInDoubt, JournalEntry, JournalId, JournalOp, LostAnswer, SentDelete, Stage,
};
pub use leases::LeaseHolder;
pub use links::{ParkedLink, Pick, Taken};
pub use listings::{KEEP_LISTING, Listing};
pub use outbox::{Notice, OutboxItem};
pub use owner::Owner;
pub use pending::Now;
pub use pg::{Password, PgTarget};
pub use prune::{KEEP_FINISHED, Pruned};
pub use sessions::{KEEP_SESSION, StoredSession};
pub use signins::SignIn;
pub use sql::Dialect;
pub use status::{LeaseStatus, StoreStatus, inspect, migrate};

use sql::{Conn, Tx, args};

/// `keep` before `now`, in seconds since the epoch: rows older than that are forgotten. The
/// earliest representable time when `now` is too early to go back that far (forgets nothing).
fn seconds_before(now: DateTime<Utc>, keep: chrono::Duration) -> i64 {
    now.checked_sub_signed(keep)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .timestamp()
}

/// Where the store lives: `[store] path` (SQLite, the default) or `[store] url` (PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(PgTarget),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(target) => f.write_str(&target.url),
        }
    }
}

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {detail}. Check the [store] path and its folder's permissions"
    )]
    Open { path: PathBuf, detail: String },
    #[error("cannot connect to the store at {url}: {detail}. Check [store] url and its password")]
    Connect { url: String, detail: String },
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store error: {}", pg::describe(.0))]
    Postgres(#[from] postgres::Error),
    #[error("the store's PostgreSQL connection failed: {0}")]
    Gone(String),
    #[error("the stored pending action {id} cannot be read: {detail}")]
    Corrupt { id: String, detail: String },
    #[error("no pending action {} exists; request the action again", crate::shown::quoted(.id))]
    NotFound { id: String },
    #[error(
        "the store was written by a newer tokenwarden (schema version {found}; this one knows up to {supported}). \
         Run the newer tokenwarden, or point [store] at another file or database"
    )]
    TooNew { found: i64, supported: i64 },
    #[error(
        "this database holds another program's tables ({tables}), not a tokenwarden store; point \
         [store] at another file or database"
    )]
    Foreign { tables: String },
    #[error("journal entry {id} was taken over by another process; it settles it")]
    LostClaim { id: String },
    #[error("journal entry {id} is settled already")]
    Settled { id: String },
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

/// How long a write waits for another process's turn on the store.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a readiness check waits for the store's write lock.
const PING_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a process's claim on unfinished work lasts unless renewed.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// A handle on the store; clones share one connection and one owner identity.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Box<dyn Conn>>>,
    owner: Arc<Owner>,
    dialect: Dialect,
    /// The file, for a store opened from one (readiness checks it is still there).
    path: Option<Arc<PathBuf>>,
}

impl Store {
    /// Opens the store wherever it lives, bringing its schema up to date.
    pub fn connect(location: &Location) -> Result<Self, StoreError> {
        match location {
            Location::File(path) => Self::open(path),
            Location::Postgres(target) => Self::init(Box::new(pg::PgConn::open(target)?)),
        }
    }

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
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_err(e.to_string()))?;
        wal(&conn).map_err(|e| open_err(e.to_string()))?;
        let mut store = Self::init(Box::new(conn)).map_err(|e| match e {
            too_new @ StoreError::TooNew { .. } => too_new,
            e => open_err(e.to_string()),
        })?;
        tighten(path).map_err(|e| open_err(e.to_string()))?;
        store.path = Some(Arc::new(path.to_owned()));
        Ok(store)
    }

    /// A private store for tests and the demo.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Self::init(Box::new(conn))
    }

    fn init(mut conn: Box<dyn Conn>) -> Result<Self, StoreError> {
        migrate::run(conn.as_mut())?;
        Ok(Self {
            dialect: conn.dialect(),
            conn: Arc::new(Mutex::new(conn)),
            owner: Arc::new(Owner::this_process()),
            path: None,
        })
    }

    /// The database's clock.
    pub fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        self.read(|c| c.now())
    }

    /// Which database this store is kept in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the store can be written now (for `/ready`): its file is still where it was
    /// opened, and the write lock is had within [`PING_WITHIN`] (then released, unchanged).
    pub fn ping(&self) -> Result<(), StoreError> {
        if let Some(path) = &self.path
            && !path.exists()
        {
            return Err(StoreError::Open {
                path: path.as_ref().clone(),
                detail: "the file is gone (moved or deleted while tokenwarden runs)".into(),
            });
        }
        let mut conn = self.conn();
        drop(Tx::begin(conn.as_mut(), PING_WITHIN)?);
        Ok(())
    }

    /// The same store acting as another owner (tests: a process that died holding work).
    pub fn as_owner(&self, owner: Owner) -> Self {
        Self {
            conn: Arc::clone(&self.conn),
            owner: Arc::new(owner),
            dialect: self.dialect,
            path: self.path.clone(),
        }
    }

    /// Who this handle's claims belong to.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    fn conn(&self) -> MutexGuard<'_, Box<dyn Conn>> {
        // A panic while holding the lock leaves the store consistent (a transaction left open
        // is rolled back when its `Tx` is dropped).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one write transaction: it sees and changes the store alone, in every process
    /// sharing it, and all of it is written or none.
    pub(super) fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn();
        let mut tx = Tx::begin(conn.as_mut(), BUSY_TIMEOUT)?;
        let out = f(tx.conn())?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f`'s reads on the store's connection.
    pub(super) fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f(self.conn().as_mut())
    }

    /// Appends one audit record; text fields are redacted of anything that looks like a token.
    pub fn append(&self, e: &AuditEvent) -> Result<i64, StoreError> {
        let actor = serde_json::to_string(&e.actor).map_err(|err| StoreError::Corrupt {
            id: "audit".into(),
            detail: err.to_string(),
        })?;
        self.write(|c| {
            c.scalar(
                "INSERT INTO audit (at, actor, event, instance, token_name, outcome, detail, pending_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                args![
                    e.at.to_rfc3339(),
                    redact(&actor),
                    &e.event,
                    e.instance.as_deref(),
                    e.token_name.as_deref().map(redact),
                    e.outcome.as_str(),
                    e.detail.as_deref().map(redact),
                    e.pending_id.as_deref(),
                ],
            )
        })
    }

    /// The newest `limit` audit records, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self.read(|c| {
            c.query(
                "SELECT id, at, actor, event, instance, token_name, outcome, detail, pending_id
                 FROM audit ORDER BY id DESC LIMIT ?1",
                args![i64::try_from(limit).unwrap_or(i64::MAX)],
            )
        })?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0)?;
                let corrupt = |detail: String| StoreError::Corrupt {
                    id: format!("audit #{seq}"),
                    detail,
                };
                let at: String = r.get(1)?;
                let actor: String = r.get(2)?;
                let outcome: String = r.get(6)?;
                let event = AuditEvent {
                    at: DateTime::parse_from_rfc3339(&at)
                        .map_err(|e| corrupt(e.to_string()))?
                        .with_timezone(&Utc),
                    actor: serde_json::from_str(&actor).map_err(|e| corrupt(e.to_string()))?,
                    event: r.get(3)?,
                    instance: r.get(4)?,
                    token_name: r.get(5)?,
                    outcome: AuditOutcome::parse(&outcome)
                        .ok_or_else(|| corrupt(format!("outcome {outcome}")))?,
                    detail: r.get(7)?,
                    pending_id: r.get(8)?,
                };
                Ok(AuditEntry { seq, event })
            })
            .collect()
    }
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

/// Switches the file to WAL (kept in the file, so done once). While another process opening
/// the same new file switches it, SQLite refuses at once with "database is locked" instead of
/// waiting, so the switch is tried again until [`BUSY_TIMEOUT`].
fn wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// The store holds pending actions, the journal and the audit log: readable by this user only.
/// A store (or its `-wal` and `-shm` side files) left group- or world-readable, by an older
/// tokenwarden or by hand, is tightened to 0600 when opened.
#[cfg(unix)]
fn tighten(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    for file in [path.to_path_buf(), side("-wal"), side("-shm")] {
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{GateMode, Pending, PendingId, Progress};
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

    #[cfg(unix)]
    #[test]
    fn a_loose_store_and_its_side_files_are_tightened_when_opened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tw.db");
        drop(Store::open(&path).unwrap());
        let loose = std::fs::Permissions::from_mode(0o666);
        for f in ["tw.db", "tw.db-wal", "tw.db-shm"] {
            let p = dir.path().join(f);
            if !p.exists() {
                std::fs::write(&p, b"").unwrap();
            }
            std::fs::set_permissions(&p, loose.clone()).unwrap();
        }
        let _store = Store::open(&path).unwrap();
        for f in ["tw.db", "tw.db-wal", "tw.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
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
                approve_from: None,
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

    crate::store::testing::contract! {
    fn audit_is_append_only_and_redacted(db) {
        let store = db.open();
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
        let mut conn = store.conn();
        for change in [
            "DELETE FROM audit",
            "UPDATE audit SET detail = 'x'",
        ] {
            let err = conn.execute(change, &[]).unwrap_err().to_string();
            assert!(err.contains("append-only"), "{change}: {err}");
        }
    }
    fn concurrent_approvals_across_connections_execute_once(db) {
        let p = Pending::new(
            "delete ci".to_owned(),
            Actor::discord(1, "ann"),
            GateMode::Approvals {
                required: 1,
                allow_self: false,
                approve_from: None,
            },
            Duration::from_secs(60),
            Utc::now(),
        );
        db.open().insert_pending(&p).unwrap();
        // A separate connection per thread, like separate processes.
        let stores: Vec<Store> = (0..8).map(|_| db.open()).collect();
        let ready = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .zip(10u64..)
                .map(|(store, i)| {
                    let id = &p.id;
                    s.spawn(move || {
                        store
                            .update_pending(id, |q: &mut Pending<String>| {
                                q.approve(&Actor::discord(i, "x"), Utc::now())
                            })
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|r| r == &Ok(Progress::Ready))
                .count()
        });
        assert_eq!(ready, 1);
    }
    fn references_are_claimed_once_and_kept(db) {
        let store = db.open();
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
    fn unknown_ids_are_not_found(db) {
        let store = db.open();
        let err = store
            .get_pending::<String>(&PendingId::random())
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }
    }
}

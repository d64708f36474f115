//! What `tokenwarden store check` reports and `store migrate` does: the schema version of a
//! store file, read without changing it, and how much unfinished work waits in it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::migrate::CURRENT;
use super::{Store, StoreError};

/// A store file as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    pub path: PathBuf,
    /// The schema version the file has (0: empty).
    pub schema_version: i64,
    /// The version this build writes.
    pub supported_version: i64,
    /// Pending actions still open (waiting for a confirmation or approvals); `None` where the
    /// file's schema has no such table yet.
    pub open_actions: Option<u64>,
    /// Journal entries not yet settled (operations running, or left by a process that died).
    pub unsettled_operations: Option<u64>,
    /// Outcome notices not yet posted to Discord.
    pub unsent_notices: Option<u64>,
    /// MCP HTTP sessions kept for processes to take over.
    pub mcp_sessions: Option<u64>,
    /// Work one process at a time does (`discord.gateway`: the gateway connection), and who
    /// holds it; `None` where the file's schema has no leases yet.
    pub leases: Option<Vec<LeaseStatus>>,
}

/// A lease as found: who holds it, and for how much longer by the database's clock (negative:
/// it lapsed, and the next process that wants it takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseStatus {
    pub name: String,
    pub holder: String,
    pub left_ms: i64,
}

impl StoreStatus {
    /// Whether this build can use the file as it is (older files are migrated when opened).
    pub fn too_new(&self) -> bool {
        self.schema_version > self.supported_version
    }
}

/// Reads the store at `path` without writing anything (no migration, no file created).
pub fn inspect(path: &Path) -> Result<StoreStatus, StoreError> {
    let open_err = |detail: String| StoreError::Open {
        path: path.to_owned(),
        detail,
    };
    if !path.exists() {
        return Err(open_err(
            "there is no file there yet; any command that needs the store, or `tokenwarden store \
             migrate`, creates it"
                .into(),
        ));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| open_err(e.to_string()))?;
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if schema_version == 0 {
        super::migrate::refuse_foreign(&conn)?;
    }
    let count = |table: &str, sql: &str| -> Result<Option<u64>, StoreError> {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        Ok(Some(conn.query_row(sql, [], |r| r.get(0))?))
    };
    Ok(StoreStatus {
        path: path.to_owned(),
        schema_version,
        supported_version: CURRENT,
        open_actions: count(
            "pending",
            "SELECT COUNT(*) FROM pending WHERE state = 'open'",
        )?,
        unsettled_operations: count("journal", "SELECT COUNT(*) FROM journal WHERE settled = 0")?,
        unsent_notices: count(
            "outbox",
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
        )?,
        mcp_sessions: count("mcp_sessions", "SELECT COUNT(*) FROM mcp_sessions")?,
        leases: leases(&conn)?,
    })
}

fn leases(conn: &Connection) -> Result<Option<Vec<LeaseStatus>>, StoreError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let now = super::journal::db_now(conn)?;
    let mut stmt = conn.prepare("SELECT name, holder, until_ms FROM leases ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(LeaseStatus {
            name: r.get(0)?,
            holder: r.get(1)?,
            left_ms: r.get::<_, i64>(2)?.saturating_sub(now),
        })
    })?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}

/// Brings the store at `path` (created if missing) to this build's schema; returns the version
/// it had before (0 for a new file). A newer store is refused and left alone.
pub fn migrate(path: &Path) -> Result<i64, StoreError> {
    let before = match inspect(path) {
        Ok(s) if s.too_new() => {
            return Err(StoreError::TooNew {
                found: s.schema_version,
                supported: CURRENT,
            });
        }
        Ok(s) => s.schema_version,
        Err(StoreError::Open { .. }) if !path.exists() => 0,
        Err(e) => return Err(e),
    };
    Store::open(path)?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_inspected_without_change_and_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        assert!(
            inspect(&path)
                .unwrap_err()
                .to_string()
                .contains("no file there yet")
        );
        assert!(!path.exists(), "inspecting creates nothing");
        assert_eq!(migrate(&path).unwrap(), 0);
        let s = inspect(&path).unwrap();
        assert_eq!((s.schema_version, s.too_new()), (CURRENT, false));
        assert_eq!(
            (s.open_actions, s.unsettled_operations, s.unsent_notices),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(migrate(&path).unwrap(), CURRENT, "nothing left to do");

        let foreign = dir.path().join("customers.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE customers (id INTEGER)")
            .unwrap();
        for refused in [
            inspect(&foreign).unwrap_err(),
            migrate(&foreign).unwrap_err(),
        ] {
            assert!(
                refused.to_string().contains("tables customers"),
                "{refused}"
            );
        }
        let tables: i64 = Connection::open(&foreign)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "nothing was added to another program's database");

        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", CURRENT + 1)
            .unwrap();
        drop(conn);
        assert!(inspect(&path).unwrap().too_new());
        assert!(matches!(
            migrate(&path),
            Err(StoreError::TooNew { found, .. }) if found == CURRENT + 1
        ));
    }
}

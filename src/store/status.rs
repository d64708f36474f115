//! What `tokenwarden store check` reports and `store migrate` does: the schema version of a
//! store, read without changing it, and how much unfinished work waits in it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::migrate::{CURRENT, table_exists, version};
use super::sql::Conn;
use super::{Location, Store, StoreError, pg};

/// A store as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// The SQLite file, for a store kept in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The PostgreSQL database (its URL, which holds no password), for a store kept in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The schema version the store has (0: empty).
    pub schema_version: i64,
    /// The version this build writes.
    pub supported_version: i64,
    /// Pending actions still open (waiting for a confirmation or approvals); `None` where the
    /// store's schema has no such table yet.
    pub open_actions: Option<u64>,
    /// Journal entries not yet settled (operations running, or left by a process that died).
    pub unsettled_operations: Option<u64>,
    /// Outcome notices not yet posted to Discord.
    pub unsent_notices: Option<u64>,
    /// MCP HTTP sessions kept for processes to take over.
    pub mcp_sessions: Option<u64>,
    /// Reveal links (and private-page secrets) waiting to be opened, sealed.
    pub reveal_links: Option<u64>,
    /// Work one process at a time does (`discord.gateway`: the gateway connection), and who
    /// holds it; `None` where the store's schema has no leases yet.
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
    /// Whether this build can use the store as it is (older ones are migrated when opened).
    pub fn too_new(&self) -> bool {
        self.schema_version > self.supported_version
    }
}

/// Reads the store without writing anything (no migration; no file or table created).
pub fn inspect(location: &Location) -> Result<StoreStatus, StoreError> {
    let mut conn: Box<dyn Conn> = match location {
        Location::File(path) => Box::new(open_read_only(path)?),
        Location::Postgres(target) => Box::new(pg::PgConn::open(target)?),
    };
    let conn = conn.as_mut();
    let schema_version = version(conn)?;
    if schema_version == 0 {
        super::migrate::refuse_foreign(conn)?;
    }
    let mut count = |table: &str, sql: &str| -> Result<Option<u64>, StoreError> {
        if !table_exists(conn, table)? {
            return Ok(None);
        }
        Ok(Some(conn.scalar(sql, &[])?))
    };
    let open_actions = count(
        "pending",
        "SELECT COUNT(*) FROM pending WHERE state = 'open'",
    )?;
    let unsettled_operations = count("journal", "SELECT COUNT(*) FROM journal WHERE settled = 0")?;
    let unsent_notices = count(
        "outbox",
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
    )?;
    let mcp_sessions = count("mcp_sessions", "SELECT COUNT(*) FROM mcp_sessions")?;
    let reveal_links = count("reveal_links", "SELECT COUNT(*) FROM reveal_links")?;
    let (path, url) = match location {
        Location::File(path) => (Some(path.clone()), None),
        Location::Postgres(target) => (None, Some(target.url.clone())),
    };
    Ok(StoreStatus {
        path,
        url,
        schema_version,
        supported_version: CURRENT,
        open_actions,
        unsettled_operations,
        unsent_notices,
        mcp_sessions,
        reveal_links,
        leases: leases(conn)?,
    })
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
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
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| open_err(e.to_string()))
}

fn leases(conn: &mut dyn Conn) -> Result<Option<Vec<LeaseStatus>>, StoreError> {
    if !table_exists(conn, "leases")? {
        return Ok(None);
    }
    let now = conn.now_ms()?;
    let rows = conn.query(
        "SELECT name, holder, until_ms FROM leases ORDER BY name",
        &[],
    )?;
    let leases = rows
        .iter()
        .map(|r| {
            Ok(LeaseStatus {
                name: r.get(0)?,
                holder: r.get(1)?,
                left_ms: r.get::<i64>(2)?.saturating_sub(now),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(leases))
}

/// Brings the store (a file is created if missing) to this build's schema; returns the version
/// it had before (0 for a new one). A newer store is refused and left alone.
pub fn migrate(location: &Location) -> Result<i64, StoreError> {
    let before = match inspect(location) {
        Ok(s) if s.too_new() => {
            return Err(StoreError::TooNew {
                found: s.schema_version,
                supported: CURRENT,
            });
        }
        Ok(s) => s.schema_version,
        Err(StoreError::Open { path, .. }) if !path.exists() => 0,
        Err(e) => return Err(e),
    };
    Store::connect(location)?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_inspected_without_change_and_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let file = Location::File(path.clone());
        assert!(
            inspect(&file)
                .unwrap_err()
                .to_string()
                .contains("no file there yet")
        );
        assert!(!path.exists(), "inspecting creates nothing");
        assert_eq!(migrate(&file).unwrap(), 0);
        let s = inspect(&file).unwrap();
        assert_eq!((s.schema_version, s.too_new()), (CURRENT, false));
        assert_eq!(
            (s.open_actions, s.unsettled_operations, s.unsent_notices),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(migrate(&file).unwrap(), CURRENT, "nothing left to do");

        let foreign = dir.path().join("customers.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE customers (id INTEGER)")
            .unwrap();
        for refused in [
            inspect(&Location::File(foreign.clone())).unwrap_err(),
            migrate(&Location::File(foreign.clone())).unwrap_err(),
        ] {
            assert!(
                refused.to_string().contains("tables (customers)"),
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
        assert!(inspect(&file).unwrap().too_new());
        assert!(matches!(
            migrate(&file),
            Err(StoreError::TooNew { found, .. }) if found == CURRENT + 1
        ));
    }
}

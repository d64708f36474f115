//! The store's contract suite runs every test on both backends: [`contract!`] turns each test
//! into one on a SQLite file and one on a PostgreSQL database of its own (see `pg_cluster`).

// Shared with the integration tests, which use more of it.
#[allow(dead_code)]
#[path = "../../tests/it/pg_cluster.rs"]
mod pg_cluster;

use super::sql::Conn;
use super::{Location, PgTarget, Store, pg};

/// A store database of one test's own.
pub(crate) struct TestDb {
    location: Location,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            location: Location::File(dir.path().join("store.db")),
            _dir: Some(dir),
        }
    }

    /// `None` where no PostgreSQL server can be had (said loudly; a failure under CI).
    pub(crate) fn postgres() -> Option<Self> {
        let url = pg_cluster::fresh_database()?;
        Some(Self {
            location: Location::Postgres(PgTarget {
                url,
                password: None,
                ca_file: None,
            }),
            _dir: None,
        })
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// A bare connection to the database: no migration runs.
    pub(crate) fn raw(&self) -> Box<dyn Conn> {
        match &self.location {
            Location::File(path) => Box::new(rusqlite::Connection::open(path).unwrap()),
            Location::Postgres(target) => Box::new(pg::PgConn::open(target).unwrap()),
        }
    }

    /// A new handle with a connection of its own, as another process would have.
    pub(crate) fn open(&self) -> Store {
        Store::connect(&self.location).unwrap()
    }
}

impl Store {
    /// How many rows `table` holds.
    pub(crate) fn count_rows(&self, table: &str) -> i64 {
        self.read(|c| c.scalar(&format!("SELECT COUNT(*) FROM {table}"), &[]))
            .unwrap()
    }
}

/// Defines each `fn name(db: &TestDb)` once, and a test of it on each backend
/// (`on_sqlite::name`, `on_postgres::name`).
macro_rules! contract {
    ($($(#[$meta:meta])* fn $name:ident($db:ident) $body:block)*) => {
        $($(#[$meta])* fn $name($db: &$crate::store::testing::TestDb) $body)*
        mod on_sqlite {
            $(#[test]
            fn $name() {
                super::$name(&$crate::store::testing::TestDb::sqlite());
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                if let Some(db) = $crate::store::testing::TestDb::postgres() {
                    super::$name(&db);
                }
            })*
        }
    };
}
pub(crate) use contract;

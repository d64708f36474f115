//! The store a test's processes share: a SQLite file in the test's folder, or a PostgreSQL
//! database of the test's own (see `pg_cluster`). [`on_both_stores!`] runs a test on each.

use std::path::Path;

use tokenwarden::store::{Location, PgTarget, Store};

use crate::pg_cluster;
use crate::procs::Tw;

/// The key every replica of a test seals reveal links with.
pub const LINK_KEY: &str = "5f1d0c8e6a4b2f7e9d3c1a0b8e6f4d2c5f1d0c8e6a4b2f7e9d3c1a0b8e6f4d2c";

/// Which database holds the store.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `tokenwarden.db` in the test's folder, as `write_config` says.
    Sqlite,
    /// A fresh database at this URL.
    Postgres(String),
}

impl Backend {
    /// A fresh PostgreSQL database, or `None` where no server can be had (said loudly; a
    /// failure under CI).
    pub fn postgres() -> Option<Self> {
        pg_cluster::fresh_database().map(Self::Postgres)
    }

    pub fn location(&self, dir: &Path) -> Location {
        match self {
            Self::Sqlite => Location::File(dir.join("tokenwarden.db")),
            Self::Postgres(url) => Location::Postgres(PgTarget {
                url: url.clone(),
                password: None,
                ca_file: None,
            }),
        }
    }

    /// A handle on the store the processes of `dir` use.
    pub fn store(&self, dir: &Path) -> Store {
        Store::connect(&self.location(dir)).unwrap()
    }

    /// `tw`'s config pointed at this store.
    pub fn configure(&self, tw: Tw) -> Tw {
        if let Self::Postgres(url) = self {
            let before = std::fs::read_to_string(&tw.config).unwrap();
            let text = before.replace(
                "[store]\npath = \"tokenwarden.db\"\n",
                &format!("[store]\nurl = \"{url}\"\nlink_key_file = \"link.key\"\n"),
            );
            let dir = tw.config.parent().unwrap();
            std::fs::write(dir.join("link.key"), LINK_KEY).unwrap();
            assert_ne!(
                text, before,
                "the config names its store as write_config does"
            );
            std::fs::write(&tw.config, text).unwrap();
        }
        tw
    }
}

/// For each `async fn name(backend: Backend)`, the tests `name::on_sqlite` and
/// `name::on_postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn on_sqlite() {
                super::$name($crate::backends::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn on_postgres() {
                if let Some(backend) = $crate::backends::Backend::postgres() {
                    super::$name(backend).await;
                }
            }
        })*
    };
}
pub(crate) use on_both_stores;

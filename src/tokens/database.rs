//! A database as a permission picker shows it: its name, and where the server tells them its
//! retention period and number of tables (`system.databases` and `system.tables` in `_internal`).

use std::fmt;
use std::time::Duration;

/// How long a database keeps data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// No retention period: data is kept until deleted.
    Indefinite,
    Period(Duration),
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Indefinite => f.write_str("indefinite"),
            Self::Period(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// A live database. `None` fields are unknown: the server did not say (an older server, or a
/// token that may not read `_internal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    pub retention_period: Option<Retention>,
    /// Live tables in the database.
    pub tables: Option<usize>,
}

impl Database {
    /// A database known only by name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            retention_period: None,
            tables: None,
        }
    }

    /// `retention 30days, 3 tables`, leaving out what is unknown; empty if nothing is known.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.retention_period {
            parts.push(format!("retention {r}"));
        }
        if let Some(n) = self.tables {
            parts.push(format!("{n} table{}", if n == 1 { "" } else { "s" }));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_only_what_is_known() {
        let mut db = Database::named("metrics");
        assert_eq!(db.summary(), "");
        db.retention_period = Some(Retention::Period(Duration::from_secs(30 * 86_400)));
        db.tables = Some(1);
        assert_eq!(db.summary(), "retention 30days, 1 table");
        db.retention_period = Some(Retention::Indefinite);
        db.tables = Some(0);
        assert_eq!(db.summary(), "retention indefinite, 0 tables");
    }
}

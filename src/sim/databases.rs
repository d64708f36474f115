//! The simulator's databases as InfluxDB 3's catalog keeps them: ids, retention periods, soft
//! deletion (renamed in place, so the name can be reused) and hard-deletion times, with the
//! catalog's error texts. Sources are in `influxdata/influxdb` at `d7834110b3` (3.10.0-nightly).

use std::collections::BTreeMap;
use std::time::Duration;

use super::catalog::INTERNAL_DB;

/// The default time between a soft delete and the hard delete, 72 hours in milliseconds
/// (`influxdb3_catalog/src/catalog/versions/v3.rs`: `Catalog::DEFAULT_HARD_DELETE_DURATION`).
const DEFAULT_HARD_DELETE_MS: i64 = 72 * 3600 * 1000;

/// One database. The simulator holds no tables, so it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDatabase {
    pub id: u32,
    pub name: String,
    /// `None` is `RetentionPeriod::Indefinite`. Whole seconds: the catalog record keeps
    /// `duration_secs` (`influxdb3_catalog/src/format/records/conversions.rs`:
    /// `From<Option<Duration>> for RetentionPeriod`).
    pub retention_secs: Option<u64>,
    pub deleted: bool,
    /// When the database is to be hard-deleted, in epoch milliseconds.
    pub hard_delete_at: Option<i64>,
}

/// When a soft-deleted database is to be hard-deleted (`hard_delete_at` of
/// `DELETE /api/v3/configure/database`; `influxdb3_types/src/http.rs`: `HardDeletionTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardDelete {
    Never,
    Default,
    Now,
    /// Epoch milliseconds.
    At(i64),
}

/// Database failures, as `influxdb3_catalog/src/error.rs` words them and
/// `influxdb3_server/src/http.rs` (`impl IntoResponse for CatalogError`) answers them: plain
/// text, no Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    AlreadyExists,
    NotFound(String),
    AlreadyDeleted(String),
    CannotDeleteInternal,
    CannotModifyInternal,
}

impl DbError {
    pub fn status(&self) -> u16 {
        match self {
            Self::AlreadyExists | Self::AlreadyDeleted(_) => 409,
            Self::NotFound(_) => 404,
            // Not in the `IntoResponse` match: the catch-all 500.
            Self::CannotDeleteInternal | Self::CannotModifyInternal => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::AlreadyExists => "attempted to create a resource that already exists".into(),
            Self::NotFound(n) => format!("the requested resource was not found: {n}"),
            Self::AlreadyDeleted(n) => {
                format!("attempted to modify resource that was already deleted: {n}")
            }
            Self::CannotDeleteInternal => "cannot delete internal db".into(),
            Self::CannotModifyInternal => "cannot modify internal db".into(),
        }
    }
}

/// All databases by id, deleted ones included (`Catalog::list_db_schema` returns them all).
#[derive(Debug)]
pub struct Databases {
    next_id: u32,
    by_id: BTreeMap<u32, SimDatabase>,
}

impl Default for Databases {
    fn default() -> Self {
        let mut dbs = Self {
            next_id: 0,
            by_id: BTreeMap::new(),
        };
        let _ = dbs.create(INTERNAL_DB, None);
        dbs
    }
}

impl Databases {
    /// Every database, deleted ones included, in id order.
    pub fn all(&self) -> impl Iterator<Item = &SimDatabase> {
        self.by_id.values()
    }

    /// The database now called `name` (a deleted one answers to its new name only).
    pub fn by_name(&self, name: &str) -> Option<&SimDatabase> {
        self.by_id.values().find(|d| d.name == name)
    }

    /// The id of the live database `name`.
    pub fn active_id(&self, name: &str) -> Option<u32> {
        self.by_name(name).filter(|d| !d.deleted).map(|d| d.id)
    }

    /// `CreateDatabaseOp::prepare` (`influxdb3_catalog/src/catalog/versions/v3/ops/database.rs`):
    /// a name in use, even by a renamed deleted database, is `AlreadyExists`.
    pub fn create(&mut self, name: &str, retention: Option<Duration>) -> Result<u32, DbError> {
        if self.by_name(name).is_some() {
            return Err(DbError::AlreadyExists);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(
            id,
            SimDatabase {
                id,
                name: name.to_owned(),
                retention_secs: retention.map(|d| d.as_secs()),
                deleted: false,
                hard_delete_at: None,
            },
        );
        Ok(id)
    }

    /// `Catalog::set_retention_period_for_database` / `clear_retention_period_for_database`
    /// (`influxdb3_catalog/src/catalog/versions/v3/catalog.rs`): `require_active_db` first, then
    /// `active_database` (`.../v3/ops/mod.rs`), which refuses `_internal`.
    pub fn set_retention(
        &mut self,
        name: &str,
        retention: Option<Duration>,
    ) -> Result<(), DbError> {
        let db = self
            .by_id
            .values_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| DbError::NotFound(name.to_owned()))?;
        if db.deleted || db.hard_delete_at.is_some() {
            return Err(DbError::AlreadyDeleted(name.to_owned()));
        }
        if name == INTERNAL_DB {
            return Err(DbError::CannotModifyInternal);
        }
        db.retention_secs = retention.map(|d| d.as_secs());
        Ok(())
    }

    /// `Catalog::soft_delete_database` (`.../v3/catalog.rs`), `SoftDeleteDatabaseOp::prepare`
    /// (`.../v3/ops/database.rs`) and `SoftDeleteDatabase::apply`
    /// (`influxdb3_catalog/src/format/records/database.rs`): the database is renamed
    /// `<name>-<YYYYMMDDTHHMMSS>` (`-<id>` added on a clash, `soft_deleted_name` in
    /// `.../records/conversions.rs`) and marked deleted; deleting it again under its new name only
    /// changes the hard-delete time. Returns the database's id.
    pub fn soft_delete(&mut self, name: &str, when: HardDelete, now: i64) -> Result<u32, DbError> {
        if name == INTERNAL_DB {
            return Err(DbError::CannotDeleteInternal);
        }
        let current = self
            .by_name(name)
            .ok_or_else(|| DbError::NotFound(name.to_owned()))?;
        // `Default` on a database that already has a hard-delete time keeps it (idempotent).
        let hard_delete_at = match (when, current.hard_delete_at) {
            (HardDelete::Default, Some(existing)) => Some(existing),
            (HardDelete::Default, None) => Some(now.saturating_add(DEFAULT_HARD_DELETE_MS)),
            (HardDelete::Never, _) => None,
            (HardDelete::Now, _) => Some(now),
            (HardDelete::At(t), _) => Some(t),
        };
        if current.deleted && current.hard_delete_at == hard_delete_at {
            return Err(DbError::AlreadyDeleted(name.to_owned()));
        }
        let (id, deleted) = (current.id, current.deleted);
        let new_name = (!deleted).then(|| self.deleted_name(name, id, now));
        if let Some(db) = self.by_id.get_mut(&id) {
            if let Some(n) = new_name {
                db.name = n;
            }
            db.deleted = true;
            db.hard_delete_at = hard_delete_at;
        }
        Ok(id)
    }

    fn deleted_name(&self, name: &str, id: u32, now: i64) -> String {
        let stamp = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.format("%Y%m%dT%H%M%S").to_string())
            .unwrap_or_default();
        let stamped = format!("{name}-{stamp}");
        if self.by_name(&stamped).is_some() {
            format!("{stamped}-{id}")
        } else {
            stamped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_name_is_free_and_the_old_database_keeps_its_id() {
        let mut dbs = Databases::default();
        let id = dbs.create("metrics", None).unwrap();
        // 2026-06-17T13:02:33Z
        let now = 1_781_701_353_000;
        assert_eq!(dbs.soft_delete("metrics", HardDelete::Default, now), Ok(id));
        let gone = dbs.by_id.get(&id).unwrap();
        assert_eq!(gone.name, "metrics-20260617T130233");
        assert_eq!(gone.hard_delete_at, Some(now + 72 * 3600 * 1000));
        assert_eq!(dbs.active_id("metrics"), None);
        let again = dbs.create("metrics", None).unwrap();
        assert_ne!(again, id);
        assert_eq!(
            dbs.soft_delete("metrics-20260617T130233", HardDelete::Default, now),
            Err(DbError::AlreadyDeleted("metrics-20260617T130233".into()))
        );
        assert_eq!(
            dbs.soft_delete("metrics-20260617T130233", HardDelete::Never, now),
            Ok(id)
        );
        dbs.soft_delete("metrics", HardDelete::Now, now).unwrap();
        assert!(
            dbs.by_name(&format!("metrics-20260617T130233-{again}"))
                .is_some()
        );
    }

    #[test]
    fn internal_and_unknown_databases_are_refused_as_the_catalog_does() {
        let mut dbs = Databases::default();
        assert_eq!(
            dbs.soft_delete(INTERNAL_DB, HardDelete::Now, 0),
            Err(DbError::CannotDeleteInternal)
        );
        assert_eq!(
            dbs.set_retention(INTERNAL_DB, None),
            Err(DbError::CannotModifyInternal)
        );
        assert_eq!(
            dbs.set_retention("nope", None),
            Err(DbError::NotFound("nope".into()))
        );
        assert_eq!(dbs.create(INTERNAL_DB, None), Err(DbError::AlreadyExists));
    }
}

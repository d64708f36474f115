//! Interaction ids already handled: the first sighting of an id wins, atomically across
//! processes; rows older than [`REMEMBER`] are pruned (Discord refuses requests that old anyway).

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError};

/// How long an id is remembered; longer than any accepted request's age.
pub const REMEMBER: chrono::Duration = chrono::Duration::minutes(15);

impl Store {
    /// True if `id` was not seen before (it is remembered from now on), false for a replay.
    pub fn first_sighting(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let forgotten = super::seconds_before(now, REMEMBER);
        let conn = self.conn();
        conn.execute(
            "DELETE FROM interactions WHERE seen_at < ?1",
            params![forgotten],
        )?;
        let inserted = conn.execute(
            "INSERT INTO interactions (id, seen_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            params![id, now.timestamp()],
        )?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_and_forgotten_after_a_while() {
        let store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        assert!(store.first_sighting("discord:1", now).unwrap());
        assert!(!store.first_sighting("discord:1", now).unwrap());
        assert!(store.first_sighting("discord:2", now).unwrap());
        let later = now + REMEMBER + chrono::Duration::seconds(1);
        assert!(
            store.first_sighting("discord:1", later).unwrap(),
            "pruned after 15 minutes"
        );
    }

    #[test]
    fn the_earliest_representable_time_prunes_nothing_instead_of_panicking() {
        let store = Store::open_in_memory().unwrap();
        assert!(
            store
                .first_sighting("discord:3", DateTime::<Utc>::MIN_UTC)
                .unwrap()
        );
    }

    #[test]
    fn two_connections_agree_on_the_first_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (a, b) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
        let now = Utc::now();
        assert!(a.first_sighting("discord:9", now).unwrap());
        assert!(!b.first_sighting("discord:9", now).unwrap());
    }
}

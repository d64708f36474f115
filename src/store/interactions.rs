//! Interaction ids already handled: the first sighting of an id wins, atomically across
//! processes; rows older than [`REMEMBER`] are pruned (Discord refuses requests that old anyway).

use super::sql::args;
use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// How long an id is remembered; longer than any accepted request's age.
pub const REMEMBER: chrono::Duration = chrono::Duration::minutes(15);

impl Store {
    /// True if `id` was not seen before (it is remembered from now on), false for a replay.
    pub fn first_sighting(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let forgotten = super::seconds_before(now, REMEMBER);
        let inserted = self.write(|c| {
            c.execute(
                "DELETE FROM interactions WHERE seen_at < ?1",
                args![forgotten],
            )?;
            c.execute(
                "INSERT INTO interactions (id, seen_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                args![id, now.timestamp()],
            )
        })?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::contract! {
    fn an_id_is_new_once_and_forgotten_after_a_while(db) {
        let store = db.open();
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
    fn the_earliest_representable_time_prunes_nothing_instead_of_panicking(db) {
        let store = db.open();
        assert!(
            store
                .first_sighting("discord:3", DateTime::<Utc>::MIN_UTC)
                .unwrap()
        );
    }
    fn two_connections_agree_on_the_first_sighting(db) {
        let (a, b) = (db.open(), db.open());
        let now = Utc::now();
        assert!(a.first_sighting("discord:9", now).unwrap());
        assert!(!b.first_sighting("discord:9", now).unwrap());
    }
    }
}

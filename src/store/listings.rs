//! Listings people page through (Discord's `/token list`): what they asked for, never what came
//! back, kept in the store so a page button works in whichever process shares it and after a
//! restart. A listing lapses [`KEEP_LISTING`] after it was made; lapsed rows are deleted when
//! the next listing is saved.

use super::sql::args;
use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::tokens::ListFilter;

/// How long a listing's page buttons keep working.
pub const KEEP_LISTING: chrono::Duration = chrono::Duration::minutes(15);

/// What someone asked to list: the account that asked, the instance and the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The account that made it ([`crate::actor::Actor::account`]); only it may page through.
    pub owner: String,
    pub instance: Option<String>,
    pub filter: ListFilter,
}

fn lapsed_before(now: DateTime<Utc>) -> i64 {
    super::seconds_before(now, KEEP_LISTING)
}

impl Store {
    /// Saves `listing` as `id`, made at `now`, and forgets every listing lapsed by then.
    pub fn save_listing(
        &self,
        id: &str,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let filter = serde_json::to_string(&listing.filter).map_err(|e| StoreError::Corrupt {
            id: format!("listing {id}"),
            detail: e.to_string(),
        })?;
        self.write(|c| {
            c.execute(
                "DELETE FROM listings WHERE created_at < ?1",
                args![lapsed_before(now)],
            )?;
            c.execute(
                "INSERT INTO listings (id, owner, instance, filter, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![id, &listing.owner, listing.instance.as_deref(), filter, now.timestamp()],
            )
        })?;
        Ok(())
    }

    /// Listing `id` if it exists and has not lapsed at `now`.
    pub fn listing(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Listing>, StoreError> {
        let row = self.read(|c| {
            c.query_opt(
                "SELECT owner, instance, filter FROM listings WHERE id = ?1 AND created_at >= ?2",
                args![id, lapsed_before(now)],
            )
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (owner, instance) = (row.get(0)?, row.get(1)?);
        let filter =
            serde_json::from_str(&row.get::<String>(2)?).map_err(|e| StoreError::Corrupt {
                id: format!("listing {id}"),
                detail: e.to_string(),
            })?;
        Ok(Some(Listing {
            owner,
            instance,
            filter,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tokens::{TokenKind, TokenStatus};

    fn listing() -> Listing {
        Listing {
            owner: "discord:42".into(),
            instance: Some("prod".into()),
            filter: ListFilter {
                name_contains: Some("ci-`\u{1b}[2J".into()),
                name_is: None,
                kind: Some(TokenKind::Resource),
                database: Some("metrics".into()),
                status: Some(TokenStatus::Active),
                expiring_within: Some(Duration::from_secs(7 * 86400)),
            },
        }
    }

    crate::store::testing::contract! {
    fn a_listing_reads_back_whole_until_it_lapses(db) {
        let store = db.open();
        let now = Utc::now();
        store.save_listing("abc", &listing(), now).unwrap();
        assert_eq!(store.listing("abc", now).unwrap(), Some(listing()));
        assert_eq!(store.listing("other", now).unwrap(), None);
        let last = now + KEEP_LISTING - chrono::Duration::seconds(1);
        assert_eq!(store.listing("abc", last).unwrap(), Some(listing()));
        let lapsed = now + KEEP_LISTING + chrono::Duration::seconds(1);
        assert_eq!(store.listing("abc", lapsed).unwrap(), None);
    }
    fn saving_forgets_lapsed_listings(db) {
        let store = db.open();
        let now = Utc::now();
        store.save_listing("old", &listing(), now).unwrap();
        let later = now + KEEP_LISTING + chrono::Duration::seconds(1);
        store.save_listing("new", &listing(), later).unwrap();
        let rows = store.count_rows("listings");
        assert_eq!(rows, 1, "the lapsed row is gone, not only hidden");
        assert!(store.listing("new", later).unwrap().is_some());
    }
    fn the_ends_of_time_neither_panic_nor_lose_a_listing(db) {
        let store = db.open();
        store
            .save_listing("min", &listing(), DateTime::<Utc>::MIN_UTC)
            .unwrap();
        assert!(
            store
                .listing("min", DateTime::<Utc>::MIN_UTC)
                .unwrap()
                .is_some()
        );
    }
    fn another_process_sharing_the_file_sees_the_listing(db) {
        let (a, b) = (db.open(), db.open());
        let now = Utc::now();
        a.save_listing("shared", &listing(), now).unwrap();
        assert_eq!(b.listing("shared", now).unwrap(), Some(listing()));
    }
    }
}

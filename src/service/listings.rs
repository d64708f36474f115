//! Listings someone pages through, kept in the store: a page button works in whichever process
//! answers it and after a restart, and only the account that made a listing can page through it.

use rand::Rng;

use super::{ServiceError, TokenService, blocking};
use crate::actor::Actor;
use crate::store::Listing;
use crate::tokens::ListFilter;

impl TokenService {
    /// Keeps what `actor` asked to list (for [`crate::store::KEEP_LISTING`]); returns its id.
    pub async fn save_listing(
        &self,
        actor: &Actor,
        instance: Option<String>,
        filter: ListFilter,
    ) -> Result<String, ServiceError> {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let listing = Listing {
            owner: actor.account(),
            instance,
            filter,
        };
        let (store, now, key) = (self.store.clone(), self.now(), id.clone());
        blocking(move || store.save_listing(&key, &listing, now)).await?;
        Ok(id)
    }

    /// Listing `id`, if it exists, has not lapsed and was made by `actor`'s account.
    pub async fn listing(&self, actor: &Actor, id: &str) -> Result<Option<Listing>, ServiceError> {
        let (store, now, key) = (self.store.clone(), self.now(), id.to_owned());
        let found = blocking(move || store.listing(&key, now)).await?;
        Ok(found.filter(|l| l.owner == actor.account()))
    }
}

//! Interaction ids an adapter has seen, so a replayed request (a re-sent signed Discord
//! interaction) is recognised in any process that shares the store.

use super::{ServiceError, TokenService, blocking};

impl TokenService {
    /// True the first time `id` is seen (within the store's memory of 15 minutes), false after.
    pub async fn first_sighting(&self, id: &str) -> Result<bool, ServiceError> {
        let (store, id, now) = (self.store.clone(), id.to_owned(), self.now());
        blocking(move || store.first_sighting(&id, now)).await
    }
}

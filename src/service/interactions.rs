//! Interaction ids an adapter has seen, so a replayed request (a re-sent signed Discord
//! interaction) is recognised in any process that shares the store.

use super::{ServiceError, TokenService, blocking};

impl TokenService {
    /// True the first time `id` is seen (within the store's memory of 15 minutes, by the
    /// database's clock on a shared store: a replica whose clock runs ahead must not forget
    /// ids the others saw), false after.
    pub async fn first_sighting(&self, id: &str) -> Result<bool, ServiceError> {
        let now = self.shared_now().await;
        let (store, id) = (self.store.clone(), id.to_owned());
        blocking(move || store.first_sighting(&id, now)).await
    }
}

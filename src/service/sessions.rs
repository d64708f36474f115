//! MCP HTTP sessions kept in the store with their principals, so that any process sharing it can
//! take a session over for its own principal only (see [`crate::store::StoredSession`]).

use super::{ServiceError, TokenService, blocking};
use crate::store::StoredSession;

impl TokenService {
    /// Records that `principal` opened session `id`.
    pub async fn session_opened(&self, id: &str, principal: &str) -> Result<(), ServiceError> {
        let (store, now) = (self.store.clone(), self.now());
        let (id, principal) = (id.to_owned(), principal.to_owned());
        blocking(move || store.session_opened(&id, &principal, now)).await
    }

    /// Keeps session `id`'s `initialize` parameters (JSON); false if too large to keep.
    pub async fn session_state_saved(&self, id: &str, state: String) -> Result<bool, ServiceError> {
        let (store, id) = (self.store.clone(), id.to_owned());
        blocking(move || store.session_state_saved(&id, &state)).await
    }

    /// Session `id` as the store knows it, if it is open there.
    pub async fn stored_session(&self, id: &str) -> Result<Option<StoredSession>, ServiceError> {
        let (store, now, id) = (self.store.clone(), self.now(), id.to_owned());
        blocking(move || store.session(&id, now)).await
    }

    /// Forgets session `id`.
    pub async fn session_closed(&self, id: &str) -> Result<(), ServiceError> {
        let (store, id) = (self.store.clone(), id.to_owned());
        blocking(move || store.session_closed(&id)).await
    }
}

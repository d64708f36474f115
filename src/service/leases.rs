//! Named leases in the store, for work that one process at a time must do among those sharing
//! it (the Discord gateway connection): see [`crate::store::LeaseHolder`].

use std::time::Duration;

use super::{ServiceError, TokenService, blocking};
use crate::store::LeaseHolder;

impl TokenService {
    /// Takes lease `name` for `ttl`, or renews it if this process holds it; says who holds it.
    pub async fn take_lease(&self, name: &str, ttl: Duration) -> Result<LeaseHolder, ServiceError> {
        let (store, name) = (self.store.clone(), name.to_owned());
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        blocking(move || store.take_lease(&name, ttl_ms)).await
    }

    /// Gives lease `name` up if this process holds it.
    pub async fn release_lease(&self, name: &str) -> Result<(), ServiceError> {
        let (store, name) = (self.store.clone(), name.to_owned());
        blocking(move || store.release_lease(&name)).await
    }
}

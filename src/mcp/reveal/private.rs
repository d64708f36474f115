//! The private reveal page: a person signs in with the passphrase their `[[people]]` entry
//! holds the hash of, and sees their oldest waiting secret, once. No link opens it alone, and
//! the passphrase never passes through the MCP client. After
//! [`MAX_PASSPHRASE_FAILURES`](super::MAX_PASSPHRASE_FAILURES) wrong passphrases, that person's
//! waiting secrets are withdrawn.

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::{MAX_PASSPHRASE_FAILURES, RevealHub, lock, page, show};

#[derive(Deserialize)]
struct SignIn {
    person: String,
    passphrase: String,
}

/// A hash nobody's passphrase matches, checked for unknown names so that a wrong name takes
/// as long as a wrong passphrase.
static DECOY: LazyLock<crate::people::Person> = LazyLock::new(|| crate::people::Person {
    passphrase_argon2: crate::people::hash_passphrase("decoy").ok(),
    ..Default::default()
});

pub(super) async fn sign_in() -> Response {
    page::sign_in()
}

pub(super) async fn reveal(State(hub): State<Arc<RevealHub>>, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<SignIn>(&body) else {
        return page::refused();
    };
    let known = hub.service.people().named(&form.person).cloned();
    let person = known.clone().unwrap_or_else(|| DECOY.clone());
    let typed = form.passphrase;
    let verified = tokio::task::spawn_blocking(move || person.verify_passphrase(&typed))
        .await
        .unwrap_or(false);
    let exists = known.is_some();
    let Some(person) = known.filter(|_| verified) else {
        if exists {
            hub.failed_sign_in(&form.person).await;
        }
        tracing::warn!("a wrong name or passphrase was typed on the private reveal page");
        return page::refused();
    };
    lock(&hub.failures).remove(&person.name);
    match hub.take_oldest_for(&person.name) {
        Some(w) => show(&hub, w).await,
        None => page::nothing_waiting(),
    }
}

impl RevealHub {
    /// Counts a wrong passphrase for `person`; at the limit their waiting secrets are withdrawn.
    async fn failed_sign_in(&self, person: &str) {
        let failures = {
            let mut map = lock(&self.failures);
            let n = map.entry(person.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if failures < MAX_PASSPHRASE_FAILURES {
            return;
        }
        lock(&self.failures).remove(person);
        let ids: Vec<String> = lock(&self.slots)
            .iter()
            .filter(|(_, s)| s.waiting.for_person.as_deref() == Some(person))
            .map(|(id, _)| id.clone())
            .collect();
        let why = format!(
            "{MAX_PASSPHRASE_FAILURES} wrong passphrases were typed on the private reveal page"
        );
        for id in ids {
            self.withdraw(&id, &why).await;
        }
    }

    /// Takes `person`'s longest-waiting private secret.
    fn take_oldest_for(&self, person: &str) -> Option<Box<super::Waiting>> {
        let id = lock(&self.slots)
            .iter()
            .filter(|(_, s)| s.waiting.for_person.as_deref() == Some(person))
            .min_by_key(|(_, s)| s.waiting.since)
            .map(|(id, _)| id.clone())?;
        self.take(&id)
    }
}

//! The private reveal page: a person signs in with the passphrase their `[[people]]` entry
//! holds the hash of, and sees their oldest waiting secret, once. No link opens it alone, and
//! the passphrase never passes through the MCP client. After
//! [`MAX_PASSPHRASE_FAILURES`](super::MAX_PASSPHRASE_FAILURES) wrong passphrases, that person's
//! waiting secrets are withdrawn and their sign-in is locked for [`LOCKOUT`]. Sign-ins posted
//! from another site are refused, and Argon2 runs a few at a time.

use std::collections::hash_map::Entry;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{MAX_PASSPHRASE_FAILURES, RevealHub, lock, page, show};

/// How long a person's sign-in stays locked after too many wrong passphrases.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Sign-in attempts of one person since their last success.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// Attempts begun (counted before the passphrase is checked, so that concurrent guesses
    /// count too) and not yet answered by a success.
    tried: u32,
    locked_until: Option<Instant>,
}

/// Argon2 verifications running at once: each takes about 19 MB and a core for tens of
/// milliseconds, so a flood of sign-ins waits here instead of exhausting memory.
static VERIFYING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

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

/// Whether a sign-in was posted by a page of another site (a browser says so in `Origin` and
/// `Sec-Fetch-Site`): such a post could only guess, or lock the person out.
fn cross_site(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if value("sec-fetch-site").is_some_and(|v| !matches!(v, "same-origin" | "none")) {
        return true;
    }
    match (value(header::ORIGIN.as_str()), value(header::HOST.as_str())) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            origin != format!("http://{host}") && origin != format!("https://{host}")
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

pub(super) async fn reveal(
    State(hub): State<Arc<RevealHub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if cross_site(&headers) {
        tracing::warn!("a sign-in posted from another site was refused on the private reveal page");
        return page::cross_site();
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SignIn>(&body) else {
        return page::refused();
    };
    let known = hub.service.people().named(&form.person).cloned();
    if known.is_some()
        && let Some(until) = hub.begin_attempt(&form.person)
    {
        return page::locked(until.saturating_duration_since(Instant::now()));
    }
    // Checked and counted in a task of its own: a client that hangs up mid-check still has
    // its attempt counted (or its success recorded), never left half-done.
    let person = form.person.clone();
    tracing::debug!("checking a sign-in on the private reveal page");
    let checking = tokio::spawn(check_counted(
        Arc::clone(&hub),
        form.person,
        form.passphrase,
    ));
    let verified = checking.await.unwrap_or(false);
    let Some(person) = known.filter(|_| verified).map(|_| person) else {
        tracing::warn!("a wrong name or passphrase was typed on the private reveal page");
        return page::refused();
    };
    match hub.take_oldest_for(&person) {
        Some(w) => show(&hub, w).await,
        None => page::nothing_waiting(),
    }
}

/// Whether `typed` is `person`'s passphrase, with the attempt's outcome recorded: a success
/// clears their count, a failure of someone in `[[people]]` counts (and may lock them out). A
/// person without a passphrase, or a name nobody has, costs the same Argon2 work.
async fn check_counted(hub: Arc<RevealHub>, person: String, typed: String) -> bool {
    let known = hub.service.people().named(&person).cloned();
    let checked = known
        .clone()
        .filter(|p| p.passphrase_argon2.is_some())
        .unwrap_or_else(|| DECOY.clone());
    let verified = match VERIFYING.acquire().await {
        Ok(_permit) => tokio::task::spawn_blocking(move || checked.verify_passphrase(&typed))
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    let verified = verified && known.is_some_and(|p| p.passphrase_argon2.is_some());
    if verified {
        lock(&hub.failures).remove(&person);
    } else if hub.service.people().named(&person).is_some() {
        hub.failed_sign_in(&person).await;
    }
    verified
}

impl RevealHub {
    /// Counts an attempt of `person` before their passphrase is checked; `Some(until)` if their
    /// sign-in is locked (too many attempts, concurrent ones included).
    fn begin_attempt(&self, person: &str) -> Option<Instant> {
        let mut map = lock(&self.failures);
        let a = match map.entry(person.to_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Attempts::default()),
        };
        let now = Instant::now();
        match a.locked_until {
            Some(until) if until > now => return Some(until),
            Some(_) => *a = Attempts::default(),
            None => {}
        }
        if a.tried >= MAX_PASSPHRASE_FAILURES {
            return Some(a.locked_until.unwrap_or(now + LOCKOUT));
        }
        a.tried += 1;
        None
    }

    /// A wrong passphrase of `person`: at the limit their waiting secrets are withdrawn and
    /// their sign-in is locked for [`LOCKOUT`].
    async fn failed_sign_in(&self, person: &str) {
        {
            let mut map = lock(&self.failures);
            let Some(a) = map.get_mut(person) else {
                return;
            };
            if a.tried < MAX_PASSPHRASE_FAILURES || a.locked_until.is_some() {
                return;
            }
            a.locked_until = Some(Instant::now() + LOCKOUT);
        }
        let ids: Vec<String> = lock(&self.slots)
            .iter()
            .filter(|(_, s)| s.waiting.held.for_person.as_deref() == Some(person))
            .map(|(id, _)| id.clone())
            .collect();
        let why = format!(
            "{MAX_PASSPHRASE_FAILURES} wrong passphrases were typed on the private reveal page"
        );
        for id in ids {
            self.withdraw(&id, &why).await;
        }
        tracing::warn!(
            "{MAX_PASSPHRASE_FAILURES} wrong passphrases for one person on the private reveal \
             page: their waiting secrets were withdrawn and signing in is locked for {} minutes",
            LOCKOUT.as_secs() / 60
        );
    }

    /// Takes `person`'s longest-waiting private secret.
    fn take_oldest_for(&self, person: &str) -> Option<Box<super::Waiting>> {
        let id = lock(&self.slots)
            .iter()
            .filter(|(_, s)| s.waiting.held.for_person.as_deref() == Some(person))
            .min_by_key(|(_, s)| s.waiting.since)
            .map(|(id, _)| id.clone())?;
        self.take(&id)
    }
}

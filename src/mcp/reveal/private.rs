//! The private reveal page: a person signs in with the passphrase their `[[people]]` entry
//! holds the hash of, and sees their oldest waiting secret, once. No link opens it alone, and
//! the passphrase never passes through the MCP client. After
//! [`MAX_PASSPHRASE_FAILURES`](crate::service::MAX_PASSPHRASE_FAILURES) wrong passphrases (counted
//! in the store, across replicas), that person's waiting secrets are withdrawn and their sign-in
//! is locked for [`LOCKOUT`]. Sign-ins posted from another site are refused, and Argon2 runs a
//! few at a time.

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{RevealHub, page, show};
use crate::service::{LinkPick, MAX_PASSPHRASE_FAILURES};

pub use crate::service::LOCKOUT;

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

/// Whether a sign-in was posted by a page of another site: such a post could only guess, or
/// lock the person out. A browser that sends `Sec-Fetch-Site` says so there, and that is the
/// answer: its `Origin` may be `null` for the page's own post (a page whose referrer policy is
/// `no-referrer` makes Chromium and Firefox send that). Otherwise `Origin` must be this host;
/// `null` then is refused (a sandboxed frame sends it too).
fn cross_site(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
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
    if known.is_some() {
        match hub.service.signin_begin(&form.person).await {
            Ok(None) => {}
            Ok(Some(left)) => return page::locked(left),
            Err(e) => {
                tracing::error!(error = %e, "could not count a sign-in on the private reveal page");
                return page::refused();
            }
        }
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
    match hub.take(LinkPick::OldestFor(person)).await {
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
    let counted = if verified {
        hub.service.signin_succeeded(&person).await
    } else if hub.service.people().named(&person).is_some() {
        hub.service.signin_failed(&person).await.map(|locked| {
            if locked {
                tracing::warn!(
                    "{MAX_PASSPHRASE_FAILURES} wrong passphrases for one person on the private reveal \
                     page: their waiting secrets were withdrawn and signing in is locked for {} minutes",
                    LOCKOUT.as_secs() / 60
                );
            }
        })
    } else {
        Ok(())
    };
    if let Err(e) = counted {
        tracing::error!(error = %e, "could not record a sign-in on the private reveal page");
    }
    verified
}

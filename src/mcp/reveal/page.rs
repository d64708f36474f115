//! The reveal pages' markup and headers. A strict Content-Security-Policy lets a page run only
//! its own static style and copy script, allowed by their hashes; nothing is cached, sent to
//! another site as a referrer, or framed.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}\
code{display:block;padding:1rem;background:#f4f4f4;word-break:break-all;font-size:1rem}\
button{font-size:1rem;padding:.5rem 1rem}";

/// Copies `#secret` to the clipboard when `#copy` is pressed, and shows the button (hidden
/// without JavaScript, where it could not work).
const COPY_SCRIPT: &str = include_str!("copy.js");

/// The policy every reveal page is sent with.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
        csp_hash(COPY_SCRIPT),
        csp_hash(STYLE)
    )
});

/// A CSP hash source for an inline element's exact text.
fn csp_hash(text: &str) -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP.as_str()),
        ],
        page,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A link that was used or has expired.
pub(super) fn gone() -> Response {
    html(
        StatusCode::GONE,
        "This link is gone",
        "<p>It was used already or it expired. Secrets are shown once; ask for a new token if you missed it.</p>",
    )
}

/// Text that was never a link.
pub(super) fn unknown() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "<p>No such reveal link.</p>",
    )
}

/// The page a link opens: a button that shows the secret, which is not on this page.
pub(super) fn ready(token_name: &str) -> Response {
    html(
        StatusCode::OK,
        "A new InfluxDB 3 token is ready",
        &format!(
            "<p>The secret of token <b>{}</b> is shown once, when you press the button. Have a safe \
             place ready for it.</p><form method=\"post\"><button type=\"submit\">Show the secret once</button></form>",
            escape(token_name)
        ),
    )
}

/// The private page's sign-in form. Its referrer policy is `same-origin`, not `no-referrer`: under
/// `no-referrer` a browser sends `Origin: null` with the form's own post, which the cross-site
/// check must then refuse from a browser that sends no `Sec-Fetch-Site`. Its URL holds nothing
/// secret, and no other origin gets a referrer either way.
pub(super) fn sign_in() -> Response {
    let mut page = sign_in_form();
    page.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    page
}

fn sign_in_form() -> Response {
    html(
        StatusCode::OK,
        "Your new InfluxDB 3 token",
        "<p>Sign in with your name and passphrase as your tokenwarden administrator set them up. \
         The secret is shown once.</p><form method=\"post\">\
         <p><label>Name <input name=\"person\" autocomplete=\"username\" required></label></p>\
         <p><label>Passphrase <input name=\"passphrase\" type=\"password\" \
         autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\">Show my secret once</button></p></form>",
    )
}

/// A wrong name or passphrase (which of the two is not said).
pub(super) fn refused() -> Response {
    html(
        StatusCode::FORBIDDEN,
        "Wrong name or passphrase",
        &format!(
            "<p>Nothing is shown. After {} wrong passphrases the secrets waiting for that person are \
             withdrawn, their tokens deleted, and signing in is locked for {} minutes.</p>\
             <p><a href=\"private\">Try again</a></p>",
            super::MAX_PASSPHRASE_FAILURES,
            super::private::LOCKOUT.as_secs() / 60
        ),
    )
}

/// Too many wrong passphrases: sign-in is locked for a while.
pub(super) fn locked(left: std::time::Duration) -> Response {
    html(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong passphrases",
        &format!(
            "<p>Nothing is shown, and the secrets that were waiting for this person were withdrawn. \
             Signing in is possible again in {} minutes; then ask for a new token.</p>",
            left.as_secs().div_ceil(60).max(1)
        ),
    )
}

/// A sign-in posted by a page of another site.
pub(super) fn cross_site() -> Response {
    html(
        StatusCode::FORBIDDEN,
        "Sign in from this page",
        "<p>This sign-in came from another site. Open the private reveal page itself and sign in there.</p>",
    )
}

/// Signed in, but no secret waits.
pub(super) fn nothing_waiting() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "No secret is waiting for you",
        "<p>It was shown already, or its time ran out and its token was deleted. Ask for a new token.</p>",
    )
}

/// The token was deleted after its link was made, so its secret is not shown.
pub(super) fn deleted(token_name: &str) -> Response {
    html(
        StatusCode::GONE,
        "This token was deleted",
        &format!(
            "<p>Token <b>{}</b> was deleted after this link was made, so its secret no longer \
             works and is not shown. Ask for a new token.</p>",
            escape(token_name)
        ),
    )
}

/// The secret, once, with a button that copies it.
pub(super) fn secret(token_name: &str, secret: &str) -> Response {
    html(
        StatusCode::OK,
        "Your InfluxDB 3 token",
        &format!(
            "<p>Token <b>{}</b>. Copy it now: this page will not show it again.</p>\
             <code id=\"secret\">{}</code><p><button type=\"button\" id=\"copy\" hidden>Copy</button></p>\
             <p>Send it as the header <i>Authorization: Bearer &lt;token&gt;</i>.</p>\
             <script>{COPY_SCRIPT}</script>",
            escape(token_name),
            escape(secret)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_pages_own_style_and_script() {
        // Hash sources are checked against known values so a change to either shows up here.
        assert_eq!(
            csp_hash("alert(1)"),
            "sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI="
        );
        assert!(CSP.contains(&format!("script-src '{}'", csp_hash(COPY_SCRIPT))));
        assert!(CSP.contains(&format!("style-src '{}'", csp_hash(STYLE))));
        assert!(!CSP.contains("unsafe"));
        assert!(!COPY_SCRIPT.contains("</script"));
    }
}

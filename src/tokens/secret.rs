//! The raw token string: a type that never prints, and redaction for text that might hold one.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The prefix every InfluxDB 3 token string starts with.
pub const TOKEN_PREFIX: &str = "apiv3_";

/// A raw InfluxDB 3 token. `Debug` shows a placeholder, there is no `Display`, and the string is
/// only reachable through [`RawToken::expose`], which belongs in the one delivery to its owner.
#[derive(Clone)]
pub struct RawToken(SecretString);

impl RawToken {
    pub fn new(secret: String) -> Self {
        Self(SecretString::from(secret))
    }

    /// The secret itself. Call this only where the token is handed to its owner.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawToken(<redacted>)")
    }
}

/// Replaces anything that looks like a raw token in `text` with `apiv3_<redacted>`, for
/// server-provided text that ends up in errors, logs or the audit log.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(TOKEN_PREFIX) {
        out.push_str(&rest[..pos]);
        out.push_str(TOKEN_PREFIX);
        out.push_str("<redacted>");
        let after = &rest[pos + TOKEN_PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let t = RawToken::new("apiv3_secretsecret".into());
        assert_eq!(format!("{t:?}"), "RawToken(<redacted>)");
        assert_eq!(t.expose(), "apiv3_secretsecret");
    }

    #[test]
    fn redact_removes_every_token() {
        let text = "a apiv3_AbC-_9 b \"apiv3_x\"apiv3_";
        assert_eq!(
            redact(text),
            "a apiv3_<redacted> b \"apiv3_<redacted>\"apiv3_<redacted>"
        );
        assert_eq!(redact("nothing here"), "nothing here");
    }
}

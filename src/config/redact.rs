//! Config errors never show a secret: the excerpt a TOML error quotes has every value of a
//! secret-bearing key hidden, and anything shaped like a credential anywhere in the text too
//! (InfluxDB `apiv3_` tokens, Discord bot tokens, passwords in URLs).

use std::sync::LazyLock;

use regex::Regex;

/// `key = value` where the key names a secret (`token`, `influxdb_token`, `bot_token`,
/// `password`, `secret`, `token_env`, `passphrase_hash` ...; not `secret_dir` or `token_file`), in a quoted line of
/// a TOML error.
static SECRET_KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?im)^(\s*\d*\s*\|?\s*[A-Za-z0-9_.-]*(?:token|secret|password|passphrase|bearer|credential)(?:_env|_hash)?\s*=\s*)(.+)$"#)
        .expect("a valid pattern")
});

/// A Discord bot token: three base64url parts joined by dots (ids, timestamp, HMAC).
static DISCORD_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}")
        .expect("a valid pattern")
});

/// The password of `scheme://user:password@host`.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@").expect("a valid pattern")
});

const HIDDEN: &str = "<redacted>";

/// `text` with every secret hidden.
pub fn redact(text: &str) -> String {
    let text = SECRET_KEY_VALUE.replace_all(text, format!("${{1}}{HIDDEN}"));
    let text = crate::tokens::redact(&text);
    let text = DISCORD_TOKEN.replace_all(&text, HIDDEN);
    URL_PASSWORD
        .replace_all(&text, format!("${{1}}{HIDDEN}@"))
        .into_owned()
}

/// Whether `name` could be an environment variable's name (and so is no pasted secret).
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
        && !name.starts_with(crate::tokens::TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_excerpts_are_hidden() {
        let toml_error = "TOML parse error at line 3, column 20\n  |\n3 | influxdb_token = \"apiv3_abc\" x\n  |                    ^\n";
        let shown = redact(toml_error);
        assert!(!shown.contains("apiv3_abc"), "{shown}");
        assert!(shown.contains("influxdb_token = <redacted>"), "{shown}");
        let bot = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz012345";
        assert!(!redact(&format!("bad {bot} here")).contains(bot));
        assert_eq!(
            redact("url = postgres://tw:hunter2@db/tw"),
            "url = postgres://tw:<redacted>@db/tw"
        );
        assert!(redact("unknown field `tokne_file`").contains("tokne_file"));
        assert_eq!(
            redact("secret_delivery = \"email\""),
            "secret_delivery = \"email\""
        );
        assert_eq!(
            redact("1 | token_env = \"X\""),
            "1 | token_env = <redacted>"
        );
    }

    #[test]
    fn a_pasted_token_is_no_variable_name() {
        assert!(is_variable_name("INFLUXDB3_AUTH_TOKEN"));
        assert!(!is_variable_name("apiv3_abcdef"));
        assert!(!is_variable_name("abc.def-ghi"));
    }
}

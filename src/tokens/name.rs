//! Token names: lenient when naming a token that exists, strict when naming a new one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// The name InfluxDB 3 gives the operator token.
pub const OPERATOR_TOKEN_NAME: &str = "_admin";

/// The name of a token. InfluxDB 3 validates nothing, so names of existing tokens are only checked
/// for sanity; names of new tokens must be plain ([`TokenName::parse_new`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenName(String);

impl TokenName {
    /// Longest name accepted for an existing token, in bytes: far beyond any real name, short
    /// enough to fit a request line.
    pub const MAX_LEN: usize = 16 * 1024;
    /// Longest name accepted for a new token, in characters.
    pub const MAX_NEW_LEN: usize = 128;

    /// A name that refers to an existing token, exactly as InfluxDB holds it: anything but empty.
    /// InfluxDB 3 validates no name, so a token named with a leading space, control characters
    /// or 300 bytes must still be deletable; such names are escaped wherever they are shown
    /// ([`crate::shown`]).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError::new("a token name cannot be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError::new(format!(
                "a token name is at most {} bytes long",
                Self::MAX_LEN
            )));
        }
        Ok(Self(s.to_owned()))
    }

    /// A name for a new token: 1 to 128 ASCII letters, digits, `-`, `_` or `.`, starting with a
    /// letter or digit (names starting with `_` are InfluxDB's own, like `_admin`).
    pub fn parse_new(s: &str) -> Result<Self, ParseError> {
        let name = Self::parse(s)?;
        if s.chars().count() > Self::MAX_NEW_LEN {
            return Err(ParseError::new(format!(
                "a new token name is at most {} characters long",
                Self::MAX_NEW_LEN
            )));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(ParseError::new(format!(
                "token name {} must start with a letter or digit (names starting with `_` belong to InfluxDB)",
                crate::shown::quoted(s)
            )));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ParseError::new(format!(
                "token name {} contains {}; use only letters, digits, `-`, `_` and `.`",
                crate::shown::quoted(s),
                crate::shown::quoted(&bad.to_string())
            )));
        }
        Ok(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the operator token `_admin`.
    pub fn is_operator(&self) -> bool {
        self.0 == OPERATOR_TOKEN_NAME
    }

    /// The operator token's name.
    pub fn operator() -> Self {
        Self(OPERATOR_TOKEN_NAME.to_owned())
    }
}

impl TryFrom<String> for TokenName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TokenName> for String {
    fn from(n: TokenName) -> Self {
        n.0
    }
}

impl AsRef<str> for TokenName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_names_are_lenient() {
        assert!(TokenName::parse("odd name with spaces").is_ok());
        assert!(TokenName::parse("_admin").unwrap().is_operator());
        assert!(TokenName::parse("ünïcode").is_ok());
    }

    #[test]
    fn any_existing_name_is_accepted_but_empty_or_absurd() {
        assert_eq!(
            TokenName::parse("").unwrap_err().0,
            "a token name cannot be empty"
        );
        for odd in [" padded", "a\nb", "\u{1b}[2Jx", &"x".repeat(300)] {
            assert_eq!(TokenName::parse(odd).unwrap().as_str(), odd);
        }
        assert!(TokenName::parse(&"x".repeat(TokenName::MAX_LEN + 1)).is_err());
        let e = TokenName::parse_new("\u{1b}[2J").unwrap_err().0;
        assert!(e.contains("\\x1b[2J") && !e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn new_names_are_strict() {
        assert!(TokenName::parse_new("grafana-reader.v2_1").is_ok());
        assert!(
            TokenName::parse_new("_admin")
                .unwrap_err()
                .0
                .contains("belong to InfluxDB")
        );
        let err = TokenName::parse_new("x'; DROP").unwrap_err().0;
        assert!(err.contains("contains `'`"), "{err}");
        assert!(TokenName::parse_new(&"a".repeat(129)).is_err());
        assert!(TokenName::parse_new(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn deserialising_checks_the_name() {
        assert!(serde_json::from_str::<TokenName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<TokenName>("\"\"").is_err());
    }
}

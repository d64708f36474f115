//! The simulator's reading of the `Authorization` header, rule for rule as InfluxDB 3 reads it:
//! one space, case-sensitive `Bearer`/`Token`/`Basic`, Basic split at the last colon.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;

/// What the header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    Missing,
    Token(String),
    /// Not `<scheme> <token>` with a known scheme: 400.
    Malformed,
    /// Not visible ASCII: 500.
    NotAscii,
}

/// The credential in `headers`.
pub fn credential(headers: &HeaderMap) -> Credential {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Credential::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Credential::NotAscii;
    };
    let parts: Vec<&str> = value.split(' ').collect();
    let [scheme, token] = parts.as_slice() else {
        return Credential::Malformed;
    };
    match *scheme {
        "Bearer" | "Token" => Credential::Token((*token).to_owned()),
        "Basic" => basic(token).map_or(Credential::Malformed, Credential::Token),
        _ => Credential::Malformed,
    }
}

fn basic(encoded: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, token) = text.rsplit_once(':')?;
    (!user.contains(':')).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> Credential {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            axum::http::HeaderValue::from_bytes(value).unwrap(),
        );
        credential(&h)
    }

    #[test]
    fn schemes_follow_the_server() {
        assert_eq!(credential(&HeaderMap::new()), Credential::Missing);
        assert_eq!(with(b"Bearer t"), Credential::Token("t".into()));
        assert_eq!(with(b"Token t"), Credential::Token("t".into()));
        assert_eq!(with(b"bearer t"), Credential::Malformed);
        assert_eq!(with(b"Bearer"), Credential::Malformed);
        assert_eq!(with(b"Bearer  t"), Credential::Malformed);
        assert_eq!(with(b"Bearer t x"), Credential::Malformed);
        assert_eq!(with(b"Bearer \xff"), Credential::NotAscii);
    }

    #[test]
    fn basic_takes_the_part_after_the_last_colon() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            with(enc("user:tok").as_bytes()),
            Credential::Token("tok".into())
        );
        assert_eq!(with(enc("notoken").as_bytes()), Credential::Malformed);
        assert_eq!(with(b"Basic !!!"), Credential::Malformed);
    }
}

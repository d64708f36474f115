//! When a new token expires: never, after a duration, or at a point in time (never in the past).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ParseError;

/// The longest duration accepted anywhere a user or the config gives one (100 years): beyond
/// it InfluxDB's arithmetic overflows into "never", and a date beyond year 262,143 cannot exist.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000); // 100 × 365.25 days, humantime's `100y`
const MAX_LIFETIME: Duration = MAX_DURATION;

/// `at` plus `d`, saturating at the latest representable time instead of panicking.
pub fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The expiry of a token being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    At(DateTime<Utc>),
}

impl Expiry {
    /// After a human duration such as `30d`, `12h` or `1y 2w` (humantime syntax).
    pub fn after(text: &str, now: DateTime<Utc>) -> Result<Self, ParseError> {
        let duration = parse_duration(text)?;
        if duration.is_zero() {
            return Err(ParseError::new(
                "an expiry of zero would create a token that is already expired",
            ));
        }
        if duration > MAX_LIFETIME {
            return Err(ParseError::new(
                "an expiry beyond 100 years is not supported; create a token that never expires",
            ));
        }
        chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .map(Self::At)
            .ok_or_else(|| ParseError::new(format!("expiry `{text}` is too far in the future")))
    }

    /// At an RFC 3339 time such as `2027-01-01T00:00:00Z`; it must lie in the future.
    pub fn at(text: &str, now: DateTime<Utc>) -> Result<Self, ParseError> {
        let at = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|e| {
                ParseError::new(format!(
                    "`{text}` is not an RFC 3339 time like 2027-01-01T00:00:00Z ({e})"
                ))
            })?
            .with_timezone(&Utc);
        if at <= now {
            return Err(ParseError::new(format!(
                "expiry {text} is in the past; give a future time"
            )));
        }
        if (at - now).to_std().is_ok_and(|d| d > MAX_LIFETIME) {
            return Err(ParseError::new(
                "an expiry beyond 100 years is not supported; create a token that never expires",
            ));
        }
        Ok(Self::At(at))
    }

    /// From the two mutually exclusive options every adapter offers; neither means never.
    pub fn from_options(
        expires_in: Option<&str>,
        expires_at: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, ParseError> {
        match (expires_in, expires_at) {
            (Some(_), Some(_)) => Err(ParseError::new(
                "give either an expiry duration or an expiry time, not both",
            )),
            (Some(d), None) => Self::after(d, now),
            (None, Some(t)) => Self::at(t, now),
            (None, None) => Ok(Self::Never),
        }
    }

    /// One free-text field (chat commands): `never`, a duration, or an RFC 3339 time.
    pub fn parse_any(text: &str, now: DateTime<Utc>) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("never") {
            Ok(Self::Never)
        } else if text.contains('T') && text.contains('-') {
            Self::at(text, now)
        } else {
            Self::after(text, now)
        }
    }

    /// The `expiry_secs` to send, counted from `now` and rounded up; an expiry that has passed
    /// meanwhile is an error rather than a token born expired.
    pub fn expiry_secs(&self, now: DateTime<Utc>) -> Result<Option<u64>, ParseError> {
        match self {
            Self::Never => Ok(None),
            Self::At(at) => {
                let ms = (*at - now).num_milliseconds();
                if ms <= 0 {
                    return Err(ParseError::new(
                        "the requested expiry has passed; give a later one",
                    ));
                }
                Ok(Some((ms as u64).div_ceil(1000)))
            }
        }
    }

    pub fn at_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Never => None,
            Self::At(at) => Some(*at),
        }
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("never"),
            Self::At(at) => write!(
                f,
                "{}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// A human duration (`7d`, `12h`, `1w 2d`), for filters such as "expiring within".
/// At most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ParseError::new(format!(
            "`{text}` is not a duration like 30d, 12h or 1w ({e})"
        ))
    })?;
    if d > MAX_DURATION {
        return Err(ParseError::new(format!(
            "`{text}` is longer than 100 years, the longest duration tokenwarden accepts"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn durations_are_bounded_and_date_arithmetic_saturates() {
        let e = parse_duration("300000y").unwrap_err().0;
        assert!(e.contains("longer than 100 years"), "{e}");
        assert!(parse_duration("100y").is_ok());
        assert!(Expiry::after("300000y", now()).is_err());
        let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        assert_eq!(later(far, MAX_DURATION), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(now(), Duration::from_secs(60)),
            now() + chrono::Duration::minutes(1)
        );
    }

    #[test]
    fn a_duration_past_the_last_representable_date_is_refused_not_a_panic() {
        let end = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        let e = Expiry::after("30d", end).unwrap_err().0;
        assert!(e.contains("too far in the future"), "{e}");
        assert!(Expiry::parse_any("7d", DateTime::<Utc>::MAX_UTC).is_err());
        assert!(Expiry::parse_any("2027-01-01T00:00:00Z", DateTime::<Utc>::MIN_UTC).is_err());
    }

    #[test]
    fn durations_become_a_time() {
        let e = Expiry::after("30d", now()).unwrap();
        assert_eq!(e.to_string(), "2026-12-28T00:00:00Z");
        assert_eq!(e.expiry_secs(now()).unwrap(), Some(30 * 86400));
    }

    #[test]
    fn times_in_the_past_are_refused() {
        let err = Expiry::at("2020-01-01T00:00:00Z", now()).unwrap_err().0;
        assert!(err.contains("in the past"), "{err}");
        let soon = Expiry::at("2026-11-28T00:00:05Z", now()).unwrap();
        assert!(
            soon.expiry_secs("2026-11-28T00:00:06Z".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn bad_input_says_what_is_expected() {
        assert!(
            Expiry::after("soon", now())
                .unwrap_err()
                .0
                .contains("like 30d")
        );
        assert!(
            Expiry::after("0s", now())
                .unwrap_err()
                .0
                .contains("already expired")
        );
        assert!(
            Expiry::after("200y", now())
                .unwrap_err()
                .0
                .contains("100 years")
        );
        assert!(
            Expiry::at("tomorrow", now())
                .unwrap_err()
                .0
                .contains("RFC 3339")
        );
        assert!(Expiry::from_options(Some("1d"), Some("2027-01-01T00:00:00Z"), now()).is_err());
    }

    #[test]
    fn secs_round_up_and_never_is_none() {
        let e = Expiry::At(now() + chrono::Duration::milliseconds(1500));
        assert_eq!(e.expiry_secs(now()).unwrap(), Some(2));
        assert_eq!(Expiry::Never.expiry_secs(now()).unwrap(), None);
    }

    #[test]
    fn parse_any_accepts_each_form() {
        assert_eq!(Expiry::parse_any("never", now()).unwrap(), Expiry::Never);
        assert!(matches!(
            Expiry::parse_any("7d", now()).unwrap(),
            Expiry::At(_)
        ));
        assert!(matches!(
            Expiry::parse_any("2027-01-01T00:00:00Z", now()).unwrap(),
            Expiry::At(_)
        ));
    }
}

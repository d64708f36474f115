//! Expiries and durations from any text, at any time chrono can hold: never a panic, an accepted
//! expiry lies after now, a duration is at most 100 years, and adding one saturates.
#![no_main]
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use tokenwarden::tokens::{Expiry, MAX_DURATION, later, parse_duration};

fuzz_target!(|input: (&str, i64, u32)| {
    let (s, secs, nanos) = input;
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let now = DateTime::from_timestamp(secs.clamp(min, max), nanos % 1_000_000_000)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if let Ok(Expiry::At(at)) = Expiry::parse_any(s, now) {
        assert!(at > now);
        let _ = Expiry::At(at).expiry_secs(now);
    }
    if let Ok(d) = parse_duration(s) {
        assert!(d <= MAX_DURATION);
        assert!(later(now, d) >= now);
    }
});

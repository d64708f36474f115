//! Expiries from any text: never a panic, and an accepted time lies in the future.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenwarden::tokens::{Expiry, parse_duration};

fuzz_target!(|s: &str| {
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    if let Ok(Expiry::At(at)) = Expiry::parse_any(s, now) {
        assert!(at > now);
    }
    let _ = parse_duration(s);
});

//! Permission strings from any text: never a panic; accepted ones print back to themselves.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenwarden::tokens::{Permission, split_listed_permissions};

fuzz_target!(|s: &str| {
    if let Ok(p) = Permission::parse(s) {
        assert_eq!(Permission::parse(&p.to_string()).ok(), Some(p));
    }
    let _ = split_listed_permissions(s);
});

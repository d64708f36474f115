//! Token names from any text: never a panic, and what is accepted keeps its promises.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenwarden::tokens::TokenName;

fuzz_target!(|s: &str| {
    // An existing name is kept exactly; shown to a person, it holds no control character.
    if let Ok(n) = TokenName::parse(s) {
        assert_eq!(n.as_str(), s);
        assert!(
            !tokenwarden::shown::shown(n.as_str())
                .chars()
                .any(char::is_control)
        );
    }
    if let Ok(n) = TokenName::parse_new(s) {
        assert!(
            n.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
    }
});

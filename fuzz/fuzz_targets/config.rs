//! Config files from any text: a config or an error naming the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenwarden::config::Config;

fuzz_target!(|s: &str| {
    if let Err(e) = Config::parse(s, std::path::Path::new("fuzz.toml")) {
        assert!(e.to_string().contains("fuzz.toml"));
    }
});

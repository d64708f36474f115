//! Discord interaction payloads from any bytes: decoding and option resolution never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serenity::model::application::Interaction;

fuzz_target!(|data: &[u8]| {
    if let Ok(interaction) = serde_json::from_slice::<Interaction>(data) {
        match interaction {
            Interaction::Command(c) | Interaction::Autocomplete(c) => {
                let _ = c.data.options();
                let _ = c.data.autocomplete();
            }
            Interaction::Component(c) => {
                let _ = c.data.custom_id.strip_prefix("tw:");
            }
            _ => {}
        }
    }
});

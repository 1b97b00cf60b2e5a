//! `sy_config::parse` on arbitrary text: it must return (a config or
//! diagnostics), never panic, and every diagnostic must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diags) = sy_config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent")) {
        let rendered = diags.to_string();
        assert!(!rendered.is_empty());
    }
});

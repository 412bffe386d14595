//! FAQ file loading (TOML and JSON Lines). What is checked: `fuzz/checks.rs`.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::faq_files(data));

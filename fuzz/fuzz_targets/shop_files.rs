//! Loading a shop from its intent files' texts, and answering with it. What is checked: `fuzz/checks.rs`.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::shop_files(data));

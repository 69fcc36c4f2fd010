//! `Config::from_toml` on arbitrary text: never panics.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portcullis::config::{Config, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `*_file` keys read files; keep the fuzzer away from the file system
    // (a `/dev/zero` secret would only measure the machine's memory).
    if text.contains("_file") {
        return;
    }
    let env = HashMap::<String, String>::new();
    for dev in [false, true] {
        if let Err(errors) = Config::from_toml(text, Path::new("."), &env, LoadOptions { dev }) {
            // The error report is printed to operators: it must render.
            let _ = errors.to_string();
        }
    }
});

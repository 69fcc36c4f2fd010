//! The Host grammar (`host::parse`) on arbitrary bytes: an accepted value is
//! a name or IP literal with an optional numeric port and nothing else, and
//! its normalized form is a fixed point (`portcullis_core::checks::host_header`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        portcullis_core::checks::host_header(s);
    }
});

//! Header-name normalisation (`inbound::scrub`): after scrubbing, no special
//! header survives in any `_`/`-`/case spelling except a trusted proxy's
//! canonical forwarding headers; ordinary headers pass untouched
//! (`portcullis_core::checks::header_names`). Input: the first byte picks
//! trusted or not; then `name:value` lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let at = line.iter().position(|&b| b == b':')?;
            Some((line[..at].to_vec(), line[at + 1..].to_vec()))
        })
        .collect();
    portcullis_core::checks::header_names(&pairs, flags & 1 == 1);
});

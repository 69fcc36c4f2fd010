//! Properties of the request-hygiene parsers, shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/host_header.rs`, `header_names.rs`) and the
//! stable smoke test that runs them on every `cargo test`
//! (`crates/core/tests/fuzz_smoke.rs`). Each function panics when its
//! property is broken.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::host;
use crate::identity::{ForwardToken, IdentityConfig, IdentityHeaders, Preset};
use crate::inbound::{self, Special};

/// The Host grammar: whatever `input` is, an accepted value is a DNS name
/// (labels of letters, digits, `-`, `_`) or an IP literal with an optional
/// numeric port, nothing else — no junk after the name that an app could
/// read differently — and its normalized form is accepted again and is a
/// fixed point.
pub fn host_header(input: &str) {
    let Ok(hp) = host::parse(input) else {
        return;
    };
    assert!(
        input.starts_with(hp.name),
        "{input:?}: name is not a prefix"
    );
    let rest = &input[hp.name.len()..];
    match hp.port {
        None => assert!(rest.is_empty(), "{input:?}: junk after the name"),
        Some(p) => {
            let digits = rest
                .strip_prefix(':')
                .unwrap_or_else(|| panic!("{input:?}: no ':' before the port"));
            assert!(
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
                "{input:?}: port not digits"
            );
            assert_eq!(
                digits.parse::<u32>().ok(),
                Some(u32::from(p)),
                "{input:?}: port value"
            );
        }
    }
    let bracketed = hp.name.starts_with('[');
    for b in hp.name.bytes() {
        let ok = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (bracketed && matches!(b, b'[' | b']' | b':'));
        assert!(ok, "{input:?}: byte {b:#x} in an accepted name");
    }
    let n = hp.normalized();
    let again = if n.contains(':') {
        format!("[{n}]")
    } else {
        n.clone()
    };
    let reparsed = host::parse(&again)
        .unwrap_or_else(|e| panic!("{input:?}: normalized {again:?} refused: {e}"));
    assert_eq!(
        reparsed.normalized(),
        n,
        "{input:?}: normalized form is not a fixed point"
    );
    assert_eq!(n, n.to_ascii_lowercase());
}

fn identity() -> IdentityHeaders {
    IdentityHeaders::new(&IdentityConfig {
        preset: Preset::Portcullis,
        forward_token: ForwardToken::None,
        strip_headers: vec!["x-legacy-user".to_owned()],
        extra_headers: Vec::new(),
        assertion: None,
    })
}

/// Header-name normalisation: after `scrub`, no header of a special kind
/// survives in any spelling, except a trusted proxy's forwarding headers
/// and method overrides in their canonical (dash) spelling; every ordinary
/// header survives with all its values. `pairs` are raw (name, value) bytes;
/// invalid ones are skipped, as a server would refuse them.
pub fn header_names(pairs: &[(Vec<u8>, Vec<u8>)], trusted: bool) {
    let identity = identity();
    let mut headers = HeaderMap::new();
    for (n, v) in pairs {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            headers.append(n, v);
        }
    }
    let before = headers.clone();
    inbound::scrub(&mut headers, trusted, &identity);
    for name in headers.keys() {
        let n = name.as_str();
        let canonical = !n.contains('_');
        match inbound::classify(n, &identity) {
            None => {}
            Some(Special::Forwarding) => {
                assert!(trusted && canonical, "{n:?} kept (trusted={trusted})");
            }
            Some(Special::MethodOverride) => assert!(canonical, "{n:?} kept"),
            Some(kind) => panic!("{n:?} ({kind:?}) survived scrub"),
        }
        // The same normalisation decides every spelling alike.
        let dashed = inbound::normalize_name(n);
        assert_eq!(
            inbound::classify(&dashed, &identity),
            inbound::classify(n, &identity),
            "{n:?} and {dashed:?} classified differently"
        );
    }
    for name in before.keys() {
        if inbound::classify(name.as_str(), &identity).is_none() {
            let want: Vec<_> = before.get_all(name).iter().collect();
            let got: Vec<_> = headers.get_all(name).iter().collect();
            assert_eq!(want, got, "ordinary header {name:?} changed");
        }
    }
}

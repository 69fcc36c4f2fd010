//! `CanonicalPath::parse` on arbitrary request paths.
//!
//! Invariants: never panics; an accepted path forwards as a string that
//! parses again to the same route-matching path (idempotent), that is a
//! valid HTTP request path, and that holds no `.`/`..` segment, no `//`, no
//! control byte and no backslash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::canon::{CanonicalPath, fold_case};

fn check_clean(what: &str, s: &str, input: &str) {
    assert!(!s.contains("//"), "{what} {s:?} has '//' (input {input:?})");
    assert!(
        !s.contains('\\'),
        "{what} {s:?} has a backslash (input {input:?})"
    );
    assert!(
        !s.chars().any(char::is_control),
        "{what} {s:?} has a control character (input {input:?})"
    );
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fold_case(input);
    let Ok(path) = CanonicalPath::parse(input) else {
        return;
    };
    let m = path.match_path();
    let fwd = path.to_forward();

    assert!(m.starts_with('/'), "match path {m:?} (input {input:?})");
    assert!(fwd.starts_with('/'), "forward {fwd:?} (input {input:?})");
    assert!(
        m == "/" || !m.ends_with('/'),
        "match path {m:?} ends in '/' (input {input:?})"
    );
    check_clean("match path", m, input);
    check_clean("forward", &fwd, input);
    assert!(
        fwd.is_ascii(),
        "forward {fwd:?} is not ASCII (input {input:?})"
    );
    assert!(
        fwd.parse::<http::uri::PathAndQuery>().is_ok(),
        "forward {fwd:?} is not a valid request path (input {input:?})"
    );

    // No dot segments, neither as written nor once decoded.
    for seg in fwd.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or("");
        for n in [name.to_owned(), decode(name)] {
            assert!(
                n != "." && n != "..",
                "forward {fwd:?} has a dot segment (input {input:?})"
            );
        }
    }
    for seg in m.split('/').skip(1) {
        assert!(
            seg != "." && seg != "..",
            "match path {m:?} has a dot segment (input {input:?})"
        );
    }
    for s in path.segments() {
        check_clean("segment", &s.decoded, input);
    }

    // Idempotent: the forwarded spelling means the same thing again.
    let again = CanonicalPath::parse(&fwd)
        .unwrap_or_else(|e| panic!("forward {fwd:?} of {input:?} is refused: {e}"));
    assert_eq!(again.match_path(), m, "forward {fwd:?} (input {input:?})");
    assert_eq!(again.to_forward(), fwd, "input {input:?}");
    assert_eq!(again.has_trailing_slash(), path.has_trailing_slash());
    assert_eq!(again.has_encoded_slash(), path.has_encoded_slash());

    // Stripping a leading segment keeps the result canonical.
    if let Some(first) = path.segments().first() {
        let prefix = format!("/{}", first.decoded);
        for ci in [false, true] {
            if let Some(rest) = path.strip_prefix_with(&prefix, ci) {
                let f = rest.to_forward();
                check_clean("stripped forward", &f, input);
                let r = CanonicalPath::parse(&f)
                    .unwrap_or_else(|e| panic!("stripped {f:?} of {input:?} is refused: {e}"));
                assert_eq!(r.match_path(), rest.match_path(), "input {input:?}");
            }
        }
    }
});

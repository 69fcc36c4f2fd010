//! `RedirectPolicy::check` (the `return_to` validator) on arbitrary input.
//!
//! Invariants: never panics; an accepted value is either a same-origin
//! relative path (`/` followed by neither `/` nor `\`, no control, whitespace
//! or backslash character in any percent-decoded layer, and resolving to the
//! gateway's own origin in a WHATWG URL parser, as a browser would) or an
//! absolute URL on an allowed origin without user info.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::redirect::{FALLBACK, RedirectPolicy};
use url::Url;

const ALLOWED: &[&str] = &[
    "https://app.example.com",
    "http://127.0.0.1:3000",
    "https://[::1]:8443",
];
const GATEWAY: &str = "https://gw.example.net/auth/login?x=1";

fn policy() -> &'static RedirectPolicy {
    static P: OnceLock<RedirectPolicy> = OnceLock::new();
    P.get_or_init(|| RedirectPolicy::new(ALLOWED).expect("fixed origins are valid"))
}

fn forbidden(c: char) -> bool {
    c.is_control() || c.is_whitespace() || c == '\\'
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let p = policy();
    let sanitized = p.sanitize(Some(raw));
    let Some(target) = p.check(raw) else {
        assert_eq!(sanitized, FALLBACK);
        return;
    };
    assert_eq!(sanitized, target);
    assert!(
        http::HeaderValue::from_str(&target).is_ok(),
        "{target:?} is not a valid Location value (input {raw:?})"
    );
    let base = Url::parse(GATEWAY).expect("fixed base");
    let resolved = base
        .join(&target)
        .unwrap_or_else(|e| panic!("{target:?} does not resolve: {e} (input {raw:?})"));

    if target.starts_with('/') {
        assert!(raw.starts_with('/'), "input {raw:?}");
        // Every decoding layer of the value as given and as sent.
        for start in [raw, target.as_str()] {
            let mut layer = start.to_owned();
            for _ in 0..8 {
                let mut chars = layer.chars();
                assert_eq!(chars.next(), Some('/'), "layer {layer:?} (input {raw:?})");
                assert!(
                    !matches!(chars.next(), Some('/' | '\\')),
                    "layer {layer:?} is protocol-relative (input {raw:?})"
                );
                assert!(
                    !layer.chars().any(forbidden),
                    "layer {layer:?} has a control, space or backslash (input {raw:?})"
                );
                let next = percent_encoding::percent_decode_str(&layer)
                    .decode_utf8_lossy()
                    .into_owned();
                if next == layer {
                    break;
                }
                layer = next;
            }
        }
        assert_eq!(
            resolved.origin(),
            base.origin(),
            "relative {target:?} leaves the gateway (input {raw:?})"
        );
    } else {
        let url = Url::parse(&target)
            .unwrap_or_else(|e| panic!("{target:?} is not absolute: {e} (input {raw:?})"));
        assert!(matches!(url.scheme(), "http" | "https"), "{target:?}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{target:?}"
        );
        assert_eq!(resolved.origin(), url.origin(), "{target:?}");
        let allowed = ALLOWED
            .iter()
            .any(|a| Url::parse(a).expect("fixed origin").origin() == url.origin());
        assert!(
            allowed,
            "{target:?} is not on an allowed origin (input {raw:?})"
        );
        assert!(!raw.chars().any(forbidden), "input {raw:?}");
    }
});

//! `CookieSettings::read` (and the other request-cookie readers) on
//! arbitrary `Cookie` header bytes: never panics.
#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::cookies::{CookieSettings, SameSite};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // Several `Cookie` headers, separated by a 0xFF byte (invalid in a header).
    let mut headers = HeaderMap::new();
    for part in rest.split(|&b| b == 0xff) {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append(COOKIE, v);
        }
    }
    let settings = CookieSettings {
        session_name: "DS".to_owned(),
        refresh_name: "DSR".to_owned(),
        secure: flags & 1 != 0,
        same_site: match flags >> 1 & 3 {
            0 => SameSite::Lax,
            1 => SameSite::Strict,
            _ => SameSite::None,
        },
        domain: (flags & 8 != 0).then(|| "example.com".to_owned()),
        host_prefix: flags & 16 != 0,
    };
    let tokens = settings.read(&headers);
    let _ = format!("{tokens:?}");
    let _ = settings.clear_all(&headers);
    // Tokens read from a request are echoed back on refresh/login paths.
    if let Some(s) = &tokens.session {
        let _ = settings.set_session(&headers, s, tokens.refresh.as_deref());
    }
    for h in headers.get_all(COOKIE) {
        if let Ok(s) = h.to_str() {
            for pair in s.split(';') {
                let name = pair.split('=').next().unwrap_or("").trim();
                let _ = settings.is_gateway_cookie(name);
            }
        }
    }
});

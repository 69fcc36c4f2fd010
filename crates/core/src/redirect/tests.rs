//! Open-redirect catalogue for [`RedirectPolicy`]. Each input is the value a
//! handler sees after the query string was decoded once, so `%2f` here stands
//! for a double-encoded slash on the wire.

use super::*;

fn policy() -> RedirectPolicy {
    RedirectPolicy::new(&[
        "https://allowed.example.com",
        "http://127.0.0.1:3000",
        "https://port.example.com:8443",
    ])
    .expect("test origins are valid")
}

/// Payloads that must all become `/`.
const REFUSED: &[&str] = &[
    "",
    "//evil.com",
    "///evil.com",
    "////evil.com/",
    "/\\evil.com",
    "/\\/evil.com/",
    "\\/\\/evil.com/",
    "\\evil.com",
    "/%2fevil.com",
    "/%2F%2Fevil.com",
    "/%5cevil.com",
    "/%5Cevil.com",
    "/%252f%252fevil.com",
    "/%25252f%25252fevil.com",
    "/%2f%5c%2f%67%6f%6f%67%6c%65%2e%63%6f%6d/",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r/evil.com",
    "/\u{0b}/evil.com",
    "/ /evil.com",
    "/ \\evil.com",
    "/%09/evil.com",
    "/%0a/evil.com",
    "/%0d%0aSet-Cookie:x=y",
    "/%00/evil.com",
    "/\u{3000}/evil.com",
    "/\u{2028}/evil.com",
    "/\t\t\\\t/evil.com",
    "/./\\evil.com",
    "/./../../\\evil.com",
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "%19Jav%09asc%09ript:https%20://allowed.example.com/",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "evil.com",
    "evil.com/path",
    "@evil.com",
    "<>//evil.com",
    "http://evil.com",
    "https://evil.com/redirect?rd=allowed.example.com",
    "https://allowed.example.com.evil.com/",
    "https://allowed.example.com@evil.com/",
    "https://user:pw@allowed.example.com/",
    "https://user@allowed.example.com/",
    "http://allowed.example.com/",
    "https://allowed.example.com:444/",
    "https://sub.allowed.example.com/",
    "https://port.example.com/",
    "http://127.0.0.1:3001/",
    "http://127.0.0.1/",
    "https:\\\\evil.com",
    "https:/\\evil.com",
    "https://evil.com\\@allowed.example.com/",
    "https://evil.com%2f%2f.allowed.example.com/",
    "https://evil.com%23.allowed.example.com/",
    "https://evil.com:443#@allowed.example.com/",
    "https://evil.com:443?@allowed.example.com/",
    "https://allowed.example.com\t.evil.com/",
    "https://allowed.example.com%09.evil.com/",
    "ftp://allowed.example.com/",
    "http://0x7f.0.0.1:3000/",
    "http://2130706433:3000/",
    "https://allowed.example.com:443/x",
    "https://allowed.example.com.:443/x",
    "http://127.1:3000/",
    "//%09/evil.com",
    "///%5cevil.com",
    "/\u{0}",
];

/// Values that must be kept (normalised as shown).
const KEPT: &[(&str, &str)] = &[
    ("/", "/"),
    ("/dashboard", "/dashboard"),
    ("/a/b?c=d&e=f", "/a/b?c=d&e=f"),
    ("/a#frag", "/a#frag"),
    ("/search?q=a+b", "/search?q=a+b"),
    ("/caf\u{e9}", "/caf%C3%A9"),
    ("/evil.com", "/evil.com"),
    ("/http://evil.com", "/http://evil.com"),
    (
        "https://allowed.example.com",
        "https://allowed.example.com/",
    ),
    (
        "https://allowed.example.com/x?y=1",
        "https://allowed.example.com/x?y=1",
    ),
    (
        "https://ALLOWED.example.com/x",
        "https://allowed.example.com/x",
    ),
    ("http://127.0.0.1:3000/app", "http://127.0.0.1:3000/app"),
    (
        "https://port.example.com:8443/",
        "https://port.example.com:8443/",
    ),
];

#[test]
fn open_redirect_payloads_fall_back_to_root() {
    assert!(REFUSED.len() >= 30, "catalogue too small");
    let p = policy();
    for raw in REFUSED {
        assert_eq!(p.sanitize(Some(raw)), FALLBACK, "accepted {raw:?}");
    }
}

#[test]
fn legitimate_targets_are_kept() {
    let p = policy();
    for (raw, want) in KEPT {
        assert_eq!(p.sanitize(Some(raw)), *want, "for {raw:?}");
    }
}

#[test]
fn missing_and_oversized_values_fall_back() {
    let p = policy();
    assert_eq!(p.sanitize(None), FALLBACK);
    let long = format!("/{}", "a".repeat(DEFAULT_MAX_RETURN_TO_LEN));
    assert_eq!(p.sanitize(Some(&long)), FALLBACK);
}

#[test]
fn no_allowed_origins_means_relative_only() {
    let p = RedirectPolicy::default();
    assert_eq!(p.sanitize(Some("https://allowed.example.com/")), FALLBACK);
    assert_eq!(p.sanitize(Some("/ok")), "/ok");
}

#[test]
fn origin_entries_are_validated() {
    let cases: &[(&str, Result<(), RedirectOriginError>)] = &[
        ("https://a.example", Ok(())),
        ("https://a.example/", Ok(())),
        ("http://127.0.0.1:8080", Ok(())),
        ("a.example", Err(RedirectOriginError::NotAbsolute)),
        ("ftp://a.example", Err(RedirectOriginError::Scheme)),
        ("javascript:alert(1)", Err(RedirectOriginError::Scheme)),
        (
            "https://a.example/path",
            Err(RedirectOriginError::NotAnOrigin),
        ),
        ("https://u@a.example", Err(RedirectOriginError::NotAnOrigin)),
        (
            "https://a.example/?x",
            Err(RedirectOriginError::NotAnOrigin),
        ),
    ];
    for (raw, want) in cases {
        let got = RedirectPolicy::new(&[*raw]).map(|_| ());
        assert_eq!(&got, want, "for {raw:?}");
    }
}

#[test]
fn origins_serialize_for_csp() {
    let p = policy();
    let got: Vec<String> = p.origins().collect();
    assert_eq!(
        got,
        vec![
            "https://allowed.example.com",
            "http://127.0.0.1:3000",
            "https://port.example.com:8443"
        ]
    );
}

#[test]
fn a_login_return_to_never_leads_into_the_auth_prefix() {
    let p = policy().avoiding_prefix("/_auth/");
    for raw in [
        "/_auth/magiclink/verify?t=abc",
        "/_auth",
        "/_AUTH/magiclink/verify?t=abc",
        "/x/../_auth/magiclink/verify?t=abc",
        "/x/%2e%2e/_auth/magiclink/verify",
        "/%5fauth/magiclink/verify",
        "/%255fauth/magiclink/verify",
        "/./_auth/enchantedlink/verify",
        "https://allowed.example.com/_auth/magiclink/verify?t=abc",
        "https://allowed.example.com/a/../_Auth/oauth/callback",
        // `//_auth/...` once resolved, `/_auth/...` behind a proxy that
        // merges slashes.
        "/.//_auth/magiclink/verify?t=abc",
        "/x/..//_auth/magiclink/verify",
        "/x/%2e%2e//_auth/magiclink/verify",
        "/x//..//_auth/magiclink/verify",
        "https://allowed.example.com/.//_auth/magiclink/verify",
    ] {
        assert_eq!(p.sanitize(Some(raw)), FALLBACK, "for {raw:?}");
    }
    for (raw, want) in [
        ("/_authx/page", "/_authx/page"),
        ("/app/_auth/x", "/app/_auth/x"),
        ("/inbox?next=/_auth/login", "/inbox?next=/_auth/login"),
        (
            "https://allowed.example.com/dash",
            "https://allowed.example.com/dash",
        ),
    ] {
        assert_eq!(p.sanitize(Some(raw)), want, "for {raw:?}");
    }
    // Without the prefix rule (logout's after_logout) the login page is fine.
    assert_eq!(policy().sanitize(Some("/_auth/login")), "/_auth/login");
}

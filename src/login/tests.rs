use super::respond::{Origin, origin_check};
use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

#[test]
fn origin_table() {
    let me = "https://app.example.com";
    let cases: &[(&[(&str, &str)], Origin)] = &[
        (&[("origin", "https://app.example.com")], Origin::Same),
        (&[("origin", "HTTPS://APP.EXAMPLE.COM")], Origin::Same),
        (&[("origin", "https://evil.example")], Origin::Cross),
        (&[("origin", "null")], Origin::Cross),
        // A no-referrer page's form POST: Origin is null, Sec-Fetch-Site tells.
        (
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
            Origin::Same,
        ),
        (
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
            Origin::Cross,
        ),
        (
            &[("origin", "null"), ("sec-fetch-site", "none")],
            Origin::Cross,
        ),
        (&[("origin", "https://app.example.com:8443")], Origin::Cross),
        (&[("origin", "http://app.example.com")], Origin::Cross),
        (
            &[
                ("origin", "https://app.example.com"),
                ("origin", "https://evil.example"),
            ],
            Origin::Cross,
        ),
        // Origin wins over Sec-Fetch-Site.
        (
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            Origin::Cross,
        ),
        (&[("sec-fetch-site", "same-origin")], Origin::Same),
        (&[("sec-fetch-site", "same-site")], Origin::Cross),
        (&[("sec-fetch-site", "cross-site")], Origin::Cross),
        (&[("sec-fetch-site", "none")], Origin::Unknown),
        (&[], Origin::Unknown),
    ];
    for (h, want) in cases {
        assert_eq!(origin_check(&headers(h), me), *want, "{h:?}");
    }
}

#[test]
fn email_shapes() {
    let cases = [
        ("a@example.com", true),
        ("first.last+tag@sub.example.co", true),
        ("", false),
        ("no-at", false),
        ("@example.com", false),
        ("a@", false),
        ("a@b@c", false),
        ("a b@example.com", false),
        ("a@example.com\n", false),
        ("a@.example.com", false),
    ];
    for (e, want) in cases {
        assert_eq!(is_email(e), want, "{e:?}");
    }
    assert!(!is_email(&format!("{}@example.com", "a".repeat(250))));
}

#[test]
fn content_types() {
    let cases = [
        ("application/json", "application/json", true),
        ("application/json; charset=utf-8", "application/json", true),
        ("Application/JSON", "application/json", true),
        ("text/plain", "application/json", false),
        ("application/jsonx", "application/json", false),
    ];
    for (ct, want, ok) in cases {
        assert_eq!(
            content_type_is(&headers(&[("content-type", ct)]), want),
            ok,
            "{ct}"
        );
    }
    assert!(!content_type_is(&HeaderMap::new(), "application/json"));
}

#[test]
fn first_value_wins() {
    assert_eq!(first(b"a=1&a=2&b=%2Fx", "a"), Some("1".to_owned()));
    assert_eq!(first(b"a=1&a=2&b=%2Fx", "b"), Some("/x".to_owned()));
    assert_eq!(first(b"a=1", "c"), None);
}

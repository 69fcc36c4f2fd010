//! Table-driven tests of cookie naming, reading, chunking and clearing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::*;

fn settings(host_prefix: bool) -> CookieSettings {
    CookieSettings {
        session_name: "DS".into(),
        refresh_name: "DSR".into(),
        secure: true,
        same_site: SameSite::Lax,
        domain: None,
        host_prefix,
    }
}

/// An unsigned JWT-shaped token (cookies never verify; callers do).
fn jwt(claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES384","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{p}.c2lnbmF0dXJl")
}

fn headers(cookies: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in cookies {
        h.append(COOKIE, HeaderValue::from_str(c).expect("test header"));
    }
    h
}

/// The `Cookie` header a browser would send after applying `set`.
fn browser_apply(jar: &mut Vec<(String, String)>, set: &[HeaderValue]) {
    for v in set {
        let c = Cookie::parse(v.to_str().expect("ascii").to_owned()).expect("parsable");
        jar.retain(|(n, _)| n != c.name());
        let removed = c.max_age() == Some(cookie::time::Duration::ZERO);
        if !removed {
            jar.push((c.name().to_owned(), c.value().to_owned()));
        }
    }
}

fn cookie_header(jar: &[(String, String)]) -> HeaderMap {
    let line = jar
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    headers(&[&line])
}

fn names(set: &[HeaderValue]) -> Vec<(String, bool)> {
    set.iter()
        .map(|v| {
            let c = Cookie::parse(v.to_str().expect("ascii").to_owned()).expect("parsable");
            (
                c.name().to_owned(),
                c.max_age() == Some(cookie::time::Duration::ZERO),
            )
        })
        .collect()
}

fn now() -> i64 {
    unix_now()
}

#[test]
fn names_follow_host_prefix() {
    assert_eq!(settings(true).session_cookie_name(), "__Host-DS");
    assert_eq!(settings(true).refresh_cookie_name(), "__Host-DSR");
    assert_eq!(settings(false).session_cookie_name(), "DS");
    assert_eq!(settings(false).refresh_cookie_name(), "DSR");
}

#[test]
fn read_table() {
    let s = settings(false);
    // (case, Cookie headers, session, refresh)
    type Case<'a> = (&'a str, Vec<&'a str>, Option<&'a str>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("both", vec!["DS=s1; DSR=r1"], Some("s1"), Some("r1")),
        ("only refresh", vec!["DSR=r1"], None, Some("r1")),
        (
            "two Cookie headers",
            vec!["a=b; DS=s1", "DSR=r1"],
            Some("s1"),
            Some("r1"),
        ),
        (
            "first occurrence wins",
            vec!["DS=s1; DS=s2"],
            Some("s1"),
            None,
        ),
        (
            "empty value is absent",
            vec!["DS=; DSR=r1"],
            None,
            Some("r1"),
        ),
        ("empty then real", vec!["DS=; DS=s2"], Some("s2"), None),
        ("quoted value", vec![r#"DS="s1""#], Some("s1"), None),
        (
            "names are case-sensitive",
            vec!["ds=s1; dsr=r1"],
            None,
            None,
        ),
        (
            "prefixed names ignored without host_prefix",
            vec!["__Host-DS=s1"],
            None,
            None,
        ),
        (
            "chunks joined",
            vec!["DS.0=ab; DS.1=cd; DS.2=ef"],
            Some("abcdef"),
            None,
        ),
        (
            "chunks out of order",
            vec!["DS.1=cd; DS.0=ab"],
            Some("abcd"),
            None,
        ),
        (
            "a gap ends the chunks",
            vec!["DS.0=ab; DS.2=ef"],
            Some("ab"),
            None,
        ),
        ("no chunk 0", vec!["DS.1=cd"], None, None),
        (
            "unchunked wins over chunks",
            vec!["DS.0=ab; DS=whole"],
            Some("whole"),
            None,
        ),
        (
            "whitespace around pairs",
            vec!["  DS = s1 ;DSR=r1  "],
            Some("s1"),
            Some("r1"),
        ),
        ("value with =", vec!["DS=a=b"], Some("a=b"), None),
    ];
    for (name, cookies, session, refresh) in cases {
        let t = s.read(&headers(&cookies));
        assert_eq!(t.session.as_deref(), session, "{name}: session");
        assert_eq!(t.refresh.as_deref(), refresh, "{name}: refresh");
    }
}

#[test]
fn read_with_host_prefix_only_takes_prefixed_names() {
    let s = settings(true);
    let t = s.read(&headers(&["DS=tossed; __Host-DS=real; DSR=tossed"]));
    assert_eq!(t.session.as_deref(), Some("real"));
    assert_eq!(t.refresh, None);
}

#[test]
fn malformed_cookie_headers_never_panic() {
    let s = settings(false);
    let mut bad: Vec<HeaderMap> = [
        "",
        ";",
        ";;; ;",
        "=",
        "==",
        "DS",
        "=DS",
        "DS=;",
        " ; DS.0= ; ",
        "DS.=x",
        "DS.a=x",
        "DS.99999999999999999999=x",
        "\"\"",
        "DS=\"",
        "a=\"b; DS=\"c\"",
    ]
    .iter()
    .map(|c| headers(&[c]))
    .collect();
    let mut non_utf8 = HeaderMap::new();
    non_utf8.append(
        COOKIE,
        HeaderValue::from_bytes(b"DS=\xff\xfe; DSR=r").expect("opaque bytes are a valid header"),
    );
    bad.push(non_utf8);
    let long = format!("DS={}", "x".repeat(100_000));
    bad.push(headers(&[&long]));
    let many = (0..1000)
        .map(|i| format!("DS.{i}=y"))
        .collect::<Vec<_>>()
        .join("; ");
    bad.push(headers(&[&many]));
    for h in &bad {
        let t = s.read(h);
        let _ = s.clear_all(h);
        let _ = s.set_session(h, "a.b.c", Some("d.e.f"));
        if let Some(v) = t.session {
            assert!(v.len() <= 100_000);
        }
    }
    // MAX_CHUNKS bounds reassembly.
    let t = s.read(&headers(&[&many]));
    assert_eq!(t.session.map(|v| v.len()), Some(MAX_CHUNKS));
}

#[test]
fn set_session_attributes() {
    let exp = now() + 600;
    let session = jwt(&json!({"sub": "U1", "exp": exp, "drn": "DS"}));
    let refresh = jwt(&json!({"sub": "U1", "exp": now() + 86_400, "drn": "DSR"}));
    let set = settings(true).set_session(&HeaderMap::new(), &session, Some(&refresh));
    assert_eq!(set.len(), 2);
    let ds = Cookie::parse(set[0].to_str().expect("ascii").to_owned()).expect("parsable");
    assert_eq!(ds.name(), "__Host-DS");
    assert_eq!(ds.value(), session);
    assert_eq!(ds.http_only(), Some(true));
    assert_eq!(ds.secure(), Some(true));
    assert_eq!(ds.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(ds.path(), Some("/"));
    assert_eq!(ds.domain(), None);
    let age = ds.max_age().expect("max-age set").whole_seconds();
    assert!((595..=600).contains(&age), "max-age {age}");
    let dsr = Cookie::parse(set[1].to_str().expect("ascii").to_owned()).expect("parsable");
    assert_eq!(dsr.name(), "__Host-DSR");
    let age = dsr.max_age().expect("max-age set").whole_seconds();
    assert!((86_395..=86_400).contains(&age), "max-age {age}");
}

#[test]
fn set_session_attribute_variants() {
    let token = jwt(&json!({"exp": now() + 60}));
    let cases = [
        (
            SameSite::Strict,
            false,
            None,
            "SameSite=Strict",
            false,
            None,
        ),
        (SameSite::None, true, None, "SameSite=None", true, None),
        (
            SameSite::Lax,
            true,
            Some("example.com"),
            "SameSite=Lax",
            true,
            Some("example.com"),
        ),
    ];
    for (same_site, secure, domain, ss_text, want_secure, want_domain) in cases {
        let s = CookieSettings {
            same_site,
            secure,
            domain: domain.map(str::to_owned),
            ..settings(false)
        };
        let set = s.set_session(&HeaderMap::new(), &token, None);
        assert_eq!(set.len(), 1);
        let text = set[0].to_str().expect("ascii");
        assert!(text.contains(ss_text), "{text}");
        assert!(text.contains("HttpOnly"), "{text}");
        let c = Cookie::parse(text.to_owned()).expect("parsable");
        assert_eq!(c.secure().unwrap_or(false), want_secure, "{text}");
        assert_eq!(c.domain(), want_domain, "{text}");
    }
}

#[test]
fn max_age_edge_cases() {
    let s = settings(false);
    let cases = [
        ("no exp", jwt(&json!({"sub": "U"})), None),
        ("expired", jwt(&json!({"exp": now() - 100})), Some(0)),
        ("not a jwt", "opaque-token".to_owned(), None),
        ("payload not json", "a.bm90LWpzb24.c".to_owned(), None),
    ];
    for (name, token, want) in cases {
        let set = s.set_session(&HeaderMap::new(), &token, None);
        let c = Cookie::parse(set[0].to_str().expect("ascii").to_owned()).expect("parsable");
        assert_eq!(c.max_age().map(|d| d.whole_seconds()), want, "{name}");
    }
}

#[test]
fn unsafe_values_are_not_set() {
    let s = settings(false);
    for v in ["a;b", "a b", "a,b", "a\"b", "a\\b", ""] {
        assert!(
            s.set_session(&HeaderMap::new(), v, None).is_empty(),
            "{v:?}"
        );
    }
}

/// A user in 200 tenants: the session token is chunked, every cookie fits
/// the browser limit, and `read` returns exactly the token.
#[test]
fn two_hundred_tenant_token_round_trips_through_chunks() {
    let tenants: serde_json::Map<String, Value> = (0..200)
        .map(|i| {
            (
                format!("T2tenant{i:04}abcdefghijkl"),
                json!({"roles": ["member", "viewer"], "permissions": ["read"]}),
            )
        })
        .collect();
    let session = jwt(&json!({"sub": "U1", "exp": now() + 600, "drn": "DS", "tenants": tenants}));
    let refresh = jwt(&json!({"sub": "U1", "exp": now() + 86_400, "drn": "DSR"}));
    assert!(
        session.len() > 3 * CHUNK_SIZE,
        "token is {} bytes",
        session.len()
    );
    for host_prefix in [false, true] {
        let s = settings(host_prefix);
        let set = s.set_session(&HeaderMap::new(), &session, Some(&refresh));
        let n = session.len().div_ceil(CHUNK_SIZE);
        assert_eq!(set.len(), n + 1);
        for v in &set {
            let c = Cookie::parse(v.to_str().expect("ascii").to_owned()).expect("parsable");
            assert!(c.name().len() + c.value().len() <= 4096, "{}", c.name());
            assert!(v.len() < 4096);
        }
        let mut jar = Vec::new();
        browser_apply(&mut jar, &set);
        let t = s.read(&cookie_header(&jar));
        assert_eq!(t.session.as_deref(), Some(session.as_str()));
        assert_eq!(t.refresh.as_deref(), Some(refresh.as_str()));
        // Every chunk is a gateway cookie (never forwarded).
        assert!(jar.iter().all(|(name, _)| s.is_gateway_cookie(name)));
    }
}

#[test]
fn shape_changes_clear_the_old_shape() {
    let s = settings(false);
    let big = jwt(&json!({"exp": now() + 60, "pad": "x".repeat(3 * CHUNK_SIZE)}));
    let bigger = jwt(&json!({"exp": now() + 60, "pad": "x".repeat(5 * CHUNK_SIZE)}));
    let small = jwt(&json!({"exp": now() + 60}));

    // Unchunked → chunked: the unchunked twin is deleted.
    let mut jar = vec![
        ("DS".to_owned(), small.clone()),
        ("other".into(), "1".into()),
    ];
    let set = s.set_session(&cookie_header(&jar), &big, None);
    assert!(names(&set).contains(&("DS".to_owned(), true)));
    browser_apply(&mut jar, &set);
    assert!(!jar.iter().any(|(n, _)| n == "DS"));
    assert_eq!(
        s.read(&cookie_header(&jar)).session.as_deref(),
        Some(big.as_str())
    );

    // More chunks → fewer chunks: the extra chunks are deleted.
    let set = s.set_session(&cookie_header(&jar), &bigger, None);
    browser_apply(&mut jar, &set);
    let chunk_count =
        |jar: &[(String, String)]| jar.iter().filter(|(n, _)| n.starts_with("DS.")).count();
    assert_eq!(chunk_count(&jar), bigger.len().div_ceil(CHUNK_SIZE));
    let set = s.set_session(&cookie_header(&jar), &big, None);
    let deleted: Vec<String> = names(&set)
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        deleted.len(),
        bigger.len().div_ceil(CHUNK_SIZE) - big.len().div_ceil(CHUNK_SIZE)
    );
    browser_apply(&mut jar, &set);
    assert_eq!(chunk_count(&jar), big.len().div_ceil(CHUNK_SIZE));
    assert_eq!(
        s.read(&cookie_header(&jar)).session.as_deref(),
        Some(big.as_str())
    );

    // Chunked → unchunked: every chunk is deleted.
    let set = s.set_session(&cookie_header(&jar), &small, None);
    browser_apply(&mut jar, &set);
    assert_eq!(chunk_count(&jar), 0);
    assert_eq!(
        s.read(&cookie_header(&jar)).session.as_deref(),
        Some(small.as_str())
    );
    assert!(jar.iter().any(|(n, _)| n == "other"));
}

#[test]
fn clear_all_deletes_only_what_the_request_carried() {
    let s = CookieSettings {
        domain: Some("example.com".into()),
        ..settings(false)
    };
    let h = headers(&["DS.0=a; DS.1=b; DSR=r; DSR=r2; app=1; portcullis_state_x=s"]);
    let set = s.clear_all(&h);
    let got = names(&set);
    assert_eq!(
        got,
        vec![
            ("DS.0".to_owned(), true),
            ("DS.1".to_owned(), true),
            ("DSR".to_owned(), true)
        ]
    );
    for v in &set {
        let c = Cookie::parse(v.to_str().expect("ascii").to_owned()).expect("parsable");
        assert_eq!(c.value(), "");
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.secure(), Some(true));
    }
    assert!(s.clear_all(&HeaderMap::new()).is_empty());
}

#[test]
fn clear_all_with_host_prefix_also_deletes_unprefixed_twins() {
    let h = headers(&["__Host-DS=a; DS=old; DSR.0=x; __Host-other=1; portcullis_state_n=s"]);
    let got = names(&settings(true).clear_all(&h));
    assert_eq!(
        got,
        vec![
            ("__Host-DS".to_owned(), true),
            ("DS".to_owned(), true),
            ("DSR.0".to_owned(), true)
        ]
    );
    // Without the prefix, `__Host-` cookies are not the gateway's to delete.
    let got = names(&settings(false).clear_all(&h));
    assert_eq!(
        got,
        vec![("DS".to_owned(), true), ("DSR.0".to_owned(), true)]
    );
}

#[test]
fn gateway_cookie_names() {
    let s = settings(true);
    let cases = [
        ("__Host-DS", true),
        ("__Host-DSR", true),
        ("__Host-DS.0", true),
        ("__Host-DSR.12", true),
        ("DS", true),
        ("DSR.3", true),
        ("portcullis_state_abc", true),
        ("DS.", false),
        ("DS.x", false),
        ("DSX", false),
        ("ds", false),
        ("app_session", false),
        ("__Host-app", false),
        ("", false),
    ];
    for (name, want) in cases {
        assert_eq!(s.is_gateway_cookie(name), want, "{name:?}");
    }
}

#[test]
fn debug_of_tokens_is_redacted() {
    let t = RequestTokens {
        session: Some("secret-session".into()),
        refresh: Some("secret-refresh".into()),
    };
    assert!(!format!("{t:?}").contains("secret"));
}

/// Random `Cookie` header bytes (seeded, reproducible): reading, clearing
/// and setting never panic, and whatever is read came from the header.
#[test]
fn random_cookie_headers_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let alphabet: &[u8] = b"DSR.0123=; \t\"\\,abc_-\x7f\xff";
    let s = settings(false);
    for _ in 0..5000 {
        let len = rng.random_range(0..64);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let Ok(v) = HeaderValue::from_bytes(&bytes) else {
            continue;
        };
        let mut h = HeaderMap::new();
        h.append(COOKIE, v);
        let t = s.read(&h);
        for token in [t.session, t.refresh].into_iter().flatten() {
            assert!(token.len() <= bytes.len());
        }
        let _ = s.clear_all(&h);
        let _ = s.set_session(&h, "a.b.c", Some("d.e.f"));
    }
}

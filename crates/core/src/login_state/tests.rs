use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OLD: &[u8] = b"old-secret-old-secret-old-secret!";
const NOW: u64 = 1_800_000_000;

fn codec() -> StateCodec {
    StateCodec::new(SECRET, &[]).expect("valid secret")
}

fn state(kind: LoginKind) -> LoginState {
    StateCodec::issue(
        kind,
        "/app?x=1".into(),
        Some("extra".into()),
        DEFAULT_STATE_TTL,
        NOW,
    )
    .expect("rng works")
}

fn settings() -> StateCookieSettings {
    StateCookieSettings::new(true, false, "/_auth")
}

fn cookie_header(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let v = pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    h.insert(header::COOKIE, HeaderValue::from_str(&v).expect("ascii"));
    h
}

#[test]
fn round_trip_and_nonce_shape() {
    let s = state(LoginKind::OAuth);
    assert!(is_nonce(&s.nonce));
    assert_eq!(s.expires_at, NOW + DEFAULT_STATE_TTL.as_secs());
    let sealed = codec().seal(Purpose::Cookie, &s);
    assert_eq!(codec().open(Purpose::Cookie, &sealed, NOW + 1), Ok(s));
}

#[test]
fn nonces_are_unique() {
    let a = state(LoginKind::Flow);
    let b = state(LoginKind::Flow);
    assert_ne!(a.nonce, b.nonce);
}

#[test]
fn refusals() {
    let c = codec();
    let s = state(LoginKind::MagicLink);
    let sealed = c.seal(Purpose::Link, &s);
    let (payload, tag) = sealed.split_once('.').expect("two parts");
    let other = StateCodec::new(b"another-secret-another-secret-xx", &[]).expect("valid");
    let mut forged = s.clone();
    forged.return_to = "https://evil.example/".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
    let cases: Vec<(String, Purpose, u64, StateError)> = vec![
        (
            sealed.clone(),
            Purpose::Cookie,
            NOW,
            StateError::BadSignature,
        ),
        (
            sealed.clone(),
            Purpose::Link,
            s.expires_at,
            StateError::Expired,
        ),
        (
            sealed.clone(),
            Purpose::Link,
            s.expires_at + 100,
            StateError::Expired,
        ),
        (
            other.seal(Purpose::Link, &s),
            Purpose::Link,
            NOW,
            StateError::BadSignature,
        ),
        (
            format!("{forged_payload}.{tag}"),
            Purpose::Link,
            NOW,
            StateError::BadSignature,
        ),
        (
            format!("{payload}.{}", flip_first(tag)),
            Purpose::Link,
            NOW,
            StateError::BadSignature,
        ),
        (
            payload.to_owned(),
            Purpose::Link,
            NOW,
            StateError::Malformed,
        ),
        (
            format!("{payload}.!!"),
            Purpose::Link,
            NOW,
            StateError::Malformed,
        ),
        (String::new(), Purpose::Link, NOW, StateError::Malformed),
        ("a".repeat(5000), Purpose::Link, NOW, StateError::Malformed),
    ];
    for (value, purpose, now, want) in cases {
        assert_eq!(
            c.open(purpose, &value, now),
            Err(want.clone()),
            "{value:.40}"
        );
    }
}

#[test]
fn previous_secrets_still_verify_but_do_not_sign() {
    let old = StateCodec::new(OLD, &[]).expect("valid");
    let rotated = StateCodec::new(SECRET, &[OLD]).expect("valid");
    let s = state(LoginKind::Sso);
    let by_old = old.seal(Purpose::Cookie, &s);
    assert_eq!(rotated.open(Purpose::Cookie, &by_old, NOW), Ok(s.clone()));
    // New values are signed with the current secret only.
    let by_new = rotated.seal(Purpose::Cookie, &s);
    assert_eq!(
        old.open(Purpose::Cookie, &by_new, NOW),
        Err(StateError::BadSignature)
    );
    assert_eq!(codec().open(Purpose::Cookie, &by_new, NOW), Ok(s));
}

#[test]
fn weak_secrets_are_refused() {
    assert_eq!(
        StateCodec::new(b"short", &[]).map(|_| ()),
        Err(StateError::WeakSecret)
    );
    assert_eq!(
        StateCodec::new(SECRET, &[b"short"]).map(|_| ()),
        Err(StateError::WeakSecret)
    );
}

#[test]
fn state_cookie_attributes() {
    let s = StateCodec::issue(
        LoginKind::OAuth,
        "/".into(),
        None,
        DEFAULT_STATE_TTL,
        now_unix(),
    )
    .expect("rng");
    let v = codec().state_cookie(&settings(), &s);
    let text = v.to_str().expect("ascii");
    let parsed = Cookie::parse(text.to_owned()).expect("valid cookie");
    assert_eq!(parsed.name(), format!("{STATE_COOKIE_PREFIX}{}", s.nonce));
    assert_eq!(parsed.http_only(), Some(true));
    assert_eq!(parsed.secure(), Some(true));
    assert_eq!(parsed.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(parsed.path(), Some("/_auth"));
    let max_age = parsed.max_age().expect("max-age").whole_seconds();
    assert!((590..=600).contains(&max_age), "{max_age}");

    let cleared = clear_state_cookie(&settings(), &s.nonce);
    let parsed = Cookie::parse(cleared.to_str().expect("ascii").to_owned()).expect("valid");
    assert_eq!(parsed.max_age(), Some(cookie::time::Duration::ZERO));
    assert_eq!(parsed.value(), "");
}

#[test]
fn reading_the_state_cookie() {
    let c = codec();
    let s = state(LoginKind::OAuth);
    let name = state_cookie_name(&s.nonce);
    let sealed = c.seal(Purpose::Cookie, &s);
    let other = state(LoginKind::OAuth);
    let other_sealed = c.seal(Purpose::Cookie, &other);

    let ok = cookie_header(&[("DS", "x"), (&name, &sealed)]);
    assert_eq!(
        c.read_state_cookie(&settings(), &ok, &s.nonce, LoginKind::OAuth, NOW),
        Ok(s.clone())
    );
    // Wrong kind: an OTP state cannot finish an OAuth login.
    assert_eq!(
        c.read_state_cookie(&settings(), &ok, &s.nonce, LoginKind::Sso, NOW),
        Err(StateError::Mismatch)
    );
    // No cookie at all for this nonce.
    assert_eq!(
        c.read_state_cookie(
            &settings(),
            &cookie_header(&[("DS", "x")]),
            &s.nonce,
            LoginKind::OAuth,
            NOW
        ),
        Err(StateError::Missing)
    );
    // Another login's sealed value planted under this nonce's name.
    let planted = cookie_header(&[(&name, &other_sealed)]);
    assert_eq!(
        c.read_state_cookie(&settings(), &planted, &s.nonce, LoginKind::OAuth, NOW),
        Err(StateError::Mismatch)
    );
    // A link state is not a cookie state.
    let link = cookie_header(&[(&name, &c.seal(Purpose::Link, &s))]);
    assert_eq!(
        c.read_state_cookie(&settings(), &link, &s.nonce, LoginKind::OAuth, NOW),
        Err(StateError::BadSignature)
    );
    // Duplicates: a bad one first does not hide the good one.
    let dup = cookie_header(&[(&name, "garbage"), (&name, &sealed)]);
    assert_eq!(
        c.read_state_cookie(&settings(), &dup, &s.nonce, LoginKind::OAuth, NOW),
        Ok(s.clone())
    );
    // A nonce not of our shape is refused up front.
    for bad in [
        "",
        "short",
        "../../etc/passwd/xxxxxxx",
        "aaaaaaaaaaaaaaaaaaaaa;",
    ] {
        assert_eq!(
            c.read_state_cookie(&settings(), &ok, bad, LoginKind::OAuth, NOW),
            Err(StateError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn a_host_prefixed_state_cookie_cannot_be_planted_without_the_prefix() {
    // With `__Host-` (https, no cookie domain) the cookie is named
    // `__Host-portcullis_state_<nonce>` with `Path=/`, which a sibling
    // subdomain or a plain-http response cannot set; the unprefixed name
    // such a site can set is never read.
    let c = codec();
    let host = StateCookieSettings::new(true, true, "/_auth");
    let s = state(LoginKind::OAuth);
    let sealed = c.seal(Purpose::Cookie, &s);
    let set = c.state_cookie(&host, &s);
    let parsed = Cookie::parse(set.to_str().expect("ascii").to_owned()).expect("valid cookie");
    assert_eq!(
        parsed.name(),
        format!("__Host-{STATE_COOKIE_PREFIX}{}", s.nonce)
    );
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.secure(), Some(true));
    assert_eq!(parsed.domain(), None);
    let planted = cookie_header(&[(&state_cookie_name(&s.nonce), &sealed)]);
    assert_eq!(
        c.read_state_cookie(&host, &planted, &s.nonce, LoginKind::OAuth, NOW),
        Err(StateError::Missing)
    );
    let real = cookie_header(&[(parsed.name(), &sealed)]);
    assert_eq!(
        c.read_state_cookie(&host, &real, &s.nonce, LoginKind::OAuth, NOW),
        Ok(s.clone())
    );
    let cleared = clear_state_cookie(&host, &s.nonce);
    let parsed = Cookie::parse(cleared.to_str().expect("ascii").to_owned()).expect("valid");
    assert_eq!(
        parsed.name(),
        format!("__Host-{STATE_COOKIE_PREFIX}{}", s.nonce)
    );
    assert_eq!(parsed.path(), Some("/"));
    // Without Secure (an http public_url) there is no `__Host-`.
    let plain = StateCookieSettings::new(false, true, "/_auth");
    assert!(!plain.host_prefix);
    assert_eq!(plain.path, "/_auth");
}

/// The same base64url text with its first character changed.
fn flip_first(s: &str) -> String {
    let first = if s.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &s[1..])
}

#[test]
fn pruning_keeps_the_newest_valid_state_cookies() {
    let c = codec();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut by_age = Vec::new();
    for i in 0..6u64 {
        let mut s = state(LoginKind::Flow);
        s.expires_at = NOW + 100 + i;
        by_age.push(s.nonce.clone());
        pairs.push((state_cookie_name(&s.nonce), c.seal(Purpose::Cookie, &s)));
    }
    let mut expired = state(LoginKind::Flow);
    expired.expires_at = NOW - 1;
    pairs.push((
        state_cookie_name(&expired.nonce),
        c.seal(Purpose::Cookie, &expired),
    ));
    pairs.push((format!("{STATE_COOKIE_PREFIX}junk"), "junk".into()));
    // A valid value under another nonce's name is not ours either.
    let planted = c.seal(Purpose::Cookie, &state(LoginKind::Flow));
    pairs.push((format!("{STATE_COOKIE_PREFIX}{}", "A".repeat(22)), planted));
    pairs.push(("DS".into(), "session".into()));
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let removed: Vec<String> = c
        .prune_state_cookies(&settings(), &cookie_header(&refs), 4, NOW)
        .iter()
        .map(|v| {
            let text = v.to_str().expect("ascii").to_owned();
            Cookie::parse(text).expect("valid").name().to_owned()
        })
        .collect();
    let mut want: Vec<String> = vec![
        state_cookie_name(&by_age[0]),
        state_cookie_name(&by_age[1]),
        state_cookie_name(&expired.nonce),
        format!("{STATE_COOKIE_PREFIX}junk"),
        format!("{STATE_COOKIE_PREFIX}{}", "A".repeat(22)),
    ];
    let mut got = removed.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Nothing to prune below the bound.
    let one = cookie_header(&refs[..1]);
    assert!(c.prune_state_cookies(&settings(), &one, 4, NOW).is_empty());
}

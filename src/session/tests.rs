//! Validator tests over real sockets: a tiny JWKS server on 127.0.0.1:0
//! (switchable key set and failure, fetch counter) and keys generated here
//! with aws-lc-rs, tokens signed with jsonwebtoken.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;

const PID: &str = "P2abc123projectid";
const AUD: &str = "my-audience";

// ---------- keys ----------

#[derive(Clone)]
struct TestKey {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn with_kid(&self, kid: &str) -> TestKey {
        let mut k = self.clone();
        k.kid = kid.to_owned();
        k.jwk["kid"] = json!(kid);
        k
    }
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key(kid: &str, alg: Algorithm) -> TestKey {
    let (signing, crv, len) = match alg {
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
        Algorithm::ES384 => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
        other => panic!("not an EC alg: {other:?}"),
    };
    let pair = EcdsaKeyPair::generate(signing).expect("EC key generation");
    let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8 export");
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 1 + 2 * len, "uncompressed point");
    let (x, y) = point[1..].split_at(len);
    TestKey {
        kid: kid.into(),
        alg,
        enc: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty":"EC","kid":kid,"alg":alg_name(alg),"use":"sig","crv":crv,"x":b64u(x),"y":b64u(y)}),
    }
}

fn rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    // One 2048-bit key for the whole test binary: generation is the slow part.
    static RSA: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (pkcs8, n, e) = RSA.get_or_init(|| {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("RSA key generation");
        let der = pair.as_der().expect("PKCS#8 export");
        let public = pair.public_key();
        (
            der.as_ref().to_vec(),
            public.modulus().big_endian_without_leading_zero().to_vec(),
            public.exponent().big_endian_without_leading_zero().to_vec(),
        )
    });
    // jsonwebtoken signs RSA from PKCS#1; its PEM reader unwraps PKCS#8.
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD
            .encode(pkcs8)
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    TestKey {
        kid: kid.into(),
        alg,
        enc: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM"),
        jwk: json!({"kty":"RSA","kid":kid,"alg":alg_name(alg),"use":"sig","n":b64u(n),"e":b64u(e)}),
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        other => panic!("not used in tests: {other:?}"),
    }
}

fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

// ---------- tokens ----------

fn now() -> i64 {
    unix_now() as i64
}

fn session_claims(sub: &str) -> Value {
    json!({
        "sub": sub, "iss": format!("https://api.descope.com/{PID}"), "drn": "DS",
        "iat": now(), "exp": now() + 3600, "roles": ["admin"],
    })
}

fn mint(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.enc).expect("signing")
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().expect("object").remove(field);
    claims
}

fn unsigned(header: Value, claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64u(header.to_string().as_bytes()),
        b64u(claims.to_string().as_bytes()),
        sig
    )
}

// ---------- JWKS server ----------

struct JwksServer {
    url: url::Url,
    state: Arc<ServerState>,
    hits: watch::Receiver<usize>,
}

struct ServerState {
    body: Mutex<String>,
    /// HTTP status to answer with (200 serves `body`).
    status: AtomicU16,
    hits: watch::Sender<usize>,
    bad_auth: AtomicUsize,
    /// Never answer (Descope hanging).
    stall: std::sync::atomic::AtomicBool,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (hits_tx, hits) = watch::channel(0usize);
        let state = Arc::new(ServerState {
            body: Mutex::new(body),
            status: AtomicU16::new(200),
            hits: hits_tx,
            bad_auth: AtomicUsize::new(0),
            stall: std::sync::atomic::AtomicBool::new(false),
        });
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let st = Arc::clone(&st);
                        async move {
                            if st.stall.load(Ordering::SeqCst) {
                                std::future::pending::<()>().await;
                            }
                            Ok::<_, Infallible>(st.answer(&req))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let url = url::Url::parse(&format!("http://{addr}/v2/keys/{PID}")).expect("url");
        Self { url, state, hits }
    }

    fn serve(&self, body: String) {
        *self.state.body.lock().expect("lock") = body;
        self.state.status.store(200, Ordering::SeqCst);
    }

    fn fail(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        *self.hits.borrow()
    }

    /// Waits (event-driven, bounded) until the server has answered `n` fetches.
    async fn wait_hits(&mut self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), self.hits.wait_for(|h| *h >= n))
            .await
            .expect("JWKS server was not called in time")
            .expect("server alive");
    }
}

impl ServerState {
    fn answer(&self, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {PID}")) || req.uri().path() != format!("/v2/keys/{PID}") {
            self.bad_auth.fetch_add(1, Ordering::SeqCst);
        }
        let status = self.status.load(Ordering::SeqCst);
        let body = if status == 200 {
            self.body.lock().expect("lock").clone()
        } else {
            r#"{"errorCode":"E000000"}"#.to_owned()
        };
        self.hits.send_modify(|h| *h += 1);
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    }
}

// ---------- validator ----------

struct Setup {
    seed: Option<String>,
    min_refetch: Duration,
    refresh: Duration,
    capacity: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            seed: None,
            min_refetch: Duration::from_secs(3600),
            refresh: Duration::from_secs(3600),
            capacity: 1000,
        }
    }
}

fn validator(server: &JwksServer, setup: Setup) -> (Arc<SessionValidator>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let v = SessionValidator::new(ValidatorSettings {
        project_id: PID.into(),
        audience: AUD.into(),
        jwks_url: server.url.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        jwks_min_refetch: setup.min_refetch,
        jwks_refresh: setup.refresh,
        seed_keys: setup.seed,
        cache_capacity: setup.capacity,
        metrics: Arc::clone(&metrics),
    })
    .expect("validator");
    (v, metrics)
}

fn fetches(metrics: &Metrics, result: &str) -> u64 {
    metrics.jwks_fetches.with_label_values(&[result]).get()
}

struct Keys {
    es256: TestKey,
    es384: TestKey,
    rs256: TestKey,
    rs384: TestKey,
    rs512: TestKey,
}

fn keys() -> Keys {
    let rsa = rsa_key("r256", Algorithm::RS256);
    let mut rs384 = rsa.with_kid("r384");
    rs384.alg = Algorithm::RS384;
    rs384.jwk["alg"] = json!("RS384");
    let mut rs512 = rsa.with_kid("r512");
    rs512.alg = Algorithm::RS512;
    rs512.jwk["alg"] = json!("RS512");
    Keys {
        es256: ec_key("e256", Algorithm::ES256),
        es384: ec_key("e384", Algorithm::ES384),
        rs256: rsa,
        rs384,
        rs512,
    }
}

// ---------- tests ----------

#[tokio::test]
async fn valid_tokens_of_every_supported_alg() {
    let k = keys();
    let all = [&k.es256, &k.es384, &k.rs256, &k.rs384, &k.rs512];
    let server = JwksServer::start(jwks(&all)).await;
    let (v, metrics) = validator(&server, Setup::default());
    assert!(!v.keys_ready());
    assert_eq!(v.refetch_now().await, FetchOutcome::Updated);
    assert!(v.keys_ready());
    assert_eq!(v.key_count(), 5);
    for key in all {
        let sub = format!("user-{}", key.kid);
        let token = mint(key, &session_claims(&sub));
        let claims = v.verify_session(&token).await.expect("valid token");
        assert_eq!(claims.subject(), Some(sub.as_str()), "kid {}", key.kid);
        assert_eq!(claims.roles(), vec!["admin"]);
        // A repeat is served from the cache: the very same Arc.
        let again = v.verify_session(&token).await.expect("cached");
        assert!(Arc::ptr_eq(&claims, &again));
    }
    assert_eq!(v.cached_tokens(), 5);
    assert_eq!(
        server.state.bad_auth.load(Ordering::SeqCst),
        0,
        "Bearer <pid> sent"
    );
    assert_eq!(fetches(&metrics, "ok"), 1);
    assert_eq!(v.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn accepted_claim_variants() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    let base = session_claims("u");
    let cases = [
        (
            "bare project id issuer",
            with(base.clone(), "iss", json!(PID)),
        ),
        ("aud string", with(base.clone(), "aud", json!(AUD))),
        ("aud array", with(base.clone(), "aud", json!(["x", AUD]))),
        ("no drn", without(base.clone(), "drn")),
        (
            "exp just inside leeway",
            with(base.clone(), "exp", json!(now() - 2)),
        ),
        (
            "nbf just inside leeway",
            with(base.clone(), "nbf", json!(now() + 2)),
        ),
    ];
    for (name, claims) in cases {
        let token = mint(&k.es256, &claims);
        assert!(v.verify_session(&token).await.is_ok(), "{name}");
    }
    let refresh = mint(&k.es256, &with(base, "drn", json!("DSR")));
    let claims = v.verify_refresh(&refresh).await.expect("refresh token");
    assert_eq!(claims.drn(), Some("DSR"));
}

#[tokio::test]
async fn token_attacks_are_refused() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256, &k.rs256])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    let base = session_claims("victim");
    let good = mint(&k.es256, &base);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64u(
        with(base.clone(), "roles", json!(["superadmin"]))
            .to_string()
            .as_bytes(),
    );
    let impostor = ec_key("e256", Algorithm::ES256);
    let rsa_as_ec_kid = rsa_key("e256", Algorithm::RS256);
    let ec_as_rsa_kid = ec_key("r256", Algorithm::ES256);
    let hs = |secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("e256".into());
        jsonwebtoken::encode(&h, &base, &EncodingKey::from_secret(secret)).expect("HS256")
    };

    let cases: Vec<(&str, String, SessionError)> = vec![
        (
            "alg none, empty signature",
            unsigned(json!({"alg":"none","kid":"e256"}), &base, ""),
            SessionError::UnsupportedAlg,
        ),
        (
            "alg none with a signature",
            unsigned(json!({"alg":"none","kid":"e256"}), &base, parts[2]),
            SessionError::UnsupportedAlg,
        ),
        (
            "alg None spelled oddly",
            unsigned(json!({"alg":"None","kid":"e256"}), &base, parts[2]),
            SessionError::UnsupportedAlg,
        ),
        (
            "HS256 signed with the public JWK",
            hs(k.es256.jwk.to_string().as_bytes()),
            SessionError::UnsupportedAlg,
        ),
        (
            "HS256 signed with the RSA modulus",
            hs(k.rs256.jwk["n"].as_str().expect("n").as_bytes()),
            SessionError::UnsupportedAlg,
        ),
        (
            "unknown kid",
            mint(&k.es256.with_kid("nope"), &base),
            SessionError::UnknownKid,
        ),
        (
            "another key with the same kid",
            mint(&impostor, &base),
            SessionError::BadSignature,
        ),
        (
            "expired",
            mint(&k.es256, &with(base.clone(), "exp", json!(now() - 60))),
            SessionError::Expired,
        ),
        (
            "nbf in the future",
            mint(&k.es256, &with(base.clone(), "nbf", json!(now() + 60))),
            SessionError::NotYetValid,
        ),
        (
            "missing exp",
            mint(&k.es256, &without(base.clone(), "exp")),
            SessionError::MissingExp,
        ),
        (
            "nbf not a number",
            mint(&k.es256, &with(base.clone(), "nbf", json!("now"))),
            SessionError::Rejected("claim of the wrong type"),
        ),
        (
            "exp not a number",
            mint(&k.es256, &with(base.clone(), "exp", json!("tomorrow"))),
            SessionError::MissingExp,
        ),
        (
            "wrong issuer",
            mint(&k.es256, &with(base.clone(), "iss", json!("other-project"))),
            SessionError::BadIssuer,
        ),
        (
            "issuer with the project id as host only",
            mint(
                &k.es256,
                &with(base.clone(), "iss", json!(format!("https://{PID}/other"))),
            ),
            SessionError::BadIssuer,
        ),
        (
            "project id third from last",
            mint(
                &k.es256,
                &with(
                    base.clone(),
                    "iss",
                    json!(format!("https://x.example/{PID}/a/b")),
                ),
            ),
            SessionError::BadIssuer,
        ),
        (
            "no issuer",
            mint(&k.es256, &without(base.clone(), "iss")),
            SessionError::BadIssuer,
        ),
        (
            "issuer not a string",
            mint(&k.es256, &with(base.clone(), "iss", json!([PID]))),
            SessionError::BadIssuer,
        ),
        (
            "wrong aud",
            mint(&k.es256, &with(base.clone(), "aud", json!("someone-else"))),
            SessionError::BadAudience,
        ),
        (
            "aud array without us",
            mint(&k.es256, &with(base.clone(), "aud", json!(["a", "b"]))),
            SessionError::BadAudience,
        ),
        (
            "refresh token as session",
            mint(&k.es256, &with(base.clone(), "drn", json!("DSR"))),
            SessionError::WrongTokenKind,
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
            SessionError::BadSignature,
        ),
        (
            "signature of another token",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                mint(&k.es256, &session_claims("x"))
                    .split('.')
                    .nth(2)
                    .expect("3 parts")
            ),
            SessionError::BadSignature,
        ),
        (
            "truncated: no signature",
            format!("{}.{}.", parts[0], parts[1]),
            SessionError::Malformed,
        ),
        (
            "truncated: two parts",
            format!("{}.{}", parts[0], parts[1]),
            SessionError::Malformed,
        ),
        ("garbage", "not-a-jwt".into(), SessionError::Malformed),
        ("garbage with dots", "a.b.c".into(), SessionError::Malformed),
        ("empty", String::new(), SessionError::Malformed),
        (
            "oversized",
            format!("{good}{}", "A".repeat(20_000)),
            SessionError::Malformed,
        ),
        (
            "RS256 token naming an ES256 key",
            mint(&rsa_as_ec_kid, &base),
            SessionError::AlgMismatch,
        ),
        (
            "ES256 token naming an RS256 key",
            mint(&ec_as_rsa_kid, &base),
            SessionError::AlgMismatch,
        ),
        (
            "header alg changed to match another family",
            format!(
                "{}.{}.{}",
                b64u(
                    json!({"alg":"RS256","kid":"e256","typ":"JWT"})
                        .to_string()
                        .as_bytes()
                ),
                parts[1],
                parts[2]
            ),
            SessionError::AlgMismatch,
        ),
    ];
    for (name, token, want) in cases {
        let got = v.verify_session(&token).await;
        assert_eq!(got.as_ref().err(), Some(&want), "{name}: got {got:?}");
        assert_eq!(
            got.err().map(|e| e.is_expired()),
            Some(want == SessionError::Expired)
        );
    }

    // Truncating the signature never verifies (bad length or bad base64).
    let cut = &good[..good.len() - 5];
    let got = v.verify_session(cut).await;
    assert!(
        matches!(
            got,
            Err(SessionError::BadSignature | SessionError::Malformed)
        ),
        "truncated signature: {got:?}"
    );
    // A session token is not a refresh token.
    assert_eq!(
        v.verify_refresh(&good).await.err(),
        Some(SessionError::WrongTokenKind)
    );
    // The valid token still passes after all that, and nothing bad was cached.
    assert!(v.verify_session(&good).await.is_ok());
    assert_eq!(v.cached_tokens(), 1);
}

#[tokio::test]
async fn expired_cached_token_is_refused() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    // A cache hit re-checks `exp`: plant the verified entry with a validity
    // that has just run out.
    let token = mint(&k.es256, &session_claims("u"));
    let claims = v.verify_session(&token).await.expect("valid");
    let key = CacheKey::new(&token, TokenKind::Session);
    v.cache
        .insert(key, claims, unix_now() - 1, v.cache.epoch(), unix_now());
    assert_eq!(
        v.verify_session(&token).await.err(),
        Some(SessionError::Expired)
    );
}

#[tokio::test]
async fn forged_kid_flood_causes_bounded_fetches() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    assert_eq!(server.hits(), 1);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let v = Arc::clone(&v);
        let token = mint(
            &k.es256.with_kid(&format!("forged-{i}")),
            &session_claims("u"),
        );
        tasks.push(tokio::spawn(async move { v.verify_session(&token).await }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").err(), Some(SessionError::UnknownKid));
    }
    assert!(
        server.hits() <= 2,
        "{} fetches for 50 forged kids",
        server.hits()
    );
    // Later forged kids within the window cause no fetch at all.
    let before = server.hits();
    for i in 0..20 {
        let token = mint(
            &k.es256.with_kid(&format!("later-{i}")),
            &session_claims("u"),
        );
        assert_eq!(
            v.verify_session(&token).await.err(),
            Some(SessionError::UnknownKid)
        );
    }
    assert_eq!(server.hits(), before);
    assert_eq!(v.jwks_fetch_count() as usize, server.hits());
}

#[tokio::test]
async fn rotation_is_picked_up_by_unknown_kid_refetch() {
    let old = ec_key("old", Algorithm::ES384);
    let new = ec_key("new", Algorithm::ES384);
    let server = JwksServer::start(jwks(&[&old])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    let old_token = mint(&old, &session_claims("u"));
    assert!(v.verify_session(&old_token).await.is_ok());

    server.serve(jwks(&[&new]));
    // Many requests with the new kid at once: one fetch, all of them wait for it.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let v = Arc::clone(&v);
        let token = mint(&new, &session_claims(&format!("u{i}")));
        tasks.push(tokio::spawn(async move { v.verify_session(&token).await }));
    }
    for t in tasks {
        assert!(t.await.expect("task").is_ok());
    }
    assert_eq!(server.hits(), 2);
    // The rotated-out key no longer validates, cached or not.
    assert_eq!(
        v.verify_session(&old_token).await.err(),
        Some(SessionError::UnknownKid)
    );
    assert_eq!(server.hits(), 2, "rate limit: no second unknown-kid fetch");
}

#[tokio::test]
async fn unknown_kid_refetch_window_reopens() {
    let a = ec_key("a", Algorithm::ES256);
    let b = ec_key("b", Algorithm::ES256);
    let c = ec_key("c", Algorithm::ES256);
    let server = JwksServer::start(jwks(&[&a])).await;
    let (v, _) = validator(
        &server,
        Setup {
            min_refetch: Duration::from_secs(10),
            ..Setup::default()
        },
    );
    v.refetch_now().await;
    server.serve(jwks(&[&a, &b]));
    assert!(
        v.verify_session(&mint(&b, &session_claims("u")))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 2);

    server.serve(jwks(&[&a, &b, &c]));
    let token_c = mint(&c, &session_claims("u"));
    // Inside the window no fetch happens (no I/O, so the clock can be paused).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        v.verify_session(&token_c).await.err(),
        Some(SessionError::UnknownKid)
    );
    assert_eq!(server.hits(), 2);
    tokio::time::advance(Duration::from_secs(2)).await;
    // Past the window: resume real time for the fetch's socket I/O.
    tokio::time::resume();
    assert!(v.verify_session(&token_c).await.is_ok());
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn seeded_keys_work_while_descope_is_down() {
    let k = keys();
    let server = JwksServer::start(String::new()).await;
    server.fail(503);
    let (v, metrics) = validator(
        &server,
        Setup {
            seed: Some(k.es384.jwk.to_string()),
            ..Setup::default()
        },
    );
    assert!(v.keys_ready(), "seeded before any fetch");
    let refresher = v.spawn_refresher();
    let token = mint(&k.es384, &session_claims("u"));
    assert!(v.verify_session(&token).await.is_ok());
    // The refresher's first fetch fails; the seed stays.
    assert_eq!(v.refetch_now().await, FetchOutcome::Failed);
    assert!(fetches(&metrics, "error") >= 1);
    assert_eq!(fetches(&metrics, "ok"), 0);
    v.flush_cache();
    assert!(v.verify_session(&token).await.is_ok());
    assert!(v.keys_ready());
    refresher.abort();
}

#[tokio::test]
async fn seed_may_be_a_jwks_and_bad_seed_is_refused() {
    let k = keys();
    let server = JwksServer::start(String::new()).await;
    let (v, _) = validator(
        &server,
        Setup {
            seed: Some(jwks(&[&k.es256, &k.rs256])),
            ..Setup::default()
        },
    );
    assert_eq!(v.key_count(), 2);
    for bad in [
        "",
        "{}",
        "{\"keys\":[]}",
        "[1,2]",
        "{\"kty\":\"oct\",\"kid\":\"x\",\"alg\":\"HS256\",\"k\":\"AA\"}",
    ] {
        let metrics = Arc::new(Metrics::new());
        let r = SessionValidator::new(ValidatorSettings {
            project_id: PID.into(),
            audience: AUD.into(),
            jwks_url: server.url.clone(),
            http: reqwest::Client::new(),
            jwks_min_refetch: Duration::from_secs(10),
            jwks_refresh: Duration::from_secs(300),
            seed_keys: Some(bad.into()),
            cache_capacity: 10,
            metrics,
        });
        assert!(
            matches!(r, Err(SessionError::InvalidSeedKeys)),
            "seed {bad:?}"
        );
    }
}

#[tokio::test]
async fn no_keys_at_all_is_keys_unavailable() {
    let k = keys();
    let server = JwksServer::start(String::new()).await;
    server.fail(500);
    let (v, _) = validator(&server, Setup::default());
    assert!(!v.keys_ready());
    let token = mint(&k.es256, &session_claims("u"));
    assert_eq!(
        v.verify_session(&token).await.err(),
        Some(SessionError::KeysUnavailable)
    );
    assert_eq!(server.hits(), 1, "one fetch attempt for the unknown kid");
}

#[tokio::test]
async fn descope_down_after_start_keeps_the_keys() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256])).await;
    let (v, metrics) = validator(&server, Setup::default());
    assert_eq!(v.refetch_now().await, FetchOutcome::Updated);
    let token = mint(&k.es256, &session_claims("u"));
    assert!(v.verify_session(&token).await.is_ok());
    assert_eq!(v.cached_tokens(), 1);

    let bad_answers = [
        (503, String::new()),
        (404, String::new()),
        (200, "not json".to_owned()),
        (200, "{\"keys\":[]}".to_owned()),
        (
            200,
            "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"AA\"}]}"
                .to_owned(),
        ),
        (200, k.es256.jwk.to_string()),
        (
            200,
            format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(2 << 20)),
        ),
    ];
    for (status, body) in bad_answers {
        server.serve(body.clone());
        server.fail(status);
        assert_eq!(
            v.refetch_now().await,
            FetchOutcome::Failed,
            "{status} {body}"
        );
    }
    assert_eq!(fetches(&metrics, "error"), 7);
    assert_eq!(v.cached_tokens(), 1, "a failed fetch does not flush");
    v.flush_cache();
    assert!(v.verify_session(&token).await.is_ok());
    assert_eq!(v.key_count(), 1);
}

#[tokio::test]
async fn periodic_refresh_updates_keys() {
    let a = ec_key("a", Algorithm::ES256);
    let b = ec_key("b", Algorithm::ES256);
    let mut server = JwksServer::start(jwks(&[&a])).await;
    let (v, _) = validator(
        &server,
        Setup {
            refresh: Duration::from_secs(1),
            ..Setup::default()
        },
    );
    let refresher = v.spawn_refresher();
    server.wait_hits(1).await;
    v.jwks.settle().await;
    assert!(v.keys_ready());
    server.serve(jwks(&[&b]));
    server.wait_hits(2).await;
    v.jwks.settle().await;
    let token_b = mint(&b, &session_claims("u"));
    assert!(v.verify_session(&token_b).await.is_ok());
    assert_eq!(server.hits(), 2, "kid b came from the periodic refresh");
    refresher.abort();
}

#[tokio::test]
async fn without_keys_the_refresher_retries_with_backoff_until_they_load() {
    let a = ec_key("a", Algorithm::ES256);
    let mut server = JwksServer::start(jwks(&[&a])).await;
    server.fail(503);
    // A long periodic interval: only the no-keys backoff can make the
    // second and third attempts happen within the test's deadlines.
    let (v, metrics) = validator(
        &server,
        Setup {
            refresh: Duration::from_secs(3600),
            ..Setup::default()
        },
    );
    let refresher = v.spawn_refresher();
    server.wait_hits(3).await;
    assert!(!v.keys_ready());
    assert!(fetches(&metrics, "error") >= 2);
    // Descope recovers: the next retry (≤ 2 s after the third failure) loads the keys.
    server.serve(jwks(&[&a]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !v.keys_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys not loaded within 10 s of the JWKS endpoint recovering"
        );
        let next = server.hits() + 1;
        server.wait_hits(next).await;
        v.jwks.settle().await;
    }
    refresher.abort();
}

#[tokio::test]
async fn cache_is_flushed_when_keys_change_only() {
    let a = ec_key("a", Algorithm::ES256);
    let b = ec_key("b", Algorithm::ES256);
    let server = JwksServer::start(jwks(&[&a])).await;
    let (v, _) = validator(&server, Setup::default());
    v.refetch_now().await;
    let token = mint(&a, &session_claims("u"));
    let first = v.verify_session(&token).await.expect("valid");
    assert_eq!(v.cached_tokens(), 1);

    assert_eq!(v.refetch_now().await, FetchOutcome::Unchanged);
    assert_eq!(v.cached_tokens(), 1);
    let again = v.verify_session(&token).await.expect("valid");
    assert!(Arc::ptr_eq(&first, &again), "served from the cache");

    server.serve(jwks(&[&a, &b]));
    assert_eq!(v.refetch_now().await, FetchOutcome::Updated);
    assert_eq!(v.cached_tokens(), 0);
    let reverified = v.verify_session(&token).await.expect("still valid");
    assert!(!Arc::ptr_eq(&first, &reverified), "verified again");

    // Same kid, new material: the old token must stop validating at once.
    let a2 = ec_key("a", Algorithm::ES256);
    server.serve(jwks(&[&a2, &b]));
    assert_eq!(v.refetch_now().await, FetchOutcome::Updated);
    assert_eq!(
        v.verify_session(&token).await.err(),
        Some(SessionError::BadSignature)
    );

    v.flush_cache();
    assert_eq!(v.cached_tokens(), 0);
}

#[tokio::test]
async fn claims_cache_is_bounded() {
    let k = keys();
    let server = JwksServer::start(jwks(&[&k.es256])).await;
    let (v, _) = validator(
        &server,
        Setup {
            capacity: 8,
            ..Setup::default()
        },
    );
    v.refetch_now().await;
    for i in 0..200 {
        let token = mint(&k.es256, &session_claims(&format!("user-{i}")));
        assert!(v.verify_session(&token).await.is_ok());
        assert!(v.cached_tokens() <= v.cache.bound());
    }
    assert!(v.cache.bound() < 8 + cache::DEFAULT_SHARDS);
}

#[tokio::test]
async fn jsonwebtoken_backend_is_aws_lc() {
    // A missing or doubled crypto backend feature panics on first use; this
    // makes it a test failure instead of a production panic.
    let k = ec_key("k", Algorithm::ES256);
    let token = mint(&k, &session_claims("u"));
    assert_eq!(token.split('.').count(), 3);
}

/// A request with an unknown kid waits for the fetch, but only so long:
/// a hanging Descope costs it about one second, not a hung request.
#[tokio::test(start_paused = true)]
async fn unknown_kid_wait_is_bounded() {
    let a = ec_key("a", Algorithm::ES256);
    let b = ec_key("b", Algorithm::ES256);
    let server = JwksServer::start(String::new()).await;
    let (v, _) = validator(
        &server,
        Setup {
            seed: Some(jwks(&[&a])),
            ..Setup::default()
        },
    );
    server.state.stall.store(true, Ordering::SeqCst);
    let token_b = mint(&b, &session_claims("u"));
    let started = tokio::time::Instant::now();
    let (first, second) = tokio::join!(v.verify_session(&token_b), v.verify_session(&token_b));
    let waited = started.elapsed();
    assert_eq!(first.err(), Some(SessionError::UnknownKid));
    assert_eq!(second.err(), Some(SessionError::UnknownKid));
    assert!(
        waited >= jwks::DEFAULT_KID_WAIT && waited < jwks::DEFAULT_KID_WAIT * 2,
        "waited {waited:?}"
    );
    assert_eq!(
        v.jwks_fetch_count(),
        1,
        "the second request joined the first fetch"
    );
    // Known kids never wait on it.
    assert!(
        v.verify_session(&mint(&a, &session_claims("u")))
            .await
            .is_ok()
    );
    assert_eq!(started.elapsed(), waited);
}

//! Client tests against a scripted local Descope (real sockets).

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::fake::{Answer, FakeDescope};
use super::*;

const PID: &str = "P2test";

fn settings(base: url::Url) -> DescopeSettings {
    DescopeSettings {
        base_url: base,
        project_id: PID.into(),
        auth_management_key: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

fn client(fake: &FakeDescope) -> DescopeClient {
    DescopeClient::new(settings(fake.base_url())).expect("client builds")
}

fn ok_tokens() -> Answer {
    Answer::json(
        200,
        json!({"sessionJwt": "s.new.jwt", "refreshJwt": "r.new.jwt"}),
    )
}

#[tokio::test]
async fn refresh_sends_descope_request_shape() {
    let fake = FakeDescope::start(|_, _| ok_tokens()).await;
    let mut s = settings(fake.base_url());
    s.auth_management_key = Some("AMK".into());
    let c = DescopeClient::new(s).expect("client builds");
    let pair = c.refresh("r.old.jwt").await.expect("refresh ok");
    assert_eq!(pair.session_jwt, "s.new.jwt");
    assert_eq!(pair.refresh_jwt.as_deref(), Some("r.new.jwt"));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/auth/refresh");
    assert_eq!(
        r.authorization.as_deref(),
        Some("Bearer P2test:r.old.jwt:AMK")
    );
    assert_eq!(r.project_header.as_deref(), Some(PID));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.body, "{}");
}

#[tokio::test]
async fn call_without_refresh_token_sends_project_only_bearer() {
    let fake = FakeDescope::start(|_, _| Answer::json(200, json!({"maskedEmail": "a***"}))).await;
    let reply = client(&fake)
        .call(
            Method::POST,
            "/v1/auth/magiclink/signin/email",
            None,
            Some(&json!({"loginId": "a@example.com"})),
        )
        .await
        .expect("call ok");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["maskedEmail"], "a***");
    let r = &fake.requests()[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer P2test"));
    assert_eq!(r.body, r#"{"loginId":"a@example.com"}"#);
}

#[tokio::test]
async fn get_sends_no_body_and_empty_answer_is_empty_object() {
    let fake = FakeDescope::start(|_, _| Answer {
        status: 200,
        headers: Vec::new(),
        body: String::new(),
        drop: false,
    })
    .await;
    let reply = client(&fake)
        .call(Method::GET, "/v1/auth/me", Some("r.jwt"), None)
        .await
        .expect("call ok");
    assert_eq!(reply.body, json!({}));
    let r = &fake.requests()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.body, "");
    assert_eq!(r.content_type, None);
}

#[tokio::test]
async fn refresh_reads_tokens_from_cookies_in_cookie_mode() {
    let fake = FakeDescope::start(|_, _| {
        Answer::json(200, json!({"cookiePath": "/", "cookieDomain": "descope.example"}))
            .header("set-cookie", "DS=s.cookie.jwt; Path=/; Domain=descope.example; Max-Age=600; HttpOnly; Secure; SameSite=None")
            .header("set-cookie", "DSR=r.cookie.jwt; Path=/; HttpOnly; Secure; SameSite=Strict")
    })
    .await;
    let pair = client(&fake).refresh("r.old").await.expect("refresh ok");
    assert_eq!(pair.session_jwt, "s.cookie.jwt");
    assert_eq!(pair.refresh_jwt.as_deref(), Some("r.cookie.jwt"));
}

#[tokio::test]
async fn refresh_honours_custom_cookie_names_and_missing_refresh() {
    let fake = FakeDescope::start(|_, n| {
        if n == 1 {
            Answer::json(200, json!({"sessionCookieName": "S1", "cookieName": "R1"}))
                .header("set-cookie", "S1=s.custom; Path=/")
                .header("set-cookie", "R1=r.custom; Path=/")
        } else {
            Answer::json(200, json!({"sessionJwt": "s.only"}))
        }
    })
    .await;
    let c = client(&fake);
    let pair = c.refresh("r.old").await.expect("refresh ok");
    assert_eq!(pair.session_jwt, "s.custom");
    assert_eq!(pair.refresh_jwt.as_deref(), Some("r.custom"));
    let pair = c.refresh("r.old").await.expect("refresh ok");
    assert_eq!(pair.session_jwt, "s.only");
    assert_eq!(pair.refresh_jwt, None);
}

/// One scripted answer → the error (or success) and the number of attempts.
#[tokio::test]
async fn refresh_error_mapping_and_retry_rule() {
    type Check = fn(&Result<TokenPair, DescopeError>) -> bool;
    let cases: Vec<(&str, Answer, Check, usize)> = vec![
        (
            "401 with code is a revocation",
            Answer::json(
                401,
                json!({"errorCode": "E064001", "errorDescription": "x"}),
            ),
            |r| matches!(r, Err(DescopeError::Rejected { status, code }) if *status == StatusCode::UNAUTHORIZED && code == "E064001"),
            1,
        ),
        (
            "400 with code is a revocation",
            Answer::json(400, json!({"errorCode": "E011003"})),
            |r| matches!(r, Err(DescopeError::Rejected { .. })),
            1,
        ),
        (
            "403 with code is a revocation",
            Answer::json(403, json!({"errorCode": "E062108"})),
            |r| matches!(r, Err(DescopeError::Rejected { .. })),
            1,
        ),
        (
            "401 without code is not",
            Answer::json(401, json!({"message": "nope"})),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "401 with empty code is not",
            Answer::json(401, json!({"errorCode": ""})),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "404 with code is not a revocation",
            Answer::json(404, json!({"errorCode": "E000404"})),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "429 with integer Retry-After",
            Answer::json(429, json!({"errorCode": "E130429"})).header("retry-after", "7"),
            |r| matches!(r, Err(DescopeError::RateLimited { retry_after: Some(d) }) if *d == Duration::from_secs(7)),
            1,
        ),
        (
            "429 with an HTTP-date Retry-After",
            Answer::json(429, json!({"errorCode": "E130429"}))
                .header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
            |r| matches!(r, Err(DescopeError::RateLimited { retry_after: None })),
            1,
        ),
        (
            "500 is unavailable, not retried",
            Answer::json(500, json!({})),
            |r| matches!(r, Err(DescopeError::Unavailable)),
            1,
        ),
        (
            "502 retried once",
            Answer::json(502, json!({})),
            |r| matches!(r, Err(DescopeError::Unavailable)),
            2,
        ),
        (
            "503 retried once",
            Answer::json(503, json!({})),
            |r| matches!(r, Err(DescopeError::Unavailable)),
            2,
        ),
        (
            "504 retried once",
            Answer::json(504, json!({})),
            |r| matches!(r, Err(DescopeError::Unavailable)),
            2,
        ),
        (
            "2xx that is not JSON",
            Answer {
                status: 200,
                headers: Vec::new(),
                body: "<html>".into(),
                drop: false,
            },
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "2xx that is a JSON array",
            Answer::json(200, json!(["x"])),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "2xx without a session token",
            Answer::json(200, json!({"refreshJwt": "r"})),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "a redirect is not followed",
            Answer::json(302, json!({})).header("location", "http://127.0.0.1:1/elsewhere"),
            |r| matches!(r, Err(DescopeError::InvalidResponse)),
            1,
        ),
        (
            "a dropped connection is unavailable, not retried",
            Answer::dropped(),
            |r| matches!(r, Err(DescopeError::Unavailable)),
            1,
        ),
    ];
    for (name, answer, check, attempts) in cases {
        let fake = FakeDescope::start(move |_, _| answer.clone()).await;
        let result = client(&fake).refresh("r.old").await;
        assert!(check(&result), "{name}: got {result:?}");
        assert_eq!(fake.calls("/v1/auth/refresh"), attempts, "{name}: attempts");
    }
}

#[tokio::test]
async fn a_503_then_success_succeeds_on_the_retry() {
    let fake = FakeDescope::start(|_, n| {
        if n == 1 {
            Answer::json(503, json!({}))
        } else {
            ok_tokens()
        }
    })
    .await;
    let pair = client(&fake)
        .refresh("r.old")
        .await
        .expect("retry succeeds");
    assert_eq!(pair.session_jwt, "s.new.jwt");
    assert_eq!(fake.calls("/v1/auth/refresh"), 2);
}

#[tokio::test]
async fn a_timeout_is_unavailable_and_not_retried() {
    let fake = FakeDescope::start(|_, _| ok_tokens()).await;
    fake.close();
    let mut s = settings(fake.base_url());
    s.timeout = Duration::from_millis(150);
    let c = DescopeClient::new(s).expect("client builds");
    let result = c.refresh("r.old").await;
    assert!(
        matches!(result, Err(DescopeError::Unavailable)),
        "{result:?}"
    );
    assert_eq!(fake.calls("/v1/auth/refresh"), 1);
    fake.open();
}

#[tokio::test]
async fn a_connect_error_is_retried_once_after_the_delay() {
    // A port that was just bound and released refuses connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let base = url::Url::parse(&format!("http://{addr}")).expect("url");
    let c = DescopeClient::new(settings(base)).expect("client builds");
    let started = tokio::time::Instant::now();
    let result = c.refresh("r.old").await;
    assert!(
        matches!(result, Err(DescopeError::Unavailable)),
        "{result:?}"
    );
    assert!(
        started.elapsed() >= RETRY_DELAY,
        "the retry waits {RETRY_DELAY:?}"
    );
}

#[tokio::test]
async fn logout_and_logout_all_paths() {
    let fake = FakeDescope::start(|_, _| Answer::json(200, json!({}))).await;
    let c = client(&fake);
    c.logout("r.jwt", false).await.expect("logout ok");
    c.logout("r.jwt", true).await.expect("logoutall ok");
    assert_eq!(fake.calls("/v1/auth/logout"), 1);
    assert_eq!(fake.calls("/v1/auth/logoutall"), 1);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer P2test:r.jwt"))
    );
}

#[test]
fn base_url_rules() {
    let cases = [
        ("https://api.descope.com", true),
        ("http://127.0.0.1:8080", true),
        ("http://localhost:8080", true),
        ("http://[::1]:8080", true),
        ("http://api.descope.com", false),
        ("http://10.0.0.1", false),
        ("ftp://127.0.0.1", false),
    ];
    for (url, ok) in cases {
        let result = DescopeClient::new(settings(url::Url::parse(url).expect("url")));
        assert_eq!(result.is_ok(), ok, "{url}");
    }
}

#[test]
fn jwks_url_keeps_a_base_path_prefix() {
    let c = DescopeClient::new(settings(
        url::Url::parse("https://gw.example/descope/").expect("url"),
    ))
    .expect("client builds");
    assert_eq!(
        c.jwks_url().as_str(),
        "https://gw.example/descope/v2/keys/P2test"
    );
    let c = DescopeClient::new(settings(
        url::Url::parse("https://api.descope.com").expect("url"),
    ))
    .expect("client builds");
    assert_eq!(
        c.jwks_url().as_str(),
        "https://api.descope.com/v2/keys/P2test"
    );
}

#[test]
fn debug_output_redacts_secrets() {
    let mut s = settings(url::Url::parse("https://api.descope.com").expect("url"));
    s.auth_management_key = Some("very-secret-key".into());
    assert!(!format!("{s:?}").contains("very-secret-key"));
    let pair = TokenPair {
        session_jwt: "sess.secret".into(),
        refresh_jwt: Some("refr.secret".into()),
    };
    let shown = format!("{pair:?}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn a_bad_ca_file_is_a_setup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").expect("write");
    for path in [empty, dir.path().join("missing.pem")] {
        let mut s = settings(url::Url::parse("https://api.descope.com").expect("url"));
        s.ca_file = Some(path.clone());
        assert!(
            matches!(DescopeClient::new(s), Err(DescopeError::Setup(_))),
            "{path:?}"
        );
    }
}

/// A private CA from `ca_file` is trusted besides the webpki roots; without it
/// the same server's certificate is refused.
#[tokio::test]
async fn ca_file_is_trusted_for_https() {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).expect("write");

    let cert = rustls_pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key =
        rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).expect("key der");
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(
                            br#"{"sessionJwt":"s.tls"}"#,
                        )),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    let base = url::Url::parse(&format!("https://{addr}")).expect("url");

    let mut with_ca = settings(base.clone());
    with_ca.ca_file = Some(ca);
    let pair = DescopeClient::new(with_ca)
        .expect("client builds")
        .refresh("r")
        .await
        .expect("trusted via ca_file");
    assert_eq!(pair.session_jwt, "s.tls");

    let untrusted = DescopeClient::new(settings(base))
        .expect("client builds")
        .refresh("r")
        .await;
    assert!(
        matches!(untrusted, Err(DescopeError::Unavailable)),
        "{untrusted:?}"
    );
}

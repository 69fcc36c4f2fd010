//! Refresh tests: a real `DescopeClient` against the scripted local Descope,
//! with a verifier that accepts `S:<sub>:…` session and `R:<sub>:…` refresh
//! tokens (signature checks are the session module's business).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::DEFAULT_REFRESH_REUSE;
use crate::descope::DescopeSettings;
use crate::descope::client::fake::{Answer, FakeDescope, Recorded};

const REFRESH_PATH: &str = "/v1/auth/refresh";

struct FakeVerifier;

fn fake_claims(token: &str, prefix: &str, drn: &str) -> Result<Arc<Claims>, SessionError> {
    let mut parts = token.split(':');
    if parts.next() != Some(prefix) {
        return Err(SessionError::Malformed);
    }
    let sub = parts.next().ok_or(SessionError::Malformed)?;
    let mut m = serde_json::Map::new();
    m.insert("sub".into(), json!(sub));
    m.insert("drn".into(), json!(drn));
    // `S:<sub>:exp<epoch secs>` carries an expiry.
    if let Some(exp) = parts.next().and_then(|p| p.strip_prefix("exp")) {
        let exp: i64 = exp.parse().map_err(|_| SessionError::Malformed)?;
        m.insert("exp".into(), json!(exp));
    }
    Ok(Arc::new(Claims::from_verified(m)))
}

impl TokenVerifier for FakeVerifier {
    fn verify_session<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>> {
        Box::pin(async move { fake_claims(token, "S", "DS") })
    }

    fn verify_refresh<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>> {
        Box::pin(async move {
            if token.ends_with(":expired") {
                return Err(SessionError::Expired);
            }
            if token.ends_with(":nokeys") {
                return Err(SessionError::KeysUnavailable);
            }
            fake_claims(token, "R", "DSR")
        })
    }
}

/// The user named in the presented refresh token (`Bearer pid:R:<sub>:…`).
fn presented_sub(r: &Recorded) -> String {
    r.authorization
        .as_deref()
        .and_then(|a| a.split(':').nth(2))
        .unwrap_or("nobody")
        .to_owned()
}

fn session_for(r: &Recorded) -> Answer {
    Answer::json(
        200,
        json!({"sessionJwt": format!("S:{}:new", presented_sub(r))}),
    )
}

struct Harness {
    fake: FakeDescope,
    refresher: Arc<Refresher>,
    metrics: Arc<Metrics>,
}

async fn harness(
    reuse: Duration,
    handler: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static,
) -> Harness {
    let fake = FakeDescope::start(handler).await;
    let client = DescopeClient::new(DescopeSettings {
        base_url: fake.base_url(),
        project_id: "P2test".into(),
        auth_management_key: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    })
    .expect("client builds");
    let metrics = Arc::new(Metrics::new());
    let refresher =
        Refresher::with_verifier(client, Arc::new(FakeVerifier), reuse, metrics.clone());
    Harness {
        fake,
        refresher,
        metrics,
    }
}

impl Harness {
    fn count(&self, result: &str) -> u64 {
        self.metrics.refreshes.with_label_values(&[result]).get()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_share_one_call() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| session_for(r)).await;
    h.fake.close();
    let mut tasks = Vec::new();
    for _ in 0..128 {
        let r = h.refresher.clone();
        tasks.push(tokio::spawn(async move { r.refresh("R:U1:old").await }));
    }
    h.fake.wait_calls(REFRESH_PATH, 1).await;
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    h.fake.open();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("refresh ok"));
    }
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
    assert_eq!(results[0].session_jwt, "S:U1:new");
    assert_eq!(results[0].refresh_jwt, "R:U1:old");
    assert!(!results[0].refresh_rotated);
    assert_eq!(results[0].claims.subject(), Some("U1"));
    assert_eq!(h.count("ok"), 1);
    assert_eq!(h.count("shared"), 127);

    // A burst just after shares the stored result too.
    let again = h.refresher.refresh("R:U1:old").await.expect("reused");
    assert!(Arc::ptr_eq(&again, &results[0]));
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
}

#[tokio::test]
async fn different_tokens_do_not_share() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| session_for(r)).await;
    let a = h.refresher.refresh("R:U1:a").await.expect("ok");
    let b = h.refresher.refresh("R:U2:b").await.expect("ok");
    assert_eq!(a.claims.subject(), Some("U1"));
    assert_eq!(b.claims.subject(), Some("U2"));
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
}

#[tokio::test]
async fn zero_reuse_calls_every_time() {
    let h = harness(Duration::ZERO, |r, _| session_for(r)).await;
    h.refresher.refresh("R:U1:a").await.expect("ok");
    h.refresher.refresh("R:U1:a").await.expect("ok");
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
}

#[tokio::test]
async fn forged_or_expired_refresh_tokens_never_reach_descope() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| session_for(r)).await;
    for token in ["forged", "S:U1:session-not-refresh", "R:U1:expired", ""] {
        let r = h.refresher.refresh(token).await;
        assert!(
            matches!(r, Err(RefreshError::InvalidToken)),
            "{token:?}: {r:?}"
        );
    }
    assert_eq!(h.fake.calls(REFRESH_PATH), 0);
    assert_eq!(h.count("invalid"), 4);
}

#[tokio::test]
async fn missing_signing_keys_are_an_outage_not_a_sign_out() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| session_for(r)).await;
    let r = h.refresher.refresh("R:U1:nokeys").await;
    assert!(matches!(r, Err(RefreshError::Unavailable { .. })), "{r:?}");
    assert_eq!(h.fake.calls(REFRESH_PATH), 0);
}

#[tokio::test]
async fn rotation_returns_the_new_refresh_token_and_reuses_it_for_the_old_one() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, n| {
        let sub = presented_sub(r);
        Answer::json(200, json!({"sessionJwt": format!("S:{sub}:{n}"), "refreshJwt": format!("R:{sub}:rotated{n}")}))
    })
    .await;
    let first = h.refresher.refresh("R:U1:old").await.expect("ok");
    assert!(first.refresh_rotated);
    assert_eq!(first.refresh_jwt, "R:U1:rotated1");
    // A request still carrying the old token gets the same result, not a logout.
    let late = h.refresher.refresh("R:U1:old").await.expect("ok");
    assert!(Arc::ptr_eq(&first, &late));
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
}

#[tokio::test]
async fn a_rotation_is_remembered_even_without_reuse() {
    let h = harness(Duration::ZERO, |r, n| {
        let sub = presented_sub(r);
        Answer::json(
            200,
            json!({"sessionJwt": format!("S:{sub}:{n}"), "refreshJwt": format!("R:{sub}:rotated{n}")}),
        )
    })
    .await;
    let first = h.refresher.refresh("R:U1:old").await.expect("ok");
    let late = h.refresher.refresh("R:U1:old").await.expect("ok");
    assert!(Arc::ptr_eq(&first, &late));
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
}

#[tokio::test]
async fn a_rotation_is_not_remembered_past_the_session_expiry() {
    let h = harness(Duration::ZERO, |r, n| {
        let sub = presented_sub(r);
        // A session that is already past its expiry when stored.
        Answer::json(
            200,
            json!({"sessionJwt": format!("S:{sub}:exp1"), "refreshJwt": format!("R:{sub}:rotated{n}")}),
        )
    })
    .await;
    h.refresher.refresh("R:U1:old").await.expect("ok");
    h.refresher.refresh("R:U1:old").await.expect("ok");
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
}

#[tokio::test]
async fn a_success_is_not_reused_past_the_session_expiry() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| {
        Answer::json(
            200,
            json!({"sessionJwt": format!("S:{}:exp1", presented_sub(r))}),
        )
    })
    .await;
    h.refresher.refresh("R:U1:old").await.expect("ok");
    h.refresher.refresh("R:U1:old").await.expect("ok");
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
}

#[tokio::test]
async fn an_unchanged_refresh_token_is_not_a_rotation() {
    let h = harness(DEFAULT_REFRESH_REUSE, |_, _| {
        Answer::json(
            200,
            json!({"sessionJwt": "S:U1:new", "refreshJwt": "R:U1:same"}),
        )
    })
    .await;
    let r = h.refresher.refresh("R:U1:same").await.expect("ok");
    assert!(!r.refresh_rotated);
    assert_eq!(r.refresh_jwt, "R:U1:same");
}

#[tokio::test]
async fn rejection_is_revoked_and_the_failure_is_reused() {
    let h = harness(DEFAULT_REFRESH_REUSE, |_, _| {
        Answer::json(
            401,
            json!({"errorCode": "E064001", "errorMessage": "token expired by logged out"}),
        )
    })
    .await;
    for _ in 0..3 {
        let r = h.refresher.refresh("R:U1:old").await;
        assert!(matches!(r, Err(RefreshError::Revoked)), "{r:?}");
    }
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
    assert_eq!(h.count("revoked"), 1);
    assert_eq!(h.count("shared"), 2);
}

#[tokio::test]
async fn outage_is_unavailable_after_one_retry() {
    let h = harness(DEFAULT_REFRESH_REUSE, |_, _| Answer::json(503, json!({}))).await;
    let r = h.refresher.refresh("R:U1:old").await;
    assert!(matches!(r, Err(RefreshError::Unavailable { .. })), "{r:?}");
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
    assert_eq!(h.count("unavailable"), 1);
}

#[tokio::test]
async fn rate_limit_stops_all_refresh_calls_until_retry_after() {
    let h = harness(DEFAULT_REFRESH_REUSE, |_, _| {
        Answer::json(429, json!({"errorCode": "E130429"})).header("retry-after", "30")
    })
    .await;
    let r = h.refresher.refresh("R:U1:a").await;
    assert!(
        matches!(r, Err(RefreshError::Unavailable { retry_after: Some(d) }) if d == Duration::from_secs(30)),
        "{r:?}"
    );
    for token in ["R:U2:b", "R:U3:c", "R:U4:d"] {
        let r = h.refresher.refresh(token).await;
        assert!(
            matches!(r, Err(RefreshError::Unavailable { retry_after: Some(d) }) if d <= Duration::from_secs(30) && d > Duration::from_secs(25)),
            "{r:?}"
        );
    }
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
    assert_eq!(h.count("rate_limited"), 4);
}

#[tokio::test]
async fn a_bogus_retry_after_is_capped() {
    let h = harness(DEFAULT_REFRESH_REUSE, |_, _| {
        Answer::json(429, json!({"errorCode": "E130429"})).header("retry-after", "999999")
    })
    .await;
    let r = h.refresher.refresh("R:U1:a").await;
    assert!(
        matches!(r, Err(RefreshError::Unavailable { retry_after: Some(d) }) if d == MAX_RATE_LIMIT_BACKOFF),
        "{r:?}"
    );
}

#[tokio::test]
async fn unverifiable_answers_are_never_returned() {
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("session does not verify", json!({"sessionJwt": "garbage"})),
        (
            "session is a refresh token",
            json!({"sessionJwt": "R:U1:x"}),
        ),
        ("session for another user", json!({"sessionJwt": "S:U2:x"})),
        (
            "rotated refresh does not verify",
            json!({"sessionJwt": "S:U1:x", "refreshJwt": "garbage"}),
        ),
        (
            "rotated refresh for another user",
            json!({"sessionJwt": "S:U1:x", "refreshJwt": "R:U2:x"}),
        ),
    ];
    for (name, body) in cases {
        let h = harness(DEFAULT_REFRESH_REUSE, move |_, _| {
            Answer::json(200, body.clone())
        })
        .await;
        let r = h.refresher.refresh("R:U1:old").await;
        assert!(
            matches!(r, Err(RefreshError::Unavailable { .. })),
            "{name}: {r:?}"
        );
        assert_eq!(h.count("unavailable"), 1, "{name}");
    }
}

/// The caller that started the call goes away (client disconnect): the call
/// still completes and its result serves the next request without a new call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_does_not_lose_the_result() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, _| {
        Answer::json(200, json!({"sessionJwt": format!("S:{}:new", presented_sub(r)), "refreshJwt": "R:U1:rotated"}))
    })
    .await;
    h.fake.close();
    let r = h.refresher.clone();
    let leader = tokio::spawn(async move { r.refresh("R:U1:old").await });
    h.fake.wait_calls(REFRESH_PATH, 1).await;
    leader.abort();
    let _ = leader.await;
    h.fake.open();
    let next = h.refresher.refresh("R:U1:old").await.expect("ok");
    assert_eq!(next.refresh_jwt, "R:U1:rotated");
    assert_eq!(h.fake.calls(REFRESH_PATH), 1);
}

#[tokio::test(start_paused = true)]
async fn kept_results_expire() {
    let h = harness(Duration::from_secs(10), |r, _| session_for(r)).await;
    h.refresher.refresh("R:U1:x").await.expect("ok");
    h.refresher.refresh("R:U1:x").await.expect("ok");
    assert_eq!(h.fake.calls(REFRESH_PATH), 1, "kept for refresh_reuse");
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    h.refresher.refresh("R:U1:x").await.expect("ok");
    assert_eq!(
        h.fake.calls(REFRESH_PATH),
        2,
        "a new call once the window passed"
    );
}

#[tokio::test]
async fn forget_drops_stored_results() {
    let h = harness(DEFAULT_REFRESH_REUSE, |r, n| {
        let sub = presented_sub(r);
        Answer::json(
            200,
            json!({"sessionJwt": format!("S:{sub}:{n}"), "refreshJwt": format!("R:{sub}:rotated{n}")}),
        )
    })
    .await;
    let first = h.refresher.refresh("R:U1:old").await.expect("ok");
    // Signing out with the rotated token also drops the entry that hands it out.
    h.refresher.forget(&first.refresh_jwt);
    let again = h.refresher.refresh("R:U1:old").await.expect("ok");
    assert!(!Arc::ptr_eq(&first, &again));
    assert_eq!(h.fake.calls(REFRESH_PATH), 2);
    h.refresher.forget("R:U1:old");
    h.refresher.refresh("R:U1:old").await.expect("ok");
    assert_eq!(h.fake.calls(REFRESH_PATH), 3);
}

#[test]
fn token_key_is_sha256() {
    let k = token_key("abc");
    assert_eq!(
        k[..4],
        [0xba, 0x78, 0x16, 0xbf],
        "SHA-256(\"abc\") starts with ba7816bf"
    );
}

#[test]
fn a_stored_refresh_result_opens_only_with_the_old_refresh_token() {
    let old = "old-refresh-token";
    let id = URL_SAFE_NO_PAD.encode(token_key(old));
    let outcome = SharedOutcome::Tokens(SharedTokens {
        session: "new-session-jwt".into(),
        refresh: "new-refresh-jwt".into(),
        access: Some("new-access-token".into()),
    });
    let sealed = seal_result(old, &id, &outcome).expect("sealed");
    // What Redis holds names neither token.
    assert!(!sealed.contains("new-session-jwt") && !sealed.contains("new-refresh-jwt"));
    let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("new-"));
    match open_result(old, &id, &sealed) {
        Some(SharedOutcome::Tokens(t)) => {
            assert_eq!(t.session, "new-session-jwt");
            assert_eq!(t.refresh, "new-refresh-jwt");
        }
        other => panic!("expected the tokens, got {other:?}"),
    }
    // Another token (or the id alone, which a dump shows) opens nothing.
    assert!(open_result("another-token", &id, &sealed).is_none());
    assert!(open_result(&id, &id, &sealed).is_none());
    // Moved to another token's id, it does not open either.
    let other_id = URL_SAFE_NO_PAD.encode(token_key("another-token"));
    assert!(open_result(old, &other_id, &sealed).is_none());
}

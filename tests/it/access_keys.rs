//! Descope access keys for machine clients (`[session] accept_access_keys`):
//! exchanged once, judged by their claims, limited per client, never logged.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use portcullis_emulator::AccessKeySpec;
use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[session]
accept_access_keys = true

[[routes]]
path = "/admin/**"
roles = ["admin"]
unauthenticated = "401"

[[routes]]
path = "/ops/**"
claims = { team = "ops" }
unauthenticated = "401"

[[routes]]
path = "/**"
unauthenticated = "401"
"#;

fn key(gw: &TestGateway, roles: &[&str]) -> (String, String) {
    gw.emu
        .create_access_key(AccessKeySpec {
            name: Some("ci".into()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            claims: json!({"team": "ops"}).as_object().unwrap().clone(),
            ..Default::default()
        })
        .expect("key created")
}

async fn with_key(gw: &TestGateway, path: &str, key: &str) -> reqwest::Response {
    gw.get(path).bearer_auth(key).send().await.unwrap()
}

#[tokio::test]
async fn one_exchange_for_concurrent_requests_and_rules_on_its_claims() {
    let gw = TestGateway::spawn(ROUTES).await;
    let logs = capture_logs();
    let (id, admin_key) = key(&gw, &["admin"]);
    let answers = join_all((0..100).map(|_| with_key(&gw, "/admin/x", &admin_key))).await;
    for r in answers {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        gw.emu.access_key_exchanges(),
        1,
        "one exchange for 100 requests"
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user-id"], id.as_str());
    // Custom claims of the key feed claim rules; later requests use the kept session.
    assert_eq!(with_key(&gw, "/ops/deploy", &admin_key).await.status(), 200);
    assert_eq!(gw.emu.access_key_exchanges(), 1);
    // A key without the role is refused by the rule, not by authentication.
    let (_, plain) = key(&gw, &[]);
    assert_eq!(with_key(&gw, "/admin/x", &plain).await.status(), 403);
    assert_eq!(with_key(&gw, "/other", &plain).await.status(), 200);
    // /me answers for a key like for a session.
    let me = with_key(&gw, "/_auth/me", &plain).await;
    assert_eq!(me.status(), 200);
    // Keys never reach the log.
    let text = logs.text();
    assert!(
        !text.contains(&admin_key) && !text.contains(&plain),
        "an access key was logged"
    );
}

#[tokio::test]
async fn unknown_keys_are_401_and_exchanges_are_limited_per_client() {
    let gw = TestGateway::spawn(ROUTES).await;
    for i in 0..40 {
        let r = with_key(&gw, "/x", &format!("K2notakey{i:04}")).await;
        assert_eq!(r.status(), 401, "key {i}");
    }
    let calls = gw.emu.access_key_exchanges();
    assert!(
        calls <= 30,
        "{calls} exchanges: guessing keys must be limited per client"
    );
    assert!(calls >= 1);
    // A valid key from the same client is limited too while the window lasts: no oracle.
    let (_, good) = key(&gw, &["admin"]);
    assert_eq!(with_key(&gw, "/x", &good).await.status(), 401);
    assert_eq!(gw.emu.access_key_exchanges(), calls);
}

#[tokio::test]
async fn keys_are_not_accepted_unless_configured() {
    let emu = Arc::new(spawn_emulator().await);
    let upstream = spawn_upstream().await;
    let toml = base_toml(
        &emu,
        &upstream,
        "[[routes]]\npath = \"/**\"\nunauthenticated = \"401\"\n",
    );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    let (_, k) = key(&gw, &["admin"]);
    assert_eq!(with_key(&gw, "/x", &k).await.status(), 401);
    assert_eq!(gw.emu.access_key_exchanges(), 0);
}

#[tokio::test]
async fn a_deactivated_key_stops_working_when_its_session_expires() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_session_ttl(Duration::from_secs(1));
    let (id, k) = key(&gw, &["admin"]);
    assert_eq!(with_key(&gw, "/admin/x", &k).await.status(), 200);
    assert!(gw.emu.set_access_key_active(&id, false));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = with_key(&gw, "/admin/x", &k).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "a deactivated key kept working"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        gw.emu.access_key_exchanges() >= 2,
        "re-exchanged after the session expired"
    );
}

#[tokio::test]
async fn descope_down_during_an_exchange_is_503_not_a_sign_in() {
    let gw = TestGateway::spawn(ROUTES).await;
    let (_, k) = key(&gw, &["admin"]);
    gw.emu.fail_next("/v1/auth/accesskey/exchange", 2, 503);
    let r = with_key(&gw, "/admin/x", &k).await;
    assert_eq!(r.status(), 503);
    assert_eq!(gw.upstream.count(), 0);
}

/// The exchange limit is per client: one client guessing keys does not lock
/// out another (clients told apart by X-Forwarded-For from a trusted proxy).
#[tokio::test]
async fn one_clients_guessing_does_not_lock_out_another() {
    let emu = Arc::new(spawn_emulator().await);
    let upstream = spawn_upstream().await;
    let toml = base_toml(&emu, &upstream, ROUTES).replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    for i in 0..40 {
        let r = gw
            .get("/x")
            .bearer_auth(format!("K2guess{i:04}"))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let (_, good) = key(&gw, &["admin"]);
    let r = gw
        .get("/admin/x")
        .bearer_auth(&good)
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The consumed key never reaches the app, also when JWT bearers are off.
#[tokio::test]
async fn the_key_is_not_forwarded_to_the_app() {
    let gw = TestGateway::spawn(&ROUTES.replace(
        "accept_access_keys = true",
        "accept_access_keys = true\naccept_bearer = false",
    ))
    .await;
    let (_, k) = key(&gw, &["admin"]);
    assert_eq!(with_key(&gw, "/admin/x", &k).await.status(), 200);
    let seen = gw.upstream.last();
    assert!(
        seen.headers.get("authorization").is_none(),
        "the access key reached the app"
    );
}

/// On a dual-stack listener (`[::]`) an IPv4 proxy arrives as
/// `::ffff:127.0.0.1` and is still the trusted `127.0.0.1/32`; the clients
/// it forwards are limited by their /64, so one host hopping addresses in
/// its prefix gets one budget, and a client elsewhere is not locked out.
#[tokio::test]
async fn exchanges_are_limited_per_ipv6_prefix_behind_a_dual_stack_listener() {
    let emu = Arc::new(spawn_emulator().await);
    let upstream = spawn_upstream().await;
    let toml = base_toml(&emu, &upstream, ROUTES)
        .replacen("listen = \"127.0.0.1:0\"", "listen = \"[::]:0\"", 1)
        .replace(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    assert!(gw.handle.addr.is_ipv6(), "{}", gw.handle.addr);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", gw.handle.addr.port());
    for i in 0..40 {
        let r = gw
            .client
            .get(url("/x"))
            .bearer_auth(format!("K2hop{i:04}"))
            .header("x-forwarded-for", format!("2001:db8:1:2::{:x}", i + 1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let calls = gw.emu.access_key_exchanges();
    assert!(
        (1..=30).contains(&calls),
        "{calls} exchanges from one /64: each address got its own budget"
    );
    let (_, good) = key(&gw, &["admin"]);
    let r = gw
        .client
        .get(url("/admin/x"))
        .bearer_auth(&good)
        .header("x-forwarded-for", "2001:db8:7::1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "a client in another prefix was limited (the proxy's X-Forwarded-For was not believed)"
    );
}

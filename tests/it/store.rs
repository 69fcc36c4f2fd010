//! Several gateway replicas sharing one emulator and one real Redis
//! (`[store]`): cluster-wide refresh under rotation and family revocation,
//! logout and logout-all across replicas, shared login rate limits, Redis
//! killed and restarted, a slow Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use portcullis_emulator::{Emulator, EmulatorOptions, MintSpec};
use serde_json::{Value, json};

use crate::support::*;

const REFRESH: &str = "/v1/auth/refresh";
const PUBLIC: &str = "http://gw.test";
const SECRET: &str = "store-test-secret-store-test-secret-0123";

const ROUTES: &str = r#"
[[routes]]
path = "/api/**"
unauthenticated = "401"

[[routes]]
path = "/**"
access = "authenticated"
"#;

const SEED: &str = r#"
[[users]]
login_id = "alice@example.com"
user_id = "U-alice"
name = "Alice"
"#;

async fn redis_or_skip() -> Option<Redis> {
    let r = Redis::start().await;
    if r.is_none() {
        eprintln!("redis-server is not installed (scripts/test installs it); skipping");
    }
    r
}

async fn seeded_emulator() -> Arc<Emulator> {
    init();
    Arc::new(
        Emulator::spawn(
            "127.0.0.1:0".parse().unwrap(),
            EmulatorOptions {
                project_id: PROJECT_ID.into(),
                management_key: Some("K-test-management".into()),
                seed: Some(SEED.into()),
                ..EmulatorOptions::default()
            },
        )
        .await
        .expect("emulator starts"),
    )
}

/// `n` gateways on port 0 with `[store]` at `redis_url` and `extra` tables.
async fn replicas(emu: &Arc<Emulator>, n: usize, store: &str, extra: &str) -> Vec<TestGateway> {
    let mut out = Vec::new();
    for _ in 0..n {
        let upstream = spawn_upstream().await;
        let toml = base_toml(emu, &upstream, &format!("{store}\n{extra}\n{ROUTES}"));
        out.push(TestGateway::spawn_with(emu.clone(), upstream, &toml).await);
    }
    out
}

fn unix_now() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

fn store_table(url: &str, timeout: &str) -> String {
    format!("[store]\nredis_url = \"{url}\"\ntimeout = \"{timeout}\"\n")
}

fn mint(emu: &Emulator, sub: &str, refresh: bool, ttl: i64, extra: Value) -> String {
    emu.mint(&MintSpec {
        sub: sub.into(),
        refresh,
        ttl_secs: ttl,
        claims: claims(extra),
    })
}

/// The value set for `name` (not a deletion).
fn cookie_set(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|s| cookie::Cookie::parse(s.to_owned()).ok())
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

async fn get(gw: &TestGateway, path: &str, cookies: &str) -> reqwest::Response {
    gw.get(path)
        .header("cookie", cookies)
        .send()
        .await
        .expect("gateway answers")
}

/// Polls `gw` with `cookies` until the answer is `want`, within `within`.
async fn status_within(
    gw: &TestGateway,
    cookies: &str,
    want: u16,
    within: Duration,
) -> Result<(), u16> {
    let deadline = Instant::now() + within;
    loop {
        let s = get(gw, "/api/poll", cookies).await.status().as_u16();
        if s == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(s);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn logout(gw: &TestGateway, path: &str, cookies: &str) -> u16 {
    gw.client
        .post(gw.url(path))
        .header("cookie", cookies)
        .header("origin", PUBLIC)
        .send()
        .await
        .expect("gateway answers")
        .status()
        .as_u16()
}

async fn wait_up(gws: &[TestGateway], up: bool, within: Duration) {
    let deadline = Instant::now() + within;
    while gws.iter().any(|g| g.handle.state.store.is_up() != up) {
        assert!(
            Instant::now() < deadline,
            "the store was not {} on every replica in time",
            if up { "up" } else { "down" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn concurrent_refreshes_over_three_replicas_make_one_call_under_rotation() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    emu.set_refresh_rotation(true);
    emu.set_refresh_family_revocation(true);
    let gws = replicas(&emu, 3, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let old_refresh = mint(&emu, "U-rot", true, 3600, json!({}));
    let cookies = format!(
        "DS={}; DSR={old_refresh}",
        mint(&emu, "U-rot", false, -120, json!({}))
    );
    let resps = join_all((0..48).map(|i| {
        let req = gws[i % 3]
            .get(&format!("/api/r/{i}"))
            .header("cookie", cookies.clone());
        async move { req.send().await.expect("gateway answers") }
    }))
    .await;
    let statuses: Vec<u16> = resps.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(emu.calls(REFRESH), 1, "one refresh call for the cluster");
    assert_eq!(
        emu.family_revocations(),
        0,
        "the rotated token was never reused"
    );
    let new_refresh = cookie_set(&resps[0], "DSR").expect("rotated refresh cookie");
    assert_ne!(new_refresh, old_refresh);
    assert!(
        resps
            .iter()
            .all(|r| cookie_set(r, "DSR").as_deref() == Some(new_refresh.as_str())),
        "every replica hands out the same new refresh token"
    );
    // Nobody is signed out: the new token works on every replica.
    for (i, gw) in gws.iter().enumerate() {
        let r = get(
            gw,
            &format!("/api/after/{i}"),
            &format!("DSR={new_refresh}"),
        )
        .await;
        assert_eq!(r.status(), 200, "replica {i}");
    }
    // A straggler with the old token on a fresh replica gets the shared answer.
    let late = replicas(&emu, 1, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&late, true, Duration::from_secs(5)).await;
    let r = get(&late[0], "/api/late", &format!("DSR={old_refresh}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(emu.family_revocations(), 0);
}

#[tokio::test]
async fn logout_on_one_replica_is_refused_on_the_others_within_a_second() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 3, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let session = mint(&emu, "U-out", false, 600, json!({}));
    let refresh = mint(&emu, "U-out", true, 3600, json!({}));
    let cookies = format!("DS={session}; DSR={refresh}");
    for gw in &gws {
        assert_eq!(get(gw, "/api/x", &cookies).await.status(), 200);
    }
    assert_eq!(logout(&gws[0], "/_auth/logout", &cookies).await, 204);
    for gw in &gws[1..] {
        status_within(gw, &format!("DS={session}"), 401, Duration::from_secs(1))
            .await
            .expect("the signed-out token is refused within a second");
        assert_eq!(get(gw, "/api/x", &cookies).await.status(), 401);
    }
    // Another session of the same user is untouched.
    let other = mint(&emu, "U-out", false, 600, json!({}));
    assert_eq!(
        get(&gws[2], "/api/x", &format!("DS={other}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_refresh_result_kept_from_before_a_logout_never_signs_the_user_back_in() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    // Shared results live long enough to be replayed after the logout.
    let gws = replicas(
        &emu,
        2,
        &store_table(&redis.url(), "250ms"),
        "[session]\nrefresh_reuse = \"30s\"\n",
    )
    .await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    for rotation in [false, true] {
        emu.set_refresh_rotation(rotation);
        let sub = if rotation { "U-kept-rot" } else { "U-kept" };
        let refresh = mint(&emu, sub, true, 3600, json!({}));
        let expired = mint(&emu, sub, false, -120, json!({}));
        // A refresh on replica 0: its result (the new session, and the
        // rotated refresh token) is kept in the store for the others.
        let r = get(&gws[0], "/api/a", &format!("DS={expired}; DSR={refresh}")).await;
        assert_eq!(r.status(), 200, "rotation {rotation}");
        let session = cookie_set(&r, "DS").expect("a new session cookie");
        let current = cookie_set(&r, "DSR").unwrap_or_else(|| refresh.clone());
        let calls = emu.calls(REFRESH);
        // Signed out with the refresh cookie only (the session cookie lost).
        assert_eq!(
            logout(&gws[0], "/_auth/logout", &format!("DSR={current}")).await,
            204
        );
        // Neither the old refresh token nor the kept one brings it back, on
        // either replica.
        for (i, gw) in gws.iter().enumerate() {
            for cookies in [
                format!("DSR={refresh}"),
                format!("DSR={current}"),
                format!("DS={expired}; DSR={refresh}"),
            ] {
                let r = get(gw, "/api/b", &cookies).await;
                assert_eq!(
                    r.status(),
                    401,
                    "replica {i}, rotation {rotation}: {cookies:.12}… after logout"
                );
                assert!(cookie_set(&r, "DS").is_none(), "no session handed out");
            }
        }
        if !rotation {
            assert_eq!(
                emu.calls(REFRESH),
                calls,
                "a signed-out refresh token is refused before Descope is called"
            );
        }
        // The session the refresh handed out was not presented at logout:
        // it stays valid until it expires, like any session not signed out.
        assert_eq!(
            get(&gws[1], "/api/c", &format!("DS={session}"))
                .await
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn logout_all_refuses_every_earlier_session_on_every_replica() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 3, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let earlier = unix_now() - 30;
    let laptop = mint(&emu, "U-all", false, 600, json!({ "iat": earlier }));
    let phone = mint(&emu, "U-all", false, 600, json!({ "iat": earlier }));
    let refresh = mint(&emu, "U-all", true, 3600, json!({}));
    let someone_else = mint(&emu, "U-other", false, 600, json!({ "iat": earlier }));
    assert_eq!(
        get(&gws[2], "/api/x", &format!("DS={phone}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        logout(
            &gws[0],
            "/_auth/logout-all",
            &format!("DS={laptop}; DSR={refresh}")
        )
        .await,
        204
    );
    for gw in &gws[1..] {
        status_within(gw, &format!("DS={phone}"), 401, Duration::from_secs(1))
            .await
            .expect("every earlier session of the user is refused within a second");
    }
    assert_eq!(
        get(&gws[1], "/api/x", &format!("DS={someone_else}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn login_starts_for_one_email_are_limited_across_replicas() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    let login = format!(
        "[session]\nsecret = \"{SECRET}\"\n\n[login]\nmethods = [\"magiclink\"]\nstart_rate_limit = \"5/min\"\n"
    );
    let gws = replicas(&emu, 3, &store_table(&redis.url(), "250ms"), &login).await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let mut statuses = Vec::new();
    for i in 0..15 {
        let r = gws[i % 3]
            .client
            .post(gws[i % 3].url("/_auth/magiclink"))
            .header("origin", PUBLIC)
            .form(&[("email", "alice@example.com")])
            .send()
            .await
            .expect("gateway answers");
        statuses.push(r.status().as_u16());
    }
    let sent = emu
        .outbox()
        .into_iter()
        .filter(|e| e.kind == "magiclink")
        .count();
    assert!(sent <= 5, "{sent} messages sent: {statuses:?}");
    assert_eq!(sent, 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
}

#[tokio::test]
async fn redis_down_keeps_serving_and_sharing_resumes_when_it_returns() {
    let Some(mut redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 3, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let metrics = |gw: &TestGateway| gw.handle.state.metrics.render();
    assert!(metrics(&gws[0]).contains("portcullis_store_up 1"));

    redis.kill().await;
    let session = mint(&emu, "U-down", false, 600, json!({}));
    let refresh = mint(&emu, "U-down", true, 3600, json!({}));
    let expired = format!(
        "DS={}; DSR={refresh}",
        mint(&emu, "U-down", false, -120, json!({}))
    );
    // Mid-outage: no 5xx, valid sessions served, refresh works locally.
    let resps = join_all((0..30).map(|i| {
        let gw = &gws[i % 3];
        let cookies = if i % 2 == 0 {
            format!("DS={session}")
        } else {
            expired.clone()
        };
        async move { get(gw, &format!("/api/d/{i}"), &cookies).await }
    }))
    .await;
    for r in &resps {
        assert_eq!(r.status(), 200);
    }
    wait_up(&gws, false, Duration::from_secs(5)).await;
    for gw in &gws {
        let m = metrics(gw);
        assert!(m.contains("portcullis_store_up 0"), "{m}");
        let ready = gw.client.get(gw.admin_url("/readyz")).send().await.unwrap();
        assert_eq!(
            ready.status(),
            200,
            "readiness does not depend on the store"
        );
    }
    // A logout during the outage is remembered by its replica at least.
    let gone = mint(&emu, "U-gone", false, 600, json!({}));
    assert_eq!(
        logout(&gws[0], "/_auth/logout", &format!("DS={gone}")).await,
        204
    );
    assert_eq!(
        get(&gws[0], "/api/x", &format!("DS={gone}")).await.status(),
        401
    );
    // So is a logout-all (Descope answers; only Redis is down).
    let all_old = mint(&emu, "U-all", false, 600, json!({}));
    let all_refresh = mint(&emu, "U-all", true, 3600, json!({}));
    assert_eq!(
        logout(&gws[0], "/_auth/logout-all", &format!("DSR={all_refresh}")).await,
        204
    );

    // Back on the same port: shared again within a few seconds.
    redis.restart().await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    // The outage's logouts reach the other replicas once Redis answers.
    for gw in &gws[1..] {
        status_within(gw, &format!("DS={gone}"), 401, Duration::from_secs(3))
            .await
            .expect("a logout made during the outage is shared after it");
        status_within(gw, &format!("DS={all_old}"), 401, Duration::from_secs(3))
            .await
            .expect("a logout-all made during the outage is shared after it");
    }
    let later = mint(&emu, "U-back", false, 600, json!({}));
    assert_eq!(
        logout(&gws[0], "/_auth/logout", &format!("DS={later}")).await,
        204
    );
    status_within(&gws[1], &format!("DS={later}"), 401, Duration::from_secs(1))
        .await
        .expect("sharing resumed");
    assert_eq!(
        get(&gws[2], "/api/x", &format!("DS={session}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_slow_redis_costs_a_request_at_most_the_timeout() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let proxy = SlowProxy::spawn(redis.addr()).await;
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 1, &store_table(&proxy.url(), "100ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let gw = &gws[0];
    let session = mint(&emu, "U-slow", false, 600, json!({}));
    assert_eq!(
        get(gw, "/api/x", &format!("DS={session}")).await.status(),
        200
    );

    proxy.set_delay(Duration::from_secs(2));
    for i in 0..10 {
        let started = Instant::now();
        let r = get(gw, &format!("/api/s/{i}"), &format!("DS={session}")).await;
        let took = started.elapsed();
        assert_eq!(r.status(), 200);
        assert!(
            took < Duration::from_millis(800),
            "request {i} took {took:?} with a 100ms store timeout"
        );
    }
    assert!(!gw.handle.state.store.is_up());
    assert!(
        gw.handle
            .state
            .metrics
            .render()
            .contains("portcullis_store_errors_total")
    );
    // Fast again: shared again.
    proxy.set_delay(Duration::ZERO);
    wait_up(&gws, true, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_a_store_a_signed_out_session_is_refused_by_its_replica() {
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 1, "", "").await;
    let gw = &gws[0];
    assert!(!gw.handle.state.store.is_shared());
    let session = mint(&emu, "U-local", false, 600, json!({}));
    let cookies = format!("DS={session}");
    assert_eq!(get(gw, "/api/x", &cookies).await.status(), 200);
    assert_eq!(logout(gw, "/_auth/logout", &cookies).await, 204);
    assert_eq!(get(gw, "/api/x", &cookies).await.status(), 401);
    // /me honours it too.
    let me = get(gw, "/_auth/me", &cookies).await;
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn a_slow_refresh_call_keeps_its_lease_and_the_other_replica_waits() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    emu.set_refresh_rotation(true);
    emu.set_refresh_family_revocation(true);
    // Longer than the lease (2 s): only renewal keeps the second replica out.
    emu.set_fault(
        REFRESH,
        portcullis_emulator::Fault::latency(Duration::from_millis(3500)),
    );
    let gws = replicas(&emu, 2, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let refresh = mint(&emu, "U-slow-idp", true, 3600, json!({}));
    let cookies = format!(
        "DS={}; DSR={refresh}",
        mint(&emu, "U-slow-idp", false, -120, json!({}))
    );
    let first = get(&gws[0], "/api/a", &cookies);
    let second = async {
        // Let the first replica take the lease first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        get(&gws[1], "/api/b", &cookies).await
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    assert_eq!(emu.calls(REFRESH), 1);
    assert_eq!(emu.family_revocations(), 0);
    assert_eq!(cookie_set(&a, "DSR"), cookie_set(&b, "DSR"));
}

#[tokio::test]
async fn a_vanished_lease_holder_is_taken_over() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let emu = seeded_emulator().await;
    let gws = replicas(&emu, 1, &store_table(&redis.url(), "250ms"), "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let refresh = mint(&emu, "U-ghost", true, 3600, json!({}));
    // A replica that took the lease and died: nobody renews it, no result.
    let ghost = portcullis::store::Store::connect(
        &portcullis::config::StoreConfig {
            redis_url: portcullis::config::Secret::new(redis.url()),
            key_prefix: portcullis::config::DEFAULT_STORE_KEY_PREFIX.into(),
            timeout: Duration::from_millis(250),
            ca_file: None,
            ca_digest: None,
        },
        Arc::new(portcullis::metrics::Metrics::new()),
    )
    .await
    .expect("store");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, refresh.as_bytes());
    let id = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    };
    assert_eq!(
        ghost
            .try_lease(&id, "ghost", Duration::from_millis(1200))
            .await,
        Some(true)
    );
    let started = Instant::now();
    let r = get(&gws[0], "/api/x", &format!("DSR={refresh}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(emu.calls(REFRESH), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "the replica waited for the lease: {:?}",
        started.elapsed()
    );
}

#[test]
fn store_config_errors_name_the_key() {
    use std::collections::HashMap;
    let check = |table: &str, env: &[(&str, &str)]| {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://gw.test\"\n[descope]\nproject_id = \"{PROJECT_ID}\"\n[upstreams.default]\nurl = \"http://127.0.0.1:3000\"\n{table}\n[[routes]]\npath = \"/**\"\naccess = \"public\"\n"
        );
        portcullis::config::Config::from_toml(
            &toml,
            std::path::Path::new("."),
            &env,
            portcullis::config::LoadOptions::default(),
        )
    };
    let err = |table: &str, env: &[(&str, &str)]| match check(table, env) {
        Ok(_) => panic!("accepted: {table}"),
        Err(e) => e.to_string(),
    };
    let e = err("[store]\n", &[]);
    assert!(e.contains("store.redis_url"), "{e}");
    let e = err("[store]\nredis_url = \"env:NOPE\"\n", &[]);
    assert!(e.contains("store.redis_url") && e.contains("NOPE"), "{e}");
    let e = err(
        "[store]\nredis_url = \"env:R\"\n",
        &[("R", "http://user:hunter2@redis:6379")],
    );
    assert!(e.contains("store.redis_url"), "{e}");
    assert!(
        !e.contains("hunter2"),
        "the secret URL is never echoed: {e}"
    );
    let e = err(
        "[store]\nredis_url = \"env:R\"\ntimeout = \"0s\"\n",
        &[("R", "redis://r:6379")],
    );
    assert!(e.contains("store.timeout"), "{e}");
    let e = err(
        "[store]\nredis_url = \"env:R\"\nca_file = \"/nonexistent.pem\"\n",
        &[("R", "rediss://r:6379")],
    );
    assert!(e.contains("store.ca_file"), "{e}");
    let ok = check(
        "[store]\nredis_url = \"env:R\"\n",
        &[("R", "redis://:pw@redis:6379/0")],
    )
    .expect("valid");
    let store = ok.store.expect("[store]");
    assert_eq!(store.key_prefix, "portcullis:");
    assert_eq!(store.timeout, Duration::from_millis(250));
    assert!(check("", &[]).expect("valid").store.is_none());
}

#[tokio::test]
async fn rediss_with_a_ca_file_shares_state_and_an_untrusted_server_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.path().join("redis.crt");
    let key = dir.path().join("redis.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let Some(redis) = Redis::start_tls(cert.to_str().unwrap(), key.to_str().unwrap()).await else {
        eprintln!("redis-server is not installed; skipping");
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let emu = seeded_emulator().await;
    let table = format!(
        "{}ca_file = \"{}\"\n",
        store_table(&url, "500ms"),
        cert.display()
    );
    let gws = replicas(&emu, 2, &table, "").await;
    wait_up(&gws, true, Duration::from_secs(5)).await;
    let session = mint(&emu, "U-tls", false, 600, json!({}));
    assert_eq!(
        logout(&gws[0], "/_auth/logout", &format!("DS={session}")).await,
        204
    );
    status_within(
        &gws[1],
        &format!("DS={session}"),
        401,
        Duration::from_secs(1),
    )
    .await
    .expect("shared over TLS");

    // Without the CA the server is not trusted: never up, sessions still served.
    let untrusted = replicas(&emu, 1, &store_table(&url, "500ms"), "").await;
    let other = mint(&emu, "U-tls2", false, 600, json!({}));
    assert_eq!(
        get(&untrusted[0], "/api/x", &format!("DS={other}"))
            .await
            .status(),
        200
    );
    assert!(!untrusted[0].handle.state.store.is_up());
}

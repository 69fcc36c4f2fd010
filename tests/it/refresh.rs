//! Transparent refresh, session cookies and logout, end to end: emulator +
//! recording upstream + gateway on loopback, real HTTP.

use std::sync::Arc;

use futures_util::future::join_all;
use portcullis_emulator::{Fault, MintSpec, UserSpec};
use serde_json::{Map, Value, json};

use crate::support::*;

const REFRESH: &str = "/v1/auth/refresh";
const LOGOUT: &str = "/v1/auth/logout";
const LOGOUT_ALL: &str = "/v1/auth/logoutall";

const ROUTES: &str = r#"
[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/api/**"
unauthenticated = "401"

[[routes]]
path = "/**"
access = "authenticated"
"#;

/// Mints a token for `sub`: session or refresh, `ttl` seconds (negative: expired).
fn mint(gw: &TestGateway, sub: &str, refresh: bool, ttl: i64, extra: Value) -> String {
    gw.emu.mint(&MintSpec {
        sub: sub.into(),
        refresh,
        ttl_secs: ttl,
        claims: claims(extra),
    })
}

fn expired_session(gw: &TestGateway, sub: &str) -> String {
    mint(gw, sub, false, -120, json!({}))
}

fn refresh_for(gw: &TestGateway, sub: &str) -> String {
    mint(gw, sub, true, 3600, json!({}))
}

/// `(name, value, max_age)` of every `Set-Cookie`.
fn set_cookies(resp: &reqwest::Response) -> Vec<(String, String, Option<i64>)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|s| cookie::Cookie::parse(s.to_owned()).ok())
        .map(|c| {
            (
                c.name().to_owned(),
                c.value().to_owned(),
                c.max_age().map(|d| d.whole_seconds()),
            )
        })
        .collect()
}

fn raw_set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// The value set for `name` (not a deletion).
fn cookie_set(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|(n, v, age)| n == name && !v.is_empty() && *age != Some(0))
        .map(|(_, v, _)| v)
}

fn cookie_cleared(resp: &reqwest::Response, name: &str) -> bool {
    set_cookies(resp)
        .iter()
        .any(|(n, v, age)| n == name && v.is_empty() && *age == Some(0))
}

fn user_header(r: &Recorded) -> Option<String> {
    r.headers
        .get("x-auth-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn get_with_cookies(gw: &TestGateway, path: &str, cookies: &str) -> reqwest::Response {
    gw.get(path)
        .header("cookie", cookies)
        .send()
        .await
        .expect("gateway answers")
}

async fn browser_get(gw: &TestGateway, path: &str, cookies: &str) -> reqwest::Response {
    gw.get(path)
        .header("cookie", cookies)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test]
async fn expired_session_with_valid_refresh_is_refreshed() {
    let gw = TestGateway::spawn(ROUTES).await;
    let cookies = format!(
        "DS={}; DSR={}; app=1",
        expired_session(&gw, "U-exp"),
        refresh_for(&gw, "U-exp")
    );
    let resp = get_with_cookies(&gw, "/api/data", &cookies).await;
    assert_eq!(resp.status(), 200);
    let new_ds = cookie_set(&resp, "DS").expect("a new session cookie");
    assert!(
        cookie_set(&resp, "DSR").is_none(),
        "no rotation: the refresh cookie is kept"
    );
    let raw = raw_set_cookies(&resp);
    assert!(
        raw.iter()
            .all(|c| c.contains("HttpOnly") && c.contains("Path=/")),
        "{raw:?}"
    );
    assert!(raw.iter().all(|c| !c.contains("Domain")), "{raw:?}");
    assert_eq!(gw.emu.calls(REFRESH), 1);

    let seen = gw.upstream.last();
    assert_eq!(user_header(&seen).as_deref(), Some("U-exp"));
    let forwarded_cookie = seen
        .headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(!forwarded_cookie.contains("DS"), "{forwarded_cookie}");
    assert!(forwarded_cookie.contains("app=1"), "{forwarded_cookie}");

    // The new session works on its own, without another refresh.
    let resp = get_with_cookies(&gw, "/api/data", &format!("DS={new_ds}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.emu.calls(REFRESH), 1);
}

#[tokio::test]
async fn only_a_refresh_cookie_is_enough() {
    let gw = TestGateway::spawn(ROUTES).await;
    let resp = get_with_cookies(
        &gw,
        "/api/x",
        &format!("DSR={}", refresh_for(&gw, "U-only")),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(cookie_set(&resp, "DS").is_some());
    assert_eq!(user_header(&gw.upstream.last()).as_deref(), Some("U-only"));
}

#[tokio::test]
async fn concurrent_requests_with_one_expired_session_share_one_refresh() {
    let gw = TestGateway::spawn(ROUTES).await;
    let cookies = format!(
        "DS={}; DSR={}",
        expired_session(&gw, "U-burst"),
        refresh_for(&gw, "U-burst")
    );
    let answers = join_all((0..128).map(|i| {
        let req = gw
            .get(&format!("/api/item/{i}"))
            .header("cookie", cookies.clone());
        async move { req.send().await.expect("gateway answers").status() }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    assert_eq!(gw.emu.calls(REFRESH), 1);
    let metrics = gw
        .client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("portcullis_refresh_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_refresh_total{result=\"shared\"} 127"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rotation_under_concurrency_fails_no_request() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_refresh_rotation(true);
    let old_refresh = refresh_for(&gw, "U-rot");
    let cookies = format!("DS={}; DSR={old_refresh}", expired_session(&gw, "U-rot"));
    let resps = join_all((0..64).map(|i| {
        let req = gw
            .get(&format!("/api/r/{i}"))
            .header("cookie", cookies.clone());
        async move { req.send().await.expect("gateway answers") }
    }))
    .await;
    assert!(resps.iter().all(|r| r.status() == 200));
    assert_eq!(gw.emu.calls(REFRESH), 1);
    let new_refresh = cookie_set(&resps[0], "DSR").expect("rotated refresh cookie");
    assert_ne!(new_refresh, old_refresh);
    assert!(
        resps
            .iter()
            .all(|r| cookie_set(r, "DSR").as_deref() == Some(new_refresh.as_str())),
        "every response carries the same new refresh cookie"
    );

    // A straggler still carrying the old (now revoked) token gets the same answer.
    let late = get_with_cookies(&gw, "/api/late", &format!("DSR={old_refresh}")).await;
    assert_eq!(late.status(), 200);
    assert_eq!(
        cookie_set(&late, "DSR").as_deref(),
        Some(new_refresh.as_str())
    );
    assert_eq!(gw.emu.calls(REFRESH), 1);

    // The rotated token refreshes on its own.
    let next = get_with_cookies(&gw, "/api/next", &format!("DSR={new_refresh}")).await;
    assert_eq!(next.status(), 200);
    assert_eq!(gw.emu.calls(REFRESH), 2);
}

#[tokio::test]
async fn cookie_mode_projects_refresh_too() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_cookie_mode(true);
    gw.emu.set_refresh_rotation(true);
    let old = refresh_for(&gw, "U-cookie");
    let resp = get_with_cookies(&gw, "/api/c", &format!("DSR={old}")).await;
    assert_eq!(resp.status(), 200);
    assert!(cookie_set(&resp, "DS").is_some());
    let new = cookie_set(&resp, "DSR").expect("rotated refresh from Set-Cookie");
    assert_ne!(new, old);
    // Descope's own cookie attributes (SameSite=Strict, its domain) are not copied.
    let raw = raw_set_cookies(&resp);
    assert!(
        raw.iter()
            .all(|c| c.contains("SameSite=Lax") && !c.contains("Domain")),
        "{raw:?}"
    );
}

#[tokio::test]
async fn a_forged_refresh_token_never_reaches_descope() {
    let gw = TestGateway::spawn(ROUTES).await;
    // Same project id, different signing key.
    let other = spawn_emulator().await;
    let forged = other.mint(&MintSpec {
        sub: "U-victim".into(),
        refresh: true,
        ttl_secs: 3600,
        claims: Map::new(),
    });
    let expired_refresh = mint(&gw, "U-old", true, -120, json!({}));
    let not_a_refresh = mint(&gw, "U-s", false, 600, json!({}));
    for token in [forged, expired_refresh, not_a_refresh, "garbage".to_owned()] {
        let resp = get_with_cookies(&gw, "/api/x", &format!("DSR={token}")).await;
        assert_eq!(resp.status(), 401);
        assert!(cookie_cleared(&resp, "DSR"), "{:?}", raw_set_cookies(&resp));
    }
    assert_eq!(gw.emu.calls(REFRESH), 0);
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn a_revoked_refresh_token_signs_the_user_out() {
    let gw = TestGateway::spawn(ROUTES).await;
    let cookies = format!(
        "DS={}; DSR={}",
        expired_session(&gw, "U-rev"),
        refresh_for(&gw, "U-rev")
    );
    gw.emu.revoke_user("U-rev");

    let api = get_with_cookies(&gw, "/api/x", &cookies).await;
    assert_eq!(api.status(), 401);
    assert!(cookie_cleared(&api, "DS") && cookie_cleared(&api, "DSR"));

    let page = browser_get(&gw, "/home", &cookies).await;
    assert_eq!(page.status(), 302);
    let location = page.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with("/_auth/login?return_to="),
        "{location}"
    );
    assert!(cookie_cleared(&page, "DS") && cookie_cleared(&page, "DSR"));
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn descope_down_keeps_valid_sessions_and_answers_503_for_refreshes() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_fault(REFRESH, Fault::status(503));

    let valid = format!("DS={}", gw.session("U-ok", json!({})));
    assert_eq!(get_with_cookies(&gw, "/api/x", &valid).await.status(), 200);

    let cookies = format!(
        "DS={}; DSR={}",
        expired_session(&gw, "U-down"),
        refresh_for(&gw, "U-down")
    );
    let api = get_with_cookies(&gw, "/api/x", &cookies).await;
    assert_eq!(api.status(), 503);
    assert!(api.headers().contains_key("retry-after"));
    assert!(set_cookies(&api).is_empty(), "cookies are kept");

    let page = browser_get(&gw, "/home", &cookies).await;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    let ct = page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(set_cookies(&page).is_empty(), "cookies are kept");
    assert_eq!(
        gw.upstream.count(),
        1,
        "only the valid session reached the app"
    );
}

#[tokio::test]
async fn a_rate_limited_refresh_is_not_hammered() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_fault(REFRESH, Fault::rate_limit(30));
    let first = get_with_cookies(&gw, "/api/x", &format!("DSR={}", refresh_for(&gw, "U-0"))).await;
    assert_eq!(first.status(), 503);
    let retry: u64 = first.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("integer seconds");
    assert!((25..=30).contains(&retry), "{retry}");
    for i in 1..20 {
        let r = get_with_cookies(
            &gw,
            "/api/x",
            &format!("DSR={}", refresh_for(&gw, &format!("U-{i}"))),
        )
        .await;
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
    }
    assert_eq!(
        gw.emu.calls(REFRESH),
        1,
        "no refresh call while Retry-After runs"
    );
}

#[tokio::test]
async fn a_token_with_200_tenants_is_chunked_and_read_back() {
    let gw = TestGateway::spawn(ROUTES).await;
    let tenants: Map<String, Value> = (0..200)
        .map(|i| {
            (
                format!("T2tenant{i:03}abcdefghijklmnop"),
                json!({"roles": ["member"]}),
            )
        })
        .collect();
    // Claims of a subject the emulator does not know travel in the refresh token.
    let refresh = mint(&gw, "U-big", true, 3600, json!({"tenants": tenants}));
    let resp = get_with_cookies(&gw, "/api/x", &format!("DSR={refresh}")).await;
    assert_eq!(resp.status(), 200);
    let set = set_cookies(&resp);
    let chunks: Vec<&(String, String, Option<i64>)> = set
        .iter()
        .filter(|(n, _, _)| n.starts_with("DS."))
        .collect();
    assert!(
        chunks.len() >= 2,
        "{:?}",
        set.iter().map(|c| &c.0).collect::<Vec<_>>()
    );
    assert!(raw_set_cookies(&resp).iter().all(|c| c.len() < 4096));
    assert!(!set.iter().any(|(n, _, _)| n == "DS"), "no unchunked twin");

    // The browser sends the chunks back: the session verifies without a refresh.
    let jar: String = chunks
        .iter()
        .map(|(n, v, _)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let again = get_with_cookies(&gw, "/api/y", &format!("{jar}; app=2")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(gw.emu.calls(REFRESH), 1);
    let seen = gw.upstream.last();
    assert_eq!(user_header(&seen).as_deref(), Some("U-big"));
    let forwarded = seen
        .headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        !forwarded.contains("DS"),
        "chunks are not forwarded: {forwarded}"
    );
}

#[tokio::test]
async fn role_changes_are_visible_after_refresh() {
    let gw = TestGateway::spawn(ROUTES).await;
    let user_id = gw.emu.add_user(UserSpec {
        login_id: "ann@example.com".into(),
        roles: vec!["viewer".into()],
        ..UserSpec::default()
    });
    let refresh = refresh_for(&gw, &user_id);
    let session = gw.session(&user_id, json!({"roles": ["viewer"]}));
    let denied =
        get_with_cookies(&gw, "/admin/panel", &format!("DS={session}; DSR={refresh}")).await;
    assert_eq!(denied.status(), 403);

    assert!(
        gw.emu
            .set_user_roles("ann@example.com", vec!["admin".into()])
    );
    // The session cookie expired (the browser dropped it): refresh picks up the new role.
    let allowed = get_with_cookies(&gw, "/admin/panel", &format!("DSR={refresh}")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(gw.emu.calls(REFRESH), 1);
}

// === logout ===

#[tokio::test]
async fn logout_revokes_at_descope_and_clears_every_cookie() {
    let gw = TestGateway::spawn(ROUTES).await;
    let refresh = refresh_for(&gw, "U-out");
    let cookies = format!("DS.0=abc; DS.1=def; DSR={refresh}; app=1");
    let resp = gw
        .client
        .post(gw.url("/_auth/logout"))
        .header("cookie", &cookies)
        .header("origin", "http://gw.test")
        .header("accept", "text/html")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    for name in ["DS.0", "DS.1", "DSR"] {
        assert!(
            cookie_cleared(&resp, name),
            "{name}: {:?}",
            raw_set_cookies(&resp)
        );
    }
    assert!(!set_cookies(&resp).iter().any(|(n, _, _)| n == "app"));
    assert_eq!(gw.emu.calls(LOGOUT), 1);

    // The refresh token is dead at Descope now.
    let after = get_with_cookies(&gw, "/api/x", &format!("DSR={refresh}")).await;
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn api_logout_answers_204() {
    let gw = TestGateway::spawn(ROUTES).await;
    let resp = gw
        .client
        .post(gw.url("/_auth/logout"))
        .header("cookie", format!("DSR={}", refresh_for(&gw, "U-api")))
        .header("sec-fetch-site", "same-origin")
        .header("accept", "application/json")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 204);
    assert!(cookie_cleared(&resp, "DSR"));
    assert_eq!(gw.emu.calls(LOGOUT), 1);

    // Bearer-only (no cookies) is exempt from the origin check.
    let resp = gw
        .client
        .post(gw.url("/_auth/logout"))
        .bearer_auth(refresh_for(&gw, "U-api"))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 204);
    assert_eq!(gw.emu.calls(LOGOUT), 2);
}

#[tokio::test]
async fn cross_site_logout_is_refused() {
    let gw = TestGateway::spawn(ROUTES).await;
    let cookies = format!("DSR={}", refresh_for(&gw, "U-csrf"));
    for (origin, fetch_site) in [
        (Some("http://evil.test"), None),
        (Some("http://evil.test"), Some("cross-site")),
        (None, Some("same-site")),
        (None, None),
        (Some("null"), None),
    ] {
        let mut req = gw
            .client
            .post(gw.url("/_auth/logout"))
            .header("cookie", &cookies);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        let resp = req.send().await.expect("gateway answers");
        assert_eq!(resp.status(), 403, "{origin:?} {fetch_site:?}");
        assert!(set_cookies(&resp).is_empty());
    }
    assert_eq!(gw.emu.calls(LOGOUT), 0);
    // Without any session cookie nothing is authenticated by cookies: the
    // origin check does not apply, and there is nothing to sign out.
    let resp = gw
        .client
        .post(gw.url("/_auth/logout"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 204);
    assert_eq!(gw.emu.calls(LOGOUT), 0);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user() {
    let gw = TestGateway::spawn(ROUTES).await;
    let laptop = refresh_for(&gw, "U-all");
    let phone = refresh_for(&gw, "U-all");
    let resp = gw
        .client
        .post(gw.url("/_auth/logout-all"))
        .header("cookie", format!("DSR={laptop}"))
        .header("origin", "http://gw.test")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 204);
    assert_eq!(gw.emu.calls(LOGOUT_ALL), 1);
    let other = get_with_cookies(&gw, "/api/x", &format!("DSR={phone}")).await;
    assert_eq!(other.status(), 401);
}

#[tokio::test]
async fn logout_get_shows_a_confirmation_form() {
    let gw = TestGateway::spawn(ROUTES).await;
    let resp = gw
        .get("/_auth/logout")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let body = resp.text().await.expect("body");
    assert!(body.contains("method=\"post\""), "{body}");
    assert!(body.contains("action=\"/_auth/logout\""), "{body}");
    assert_eq!(gw.emu.calls(LOGOUT), 0);
}

#[tokio::test]
async fn logout_all_during_an_outage_does_not_pretend() {
    let gw = TestGateway::spawn(ROUTES).await;
    gw.emu.set_fault(LOGOUT_ALL, Fault::status(503));
    let resp = gw
        .client
        .post(gw.url("/_auth/logout-all"))
        .header("cookie", format!("DSR={}", refresh_for(&gw, "U-o")))
        .header("origin", "http://gw.test")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 503);
    assert!(set_cookies(&resp).is_empty(), "cookies kept for a retry");
}

#[tokio::test]
async fn logout_redirects_to_the_configured_page() {
    for (after, location) in [
        ("/bye?x=1", "/bye?x=1"),
        ("http://gw.test/bye", "http://gw.test/bye"),
    ] {
        let gw = TestGateway::spawn(&format!(
            "[login]\nmethods = []\nafter_logout = \"{after}\"\n{ROUTES}"
        ))
        .await;
        let resp = gw
            .client
            .post(gw.url("/_auth/logout"))
            .header("cookie", format!("DSR={}", refresh_for(&gw, "U-bye")))
            .header("sec-fetch-site", "same-origin")
            .header("accept", "text/html")
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], location);
    }
}

/// A Descope slower than `[descope] timeout` is an outage: 503 after the
/// timeout (a timeout is not retried), cookies kept.
#[tokio::test]
async fn a_slow_descope_times_out_into_503() {
    let emu = Arc::new(spawn_emulator().await);
    let upstream = spawn_upstream().await;
    let toml = base_toml(&emu, &upstream, ROUTES).replace(
        "jwks_min_refetch = \"1s\"",
        "jwks_min_refetch = \"1s\"\ntimeout = \"300ms\"",
    );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    gw.emu
        .set_fault(REFRESH, Fault::latency(std::time::Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let resp = get_with_cookies(
        &gw,
        "/api/x",
        &format!("DSR={}", refresh_for(&gw, "U-slow")),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(set_cookies(&resp).is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "answered after the 300ms timeout, not Descope's 3s"
    );
    assert_eq!(gw.emu.calls(REFRESH), 1);
}

/// Signs out with `cookies` (API style); Descope's own logout failing, so
/// only the gateway's memory of the logout stands between a copied cookie
/// and a refresh.
async fn logout_with_descope_down(gw: &TestGateway, cookies: &str) {
    gw.emu.set_fault(LOGOUT, Fault::status(503));
    let resp = gw
        .client
        .post(gw.url("/_auth/logout"))
        .header("cookie", cookies)
        .header("origin", "http://gw.test")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(
        resp.status(),
        204,
        "logout answers even when Descope's call fails"
    );
}

/// A copy of the cookies taken before a logout (session still valid, near
/// its expiry) must not refresh early with the signed-out refresh token.
#[tokio::test]
async fn an_early_refresh_with_a_signed_out_refresh_token_is_refused() {
    let emu = Arc::new(spawn_emulator().await);
    let upstream = spawn_upstream().await;
    let toml = base_toml(
        &emu,
        &upstream,
        &format!("[session]\nrefresh_before = \"10m\"\n{ROUTES}"),
    );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    let refresh = refresh_for(&gw, "U-copy");
    let owner = mint(&gw, "U-copy", false, 60, json!({}));
    let copy = mint(&gw, "U-copy", false, 90, json!({}));
    // Before the logout the copy refreshes early, as configured.
    let before = get_with_cookies(&gw, "/api/x", &format!("DS={copy}; DSR={refresh}")).await;
    assert_eq!(before.status(), 200);
    assert!(cookie_set(&before, "DS").is_some(), "refreshed early");
    gw.emu.reset_calls();

    logout_with_descope_down(&gw, &format!("DS={owner}; DSR={refresh}")).await;
    let after = get_with_cookies(&gw, "/api/x", &format!("DS={copy}; DSR={refresh}")).await;
    assert_eq!(
        after.status(),
        401,
        "the signed-out refresh token refreshed"
    );
    assert!(cookie_set(&after, "DS").is_none());
    assert_eq!(
        gw.emu.calls(REFRESH),
        0,
        "no refresh call for a signed-out token"
    );
}

/// A logout while a refresh of the same token is on its way to Descope
/// wins: the refresh's answer is not adopted.
#[tokio::test]
async fn a_refresh_in_flight_during_a_logout_does_not_sign_the_user_back_in() {
    let gw = TestGateway::spawn(ROUTES).await;
    let refresh = refresh_for(&gw, "U-race");
    gw.emu.set_fault(
        REFRESH,
        Fault::latency(std::time::Duration::from_millis(1500)),
    );
    let pending = tokio::spawn({
        let client = gw.client.clone();
        let url = gw.url("/api/x");
        let cookies = format!("DSR={refresh}");
        async move {
            client
                .get(url)
                .header("cookie", cookies)
                .send()
                .await
                .expect("gateway answers")
        }
    });
    // Wait for the refresh call to reach Descope (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.emu.calls(REFRESH) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    logout_with_descope_down(&gw, &format!("DSR={refresh}")).await;
    let resp = pending.await.expect("request task");
    assert_eq!(
        resp.status(),
        401,
        "the in-flight refresh was adopted after the logout"
    );
    assert!(
        cookie_set(&resp, "DS").is_none(),
        "{:?}",
        raw_set_cookies(&resp)
    );
}

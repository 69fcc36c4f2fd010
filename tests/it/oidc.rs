//! The OpenID Connect mode end to end: a real OpenID Provider
//! (panva/oidc-provider, `tests/upstreams/oidc-provider`), a recording
//! upstream and a gateway in `[oidc]` mode, all on loopback.

use std::sync::Arc;

use futures_util::future::join_all;
use portcullis::app::{GatewayHandle, StartOptions};
use reqwest::Method;
use serde_json::Value;

use crate::support::*;

const SECRET: &str = "oidc-test-session-secret-0123456789abcdef";

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

struct OidcGateway {
    handle: GatewayHandle,
    op: Arc<Op>,
    upstream: Upstream,
}

impl OidcGateway {
    /// `oidc` is appended inside `[oidc]` (after issuer), `extra` after it.
    async fn spawn(op: Arc<Op>, oidc: &str, extra: &str) -> Self {
        Self::spawn_with(op, oidc, "", extra).await
    }

    /// `session` is appended inside `[session]`.
    async fn spawn_with(op: Arc<Op>, oidc: &str, session: &str, extra: &str) -> Self {
        let (handle, upstream) = start_gateway(&op.issuer, oidc, session, extra).await;
        Self {
            handle,
            op,
            upstream,
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(self.handle.addr)
    }
}

/// A gateway in `[oidc]` mode for `issuer` in front of a recording upstream:
/// `oidc` goes inside `[oidc]`, `session` inside `[session]`, `extra` after.
async fn start_gateway(
    issuer: &str,
    oidc: &str,
    session: &str,
    extra: &str,
) -> (GatewayHandle, Upstream) {
    init();
    let upstream = spawn_upstream().await;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://gw.test"

[admin]
listen = "127.0.0.1:0"

[oidc]
issuer = "{issuer}"
{oidc}

[session]
secret = "{SECRET}"
{session}

[upstreams.default]
url = "{up}"
response_header_timeout = "2s"

{extra}
"#,
        up = upstream.url(),
    );
    let handle = portcullis::app::start(config(&toml), StartOptions::default())
        .await
        .expect("gateway starts");
    wait_ready(&handle).await;
    (handle, upstream)
}

async fn op(env: &[(&str, &str)]) -> Option<Arc<Op>> {
    Op::spawn(env).await.map(Arc::new)
}

const BASIC: &str = r#"scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }
client_id = "gw-basic"
client_secret = "gw-basic-secret""#;

fn header<'a>(r: &'a Recorded, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Signs `account` in through the provider and lands on `path`.
async fn signed_in(gw: &OidcGateway, account: &str, path: &str) -> Browser {
    let mut b = gw.browser();
    let landed = b.sign_in(&format!("http://gw.test{path}"), account).await;
    assert_eq!(landed.status, 200, "{} {}", landed.url, landed.body);
    assert_eq!(landed.url, format!("http://gw.test{path}"));
    b
}

#[tokio::test]
async fn sign_in_round_trip_with_a_confidential_client() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = gw.browser();
    let first = b
        .send(Method::GET, "http://gw.test/admin/x?q=1", None, &[])
        .await;
    assert_eq!(first.status, 302);
    let landed = b.sign_in("http://gw.test/admin/x?q=1", "alice").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert_eq!(landed.url, "http://gw.test/admin/x?q=1");
    let seen = gw.upstream.last();
    assert_eq!(seen.target, "/admin/x?q=1");
    assert_eq!(header(&seen, "x-auth-user-id"), Some("alice"));
    let counts = gw.op.counts().await;
    assert_eq!(
        counts.get("/token authorization_code"),
        Some(&1),
        "{counts:?}"
    );
    // The session cookie is sealed: no token, no claim readable.
    let cookies = b.gateway_cookies();
    assert!(!cookies.is_empty());
    for (_, v) in &cookies {
        assert!(!v.contains("eyJ"), "a readable JWT in a cookie: {v}");
        assert!(!v.contains("alice"), "a readable claim in a cookie");
    }
}

const POST: &str = r#"scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }
client_id = "gw-post"
client_secret = "gw-post-secret"
token_endpoint_auth_method = "client_secret_post""#;

const PUBLIC: &str = r#"scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }
client_id = "gw-public""#;

const HS256: &str = r#"scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }
client_id = "gw-hs256"
client_secret = "gw-hs256-secret-0123456789abcdef0123456789"
id_token_algs = ["HS256"]"#;

const HS256_UNLISTED: &str = r#"scopes = ["openid", "profile", "email", "offline_access", "roles"]
auth_params = { prompt = "consent" }
client_id = "gw-hs256"
client_secret = "gw-hs256-secret-0123456789abcdef0123456789""#;

/// Every client kind the provider allows: `client_secret_post`, a public
/// client (auth method `none`, which this provider accepts only with
/// PKCE) and HS256 ID tokens keyed with the client secret when listed.
#[tokio::test]
async fn every_client_kind_signs_in() {
    let Some(op) = op(&[]).await else { return };
    for (name, oidc) in [("post", POST), ("public", PUBLIC), ("hs256", HS256)] {
        let gw = OidcGateway::spawn(op.clone(), oidc, ROUTES).await;
        let b = signed_in(&gw, "alice", "/admin/x").await;
        assert_eq!(
            header(&gw.upstream.last(), "x-auth-user-id"),
            Some("alice"),
            "{name}"
        );
        assert!(!b.gateway_cookies().is_empty(), "{name}");
    }
    assert_eq!(op.count("/token authorization_code").await, 3);
}

#[tokio::test]
async fn hs256_id_tokens_are_refused_unless_listed() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, HS256_UNLISTED, ROUTES).await;
    let mut b = gw.browser();
    let landed = b.sign_in("http://gw.test/admin/x", "alice").await;
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(landed.url.starts_with("http://gw.test/_auth/oidc/callback"));
    assert!(landed.body.contains("could not be verified"));
    assert!(
        session_cookie(&b).is_none(),
        "no session from a refused ID token"
    );
    assert_eq!(gw.upstream.count(), 0);
}

/// Dotted-path claim mapping feeds the ordinary route rules.
#[tokio::test]
async fn mapped_claims_feed_route_rules() {
    let Some(op) = op(&[]).await else { return };
    let oidc = format!("{BASIC}\nroles_claim = \"realm_access.roles\"");
    let routes = r#"
[[routes]]
path = "/realm/**"
roles = ["realm-admin"]

[[routes]]
path = "/wiki/**"
permissions = ["wiki:edit"]

[[routes]]
path = "/admin/**"
roles = ["admin"]

[[routes]]
path = "/**"
access = "authenticated"
"#;
    let gw = OidcGateway::spawn(op, &oidc, routes).await;
    let mut alice = signed_in(&gw, "alice", "/realm/x").await;
    let seen = gw.upstream.last();
    assert_eq!(header(&seen, "x-auth-roles"), Some("realm-admin"));
    assert_eq!(header(&seen, "x-auth-email"), Some("alice@example.test"));
    assert_eq!(
        alice
            .send(Method::GET, "http://gw.test/wiki/p", None, &[])
            .await
            .status,
        200
    );
    // `roles` is not the mapped claim here: the top-level one counts for nothing.
    assert_eq!(
        alice
            .send(Method::GET, "http://gw.test/admin/p", None, &[])
            .await
            .status,
        403
    );
    let mut bob = signed_in(&gw, "bob", "/home").await;
    for path in ["/realm/x", "/wiki/p"] {
        let r = bob
            .send(Method::GET, &format!("http://gw.test{path}"), None, &[])
            .await;
        assert_eq!(r.status, 403, "{path}");
    }
    // /me shows the mapped identity.
    let me = alice
        .send(
            Method::GET,
            "http://gw.test/_auth/me",
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["user_id"], "alice", "{me}");
    assert_eq!(
        me["claims"]["roles"],
        serde_json::json!(["realm-admin"]),
        "{me}"
    );
}

// === sessions and refresh ===

fn sealer() -> portcullis::oidc::Sealer {
    portcullis::oidc::Sealer::new(SECRET.as_bytes(), &[]).unwrap()
}

/// The (name, sealed session) of the browser's session cookie.
fn session_cookie(b: &Browser) -> Option<(String, portcullis::oidc::SealedSession)> {
    let s = sealer();
    b.gateway_cookies()
        .into_iter()
        .find_map(|(k, v)| s.open(&v).map(|o| (k, o)))
}

/// Makes the browser's session look expired (as if the ID token's
/// lifetime had passed), keeping its real refresh token.
fn expire_session(b: &mut Browser) -> String {
    let (name, mut sealed) = session_cookie(b).expect("a session cookie");
    sealed.expires_at = portcullis::time::unix_now_i64() - 120;
    let value = sealer().seal(&sealed).unwrap();
    let mut cookies = b.gateway_cookies();
    for c in &mut cookies {
        if c.0 == name {
            c.1 = value.clone();
        }
    }
    b.set_gateway_cookies(cookies);
    sealed
        .refresh_token
        .expect("the provider issued a refresh token")
}

fn cleared(l: &Landed) -> bool {
    l.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("max-age=0"))
}

fn sets_cookie(l: &Landed) -> bool {
    l.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| !v.to_ascii_lowercase().contains("max-age=0"))
}

#[tokio::test]
async fn an_expired_session_is_refreshed_and_verified_again() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "bob", "/home").await;
    let old_refresh = expire_session(&mut b);
    // Bob becomes an admin at the provider: the refresh picks it up (userinfo re-merged).
    gw.op.set_roles("bob", &["admin"]).await;
    let r = b
        .send(Method::GET, "http://gw.test/admin/x", None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(sets_cookie(&r), "the refreshed session is set");
    assert_eq!(gw.op.count("/token refresh_token").await, 1);
    let (_, now) = session_cookie(&b).unwrap();
    assert!(now.expires_at > portcullis::time::unix_now_i64());
    assert_ne!(
        now.refresh_token.as_deref(),
        Some(old_refresh.as_str()),
        "rotated"
    );
    assert_eq!(header(&gw.upstream.last(), "x-auth-roles"), Some("admin"));
}

#[tokio::test]
async fn a_session_past_its_maximum_age_is_not_refreshed() {
    // A signed-out refresh token is remembered for MAX_SESSION_AGE; a copy
    // of an older cookie must not be refreshable after that memory is gone.
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "bob", "/home").await;
    let (_, fresh) = session_cookie(&b).unwrap();
    let signed_in_at = fresh.signed_in_at.expect("the sign-in time is sealed");
    assert!((portcullis::time::unix_now_i64() - signed_in_at).abs() < 60);
    // A refresh keeps the sign-in time.
    expire_session(&mut b);
    let r = b.send(Method::GET, "http://gw.test/home", None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(gw.op.count("/token refresh_token").await, 1);
    let (_, refreshed) = session_cookie(&b).unwrap();
    assert_eq!(refreshed.signed_in_at, Some(signed_in_at));
    // Past the maximum age: signed out, the provider is not asked.
    let (name, mut old) = session_cookie(&b).unwrap();
    let max = i64::try_from(portcullis::oidc::MAX_SESSION_AGE.as_secs()).unwrap();
    old.signed_in_at = Some(portcullis::time::unix_now_i64() - max - 60);
    old.expires_at = portcullis::time::unix_now_i64() - 120;
    let value = sealer().seal(&old).unwrap();
    let mut cookies = b.gateway_cookies();
    for c in &mut cookies {
        if c.0 == name {
            c.1 = value.clone();
        }
    }
    b.set_gateway_cookies(cookies);
    let r = b.send(Method::GET, "http://gw.test/home", None, &[]).await;
    assert_ne!(r.status, 200, "{}", r.body);
    assert_eq!(
        gw.op.count("/token refresh_token").await,
        1,
        "no refresh call"
    );
}

/// 32 requests at once on one expired session, against a provider that
/// rotates refresh tokens and revokes the whole grant when a rotated one
/// is reused: one refresh call, every request served, nobody signed out;
/// the old cookie keeps working within the grace period.
#[tokio::test]
async fn concurrent_requests_share_one_refresh_under_rotation() {
    let Some(op) = op(&[("OP_ROTATE", "1")]).await else {
        return;
    };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "alice", "/home").await;
    expire_session(&mut b);
    let cookie = b.cookie_header(&url::Url::parse("http://gw.test/").unwrap());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/api/x", gw.handle.addr);
    let answers = join_all((0..32).map(|_| {
        client
            .get(&url)
            .header("host", "gw.test")
            .header("cookie", &cookie)
            .send()
    }))
    .await;
    for r in answers {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("set-cookie").is_some(),
            "every answer carries the new session"
        );
    }
    assert_eq!(gw.op.count("/token refresh_token").await, 1);
    // The pre-refresh cookie again (a tab that missed the answer): same result, no call.
    let again = client
        .get(&url)
        .header("host", "gw.test")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(gw.op.count("/token refresh_token").await, 1);
    // The rotated token refreshes in turn when its session expires.
    let r = b.send(Method::GET, "http://gw.test/api/x", None, &[]).await;
    assert_eq!(r.status, 200);
    expire_session(&mut b);
    let r = b.send(Method::GET, "http://gw.test/api/x", None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(gw.op.count("/token refresh_token").await, 2);
}

#[tokio::test]
async fn a_refused_refresh_token_signs_out() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "alice", "/home").await;
    expire_session(&mut b);
    gw.op.fault("/token", 400, 1, "invalid_grant").await;
    let r = b.send(Method::GET, "http://gw.test/home", None, &[]).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(
        r.headers["location"]
            .to_str()
            .unwrap()
            .contains("/_auth/login")
    );
    assert!(cleared(&r), "the session cookies are cleared");
    assert!(session_cookie(&b).is_none());
    let api = b.send(Method::GET, "http://gw.test/api/x", None, &[]).await;
    assert_eq!(api.status, 401);
}

#[tokio::test]
async fn a_provider_outage_keeps_the_session() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "alice", "/home").await;
    expire_session(&mut b);
    gw.op
        .fault("/token", 503, 1, "temporarily_unavailable")
        .await;
    let r = b
        .send(
            Method::GET,
            "http://gw.test/api/x",
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert!(!cleared(&r), "cookies are kept through an outage");
    assert!(session_cookie(&b).is_some());
    assert_eq!(gw.op.count("fault /token").await, 1);
    // The provider is back: the same cookies refresh (an outage is
    // remembered for at most a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = b.send(Method::GET, "http://gw.test/api/x", None, &[]).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after the outage"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(gw.op.count("/token refresh_token").await, 1);
}

// === bearer access tokens ===

/// An access token for `account` issued to `client` (with `resource`: a
/// JWT for the test API; without: an opaque token).
async fn access_token(
    op: &Op,
    client: (&str, &str),
    account: &str,
    resource: Option<&str>,
) -> String {
    let mut b = Browser::new("127.0.0.1:9".parse().unwrap());
    let mut auth = url::Url::parse(&format!("{}/auth", op.issuer)).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", client.0)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email roles")
        .append_pair("redirect_uri", "http://gw.test/_auth/oidc/callback")
        .append_pair("state", "test-state")
        .append_pair("nonce", "test-nonce");
    if let Some(r) = resource {
        auth.query_pairs_mut().append_pair("resource", r);
    }
    let cb = b
        .sign_in_until(auth.as_str(), account, "http://gw.test/")
        .await;
    let code = url::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        (
            "redirect_uri",
            "http://gw.test/_auth/oidc/callback".to_owned(),
        ),
    ];
    if let Some(r) = resource {
        form.push(("resource", r.to_owned()));
    }
    let v: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/token", op.issuer))
        .basic_auth(client.0, Some(client.1))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

async fn bearer_get(gw: &OidcGateway, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}{path}", gw.handle.addr))
        .header("host", "gw.test")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bearer_jwt_access_tokens_need_a_listed_audience() {
    let Some(op) = op(&[]).await else { return };
    let token = access_token(
        &op,
        ("gw-basic", "gw-basic-secret"),
        "alice",
        Some("urn:portcullis-test:api"),
    )
    .await;
    assert!(token.starts_with("eyJ"), "a JWT access token");
    let oidc = format!("{BASIC}\naudiences = [\"urn:portcullis-test:api\"]");
    let gw = OidcGateway::spawn_with(op.clone(), &oidc, "accept_bearer = true", ROUTES).await;
    let r = bearer_get(&gw, "/admin/x", &token).await;
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(header(&seen, "x-auth-user-id"), Some("alice"));
    assert_eq!(header(&seen, "x-auth-roles"), Some("admin,staff"));
    // A tampered token, and garbage, are refused.
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(bearer_get(&gw, "/api/x", &bad).await.status(), 401);
    assert_eq!(bearer_get(&gw, "/api/x", "not-a-token").await.status(), 401);
    // The same token at a gateway whose audience is its client id: refused.
    let other = OidcGateway::spawn_with(op, BASIC, "accept_bearer = true", ROUTES).await;
    assert_eq!(bearer_get(&other, "/api/x", &token).await.status(), 401);
}

#[tokio::test]
async fn bearer_tokens_by_introspection_are_cached() {
    let Some(op) = op(&[]).await else { return };
    let token = access_token(&op, ("gw-basic", "gw-basic-secret"), "alice", None).await;
    assert!(!token.starts_with("eyJ"), "an opaque access token");
    let oidc = format!("{BASIC}\nbearer = \"introspect\"");
    let gw = OidcGateway::spawn_with(op.clone(), &oidc, "accept_bearer = true", ROUTES).await;
    let answers = join_all((0..8).map(|_| bearer_get(&gw, "/api/x", &token))).await;
    for r in answers {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(bearer_get(&gw, "/api/y", &token).await.status(), 200);
    assert_eq!(header(&gw.upstream.last(), "x-auth-user-id"), Some("alice"));
    assert_eq!(
        op.count("/token/introspection").await,
        1,
        "single-flight and cached"
    );
    assert_eq!(
        bearer_get(&gw, "/api/x", "unknown-token").await.status(),
        401
    );
    // A token of another client (no audience in the answer) is not ours.
    let theirs = access_token(&op, ("gw-post", "gw-post-secret"), "alice", None).await;
    assert_eq!(bearer_get(&gw, "/api/x", &theirs).await.status(), 401);
}

// === logout ===

#[tokio::test]
async fn logout_revokes_and_ends_the_provider_session() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut b = signed_in(&gw, "alice", "/home").await;
    let (_, sealed) = session_cookie(&b).unwrap();
    let old = b.gateway_cookies();
    // The confirmation page's form may be redirected to the provider
    // (browsers apply form-action to the redirect after a POST).
    let page = b
        .send(Method::GET, "http://gw.test/_auth/logout", None, &[])
        .await;
    let csp = page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("form-action 'self' {}", gw.op.issuer)),
        "{csp}"
    );
    let r = b
        .send(
            Method::POST,
            "http://gw.test/_auth/logout",
            None,
            &[("origin", "http://gw.test")],
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(cleared(&r));
    let loc = url::Url::parse(r.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(loc.path(), "/session/end");
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q.get("client_id").map(String::as_str), Some("gw-basic"));
    assert_eq!(q.get("id_token_hint"), sealed.id_token.as_ref());
    assert_eq!(
        q.get("post_logout_redirect_uri").map(String::as_str),
        Some("http://gw.test/")
    );
    assert_eq!(gw.op.count("/token/revocation").await, 1);
    // The provider accepts the logout request.
    let end = b.send(Method::GET, loc.as_str(), None, &[]).await;
    assert_eq!(end.status, 200, "{}", end.body);
    // Signed out here; the revoked refresh token cannot bring it back.
    let r = b.send(Method::GET, "http://gw.test/home", None, &[]).await;
    assert_eq!(r.status, 302);
    b.set_gateway_cookies(old);
    expire_session(&mut b);
    let r = b.send(Method::GET, "http://gw.test/api/x", None, &[]).await;
    assert_eq!(r.status, 401, "a revoked refresh token refreshes nothing");
}

/// Logout-all signs out every session of the user this gateway issued
/// before it: another browser's still-valid session, and that session's
/// refresh once it has expired (no provider call is made for it).
#[tokio::test]
async fn logout_all_refuses_the_other_sessions_of_the_user() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let mut here = signed_in(&gw, "alice", "/home").await;
    let mut there = signed_in(&gw, "alice", "/home").await;
    let mut bob = signed_in(&gw, "bob", "/home").await;
    let kept = there.gateway_cookies();
    let r = here
        .send(
            Method::POST,
            "http://gw.test/_auth/logout-all",
            None,
            &[("origin", "http://gw.test")],
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(cleared(&r));
    let r = there
        .send(Method::GET, "http://gw.test/api/x", None, &[])
        .await;
    assert_eq!(r.status, 401, "the other browser is signed out too");
    let refreshes = gw.op.count("/token refresh_token").await;
    there.set_gateway_cookies(kept);
    expire_session(&mut there);
    let r = there
        .send(Method::GET, "http://gw.test/api/x", None, &[])
        .await;
    assert_eq!(r.status, 401, "its refresh token signs nobody back in");
    assert_eq!(gw.op.count("/token refresh_token").await, refreshes);
    let r = bob
        .send(Method::GET, "http://gw.test/api/x", None, &[])
        .await;
    assert_eq!(r.status, 200, "another user keeps their session");
}

// === bad callbacks ===

#[tokio::test]
async fn bad_callbacks_are_refused_without_a_session() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let cb_prefix = "http://gw.test/_auth/oidc/callback";

    // A complete callback, held back.
    let mut b = gw.browser();
    let cb = b
        .sign_in_until("http://gw.test/home", "alice", cb_prefix)
        .await;
    let jar = b.gateway_cookies();
    let parsed = url::Url::parse(&cb).unwrap();
    let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    let state = q["state"].clone();
    let code = q["code"].clone();
    let iss = q.get("iss").cloned().unwrap_or_default();
    let with = |pairs: &[(&str, &str)]| {
        let mut u = url::Url::parse(cb_prefix).unwrap();
        for (k, v) in pairs {
            u.query_pairs_mut().append_pair(k, v);
        }
        u.to_string()
    };
    let cases = [
        (
            "provider error",
            with(&[("error", "access_denied"), ("state", &state)]),
        ),
        ("no state", with(&[("code", &code), ("iss", &iss)])),
        (
            "tampered state",
            with(&[
                ("code", &code),
                ("state", &format!("{state}x")),
                ("iss", &iss),
            ]),
        ),
        (
            "another issuer",
            with(&[
                ("code", &code),
                ("state", &state),
                ("iss", "http://127.0.0.1:1"),
            ]),
        ),
        ("no code", with(&[("state", &state), ("iss", &iss)])),
    ];
    for (name, url) in &cases {
        let mut t = gw.browser();
        t.set_gateway_cookies(jar.clone());
        let r = t.send(Method::GET, url, None, &[]).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert!(session_cookie(&t).is_none(), "{name}: no session");
    }
    // The real callback works once; its replay (same state cookie) does not.
    let mut first = gw.browser();
    first.set_gateway_cookies(jar.clone());
    let ok = first.send(Method::GET, &cb, None, &[]).await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    assert!(session_cookie(&first).is_some());
    let mut replay = gw.browser();
    replay.set_gateway_cookies(jar);
    let r = replay.send(Method::GET, &cb, None, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(session_cookie(&replay).is_none());
    // A state from another browser (no state cookie) is refused too.
    let mut stranger = gw.browser();
    let r = stranger.send(Method::GET, &cb, None, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(gw.upstream.count(), 0);
}

// === start-up and endpoints ===

#[tokio::test]
async fn discovery_failing_at_start_is_retried_until_ready() {
    let Some(op) = op(&[]).await else { return };
    op.fault("/.well-known/openid-configuration", 503, 2, "down")
        .await;
    let gw = OidcGateway::spawn(op.clone(), BASIC, ROUTES).await;
    assert_eq!(op.count("fault /.well-known/openid-configuration").await, 2);
    let ready = reqwest::get(format!("http://{}/readyz", gw.handle.admin_addr.unwrap()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    signed_in(&gw, "alice", "/home").await;
}

#[tokio::test]
async fn descope_only_endpoints_are_not_found() {
    let Some(op) = op(&[]).await else { return };
    let gw = OidcGateway::spawn(op, BASIC, ROUTES).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, path) in [
        (Method::POST, "/_auth/magiclink/start"),
        (Method::POST, "/_auth/enchantedlink/start"),
        (Method::GET, "/_auth/oauth/start?provider=google"),
        (Method::GET, "/_auth/sso/start?tenant=t"),
        (Method::POST, "/_auth/otp/start"),
        (Method::GET, "/_auth/session"),
    ] {
        let r = client
            .request(method.clone(), format!("http://{}{path}", gw.handle.addr))
            .header("host", "gw.test")
            .header("origin", "http://gw.test")
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    // The login page sends the browser to the provider.
    let r = client
        .get(format!(
            "http://{}/_auth/login?return_to=/x",
            gw.handle.addr
        ))
        .header("host", "gw.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "gw-basic");
    assert_eq!(q["redirect_uri"], "http://gw.test/_auth/oidc/callback");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["nonce"].len() >= 32 && q["state"].len() >= 16);
}

#[tokio::test]
async fn forward_auth_judges_the_sealed_session() {
    let Some(op) = op(&[]).await else { return };
    let fa =
        format!("[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{ROUTES}");
    let gw = OidcGateway::spawn(op, BASIC, &fa).await;
    let alice = signed_in(&gw, "alice", "/home").await;
    let bob = signed_in(&gw, "bob", "/home").await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let verify = |b: &Browser, uri: &str| {
        client
            .get(format!("http://{}/_auth/verify", gw.handle.addr))
            .header("host", "gw.test")
            .header("x-original-uri", uri)
            .header(
                "cookie",
                b.cookie_header(&url::Url::parse("http://gw.test/").unwrap()),
            )
            .send()
    };
    let ok = verify(&alice, "/admin/x").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-user-id"], "alice");
    assert_eq!(verify(&bob, "/admin/x").await.unwrap().status(), 403);
    assert_eq!(
        verify(&gw.browser(), "/admin/x").await.unwrap().status(),
        401
    );
}

// === ID token checks, against a provider that answers what the test says ===

/// A minimal OpenID Provider whose token endpoint answers with the ID
/// token the test put there: how every ID-token check is proven to refuse.
struct FakeOp {
    issuer: String,
    id_token: Arc<std::sync::Mutex<String>>,
}

impl FakeOp {
    async fn spawn() -> Self {
        use http_body_util::Full;
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let id_token = Arc::new(std::sync::Mutex::new(String::new()));
        let (iss, tok) = (issuer.clone(), id_token.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let (iss, tok) = (iss.clone(), tok.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let body = match req.uri().path() {
                            "/.well-known/openid-configuration" => serde_json::json!({
                                "issuer": iss,
                                "authorization_endpoint": format!("{iss}/auth"),
                                "token_endpoint": format!("{iss}/token"),
                                "jwks_uri": format!("{iss}/jwks"),
                            })
                            .to_string(),
                            "/jwks" => r#"{"keys":[]}"#.to_owned(),
                            "/token" => serde_json::json!({
                                "access_token": "opaque-access-token",
                                "token_type": "Bearer",
                                "expires_in": 60,
                                "id_token": *tok.lock().unwrap(),
                            })
                            .to_string(),
                            _ => "{}".to_owned(),
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(bytes::Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self { issuer, id_token }
    }
}

const FAKE_SECRET: &str = "fake-op-client-secret-0123456789abcdef";

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn es256(claims: &Value) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        e(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        e(claims)
    )
}

#[tokio::test]
async fn every_id_token_check_refuses() {
    let fake = FakeOp::spawn().await;
    let oidc = format!(
        "client_id = \"fake-client\"\nclient_secret = \"{FAKE_SECRET}\"\nid_token_algs = [\"HS256\"]\nuserinfo = false"
    );
    let (handle, upstream) = start_gateway(&fake.issuer, &oidc, "", ROUTES).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let now = portcullis::time::unix_now_i64();
    let iss = fake.issuer.clone();
    let good = move |nonce: &str| {
        serde_json::json!({
            "iss": iss, "sub": "u1", "aud": "fake-client", "exp": now + 300,
            "iat": now, "nonce": nonce, "email": "u1@example.test",
        })
    };
    type Craft = Box<dyn Fn(Value) -> String>;
    let with = |k: &'static str, v: Value| -> Craft {
        Box::new(move |mut c: Value| {
            c[k] = v.clone();
            hs256(&c, FAKE_SECRET)
        })
    };
    let without = |k: &'static str| -> Craft {
        Box::new(move |mut c: Value| {
            c.as_object_mut().unwrap().remove(k);
            hs256(&c, FAKE_SECRET)
        })
    };
    let cases: Vec<(&str, Craft)> = vec![
        ("another issuer", with("iss", "http://127.0.0.1:1".into())),
        (
            "issuer with a trailing slash",
            with("iss", format!("{}/", fake.issuer).into()),
        ),
        ("another audience", with("aud", "other-client".into())),
        (
            "several audiences without azp",
            with("aud", serde_json::json!(["fake-client", "other"])),
        ),
        ("azp of another client", with("azp", "other-client".into())),
        ("expired", with("exp", (now - 60).into())),
        ("issued in the future", with("iat", (now + 600).into())),
        ("another nonce", with("nonce", "not-the-nonce".into())),
        ("no nonce", without("nonce")),
        ("no subject", without("sub")),
        ("no expiry", without("exp")),
        (
            "another key",
            Box::new(|c| hs256(&c, "another-secret-0123456789abcdef0123")),
        ),
        ("an algorithm not listed", Box::new(|c| es256(&c))),
        ("alg none", Box::new(|c| unsigned(&c))),
        ("not a JWT", Box::new(|_| "garbage".to_owned())),
    ];
    let sign_in = |craft: Craft| {
        let client = client.clone();
        let fake_token = fake.id_token.clone();
        let good = good.clone();
        async move {
            let start = client
                .get(format!(
                    "http://{}/_auth/login?return_to=/home",
                    handle.addr
                ))
                .header("host", "gw.test")
                .send()
                .await
                .unwrap();
            assert_eq!(start.status(), 302);
            let loc = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
            let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
            let cookie = start
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("; ");
            *fake_token.lock().unwrap() = craft(good(&q["nonce"]));
            client
                .get(format!(
                    "http://{}/_auth/oidc/callback?code=c&state={}",
                    handle.addr, q["state"]
                ))
                .header("host", "gw.test")
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    for (name, craft) in cases {
        let r = sign_in(craft).await;
        assert_eq!(r.status(), 400, "{name}");
        let sets_session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().contains("o1."));
        assert!(!sets_session, "{name}: no session");
    }
    // The same sign-in with a good token works: the cases above failed for their one defect.
    let r = sign_in(Box::new(|c| hs256(&c, FAKE_SECRET))).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/home");
    assert_eq!(upstream.count(), 0);
}

// === configuration ===

/// Each bad `[oidc]` setup is refused at load, naming the key.
#[test]
fn bad_oidc_configs_name_the_key() {
    let base = |oidc: &str, rest: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://gw.test\"\n\
             [oidc]\n{oidc}\n{rest}\n[upstreams.default]\nurl = \"http://127.0.0.1:1\"\n"
        )
    };
    let session = format!("[session]\nsecret = \"{SECRET}\"");
    let ok = "issuer = \"https://op.example\"\nclient_id = \"c\"\nclient_secret = \"s\"";
    let cases = [
        (
            base(ok, &format!("{session}\n[descope]\nproject_id = \"P2x\"")),
            "oidc",
        ),
        (base("client_id = \"c\"", &session), "oidc.issuer"),
        (
            base(
                "issuer = \"http://op.example\"\nclient_id = \"c\"",
                &session,
            ),
            "oidc.issuer",
        ),
        (
            base("issuer = \"https://op.example\"", &session),
            "oidc.client_id",
        ),
        (base(ok, ""), "session.secret"),
        (
            base(&format!("{ok}\nscopes = [\"email\"]"), &session),
            "oidc.scopes",
        ),
        (
            base(&format!("{ok}\nid_token_algs = [\"none\"]"), &session),
            "oidc.id_token_algs",
        ),
        (
            base(&format!("{ok}\nid_token_algs = [\"PS256\"]"), &session),
            "oidc.id_token_algs",
        ),
        (
            base(
                "issuer = \"https://op.example\"\nclient_id = \"c\"\nid_token_algs = [\"HS256\"]",
                &session,
            ),
            "oidc.id_token_algs",
        ),
        (
            base(
                "issuer = \"https://op.example\"\nclient_id = \"c\"\npkce = false",
                &session,
            ),
            "oidc.pkce",
        ),
        (
            base(&format!("{ok}\nbearer = \"maybe\""), &session),
            "oidc.bearer",
        ),
        (
            base(
                "issuer = \"https://op.example\"\nclient_id = \"c\"\ntoken_endpoint_auth_method = \"client_secret_post\"",
                &session,
            ),
            "oidc.token_endpoint_auth_method",
        ),
    ];
    for (toml, key) in cases {
        let err = portcullis::config::Config::from_toml(
            &toml,
            std::path::Path::new("."),
            &std::collections::HashMap::<String, String>::new(),
            portcullis::config::LoadOptions::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("accepted: {toml}"))
        .to_string();
        assert!(err.contains(key), "{key}: {err}");
        assert!(err.contains("fix"), "{key}: names no fix: {err}");
    }
}

// === several replicas ===

/// With `[store]`, the refresh grant is single-flight across replicas too:
/// 48 requests on one expired session spread over three gateways, against a
/// provider that revokes the whole grant when a rotated refresh token is
/// reused, make one grant call and sign nobody out. The replicas that did
/// not call verify the shared ID token and fetch userinfo themselves.
#[tokio::test]
async fn refresh_is_shared_across_replicas_with_a_store() {
    let Some(op) = op(&[("OP_ROTATE", "1")]).await else {
        return;
    };
    let Some(redis) = Redis::start().await else {
        return;
    };
    let store = format!("[store]\nredis_url = \"{}\"\n{ROUTES}", redis.url());
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(OidcGateway::spawn(op.clone(), BASIC, &store).await);
    }
    let mut b = signed_in(&gws[0], "alice", "/home").await;
    expire_session(&mut b);
    let cookie = b.cookie_header(&url::Url::parse("http://gw.test/").unwrap());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let answers = join_all((0..48).map(|i| {
        client
            .get(format!("http://{}/admin/x", gws[i % 3].handle.addr))
            .header("host", "gw.test")
            .header("cookie", &cookie)
            .send()
    }))
    .await;
    for r in answers {
        assert_eq!(r.unwrap().status(), 200, "nobody is signed out, roles kept");
    }
    assert_eq!(
        op.count("/token refresh_token").await,
        1,
        "one grant for three replicas"
    );
    for gw in &gws {
        assert_eq!(header(&gw.upstream.last(), "x-auth-user-id"), Some("alice"));
        assert_eq!(
            header(&gw.upstream.last(), "x-auth-roles"),
            Some("admin,staff")
        );
    }
}

/// A signed-out session's cookie, replayed before it would have expired, is
/// refused (the logout is remembered), here and on another replica.
#[tokio::test]
async fn a_replayed_cookie_after_logout_is_refused_on_every_replica() {
    let Some(op) = op(&[]).await else { return };
    let Some(redis) = Redis::start().await else {
        return;
    };
    let store = format!("[store]\nredis_url = \"{}\"\n{ROUTES}", redis.url());
    let a = OidcGateway::spawn(op.clone(), BASIC, &store).await;
    let other = OidcGateway::spawn(op.clone(), BASIC, &store).await;
    let mut b = signed_in(&a, "alice", "/home").await;
    let old = b.gateway_cookies();
    let r = b
        .send(
            Method::POST,
            "http://gw.test/_auth/logout",
            None,
            &[("origin", "http://gw.test")],
        )
        .await;
    assert_eq!(r.status, 302);
    for gw in [&a, &other] {
        let mut replay = gw.browser();
        replay.set_gateway_cookies(old.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let r = replay
                .send(Method::GET, "http://gw.test/api/x", None, &[])
                .await;
            if r.status == 401 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "old cookie still accepted: {}",
                r.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Sign-in starts count against the per-IP limit on every replica when
/// they share a store (the Descope mode's key), not per replica.
#[tokio::test]
async fn sign_in_starts_share_the_ip_limit_across_replicas() {
    let Some(op) = op(&[]).await else { return };
    let Some(redis) = Redis::start().await else {
        return;
    };
    let extra = format!(
        "[store]\nredis_url = \"{}\"\n[login]\nip_rate_limit = \"3/min\"\n{ROUTES}",
        redis.url()
    );
    let a = OidcGateway::spawn(op.clone(), BASIC, &extra).await;
    let b = OidcGateway::spawn(op.clone(), BASIC, &extra).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let start = |gw: &OidcGateway| {
        client
            .get(format!(
                "http://{}/_auth/login?return_to=/home",
                gw.handle.addr
            ))
            .header("host", "gw.test")
            .send()
    };
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b] {
        statuses.push(start(gw).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [302, 302, 302, 429], "three starts in all");
}

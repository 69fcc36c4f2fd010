use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/get-only/**"
methods = ["GET"]
[[routes]]
path = "/**"
"#;

async fn gw(mode: &str, callers: &str) -> TestGateway {
    TestGateway::spawn(&format!(
        "[forward_auth]\nmode = \"{mode}\"\ntrusted_callers = {callers}\n{ROUTES}"
    ))
    .await
}

#[tokio::test]
async fn nginx_mode_answers_only_200_401_403() {
    let gw = gw("nginx", "[\"127.0.0.1/32\"]").await;
    let admin = gw.session(
        "U-admin",
        json!({"roles": ["admin"], "email": "a@example.com"}),
    );
    let user = gw.session("U-user", json!({"roles": []}));
    let verify = |uri: Option<&str>, token: Option<&str>, method: Option<&str>| {
        let mut r = gw.get("/_auth/verify");
        if let Some(u) = uri {
            r = r.header("x-original-uri", u);
        }
        if let Some(m) = method {
            r = r.header("x-original-method", m);
        }
        if let Some(t) = token {
            r = r.header("cookie", format!("DS={t}"));
        }
        r.send()
    };
    let ok = verify(Some("/admin/x?y=1"), Some(&admin), None)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-user-id"], "U-admin");
    assert_eq!(ok.headers()["x-auth-email"], "a@example.com");
    // Every identity header is named, empty when the claim is absent.
    assert_eq!(ok.headers()["x-auth-name"], "");
    assert_eq!(ok.headers()["x-auth-tenant"], "");
    assert_eq!(
        verify(Some("/admin/x"), Some(&user), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        verify(Some("/admin/x"), None, None).await.unwrap().status(),
        401
    );
    // The app gets the raw URI: a path with dot segments is refused (403,
    // nginx's refusal), never judged on its resolved form.
    assert_eq!(
        verify(Some("/public/../admin/x"), None, None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        verify(Some("/public/x"), None, None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        verify(None, Some(&admin), None).await.unwrap().status(),
        403,
        "missing URI is never 200"
    );
    assert_eq!(
        verify(Some("/a%00"), Some(&admin), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        verify(Some("/get-only/x"), Some(&admin), Some("DELETE"))
            .await
            .unwrap()
            .status(),
        403
    );
    // Only the nginx request shape is read: Traefik headers are ignored.
    let r = gw
        .get("/_auth/verify")
        .header("x-forwarded-uri", "/public/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn traefik_mode_reads_forwarded_headers_and_redirects_browsers() {
    let gw = gw("traefik", "[\"127.0.0.1/32\"]").await;
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let base = || {
        gw.get("/_auth/verify")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example")
    };
    let r = base()
        .header("x-forwarded-uri", "/admin/a")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-user-id"], "U-admin");
    let r = base()
        .header("x-forwarded-uri", "/admin/a?b=c")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "http://gw.test/_auth/login?return_to=%2Fadmin%2Fa%3Fb%3Dc"
    );
    let r = base()
        .header("x-forwarded-uri", "/admin/a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = base().bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 400, "missing URI");
    let r = base()
        .header("x-forwarded-uri", "/a/%2e%2e/%2e%2e/x")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a URI climbing above root");
    let r = gw
        .get("/_auth/verify")
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-uri", "/get-only/x")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Two answers to "what was the request?" are no answer.
    let r = base()
        .header("x-forwarded-uri", "/public/x")
        .header("x-forwarded-uri", "/admin/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn envoy_mode_uses_the_path_after_verify_and_any_method() {
    let gw = gw("envoy", "[\"127.0.0.1/32\"]").await;
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let user = gw.session("U-user", json!({}));
    let r = gw
        .client
        .post(gw.url("/_auth/verify/admin/x?q=1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-auth-user-id"], "U-admin");
    assert_eq!(
        gw.client
            .delete(gw.url("/_auth/verify/admin/x"))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        gw.get("/_auth/verify/public/x")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.get("/_auth/verify")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    // The root path is judged like any other (`/**` here: any session).
    let root = |token: Option<&str>| {
        let mut r = gw.get("/_auth/verify/");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(root(Some(&user)).await.unwrap().status(), 200);
    assert_eq!(root(None).await.unwrap().status(), 401);
    let (status, _) = gw
        .raw(&raw_get(
            "/_auth/verify/?a=1",
            &format!("Authorization: Bearer {user}\r\n"),
        ))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn untrusted_callers_are_refused() {
    let gw = gw("nginx", "[\"10.0.0.0/8\"]").await;
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let r = gw
        .get("/_auth/verify")
        .header("x-original-uri", "/public/x")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn verify_answers_name_the_token_and_assertion_headers_too() {
    let gw = TestGateway::spawn(&format!(
        "[forward_auth]\nmode = \"nginx\"\n[identity]\nforward_token = \"header:X-Session-Jwt\"\n[identity.assertion]\nenabled = true\n{ROUTES}"
    ))
    .await;
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let r = gw
        .get("/_auth/verify")
        .header("x-original-uri", "/admin/x")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Present (so an ingress overwrites a client's copy) and empty (no token leaves in answers).
    assert_eq!(r.headers()["x-session-jwt"], "");
    assert_eq!(r.headers()["x-portcullis-assertion"], "");
}

/// The README's Traefik snippet is the configuration this test runs: its
/// `authResponseHeaders` name every identity header the gateway answers
/// (a header missing there would let a client's own value reach the app),
/// `trustForwardHeader` is off, and the request Traefik sends with it
/// (`X-Forwarded-Method/-Host/-Uri`) is decided as the snippet promises.
#[tokio::test]
async fn the_readme_traefik_snippet_lists_every_identity_header() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let yaml = readme
        .split("```yaml")
        .find(|b| b.contains("forwardAuth:"))
        .and_then(|b| b.split("```").next())
        .expect("README has the Traefik snippet");
    assert!(yaml.contains("trustForwardHeader: false"), "{yaml}");
    let address = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("address:"))
        .expect("address")
        .trim()
        .trim_matches('"');
    assert!(address.ends_with("/_auth/verify"), "{address}");
    let listed: Vec<String> = yaml
        .split("authResponseHeaders:")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .trim_start_matches([' ', '['])
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let gw = gw("traefik", "[\"127.0.0.1/32\"]").await;
    let admin = gw.session(
        "U-admin",
        json!({"roles": ["admin"], "email": "a@example.com", "name": "A",
               "tenants": {"T1": {"roles": ["r"], "permissions": ["p"]}}}),
    );
    let r = gw
        .get("/_auth/verify")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "gw.test")
        .header("x-forwarded-uri", "/admin/a?b=c")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answered: Vec<String> = r
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("x-auth-"))
        .collect();
    assert!(answered.len() >= 5, "{answered:?}");
    for h in &answered {
        assert!(
            listed.contains(h),
            "the README's Traefik snippet does not list {h}: {listed:?}"
        );
    }
}

/// No hosted endpoint is reached through dot or empty segments, resolved
/// into it or out of it: `/_auth/verify/../me` is Envoy asking about
/// `/../me`, not the gateway's `/me` (whose 200 would allow that request).
#[tokio::test]
async fn dot_segments_at_hosted_endpoints_are_refused_not_resolved() {
    let gw = gw("envoy", "[\"127.0.0.1/32\"]").await;
    let user = gw.session("U-user", json!({}));
    let auth = format!("Authorization: Bearer {user}\r\n");
    for target in [
        "/_auth/verify/../me",
        "/_auth/verify/%2e%2e/me",
        "/_auth/verify/.%2E/me",
        "/_auth/verify/../../public/x",
        "/_auth/verify/./public/x",
        "/_auth/verify//public/x",
        "/_auth/./me",
        "/_auth//me",
        "/public/../_auth/me",
    ] {
        let (status, text) = gw.raw(&raw_get(target, &auth)).await;
        assert_eq!(status, 400, "{target}: {text}");
    }
    // The same requests, plainly spelled, are answered.
    let (status, _) = gw.raw(&raw_get("/_auth/me", &auth)).await;
    assert_eq!(status, 200);
    let (status, _) = gw.raw(&raw_get("/_auth/verify/public/x", "")).await;
    assert_eq!(status, 200);
    // nginx understands only 200, 401 and 403: the refusal is a 403.
    let gw = gw_nginx().await;
    let (status, text) = gw.raw(&raw_get("/_auth/verify/../me", &auth)).await;
    assert_eq!(status, 403, "{text}");
}

async fn gw_nginx() -> TestGateway {
    gw("nginx", "[\"127.0.0.1/32\"]").await
}

/// nginx mode answers an oversized head with 403 too (a 431 would be
/// nginx's 500).
#[tokio::test]
async fn nginx_mode_refuses_an_oversized_head_with_403() {
    let gw = TestGateway::spawn(&format!(
        "[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{ROUTES}"
    ))
    .await;
    let big = "a".repeat(40 * 1024);
    let r = gw
        .get("/_auth/verify")
        .header("x-original-uri", "/public/x")
        .header("x-filler", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The proxy path keeps its 431.
    let r = gw
        .get("/public/x")
        .header("x-filler", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
}

const HOST_ROUTES: &str = r#"
[[routes]]
host = "admin.test"
path = "/**"
roles = ["admin"]
[[routes]]
path = "/**"
access = "public"
"#;

/// Envoy over HTTP/2 names the host in `:authority` (no `Host` header):
/// host routes judge by it.
#[tokio::test]
async fn envoy_over_http2_judges_host_routes_by_the_authority() {
    let gw = TestGateway::spawn(&format!(
        "[forward_auth]\nmode = \"envoy\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{HOST_ROUTES}"
    ))
    .await;
    let addr = gw.handle.addr;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve("admin.test", addr)
        .resolve("app.test", addr)
        .no_proxy()
        .build()
        .unwrap();
    let port = addr.port();
    let r = h2
        .get(format!("http://admin.test:{port}/_auth/verify/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 401, "admin.test needs a session");
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let r = h2
        .get(format!("http://admin.test:{port}/_auth/verify/x"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h2
        .get(format!("http://app.test:{port}/_auth/verify/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "other hosts are public");
}

/// A route's `unauthenticated = "401"` holds in Traefik mode too: no
/// redirect for a browser navigation.
#[tokio::test]
async fn traefik_mode_follows_the_routes_unauthenticated_setting() {
    let gw = TestGateway::spawn(
        "[forward_auth]\nmode = \"traefik\"\ntrusted_callers = [\"127.0.0.1/32\"]\n\
         [[routes]]\npath = \"/api/**\"\nunauthenticated = \"401\"\n\
         [[routes]]\npath = \"/**\"\n",
    )
    .await;
    let nav = |uri: &'static str| {
        gw.get("/_auth/verify")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.example")
            .header("x-forwarded-uri", uri)
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .send()
    };
    assert_eq!(nav("/api/x").await.unwrap().status(), 401);
    assert_eq!(nav("/page").await.unwrap().status(), 302);
}

/// `X-Original-URL` / `X-Rewrite-URL` reach the app with the original
/// request, where IIS-style rewriting serves the path they name: refused in
/// every spelling, except ingress-nginx's own `X-Original-URL` naming the
/// very request judged.
#[tokio::test]
async fn path_override_headers_are_refused_in_forward_auth() {
    let gw = gw("traefik", "[\"127.0.0.1/32\"]").await;
    let ask = |name: &'static str| {
        gw.get("/_auth/verify")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-host", "app.example")
            .header("x-forwarded-uri", "/public/x")
            .header(name, "/admin/x")
            .send()
    };
    for name in ["x-original-url", "x-rewrite-url", "X_Original_URL"] {
        assert_eq!(ask(name).await.unwrap().status(), 400, "{name}");
    }
    // A login page asked about with an override is not waved through.
    let r = gw
        .get("/_auth/verify")
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/_auth/login")
        .header("x-rewrite-url", "/admin/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let gw = gw_nginx().await;
    let ask = |uri: &'static str, url: &'static str| {
        gw.get("/_auth/verify")
            .header("x-original-uri", uri)
            .header("x-original-url", url)
            .send()
    };
    let r = ask("/public/x?a=1", "https://app.example/public/x?a=1")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "ingress-nginx's own header");
    for url in ["/admin/x", "https://app.example/admin/x", "/public/x?a=1"] {
        let r = ask("/public/x?a=1", url).await.unwrap();
        assert_eq!(r.status(), 403, "{url}");
    }
}

/// Only the gateway's own endpoints under the prefix are waved through: a
/// path there that is no endpoint may be one the ingress sends to the app,
/// so it is judged by the route rules like any other.
#[tokio::test]
async fn only_real_hosted_endpoints_are_exempt_from_the_route_rules() {
    let gw = gw("nginx", "[\"127.0.0.1/32\"]").await;
    let verify = |uri: &'static str| {
        gw.get("/_auth/verify")
            .header("x-original-uri", uri)
            .header("x-original-method", "GET")
            .send()
    };
    for uri in [
        "/_auth/login?return_to=%2F",
        "/_auth/me",
        "/_auth/logout",
        "/_auth/oauth/callback?code=x",
        "/_auth/magiclink/verify?t=x",
    ] {
        assert_eq!(verify(uri).await.unwrap().status(), 200, "{uri}");
    }
    for uri in [
        "/_auth",
        "/_auth/",
        "/_auth/admin",
        "/_auth/uploads/x.png",
        "/_AUTH/me-too",
    ] {
        assert_eq!(verify(uri).await.unwrap().status(), 401, "{uri}");
    }
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn a_forward_auth_only_gateway_needs_no_upstream() {
    // An ingress's auth service proxies nothing: no [upstreams] at all.
    let gw = TestGateway::spawn_editing(
        &format!(
            "[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{ROUTES}"
        ),
        |toml| {
            let start = toml
                .find("[upstreams.default]")
                .expect("base has an upstream");
            let end = toml[start..].find("\n\n").map_or(toml.len(), |e| start + e);
            let toml = format!("{}{}", &toml[..start], &toml[end..]);
            assert!(!toml.contains("[upstreams"), "{toml}");
            toml
        },
    )
    .await;
    let user = gw.session("U-user", json!({"roles": []}));
    let ask = |uri: &'static str, cookie: Option<String>| {
        let mut r = gw
            .get("/_auth/verify")
            .header("x-original-uri", uri)
            .header("x-original-method", "GET");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    assert_eq!(ask("/public/x", None).await.unwrap().status(), 200);
    assert_eq!(ask("/other", None).await.unwrap().status(), 401);
    let ok = ask("/other", Some(format!("DS={user}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-user-id"], "U-user");
    // A request it would proxy has nowhere to go: a clean 502.
    let before = gw.upstream.count();
    let resp = gw.get("/public/x").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(gw.upstream.count(), before);
}

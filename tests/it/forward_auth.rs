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

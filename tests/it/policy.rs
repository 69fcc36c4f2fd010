use serde_json::{Value, json};

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/roles/**"
roles = ["admin", "dev"]
[[routes]]
path = "/anyroles/**"
any_roles = ["admin", "ops"]
[[routes]]
path = "/perms/**"
permissions = ["read", "write"]
[[routes]]
path = "/anyperms/**"
any_permissions = ["read", "write"]
[[routes]]
path = "/t/{tenant}/**"
tenant = "{tenant}"
tenant_roles = ["owner"]
[[routes]]
path = "/tm/{tenant}/**"
tenant = "{tenant}"
[[routes]]
path = "/th/**"
tenant = "header:X-Tenant-Id"
any_tenant_permissions = ["billing", "audit"]
[[routes]]
path = "/tdct/**"
tenant = "dct"
[[routes]]
path = "/tlit/**"
tenant = "T-lit"
tenant_permissions = ["p1"]
[[routes]]
path = "/anytr/{tenant}/**"
tenant = "{tenant}"
any_tenant_roles = ["member", "owner"]
[[routes]]
path = "/claims/**"
claims = { email_verified = true, department = ["eng", "ops"] }
[[routes]]
path = "/mfa/**"
require_mfa = true
[[routes]]
path = "/methods/**"
methods = ["GET", "POST"]
[[routes]]
path = "/opt/**"
access = "optional"
[[routes]]
path = "/pub/**"
access = "public"
[[routes]]
path = "/deny/**"
access = "deny"
[[routes]]
path = "/api/**"
unauthenticated = "401"
[[routes]]
path = "/app/**"
"#;

struct Case {
    path: &'static str,
    claims: Value,
    header: Option<(&'static str, &'static str)>,
    status: u16,
}

fn c(path: &'static str, claims: Value, status: u16) -> Case {
    Case {
        path,
        claims,
        header: None,
        status,
    }
}

#[tokio::test]
async fn every_rule_type_allows_and_denies() {
    let gw = TestGateway::spawn(ROUTES).await;
    let cases = vec![
        c("/roles/x", json!({"roles": ["admin", "dev"]}), 200),
        c("/roles/x", json!({"roles": ["admin"]}), 403),
        c("/roles/x", json!({"roles": "admin dev"}), 403),
        c("/anyroles/x", json!({"roles": ["ops"]}), 200),
        c("/anyroles/x", json!({"roles": ["dev"]}), 403),
        c(
            "/perms/x",
            json!({"permissions": ["read", "write", "x"]}),
            200,
        ),
        c("/perms/x", json!({"permissions": ["read"]}), 403),
        c("/anyperms/x", json!({"permissions": ["write"]}), 200),
        c("/anyperms/x", json!({"permissions": []}), 403),
        c(
            "/t/T1/page",
            json!({"tenants": {"T1": {"roles": ["owner"]}}}),
            200,
        ),
        c(
            "/t/T1/page",
            json!({"tenants": {"T1": {"roles": ["member"]}}}),
            403,
        ),
        c(
            "/t/T1/page",
            json!({"tenants": {"T2": {"roles": ["owner"]}}}),
            403,
        ),
        // dct grants membership but no tenant roles.
        c("/t/T1/page", json!({"dct": "T1", "roles": ["owner"]}), 403),
        c("/tm/T1", json!({"tenants": {"T1": {}}}), 200),
        c("/tm/T1", json!({"dct": "T1"}), 200),
        c("/tm/T1", json!({"tenants": {"T2": {}}}), 403),
        Case {
            path: "/th/x",
            claims: json!({"tenants": {"T9": {"permissions": ["audit"]}}}),
            header: Some(("x-tenant-id", "T9")),
            status: 200,
        },
        Case {
            path: "/th/x",
            claims: json!({"tenants": {"T9": {"permissions": ["audit"]}}}),
            header: Some(("x-tenant-id", "T8")),
            status: 403,
        },
        c(
            "/th/x",
            json!({"tenants": {"T9": {"permissions": ["audit"]}}}),
            403,
        ),
        c("/tdct/x", json!({"dct": "T5", "tenants": {"T5": {}}}), 200),
        c("/tdct/x", json!({"tenants": {"T5": {}}}), 403),
        c(
            "/tlit/x",
            json!({"tenants": {"T-lit": {"permissions": ["p1"]}}}),
            200,
        ),
        c(
            "/tlit/x",
            json!({"tenants": {"T-lit": {"permissions": ["p2"]}}}),
            403,
        ),
        c(
            "/anytr/T3/x",
            json!({"tenants": {"T3": {"roles": ["member"]}}}),
            200,
        ),
        c(
            "/anytr/T3/x",
            json!({"tenants": {"T3": {"roles": ["guest"]}}}),
            403,
        ),
        c(
            "/claims/x",
            json!({"email_verified": true, "department": "ops"}),
            200,
        ),
        c(
            "/claims/x",
            json!({"email_verified": true, "department": ["hr", "eng"]}),
            200,
        ),
        c(
            "/claims/x",
            json!({"email_verified": false, "department": "ops"}),
            403,
        ),
        c(
            "/claims/x",
            json!({"email_verified": true, "department": "hr"}),
            403,
        ),
        c("/claims/x", json!({"email_verified": true}), 403),
        c("/mfa/x", json!({"amr": ["pwd", "otp"]}), 200),
        c("/mfa/x", json!({"amr": ["mfa"]}), 200),
        c("/mfa/x", json!({"amr": ["pwd", "pwd"]}), 403),
        c("/mfa/x", json!({}), 403),
    ];
    for (i, case) in cases.iter().enumerate() {
        let token = gw.session("U-rules", case.claims.clone());
        let mut req = gw.get(case.path).bearer_auth(&token);
        if let Some((k, v)) = case.header {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            case.status,
            "case {i}: {} with {}",
            case.path,
            case.claims
        );
    }
}

#[tokio::test]
async fn denied_answers_are_json_for_apis_and_html_for_browsers() {
    let gw = TestGateway::spawn(ROUTES).await;
    let token = gw.session("U1", json!({"roles": []}));
    let api = gw.get("/roles/x").bearer_auth(&token).send().await.unwrap();
    assert_eq!(api.status(), 403);
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("json")
    );
    let browser = gw
        .get("/roles/x")
        .bearer_auth(&token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 403);
    assert!(
        browser.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("text/html")
    );
    assert_eq!(
        gw.upstream.count(),
        0,
        "nothing denied reaches the upstream"
    );
}

#[tokio::test]
async fn methods_405_never_fall_through_and_head_counts_as_get() {
    let gw = TestGateway::spawn(&format!(
        "{ROUTES}\n[[routes]]\npath = \"/**\"\naccess = \"public\"\n"
    ))
    .await;
    let token = gw.session("U1", json!({}));
    assert_eq!(
        gw.get("/methods/a")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.client
            .head(gw.url("/methods/a"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.client
            .post(gw.url("/methods/a"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let del = gw
        .client
        .delete(gw.url("/methods/a"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        del.status(),
        405,
        "the later public catch-all must not take it"
    );
}

#[tokio::test]
async fn unauthenticated_browser_redirects_api_gets_401() {
    let gw = TestGateway::spawn(ROUTES).await;
    let r = gw
        .get("/app/page?x=1&y=2")
        .header("accept", "text/html,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(loc, "/_auth/login?return_to=%2Fapp%2Fpage%3Fx%3D1%26y%3D2");
    let r = gw.get("/app/page").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    // unauthenticated = "401" wins over a browser navigation.
    let r = gw
        .get("/api/x")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A POST is never redirected.
    let r = gw
        .client
        .post(gw.url("/app/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn optional_public_deny_and_default_policy() {
    let gw = TestGateway::spawn(ROUTES).await;
    // optional, anonymous: forwarded without identity.
    let r = gw
        .get("/opt/x")
        .header("x-auth-user-id", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!gw.upstream.last().headers.contains_key("x-auth-user-id"));
    // optional with a session: identity forwarded.
    let token = gw.session("U-opt", json!({}));
    assert_eq!(
        gw.get("/opt/x")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(gw.upstream.last().headers["x-auth-user-id"], "U-opt");
    // optional with a garbage session: anonymous, not an error.
    assert_eq!(
        gw.get("/opt/x")
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!gw.upstream.last().headers.contains_key("x-auth-user-id"));
    // public never validates.
    assert_eq!(
        gw.get("/pub/x")
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // deny.
    assert_eq!(
        gw.get("/deny/x")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // unmatched under default deny.
    assert_eq!(
        gw.get("/elsewhere")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let gw2 = TestGateway::spawn(
        "[policy]\ndefault = \"authenticated\"\n[[routes]]\npath = \"/x\"\naccess = \"deny\"\n",
    )
    .await;
    assert_eq!(gw2.get("/elsewhere").send().await.unwrap().status(), 401);
    let token = gw2.session("U2", json!({}));
    assert_eq!(
        gw2.get("/elsewhere")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(gw2.upstream.last().headers["x-auth-user-id"], "U2");
}

#[tokio::test]
async fn session_from_cookie_and_bearer_switch() {
    let gw =
        TestGateway::spawn("[session]\naccept_bearer = false\n[[routes]]\npath = \"/**\"\n").await;
    let token = gw.session("U-cookie", json!({}));
    assert_eq!(
        gw.get("/a")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = gw
        .get("/a")
        .header("cookie", format!("other=1; DS={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user-id"], "U-cookie");
    assert_eq!(
        seen.headers["cookie"], "other=1",
        "the session cookie never reaches the app"
    );
}

#[tokio::test]
async fn host_routes_and_case_insensitive_paths() {
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/**\"\nhost = \"admin.example.com\"\nroles = [\"admin\"]\n[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
    )
    .await;
    let r = gw
        .get("/x")
        .header("host", "ADMIN.example.com:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        gw.get("/x")
            .header("host", "www.example.com")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let gw = TestGateway::spawn_editing("[[routes]]\npath = \"/Admin/**\"\nroles = [\"admin\"]\n[[routes]]\npath = \"/**\"\naccess = \"public\"\n", |toml| toml.replace("public_url = \"http://gw.test\"", "public_url = \"http://gw.test\"\ncase_insensitive_paths = true")).await;
    assert_eq!(gw.get("/aDmIn/secret").send().await.unwrap().status(), 401);
    assert_eq!(gw.get("/ADMIN").send().await.unwrap().status(), 401);
    assert_eq!(gw.get("/other").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn cors_preflight_goes_upstream_only_on_allow_preflight_routes() {
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/api/**\"\nmethods = [\"GET\", \"POST\"]\nallow_preflight = true\nunauthenticated = \"401\"\n\
         [[routes]]\npath = \"/other/**\"\n",
    )
    .await;
    let preflight = |path: &str| {
        gw.client
            .request(reqwest::Method::OPTIONS, gw.url(path))
            .header("origin", "https://spa.example")
            .header("access-control-request-method", "POST")
            .header("x-auth-user-id", "spoof")
            .send()
    };
    let r = preflight("/api/items").await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.method, "OPTIONS");
    assert!(!seen.headers.contains_key("x-auth-user-id"));
    // A plain OPTIONS (not a preflight) is still subject to `methods`.
    let r = gw
        .client
        .request(reqwest::Method::OPTIONS, gw.url("/api/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Without allow_preflight a preflight needs a session like anything else.
    assert_eq!(preflight("/other/x").await.unwrap().status(), 401);
    assert_eq!(gw.upstream.count(), 1);
}

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[identity]
strip_headers = ["X-Legacy-User"]
[identity.headers]
"X-Employee-Id" = "employee_id"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/t/{tenant}/**"
tenant = "{tenant}"
[[routes]]
path = "/**"
"#;

const SPOOFS: &[&str] = &[
    "X-Auth-User-Id: evil",
    "x-auth-user-id: evil2",
    "X_Auth_User_Id: evil3",
    "x_AUTH_roles: admin",
    "X-Auth-Roles: admin",
    "X-Auth-Tenant: T-evil",
    "X-Auth-Request-User: evil",
    "X-Auth-Request-Email: evil@example.com",
    "X-Forwarded-User: evil",
    "X_Forwarded_Email: evil@example.com",
    "X-Forwarded-Groups: admin",
    "X-Forwarded-Preferred-Username: evil",
    "X-Forwarded-Access-Token: evil",
    "Gap-Auth: evil",
    "Remote-User: evil",
    "Remote_Groups: admin",
    "Remote-Email: evil@example.com",
    "Remote-Name: evil",
    "X-Remote-User: evil",
    "X-WEBAUTH-USER: evil",
    "X-Pomerium-Claim-Email: evil",
    "X-Legacy-User: evil",
    "x_legacy_user: evil",
    "X-Employee-Id: 1",
    "X_Employee_Id: 2",
];

fn is_identity(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    n.starts_with("x-auth")
        || n.starts_with("remote-")
        || n.starts_with("x-pomerium")
        || n.starts_with("x-forwarded-user")
        || n.starts_with("x-forwarded-email")
        || n.starts_with("x-forwarded-groups")
        || n.starts_with("x-forwarded-preferred")
        || n.starts_with("x-forwarded-access")
        || n == "gap-auth"
        || n == "x-remote-user"
        || n == "x-webauth-user"
        || n == "x-legacy-user"
        || n == "x-employee-id"
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app_in_any_spelling() {
    let gw = TestGateway::spawn(ROUTES).await;
    let token = gw.session(
        "U-real",
        json!({"email": "real@example.com", "roles": ["viewer"], "employee_id": "E7"}),
    );
    let spoof: String = SPOOFS
        .iter()
        .map(|h| format!("{h}\r\n"))
        .collect::<String>()
        + &SPOOFS[..3]
            .iter()
            .map(|h| format!("{h}\r\n"))
            .collect::<String>();
    // Public route: every spoof stripped, nothing injected.
    let (status, _) = gw.raw(&raw_get("/public/x", &spoof)).await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    let leaked: Vec<_> = seen
        .headers
        .keys()
        .filter(|k| is_identity(k.as_str()))
        .collect();
    assert!(leaked.is_empty(), "leaked on a public route: {leaked:?}");
    // Protected route: spoofs stripped, the verified identity injected once.
    let (status, _) = gw
        .raw(&raw_get(
            "/app",
            &format!("{spoof}Authorization: Bearer {token}\r\n"),
        ))
        .await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    assert_eq!(
        seen.headers
            .get_all("x-auth-user-id")
            .iter()
            .collect::<Vec<_>>(),
        vec!["U-real"]
    );
    assert_eq!(seen.headers["x-auth-roles"], "viewer");
    assert_eq!(seen.headers["x-employee-id"], "E7");
    assert!(!seen.headers.contains_key("x-auth-tenant"));
    let names: Vec<String> = seen
        .headers
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    for n in &names {
        if is_identity(n) {
            assert!(
                [
                    "x-auth-user-id",
                    "x-auth-email",
                    "x-auth-roles",
                    "x-auth-permissions",
                    "x-auth-tenants",
                    "x-employee-id"
                ]
                .contains(&n.as_str()),
                "unexpected identity header {n}"
            );
        }
    }
    assert!(
        !seen.headers.contains_key("authorization"),
        "the consumed bearer token is removed"
    );
}

#[tokio::test]
async fn portcullis_preset_with_tenant_route() {
    let gw = TestGateway::spawn(ROUTES).await;
    let token = gw.session(
        "U-t",
        json!({"email": "t@example.com", "name": "Tee", "roles": ["r1", "r2"], "permissions": ["p1"],
               "tenants": {"T1": {"roles": ["owner"], "permissions": ["bill"]}, "T2": {}}}),
    );
    assert_eq!(
        gw.get("/t/T1/x")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let h = gw.upstream.last().headers;
    assert_eq!(h["x-auth-user-id"], "U-t");
    assert_eq!(h["x-auth-email"], "t@example.com");
    assert_eq!(h["x-auth-name"], "Tee");
    assert_eq!(h["x-auth-roles"], "r1,r2");
    assert_eq!(h["x-auth-permissions"], "p1");
    assert_eq!(h["x-auth-tenants"], "T1,T2");
    assert_eq!(h["x-auth-tenant"], "T1");
    assert_eq!(h["x-auth-tenant-roles"], "owner");
    assert_eq!(h["x-auth-tenant-permissions"], "bill");
}

#[tokio::test]
async fn oauth2_proxy_and_authelia_presets() {
    for (preset, checks) in [
        (
            "oauth2-proxy",
            vec![
                ("x-forwarded-user", "U-p"),
                ("x-forwarded-email", "p@example.com"),
                ("x-forwarded-groups", "a,b"),
                ("x-forwarded-preferred-username", "Pat"),
            ],
        ),
        (
            "authelia",
            vec![
                ("remote-user", "U-p"),
                ("remote-email", "p@example.com"),
                ("remote-groups", "a,b"),
                ("remote-name", "Pat"),
            ],
        ),
    ] {
        let gw = TestGateway::spawn(&format!(
            "[identity]\npreset = \"{preset}\"\n[[routes]]\npath = \"/**\"\n"
        ))
        .await;
        let token = gw.session(
            "U-p",
            json!({"email": "p@example.com", "name": "Pat", "roles": ["a", "b"]}),
        );
        let (status, _) = gw.raw(&raw_get("/x", &format!("Authorization: Bearer {token}\r\nX-Forwarded-User: evil\r\nRemote-User: evil\r\nX-Auth-User-Id: evil\r\n"))).await;
        assert_eq!(status, 200);
        let h = gw.upstream.last().headers;
        for (k, v) in checks {
            assert_eq!(
                h.get_all(k).iter().collect::<Vec<_>>(),
                vec![v],
                "{preset} {k}"
            );
        }
        assert!(!h.contains_key("x-auth-user-id"), "{preset}");
    }
}

#[tokio::test]
async fn forward_token_modes() {
    let gw = TestGateway::spawn(
        "[identity]\nforward_token = \"authorization\"\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    let token = gw.session("U-f", json!({}));
    gw.get("/x")
        .header("cookie", format!("DS={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        gw.upstream.last().headers["authorization"],
        format!("Bearer {token}")
    );

    let gw = TestGateway::spawn(
        "[identity]\nforward_token = \"header:X-Session-Jwt\"\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    let token = gw.session("U-f", json!({}));
    gw.get("/x")
        .bearer_auth(&token)
        .header("x-session-jwt", "spoof")
        .send()
        .await
        .unwrap();
    let h = gw.upstream.last().headers;
    assert_eq!(
        h.get_all("x-session-jwt").iter().collect::<Vec<_>>(),
        vec![token.as_str()]
    );
    assert!(!h.contains_key("authorization"));

    // Default: no token reaches the app; other cookies do.
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let token = gw.session("U-f", json!({}));
    gw.get("/x")
        .header("cookie", format!("a=1; DS={token}; b=2"))
        .send()
        .await
        .unwrap();
    let h = gw.upstream.last().headers;
    assert_eq!(h["cookie"], "a=1; b=2");
    assert!(!h.contains_key("authorization"));
}

#[tokio::test]
async fn identity_assertion_is_signed_and_verifiable() {
    let gw =
        TestGateway::spawn("[identity.assertion]\nenabled = true\n[[routes]]\npath = \"/**\"\n")
            .await;
    let token = gw.session("U-a", json!({"roles": ["x"]}));
    gw.get("/x")
        .bearer_auth(&token)
        .header("x-portcullis-assertion", "spoof")
        .send()
        .await
        .unwrap();
    let assertion = gw.upstream.last().headers["x-portcullis-assertion"]
        .to_str()
        .unwrap()
        .to_string();
    let jwks: serde_json::Value = gw
        .get("/_auth/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[format!("{}/", gw.upstream.url())]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &v).unwrap();
    assert_eq!(data.claims["sub"], "U-a");
}

//! Emulator tests over real sockets (127.0.0.1:0) with reqwest.

use std::time::Duration;

use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use serde_json::{Map, Value, json};

use super::*;

const PID: &str = "P2TestProject00000000000000";
const MGMT_KEY: &str = "K2test-management-key";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

async fn spawn(key_type: KeyType) -> Emulator {
    spawn_with(EmulatorOptions {
        project_id: PID.to_owned(),
        key_type,
        management_key: Some(MGMT_KEY.to_owned()),
        seed: Some(SEED.to_owned()),
        ..EmulatorOptions::default()
    })
    .await
}

async fn spawn_with(opts: EmulatorOptions) -> Emulator {
    Emulator::spawn("127.0.0.1:0".parse().expect("valid addr"), opts)
        .await
        .expect("emulator starts")
}

const SEED: &str = r#"
[[permissions]]
name = "invoices:read"

[[roles]]
name = "admin"
permissions = ["invoices:read"]

[[roles]]
name = "member"
permissions = ["docs:read"]

[[tenants]]
id = "T-acme"
name = "Acme"
sso = true

[[users]]
login_id = "alice@example.com"
user_id = "U-alice"
name = "Alice"
roles = ["admin"]
password = "correct horse battery"
tenants = [{ id = "T-acme", roles = ["member"] }]

[[users]]
login_id = "bob@example.com"
user_id = "U-bob"
"#;

/// Verifies `token` against the JWKS the emulator serves over HTTP.
async fn verify(emu: &Emulator, token: &str) -> Map<String, Value> {
    let jwks: Value = client()
        .get(format!("{}/v2/keys/{PID}", emu.base_url()))
        .send()
        .await
        .expect("jwks reachable")
        .json()
        .await
        .expect("jwks is json");
    let header = jsonwebtoken::decode_header(token).expect("token has a header");
    let kid = header.kid.expect("token has a kid");
    let jwk_value = jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid is published")
        .clone();
    let jwk: Jwk = serde_json::from_value(jwk_value).expect("valid JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("usable JWK");
    let mut validation = Validation::new(header.alg);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .expect("token verifies against the served key")
        .claims
}

fn bearer(parts: &[&str]) -> String {
    format!("Bearer {}", parts.join(":"))
}

/// Logs alice in through the embedded-link back door and returns the body.
async fn login(emu: &Emulator, login_id: &str) -> Value {
    let c = client();
    let token = c
        .post(format!(
            "{}/v1/mgmt/user/signin/embeddedlink",
            emu.base_url()
        ))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .json(&json!({"loginId": login_id}))
        .send()
        .await
        .expect("embeddedlink reachable")
        .json::<Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("token field")
        .to_owned();
    let resp = c
        .post(format!("{}/v1/auth/magiclink/verify", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("verify reachable");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn refresh(emu: &Emulator, dsr: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/auth/refresh", emu.base_url()))
        .header("authorization", bearer(&[PID, dsr]))
        .json(&json!({}))
        .send()
        .await
        .expect("refresh reachable")
}

// === keys and tokens ===

#[tokio::test]
async fn jwks_shape_and_minted_tokens_verify_for_both_key_types() {
    for (key_type, kty, alg) in [(KeyType::Ec, "EC", "ES384"), (KeyType::Rsa, "RSA", "RS256")] {
        let emu = spawn(key_type).await;
        let jwks = emu.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], kty);
        assert_eq!(key["alg"], alg);
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        match key_type {
            KeyType::Ec => {
                assert_eq!(key["crv"], "P-384");
                assert!(key["x"].is_string() && key["y"].is_string());
            }
            KeyType::Rsa => assert!(key["n"].is_string() && key["e"].is_string()),
        }
        let v1: Value = client()
            .get(format!("{}/v1/keys/{PID}", emu.base_url()))
            .send()
            .await
            .expect("v1 keys")
            .json()
            .await
            .expect("json");
        assert_eq!(v1, jwks["keys"], "v1 serves the bare array");

        let token = emu.mint(&MintSpec {
            sub: "U-x".into(),
            ttl_secs: 60,
            claims: json!({"roles": ["r1"]})
                .as_object()
                .cloned()
                .expect("object"),
            ..MintSpec::default()
        });
        let claims = verify(&emu, &token).await;
        assert_eq!(claims["drn"], "DS");
        assert_eq!(claims["sub"], "U-x");
        assert_eq!(claims["roles"], json!(["r1"]));
        assert_eq!(claims["iss"], format!("{}/{PID}", emu.base_url()));
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_project_keys_are_an_error_body() {
    let emu = spawn(KeyType::Ec).await;
    let resp = client()
        .get(format!("{}/v2/keys/Pnope", emu.base_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(body["errorCode"].as_str().is_some_and(|c| !c.is_empty()));
    emu.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_old_key_unless_dropped() {
    let emu = spawn(KeyType::Ec).await;
    let old = emu.mint(&MintSpec {
        sub: "U1".into(),
        ttl_secs: 60,
        ..MintSpec::default()
    });
    emu.rotate_keys();
    assert_eq!(emu.jwks()["keys"].as_array().map(Vec::len), Some(2));
    verify(&emu, &old).await;
    let new = emu.mint(&MintSpec {
        sub: "U1".into(),
        ttl_secs: 60,
        ..MintSpec::default()
    });
    assert_ne!(
        jsonwebtoken::decode_header(&old).expect("h").kid,
        jsonwebtoken::decode_header(&new).expect("h").kid
    );
    emu.rotate_keys_drop_old();
    assert_eq!(emu.jwks()["keys"].as_array().map(Vec::len), Some(1));
    emu.shutdown().await;
}

#[tokio::test]
async fn login_tokens_carry_identity_claims() {
    let emu = spawn(KeyType::Ec).await;
    let body = login(&emu, "alice@example.com").await;
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["drn"], "DS");
    assert_eq!(session["sub"], "U-alice");
    assert_eq!(session["email"], "alice@example.com");
    assert_eq!(session["name"], "Alice");
    assert_eq!(session["roles"], json!(["admin"]));
    assert_eq!(session["permissions"], json!(["invoices:read"]));
    assert_eq!(
        session["tenants"],
        json!({"T-acme": {"roles": ["member"], "permissions": ["docs:read"]}})
    );
    let refresh = verify(&emu, body["refreshJwt"].as_str().expect("refresh")).await;
    assert_eq!(refresh["drn"], "DSR");
    assert_eq!(body["user"]["userId"], "U-alice");
    emu.shutdown().await;
}

// === refresh ===

#[tokio::test]
async fn refresh_body_mode_reflects_current_roles() {
    let emu = spawn(KeyType::Ec).await;
    let body = login(&emu, "alice@example.com").await;
    let dsr = body["refreshJwt"].as_str().expect("refresh").to_owned();
    assert!(emu.set_user_roles("alice@example.com", vec!["auditor".into()]));
    let resp = refresh(&emu, &dsr).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("set-cookie").is_none());
    let body: Value = resp.json().await.expect("json");
    assert!(
        body.get("refreshJwt").is_none(),
        "no rotation: old DSR stays"
    );
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["roles"], json!(["auditor"]));
    assert_eq!(emu.calls("/v1/auth/refresh"), 1);
    // Still usable: rotation is off.
    assert_eq!(refresh(&emu, &dsr).await.status(), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn refresh_cookie_mode_sets_cookies_and_omits_body_refresh() {
    let emu = spawn(KeyType::Ec).await;
    let dsr = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    emu.set_cookie_mode(true);
    let resp = refresh(&emu, &dsr).await;
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("DSR=ey")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("DS=ey")),
        "{cookies:?}"
    );
    assert!(cookies.iter().all(|c| c.contains("HttpOnly")));
    let body: Value = resp.json().await.expect("json");
    assert!(body.get("refreshJwt").is_none());
    assert!(body["sessionJwt"].is_string());
    emu.shutdown().await;
}

#[tokio::test]
async fn refresh_rotation_refuses_the_old_token() {
    let emu = spawn(KeyType::Rsa).await;
    emu.set_refresh_rotation(true);
    let dsr = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let resp = refresh(&emu, &dsr).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let next = body["refreshJwt"].as_str().expect("rotated refresh");
    assert_ne!(next, dsr);
    let again = refresh(&emu, &dsr).await;
    assert_eq!(again.status(), 401);
    let err: Value = again.json().await.expect("json");
    assert_eq!(err["errorCode"], "E064001");
    assert_eq!(refresh(&emu, next).await.status(), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn refresh_refuses_expired_missing_and_session_tokens() {
    let emu = spawn(KeyType::Ec).await;
    let expired = emu.mint(&MintSpec {
        sub: "U-alice".into(),
        refresh: true,
        ttl_secs: -60,
        ..MintSpec::default()
    });
    let session = emu.mint(&MintSpec {
        sub: "U-alice".into(),
        ttl_secs: 60,
        ..MintSpec::default()
    });
    for token in [expired.as_str(), session.as_str(), "garbage"] {
        let resp = refresh(&emu, token).await;
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.expect("json");
        assert_eq!(err["errorCode"], "E061301");
    }
    let resp = client()
        .post(format!("{}/v1/auth/refresh", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn minted_refresh_token_for_unknown_subject_carries_its_claims() {
    let emu = spawn(KeyType::Ec).await;
    let dsr = emu.mint(&MintSpec {
        sub: "U-ghost".into(),
        refresh: true,
        ttl_secs: 600,
        claims: json!({"roles": ["viewer"], "tenants": {"T1": {}}})
            .as_object()
            .cloned()
            .expect("object"),
    });
    let resp = refresh(&emu, &dsr).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["sub"], "U-ghost");
    assert_eq!(session["roles"], json!(["viewer"]));
    assert_eq!(session["tenants"], json!({"T1": {}}));
    emu.shutdown().await;
}

#[tokio::test]
async fn logout_and_revocation_refuse_later_refreshes() {
    let emu = spawn(KeyType::Ec).await;
    let first = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let second = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let resp = client()
        .post(format!("{}/v1/auth/logout", emu.base_url()))
        .header("authorization", bearer(&[PID, &first]))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 200);
    assert_eq!(refresh(&emu, &first).await.status(), 401);
    assert_eq!(refresh(&emu, &second).await.status(), 200);
    emu.revoke_user("U-alice");
    assert_eq!(refresh(&emu, &second).await.status(), 401);
    // A new login after revocation works.
    let third = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(refresh(&emu, &third).await.status(), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn tenant_select_sets_dct_and_me_answers() {
    let emu = spawn(KeyType::Ec).await;
    let dsr = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let c = client();
    let resp = c
        .post(format!("{}/v1/auth/tenant/select", emu.base_url()))
        .header("authorization", bearer(&[PID, &dsr]))
        .json(&json!({"tenant": "T-acme"}))
        .send()
        .await
        .expect("select");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["dct"], "T-acme");
    // The refreshed session keeps the selected tenant.
    let new_dsr = body["refreshJwt"].as_str().expect("refresh");
    let body: Value = refresh(&emu, new_dsr).await.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["dct"], "T-acme");

    let me: Value = c
        .get(format!("{}/v1/auth/me", emu.base_url()))
        .header("authorization", bearer(&[PID, &dsr]))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["loginIds"], json!(["alice@example.com"]));
    assert_eq!(me["userTenants"][0]["tenantId"], "T-acme");
    let tenants: Value = c
        .post(format!("{}/v1/auth/me/tenants", emu.base_url()))
        .header("authorization", bearer(&[PID, &dsr]))
        .json(&json!({"dct": false, "ids": []}))
        .send()
        .await
        .expect("me tenants")
        .json()
        .await
        .expect("json");
    assert_eq!(tenants["tenants"][0]["name"], "Acme");
    emu.shutdown().await;
}

// === faults ===

#[tokio::test]
async fn faults_status_rate_limit_latency_and_drop() {
    let emu = spawn(KeyType::Ec).await;
    let keys = format!("/v2/keys/{PID}");
    let url = format!("{}{keys}", emu.base_url());
    let c = client();

    emu.set_fault(&keys, Fault::status(503).times(1));
    let resp = c.get(&url).send().await.expect("reachable");
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.expect("json");
    assert!(err["errorCode"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(
        c.get(&url).send().await.expect("ok").status(),
        200,
        "times(1)"
    );

    emu.set_fault(&keys, Fault::rate_limit(7));
    let resp = c.get(&url).send().await.expect("reachable");
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["errorCode"], "E130429");

    emu.set_fault(&keys, Fault::latency(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert_eq!(c.get(&url).send().await.expect("ok").status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    emu.set_fault(&keys, Fault::drop_connection());
    assert!(c.get(&url).send().await.is_err(), "connection dropped");

    emu.clear_faults();
    assert_eq!(c.get(&url).send().await.expect("ok").status(), 200);
    assert_eq!(emu.calls(&keys), 6);
    emu.reset_calls();
    assert_eq!(emu.calls(&keys), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn control_api_needs_the_token_and_sets_faults() {
    let emu = spawn_with(EmulatorOptions {
        project_id: PID.to_owned(),
        control_token: Some("ctl".to_owned()),
        ..EmulatorOptions::default()
    })
    .await;
    let c = client();
    let base = emu.base_url();
    let resp = c
        .post(format!("{base}/emulator/mint"))
        .json(&json!({"sub": "U1"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 401);
    let resp = c
        .post(format!("{base}/emulator/mint"))
        .bearer_auth("ctl")
        .json(&json!({"sub": "U1", "refresh": true, "claims": {"roles": ["a"]}}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(verify(&emu, &token).await["drn"], "DSR");

    let resp = c
        .post(format!("{base}/emulator/faults"))
        .bearer_auth("ctl")
        .json(&json!({"path": "/v1/auth/refresh", "type": "rate_limit", "retryAfterSecs": 3, "times": 1}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    assert_eq!(refresh(&emu, &token).await.status(), 429);
    assert_eq!(refresh(&emu, &token).await.status(), 200);
    let calls: Value = c
        .get(format!("{base}/emulator/calls?path=/v1/auth/refresh"))
        .bearer_auth("ctl")
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    assert_eq!(calls["count"], 2);
    emu.shutdown().await;
}

// === CLI ===

#[test]
fn cli_refuses_non_loopback_without_allow_remote() {
    let args = |listen: &str, allow_remote: bool, token: Option<&str>| cli::EmulatorArgs {
        listen: listen.parse().expect("addr"),
        project_id: PID.into(),
        key_type: KeyType::Ec,
        management_key: None,
        seed: None,
        control_token: token.map(str::to_owned),
        allow_remote,
        issuer_project_id: false,
        cookie_mode: false,
        refresh_rotation: false,
    };
    let cases = [
        ("127.0.0.1:0", false, None, Ok(())),
        ("[::1]:0", false, None, Ok(())),
        (
            "0.0.0.0:4080",
            false,
            None,
            Err(cli::CliError::NotLoopback(
                "0.0.0.0:4080".parse().expect("addr"),
            )),
        ),
        (
            "0.0.0.0:4080",
            true,
            None,
            Err(cli::CliError::RemoteWithoutToken),
        ),
        ("0.0.0.0:4080", true, Some("t"), Ok(())),
    ];
    for (listen, allow, token, want) in cases {
        assert_eq!(
            cli::check_args(&args(listen, allow, token)),
            want,
            "{listen} {allow}"
        );
    }
}

//! Emulator tests over real sockets (127.0.0.1:0) with reqwest.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
claims = { department = "eng" }

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
async fn jwks_shape_and_minted_tokens_verify_for_every_key_type() {
    for (key_type, kty, alg) in [
        (KeyType::Ec, "EC", "ES384"),
        (KeyType::Ec256, "EC", "ES256"),
        (KeyType::Rsa, "RSA", "RS256"),
    ] {
        let emu = spawn(key_type).await;
        let jwks = emu.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], kty);
        assert_eq!(key["alg"], alg);
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        match key_type {
            KeyType::Ec | KeyType::Ec256 => {
                let (crv, len) = if key_type == KeyType::Ec {
                    ("P-384", 48)
                } else {
                    ("P-256", 32)
                };
                assert_eq!(key["crv"], crv);
                for c in ["x", "y"] {
                    let bytes = URL_SAFE_NO_PAD
                        .decode(key[c].as_str().expect("coordinate"))
                        .expect("base64url");
                    assert_eq!(bytes.len(), len, "{c} on {crv}");
                }
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
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(
            format!("{:?}", header.alg),
            alg,
            "the token is signed with the key's alg"
        );
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
    assert_eq!(session["department"], "eng");
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
    let claims = json!({"department": "ops"})
        .as_object()
        .cloned()
        .expect("object");
    assert!(emu.set_user_claims("alice@example.com", claims));
    assert!(!emu.set_user_roles("nobody@example.com", Vec::new()));
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
    assert_eq!(session["permissions"], json!([]));
    assert_eq!(session["department"], "ops");
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
async fn reusing_a_rotated_refresh_token_revokes_its_family_when_on() {
    let emu = spawn(KeyType::Ec).await;
    emu.set_refresh_rotation(true);
    emu.set_refresh_family_revocation(true);
    let first = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let other = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let body: Value = refresh(&emu, &first).await.json().await.expect("json");
    let second = body["refreshJwt"].as_str().expect("rotated").to_owned();
    let body: Value = refresh(&emu, &second).await.json().await.expect("json");
    let third = body["refreshJwt"].as_str().expect("rotated").to_owned();
    assert_eq!(emu.family_revocations(), 0);
    // The first token, rotated long ago, comes back: the whole family dies.
    assert_eq!(refresh(&emu, &first).await.status(), 401);
    assert_eq!(emu.family_revocations(), 1);
    assert_eq!(refresh(&emu, &third).await.status(), 401);
    // Another sign-in of the same user is another family.
    assert_eq!(refresh(&emu, &other).await.status(), 200);
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

    emu.set_fault(&keys, Fault::status(429).times(1));
    let resp = c.get(&url).send().await.expect("reachable");
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
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
    assert_eq!(emu.calls(&keys), 7);
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

    // Bulk: distinct tokens, each valid.
    let resp = c
        .post(format!("{base}/emulator/mint"))
        .bearer_auth("ctl")
        .json(&json!({"sub": "U1", "count": 3, "ttlSecs": 600}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let tokens: Vec<String> =
        serde_json::from_value(resp.json::<Value>().await.expect("json")["tokens"].clone())
            .expect("tokens");
    assert_eq!(tokens.len(), 3);
    assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2]);
    for t in &tokens {
        assert_eq!(verify(&emu, t).await["sub"], "U1");
    }
    let resp = c
        .post(format!("{base}/emulator/mint"))
        .bearer_auth("ctl")
        .json(&json!({"sub": "U1", "count": 0}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);

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
    // Without a management key, the control token guards the management API.
    let resp = c
        .post(format!("{base}/v1/mgmt/user/create"))
        .header("authorization", bearer(&[PID, "anything"]))
        .json(&json!({"loginId": "eve@example.com"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 401);
    let resp = c
        .post(format!("{base}/v1/mgmt/user/create"))
        .header("authorization", bearer(&[PID, "ctl"]))
        .json(&json!({"loginId": "eve@example.com"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let users: Value = c
        .get(format!("{base}/emulator/users"))
        .bearer_auth("ctl")
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    assert_eq!(users["users"][0]["loginIds"], json!(["eve@example.com"]));
    assert_eq!(emu.refresh_calls(), 2);
    emu.fail_next("/v1/auth/refresh", 1, 502);
    assert_eq!(refresh(&emu, &token).await.status(), 502);
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
    assert_eq!(calls["count"], 4);
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
        web_components: None,
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

// === management API ===

async fn mgmt(emu: &Emulator, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", emu.base_url()))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .json(&body)
        .send()
        .await
        .expect("management reachable")
}

#[tokio::test]
async fn management_needs_the_management_key() {
    let emu = spawn(KeyType::Ec).await;
    let c = client();
    let url = format!("{}/v1/mgmt/user/create", emu.base_url());
    for auth in [
        None,
        Some(bearer(&[PID])),
        Some(bearer(&[PID, "wrong-key"])),
        Some(bearer(&["Pother", MGMT_KEY])),
    ] {
        let mut req = c.post(&url).json(&json!({"loginId": "x@example.com"}));
        if let Some(auth) = &auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.expect("reachable");
        assert_eq!(resp.status(), 401, "{auth:?}");
        let err: Value = resp.json().await.expect("json");
        assert!(err["errorCode"].as_str().is_some_and(|c| !c.is_empty()));
    }
    assert!(emu.user_id("x@example.com").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn management_users_roles_tenants_round_trip() {
    let emu = spawn(KeyType::Ec).await;
    let resp = mgmt(&emu, "/v1/mgmt/permission/create", json!({"name": "p1"})).await;
    assert_eq!(resp.status(), 200);
    let resp = mgmt(
        &emu,
        "/v1/mgmt/role/create",
        json!({"name": "editor", "permissionNames": ["p1"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = mgmt(&emu, "/v1/mgmt/tenant/create", json!({"name": "Globex"})).await;
    let tenant_id = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    let resp = mgmt(
        &emu,
        "/v1/mgmt/user/create/test",
        json!({"loginId": "carol@example.com", "name": "Carol", "roleNames": ["editor"],
               "userTenants": [{"tenantId": tenant_id, "roleNames": ["editor"]}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let user: Value = resp.json().await.expect("json");
    assert_eq!(user["user"]["loginIds"], json!(["carol@example.com"]));
    assert_eq!(user["user"]["test"], true);
    let user_id = user["user"]["userId"].as_str().expect("id").to_owned();

    let dup = mgmt(
        &emu,
        "/v1/mgmt/user/create",
        json!({"loginId": "carol@example.com"}),
    )
    .await;
    assert_eq!(dup.status(), 409);

    let c = client();
    for query in [
        "loginId=carol%40example.com".to_owned(),
        format!("userId={user_id}"),
    ] {
        let loaded: Value = c
            .get(format!("{}/v1/mgmt/user?{query}", emu.base_url()))
            .header("authorization", bearer(&[PID, MGMT_KEY]))
            .send()
            .await
            .expect("load")
            .json()
            .await
            .expect("json");
        assert_eq!(loaded["user"]["name"], "Carol", "{query}");
    }

    // Claims follow the management changes.
    let body = login(&emu, "carol@example.com").await;
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["permissions"], json!(["p1"]));
    assert_eq!(session["tenants"][&tenant_id]["permissions"], json!(["p1"]));

    let found: Value = mgmt(&emu, "/v2/mgmt/user/search", json!({"withTestUser": true}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(found["users"].as_array().map(Vec::len), Some(3));
    let found: Value = mgmt(&emu, "/v2/mgmt/user/search", json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        found["users"].as_array().map(Vec::len),
        Some(2),
        "test users hidden"
    );

    let resp = client()
        .delete(format!("{}/v1/mgmt/user/test/delete/all", emu.base_url()))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .send()
        .await
        .expect("delete all");
    assert_eq!(resp.status(), 200);
    assert!(emu.user_id("carol@example.com").is_none());
    assert!(emu.user_id("alice@example.com").is_some());

    let roles: Value = c
        .get(format!("{}/v1/mgmt/role/all", emu.base_url()))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .send()
        .await
        .expect("roles")
        .json()
        .await
        .expect("json");
    assert!(
        roles["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "editor" && r["permissionNames"] == json!(["p1"]))
    );
    emu.shutdown().await;
}

// === login flows ===

async fn auth_post(emu: &Emulator, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .json(&body)
        .send()
        .await
        .expect("auth endpoint reachable")
}

/// The `t` parameter of an outbox link.
fn link_token(link: &str) -> String {
    let url = url::Url::parse(link).expect("absolute link");
    url.query_pairs()
        .find(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned())
        .expect("t parameter")
}

#[tokio::test]
async fn magic_link_round_trip_through_the_outbox() {
    let emu = spawn(KeyType::Ec).await;
    let resp = auth_post(
        &emu,
        "/v1/auth/magiclink/signin/email",
        json!({"loginId": "nobody@example.com", "URI": "http://app.test/cb"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["errorCode"],
        "E062108"
    );

    let resp = auth_post(
        &emu,
        "/v1/auth/magiclink/signin/email",
        json!({"loginId": "alice@example.com", "URI": "http://app.test/cb?state=s1"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["maskedEmail"],
        "a***@example.com"
    );
    let outbox = emu.outbox();
    let entry = outbox.last().expect("a message was sent");
    assert_eq!(entry.kind, "magiclink");
    let link = entry.link.clone().expect("link");
    assert!(link.starts_with("http://app.test/cb?state=s1&t="), "{link}");

    let json_outbox: Value = client()
        .get(format!("{}/emulator/outbox.json", emu.base_url()))
        .send()
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json");
    assert_eq!(json_outbox[0]["link"], link.as_str());

    let token = link_token(&link);
    let resp = auth_post(&emu, "/v1/auth/magiclink/verify", json!({"token": token})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["sub"], "U-alice");
    assert_eq!(session["amr"], json!(["email"]));
    // Single use.
    let again = auth_post(&emu, "/v1/auth/magiclink/verify", json!({"token": token})).await;
    assert_eq!(again.status(), 401);

    // Sign-up-or-in creates the user.
    let resp = auth_post(
        &emu,
        "/v1/auth/magiclink/signup-in/email",
        json!({"loginId": "dave@example.com", "URI": "http://app.test/cb"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(emu.user_id("dave@example.com").is_some());
    emu.shutdown().await;
}

#[tokio::test]
async fn enchanted_link_is_pending_until_clicked() {
    let emu = spawn(KeyType::Ec).await;
    let resp = auth_post(
        &emu,
        "/v1/auth/enchantedlink/signin/email",
        json!({"loginId": "alice@example.com", "URI": "http://app.test/el"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let started: Value = resp.json().await.expect("json");
    let pending_ref = started["pendingRef"]
        .as_str()
        .expect("pendingRef")
        .to_owned();
    assert!(started["linkId"].is_string());

    let poll = || {
        auth_post(
            &emu,
            "/v1/auth/enchantedlink/pending-session",
            json!({"pendingRef": pending_ref}),
        )
    };
    let resp = poll().await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["errorCode"],
        "E062503"
    );
    let link = emu
        .outbox()
        .last()
        .and_then(|e| e.link.clone())
        .expect("link");
    let resp = auth_post(
        &emu,
        "/v1/auth/enchantedlink/verify",
        json!({"token": link_token(&link)}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = poll().await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        verify(&emu, body["sessionJwt"].as_str().expect("s")).await["sub"],
        "U-alice"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn otp_wrong_code_then_right_code() {
    let emu = spawn(KeyType::Ec).await;
    let resp = auth_post(
        &emu,
        "/v1/auth/otp/signin/email",
        json!({"loginId": "alice@example.com"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let code = emu
        .outbox()
        .last()
        .and_then(|e| e.code.clone())
        .expect("code sent");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = auth_post(
        &emu,
        "/v1/auth/otp/verify/email",
        json!({"loginId": "alice@example.com", "code": wrong}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["errorCode"],
        "E061102"
    );
    let resp = auth_post(
        &emu,
        "/v1/auth/otp/verify/email",
        json!({"loginId": "alice@example.com", "code": code}),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // The management test helper produces a usable code too (for test
    // users only, as Descope's does; bob is an ordinary user).
    let refused = mgmt(
        &emu,
        "/v1/mgmt/tests/generate/otp",
        json!({"loginId": "bob@example.com", "deliveryMethod": "email"}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    emu.add_user(UserSpec {
        login_id: "tess@example.com".into(),
        test: true,
        ..UserSpec::default()
    });
    let generated: Value = mgmt(
        &emu,
        "/v1/mgmt/tests/generate/otp",
        json!({"loginId": "tess@example.com", "deliveryMethod": "email"}),
    )
    .await
    .json()
    .await
    .expect("json");
    let resp = auth_post(
        &emu,
        "/v1/auth/otp/verify/email",
        json!({"loginId": "tess@example.com", "code": generated["code"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn step_up_adds_a_factor_to_the_session() {
    let emu = spawn(KeyType::Ec).await;
    let dsr = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let c = client();
    let resp = c
        .post(format!("{}/v1/auth/password/signin", emu.base_url()))
        .header("authorization", bearer(&[PID, &dsr]))
        .json(
            &json!({"loginId": "alice@example.com", "password": "correct horse battery",
                      "loginOptions": {"stepup": true}}),
        )
        .send()
        .await
        .expect("password");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("s")).await;
    assert_eq!(session["amr"], json!(["email", "pwd"]));
    // And the refreshed session keeps both factors.
    let body: Value = refresh(&emu, body["refreshJwt"].as_str().expect("r"))
        .await
        .json()
        .await
        .expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("s")).await;
    assert_eq!(session["amr"], json!(["email", "pwd"]));

    let resp = auth_post(
        &emu,
        "/v1/auth/password/signin",
        json!({"loginId": "alice@example.com", "password": "wrong password",}),
    )
    .await;
    assert_eq!(resp.status(), 401);
    emu.shutdown().await;
}

/// Follows an authorize `url` through the hosted page, choosing `login_id`,
/// and returns the code from the redirect.
async fn choose_on_hosted_page(url: &str, login_id: &str, redirect_prefix: &str) -> String {
    let c = client();
    let page = c
        .get(url)
        .send()
        .await
        .expect("hosted page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("not Descope"));
    assert!(page.contains(login_id), "{login_id} offered on the page");
    let state = url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let action = url.split('?').next().expect("path");
    let resp = c
        .post(action)
        .form(&[("state", state.as_str()), ("login_id", login_id)])
        .send()
        .await
        .expect("choose");
    assert_eq!(resp.status(), 302);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(location.starts_with(redirect_prefix), "{location}");
    url::Url::parse(&location)
        .expect("absolute redirect")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

#[tokio::test]
async fn oauth_and_sso_code_round_trips() {
    let emu = spawn(KeyType::Ec).await;
    let c = client();
    let resp = c
        .post(format!(
            "{}/v1/auth/oauth/authorize?provider=google&redirectURL=http%3A%2F%2Fapp.test%2Fcb%3Fx%3D1",
            emu.base_url()
        ))
        .header("authorization", bearer(&[PID]))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 200);
    let url = resp.json::<Value>().await.expect("json")["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let code =
        choose_on_hosted_page(&url, "alice@example.com", "http://app.test/cb?x=1&code=").await;
    let resp = auth_post(&emu, "/v1/auth/oauth/exchange", json!({"code": code})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("s")).await;
    assert_eq!(session["sub"], "U-alice");
    assert_eq!(session["amr"], json!(["oauth"]));
    let again = auth_post(&emu, "/v1/auth/oauth/exchange", json!({"code": code})).await;
    assert_eq!(again.status(), 401, "codes are single-use");

    for (start, exchange) in [
        ("/v1/auth/sso/authorize", "/v1/auth/sso/exchange"),
        ("/v1/auth/saml/authorize", "/v1/auth/saml/exchange"),
    ] {
        let resp = c
            .post(format!(
                "{}{start}?tenant=T-acme&redirectUrl=http%3A%2F%2Fapp.test%2Fsso",
                emu.base_url()
            ))
            .header("authorization", bearer(&[PID]))
            .json(&json!({}))
            .send()
            .await
            .expect("sso authorize");
        assert_eq!(resp.status(), 200, "{start}");
        let url = resp.json::<Value>().await.expect("json")["url"]
            .as_str()
            .expect("url")
            .to_owned();
        let code =
            choose_on_hosted_page(&url, "alice@example.com", "http://app.test/sso?code=").await;
        let resp = auth_post(&emu, exchange, json!({"code": code})).await;
        assert_eq!(resp.status(), 200, "{exchange}");
        let body: Value = resp.json().await.expect("json");
        let session = verify(&emu, body["sessionJwt"].as_str().expect("s")).await;
        assert_eq!(session["amr"], json!(["fed"]));
    }
    let resp = c
        .post(format!(
            "{}/v1/auth/sso/authorize?tenant=T-none",
            emu.base_url()
        ))
        .header("authorization", bearer(&[PID]))
        .send()
        .await
        .expect("sso authorize");
    assert_eq!(resp.status(), 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn wildcard_fault_spares_the_control_api_and_shutdown_is_idempotent() {
    let emu = spawn(KeyType::Ec).await;
    emu.set_fault("*", Fault::status(500));
    let c = client();
    let resp = c
        .get(format!("{}/v2/keys/{PID}", emu.base_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 500);
    let resp = c
        .get(format!("{}/emulator/health", emu.base_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let resp = c
        .post(format!("{}/emulator/faults/clear", emu.base_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(format!("{}/v2/keys/{PID}", emu.base_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 200);
    let url = emu.base_url();
    emu.shutdown().await;
    emu.shutdown().await;
    assert!(
        c.get(format!("{url}/emulator/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unknown_endpoints_and_bad_bodies_answer_descope_errors() {
    let emu = spawn(KeyType::Ec).await;
    let resp = auth_post(&emu, "/v1/auth/nope", json!({})).await;
    assert_eq!(resp.status(), 404);
    let resp = client()
        .post(format!("{}/v1/auth/magiclink/verify", emu.base_url()))
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    for resp in [
        auth_post(&emu, "/v1/auth/nope", json!({})).await,
        auth_post(&emu, "/v1/auth/magiclink/verify", json!({})).await,
    ] {
        let err: Value = resp.json().await.expect("json");
        assert!(
            err["errorCode"]
                .as_str()
                .is_some_and(|c| c.starts_with('E'))
        );
        assert!(err["errorMessage"].is_string());
    }
    emu.shutdown().await;
}

#[test]
fn a_bad_seed_file_is_refused() {
    let mut state = state::State::new(KeyType::Ec, &EmulatorOptions::default()).expect("state");
    assert!(state.apply_seed("[[users]]\nlogin = \"typo\"\n").is_err());
    assert!(state.apply_seed(SEED).is_ok());
    assert_eq!(state.users.len(), 2);
}

#[tokio::test]
async fn seeded_access_keys_exchange_for_sessions() {
    let emu = spawn_with(EmulatorOptions {
        project_id: PID.to_owned(),
        seed: Some(format!(
            "{SEED}\n[[access_keys]]\nkey = \"Kci-secret\"\nid = \"K-ci\"\nroles = [\"admin\"]\n"
        )),
        ..EmulatorOptions::default()
    })
    .await;
    assert_eq!(emu.user_id("alice@example.com").as_deref(), Some("U-alice"));
    let resp = client()
        .post(format!("{}/v1/auth/accesskey/exchange", emu.base_url()))
        .header("authorization", bearer(&[PID, "Kci-secret"]))
        .json(&json!({"loginOptions": {}}))
        .send()
        .await
        .expect("exchange");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["keyId"], "K-ci");
    let session = verify(&emu, body["sessionJwt"].as_str().expect("s")).await;
    assert_eq!(session["sub"], "K-ci");
    assert_eq!(session["roles"], json!(["admin"]));
    assert_eq!(session["permissions"], json!(["invoices:read"]));
    let resp = client()
        .post(format!("{}/v1/auth/accesskey/exchange", emu.base_url()))
        .header("authorization", bearer(&[PID, "wrong"]))
        .send()
        .await
        .expect("exchange");
    assert_eq!(resp.status(), 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn try_refresh_validate_and_history() {
    let emu = spawn(KeyType::Ec).await;
    let c = client();
    let resp = c
        .post(format!("{}/v1/auth/try-refresh", emu.base_url()))
        .header("authorization", bearer(&[PID, "garbage"]))
        .send()
        .await
        .expect("try-refresh");
    assert_eq!(resp.status(), 200, "try-refresh never fails");
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({}));

    let body = login(&emu, "alice@example.com").await;
    let session = body["sessionJwt"].as_str().expect("session");
    let dsr = body["refreshJwt"].as_str().expect("refresh");
    let resp = c
        .post(format!("{}/v1/auth/validate", emu.base_url()))
        .header("authorization", bearer(&[PID, session]))
        .send()
        .await
        .expect("validate");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["parsedJWT"]["sub"],
        "U-alice"
    );
    let history = c
        .get(format!("{}/v1/auth/me/history", emu.base_url()))
        .header("authorization", bearer(&[PID, dsr]))
        .send()
        .await
        .expect("history");
    assert_eq!(history.status(), 200);
    let wrong_project = c
        .get(format!("{}/v1/auth/me", emu.base_url()))
        .header("authorization", bearer(&["Pother", dsr]))
        .send()
        .await
        .expect("me");
    assert_eq!(wrong_project.status(), 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn concurrent_refreshes_with_rotation_succeed_once() {
    let emu = Arc::new(spawn(KeyType::Ec).await);
    emu.set_refresh_rotation(true);
    let dsr = login(&emu, "alice@example.com").await["refreshJwt"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let emu = emu.clone();
        let dsr = dsr.clone();
        tasks.spawn(async move { refresh(&emu, &dsr).await.status().as_u16() });
    }
    let mut ok = 0;
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            200 => ok += 1,
            401 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(emu.refresh_calls(), 10);
    emu.shutdown().await;
}

#[tokio::test]
async fn control_faults_accept_loose_spellings() {
    let emu = spawn(KeyType::Ec).await;
    let keys = format!("/v2/keys/{PID}");
    let url = format!("{}{keys}", emu.base_url());
    let c = client();
    let cases = [
        (json!({"path": keys, "status": 503, "times": 1}), Some(503)),
        (
            json!({"path": keys, "type": "rateLimit", "retryAfter": 4, "times": 1}),
            Some(429),
        ),
        (
            json!({"path": keys, "retryAfter": 2, "count": 1}),
            Some(429),
        ),
        (
            json!({"path": keys, "type": "disconnect", "times": 1}),
            None,
        ),
    ];
    for (body, want) in cases {
        let resp = c
            .post(format!("{}/emulator/faults", emu.base_url()))
            .json(&body)
            .send()
            .await
            .expect("reachable");
        assert_eq!(resp.status(), 200, "{body}");
        let got = c.get(&url).send().await.ok().map(|r| r.status().as_u16());
        assert_eq!(got, want, "{body}");
        assert_eq!(
            c.get(&url).send().await.expect("healthy").status(),
            200,
            "{body} applied once"
        );
    }
    let resp = c
        .post(format!("{}/emulator/faults", emu.base_url()))
        .json(&json!({"path": keys, "type": "bogus"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    emu.shutdown().await;
}

mod access_keys;
mod flows;
mod module_graph;
mod npm;
mod sso_settings;

//! Token attacks and JWKS behaviour, end to end: none of these may reach the
//! upstream or produce identity headers.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_emulator::MintSpec;
use serde_json::{Value, json};

use crate::support::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

fn payload_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn unsigned(header: Value, payload: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    )
}

fn foreign_es384_key() -> EncodingKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    EncodingKey::from_ec_der(pkcs8.as_ref())
}

#[tokio::test]
async fn token_attacks_are_all_rejected() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let good = gw.session("U-good", json!({"roles": ["admin"]}));
    let kid = header_of(&good)["kid"].as_str().unwrap().to_string();
    let alg = header_of(&good)["alg"].as_str().unwrap().to_string();
    let payload = payload_of(&good);
    let jwks = gw.emu.jwks();

    let mut forged_same_kid = Header::new(Algorithm::ES384);
    forged_same_kid.kid = Some(kid.clone());
    let other_key = foreign_es384_key();
    let mut unknown_kid = Header::new(Algorithm::ES384);
    unknown_kid.kid = Some("not-a-known-kid".into());
    let hs_secret = jwks.to_string();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let mut tampered_payload = payload.clone();
    tampered_payload["sub"] = json!("U-evil");
    let good_sig = good.split('.').nth(2).unwrap();
    let mint = |ttl: i64, refresh: bool, extra: Value| {
        gw.emu.mint(&MintSpec {
            sub: "U-x".into(),
            refresh,
            ttl_secs: ttl,
            claims: claims(extra),
        })
    };

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            unsigned(
                json!({"alg": "none", "kid": kid, "typ": "JWT"}),
                &payload,
                "",
            ),
        ),
        (
            "alg None",
            unsigned(json!({"alg": "None", "kid": kid}), &payload, ""),
        ),
        (
            "HS256 with the public key",
            jsonwebtoken::encode(
                &hs,
                &payload,
                &EncodingKey::from_secret(hs_secret.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "unknown kid",
            jsonwebtoken::encode(&unknown_kid, &payload, &other_key).unwrap(),
        ),
        (
            "other key, same kid",
            jsonwebtoken::encode(&forged_same_kid, &payload, &other_key).unwrap(),
        ),
        (
            "tampered payload",
            unsigned(header_of(&good), &tampered_payload, good_sig),
        ),
        ("truncated", good[..good.len() - 12].to_string()),
        ("garbage", "not.a.jwt".to_string()),
        ("empty parts", "..".to_string()),
        (
            "alg/key mismatch",
            unsigned(
                json!({"alg": if alg == "RS256" { "ES256" } else { "RS256" }, "kid": kid}),
                &payload,
                good_sig,
            ),
        ),
        ("expired", mint(-60, false, json!({}))),
        ("future nbf", mint(600, false, json!({"nbf": now() + 3600}))),
        (
            "wrong issuer",
            mint(600, false, json!({"iss": "https://evil.example/other"})),
        ),
        (
            "host-only issuer",
            mint(
                600,
                false,
                json!({"iss": format!("https://{}/other", gw.emu.project_id())}),
            ),
        ),
        (
            "wrong audience",
            mint(600, false, json!({"aud": "someone-else"})),
        ),
        ("refresh token as session", mint(600, true, json!({}))),
        ("missing exp", mint(600, false, json!({"exp": null}))),
    ];
    let mut failures = Vec::new();
    for (name, token) in &attacks {
        let bearer = gw
            .get("/x")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        let cookie = gw
            .get("/x")
            .header("cookie", format!("DS={token}"))
            .send()
            .await
            .unwrap()
            .status();
        if bearer != 401 || cookie != 401 {
            failures.push(format!("{name}: bearer {bearer}, cookie {cookie}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(gw.upstream.count(), 0);

    // Controls: the genuine token, one with an audience naming the project,
    // and one just past expiry inside the 5 s leeway are accepted.
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&good)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let aud_ok = mint(600, false, json!({"aud": [gw.emu.project_id(), "other"]}));
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&aud_ok)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let bare_iss = mint(600, false, json!({"iss": gw.emu.project_id()}));
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&bare_iss)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let leeway = mint(-2, false, json!({}));
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&leeway)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn unknown_kid_flood_causes_bounded_jwks_fetches() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let keys_path = format!("/v2/keys/{}", gw.emu.project_id());
    let before = gw.emu.calls(&keys_path);
    let key = foreign_es384_key();
    let payload = payload_of(&gw.session("U", json!({})));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let mut h = Header::new(Algorithm::ES384);
        h.kid = Some(format!("forged-{i}"));
        let token = jsonwebtoken::encode(&h, &payload, &key).unwrap();
        let req = gw.get("/x").bearer_auth(token);
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let fetched = gw.emu.calls(&keys_path) - before;
    assert!(fetched <= 2, "60 forged kids caused {fetched} JWKS fetches");
}

#[tokio::test]
async fn rotated_keys_are_picked_up() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let old = gw.session("U-old", json!({}));
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&old)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gw.emu.rotate_keys();
    let new = gw.session("U-new", json!({}));
    assert_ne!(header_of(&old)["kid"], header_of(&new)["kid"]);
    // jwks_min_refetch is 1 s in tests: the new kid validates within that window.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = gw
            .get("/x")
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status();
        if s == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotated key never accepted (last status {s})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.upstream.last().headers["x-auth-user-id"], "U-new");
}

#[tokio::test]
async fn descope_down_at_start_with_seed_keys() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, emu.jwks().to_string()).unwrap();
    // A port nothing listens on stands for Descope being down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n")
        .replace(&emu.base_url(), &format!("http://{dead}"))
        .replace(
            "[descope]",
            &format!("[descope]\njwks_file = \"{}\"", jwks_file.display()),
        );
    let gw = TestGateway::spawn_with(emu.clone(), up, &toml).await;
    let token = gw.session("U-seed", json!({}));
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.client
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn rsa_keys_work_too() {
    let emu = std::sync::Arc::new(spawn_emulator_with(portcullis_emulator::KeyType::Rsa).await);
    let up = spawn_upstream().await;
    let toml = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n");
    let gw = TestGateway::spawn_with(emu, up, &toml).await;
    let token = gw.session("U-rsa", json!({}));
    assert_eq!(header_of(&token)["alg"], "RS256");
    assert_eq!(
        gw.get("/x")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

//! Access keys: management round trip and an exchange that honours roles,
//! tenants, custom claims, expiry, status and permitted IPs.

use serde_json::{Value, json};

use super::{PID, bearer, client, mgmt, spawn, verify};
use crate::{AccessKeySpec, KeyType, TenantMembership, util::now_secs};

async fn exchange(emu: &crate::Emulator, secret: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/auth/accesskey/exchange", emu.base_url()))
        .header("authorization", bearer(&[PID, secret]))
        .json(&body)
        .send()
        .await
        .expect("exchange reachable")
}

async fn mgmt_get(emu: &crate::Emulator, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", emu.base_url()))
        .header("authorization", bearer(&[PID, super::MGMT_KEY]))
        .send()
        .await
        .expect("management reachable")
}

#[tokio::test]
async fn managed_key_exchanges_with_its_roles_tenants_claims_and_expiry() {
    let emu = spawn(KeyType::Ec).await;
    let expire = now_secs() + 3600;
    let created: Value = mgmt(
        &emu,
        "/v1/mgmt/accesskey/create",
        json!({
            "name": "ci", "expireTime": expire, "roleNames": ["admin"],
            "keyTenants": [{"tenantId": "T-acme", "roleNames": ["member"]}],
            "customClaims": {"service": "billing"}, "description": "the CI job",
            "permittedIps": ["127.0.0.1"], "customAttributes": {"team": "ops"},
        }),
    )
    .await
    .json()
    .await
    .expect("json");
    let id = created["key"]["id"].as_str().expect("id").to_owned();
    let secret = created["cleartext"].as_str().expect("cleartext").to_owned();
    assert!(!secret.contains(':'));
    assert_eq!(created["key"]["status"], "active");
    assert_eq!(created["key"]["keyTenants"][0]["tenantName"], "Acme");
    assert!(created["key"].get("cleartext").is_none());

    let loaded: Value = mgmt_get(&emu, &format!("/v1/mgmt/accesskey?id={id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(loaded["key"]["name"], "ci");
    assert_eq!(loaded["key"]["permittedIps"], json!(["127.0.0.1"]));
    assert_eq!(loaded["key"]["expireTime"], expire);

    let found: Value = mgmt(
        &emu,
        "/v1/mgmt/accesskey/search",
        json!({"tenantIds": ["T-acme"], "customAttributes": {"team": "ops"}}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(found["keys"].as_array().map(Vec::len), Some(1));
    let none: Value = mgmt(
        &emu,
        "/v1/mgmt/accesskey/search",
        json!({"tenantIds": ["T-other"]}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(none["keys"], json!([]));

    let before = emu.access_key_exchanges();
    let resp = exchange(
        &emu,
        &secret,
        json!({"loginOptions": {"customClaims": {"run": 7}, "selectedTenant": "T-acme"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["keyId"], id.as_str());
    let claims = verify(&emu, body["sessionJwt"].as_str().expect("jwt")).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["permissions"], json!(["invoices:read"]));
    assert_eq!(claims["tenants"]["T-acme"]["roles"], json!(["member"]));
    assert_eq!(claims["service"], "billing");
    assert_eq!(claims["run"], 7);
    assert_eq!(claims["dct"], "T-acme");
    assert!(claims["exp"].as_i64().expect("exp") <= expire);
    assert_eq!(body["expiration"], claims["exp"]);
    assert_eq!(
        emu.access_key_exchanges(),
        before + 1,
        "exchanges are counted"
    );

    // Update: absent fields keep their value.
    let resp = mgmt(
        &emu,
        "/v1/mgmt/accesskey/update",
        json!({"id": id, "name": "ci-2", "customClaims": {"service": "ledger"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.expect("json");
    assert_eq!(updated["key"]["name"], "ci-2");
    assert_eq!(updated["key"]["description"], "the CI job");
    let body: Value = exchange(&emu, &secret, json!({}))
        .await
        .json()
        .await
        .expect("json");
    let claims = verify(&emu, body["sessionJwt"].as_str().expect("jwt")).await;
    assert_eq!(claims["service"], "ledger");
    assert!(claims.get("dct").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn deactivated_deleted_expired_rotated_and_foreign_ip_keys_are_refused() {
    let emu = spawn(KeyType::Ec).await;
    let create = |body: Value| {
        let emu = &emu;
        async move {
            let v: Value = mgmt(emu, "/v1/mgmt/accesskey/create", body)
                .await
                .json()
                .await
                .expect("json");
            (
                v["key"]["id"].as_str().expect("id").to_owned(),
                v["cleartext"].as_str().expect("cleartext").to_owned(),
            )
        }
    };
    let (id, secret) = create(json!({"name": "k"})).await;
    assert_eq!(exchange(&emu, &secret, json!({})).await.status(), 200);

    let resp = mgmt(&emu, "/v1/mgmt/accesskey/deactivate", json!({"id": id})).await;
    assert_eq!(resp.status(), 200);
    let refused = exchange(&emu, &secret, json!({})).await;
    assert_eq!(refused.status(), 401);
    let err: Value = refused.json().await.expect("json");
    assert_eq!(err["errorCode"], "E061301");
    let loaded: Value = mgmt_get(&emu, &format!("/v1/mgmt/accesskey?id={id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(loaded["key"]["status"], "inactive");
    mgmt(&emu, "/v1/mgmt/accesskey/activate", json!({"id": id})).await;
    assert_eq!(exchange(&emu, &secret, json!({})).await.status(), 200);

    // Rotation: the old secret stops working, the new one works.
    let rotated: Value = mgmt(&emu, "/v1/mgmt/accesskey/rotate", json!({"id": id}))
        .await
        .json()
        .await
        .expect("json");
    let new_secret = rotated["cleartext"].as_str().expect("cleartext");
    assert_eq!(exchange(&emu, &secret, json!({})).await.status(), 401);
    assert_eq!(exchange(&emu, new_secret, json!({})).await.status(), 200);

    let resp = mgmt(&emu, "/v1/mgmt/accesskey/delete", json!({"id": id})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(exchange(&emu, new_secret, json!({})).await.status(), 401);
    let gone = mgmt_get(&emu, &format!("/v1/mgmt/accesskey?id={id}")).await;
    assert_eq!(gone.status(), 400);
    let again = mgmt(&emu, "/v1/mgmt/accesskey/delete", json!({"id": id})).await;
    assert_eq!(again.status(), 400);

    let (_, expired) = create(json!({"name": "old", "expireTime": now_secs() - 1})).await;
    assert_eq!(exchange(&emu, &expired, json!({})).await.status(), 401);

    // Permitted IPs are checked against the caller (127.0.0.1 here).
    let (fenced_id, fenced) =
        create(json!({"name": "fenced", "permittedIps": ["10.0.0.0/8", "::1"]})).await;
    assert_eq!(exchange(&emu, &fenced, json!({})).await.status(), 401);
    mgmt(
        &emu,
        "/v1/mgmt/accesskey/update",
        json!({"id": fenced_id, "name": "fenced", "permittedIps": ["127.0.0.0/8"]}),
    )
    .await;
    assert_eq!(exchange(&emu, &fenced, json!({})).await.status(), 200);
    let bad = mgmt(
        &emu,
        "/v1/mgmt/accesskey/create",
        json!({"name": "bad", "permittedIps": ["not-an-ip"]}),
    )
    .await;
    assert_eq!(bad.status(), 400);

    assert_eq!(
        exchange(&emu, "K-never-issued", json!({})).await.status(),
        401
    );
    // Every exchange above was counted, refused ones included.
    assert_eq!(emu.access_key_exchanges(), 10);
    emu.shutdown().await;
}

#[tokio::test]
async fn bound_keys_carry_their_users_roles_and_the_handle_manages_keys() {
    let emu = spawn(KeyType::Ec).await;
    let (id, secret) = emu
        .create_access_key(AccessKeySpec {
            name: Some("alice's key".into()),
            user_id: Some("U-alice".into()),
            ..AccessKeySpec::default()
        })
        .expect("created");
    let body: Value = exchange(&emu, &secret, json!({}))
        .await
        .json()
        .await
        .expect("json");
    let claims = verify(&emu, body["sessionJwt"].as_str().expect("jwt")).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["tenants"]["T-acme"]["roles"], json!(["member"]));

    let (other, other_secret) = emu
        .create_access_key(AccessKeySpec {
            roles: vec!["member".into()],
            tenants: vec![TenantMembership {
                id: "T-acme".into(),
                roles: vec!["admin".into()],
            }],
            ..AccessKeySpec::default()
        })
        .expect("created");
    assert!(emu.set_access_key_active(&other, false));
    assert_eq!(exchange(&emu, &other_secret, json!({})).await.status(), 401);
    assert!(emu.set_access_key_active(&other, true));
    assert_eq!(exchange(&emu, &other_secret, json!({})).await.status(), 200);
    assert!(emu.delete_access_key(&other));
    assert!(!emu.delete_access_key(&other));
    assert_eq!(exchange(&emu, &other_secret, json!({})).await.status(), 401);
    assert!(
        emu.create_access_key(AccessKeySpec {
            key: Some("a:b".into()),
            ..AccessKeySpec::default()
        })
        .is_err()
    );
    emu.shutdown().await;
}

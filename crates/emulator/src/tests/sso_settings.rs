//! SSO settings through the management API: a tenant configured that way is
//! an SSO tenant for `sso/authorize`, one whose settings are deleted is not.

use serde_json::{Value, json};

use super::{MGMT_KEY, PID, auth_post, bearer, client, mgmt, spawn, verify};
use crate::{Emulator, KeyType};

async fn load(emu: &Emulator, tenant: &str) -> reqwest::Response {
    client()
        .get(format!(
            "{}/v2/mgmt/sso/settings?tenantId={tenant}",
            emu.base_url()
        ))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .send()
        .await
        .expect("load reachable")
}

async fn delete(emu: &Emulator, tenant: &str) -> reqwest::Response {
    client()
        .delete(format!(
            "{}/v1/mgmt/sso/settings?tenantId={tenant}",
            emu.base_url()
        ))
        .header("authorization", bearer(&[PID, MGMT_KEY]))
        .send()
        .await
        .expect("delete reachable")
}

/// `sso/authorize`: the hosted IdP page URL, or the error status.
async fn sso_start(emu: &Emulator, query: &str) -> Result<String, u16> {
    let resp = client()
        .post(format!("{}/v1/auth/sso/authorize?{query}", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .json(&json!({}))
        .send()
        .await
        .expect("authorize reachable");
    if resp.status() != 200 {
        return Err(resp.status().as_u16());
    }
    let body: Value = resp.json().await.expect("json");
    Ok(body["url"].as_str().expect("url").to_owned())
}

/// Types a login id (a person the IdP page does not list yet) into the
/// hosted IdP page and returns the code from the redirect.
async fn type_login_on_idp_page(url: &str, login_id: &str, redirect_prefix: &str) -> String {
    let state = url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let action = url.split('?').next().expect("path");
    let resp = client()
        .post(action)
        .form(&[("state", state.as_str()), ("login_id", login_id)])
        .send()
        .await
        .expect("choose");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(location.starts_with(redirect_prefix), "{location}");
    url::Url::parse(&location)
        .expect("absolute")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

#[tokio::test]
async fn saml_settings_make_a_tenant_an_sso_tenant_until_deleted() {
    let emu = spawn(KeyType::Ec).await;
    let resp = mgmt(
        &emu,
        "/v1/mgmt/tenant/create",
        json!({"id": "T-plain", "name": "Plain"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sso_start(&emu, "tenant=T-plain").await, Err(400));
    let settings: Value = load(&emu, "T-plain").await.json().await.expect("json");
    assert_eq!(settings["tenant"]["authType"], "none");

    let resp = mgmt(
        &emu,
        "/v1/mgmt/sso/saml",
        json!({
            "tenantId": "T-plain",
            "settings": {
                "idpUrl": "https://idp.plain.test/sso", "entityId": "urn:plain", "idpCert": "MIIC...",
                "roleMappings": [{"groups": ["eng"], "roleName": "admin"}],
                "defaultSSORoles": ["member"],
                "attributeMapping": {"email": "mail"},
            },
            "redirectUrl": "http://app.test/sso-done",
            "domains": ["plain.test"],
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let settings: Value = load(&emu, "T-plain").await.json().await.expect("json");
    assert_eq!(settings["tenant"]["authType"], "saml");
    assert_eq!(settings["tenant"]["domains"], json!(["plain.test"]));
    assert_eq!(settings["saml"]["idpSSOUrl"], "https://idp.plain.test/sso");
    assert_eq!(settings["saml"]["idpEntityId"], "urn:plain");
    assert_eq!(settings["saml"]["idpCertificate"], "MIIC...");
    assert_eq!(settings["saml"]["redirectUrl"], "http://app.test/sso-done");
    assert_eq!(settings["saml"]["attributeMapping"]["email"], "mail");
    assert_eq!(
        settings["saml"]["groupsMapping"][0]["role"]["name"],
        "admin"
    );
    assert_eq!(settings["saml"]["defaultSSORoles"], json!(["member"]));

    // Started by an email of an SSO domain, without a redirect URL: the
    // configured one is used; the user is provisioned with the default roles.
    let url = sso_start(&emu, "tenant=carol%40plain.test")
        .await
        .expect("an SSO tenant now");
    let code =
        type_login_on_idp_page(&url, "carol@plain.test", "http://app.test/sso-done?code=").await;
    let resp = auth_post(&emu, "/v1/auth/sso/exchange", json!({"code": code})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let claims = verify(&emu, body["sessionJwt"].as_str().expect("jwt")).await;
    assert_eq!(claims["tenants"]["T-plain"]["roles"], json!(["member"]));

    assert_eq!(delete(&emu, "T-plain").await.status(), 200);
    assert_eq!(sso_start(&emu, "tenant=T-plain").await, Err(400));
    assert_eq!(sso_start(&emu, "tenant=carol%40plain.test").await, Err(400));
    let settings: Value = load(&emu, "T-plain").await.json().await.expect("json");
    assert_eq!(settings["tenant"]["authType"], "none");
    // A seeded SSO tenant stops being one too.
    assert!(sso_start(&emu, "tenant=T-acme").await.is_ok());
    assert_eq!(delete(&emu, "T-acme").await.status(), 200);
    assert_eq!(sso_start(&emu, "tenant=T-acme").await, Err(400));
    emu.shutdown().await;
}

#[tokio::test]
async fn oidc_and_metadata_settings_load_back_and_bad_calls_are_refused() {
    let emu = spawn(KeyType::Ec).await;
    for id in ["T-oidc", "T-meta"] {
        mgmt(
            &emu,
            "/v1/mgmt/tenant/create",
            json!({"id": id, "name": id}),
        )
        .await;
    }
    let resp = mgmt(
        &emu,
        "/v1/mgmt/sso/oidc",
        json!({
            "tenantId": "T-oidc",
            "settings": {
                "name": "Okta", "clientId": "cid", "clientSecret": "shh",
                "authUrl": "https://okta.test/auth", "scope": ["openid", "email"],
                "userAttrMapping": {"loginId": "sub"},
            },
            "domains": ["oidc.test"],
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let settings: Value = load(&emu, "T-oidc").await.json().await.expect("json");
    assert_eq!(settings["tenant"]["authType"], "oidc");
    assert_eq!(settings["oidc"]["name"], "Okta");
    assert_eq!(settings["oidc"]["clientId"], "cid");
    assert_eq!(
        settings["oidc"]["clientSecret"], "",
        "secrets are write-only"
    );
    assert_eq!(settings["oidc"]["scope"], json!(["openid", "email"]));
    assert_eq!(settings["oidc"]["userAttrMapping"]["loginId"], "sub");
    assert!(sso_start(&emu, "tenant=dave%40oidc.test").await.is_ok());

    let resp = mgmt(
        &emu,
        "/v1/mgmt/sso/saml/metadata",
        json!({"tenantId": "T-meta", "settings": {"idpMetadataUrl": "https://idp.test/md"}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let settings: Value = load(&emu, "T-meta").await.json().await.expect("json");
    assert_eq!(settings["saml"]["idpMetadataUrl"], "https://idp.test/md");
    assert!(sso_start(&emu, "tenant=T-meta").await.is_ok());

    for (path, body) in [
        (
            "/v1/mgmt/sso/saml",
            json!({"tenantId": "T-none", "settings": {"idpUrl": "u", "entityId": "e", "idpCert": "c"}}),
        ),
        (
            "/v1/mgmt/sso/saml",
            json!({"tenantId": "T-meta", "settings": {"idpUrl": "u"}}),
        ),
        (
            "/v1/mgmt/sso/oidc",
            json!({"tenantId": "T-oidc", "settings": {"name": "x"}}),
        ),
        (
            "/v1/mgmt/sso/saml",
            json!({"tenantId": "T-meta", "settings": {"idpUrl": "u", "entityId": "e",
                    "idpCert": "c", "defaultSSORoles": ["no-such-role"]}}),
        ),
    ] {
        assert_eq!(mgmt(&emu, path, body.clone()).await.status(), 400, "{body}");
    }
    assert_eq!(load(&emu, "T-none").await.status(), 400);
    assert_eq!(delete(&emu, "T-none").await.status(), 400);
    emu.shutdown().await;
}

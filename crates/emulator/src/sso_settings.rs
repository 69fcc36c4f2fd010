//! SSO settings through the management API, as projects set them up:
//! `POST /v1/mgmt/sso/saml` (manual SAML), `POST /v1/mgmt/sso/saml/metadata`
//! (SAML by metadata URL), `POST /v1/mgmt/sso/oidc`, `GET
//! /v2/mgmt/sso/settings?tenantId=` (load), `GET /v2/mgmt/sso/settings/all`
//! and `DELETE /v1/mgmt/sso/settings?tenantId=` (py
//! `management/sso_settings.py`, node `management/sso`).
//!
//! A tenant configured this way is an SSO tenant: `sso/authorize` (and the
//! legacy `saml/authorize`) serve it through the emulator's IdP page, its
//! SSO `domains` select it for `sso.start(<email>)`, its redirect URL is used
//! when a start names none, and its `defaultSSORoles` become the tenant roles
//! of users the SSO login provisions. Deleting the settings makes it an
//! ordinary tenant again. No SAML assertion or OIDC token is ever exchanged
//! with the configured IdP: the emulator's IdP page stands in for it.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::{Req, Resp, error, json, missing, not_found, ok_empty, str_field, strings};
use crate::shared::Shared;
use crate::state::{SsoConfig, SsoKind, State, Tenant};

/// `/v1/mgmt/sso/*` and `/v2/mgmt/sso/*`, already authorized by the
/// management key.
pub(crate) fn manage(shared: &Shared, req: &Req, body: &Map<String, Value>) -> Resp {
    let mut st = shared.lock();
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/v1/mgmt/sso/saml") => configure(&mut st, body, Protocol::SamlManual),
        (&Method::POST, "/v1/mgmt/sso/saml/metadata") => {
            configure(&mut st, body, Protocol::SamlMetadata)
        }
        (&Method::POST, "/v1/mgmt/sso/oidc") => configure(&mut st, body, Protocol::Oidc),
        (&Method::GET, "/v2/mgmt/sso/settings") => {
            let id = req.query_any(&["tenantId"]).unwrap_or_default();
            match st.tenants.get(id) {
                Some(t) => json(StatusCode::OK, &settings_json(&shared.base_url, t)),
                None => tenant_not_found(id),
            }
        }
        (&Method::GET, "/v2/mgmt/sso/settings/all") => {
            let id = req.query_any(&["tenantId"]).unwrap_or_default();
            match st.tenants.get(id) {
                Some(t) => json(
                    StatusCode::OK,
                    &json!({ "SSOSettings": [settings_json(&shared.base_url, t)] }),
                ),
                None => tenant_not_found(id),
            }
        }
        (&Method::DELETE, "/v1/mgmt/sso/settings") => {
            let id = req.query_any(&["tenantId"]).unwrap_or_default();
            match st.tenants.get_mut(id) {
                Some(t) => {
                    t.sso_config = None;
                    t.sso = false;
                    ok_empty()
                }
                None => tenant_not_found(id),
            }
        }
        _ => not_found(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    SamlManual,
    SamlMetadata,
    Oidc,
}

fn tenant_not_found(id: &str) -> Resp {
    if id.is_empty() {
        return missing("tenantId");
    }
    error(
        StatusCode::BAD_REQUEST,
        "E011004",
        "Invalid arguments",
        &format!("No tenant {id:?}"),
    )
}

fn invalid(message: &str) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E011004",
        "Invalid arguments",
        message,
    )
}

/// Stores the settings of a configure call; `{}`.
fn configure(st: &mut State, body: &Map<String, Value>, protocol: Protocol) -> Resp {
    let tenant_id = str_field(body, &["tenantId"]).to_owned();
    if tenant_id.is_empty() {
        return missing("tenantId");
    }
    let Some(settings) = body.get("settings").and_then(Value::as_object).cloned() else {
        return missing("settings");
    };
    let required: &[&str] = match protocol {
        Protocol::SamlManual => &["idpUrl", "entityId", "idpCert"],
        Protocol::SamlMetadata => &["idpMetadataUrl"],
        Protocol::Oidc => &["name", "clientId"],
    };
    if let Some(field) = required
        .iter()
        .find(|f| str_field(&settings, &[**f]).is_empty())
    {
        return invalid(&format!("settings.{field} is required"));
    }
    let default_roles = strings(&settings, "defaultSSORoles");
    let mapped_roles = settings
        .get("roleMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("roleName").and_then(Value::as_str));
    let unknown_role = default_roles
        .iter()
        .map(String::as_str)
        .chain(mapped_roles)
        .find(|r| !st.roles.contains_key(*r))
        .map(str::to_owned);
    if let Some(role) = unknown_role {
        return invalid(&format!("No role {role:?}"));
    }
    let Some(tenant) = st.tenants.get_mut(&tenant_id) else {
        return tenant_not_found(&tenant_id);
    };
    let redirect_url = match protocol {
        Protocol::Oidc => str_field(&settings, &["redirectUrl"]).to_owned(),
        Protocol::SamlManual | Protocol::SamlMetadata => {
            str_field(body, &["redirectUrl"]).to_owned()
        }
    };
    // A later configure replaces the earlier one; default roles not given
    // (or given as an empty list without `replaceDefaultSSORoles`) are kept.
    let keep_roles = default_roles.is_empty()
        && !settings
            .get("replaceDefaultSSORoles")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let default_roles = match (&tenant.sso_config, keep_roles) {
        (Some(old), true) => old.default_roles.clone(),
        _ => default_roles,
    };
    tenant.sso_config = Some(SsoConfig {
        kind: if protocol == Protocol::Oidc {
            SsoKind::Oidc
        } else {
            SsoKind::Saml
        },
        settings,
        redirect_url,
        domains: strings(body, "domains"),
        default_roles,
    });
    ok_empty()
}

/// The load answer: `{tenant: {..., authType, domains}, saml: {...}, oidc:
/// {...}}` (py `load_settings` docstring; node maps `oidc.userAttrMapping`
/// and each `saml.groupsMapping[].role.name`).
fn settings_json(base_url: &str, t: &Tenant) -> Value {
    let config = t.sso_config.as_ref();
    let auth_type = match config.map(|c| c.kind) {
        Some(SsoKind::Saml) => "saml",
        Some(SsoKind::Oidc) => "oidc",
        None if t.sso => "saml",
        None => "none",
    };
    let text = |s: &Map<String, Value>, k: &str| str_field(s, &[k]).to_owned();
    let empty = Map::new();
    let saml_settings = config
        .filter(|c| c.kind == SsoKind::Saml)
        .map_or(&empty, |c| &c.settings);
    let oidc_settings = config
        .filter(|c| c.kind == SsoKind::Oidc)
        .map_or(&empty, |c| &c.settings);
    // A seeded SSO tenant is served by the emulator's own IdP page.
    let idp_url = if config.is_none() && t.sso {
        format!("{base_url}/emulator/sso/idp")
    } else {
        text(saml_settings, "idpUrl")
    };
    let groups_mapping: Vec<Value> = saml_settings
        .get("roleMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|m| {
            let role = text(m, "roleName");
            json!({"groups": strings(m, "groups"), "role": {"id": role, "name": role}})
        })
        .collect();
    let redirect_url = config.map(|c| c.redirect_url.clone()).unwrap_or_default();
    let saml = json!({
        "idpEntityId": text(saml_settings, "entityId"),
        "idpSSOUrl": idp_url,
        "idpCertificate": text(saml_settings, "idpCert"),
        "idpAdditionalCertificates": strings(saml_settings, "idpAdditionalCerts"),
        "idpMetadataUrl": text(saml_settings, "idpMetadataUrl"),
        "spEntityId": text(saml_settings, "spEntityId"),
        "spACSUrl": text(saml_settings, "spACSUrl"),
        "spCertificate": "",
        "attributeMapping": saml_settings.get("attributeMapping").filter(|v| v.is_object()).cloned()
            .unwrap_or_else(|| json!({})),
        "groupsMapping": groups_mapping,
        "defaultSSORoles": config.map(|c| c.default_roles.clone()).unwrap_or_default(),
        "redirectUrl": if auth_type == "saml" { redirect_url.clone() } else { String::new() },
        "lastSuccessTestTime": 0,
    });
    let oidc = json!({
        "name": text(oidc_settings, "name"),
        "clientId": text(oidc_settings, "clientId"),
        // Secrets are write-only.
        "clientSecret": "",
        "redirectUrl": text(oidc_settings, "redirectUrl"),
        "authUrl": text(oidc_settings, "authUrl"),
        "tokenUrl": text(oidc_settings, "tokenUrl"),
        "userDataUrl": text(oidc_settings, "userDataUrl"),
        "scope": strings(oidc_settings, "scope"),
        "JWKsUrl": text(oidc_settings, "JWKsUrl"),
        "userAttrMapping": oidc_settings.get("userAttrMapping").filter(|v| v.is_object()).cloned()
            .unwrap_or_else(|| json!({})),
        "manageProviderTokens": oidc_settings.get("manageProviderTokens").and_then(Value::as_bool)
            .unwrap_or(false),
        "callbackDomain": text(oidc_settings, "callbackDomain"),
        "prompt": strings(oidc_settings, "prompt"),
        "grantType": match text(oidc_settings, "grantType").as_str() {
            "" => "authorization_code".to_owned(),
            g => g.to_owned(),
        },
        "issuer": text(oidc_settings, "issuer"),
        "lastSuccessTestTime": 0,
    });
    json!({
        "tenant": {
            "id": t.id,
            "name": t.name,
            "selfProvisioningDomains": t.domains,
            "customAttributes": t.custom_attributes,
            "authType": auth_type,
            "domains": config.map(|c| c.domains.clone()).unwrap_or_default(),
        },
        "saml": saml,
        "oidc": oidc,
    })
}

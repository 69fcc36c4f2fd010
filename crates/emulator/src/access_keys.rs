//! Access keys: the management endpoints (`/v1/mgmt/accesskey*`: create,
//! load, search, update, deactivate, activate, delete, rotate and the batch
//! variants; py `management/access_key.py`, node `management/accesskey`)
//! and the exchange (`POST /v1/auth/accesskey/exchange`).
//!
//! The exchange honours everything a key carries: roles and tenants (or the
//! bound user's, for a key created with `userId`), custom claims, expiry,
//! status and permitted IPs (checked against the TCP peer). A refused
//! exchange is `401 E061301` whatever the reason (unknown, deleted,
//! deactivated, expired, IP not permitted), so the answer is no oracle; the
//! message names the reason for whoever reads the emulator's answer.
//! Every exchange is counted by path like any call
//! (`Emulator::calls("/v1/auth/accesskey/exchange")`).

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::{
    Req, Resp, error, json, missing, not_found, not_found_entity, ok_empty, str_field, strings,
};
use crate::shared::Shared;
use crate::state::{AccessKey, AccessKeySpec, State, TenantMembership, parse_permitted_ips};
use crate::tokens::internal;
use crate::util::now_secs;

/// `/v1/mgmt/accesskey*`, already authorized by the management key.
pub(crate) fn manage(shared: &Shared, req: &Req, body: &Map<String, Value>) -> Resp {
    let mut st = shared.lock();
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/v1/mgmt/accesskey/create") => create(&mut st, body),
        (&Method::GET, "/v1/mgmt/accesskey") => {
            let id = req.query_any(&["id"]).unwrap_or_default();
            match st.access_keys.get(id) {
                Some(k) => json(StatusCode::OK, &json!({ "key": key_json(&st, k) })),
                None => key_not_found(),
            }
        }
        (&Method::POST, "/v1/mgmt/accesskey/search") => search(&st, body),
        (&Method::POST, "/v1/mgmt/accesskey/update") => update(&mut st, body),
        (&Method::POST, "/v1/mgmt/accesskey/deactivate") => set_active(&mut st, body, false),
        (&Method::POST, "/v1/mgmt/accesskey/activate") => set_active(&mut st, body, true),
        (&Method::POST, "/v1/mgmt/accesskey/delete") => {
            let id = str_field(body, &["id"]);
            if st.access_keys.remove(id).is_some() {
                ok_empty()
            } else {
                key_not_found()
            }
        }
        (&Method::POST, "/v1/mgmt/accesskey/rotate") => rotate(&mut st, body),
        (
            &Method::POST,
            path @ ("/v1/mgmt/accesskey/activate/batch"
            | "/v1/mgmt/accesskey/deactivate/batch"
            | "/v1/mgmt/accesskey/delete/batch"),
        ) => {
            let ids = strings(body, "ids");
            if let Some(id) = ids.iter().find(|id| !st.access_keys.contains_key(*id)) {
                return not_found_entity(&format!("access key {id:?}"));
            }
            for id in &ids {
                if path.contains("/delete/") {
                    st.access_keys.remove(id);
                } else if let Some(k) = st.access_keys.get_mut(id) {
                    k.active = path.contains("/activate/");
                }
            }
            ok_empty()
        }
        _ => not_found(),
    }
}

fn key_not_found() -> Resp {
    not_found_entity("access key")
}

/// The management view of a key (node `AccessKey`, go `AccessKeyResponse`);
/// never the cleartext.
fn key_json(st: &State, k: &AccessKey) -> Value {
    let tenants: Vec<Value> = k
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenantId": t.id,
                "roleNames": t.roles,
                "tenantName": st.tenants.get(&t.id).map(|x| x.name.clone()).unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "id": k.id,
        "name": k.name,
        "description": k.description,
        "roleNames": k.roles,
        "keyTenants": tenants,
        "status": if k.active { "active" } else { "inactive" },
        "createdTime": k.created_time,
        "expireTime": k.expire_time,
        "createdBy": k.created_by,
        "clientId": k.id,
        "boundUserId": k.user_id,
        "customClaims": k.custom_claims,
        "permittedIps": k.permitted_ips,
        "customAttributes": k.custom_attributes,
    })
}

/// `keyTenants: [{tenantId, roleNames}]`.
fn key_tenants(body: &Map<String, Value>) -> Vec<TenantMembership> {
    body.get("keyTenants")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_object)
                .map(|t| TenantMembership {
                    id: str_field(t, &["tenantId"]).to_owned(),
                    roles: strings(t, "roleNames"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn object(body: &Map<String, Value>, key: &str) -> Map<String, Value> {
    body.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn invalid(message: &str) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E011004",
        "Invalid arguments",
        message,
    )
}

/// `POST /v1/mgmt/accesskey/create` `{name, expireTime, roleNames,
/// keyTenants, userId, customClaims, description, permittedIps,
/// customAttributes}` → `{key, cleartext}`.
fn create(st: &mut State, body: &Map<String, Value>) -> Resp {
    let name = str_field(body, &["name"]).to_owned();
    if name.is_empty() {
        return missing("name");
    }
    let unknown_tenant = key_tenants(body)
        .into_iter()
        .find(|t| !st.tenants.contains_key(&t.id));
    if let Some(t) = unknown_tenant {
        return invalid(&format!("No tenant {:?}", t.id));
    }
    let spec = AccessKeySpec {
        name: Some(name),
        description: Some(str_field(body, &["description"]).to_owned()),
        roles: strings(body, "roleNames"),
        tenants: key_tenants(body),
        expire_time: body.get("expireTime").and_then(Value::as_i64).unwrap_or(0),
        permitted_ips: strings(body, "permittedIps"),
        claims: object(body, "customClaims"),
        user_id: Some(str_field(body, &["userId"]).to_owned()).filter(|u| !u.is_empty()),
        custom_attributes: object(body, "customAttributes"),
        ..AccessKeySpec::default()
    };
    match st.create_access_key(spec, "management API") {
        Ok((id, cleartext)) => match st.access_keys.get(&id) {
            Some(k) => json(
                StatusCode::OK,
                &json!({ "key": key_json(st, k), "cleartext": cleartext }),
            ),
            None => internal(),
        },
        Err(reason) => invalid(&reason),
    }
}

/// `POST /v1/mgmt/accesskey/search` `{tenantIds, boundUserId, creatingUser,
/// customAttributes}` → `{keys}`; every given filter must hold.
fn search(st: &State, body: &Map<String, Value>) -> Resp {
    let tenant_ids = strings(body, "tenantIds");
    let bound = str_field(body, &["boundUserId"]);
    let creator = str_field(body, &["creatingUser"]);
    let attrs = object(body, "customAttributes");
    let keys: Vec<Value> = st
        .access_keys
        .values()
        .filter(|k| tenant_ids.is_empty() || k.tenants.iter().any(|t| tenant_ids.contains(&t.id)))
        .filter(|k| bound.is_empty() || k.user_id == bound)
        .filter(|k| creator.is_empty() || k.created_by == creator)
        .filter(|k| {
            attrs
                .iter()
                .all(|(a, v)| k.custom_attributes.get(a) == Some(v))
        })
        .map(|k| key_json(st, k))
        .collect();
    json(StatusCode::OK, &json!({ "keys": keys }))
}

/// `POST /v1/mgmt/accesskey/update` `{id, name, description?, customClaims?,
/// permittedIps?, customAttributes?, roleNames?, keyTenants?}` → `{key}`;
/// fields that are absent (or null) keep their value.
fn update(st: &mut State, body: &Map<String, Value>) -> Resp {
    let id = str_field(body, &["id"]).to_owned();
    let name = str_field(body, &["name"]).to_owned();
    if id.is_empty() {
        return missing("id");
    }
    if name.is_empty() {
        return missing("name");
    }
    let given = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    let nets = if given("permittedIps") {
        match parse_permitted_ips(&strings(body, "permittedIps")) {
            Ok(n) => Some(n),
            Err(reason) => return invalid(&reason),
        }
    } else {
        None
    };
    if given("keyTenants")
        && let Some(t) = key_tenants(body)
            .into_iter()
            .find(|t| !st.tenants.contains_key(&t.id))
    {
        return invalid(&format!("No tenant {:?}", t.id));
    }
    let Some(k) = st.access_keys.get_mut(&id) else {
        return key_not_found();
    };
    k.name = name;
    if given("description") {
        str_field(body, &["description"]).clone_into(&mut k.description);
    }
    if given("customClaims") {
        k.custom_claims = object(body, "customClaims");
    }
    if let Some(nets) = nets {
        k.permitted_ips = strings(body, "permittedIps");
        k.permitted_nets = nets;
    }
    if given("customAttributes") {
        k.custom_attributes = object(body, "customAttributes");
    }
    if given("roleNames") {
        k.roles = strings(body, "roleNames");
    }
    if given("keyTenants") {
        k.tenants = key_tenants(body);
    }
    match st.access_keys.get(&id) {
        Some(k) => json(StatusCode::OK, &json!({ "key": key_json(st, k) })),
        None => internal(),
    }
}

fn set_active(st: &mut State, body: &Map<String, Value>, active: bool) -> Resp {
    match st.access_keys.get_mut(str_field(body, &["id"])) {
        Some(k) => {
            k.active = active;
            ok_empty()
        }
        None => key_not_found(),
    }
}

/// `POST /v1/mgmt/accesskey/rotate` `{id}` → `{key, cleartext}`: a new
/// secret; the old one stops working at once.
fn rotate(st: &mut State, body: &Map<String, Value>) -> Resp {
    let id = str_field(body, &["id"]).to_owned();
    let Some(k) = st.access_keys.get_mut(&id) else {
        return key_not_found();
    };
    let cleartext = format!("{id}{}", crate::util::random_hex(24));
    k.secret.clone_from(&cleartext);
    match st.access_keys.get(&id) {
        Some(k) => json(
            StatusCode::OK,
            &json!({ "key": key_json(st, k), "cleartext": cleartext }),
        ),
        None => internal(),
    }
}

/// Why an exchange was refused (the answer is the same for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unknown,
    Inactive,
    Expired,
    IpNotPermitted,
}

fn refused(reason: Refusal) -> Resp {
    let message = match reason {
        Refusal::Unknown => "Unknown access key",
        Refusal::Inactive => "The access key is deactivated",
        Refusal::Expired => "The access key has expired",
        Refusal::IpNotPermitted => "The access key is not permitted from this IP address",
    };
    tracing::debug!(target: "portcullis::emulator", reason = ?reason, "access key exchange refused");
    error(
        StatusCode::UNAUTHORIZED,
        "E061301",
        "Access key is invalid",
        message,
    )
}

/// `POST /v1/auth/accesskey/exchange` with `Bearer pid:accessKey`, body
/// `{loginOptions: {customClaims?, selectedTenant?}}` →
/// `{keyId, sessionJwt, expiration}`. The session lives for the session
/// TTL, never beyond the key's own expiry.
pub(crate) fn exchange(shared: &Shared, req: &Req) -> Resp {
    let parts = req.bearer_parts();
    let secret = parts.get(1).map(String::as_str).unwrap_or_default();
    let body = req.json().unwrap_or_default();
    let issuer = shared.issuer();
    let mut st = shared.lock();
    let Some(key) = st.access_key_by_secret(secret).cloned() else {
        return refused(Refusal::Unknown);
    };
    let now = now_secs();
    if !key.active {
        return refused(Refusal::Inactive);
    }
    if key.expire_time != 0 && key.expire_time <= now {
        return refused(Refusal::Expired);
    }
    if let Some(peer) = req.peer
        && !key.permits(peer.ip())
    {
        return refused(Refusal::IpNotPermitted);
    }
    // A bound key carries its user's current authorizations.
    let (roles, tenants) = match st.users.get(&key.user_id) {
        Some(u) => (u.roles.clone(), u.tenants.clone()),
        None if key.user_id.is_empty() => (key.roles.clone(), key.tenants.clone()),
        None => return refused(Refusal::Unknown),
    };
    let mut claims = Map::new();
    claims.insert("roles".into(), json!(roles));
    claims.insert("permissions".into(), json!(st.permissions_of(&roles)));
    let tenant_claims: Map<String, Value> = tenants
        .iter()
        .map(|t| {
            let permissions = st.permissions_of(&t.roles);
            (
                t.id.clone(),
                json!({"roles": t.roles, "permissions": permissions}),
            )
        })
        .collect();
    claims.insert("tenants".into(), Value::Object(tenant_claims));
    claims.extend(key.custom_claims.clone());
    let options = body.get("loginOptions").and_then(Value::as_object);
    if let Some(custom) = options
        .and_then(|o| o.get("customClaims"))
        .and_then(Value::as_object)
    {
        claims.extend(custom.clone());
    }
    let dct = options
        .and_then(|o| o.get("selectedTenant"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if let Some(t) = dct
        && !tenants.iter().any(|m| m.id == t)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "E011004",
            "Invalid arguments",
            "The access key is not a member of the selected tenant",
        );
    }
    let mut custom = Map::new();
    if key.expire_time != 0 {
        // The session never outlives the key.
        let ttl = crate::state::secs(st.session_ttl);
        custom.insert(
            "exp".into(),
            json!(now.saturating_add(ttl).min(key.expire_time)),
        );
    }
    // The key's own id is the subject; the emulator's users never collide
    // with it (`K…` vs `U…`), so `issue_session` uses the claims above.
    match st.issue_session(
        &issuer,
        &key.id,
        &json!(["accesskey"]),
        dct,
        &claims,
        &custom,
    ) {
        Ok((session, exp)) => json(
            StatusCode::OK,
            &json!({"keyId": key.id, "sessionJwt": session, "expiration": exp}),
        ),
        Err(_) => internal(),
    }
}

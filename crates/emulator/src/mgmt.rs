//! The management API subset (`/v1/mgmt/*`, `/v2/mgmt/*`), authenticated with
//! `Authorization: Bearer <projectId>:<managementKey>`.
//!
//! Users (create, create/test, update, status, roles, tenants, load by login
//! id or user id, delete, search, delete all test users), tenants, roles,
//! permissions, the flow list, and the test-user helpers (generate OTP,
//! magic link, enchanted link, embedded link); access keys (`access_keys.rs`)
//! and SSO settings (`sso_settings.rs`) are served by their own modules. Paths and bodies follow py
//! `descope/management/*.py` and node `@descope/node-sdk` management.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::flow_pages::FLOW_IDS;
use crate::http::{
    Req, Resp, append_query, error, json, missing, not_found, not_found_entity, ok_empty,
    str_field, strings,
};
use crate::shared::Shared;
use crate::state::{
    LINK_TTL_SECS, PendingLogin, Permission, Role, State, Tenant, TenantMembership, User, UserSpec,
};
use crate::util::{now_secs, random_id};
use crate::{access_keys, sso_settings};

pub(crate) fn handle(shared: &Shared, req: &Req) -> Resp {
    if !authorized(shared, req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "E011003",
            "Unauthorized",
            "A valid management key is required: Authorization: Bearer <projectId>:<managementKey>",
        );
    }
    let body = if req.method == Method::GET {
        Map::new()
    } else {
        match req.json() {
            Ok(b) => b,
            Err(resp) => return resp,
        }
    };
    let path = req.path.as_str();
    match (&req.method, path) {
        (_, "/v1/mgmt/license") => json(StatusCode::OK, &json!({"rateLimitTier": "emulator"})),
        // === users ===
        (&Method::POST, "/v1/mgmt/user/create") => create_user(shared, &body, false),
        (&Method::POST, "/v1/mgmt/user/create/test") => create_user(shared, &body, true),
        (&Method::POST, "/v1/mgmt/user/update") => update_user(shared, &body),
        (&Method::GET, "/v1/mgmt/user") => load_user(shared, req),
        (&Method::POST, "/v1/mgmt/user/delete") => delete_user(shared, &body),
        (_, "/v1/mgmt/user/test/delete/all") => {
            let mut st = shared.lock();
            st.users.retain(|_, u| !u.test);
            ok_empty()
        }
        (&Method::POST, "/v2/mgmt/user/search") => search_users(shared, &body, false),
        (&Method::POST, "/v2/mgmt/user/search/test") => search_users(shared, &body, true),
        (&Method::POST, "/v1/mgmt/user/update/status") => {
            let status = str_field(&body, &["status"]).to_owned();
            with_user(shared, &body, |_, u| u.status = status)
        }
        (&Method::POST, "/v1/mgmt/user/update/name") => {
            let name = str_field(&body, &["displayName", "name"]).to_owned();
            with_user(shared, &body, |_, u| u.name = name)
        }
        (&Method::POST, "/v1/mgmt/user/update/email") => {
            let email = str_field(&body, &["email"]).to_owned();
            let verified = body
                .get("verified")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            with_user(shared, &body, |_, u| {
                u.email = email;
                u.verified_email = verified;
            })
        }
        (&Method::POST, "/v1/mgmt/user/update/role/set") => {
            let roles = strings(&body, "roleNames");
            let tenant = str_field(&body, &["tenantId"]).to_owned();
            with_user(shared, &body, |_, u| set_roles(u, &tenant, roles))
        }
        (&Method::POST, "/v1/mgmt/user/update/role/add" | "/v2/mgmt/user/update/role/add") => {
            let add = strings(&body, "roleNames");
            let tenant = str_field(&body, &["tenantId"]).to_owned();
            with_user(shared, &body, |_, u| {
                let mut roles = current_roles(u, &tenant);
                for r in add {
                    if !roles.contains(&r) {
                        roles.push(r);
                    }
                }
                set_roles(u, &tenant, roles);
            })
        }
        (&Method::POST, "/v1/mgmt/user/update/role/remove") => {
            let remove = strings(&body, "roleNames");
            let tenant = str_field(&body, &["tenantId"]).to_owned();
            with_user(shared, &body, |_, u| {
                let roles = current_roles(u, &tenant)
                    .into_iter()
                    .filter(|r| !remove.contains(r))
                    .collect();
                set_roles(u, &tenant, roles);
            })
        }
        (&Method::POST, "/v1/mgmt/user/update/tenant/add") => {
            let tenant = str_field(&body, &["tenantId"]).to_owned();
            with_user(shared, &body, |_, u| {
                if !u.tenants.iter().any(|t| t.id == tenant) {
                    u.tenants.push(TenantMembership {
                        id: tenant,
                        roles: Vec::new(),
                    });
                }
            })
        }
        (&Method::POST, "/v1/mgmt/user/update/tenant/remove") => {
            let tenant = str_field(&body, &["tenantId"]).to_owned();
            with_user(shared, &body, |_, u| u.tenants.retain(|t| t.id != tenant))
        }
        (
            &Method::POST,
            "/v1/mgmt/user/password/set"
            | "/v1/mgmt/user/password/set/active"
            | "/v1/mgmt/user/password/set/temporary",
        ) => {
            let password = str_field(&body, &["password"]).to_owned();
            with_user(shared, &body, |_, u| u.password = Some(password))
        }
        (&Method::POST, "/v1/mgmt/user/logout") => {
            let mut st = shared.lock();
            let id = match str_field(&body, &["userId"]) {
                "" => st.user_id_by_login(str_field(&body, &["loginId"])),
                id => Some(id.to_owned()),
            };
            match id {
                Some(id) => {
                    st.revoke_user(&id);
                    ok_empty()
                }
                None => user_not_found(),
            }
        }
        // === test-user helpers ===
        (&Method::POST, "/v1/mgmt/tests/generate/otp") => generate_otp(shared, &body),
        (&Method::POST, "/v1/mgmt/tests/generate/magiclink") => generate_link(shared, &body, false),
        (&Method::POST, "/v1/mgmt/tests/generate/enchantedlink") => {
            generate_link(shared, &body, true)
        }
        (
            &Method::POST,
            "/v1/mgmt/user/signin/embeddedlink" | "/v1/mgmt/user/signup/embeddedlink",
        ) => embedded_link(shared, &body, path.contains("signup")),
        // === tenants ===
        (&Method::POST, "/v1/mgmt/tenant/create") => upsert_tenant(shared, &body, true),
        (&Method::POST, "/v1/mgmt/tenant/update") => upsert_tenant(shared, &body, false),
        (&Method::POST, "/v1/mgmt/tenant/delete") => {
            let id = str_field(&body, &["id"]);
            if shared.lock().tenants.remove(id).is_some() {
                ok_empty()
            } else {
                tenant_not_found()
            }
        }
        (&Method::GET, "/v1/mgmt/tenant") => {
            let id = req.query.get("id").map(String::as_str).unwrap_or_default();
            match shared.lock().tenants.get(id) {
                Some(t) => json(StatusCode::OK, &tenant_json(t)),
                None => tenant_not_found(),
            }
        }
        (&Method::GET, "/v1/mgmt/tenant/all") | (&Method::POST, "/v1/mgmt/tenant/search") => {
            let st = shared.lock();
            let tenants: Vec<Value> = st.tenants.values().map(tenant_json).collect();
            json(StatusCode::OK, &json!({ "tenants": tenants }))
        }
        // === roles ===
        (&Method::POST, "/v1/mgmt/role/create") => {
            let name = str_field(&body, &["name"]).to_owned();
            if name.is_empty() {
                return missing("name");
            }
            let role = Role {
                name: name.clone(),
                description: str_field(&body, &["description"]).to_owned(),
                permissions: strings(&body, "permissionNames"),
                tenant_id: str_field(&body, &["tenantId"]).to_owned(),
            };
            shared.lock().roles.insert(name, role);
            ok_empty()
        }
        (&Method::POST, "/v1/mgmt/role/update") => {
            let name = str_field(&body, &["name"]);
            let mut st = shared.lock();
            let Some(mut role) = st.roles.remove(name) else {
                return not_found_entity("role");
            };
            if let Some(new_name) = body.get("newName").and_then(Value::as_str)
                && !new_name.is_empty()
            {
                new_name.clone_into(&mut role.name);
            }
            role.description = str_field(&body, &["description"]).to_owned();
            role.permissions = strings(&body, "permissionNames");
            st.roles.insert(role.name.clone(), role);
            ok_empty()
        }
        (&Method::POST, "/v1/mgmt/role/delete") => {
            if shared
                .lock()
                .roles
                .remove(str_field(&body, &["name"]))
                .is_some()
            {
                ok_empty()
            } else {
                not_found_entity("role")
            }
        }
        (&Method::GET, "/v1/mgmt/role/all") | (&Method::POST, "/v1/mgmt/role/search") => {
            let st = shared.lock();
            let roles: Vec<Value> = st
                .roles
                .values()
                .map(|r| {
                    json!({"name": r.name, "description": r.description,
                           "permissionNames": r.permissions, "tenantId": r.tenant_id})
                })
                .collect();
            json(StatusCode::OK, &json!({ "roles": roles }))
        }
        // === permissions ===
        (&Method::POST, "/v1/mgmt/permission/create") => {
            let name = str_field(&body, &["name"]).to_owned();
            if name.is_empty() {
                return missing("name");
            }
            let description = str_field(&body, &["description"]).to_owned();
            shared
                .lock()
                .permissions
                .insert(name.clone(), Permission { name, description });
            ok_empty()
        }
        (&Method::POST, "/v1/mgmt/permission/update") => {
            let name = str_field(&body, &["name"]);
            let mut st = shared.lock();
            let Some(mut p) = st.permissions.remove(name) else {
                return not_found_entity("permission");
            };
            if let Some(new_name) = body.get("newName").and_then(Value::as_str)
                && !new_name.is_empty()
            {
                rename_permission(&mut st, &p.name, new_name);
                new_name.clone_into(&mut p.name);
            }
            p.description = str_field(&body, &["description"]).to_owned();
            st.permissions.insert(p.name.clone(), p);
            ok_empty()
        }
        (&Method::POST, "/v1/mgmt/permission/delete") => {
            if shared
                .lock()
                .permissions
                .remove(str_field(&body, &["name"]))
                .is_some()
            {
                ok_empty()
            } else {
                not_found_entity("permission")
            }
        }
        (&Method::GET, "/v1/mgmt/permission/all") => {
            let st = shared.lock();
            let permissions: Vec<Value> = st
                .permissions
                .values()
                .map(|p| json!({"name": p.name, "description": p.description}))
                .collect();
            json(StatusCode::OK, &json!({ "permissions": permissions }))
        }
        // === access keys ===
        _ if path.starts_with("/v1/mgmt/accesskey") => access_keys::manage(shared, req, &body),
        // === flows ===
        (&Method::POST, "/v1/mgmt/flow/list") => {
            let flows: Vec<Value> = FLOW_IDS
                .iter()
                .map(|id| {
                    json!({"id": id, "name": flow_name(id), "description": "Emulated by Portcullis",
                           "disabled": false})
                })
                .collect();
            let total = flows.len();
            json(StatusCode::OK, &json!({ "flows": flows, "total": total }))
        }
        _ if path.starts_with("/v1/mgmt/sso/") || path.starts_with("/v2/mgmt/sso/") => {
            sso_settings::manage(shared, req, &body)
        }
        _ => not_found(),
    }
}

/// The display name of an emulated flow.
fn flow_name(id: &str) -> &'static str {
    match id {
        "sign-up-or-in" => "Sign Up or In",
        _ => "Sign In",
    }
}

/// `Bearer <pid>:<managementKey>` with the configured key, else the control
/// token when one is set, else any non-empty key.
fn authorized(shared: &Shared, req: &Req) -> bool {
    let parts = req.bearer_parts();
    let (Some(pid), Some(key)) = (parts.first(), parts.get(1)) else {
        return false;
    };
    if pid != &shared.project_id || key.is_empty() {
        return false;
    }
    match shared
        .management_key
        .as_ref()
        .or(shared.control_token.as_ref())
    {
        Some(expected) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(key.as_bytes(), expected.as_bytes())
                .is_ok()
        }
        None => true,
    }
}

fn user_not_found() -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E112102",
        "User not found",
        "No user with this login id or user id",
    )
}

fn tenant_not_found() -> Resp {
    not_found_entity("tenant")
}

fn user_json(st: &State, u: &User) -> Value {
    json!({ "user": st.user_response(u) })
}

/// The user a management body names by `loginId` or `userId`.
fn find_user_id(st: &State, body: &Map<String, Value>) -> Option<String> {
    match str_field(body, &["userId"]) {
        "" => st.user_id_by_login(str_field(body, &["loginId"])),
        id => st.users.contains_key(id).then(|| id.to_owned()),
    }
}

/// Applies `f` to the named user and answers `{user}`.
fn with_user(
    shared: &Shared,
    body: &Map<String, Value>,
    f: impl FnOnce(&State, &mut User),
) -> Resp {
    let mut st = shared.lock();
    let Some(id) = find_user_id(&st, body) else {
        return user_not_found();
    };
    let Some(mut user) = st.users.remove(&id) else {
        return user_not_found();
    };
    f(&st, &mut user);
    let resp = user_json(&st, &user);
    st.users.insert(id, user);
    json(StatusCode::OK, &resp)
}

fn current_roles(u: &User, tenant: &str) -> Vec<String> {
    if tenant.is_empty() {
        u.roles.clone()
    } else {
        u.tenants
            .iter()
            .find(|t| t.id == tenant)
            .map(|t| t.roles.clone())
            .unwrap_or_default()
    }
}

fn set_roles(u: &mut User, tenant: &str, roles: Vec<String>) {
    if tenant.is_empty() {
        u.roles = roles;
    } else if let Some(t) = u.tenants.iter_mut().find(|t| t.id == tenant) {
        t.roles = roles;
    } else {
        u.tenants.push(TenantMembership {
            id: tenant.to_owned(),
            roles,
        });
    }
}

/// Fills a user from a create/update body (py `_compose_update_body`).
fn apply_user_body(u: &mut User, body: &Map<String, Value>) {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(v) = text("email") {
        u.email = v;
    }
    if let Some(v) = text("phone") {
        u.phone = v;
    }
    if let Some(v) = text("name").or_else(|| text("displayName")) {
        u.name = v;
    }
    if let Some(v) = text("givenName") {
        u.given_name = v;
    }
    if let Some(v) = text("middleName") {
        u.middle_name = v;
    }
    if let Some(v) = text("familyName") {
        u.family_name = v;
    }
    if let Some(v) = text("picture") {
        u.picture = v;
    }
    if let Some(v) = text("status").filter(|s| !s.is_empty()) {
        u.status = v;
    }
    u.roles = strings(body, "roleNames");
    u.tenants = body
        .get("userTenants")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let obj = t.as_object()?;
                    Some(TenantMembership {
                        id: str_field(obj, &["tenantId"]).to_owned(),
                        roles: strings(obj, "roleNames"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(v) = body.get("customAttributes").and_then(Value::as_object) {
        u.custom_attributes = v.clone();
    }
    u.verified_email = body
        .get("verifiedEmail")
        .and_then(Value::as_bool)
        .unwrap_or(u.verified_email);
    u.verified_phone = body
        .get("verifiedPhone")
        .and_then(Value::as_bool)
        .unwrap_or(u.verified_phone);
    for extra in strings(body, "additionalLoginIds") {
        if !u.login_ids.contains(&extra) {
            u.login_ids.push(extra);
        }
    }
}

fn create_user(shared: &Shared, body: &Map<String, Value>, test: bool) -> Resp {
    let login_id = str_field(body, &["loginId"]);
    if login_id.is_empty() {
        return missing("loginId");
    }
    let mut st = shared.lock();
    if st.user_by_login(login_id).is_some() {
        return error(
            StatusCode::CONFLICT,
            "E062107",
            "User already exists",
            "A user with this login id already exists",
        );
    }
    let mut user = User {
        user_id: random_id("U"),
        login_ids: vec![login_id.to_owned()],
        status: "enabled".to_owned(),
        created_time: now_secs(),
        test: test || body.get("test").and_then(Value::as_bool).unwrap_or(false),
        ..User::default()
    };
    apply_user_body(&mut user, body);
    if user.email.is_empty() && login_id.contains('@') {
        login_id.clone_into(&mut user.email);
    }
    let resp = user_json(&st, &user);
    st.users.insert(user.user_id.clone(), user);
    json(StatusCode::OK, &resp)
}

fn update_user(shared: &Shared, body: &Map<String, Value>) -> Resp {
    with_user(shared, body, |_, u| apply_user_body(u, body))
}

fn load_user(shared: &Shared, req: &Req) -> Resp {
    let st = shared.lock();
    let user = if let Some(id) = req.query_any(&["userId", "userid"]) {
        st.users.get(id)
    } else if let Some(login) = req.query_any(&["loginId", "loginid"]) {
        st.user_by_login(login)
    } else {
        return missing("loginId");
    };
    match user {
        Some(u) => json(StatusCode::OK, &user_json(&st, u)),
        None => user_not_found(),
    }
}

fn delete_user(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let mut st = shared.lock();
    // Deleting a missing user succeeds, as in Descope.
    if let Some(id) = find_user_id(&st, body) {
        st.users.remove(&id);
        st.revoke_user(&id);
    }
    ok_empty()
}

fn search_users(shared: &Shared, body: &Map<String, Value>, test_only: bool) -> Resp {
    let st = shared.lock();
    let tenant_ids = strings(body, "tenantIds");
    let role_names = strings(body, "roleNames");
    let login_ids = strings(body, "loginIds");
    let emails = strings(body, "emails");
    let statuses = strings(body, "statuses");
    let text = str_field(body, &["text"]).to_lowercase();
    let with_test = test_only
        || body
            .get("withTestUser")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let users: Vec<Value> = st
        .users
        .values()
        .filter(|u| {
            if test_only {
                u.test
            } else {
                with_test || !u.test
            }
        })
        .filter(|u| tenant_ids.is_empty() || u.tenants.iter().any(|t| tenant_ids.contains(&t.id)))
        .filter(|u| role_names.is_empty() || u.roles.iter().any(|r| role_names.contains(r)))
        .filter(|u| login_ids.is_empty() || u.login_ids.iter().any(|l| login_ids.contains(l)))
        .filter(|u| emails.is_empty() || emails.contains(&u.email))
        .filter(|u| statuses.is_empty() || statuses.contains(&u.status))
        .filter(|u| {
            text.is_empty()
                || u.name.to_lowercase().contains(&text)
                || u.email.to_lowercase().contains(&text)
                || u.login_ids.iter().any(|l| l.to_lowercase().contains(&text))
        })
        .map(|u| serde_json::to_value(st.user_response(u)).unwrap_or(Value::Null))
        .collect();
    let total = users.len();
    json(StatusCode::OK, &json!({ "users": users, "total": total }))
}

fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "selfProvisioningDomains": t.domains,
        "customAttributes": t.custom_attributes,
        "enforceSSO": t.sso,
    })
}

fn upsert_tenant(shared: &Shared, body: &Map<String, Value>, create: bool) -> Resp {
    let mut st = shared.lock();
    let id = match str_field(body, &["id"]) {
        "" if create => random_id("T"),
        "" => return missing("id"),
        id => id.to_owned(),
    };
    if create && st.tenants.contains_key(&id) {
        return error(
            StatusCode::CONFLICT,
            "E011004",
            "Tenant already exists",
            "A tenant with this id already exists",
        );
    }
    if !create && !st.tenants.contains_key(&id) {
        return tenant_not_found();
    }
    let tenant = st.tenants.entry(id.clone()).or_insert_with(|| Tenant {
        id: id.clone(),
        ..Tenant::default()
    });
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        name.clone_into(&mut tenant.name);
    }
    if body.contains_key("selfProvisioningDomains") {
        tenant.domains = strings(body, "selfProvisioningDomains");
    }
    if let Some(attrs) = body.get("customAttributes").and_then(Value::as_object) {
        tenant.custom_attributes = attrs.clone();
    }
    if let Some(sso) = body.get("enforceSSO").and_then(Value::as_bool) {
        tenant.sso = sso;
    }
    if create {
        json(StatusCode::OK, &json!({ "id": id }))
    } else {
        ok_empty()
    }
}

fn rename_permission(st: &mut State, old: &str, new: &str) {
    for role in st.roles.values_mut() {
        for p in &mut role.permissions {
            if p == old {
                new.clone_into(p);
            }
        }
    }
}

/// The user a test helper names, creating nothing: 400 when unknown, and
/// when not a test user (Descope's `/v1/mgmt/tests/generate/*` only serve
/// users created with `user/create/test`).
fn helper_user(st: &State, body: &Map<String, Value>) -> Result<String, Resp> {
    let login_id = str_field(body, &["loginId"]);
    if login_id.is_empty() {
        return Err(missing("loginId"));
    }
    let user_id = st.user_id_by_login(login_id).ok_or_else(user_not_found)?;
    if !st.users.get(&user_id).is_some_and(|u| u.test) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "E011004",
            "Invalid arguments",
            "The test-user helpers only serve test users (user/create/test)",
        ));
    }
    Ok(user_id)
}

fn generate_otp(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let mut st = shared.lock();
    if let Err(resp) = helper_user(&st, body) {
        return resp;
    }
    let code = st.new_otp(&login_id, false, None);
    json(StatusCode::OK, &json!({"code": code, "loginId": login_id}))
}

fn generate_link(shared: &Shared, body: &Map<String, Value>, enchanted: bool) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let uri = str_field(body, &["URI", "redirectUrl", "redirectURL"]).to_owned();
    let mut st = shared.lock();
    let user_id = match helper_user(&st, body) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let login = PendingLogin {
        user_id,
        amr: "email",
        expires_at: now_secs().saturating_add(LINK_TTL_SECS),
        custom_claims: Map::new(),
        tenant: None,
        first_seen: false,
        step_up: None,
    };
    if enchanted {
        let (token, pending_ref) = st.new_enchanted(login);
        let link = append_query(&uri, "t", &token);
        json(
            StatusCode::OK,
            &json!({"link": link, "loginId": login_id, "pendingRef": pending_ref}),
        )
    } else {
        let token = st.new_token(login);
        let link = append_query(&uri, "t", &token);
        json(StatusCode::OK, &json!({"link": link, "loginId": login_id}))
    }
}

fn embedded_link(shared: &Shared, body: &Map<String, Value>, signup: bool) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    if login_id.is_empty() {
        return missing("loginId");
    }
    let mut st = shared.lock();
    let (user_id, first_seen) = match st.user_id_by_login(&login_id) {
        Some(id) => (id, false),
        None if signup => {
            let user = body.get("user").and_then(Value::as_object).cloned();
            let mut spec = UserSpec {
                login_id: login_id.clone(),
                ..UserSpec::default()
            };
            if let Some(user) = user {
                spec.name = user.get("name").and_then(Value::as_str).map(str::to_owned);
                spec.email = user.get("email").and_then(Value::as_str).map(str::to_owned);
            }
            (st.upsert_user(spec), true)
        }
        None => return user_not_found(),
    };
    let timeout = body
        .get("timeout")
        .and_then(Value::as_i64)
        .filter(|t| *t > 0)
        .unwrap_or(LINK_TTL_SECS);
    let login = PendingLogin {
        user_id,
        amr: "email",
        expires_at: now_secs().saturating_add(timeout),
        custom_claims: body
            .get("customClaims")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        tenant: None,
        first_seen,
        step_up: None,
    };
    let token = st.new_token(login);
    json(StatusCode::OK, &json!({ "token": token }))
}

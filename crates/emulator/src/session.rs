//! The key endpoints and the session endpoints: refresh, logout, me, tenant
//! select, validate.

use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::{Req, Resp, error, json, not_found, ok_empty, str_field};
use crate::shared::Shared;
use crate::state::{Issued, RefreshRefusal, State};
use crate::tokens::{cookie_value, internal, jwt_response, refused};
use portcullis_wire::{JwtResponse, MeTenant, MeTenantsResponse, SelectTenantRequest};

/// `GET /v2/keys/{pid}` (`{"keys": [...]}`) and `/v1/keys/{pid}` (bare array).
pub(crate) fn keys(shared: &Shared, req: &Req, pid: &str, v2: bool) -> Resp {
    if req.method != Method::GET {
        return not_found();
    }
    if pid != shared.project_id {
        return error(
            StatusCode::BAD_REQUEST,
            "E011003",
            "Invalid project",
            "No such project in this emulator",
        );
    }
    let jwks = shared.lock().keys.jwks();
    if v2 {
        json(StatusCode::OK, &jwks)
    } else {
        json(StatusCode::OK, &jwks["keys"])
    }
}

// === session endpoints ===

/// The refresh token of a session call: `Bearer pid:DSR[:key]`, else a `DSR` cookie.
fn refresh_token(req: &Req) -> Option<String> {
    let parts = req.bearer_parts();
    if let Some(token) = parts.get(1).filter(|t| !t.is_empty()) {
        return Some(token.clone());
    }
    cookie_value(req, "DSR")
}

/// Verifies the session call's refresh token and returns its claims.
fn authenticate(shared: &Shared, req: &Req) -> Result<Map<String, Value>, Resp> {
    authenticate_in(&shared.lock(), req)
}

/// [`authenticate`] under a held state lock, so that a check and the
/// revocation that follows it (rotation) are one atomic step.
fn authenticate_in(st: &State, req: &Req) -> Result<Map<String, Value>, Resp> {
    let Some(token) = refresh_token(req) else {
        return Err(refused(None));
    };
    let claims = st.check_refresh(&token).map_err(|r| refused(Some(r)))?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if st.users.get(sub).is_some_and(|u| u.status == "disabled") {
        return Err(refused(Some(RefreshRefusal::Revoked)));
    }
    Ok(claims)
}

/// Claims a refresh carries forward for subjects the emulator does not know,
/// and for custom claims: everything but the registered ones.
fn carried(claims: &Map<String, Value>) -> Map<String, Value> {
    const REGISTERED: &[&str] = &[
        "drn", "iss", "sub", "iat", "exp", "nbf", "jti", "amr", "dct",
    ];
    claims
        .iter()
        .filter(|(k, _)| !REGISTERED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `POST /v1/auth/refresh` (and `try-refresh`, which answers `{}` instead of 401).
pub(crate) fn refresh(shared: &Shared, req: &Req, lenient: bool) -> Resp {
    let issuer = shared.issuer();
    // One lock for check, revoke and issue: with rotation, two concurrent
    // refreshes with the same token must not both succeed.
    let mut st = shared.lock();
    let claims = match authenticate_in(&st, req) {
        Ok(c) => c,
        Err(resp) => {
            // A rotated token used again: with family revocation on, its
            // whole family (the sign-in's current token too) is revoked.
            if let Some(token) = refresh_token(req)
                && st.revoke_family_on_reuse(&token)
            {
                st.family_revocations += 1;
            }
            return if lenient { ok_empty() } else { resp };
        }
    };
    let old = refresh_token(req).unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let amr = claims.get("amr").cloned().unwrap_or_else(|| json!([]));
    let dct = claims.get("dct").and_then(Value::as_str).map(str::to_owned);
    let carried = carried(&claims);
    let known = st.users.contains_key(&sub);
    // A known user's custom claims live in the refresh token; an unknown
    // subject's identity claims do too (minted tokens).
    let custom = if known { carried.clone() } else { Map::new() };
    let session = st.issue_session(&issuer, &sub, &amr, dct.as_deref(), &carried, &custom);
    let Ok((session, session_exp)) = session else {
        return internal();
    };
    let (refresh, refresh_exp, new_refresh) = if st.refresh_rotation {
        match st.issue_refresh(&issuer, &sub, &amr, dct.as_deref(), &carried) {
            Ok((t, e)) => {
                st.rotate_token(&claims, &t);
                (t, e, true)
            }
            Err(_) => return internal(),
        }
    } else {
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        (old, exp, false)
    };
    let issued = Issued {
        session,
        session_exp,
        refresh,
        refresh_exp,
    };
    jwt_response(&st, &issued, &sub, false, new_refresh)
}

/// `POST /v1/auth/logout` / `logoutall`: revoke this refresh token, or all of
/// the user's; clear the cookies.
pub(crate) fn logout(shared: &Shared, req: &Req, all: bool) -> Resp {
    let claims = match authenticate(shared, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let mut st = shared.lock();
    st.revoke_token(&claims);
    if all {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        st.revoke_user(sub);
    }
    let mut resp = json(
        StatusCode::OK,
        &JwtResponse {
            cookie_path: "/".to_owned(),
            ..JwtResponse::default()
        },
    );
    for name in ["DS", "DSR"] {
        let cookie = format!("{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

/// The user of a session call, or 401/404.
fn current_user(shared: &Shared, req: &Req) -> Result<(Map<String, Value>, String), Resp> {
    let claims = authenticate(shared, req)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !shared.lock().users.contains_key(&sub) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "E062108",
            "User not found",
            "The token's user does not exist in the emulator",
        ));
    }
    Ok((claims, sub))
}

/// `GET /v1/auth/me` → UserResponse.
pub(crate) fn me(shared: &Shared, req: &Req) -> Resp {
    let (_, sub) = match current_user(shared, req) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let st = shared.lock();
    match st.users.get(&sub) {
        Some(user) => json(StatusCode::OK, &st.user_response(user)),
        None => not_found(),
    }
}

/// `POST /v1/auth/me/tenants` body `{dct, ids}` → `{tenants: [...]}`.
pub(crate) fn me_tenants(shared: &Shared, req: &Req) -> Resp {
    let body = match req.json() {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let (claims, sub) = match current_user(shared, req) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let want_dct = body.get("dct").and_then(Value::as_bool).unwrap_or(false);
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let dct = claims.get("dct").and_then(Value::as_str);
    let st = shared.lock();
    let Some(user) = st.users.get(&sub) else {
        return not_found();
    };
    let tenants = user
        .tenants
        .iter()
        .filter(|t| {
            if want_dct {
                Some(t.id.as_str()) == dct
            } else {
                ids.is_empty() || ids.contains(&t.id)
            }
        })
        .map(|t| {
            let tenant = st.tenants.get(&t.id);
            MeTenant {
                id: t.id.clone(),
                name: tenant.map(|x| x.name.clone()).unwrap_or_default(),
                custom_attributes: tenant
                    .map(|x| x.custom_attributes.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    json(StatusCode::OK, &MeTenantsResponse { tenants })
}

/// `GET /v1/auth/me/history` → an empty history.
pub(crate) fn me_history(shared: &Shared, req: &Req) -> Resp {
    match current_user(shared, req) {
        Ok(_) => json(StatusCode::OK, &json!([])),
        Err(resp) => resp,
    }
}

/// `POST /v1/auth/tenant/select` body `{tenant}` → JWTResponse with `dct`.
pub(crate) fn select_tenant(shared: &Shared, req: &Req) -> Resp {
    let body: SelectTenantRequest = match req.json() {
        Ok(map) => serde_json::from_value(Value::Object(map)).unwrap_or_default(),
        Err(resp) => return resp,
    };
    let claims = match authenticate(shared, req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let amr = claims.get("amr").cloned().unwrap_or_else(|| json!([]));
    let carried = carried(&claims);
    let issuer = shared.issuer();
    let mut st = shared.lock();
    if let Some(user) = st.users.get(&sub)
        && !body.tenant.is_empty()
        && !user.tenants.iter().any(|t| t.id == body.tenant)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "E011004",
            "Invalid arguments",
            "The user is not a member of this tenant",
        );
    }
    let dct = (!body.tenant.is_empty()).then_some(body.tenant.as_str());
    // The selected tenant lives in the refresh token, so a new one is issued;
    // the old one stays valid unless rotation is on.
    if st.refresh_rotation {
        st.revoke_token(&claims);
    }
    let known = st.users.contains_key(&sub);
    let custom = if known { carried.clone() } else { Map::new() };
    let Ok((session, session_exp)) = st.issue_session(&issuer, &sub, &amr, dct, &carried, &custom)
    else {
        return internal();
    };
    let Ok((refresh, refresh_exp)) = st.issue_refresh(&issuer, &sub, &amr, dct, &carried) else {
        return internal();
    };
    let issued = Issued {
        session,
        session_exp,
        refresh,
        refresh_exp,
    };
    jwt_response(&st, &issued, &sub, false, true)
}

/// `POST /v1/auth/validate` with `Bearer pid:sessionJwt` → `{parsedJWT}`.
pub(crate) fn validate(shared: &Shared, req: &Req) -> Resp {
    let parts = req.bearer_parts();
    let token = parts.get(1).map(String::as_str).unwrap_or_default();
    let body = req.json().unwrap_or_default();
    let token = if token.is_empty() {
        str_field(&body, &["sessionJwt", "jwt"])
    } else {
        token
    };
    match shared.lock().keys.verify(token) {
        Ok(claims) => json(StatusCode::OK, &json!({ "parsedJWT": claims })),
        Err(_) => error(
            StatusCode::UNAUTHORIZED,
            "E061301",
            "Unauthorized",
            "The session token is invalid or expired",
        ),
    }
}

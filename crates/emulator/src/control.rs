//! The control API under `/emulator/*`: what the Rust handle does, over HTTP,
//! for users' CI in any language. JSON in, JSON out.
//!
//! When a control token is set, every endpoint except the hosted provider
//! pages (`/emulator/oauth/*`, `/emulator/sso/*`) needs `Authorization: Bearer
//! <token>`; the HTML outbox also takes `?control_token=` for browsers.
//!
//! | method + path | body | answer |
//! |---|---|---|
//! | `GET health` | — | `{ok, projectId, baseUrl}` |
//! | `POST mint` | `{sub, refresh?, ttlSecs?, claims?}` | `{token}` |
//! | `POST rotate-keys` | `{dropOld?}` | `{kid}` |
//! | `POST faults` | `{path, type, ..., times?}` (see [`crate::FaultKind`]; looser spellings are read too, see `lenient_fault`) | `{}` |
//! | `DELETE faults` / `POST faults/clear` | — | `{}` |
//! | `GET calls[?path=]` | — | `{calls: {path: n}}` or `{path, count}` |
//! | `DELETE calls` / `POST calls/reset` | — | `{}` |
//! | `POST revoke` | `{userId}` or `{loginId}` | `{}` |
//! | `POST cookie-mode`, `POST rotation` | `{enabled}` | `{}` |
//! | `POST refresh-family-revocation` | `{enabled}` | `{}` (with rotation: reusing a rotated refresh token revokes its family) |
//! | `GET refresh-family-revocation` | — | `{enabled, revocations}` |
//! | `POST session-ttl`, `POST refresh-ttl` | `{seconds}` | `{}` |
//! | `GET users` | — | `{users: [{userId, loginIds, name, email, roles, tenants}]}` |
//! | `POST users` | a seed-file user (`loginId`, `name`, `email`, `roles`, `tenants`, ...) | `{userId}` |
//! | `POST users/roles` | `{loginId, roles}` | `{}` |
//! | `POST users/tenants` | `{loginId, tenants: [{id, roles}]}` | `{}` |
//! | `POST users/claims` | `{loginId, claims: {...}}` | `{}` |
//! | `GET outbox.json` / `GET outbox` | — | entries (JSON) / HTML page |

use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::{Req, Resp, error, json, missing, not_found, ok_empty, str_field};
use crate::keys::SigningKey;
use crate::options::{Fault, FaultKind, MintSpec};
use crate::pages;
use crate::shared::Shared;
use crate::state::{State, TenantMembership, UserSpec, secs};
use crate::tokens::internal;
use crate::util::random_hex;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultRequest {
    path: String,
    #[serde(flatten)]
    kind: FaultKind,
    #[serde(default)]
    times: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MintRequest {
    #[serde(alias = "userId")]
    sub: String,
    refresh: bool,
    #[serde(alias = "ttl", alias = "ttl_secs", alias = "ttlSeconds")]
    ttl_secs: Option<i64>,
    claims: Map<String, Value>,
    /// Several distinct tokens at once (each with its own `jti`), for load
    /// tests that need a new token per request; at most [`MAX_MINT`].
    count: Option<usize>,
}

/// Most tokens one mint call signs.
const MAX_MINT: usize = 50_000;

pub(crate) fn handle(shared: &Shared, req: &Req, rest: &str) -> Resp {
    // The hosted provider pages face browsers and carry no token.
    if rest.starts_with("oauth/") || rest.starts_with("sso/") {
        return pages::handle(shared, req).unwrap_or_else(not_found);
    }
    if !authorized(shared, req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "E011003",
            "Unauthorized",
            "The emulator control API needs Authorization: Bearer <control token>",
        );
    }
    let body = match req.json() {
        Ok(b) => b,
        // HTML forms post to nothing here; a non-JSON body is only an error
        // where one is read.
        Err(_) if req.method == Method::GET => Map::new(),
        Err(resp) => return resp,
    };
    match (&req.method, rest) {
        (&Method::GET, "health") => json(
            StatusCode::OK,
            &json!({"ok": true, "projectId": shared.project_id, "baseUrl": shared.base_url}),
        ),
        (&Method::POST, "mint") => mint(shared, body),
        (&Method::POST, "rotate-keys") => {
            let drop_old = body
                .get("dropOld")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let Ok(key) = SigningKey::generate(shared.key_type, random_hex(16)) else {
                return internal();
            };
            let kid = key.kid.clone();
            shared.lock().keys.install(key, drop_old);
            json(StatusCode::OK, &json!({ "kid": kid }))
        }
        (&Method::POST, "faults") => {
            let parsed: Result<FaultRequest, _> =
                serde_json::from_value(Value::Object(body.clone()));
            let parsed = parsed.or_else(|e| lenient_fault(&body).ok_or(e));
            match parsed {
                Ok(f) if !f.path.is_empty() => {
                    shared.lock().faults.insert(
                        f.path,
                        Fault {
                            kind: f.kind,
                            times: f.times,
                        },
                    );
                    ok_empty()
                }
                Ok(_) => missing("path"),
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    "E011001",
                    "Bad request",
                    &format!("Invalid fault: {e}"),
                ),
            }
        }
        (&Method::DELETE, "faults") | (&Method::POST, "faults/clear") => {
            shared.lock().faults.clear();
            ok_empty()
        }
        (&Method::GET, "calls") => {
            let st = shared.lock();
            match req.query.get("path") {
                Some(path) => json(
                    StatusCode::OK,
                    &json!({"path": path, "count": st.calls.get(path).copied().unwrap_or(0)}),
                ),
                None => {
                    let calls: std::collections::BTreeMap<_, _> = st.calls.iter().collect();
                    json(StatusCode::OK, &json!({ "calls": calls }))
                }
            }
        }
        (&Method::DELETE, "calls") | (&Method::POST, "calls/reset") => {
            shared.lock().calls.clear();
            ok_empty()
        }
        (&Method::POST, "revoke") => {
            let mut st = shared.lock();
            let user_id = match str_field(&body, &["userId", "sub"]) {
                "" => st
                    .user_id_by_login(str_field(&body, &["loginId"]))
                    .unwrap_or_default(),
                id => id.to_owned(),
            };
            if user_id.is_empty() {
                return missing("userId");
            }
            st.revoke_user(&user_id);
            ok_empty()
        }
        (&Method::POST, "cookie-mode") => set_flag(shared, &body, |st, on| st.cookie_mode = on),
        (&Method::POST, "rotation") => set_flag(shared, &body, |st, on| st.refresh_rotation = on),
        (&Method::POST, "refresh-family-revocation") => {
            set_flag(shared, &body, |st, on| st.refresh_family_revocation = on)
        }
        (&Method::GET, "refresh-family-revocation") => {
            let st = shared.lock();
            json(
                StatusCode::OK,
                &json!({
                    "enabled": st.refresh_family_revocation,
                    "revocations": st.family_revocations,
                }),
            )
        }
        (&Method::POST, "session-ttl") => match body.get("seconds").and_then(Value::as_u64) {
            Some(s) => {
                shared.lock().session_ttl = Duration::from_secs(s);
                ok_empty()
            }
            None => missing("seconds"),
        },
        (&Method::POST, "refresh-ttl") => match body.get("seconds").and_then(Value::as_u64) {
            Some(s) => {
                shared.lock().refresh_ttl = Duration::from_secs(s);
                ok_empty()
            }
            None => missing("seconds"),
        },
        (&Method::GET, "users") => {
            let st = shared.lock();
            let users: Vec<Value> = st
                .users
                .values()
                .map(|u| {
                    json!({"userId": u.user_id, "loginIds": u.login_ids, "name": u.name,
                           "email": u.email, "roles": u.roles,
                           "tenants": u.tenants.iter().map(|t| json!({"id": t.id, "roles": t.roles}))
                               .collect::<Vec<_>>()})
                })
                .collect();
            json(StatusCode::OK, &json!({ "users": users }))
        }
        (&Method::POST, "users") => {
            let spec: UserSpec = match serde_json::from_value(Value::Object(body)) {
                Ok(s) => s,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "E011001",
                        "Bad request",
                        &format!("Invalid user: {e}"),
                    );
                }
            };
            if spec.login_id.is_empty() {
                return missing("loginId");
            }
            let id = shared.lock().upsert_user(spec);
            json(StatusCode::OK, &json!({ "userId": id }))
        }
        (&Method::POST, "users/roles") => {
            let roles = strings(body.get("roles"));
            let login_id = str_field(&body, &["loginId"]);
            if shared.lock().set_user_roles(login_id, roles) {
                ok_empty()
            } else {
                unknown_user()
            }
        }
        (&Method::POST, "users/tenants") => {
            let tenants: Vec<TenantMembership> = body
                .get("tenants")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            let login_id = str_field(&body, &["loginId"]);
            if shared.lock().set_user_tenants(login_id, tenants) {
                ok_empty()
            } else {
                unknown_user()
            }
        }
        (&Method::POST, "users/claims") => {
            let claims = body
                .get("claims")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let login_id = str_field(&body, &["loginId"]);
            if shared.lock().set_user_claims(login_id, claims) {
                ok_empty()
            } else {
                unknown_user()
            }
        }
        (&Method::GET, "outbox.json") => json(StatusCode::OK, &shared.lock().outbox),
        (&Method::GET, "outbox") => pages::outbox(shared),
        _ => not_found(),
    }
}

fn mint(shared: &Shared, body: Map<String, Value>) -> Resp {
    let parsed: MintRequest = match serde_json::from_value(Value::Object(body)) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "E011001",
                "Bad request",
                &format!("Invalid mint request: {e}"),
            );
        }
    };
    if parsed.sub.is_empty() {
        return missing("sub");
    }
    let issuer = shared.issuer();
    let mut st = shared.lock();
    let default_ttl = if parsed.refresh {
        st.refresh_ttl
    } else {
        st.session_ttl
    };
    let spec = MintSpec {
        sub: parsed.sub,
        refresh: parsed.refresh,
        ttl_secs: parsed.ttl_secs.unwrap_or_else(|| secs(default_ttl)),
        claims: parsed.claims,
    };
    let Some(count) = parsed.count else {
        return match st.mint(&issuer, &spec) {
            Ok(token) => json(StatusCode::OK, &json!({ "token": token })),
            Err(_) => internal(),
        };
    };
    if count == 0 || count > MAX_MINT {
        return error(
            StatusCode::BAD_REQUEST,
            "E011001",
            "Bad request",
            &format!("count must be between 1 and {MAX_MINT}"),
        );
    }
    let mut tokens = Vec::with_capacity(count);
    let mut spec = spec;
    let run = crate::util::random_hex(8);
    for i in 0..count {
        spec.claims
            .insert("jti".into(), json!(format!("{run}-{i}")));
        match st.mint(&issuer, &spec) {
            Ok(token) => tokens.push(token),
            Err(_) => return internal(),
        }
    }
    json(StatusCode::OK, &json!({ "tokens": tokens }))
}

fn set_flag(
    shared: &Shared,
    body: &Map<String, Value>,
    set: impl FnOnce(&mut State, bool),
) -> Resp {
    let flag = ["enabled", "on", "value"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_bool));
    match flag {
        Some(on) => {
            set(&mut shared.lock(), on);
            ok_empty()
        }
        None => missing("enabled"),
    }
}

/// Reads a fault written less strictly than `{path, type, ...}`: `type`
/// aliases (`error`, `delay`, `rateLimit`, `429`, `disconnect`, ...), or no
/// `type` at all, inferred from the fields (`drop: true`, `retryAfter`,
/// `status`, `latencyMs`).
fn lenient_fault(body: &Map<String, Value>) -> Option<FaultRequest> {
    let path = str_field(body, &["path", "endpoint"]).to_owned();
    let number = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64))
    };
    let status = number(&["status", "statusCode", "code"]);
    let retry_after = number(&[
        "retryAfterSecs",
        "retryAfter",
        "retry_after_secs",
        "retry_after",
    ]);
    let millis = number(&["millis", "latencyMs", "delayMs", "ms", "latency_ms"])
        .or_else(|| number(&["seconds", "latencySecs"]).map(|s| s.saturating_mul(1000)));
    let kind_name: String = str_field(body, &["type", "kind", "fault"])
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let kind = match kind_name.as_str() {
        "status" | "error" | "http" | "fail" => FaultKind::Status {
            status: u16::try_from(status?).ok()?,
            error_code: body
                .get("errorCode")
                .and_then(Value::as_str)
                .map(str::to_owned),
            error_message: body
                .get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        "latency" | "delay" | "slow" => FaultKind::Latency { millis: millis? },
        "ratelimit" | "ratelimited" | "429" | "throttle" => FaultKind::RateLimit {
            retry_after_secs: retry_after.unwrap_or(1),
        },
        "drop" | "dropconnection" | "dropped" | "disconnect" | "reset" | "close" => FaultKind::Drop,
        "" if body.get("drop").and_then(Value::as_bool) == Some(true) => FaultKind::Drop,
        "" if retry_after.is_some() || status == Some(429) => FaultKind::RateLimit {
            retry_after_secs: retry_after.unwrap_or(1),
        },
        "" if status.is_some() => FaultKind::Status {
            status: u16::try_from(status?).ok()?,
            error_code: body
                .get("errorCode")
                .and_then(Value::as_str)
                .map(str::to_owned),
            error_message: body
                .get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        "" if millis.is_some() => FaultKind::Latency { millis: millis? },
        _ => return None,
    };
    let times = number(&["times", "count", "next"]).and_then(|n| u32::try_from(n).ok());
    Some(FaultRequest { path, kind, times })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn unknown_user() -> Resp {
    error(
        StatusCode::NOT_FOUND,
        "E112102",
        "User not found",
        "No user with this login id",
    )
}

/// Whether the request may use the control API.
fn authorized(shared: &Shared, req: &Req) -> bool {
    let Some(expected) = &shared.control_token else {
        return true;
    };
    let from_header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let given = from_header.or_else(|| req.query.get("control_token").map(String::as_str));
    given.is_some_and(|g| {
        aws_lc_rs::constant_time::verify_slices_are_equal(g.as_bytes(), expected.as_bytes()).is_ok()
    })
}

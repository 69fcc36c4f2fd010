//! Hosted endpoints under `{auth_prefix}` (DESIGN §5): dispatch by sub-path.
//! Every answer carries `Cache-Control: no-store`; pages carry a CSP with
//! `frame-ancestors 'none'`; callbacks add `Referrer-Policy: no-referrer`.
//! The access log never records their query strings.

pub mod logout;
pub mod verify;

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::{AppState, Generation};
use http_body_util::{BodyExt, Limited};

use crate::http_util::{Body, full, json_error, respond};
use crate::pipeline::{AccessLog, append_cookies, resolve_session};
use crate::proxy::ClientInfo;

/// Routes `{auth_prefix}{sub}` to its handler.
pub async fn dispatch(
    state: &AppState,
    generation: &Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    sub: &str,
    log: &mut AccessLog,
) -> Response<Body> {
    let method = req.method().clone();
    let mut resp = match (sub, &method) {
        ("/verify", _) => verify::handle(state, generation, req, info, log).await,
        (s, _) if s.starts_with("/verify/") => {
            verify::handle(state, generation, req, info, log).await
        }
        ("/me", &Method::GET | &Method::HEAD) => me(state, generation, req.headers()).await,
        ("/jwks.json", &Method::GET | &Method::HEAD) => match &generation.config.identity.assertion
        {
            Some(_) => respond(
                StatusCode::OK,
                "application/json",
                state.assertion.jwks().to_string(),
            ),
            None => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The identity assertion is not enabled.",
            ),
        },
        ("/login", &Method::GET | &Method::HEAD) => login_page(state, generation, req).await,
        ("/logout", _) => logout::handle(state, generation, &req, logout::Scope::This).await,
        ("/logout-all", _) => logout::handle(state, generation, &req, logout::Scope::All).await,
        (s, _) if crate::login::LoginCore::handles(s) => {
            login_endpoint(state, generation, req, info, s).await
        }
        ("/me" | "/jwks.json" | "/login", _) => json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
        _ => json_error(StatusCode::NOT_FOUND, "not_found", "No such endpoint."),
    };
    harden(&mut resp);
    resp
}

/// `Cache-Control: no-store`, no sniffing, and for HTML a CSP that forbids framing.
pub fn harden(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// DESIGN §4 step 9: a cookie-authenticated unsafe request must be same-origin
/// (`Origin` equal to `public_url`'s origin, or `Sec-Fetch-Site: same-origin`).
pub fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.eq_ignore_ascii_case(public_origin));
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("same-origin"));
    origin_ok || fetch_site_ok
}

/// `GET /me`: the verified claims (never raw tokens).
async fn me(state: &AppState, generation: &Generation, headers: &HeaderMap) -> Response<Body> {
    let session = resolve_session(state, generation, headers).await;
    let mut resp = match (&session.claims, session.unavailable) {
        (Some(c), _) => {
            let body = serde_json::json!({
                "user_id": c.subject(),
                "claims": c.as_map(),
            });
            respond(StatusCode::OK, "application/json", body.to_string())
        }
        (None, Some(retry)) => crate::pipeline::unavailable(&Method::GET, &HeaderMap::new(), retry),
        (None, None) => {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A valid session is required.",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    };
    append_cookies(&mut resp, &session.set_cookies);
    resp
}

/// `GET /login`: already signed in (or refreshable) → straight to `return_to`;
/// otherwise the login page offering the configured methods.
async fn login_page(
    state: &AppState,
    generation: &Generation,
    req: Request<Incoming>,
) -> Response<Body> {
    let cfg = &generation.config;
    let raw = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v.into_owned())
    });
    let return_to = match &generation.login {
        Some(core) => core.sanitize_return_to(raw.as_deref()),
        None => raw.map_or_else(|| "/".to_string(), |r| safe_return_to(cfg, &r)),
    };
    let session = resolve_session(state, generation, req.headers()).await;
    if session.claims.is_some() {
        let mut r = respond(StatusCode::FOUND, "text/plain", "");
        if let Ok(v) = HeaderValue::from_str(&return_to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        append_cookies(&mut r, &session.set_cookies);
        return r;
    }
    let mut r = match &generation.login {
        Some(core) => {
            let (parts, _body) = req.into_parts();
            core.login_page(login_deps(state), &parts).map(full)
        }
        // A gateway without login methods (API-only, or login hosted
        // elsewhere) still answers the redirect target with a plain page.
        None => crate::http_util::html_page(
            StatusCode::OK,
            &format!("Sign in to {}", cfg.login.app_name),
            "No login method is configured on this gateway. Ask its administrator how to sign in.",
        ),
    };
    append_cookies(&mut r, &session.set_cookies);
    r
}

/// Every other login endpoint (magic link, enchanted link, OTP, OAuth, SSO,
/// `/session`): the body is read up to [`crate::login::MAX_BODY_BYTES`] (413 beyond).
async fn login_endpoint(
    state: &AppState,
    generation: &Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    sub: &str,
) -> Response<Body> {
    let Some(core) = &generation.login else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No login method is configured on this gateway.",
        );
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, crate::login::MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            );
        }
    };
    core.handle(login_deps(state), sub, &parts, body, info.client_ip)
        .await
        .map(full)
}

fn login_deps(state: &AppState) -> crate::login::Deps<'_> {
    crate::login::Deps {
        descope: &state.descope,
        validator: &state.validator,
    }
}

/// `return_to` if [`crate::redirect::RedirectPolicy`] accepts it (a safe
/// same-origin path, or a URL on an allowed origin), else `/`.
pub fn safe_return_to(cfg: &crate::config::Config, candidate: &str) -> String {
    // The origins were validated at load, so building the policy cannot fail;
    // if it ever did, nothing absolute is allowed (fail closed).
    crate::redirect::RedirectPolicy::new(&cfg.login.allowed_redirect_origins)
        .unwrap_or_default()
        .sanitize(Some(candidate))
}

pub type SharedState = Arc<AppState>;

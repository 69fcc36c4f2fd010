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
use crate::config::LoginMethod;
use crate::http_util::{Body, escape_html, json_error, respond};
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
        ("/verify", _) => verify::handle(state, generation, req, info, "", log).await,
        (s, _) if s.starts_with("/verify/") => {
            let rest = s["/verify".len()..].to_string();
            verify::handle(state, generation, req, info, &rest, log).await
        }
        ("/me", &Method::GET | &Method::HEAD) => me(state, generation, req.headers()).await,
        ("/jwks.json", &Method::GET | &Method::HEAD) => match &state.assertion {
            Some(a) => respond(StatusCode::OK, "application/json", a.jwks().to_string()),
            None => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "The identity assertion is not enabled.",
            ),
        },
        ("/login", &Method::GET | &Method::HEAD) => login_page(state, generation, &req).await,
        ("/logout", _) => logout::handle(state, generation, &req, logout::Scope::This).await,
        ("/logout-all", _) => logout::handle(state, generation, &req, logout::Scope::All).await,
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
/// otherwise a page listing the configured login methods.
async fn login_page(
    state: &AppState,
    generation: &Generation,
    req: &Request<Incoming>,
) -> Response<Body> {
    let cfg = &generation.config;
    let return_to = req
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "return_to")
                .map(|(_, v)| v.into_owned())
        })
        .map_or_else(|| "/".to_string(), |r| safe_return_to(cfg, &r));
    let session = resolve_session(state, generation, req.headers()).await;
    if session.claims.is_some() {
        let mut r = respond(StatusCode::FOUND, "text/plain", "");
        if let Ok(v) = HeaderValue::from_str(&return_to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        append_cookies(&mut r, &session.set_cookies);
        return r;
    }
    let methods: Vec<String> = cfg
        .login
        .methods
        .iter()
        .map(|m| match m {
            LoginMethod::Flow => "Descope flow".to_string(),
            LoginMethod::MagicLink => "Magic link".to_string(),
            LoginMethod::EnchantedLink => "Enchanted link".to_string(),
            LoginMethod::Otp => "One-time code".to_string(),
            LoginMethod::OAuth(p) => format!("OAuth ({p})"),
            LoginMethod::Sso => "Single sign-on".to_string(),
        })
        .collect();
    let list = if methods.is_empty() {
        "<p>No login methods are configured on this gateway.</p>".to_string()
    } else {
        format!(
            "<ul>{}</ul>",
            methods
                .iter()
                .map(|m| format!("<li>{}</li>", escape_html(m)))
                .collect::<String>()
        )
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · {app}</title></head>\
         <body><main><h1>Sign in to {app}</h1>{list}</main></body></html>",
        app = escape_html(&cfg.login.app_name)
    );
    let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    append_cookies(&mut r, &session.set_cookies);
    r
}

/// `return_to` if it is a safe same-origin path or on an allowed origin, else `/`.
pub fn safe_return_to(cfg: &crate::config::Config, candidate: &str) -> String {
    if crate::config::is_safe_relative(candidate) {
        return candidate.to_string();
    }
    if let Ok(u) = url::Url::parse(candidate) {
        let origin = u.origin().ascii_serialization();
        if cfg.login.allowed_redirect_origins.contains(&origin) {
            return u.to_string();
        }
    }
    "/".to_string()
}

pub type SharedState = Arc<AppState>;

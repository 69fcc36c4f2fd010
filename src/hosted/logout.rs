//! `{auth_prefix}/logout` and `{auth_prefix}/logout-all` (DESIGN §5).
//!
//! ```text
//! GET  → a small confirmation page whose form POSTs back (no-store, no framing)
//! POST → Bearer-only (Authorization: Bearer <refresh jwt>)  ─┐
//!        cookies: same-origin Origin / Sec-Fetch-Site, else 403
//!        refresh token verified locally ──► Descope /v1/auth/logout[all]
//!        clear every session/refresh cookie (and chunk) the request carried
//!        browser (Accept: text/html) → 303 after_logout; API client → 204
//! ```
//!
//! A refresh token that fails local verification is never sent to Descope
//! (the cookies are still cleared). If Descope cannot be reached, `logout`
//! still clears the cookies (this browser is signed out), while `logout-all`
//! answers 503 and keeps them, so the user can retry the revocation of every
//! other session instead of being told it happened.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::app::{AppState, Generation};
use crate::descope::DescopeError;
use crate::http_util::{Body, accepts_html, escape_html, json_error, respond};
use crate::pipeline::{append_cookies, bearer_token, unavailable};

/// Which logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/logout`: this session only.
    This,
    /// `/logout-all`: every session of the user.
    All,
}

impl Scope {
    fn path(self) -> &'static str {
        match self {
            Scope::This => "/logout",
            Scope::All => "/logout-all",
        }
    }
}

/// Handles `GET`/`POST` on `/logout` or `/logout-all`; other methods get 405.
pub async fn handle<B>(
    state: &AppState,
    generation: &Generation,
    req: &Request<B>,
    scope: Scope,
) -> Response<Body> {
    match *req.method() {
        Method::GET | Method::HEAD => confirmation_page(generation, scope),
        Method::POST => logout(state, generation, req.method(), req.headers(), scope).await,
        _ => {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Use POST to sign out.",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            r
        }
    }
}

async fn logout(
    state: &AppState,
    generation: &Generation,
    method: &Method,
    headers: &HeaderMap,
    scope: Scope,
) -> Response<Body> {
    let cfg = &generation.config;
    let cookies = &cfg.session.cookies;

    // Bearer-only calls carry their credential explicitly and are exempt from
    // the origin check; they must present a refresh token.
    let cookie_tokens = cookies.read(headers);
    let bearer_only = cookie_tokens == Default::default() && bearer_token(headers).is_some();
    let refresh = if bearer_only {
        bearer_token(headers).map(str::to_owned)
    } else {
        if !crate::hosted::same_origin(headers, &cfg.server.public_origin) {
            tracing::info!("cross-site logout refused");
            return json_error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "Sign-out must come from this site.",
            );
        }
        cookie_tokens.refresh
    };

    if let Some(token) = refresh.as_deref() {
        match state.validator.verify_refresh(token).await {
            Ok(claims) => {
                state.refresher.forget(token);
                match state.descope.logout(token, scope == Scope::All).await {
                    Ok(()) => {
                        tracing::info!(
                            user = claims.subject().unwrap_or(""),
                            all = (scope == Scope::All),
                            "signed out"
                        );
                    }
                    // Already revoked or expired at Descope: nothing left to revoke.
                    Err(DescopeError::Rejected { .. }) => {}
                    Err(
                        e @ (DescopeError::RateLimited { .. }
                        | DescopeError::Unavailable
                        | DescopeError::InvalidResponse
                        | DescopeError::Setup(_)),
                    ) => {
                        tracing::warn!(error = %e, all = (scope == Scope::All), "descope logout failed");
                        if scope == Scope::All {
                            let retry = match e {
                                DescopeError::RateLimited { retry_after } => retry_after,
                                _ => None,
                            };
                            return unavailable(method, headers, retry);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(reason = %e, "logout with an invalid refresh token");
                if bearer_only {
                    let mut r = json_error(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        "A valid refresh token is required.",
                    );
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                    return r;
                }
            }
        }
    }

    let mut resp = if accepts_html(headers) {
        let target = crate::hosted::safe_return_to(cfg, &cfg.login.after_logout);
        let mut r = respond(StatusCode::SEE_OTHER, "text/plain", "");
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    } else {
        respond(StatusCode::NO_CONTENT, "text/plain", "")
    };
    append_cookies(&mut resp, &cookies.clear_all(headers));
    resp
}

/// `GET`: a page with one button that POSTs (same origin) to the endpoint.
fn confirmation_page(generation: &Generation, scope: Scope) -> Response<Body> {
    let cfg = &generation.config;
    let action = format!("{}{}", cfg.server.auth_prefix, scope.path());
    let (title, button) = match scope {
        Scope::This => ("Sign out", "Sign out"),
        Scope::All => ("Sign out everywhere", "Sign out on every device"),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · {app}</title></head><body><main><h1>{title}</h1>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">{button}</button></form>\
         </main></body></html>",
        app = escape_html(&cfg.login.app_name),
        action = escape_html(&action),
    );
    respond(StatusCode::OK, "text/html; charset=utf-8", body)
}

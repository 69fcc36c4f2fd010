//! `{auth_prefix}/logout` and `{auth_prefix}/logout-all` (docs/sessions.md).
//!
//! ```text
//! GET  → a confirmation page (login-page look) whose form POSTs back, and a
//!        cancel link to `?return_to=` (checked like every return_to) or `/`
//! POST ?return_to=X (the 403 page's "Sign in as someone else"): as below,
//!        then 303 to {auth_prefix}/login?return_to=X instead of after_logout
//! POST → Bearer-only (Authorization: Bearer <refresh jwt>)  ─┐
//!        cookies: same-origin Origin / Sec-Fetch-Site, else 403
//!        refresh token verified locally ──► Descope /v1/auth/logout[all]
//!        clear every session/refresh cookie (and chunk) the request carried
//!        browser (Accept: text/html) → 303 after_logout; API client → 204
//! ```
//!
//! A refresh token that fails local verification is never sent to Descope
//! (the cookies are still cleared). Without signing keys at all, `logout-all`
//! and Bearer calls answer 503 rather than claim a revocation. If Descope cannot be reached, `logout`
//! still clears the cookies (this browser is signed out), while `logout-all`
//! answers 503 and keeps them, so the user can retry the revocation of every
//! other session instead of being told it happened.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::answer::append_cookies;
use crate::decide::bearer_token;
use crate::descope::DescopeError;
use crate::http_util::{Body, accepts_html, json_error, respond};
use crate::session::SessionError;
use crate::state::{AppState, Generation, Idp};

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
        Method::GET | Method::HEAD => {
            confirmation_page(state, generation, scope, req.uri().query())
        }
        Method::POST => {
            let sign_in_again =
                query_return_to(req.uri().query()).map(|r| login_url(generation, &r));
            let mut resp = logout(state, generation, req.method(), req.headers(), scope).await;
            if let Some(target) = sign_in_again
                && matches!(resp.status(), StatusCode::SEE_OTHER | StatusCode::FOUND)
                && let Ok(v) = HeaderValue::from_str(&target)
            {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
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

    // Only a request carrying session cookies is authenticated by them and
    // needs the origin check: a Bearer-only call carries its credential
    // explicitly (it must present a refresh token), and a request with
    // neither has nothing to sign out (its answer clears the cookies and
    // says so, like any other logout).
    let cookie_tokens = cookies.read(headers);
    let bearer_only = cookie_tokens == Default::default();
    let refresh = if bearer_only {
        bearer_token(headers).map(str::to_owned)
    } else {
        if crate::login::origin_check(headers, &cfg.server.public_origin)
            != crate::login::Origin::Same
        {
            tracing::info!("cross-site logout refused");
            return json_error(
                StatusCode::FORBIDDEN,
                "cross_site",
                "Sign-out must come from this site.",
            );
        }
        cookie_tokens.refresh.clone()
    };

    let mut target = after_logout_target(cfg);
    match &state.idp {
        Idp::Descope {
            client, validator, ..
        } => {
            if let Err(resp) = revoke_descope(
                state,
                generation,
                client,
                validator,
                method,
                headers,
                refresh.as_deref(),
                scope,
                bearer_only,
            )
            .await
            {
                return resp;
            }
            remember_descope(state, validator, cookie_tokens.session.as_deref(), scope).await;
        }
        Idp::Oidc(oidc) => {
            if let Some(end) = revoke_oidc(state, generation, oidc, &cookie_tokens, scope).await {
                target = end;
            }
        }
    }

    let mut resp = if accepts_html(headers) {
        // The OIDC mode answers 302, as RP-initiated logout is usually
        // written; the Descope mode keeps 303.
        let code = match &state.idp {
            Idp::Oidc(_) => StatusCode::FOUND,
            Idp::Descope { .. } => StatusCode::SEE_OTHER,
        };
        let mut r = respond(code, "text/plain", "");
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

/// Descope: the refresh token verified locally, then revoked at Descope.
/// `Err` is the answer to give instead of signing out.
#[allow(clippy::too_many_arguments)]
async fn revoke_descope(
    state: &AppState,
    generation: &Generation,
    client: &crate::descope::DescopeClient,
    validator: &crate::session::SessionValidator,
    method: &Method,
    headers: &HeaderMap,
    refresh: Option<&str>,
    scope: Scope,
    bearer_only: bool,
) -> Result<(), Response<Body>> {
    if let Some(token) = refresh {
        match validator.verify_refresh(token).await {
            Ok(claims) => {
                state.refresher.forget(token);
                // Remembered as signed out too: a result another replica
                // kept for it (or a retry of it) is refused, not adopted.
                if let Some(exp) = claims.expires_at() {
                    state.store.revoke_session(token, exp).await;
                }
                if scope == Scope::All
                    && let Some(sub) = claims.subject()
                {
                    state.store.revoke_user(sub).await;
                }
                match client.logout(token, scope == Scope::All).await {
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
                            return Err(unavailable(generation, method, headers, retry));
                        }
                    }
                }
            }
            // No signing keys (Descope unreachable since start-up): the token
            // cannot be checked, so it cannot be revoked either.
            Err(SessionError::KeysUnavailable) if scope == Scope::All || bearer_only => {
                tracing::warn!("logout impossible: signing keys unavailable");
                return Err(unavailable(generation, method, headers, None));
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
                    return Err(r);
                }
            }
        }
    }
    Ok(())
}

/// Remembers the signed-out session token until it expires (and, for
/// logout-all, its user), so no replica accepts it again.
async fn remember_descope(
    state: &AppState,
    validator: &crate::session::SessionValidator,
    session: Option<&str>,
    scope: Scope,
) {
    let Some(token) = session else { return };
    let Ok(claims) = validator.verify_session(token).await else {
        return;
    };
    if let Some(exp) = claims.expires_at() {
        state.store.revoke_session(token, exp).await;
    }
    if scope == Scope::All
        && let Some(sub) = claims.subject()
    {
        state.store.revoke_user(sub).await;
    }
}

/// The OIDC mode: the refresh token in the sealed session is revoked at the
/// provider when it can (best effort: the browser is signed out either way);
/// returns the provider's end-session URL to go on to, when it has one.
async fn revoke_oidc(
    state: &AppState,
    generation: &Generation,
    oidc: &crate::oidc::Oidc,
    tokens: &crate::cookies::RequestTokens,
    scope: Scope,
) -> Option<String> {
    let cfg = &generation.config;
    let sealed = tokens
        .session
        .as_deref()
        .and_then(|v| generation.sealer.as_ref()?.open(v));
    let id_token = sealed.as_ref().and_then(|s| s.id_token.clone());
    if let Some(s) = &sealed {
        if let Some(id) = &s.id_token {
            state.store.revoke_session(id, s.expires_at).await;
        }
        if let Some(rt) = &s.refresh_token {
            state.refresher.forget(rt);
            // The refresh token is opaque (no `exp` to read): remembered as
            // long as a logout-all is, so a replay of the old cookie cannot
            // sign in again once its ID token has expired, even when the
            // provider has no revocation endpoint or did not answer.
            let until = crate::time::unix_now_i64()
                + i64::try_from(crate::store::LOGOUT_ALL_TTL.as_secs()).unwrap_or(i64::MAX);
            state.store.revoke_session(rt, until).await;
            oidc.revoke(rt).await;
        }
        let user = s.claims.get("sub").and_then(|v| v.as_str()).unwrap_or("");
        if scope == Scope::All && !user.is_empty() {
            state.store.revoke_user(user).await;
        }
        tracing::info!(user, all = (scope == Scope::All), "signed out");
    }
    let after = after_logout_target(cfg);
    let post_logout = if after.starts_with('/') {
        format!("{}{after}", cfg.server.public_origin)
    } else {
        after
    };
    oidc.end_session_url(id_token.as_deref(), &post_logout)
        .map(|u| u.to_string())
}

/// `[login] after_logout` when it is a safe relative path, an allowed origin,
/// or on the gateway's own origin (config validation accepts all three); else `/`.
fn after_logout_target(cfg: &crate::config::Config) -> String {
    let configured = &cfg.login.after_logout;
    if let Ok(u) = url::Url::parse(configured)
        && u.origin().ascii_serialization() == cfg.server.public_origin
    {
        return u.to_string();
    }
    crate::hosted::safe_return_to(cfg, configured)
}

/// `return_to` from a query string, if present.
fn query_return_to(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
}

/// `{auth_prefix}/login?return_to=<checked return_to>`.
fn login_url(generation: &Generation, raw: &str) -> String {
    let cfg = &generation.config;
    let return_to = crate::hosted::safe_return_to(cfg, raw);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();
    format!("{}/login?{q}", cfg.server.auth_prefix.trim_end_matches('/'))
}

/// `GET`: the confirmation page, in the login page's look: one button that
/// POSTs (same origin) to the endpoint, and a cancel link back.
fn confirmation_page(
    state: &AppState,
    generation: &Generation,
    scope: Scope,
    query: Option<&str>,
) -> Response<Body> {
    let cfg = &generation.config;
    let mut settings = match &generation.login {
        Some(core) => core.page_settings().clone(),
        None => {
            let mut s = crate::pages::PageSettings::plain(
                &cfg.login.app_name,
                cfg.login.logo_url.as_deref(),
                &cfg.server.auth_prefix,
            );
            // `form-action` must allow the redirect to `after_logout`.
            s.redirect_origins = cfg.login.allowed_redirect_origins.clone();
            s
        }
    };
    // OIDC: the POST is answered with a redirect to the provider's
    // end-session endpoint, which `form-action` must allow too.
    if let Idp::Oidc(oidc) = &state.idp
        && let Some(end) = oidc
            .metadata()
            .and_then(|m| m.end_session_endpoint.as_ref().map(|u| u.origin()))
        && end.is_tuple()
    {
        settings.redirect_origins.push(end.ascii_serialization());
    }
    let action = format!("{}{}", settings.auth_prefix, scope.path());
    let cancel = query_return_to(query).map_or_else(
        || "/".to_owned(),
        |r| crate::hosted::safe_return_to(cfg, &r),
    );
    let page = crate::pages::logout_confirm(&settings, scope == Scope::All, &action, &cancel);
    page.into_response().map(crate::http_util::full)
}

/// 503 with `Retry-After` (a page for browsers); cookies are kept.
fn unavailable(
    generation: &Generation,
    method: &Method,
    headers: &HeaderMap,
    retry_after: Option<std::time::Duration>,
) -> Response<Body> {
    crate::answer::reject(
        crate::decide::Reject::Unavailable {
            reason: "descope unavailable",
            retry_after,
            cookies: Vec::new(),
        },
        &crate::answer::Ctx {
            mode: crate::decide::Mode::Proxy,
            method,
            headers,
            generation,
            here: "/",
        },
    )
}

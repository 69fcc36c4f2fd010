//! Hosted endpoints under `{auth_prefix}`: dispatch by sub-path. Every
//! answer is hardened (`answer::harden`: no-store, no framing, a CSP on
//! pages, no referrer). The access log never records their query strings.

pub mod logout;
mod oidc_login;
pub mod verify;

use http::header::HeaderMap;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::answer::{self, append_cookies};
use crate::canon::CanonicalPath;
use crate::decide::{AccessLog, Mode, Reject, SessionState, resolve_session};
use crate::http_util::{Body, full, respond};
use crate::proxy::ClientInfo;
use crate::state::{AppState, Generation};

/// Whether a canonical match path is `auth_prefix` or below it.
pub fn is_hosted_path(match_path: &str, prefix: &str) -> bool {
    match_path == prefix
        || match_path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The sub-path (`/login`, `/verify/...`) of a request for a hosted
/// endpoint; `None` when the path is not under `auth_prefix`.
///
/// No hosted endpoint is reached through an encoded slash: `/_auth%2Fverify`
/// must not reach one under a spelling an ingress or the app routes
/// elsewhere. Only Envoy's `/verify/<original path>` carries a path of its
/// own, judged there by the original path's route (`allow_encoded_slash`).
pub fn sub_path(canon: &CanonicalPath, prefix: &str) -> Result<Option<String>, Reject> {
    let mp = canon.match_path();
    if !is_hosted_path(mp, prefix) {
        return Ok(None);
    }
    let n = prefix.split('/').filter(|s| !s.is_empty()).count();
    let segs = canon.segments();
    let head_has_slash = segs.iter().take(n + 1).any(|s| s.decoded.contains('/'));
    let verify = segs.get(n).is_some_and(|s| s.decoded == "verify");
    if head_has_slash || (canon.has_encoded_slash() && !verify) {
        return Err(Reject::BadRequest("encoded slash"));
    }
    Ok(Some(mp[prefix.len()..].to_owned()))
}

/// Marks a sign-in start already sent to the public origin once.
const MOVED_PARAM: &str = "_portcullis_moved";

/// Whether the request names `public_url`'s host and port (no port: the
/// public URL's default port, as behind a TLS-terminating load balancer).
fn on_public_origin(public: &url::Url, req: &Request<Incoming>) -> bool {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let Some(raw) = raw else {
        return true; // refused elsewhere (no host at all)
    };
    let Ok(hp) = crate::host::parse(&raw) else {
        return true; // refused elsewhere (bad host)
    };
    let want_host = public
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let want_port = public.port_or_known_default();
    hp.normalized() == want_host.to_ascii_lowercase()
        && hp.port.is_none_or(|p| Some(p) == want_port)
}

/// Whether a sub-path is the forward-auth endpoint.
pub fn is_verify(sub: &str) -> bool {
    sub == "/verify" || sub.starts_with("/verify/")
}

/// Whether a sub-path names one of the hosted endpoints [`dispatch`]
/// serves (any method); anything else under the prefix is a 404 here.
pub fn is_endpoint(sub: &str) -> bool {
    matches!(
        sub,
        "/me" | "/jwks.json" | "/login" | "/oidc/callback" | "/logout" | "/logout-all"
    ) || is_verify(sub)
        || crate::login::LoginCore::handles(sub)
}

/// Routes `{auth_prefix}{sub}` to its handler.
pub async fn dispatch<'g>(
    state: &AppState,
    generation: &'g Generation,
    req: Request<Incoming>,
    info: &ClientInfo,
    sub: &str,
    log: &mut AccessLog<'g>,
) -> Response<Body> {
    if is_verify(sub) {
        let mut resp = verify::handle(state, generation, req, info, log).await;
        answer::harden(&mut resp);
        return resp;
    }
    // A sign-in started on another origin than `public_url`'s (the user
    // opened http://localhost:8080 for http://127.0.0.1:8080) would set its
    // state cookie where the provider's callback never lands: send the
    // browser to the public origin first.
    // Once only: behind a proxy that rewrites Host (nginx's proxy_pass
    // without `proxy_set_header Host $host`) the public origin arrives under
    // another name too, and a second redirect would loop.
    let starts_sign_in = matches!(sub, "/login" | "/oauth/start" | "/sso/start");
    let query = req.uri().query().unwrap_or("");
    let moved_once = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == MOVED_PARAM);
    if starts_sign_in
        && !moved_once
        && matches!(*req.method(), Method::GET | Method::HEAD)
        && !on_public_origin(&generation.config.server.public_url, &req)
    {
        let mut target = generation.config.server.public_url.clone();
        target.set_path(req.uri().path());
        let marked = if query.is_empty() {
            format!("{MOVED_PARAM}=1")
        } else {
            format!("{query}&{MOVED_PARAM}=1")
        };
        target.set_query(Some(&marked));
        let mut resp = answer::redirect(StatusCode::FOUND, target.as_str());
        answer::harden(&mut resp);
        log.reason = "sign-in moved to the public origin";
        return resp;
    }
    // What an error answer depends on (a page for browsers, JSON else).
    let method = req.method().clone();
    let mut asked = HeaderMap::new();
    if let Some(a) = req.headers().get(http::header::ACCEPT) {
        asked.insert(http::header::ACCEPT, a.clone());
    }
    let get = matches!(method, Method::GET | Method::HEAD);
    let outcome = match sub {
        "/me" if get => Ok(me(state, generation, req.headers(), info.client_ip).await),
        "/jwks.json" if get => match &generation.config.identity.assertion {
            Some(_) => Ok(respond(
                StatusCode::OK,
                "application/json",
                state.assertion.jwks().to_string(),
            )),
            None => Err(Reject::NotFound("the identity assertion is not enabled")),
        },
        "/login" if get => Ok(login_page(state, generation, req, info.client_ip).await),
        "/oidc/callback" if get => match state.oidc() {
            Some(oidc) => Ok(oidc_login::callback(oidc, generation, &req, info).await),
            None => Err(Reject::NotFound("no such endpoint")),
        },
        "/logout" => Ok(logout::handle(state, generation, &req, logout::Scope::This).await),
        "/logout-all" => Ok(logout::handle(state, generation, &req, logout::Scope::All).await),
        s if crate::login::LoginCore::handles(s) => {
            login_endpoint(state, generation, req, info, s).await
        }
        "/me" | "/jwks.json" | "/login" => Err(Reject::MethodNotAllowed(
            "method not allowed",
            Some(http::HeaderValue::from_static("GET, HEAD")),
        )),
        _ => Err(Reject::NotFound("no such endpoint")),
    };
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(r) => {
            log.reason = r.reason();
            answer::reject(
                r,
                &answer::Ctx {
                    mode: Mode::Proxy,
                    method: &method,
                    headers: &asked,
                    generation,
                    here: "/",
                },
            )
        }
    };
    answer::harden(&mut resp);
    resp
}

/// `GET /me`: the verified claims (never raw tokens).
async fn me(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
    client_ip: std::net::IpAddr,
) -> Response<Body> {
    let session = resolve_session(state, generation, headers, Some(client_ip)).await;
    let none = HeaderMap::new();
    let ctx = |generation| answer::Ctx {
        mode: Mode::Proxy,
        method: &Method::GET,
        headers: &none,
        generation,
        here: "/",
    };
    match session {
        SessionState::Valid(s) => {
            let body = serde_json::json!({
                "user_id": s.claims.subject(),
                "claims": s.claims.as_map(),
            });
            let mut resp = respond(StatusCode::OK, "application/json", body.to_string());
            append_cookies(&mut resp, &s.cookies);
            resp
        }
        SessionState::Unavailable {
            reason,
            retry_after,
            cookies,
        } => answer::reject(
            Reject::Unavailable {
                reason,
                retry_after,
                cookies,
            },
            &ctx(generation),
        ),
        SessionState::Anonymous { reason, cookies } => answer::reject(
            Reject::Unauthenticated {
                reason,
                challenge: crate::decide::Challenge::Status401,
                return_to: "/".into(),
                cookies,
            },
            &ctx(generation),
        ),
    }
}

/// `GET /login`: already signed in (or refreshable) → straight to `return_to`;
/// otherwise the login page offering the configured methods.
async fn login_page(
    state: &AppState,
    generation: &Generation,
    req: Request<Incoming>,
    client_ip: std::net::IpAddr,
) -> Response<Body> {
    let cfg = &generation.config;
    let raw = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "return_to")
            .map(|(_, v)| v.into_owned())
    });
    let return_to = match &generation.login {
        Some(core) => core.sanitize_return_to(raw.as_deref()),
        None => raw.map_or_else(
            || "/".to_string(),
            |r| {
                crate::redirect::RedirectPolicy::new(&cfg.login.allowed_redirect_origins)
                    .unwrap_or_default()
                    .avoiding_prefix(&cfg.server.auth_prefix)
                    .sanitize(Some(&r))
            },
        ),
    };
    let session = resolve_session(state, generation, req.headers(), Some(client_ip)).await;
    let cookies = session.cookies().to_vec();
    if session.claims().is_some() {
        let mut r = answer::redirect(StatusCode::FOUND, &return_to);
        append_cookies(&mut r, &cookies);
        return r;
    }
    if let Some(oidc) = state.oidc() {
        let mut r = oidc_login::start(
            oidc,
            &state.store,
            generation,
            req.headers(),
            &return_to,
            client_ip,
        )
        .await;
        append_cookies(&mut r, &cookies);
        return r;
    }
    let mut r = match (&generation.login, login_deps(state)) {
        (Some(core), Some(deps)) => {
            let (parts, _body) = req.into_parts();
            core.login_page(deps, &parts).map(full)
        }
        // A gateway without login methods (API-only, or login hosted
        // elsewhere) still answers the redirect target with a plain page.
        _ => answer::page(crate::pages::message(
            &crate::pages::PageSettings::plain(
                &cfg.login.app_name,
                cfg.login.logo_url.as_deref(),
                &cfg.server.auth_prefix,
            ),
            StatusCode::OK,
            "Sign in",
            "No login method is configured on this gateway. Ask its administrator how to sign in.",
            false,
        )),
    };
    append_cookies(&mut r, &cookies);
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
) -> Result<Response<Body>, Reject> {
    let (Some(core), Some(deps)) = (&generation.login, login_deps(state)) else {
        return Err(Reject::NotFound("no login method is configured"));
    };
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, crate::login::MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| Reject::PayloadTooLarge("login body too large"))?
        .to_bytes();
    Ok(core
        .handle(deps, sub, &parts, body, info.client_ip)
        .await
        .map(full))
}

/// What the (Descope) login endpoints need; `None` in the OIDC mode.
fn login_deps(state: &AppState) -> Option<crate::login::Deps<'_>> {
    Some(crate::login::Deps {
        descope: state.descope()?,
        validator: state.validator()?,
        store: &state.store,
    })
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

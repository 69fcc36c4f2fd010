//! The request path (DESIGN §4). `handle` wraps `handle_inner`: the outer
//! function owns the access log, metrics and the request id; the inner one is
//! a sequence of phases with early returns:
//!
//! canonical path → hosted endpoints → route match (405 / deny / preflight /
//! public) → session (verify, refresh) → unauthenticated answer → rules →
//! identity headers → forward.
//!
//! Fail closed: every error path answers with a denial or a 5xx, never with
//! a forwarded request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::app::{AppState, Generation};
use crate::canon::CanonicalPath;
use crate::claims::Claims;
use crate::config::ForwardToken;
use crate::http_util::{Body, html_page, is_browser_navigation, is_preflight, json_error};
use crate::policy::{Access, DefaultPolicy, Route, Unauthenticated};
use crate::proxy::{ClientInfo, set_forwarding_headers, strip_hop_by_hop};
use crate::refresh::RefreshError;

/// The decision class of a request, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Unauthenticated,
    Forbidden,
    Invalid,
    Hosted,
    Unavailable,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::Hosted => "hosted",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What the access log line records (never tokens, cookies, queries or claims
/// beyond the user id).
#[derive(Debug)]
pub struct AccessLog {
    pub route: String,
    pub decision: Decision,
    pub reason: &'static str,
    pub user: Option<String>,
    pub path: String,
    pub upstream_status: Option<u16>,
}

pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response<Body> {
    let start = tokio::time::Instant::now();
    state.metrics.in_flight.inc();
    let generation = state.current();
    let info = ClientInfo::new(
        peer,
        tls,
        &generation.config.server.trusted_proxies,
        req.headers(),
    );
    let request_id = req
        .headers()
        .get("x-request-id")
        .filter(|_| info.trusted)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(crate::http_util::new_request_id);
    let method = req.method().clone();
    let mut log = AccessLog {
        route: "-".into(),
        decision: Decision::Invalid,
        reason: "",
        user: None,
        path: "-".into(),
        upstream_status: None,
    };
    let mut resp = handle_inner(&state, &generation, req, &info, &request_id, &mut log).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let m = &state.metrics;
    m.requests
        .with_label_values(&[&log.route, log.decision.as_str(), class])
        .inc();
    m.request_seconds
        .with_label_values(&[&log.route])
        .observe(elapsed.as_secs_f64());
    m.in_flight.dec();
    crate::telemetry::access(&crate::telemetry::AccessLine {
        request_id: &request_id,
        client: info.client_ip,
        method: method.as_str(),
        path: &log.path,
        route: &log.route,
        decision: log.decision.as_str(),
        reason: log.reason,
        user: log.user.as_deref().unwrap_or("-"),
        status,
        upstream_status: log.upstream_status.unwrap_or(0),
        latency_ms: elapsed.as_secs_f64() * 1000.0,
    });

    resp
}

/// The route a request is judged by: a configured one or the default policy.
pub enum Target<'a> {
    Route(&'a Route, Vec<(String, String)>),
    /// No route matched and `[policy] default = "authenticated"`.
    DefaultAuthenticated,
}

impl Target<'_> {
    pub fn name(&self) -> &str {
        match self {
            Self::Route(r, _) => &r.name,
            Self::DefaultAuthenticated => "(default)",
        }
    }

    pub fn upstream(&self) -> &str {
        match self {
            Self::Route(r, _) => &r.upstream,
            Self::DefaultAuthenticated => "default",
        }
    }

    /// `access` and `allow_preflight` of the route (the default policy:
    /// authenticated, no preflight pass-through).
    pub fn access(&self) -> (Access, bool) {
        match self {
            Self::Route(r, _) => (r.access, r.allow_preflight),
            Self::DefaultAuthenticated => (Access::Authenticated, false),
        }
    }

    /// Evaluates the route's rules; the default policy has none.
    pub fn authorize(
        &self,
        claims: &Claims,
        headers: &HeaderMap,
    ) -> Result<Option<String>, crate::policy::Denial> {
        match self {
            Self::Route(route, captures) => {
                route.authorize(claims, captures, headers).map(|g| g.tenant)
            }
            Self::DefaultAuthenticated => Ok(None),
        }
    }

    pub fn unauthenticated(&self) -> Unauthenticated {
        match self {
            Self::Route(r, _) => r.unauthenticated,
            Self::DefaultAuthenticated => Unauthenticated::Auto,
        }
    }
}

/// The outcome of matching a canonical path, shared with forward-auth.
pub enum Matched<'a> {
    Target(Target<'a>),
    /// `deny`, an unmatched request under `default = "deny"`, or a refused encoded slash.
    Deny(&'static str),
    BadPath,
    /// A letter-case variant of the path belongs to another route.
    AmbiguousCase,
    MethodNotAllowed,
}

pub fn match_route<'a>(
    generation: &'a Generation,
    host: Option<&str>,
    canon: &CanonicalPath,
    method: &Method,
    // A CORS preflight on an `allow_preflight` route is let through whatever
    // `methods` says (it goes upstream unauthenticated).
    preflight: bool,
) -> Matched<'a> {
    let policy = &generation.config.policy;
    let Ok(found) = policy.resolve(host, canon) else {
        return Matched::AmbiguousCase;
    };
    match found {
        None => {
            if canon.has_encoded_slash() {
                return Matched::BadPath;
            }
            match policy.default_policy() {
                DefaultPolicy::Deny => Matched::Deny("no route matches"),
                DefaultPolicy::Authenticated => Matched::Target(Target::DefaultAuthenticated),
            }
        }
        Some(m) => {
            let route = m.route;
            if canon.has_encoded_slash() && !route.allow_encoded_slash {
                return Matched::BadPath;
            }
            if route.access == Access::Deny {
                return Matched::Deny("route denies");
            }
            if !(route.allows_method(method) || (preflight && route.allow_preflight)) {
                return Matched::MethodNotAllowed;
            }
            Matched::Target(Target::Route(route, m.captures))
        }
    }
}

/// Refuses requests whose host is ambiguous or malformed, before anything is
/// decided on it: more than one `Host` header (RFC 9112 §3.2: 400), a
/// `Host` (or URI authority) outside [`crate::host`]'s grammar (junk after
/// the name such as `admin.test:x` or `admin.test,x` is read as
/// `admin.test` by Express and Go, but matches no `host` route), or a
/// `Host` that names another host than the URI authority (absolute-form on
/// HTTP/1.1, `:authority` on HTTP/2): host routes judge by one value and an
/// upstream could pick the other. Ports are not compared (routes ignore
/// them). An HTTP/1.1 request without any host is refused too (RFC 9112
/// §3.2): it would skip every `host` route and reach the upstream's default
/// host.
pub fn check_host(
    version: http::Version,
    req_uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if version == http::Version::HTTP_11 && first.is_none() && req_uri.authority().is_none() {
        return Err("no Host header");
    }
    let authority = match req_uri.authority() {
        Some(a) => Some(
            crate::host::parse(a.as_str())
                .map_err(|_| "malformed request authority")?
                .normalized(),
        ),
        None => None,
    };
    let header_host = match first {
        // An empty Host is allowed only without an authority (RFC 9112 §3.2).
        Some(h) if h.is_empty() && authority.is_none() => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|h| crate::host::parse(h).ok())
                .ok_or("malformed Host header")?
                .normalized(),
        ),
        None => None,
    };
    if let (Some(h), Some(a)) = (header_host, authority)
        && h != a
    {
        return Err("Host header differs from the request authority");
    }
    Ok(())
}

/// The request host without port, lower-cased (`Host`, or the URI authority
/// on HTTP/2); `None` when there is none (or it is malformed, which
/// [`check_host`] has refused already).
pub fn request_host(req_uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
    match headers.get(header::HOST) {
        Some(h) if !h.is_empty() => h
            .to_str()
            .ok()
            .and_then(|h| crate::host::parse(h).ok())
            .map(|h| h.normalized()),
        _ => req_uri
            .authority()
            .and_then(|a| crate::host::parse(a.as_str()).ok())
            .map(|h| h.normalized()),
    }
}

/// The result of looking for a session on a request.
#[derive(Default)]
pub struct SessionOutcome {
    pub claims: Option<Arc<Claims>>,
    /// The verified session JWT (for `forward_token`).
    pub session_jwt: Option<String>,
    /// `Set-Cookie` values to send (refreshed or cleared cookies).
    pub set_cookies: Vec<HeaderValue>,
    /// Descope could not be reached for a needed refresh.
    pub unavailable: Option<Option<Duration>>,
    /// The session came from `Authorization: Bearer`.
    pub via_bearer: bool,
    /// Why there is no session (for logs).
    pub reason: &'static str,
}

/// `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Finds, verifies and (when needed) refreshes the session of a request.
pub async fn resolve_session(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
) -> SessionOutcome {
    let cfg = &generation.config.session;
    let mut out = SessionOutcome::default();
    if cfg.accept_bearer
        && let Some(token) = bearer_token(headers)
    {
        out.via_bearer = true;
        match state.validator.verify_session(token).await {
            Ok(c) => {
                out.claims = Some(c);
                out.session_jwt = Some(token.to_string());
            }
            Err(crate::session::SessionError::KeysUnavailable) => {
                // Not the client's fault: no signing keys could be loaded yet.
                out.reason = "signing keys unavailable";
                out.unavailable = Some(None);
            }
            Err(e) => {
                tracing::debug!(reason = %e, "bearer token rejected");
                out.reason = "invalid bearer token";
            }
        }
        return out;
    }
    let tokens = cfg.cookies.read(headers);
    if let Some(session) = tokens.session.as_deref() {
        match state.validator.verify_session(session).await {
            Ok(c) => {
                let near_expiry = cfg.refresh_before.is_some_and(|window| {
                    c.expires_at().is_some_and(|exp| {
                        exp - now_secs() < i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
                    })
                });
                if !(near_expiry && cfg.refresh && tokens.refresh.is_some()) {
                    out.claims = Some(c);
                    out.session_jwt = Some(session.to_string());
                    return out;
                }
                // Early refresh; on an outage keep using the still-valid session.
                let refresh = tokens.refresh.as_deref().unwrap_or_default();
                refresh_into(state, generation, headers, refresh, &mut out).await;
                if out.claims.is_none() && out.unavailable.is_some() {
                    out.unavailable = None;
                    out.claims = Some(c);
                    out.session_jwt = Some(session.to_string());
                }
                return out;
            }
            Err(crate::session::SessionError::KeysUnavailable) => {
                out.reason = "signing keys unavailable";
                out.unavailable = Some(None);
            }
            Err(e) => {
                tracing::debug!(reason = %e, "session cookie rejected");
                out.reason = if e.is_expired() {
                    "session expired"
                } else {
                    "invalid session"
                };
            }
        }
    } else {
        out.reason = "no session";
    }
    match tokens.refresh.as_deref() {
        Some(refresh) if cfg.refresh => {
            refresh_into(state, generation, headers, refresh, &mut out).await
        }
        _ => {}
    }
    out
}

async fn refresh_into(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
    refresh: &str,
    out: &mut SessionOutcome,
) {
    let cookies = &generation.config.session.cookies;
    match state.refresher.refresh(refresh).await {
        Ok(r) => {
            out.set_cookies = cookies.set_session(
                headers,
                &r.session_jwt,
                r.refresh_rotated.then_some(r.refresh_jwt.as_str()),
            );
            out.session_jwt = Some(r.session_jwt.clone());
            out.claims = Some(r.claims.clone());
        }
        Err(RefreshError::InvalidToken) => {
            out.reason = "invalid refresh token";
            out.set_cookies = cookies.clear_all(headers);
        }
        Err(RefreshError::Revoked) => {
            out.reason = "session revoked";
            out.set_cookies = cookies.clear_all(headers);
        }
        Err(RefreshError::Unavailable { retry_after }) => {
            out.reason = "descope unavailable";
            out.unavailable = Some(retry_after);
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn handle_inner(
    state: &AppState,
    generation: &Generation,
    mut req: Request<Incoming>,
    info: &ClientInfo,
    request_id: &str,
    log: &mut AccessLog,
) -> Response<Body> {
    let cfg = &generation.config;
    // 0. Not a forward proxy (see `proxy::connect_refused`).
    if req.method() == Method::CONNECT {
        log.reason = "CONNECT";
        return crate::proxy::connect_refused();
    }
    // 1. Canonical path, computed once.
    let canon = match CanonicalPath::parse(req.uri().path()) {
        Ok(c) => c,
        Err(e) => {
            log.reason = "bad path";
            tracing::debug!(error = %e, "path refused");
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request path is not acceptable.",
            );
        }
    };
    log.path = canon.match_path().to_string();
    if let Err(reason) = check_host(req.version(), req.uri(), req.headers()) {
        log.reason = reason;
        // nginx's auth_request understands only 2xx, 401 and 403.
        let verify = canon
            .segments()
            .get(
                cfg.server
                    .auth_prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .count(),
            )
            .is_some_and(|s| s.decoded == "verify")
            && is_hosted_path(canon.match_path(), &cfg.server.auth_prefix);
        let status = if verify && cfg.forward_auth.mode == crate::config::ForwardAuthMode::Nginx {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        return json_error(status, "bad_request", "The request host is ambiguous.");
    }

    // 2. Hosted endpoints.
    let prefix = cfg.server.auth_prefix.as_str();
    let mp = canon.match_path();
    if is_hosted_path(mp, prefix) {
        // No hosted endpoint is reached through an encoded slash:
        // `/_auth%2Fverify` must not reach one under a spelling an ingress
        // or the app routes elsewhere. Only Envoy's `/verify/<original
        // path>` carries a path of its own, checked there against the
        // original path's route (`allow_encoded_slash`).
        let n = prefix.split('/').filter(|s| !s.is_empty()).count();
        let segs = canon.segments();
        let head_has_slash = segs.iter().take(n + 1).any(|s| s.decoded.contains('/'));
        let verify_path = segs.get(n).is_some_and(|s| s.decoded == "verify");
        if head_has_slash || (canon.has_encoded_slash() && !verify_path) {
            log.reason = "encoded slash";
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Encoded slashes are not allowed here.",
            );
        }
        log.decision = Decision::Hosted;
        log.route = "(hosted)".into();
        let sub = mp[prefix.len()..].to_string();
        return crate::hosted::dispatch(state, generation, req, info, &sub, log).await;
    }

    // 3. Route.
    let host = request_host(req.uri(), req.headers());
    let preflight = is_preflight(req.method(), req.headers());
    let target = match match_route(generation, host.as_deref(), &canon, req.method(), preflight) {
        Matched::BadPath => {
            log.reason = "encoded slash";
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Encoded slashes are not allowed here.",
            );
        }
        Matched::AmbiguousCase => {
            log.reason = "letter case selects another route";
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request path is not acceptable.",
            );
        }
        Matched::Deny(reason) => {
            log.decision = Decision::Forbidden;
            log.reason = reason;
            return forbidden_page(generation, req.method(), req.headers(), req.uri());
        }
        Matched::MethodNotAllowed => {
            log.reason = "method not allowed";
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            );
        }
        Matched::Target(t) => t,
    };
    log.route = target.name().to_string();
    if let Target::Route(r, _) = &target
        && !crate::method_override::head_allowed(r, req.headers(), req.uri().query())
    {
        log.reason = "method override not allowed";
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        );
    }
    let (access, preflight_ok) = target.access();
    let forward_path = forward_path(&target, &canon, req.uri().query());
    let upstream = Forwarding {
        state,
        generation,
        info,
        request_id,
        target: &target,
        path_and_query: &forward_path,
    };

    if access == Access::Public || (preflight_ok && preflight) {
        log.decision = Decision::Allowed;
        log.reason = if access == Access::Public {
            "public"
        } else {
            "preflight"
        };
        return upstream.send(req, None, Vec::new(), log).await;
    }

    // 4–5. Session.
    let session = resolve_session(state, generation, req.headers()).await;
    let Some(claims) = session.claims.clone() else {
        if let Some(retry_after) = session.unavailable {
            if access == Access::Optional {
                log.decision = Decision::Allowed;
                log.reason = "optional; descope unavailable";
                return upstream.send(req, None, Vec::new(), log).await;
            }
            log.decision = Decision::Unavailable;
            log.reason = "descope unavailable";
            return unavailable_page(generation, req.method(), req.headers(), retry_after);
        }
        // 6. No valid session.
        if access == Access::Optional {
            log.decision = Decision::Allowed;
            log.reason = "optional; anonymous";
            return upstream.send(req, None, session.set_cookies, log).await;
        }
        if let Some(mut icon) = crate::favicon::for_signed_out(req.method(), canon.match_path()) {
            log.decision = Decision::Hosted;
            log.reason = "built-in favicon";
            append_cookies(&mut icon, &session.set_cookies);
            return icon;
        }
        log.decision = Decision::Unauthenticated;
        log.reason = session.reason;
        let mut resp = unauthenticated(
            cfg,
            &target,
            req.method(),
            req.headers(),
            &canon,
            req.uri().query(),
        );
        append_cookies(&mut resp, &session.set_cookies);
        return resp;
    };
    log.user = claims.subject().map(str::to_string);

    // 7. Rules.
    let tenant = match target.authorize(&claims, req.headers()) {
        Ok(tenant) => tenant,
        Err(denial) => {
            log.decision = Decision::Forbidden;
            tracing::debug!(reason = %denial.reason, "rules denied");
            log.reason = "rules denied";
            let mut resp = forbidden_page(generation, req.method(), req.headers(), req.uri());
            append_cookies(&mut resp, &session.set_cookies);
            return resp;
        }
    };
    log.decision = Decision::Allowed;
    log.reason = "authorized";

    // Token forwarding (the consumed Authorization header is removed in `forward`).
    if let Some(jwt) = session.session_jwt.as_deref() {
        match &cfg.identity.forward_token {
            ForwardToken::None => {}
            ForwardToken::Authorization => {
                if let Ok(v) = HeaderValue::from_str(&format!("Bearer {jwt}")) {
                    req.extensions_mut().insert(ForwardAuthorization(v));
                }
            }
            ForwardToken::Header(h) => {
                if let Ok(v) = HeaderValue::from_str(jwt) {
                    req.extensions_mut().insert(ForwardHeader(h.clone(), v));
                }
            }
        }
    }
    let identity = Identity { claims, tenant };
    upstream
        .send(req, Some(identity), session.set_cookies, log)
        .await
}

/// Whether a canonical match path is `auth_prefix` or below it.
pub fn is_hosted_path(match_path: &str, prefix: &str) -> bool {
    match_path == prefix
        || match_path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The verified identity to inject.
pub struct Identity {
    pub claims: Arc<Claims>,
    pub tenant: Option<String>,
}

#[derive(Clone)]
struct ForwardAuthorization(HeaderValue);

#[derive(Clone)]
struct ForwardHeader(http::HeaderName, HeaderValue);

/// The upstream path + query: the canonical path (minus `strip_prefix`),
/// re-encoded; the query byte for byte.
fn forward_path(target: &Target<'_>, canon: &CanonicalPath, query: Option<&str>) -> String {
    let stripped = match target {
        Target::Route(r, _) => r.strip(canon),
        Target::DefaultAuthenticated => None,
    };
    let mut p = stripped.as_ref().unwrap_or(canon).to_forward();
    if let Some(q) = query {
        p.push('?');
        p.push_str(q);
    }
    p
}

/// Removes the gateway's own cookies from `Cookie` (all `Cookie` headers).
pub fn strip_gateway_cookies(generation: &Generation, headers: &mut HeaderMap) {
    let cookies = &generation.config.session.cookies;
    let values: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if values.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    let kept: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
            !cookies.is_gateway_cookie(name)
        })
        .map(str::to_string)
        .collect();
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Everything about a request's upstream leg that is fixed once the route is
/// known; `send` does the forwarding (identity, headers, stream, errors).
struct Forwarding<'a> {
    state: &'a AppState,
    generation: &'a Generation,
    info: &'a ClientInfo,
    request_id: &'a str,
    target: &'a Target<'a>,
    path_and_query: &'a str,
}

impl Forwarding<'_> {
    async fn send(
        &self,
        req: Request<Incoming>,
        identity: Option<Identity>,
        set_cookies: Vec<HeaderValue>,
        log: &mut AccessLog,
    ) -> Response<Body> {
        let Self {
            state,
            generation,
            info,
            request_id,
            target,
            path_and_query,
        } = *self;
        let cfg = &generation.config;
        let mut req = req.map(crate::http_util::incoming);
        if let Some(limit) = cfg.server.max_body_bytes
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|len| len > limit)
        {
            log.reason = "body too large";
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            );
        }
        if let Target::Route(route, _) = target
            && let Some(kind) =
                crate::method_override::body_to_inspect(route, req.method(), req.headers())
        {
            match inspect_body(req, route, &kind).await {
                Ok(r) => req = r,
                Err(refusal) => {
                    log.reason = refusal.reason();
                    return refusal.response();
                }
            }
        }
        let Some(upstream) = generation.upstreams.get(target.upstream()) else {
            log.decision = Decision::Invalid;
            log.reason = "unknown upstream";
            return json_error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "The upstream is not available.",
            );
        };
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
        let forward_auth = req.extensions_mut().remove::<ForwardAuthorization>();
        let forward_header = req.extensions_mut().remove::<ForwardHeader>();
        let headers = req.headers_mut();
        let upgrade = strip_hop_by_hop(headers);
        crate::inbound::scrub(headers, info.trusted, &generation.identity);
        generation.identity.inject(
            headers,
            identity
                .as_ref()
                .map(|i| (i.claims.as_ref(), i.tenant.as_deref())),
        );
        strip_gateway_cookies(generation, headers);
        if cfg.session.accept_bearer && bearer_token(headers).is_some() {
            headers.remove(header::AUTHORIZATION);
        }
        if let Some(ForwardAuthorization(v)) = forward_auth {
            headers.insert(header::AUTHORIZATION, v);
        }
        if let Some(ForwardHeader(h, v)) = forward_header {
            headers.insert(h, v);
        }
        if let (Some(a), Some(id)) = (&cfg.identity.assertion, &identity)
            && let Some(jwt) = state.assertion.sign(
                &cfg.server.public_origin,
                upstream.cfg.url.as_str(),
                &id.claims,
                id.tenant.as_deref(),
                a.ttl,
            )
            && let Ok(v) = HeaderValue::from_str(&jwt)
        {
            headers.insert(a.header.clone(), v);
        }
        set_forwarding_headers(headers, info, host.as_deref(), request_id);
        match upstream
            .forward(
                req,
                path_and_query,
                upgrade,
                cfg.server.max_body_bytes,
                &state.metrics.upstream_retries,
            )
            .await
        {
            Ok(mut resp) => {
                log.upstream_status = Some(resp.status().as_u16());
                append_cookies(&mut resp, &set_cookies);
                resp
            }
            Err(e) => {
                if e.is_client_fault() {
                    tracing::debug!(upstream = %upstream.cfg.name, error = %e, "client body refused");
                } else {
                    state
                        .metrics
                        .upstream_errors
                        .with_label_values(&[e.kind()])
                        .inc();
                    tracing::warn!(upstream = %upstream.cfg.name, error = %e, "upstream failed");
                }
                log.reason = e.kind();
                let (code, message) = e.public_text();
                let mut resp = json_error(e.status(), code, message);
                append_cookies(&mut resp, &set_cookies);
                resp
            }
        }
    }
}

/// Why a body inspected for `_method` stops the request.
enum BodyRefusal {
    TooLarge,
    Unreadable,
    Override,
}

impl BodyRefusal {
    fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "body too large to inspect for method overrides",
            Self::Unreadable => "request body unreadable",
            Self::Override => "method override not allowed",
        }
    }

    fn response(&self) -> Response<Body> {
        match self {
            Self::TooLarge => json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            Self::Unreadable => json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.",
            ),
            Self::Override => json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            ),
        }
    }
}

/// Reads a body that may carry a `_method` override (see
/// [`crate::method_override`]) and judges it; on success the request goes on
/// with the same bytes, buffered.
async fn inspect_body(
    req: Request<Body>,
    route: &Route,
    kind: &crate::method_override::BodyKind,
) -> Result<Request<Body>, BodyRefusal> {
    use crate::method_override::MAX_INSPECTED_BODY;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_INSPECTED_BODY as u64) {
        return Err(BodyRefusal::TooLarge);
    }
    let (parts, mut body) = req.into_parts();
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyRefusal::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_INSPECTED_BODY {
                return Err(BodyRefusal::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    let bytes = buf.freeze();
    if !crate::method_override::body_allowed(route, kind, &bytes).await {
        return Err(BodyRefusal::Override);
    }
    Ok(Request::from_parts(parts, crate::http_util::full(bytes)))
}

pub fn append_cookies(resp: &mut Response<Body>, cookies: &[HeaderValue]) {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
}

/// 302 to login for browser navigations (or `unauthenticated = "redirect"`), else 401 JSON.
pub fn unauthenticated(
    cfg: &crate::config::Config,
    target: &Target<'_>,
    method: &Method,
    headers: &HeaderMap,
    canon: &CanonicalPath,
    query: Option<&str>,
) -> Response<Body> {
    let redirect = match target.unauthenticated() {
        Unauthenticated::Redirect => true,
        Unauthenticated::Status401 => false,
        Unauthenticated::Auto => is_browser_navigation(method, headers),
    };
    if redirect {
        let mut return_to = canon.to_forward();
        if let Some(q) = query {
            return_to.push('?');
            return_to.push_str(q);
        }
        return login_redirect(cfg, &return_to);
    }
    let mut resp = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "A valid session is required.",
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// 302 to `{auth_prefix}/login?return_to=...`.
pub fn login_redirect(cfg: &crate::config::Config, return_to: &str) -> Response<Body> {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    let location = format!("{}/login?{q}", cfg.server.auth_prefix);
    let mut resp = crate::http_util::respond(StatusCode::FOUND, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// 403 with the hosted login look (and a "sign in as someone else" button)
/// when login pages are configured; otherwise [`forbidden`].
pub fn forbidden_page(
    generation: &Generation,
    method: &Method,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Response<Body> {
    match &generation.login {
        Some(core) if is_browser_navigation(method, headers) => {
            // "Sign in as someone else" comes back here after the new login.
            let here = core.sanitize_return_to(uri.path_and_query().map(|p| p.as_str()));
            page_response(crate::pages::forbidden(core.page_settings(), &here))
        }
        _ => forbidden(method, headers),
    }
}

/// 503 for browsers with the hosted login look when configured; otherwise [`unavailable`].
pub fn unavailable_page(
    generation: &Generation,
    method: &Method,
    headers: &HeaderMap,
    retry_after: Option<Duration>,
) -> Response<Body> {
    match &generation.login {
        Some(core) if is_browser_navigation(method, headers) => {
            let mut resp = page_response(crate::pages::unavailable(core.page_settings()));
            let secs = retry_after.map_or(5, |d| d.as_secs().max(1));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        _ => unavailable(method, headers, retry_after),
    }
}

fn page_response(page: crate::pages::Page) -> Response<Body> {
    page.into_response().map(crate::http_util::full)
}

/// 403: a small HTML page for browsers, JSON otherwise.
pub fn forbidden(method: &Method, headers: &HeaderMap) -> Response<Body> {
    if is_browser_navigation(method, headers) {
        html_page(
            StatusCode::FORBIDDEN,
            "Access denied",
            "You are signed in, but your account is not allowed to open this page.",
        )
    } else {
        json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You are not allowed to access this resource.",
        )
    }
}

/// 503 with `Retry-After` (a friendly page for browsers); cookies are kept.
pub fn unavailable(
    method: &Method,
    headers: &HeaderMap,
    retry_after: Option<Duration>,
) -> Response<Body> {
    let secs = retry_after.map_or(5, |d| d.as_secs().max(1));
    let mut resp = if is_browser_navigation(method, headers) {
        html_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in service temporarily unavailable",
            "We could not renew your session just now. Please try again in a few seconds.",
        )
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The session service is temporarily unavailable.",
        )
    };
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

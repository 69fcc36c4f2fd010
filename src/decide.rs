//! The one authorization decision, shared by the proxy path, forward-auth
//! (`/verify`), `/me`, the login page and logout. See docs/architecture.md.
//!
//! ```text
//! Facts::new   raw path → canonical path (forward-auth: refused when the
//!              original bytes would be read differently)
//! decide:
//!   1. route         policy.resolve → Target; deny / 405 / overrides; public and
//!                    preflight end here, anonymously
//!   2. authenticate  Bearer or session cookie, verified locally (cached by hash)
//!   3. refresh       missing / expired / near expiry + refresh token → one shared
//!                    call; new cookies ride along with the verdict
//!   4. authorize     the route's rules on the verified claims → tenant
//!   5. identity      Verdict { target, identity, cookies, reason }
//! ```
//!
//! Every way out that is not a [`Verdict`] is a [`Reject`]; `answer` turns it
//! into the response for the mode (proxy, nginx, Traefik, Envoy). Nothing
//! here builds a response or touches the network except through the
//! session validator and the refresher.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::canon::CanonicalPath;
use crate::claims::Claims;
use crate::config::ForwardAuthMode;
use crate::http_util::is_preflight;
use crate::oidc::Oidc;
use crate::policy::{Access, DefaultPolicy, Route, Unauthenticated};
use crate::refresh::RefreshError;
use crate::session::SessionError;
use crate::session::SessionValidator;
use crate::state::{AppState, Generation, Idp};

// === the request as decided on ===

/// Where the request to decide comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The gateway proxies it: it forwards the canonical path it judged.
    Proxy,
    /// An ingress asks `/verify` and forwards the original bytes itself.
    ForwardAuth(ForwardAuthMode),
}

/// The facts a decision is made on: the original request as the mode reads
/// it. `headers` carry the credentials, overrides and `Accept`.
pub struct Facts<'a> {
    pub mode: Mode,
    pub method: &'a Method,
    pub canon: CanonicalPath,
    pub query: Option<&'a str>,
    /// Lower-case, without port (see `crate::host`).
    pub host: Option<String>,
    pub headers: &'a HeaderMap,
    /// The client address believed (trusted proxies honoured), for the
    /// access-key exchange limit; set by the caller.
    pub client_ip: Option<std::net::IpAddr>,
}

impl<'a> Facts<'a> {
    /// Canonicalizes `raw_path`. In forward-auth the app gets the original
    /// bytes, not the canonical form, so a path canonicalization would
    /// restructure (dot or empty segments) or whose letters are
    /// percent-encoded (Express matches them raw, Flask decoded) is refused
    /// instead of judged on a cleaned-up copy.
    pub fn new(
        mode: Mode,
        method: &'a Method,
        raw_path: &str,
        query: Option<&'a str>,
        host: Option<String>,
        headers: &'a HeaderMap,
    ) -> Result<Self, Reject> {
        let canon = CanonicalPath::parse(raw_path).map_err(|e| {
            tracing::debug!(error = %e, "path refused");
            Reject::BadRequest("bad path")
        })?;
        if matches!(mode, Mode::ForwardAuth(_)) {
            if canon.was_resolved() {
                return Err(Reject::BadRequest(
                    "original path has dot or empty segments",
                ));
            }
            if crate::canon::encodes_unreserved(raw_path) {
                return Err(Reject::BadRequest(
                    "original path encodes letters, digits or -._~",
                ));
            }
        }
        Ok(Self {
            mode,
            method,
            canon,
            query,
            host,
            headers,
            client_ip: None,
        })
    }

    /// The path and query to come back to after signing in.
    pub fn return_to(&self) -> String {
        let mut r = self.canon.to_forward();
        if let Some(q) = self.query {
            r.push('?');
            r.push_str(q);
        }
        r
    }
}

// === outcomes ===

/// The route a request is judged by: a configured one or the default policy.
pub enum Target<'g> {
    Route(&'g Route, Vec<(String, String)>),
    /// No route matched and `[policy] default = "authenticated"`.
    DefaultAuthenticated,
}

impl<'g> Target<'g> {
    pub fn name(&self) -> &'g str {
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

    pub fn route(&self) -> Option<&Route> {
        match self {
            Self::Route(r, _) => Some(r),
            Self::DefaultAuthenticated => None,
        }
    }

    fn access(&self) -> Access {
        self.route().map_or(Access::Authenticated, |r| r.access)
    }

    fn unauthenticated(&self) -> Unauthenticated {
        self.route()
            .map_or(Unauthenticated::Auto, |r| r.unauthenticated)
    }
}

/// A verified user: the claims and the route's tenant.
pub struct Identity {
    pub claims: Arc<Claims>,
    pub tenant: Option<String>,
}

/// A request that may go on.
pub struct Verdict<'g> {
    pub target: Target<'g>,
    /// `None`: forwarded anonymously (public, preflight, optional).
    pub identity: Option<Identity>,
    /// The verified session JWT, for `[identity] forward_token`.
    pub session_jwt: Option<String>,
    /// `Set-Cookie` values to send (refreshed or cleared cookies).
    pub cookies: Vec<HeaderValue>,
    pub reason: &'static str,
}

/// How an unauthenticated request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// 302 to the login page (browser navigations, `unauthenticated = "redirect"`).
    Login,
    /// 401 with `WWW-Authenticate: Bearer`.
    Status401,
}

/// Every way a request stops before reaching the app. `answer::reject`
/// is the one table that maps each to a status, a JSON body or an HTML
/// page, and each forward-auth mode's answer.
#[derive(Debug)]
pub enum Reject {
    /// A path, host or encoding the gateway will not judge (400).
    BadRequest(&'static str),
    NotFound(&'static str),
    /// 405; the `Allow` value (RFC 9110 §15.5.6) when it is known.
    MethodNotAllowed(&'static str, Option<HeaderValue>),
    Forbidden {
        reason: &'static str,
        cookies: Vec<HeaderValue>,
    },
    Unauthenticated {
        reason: &'static str,
        challenge: Challenge,
        return_to: String,
        cookies: Vec<HeaderValue>,
    },
    /// The session service is down or keys are not loaded yet (503).
    Unavailable {
        reason: &'static str,
        retry_after: Option<Duration>,
        cookies: Vec<HeaderValue>,
    },
    PayloadTooLarge(&'static str),
    /// The request head is over `max_header_bytes` (431).
    HeadersTooLarge,
    /// The upstream failed (502/504) or refused the client's body (400/413).
    Upstream {
        reason: &'static str,
        status: StatusCode,
        code: &'static str,
        message: &'static str,
        cookies: Vec<HeaderValue>,
    },
}

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

impl Reject {
    pub fn decision(&self) -> Decision {
        match self {
            Self::BadRequest(_)
            | Self::NotFound(_)
            | Self::MethodNotAllowed(..)
            | Self::PayloadTooLarge(_)
            | Self::HeadersTooLarge
            | Self::Upstream { .. } => Decision::Invalid,
            Self::Forbidden { .. } => Decision::Forbidden,
            Self::Unauthenticated { .. } => Decision::Unauthenticated,
            Self::Unavailable { .. } => Decision::Unavailable,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(r)
            | Self::NotFound(r)
            | Self::MethodNotAllowed(r, _)
            | Self::PayloadTooLarge(r)
            | Self::Forbidden { reason: r, .. }
            | Self::Unauthenticated { reason: r, .. }
            | Self::Unavailable { reason: r, .. }
            | Self::Upstream { reason: r, .. } => r,
            Self::HeadersTooLarge => "request headers too large",
        }
    }
}

/// What the access log line records (never tokens, cookies, queries or
/// claims beyond the user id); filled from the outcome, once.
/// Borrows the route name from the generation the request was decided on.
#[derive(Debug)]
pub struct AccessLog<'g> {
    pub route: &'g str,
    pub decision: Decision,
    pub reason: &'static str,
    pub user: Option<String>,
    pub path: String,
    pub upstream_status: Option<u16>,
}

impl Default for AccessLog<'_> {
    fn default() -> Self {
        Self {
            route: "-",
            decision: Decision::Invalid,
            reason: "",
            user: None,
            path: String::new(),
            upstream_status: None,
        }
    }
}

impl<'g> AccessLog<'g> {
    pub fn verdict(&mut self, v: &Verdict<'g>) {
        self.route = v.target.name();
        self.decision = Decision::Allowed;
        self.reason = v.reason;
        self.user = v
            .identity
            .as_ref()
            .and_then(|i| i.claims.subject())
            .map(str::to_owned);
    }

    pub fn reject(&mut self, r: &Reject) {
        self.decision = r.decision();
        self.reason = r.reason();
    }
}

// === the decision ===

/// Decides a request that is not for a hosted endpoint.
pub async fn decide<'g>(
    state: &AppState,
    generation: &'g Generation,
    facts: &Facts<'_>,
) -> Result<Verdict<'g>, Reject> {
    let target = route(generation, facts)?;
    let access = target.access();
    let preflight = target.route().is_some_and(|r| r.allow_preflight)
        && is_preflight(facts.method, facts.headers);
    if access == Access::Public || preflight {
        let reason = if access == Access::Public {
            "public"
        } else {
            "preflight"
        };
        return Ok(anonymous(target, reason, Vec::new()));
    }
    let session = match resolve_session(state, generation, facts.headers, facts.client_ip).await {
        SessionState::Valid(s) => s,
        SessionState::Unavailable { .. } if access == Access::Optional => {
            return Ok(anonymous(
                target,
                "optional; descope unavailable",
                Vec::new(),
            ));
        }
        SessionState::Unavailable {
            reason,
            retry_after,
            cookies,
        } => {
            return Err(Reject::Unavailable {
                reason,
                retry_after,
                cookies,
            });
        }
        SessionState::Anonymous { cookies, .. } if access == Access::Optional => {
            return Ok(anonymous(target, "optional; anonymous", cookies));
        }
        SessionState::Anonymous { reason, cookies } => {
            return Err(Reject::Unauthenticated {
                reason,
                challenge: challenge(&target, facts),
                return_to: facts.return_to(),
                cookies,
            });
        }
    };
    let tenant = authorize(&target, &session, facts)?;
    Ok(Verdict {
        target,
        identity: Some(Identity {
            claims: session.claims,
            tenant,
        }),
        session_jwt: session.token,
        cookies: session.cookies,
        reason: "authorized",
    })
}

/// A route's `methods` as an `Allow` value (HEAD with GET, as served).
pub fn allow_header(route: &portcullis_core::policy::Route) -> Option<HeaderValue> {
    let methods = route.methods()?;
    let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        names.push("HEAD");
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

fn anonymous<'g>(
    target: Target<'g>,
    reason: &'static str,
    cookies: Vec<HeaderValue>,
) -> Verdict<'g> {
    Verdict {
        target,
        identity: None,
        session_jwt: None,
        cookies,
        reason,
    }
}

fn challenge(target: &Target<'_>, facts: &Facts<'_>) -> Challenge {
    let login = match target.unauthenticated() {
        Unauthenticated::Redirect => true,
        Unauthenticated::Status401 => false,
        Unauthenticated::Auto => {
            crate::http_util::is_browser_navigation(facts.method, facts.headers)
        }
    };
    if login {
        Challenge::Login
    } else {
        Challenge::Status401
    }
}

/// Phase 1: the route, and everything decided by it alone.
pub fn route<'g>(generation: &'g Generation, facts: &Facts<'_>) -> Result<Target<'g>, Reject> {
    let policy = &generation.config.policy;
    let canon = &facts.canon;
    // No host (HTTP/1.0 without `Host`, an empty `Host`, HTTP/2 without
    // `:authority`): every `host` route would be skipped for a laxer one.
    if facts.host.is_none() && policy.has_host_routes() {
        return Err(Reject::BadRequest("no host, and routes depend on it"));
    }
    let found = policy
        .resolve(facts.host.as_deref(), canon)
        .map_err(|_| Reject::BadRequest("letter case or path parameters select another route"))?;
    let Some(m) = found else {
        if canon.has_encoded_slash() {
            return Err(Reject::BadRequest("encoded slash"));
        }
        return match policy.default_policy() {
            DefaultPolicy::Deny => Err(Reject::Forbidden {
                reason: "no route matches",
                cookies: Vec::new(),
            }),
            DefaultPolicy::Authenticated => Ok(Target::DefaultAuthenticated),
        };
    };
    let route = m.route;
    if canon.has_encoded_slash() && !route.allow_encoded_slash {
        return Err(Reject::BadRequest("encoded slash"));
    }
    if route.access == Access::Deny {
        return Err(Reject::Forbidden {
            reason: "route denies",
            cookies: Vec::new(),
        });
    }
    // A CORS preflight on an `allow_preflight` route is let through whatever
    // `methods` says (it goes upstream unauthenticated).
    let preflight = route.allow_preflight && is_preflight(facts.method, facts.headers);
    if !(route.allows_method(facts.method) || preflight) {
        return Err(Reject::MethodNotAllowed(
            "method not allowed",
            allow_header(route),
        ));
    }
    if !crate::method_override::head_allowed(route, facts.headers, facts.query) {
        return Err(Reject::MethodNotAllowed(
            "method override not allowed",
            allow_header(route),
        ));
    }
    // The proxy path reads such a body for `_method`; forward-auth never
    // sees it, so it cannot vouch for what the app will make of it.
    if matches!(facts.mode, Mode::ForwardAuth(_))
        && crate::method_override::unreadable_body_may_override(route, facts.method, facts.headers)
    {
        return Err(Reject::MethodNotAllowed(
            "body may override the method (forward-auth cannot read it)",
            allow_header(route),
        ));
    }
    Ok(Target::Route(route, m.captures))
}

/// Phase 4: the route's rules on the verified claims.
fn authorize(
    target: &Target<'_>,
    session: &Session,
    facts: &Facts<'_>,
) -> Result<Option<String>, Reject> {
    match target {
        Target::Route(route, captures) => route
            .authorize(&session.claims, captures, facts.headers)
            .map(|g| g.tenant)
            .map_err(|denial| {
                tracing::debug!(reason = %denial.reason, "rules denied");
                Reject::Forbidden {
                    reason: "rules denied",
                    cookies: session.cookies.clone(),
                }
            }),
        Target::DefaultAuthenticated => Ok(None),
    }
}

// === phases 2 and 3: the session ===

/// A verified session.
pub struct Session {
    pub claims: Arc<Claims>,
    /// The verified session JWT (for `forward_token`).
    pub token: Option<String>,
    /// `Set-Cookie` values (a refresh's new cookies).
    pub cookies: Vec<HeaderValue>,
}

/// What looking for a session found, after any refresh.
pub enum SessionState {
    Valid(Session),
    /// No usable session; `cookies` may clear a revoked one.
    Anonymous {
        reason: &'static str,
        cookies: Vec<HeaderValue>,
    },
    /// The session could not be checked or renewed (no keys, Descope down);
    /// cookies are kept.
    Unavailable {
        reason: &'static str,
        retry_after: Option<Duration>,
        cookies: Vec<HeaderValue>,
    },
}

impl SessionState {
    pub fn claims(&self) -> Option<&Arc<Claims>> {
        match self {
            Self::Valid(s) => Some(&s.claims),
            Self::Anonymous { .. } | Self::Unavailable { .. } => None,
        }
    }

    pub fn cookies(&self) -> &[HeaderValue] {
        match self {
            Self::Valid(Session { cookies, .. })
            | Self::Anonymous { cookies, .. }
            | Self::Unavailable { cookies, .. } => cookies,
        }
    }
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

/// What the credentials on a request verify to, before any refresh.
enum Found {
    Valid {
        claims: Arc<Claims>,
        token: String,
        /// Valid, but inside `refresh_before` with a refresh token at hand.
        refresh_early: Option<String>,
    },
    /// No valid session; `refresh` is the refresh token to try, for the
    /// user `subject` when the session said who it was.
    Missing {
        reason: &'static str,
        refresh: Option<String>,
        subject: Option<String>,
        /// When the expired session was issued, when known (a logout-all
        /// of `subject` after it refuses the refresh).
        issued_at: Option<i64>,
    },
    KeysUnavailable,
}

/// Phases 2 and 3: finds, verifies and (when needed) refreshes the session.
pub async fn resolve_session(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> SessionState {
    let found = match authenticate(state, generation, headers, client_ip).await {
        Found::Valid { claims, token, .. } if signed_out(state, &token, &claims).await => {
            return SessionState::Anonymous {
                reason: "signed out",
                cookies: generation.config.session.cookies.clear_all(headers),
            };
        }
        other => other,
    };
    match found {
        Found::Valid {
            claims,
            token,
            refresh_early: None,
        } => SessionState::Valid(Session {
            claims,
            token: Some(token),
            cookies: Vec::new(),
        }),
        Found::Valid {
            claims,
            token,
            refresh_early: Some(refresh_token),
        } => {
            let subject = claims.subject().map(str::to_owned);
            match refresh(
                state,
                generation,
                headers,
                &refresh_token,
                subject.as_deref(),
                claims.issued_at(),
            )
            .await
            {
                // On an outage the still-valid session keeps serving.
                SessionState::Unavailable { .. } => SessionState::Valid(Session {
                    claims,
                    token: Some(token),
                    cookies: Vec::new(),
                }),
                other => other,
            }
        }
        Found::Missing {
            refresh: Some(r),
            subject,
            issued_at,
            ..
        } if generation.config.session.refresh => {
            refresh(
                state,
                generation,
                headers,
                &r,
                subject.as_deref(),
                issued_at,
            )
            .await
        }
        Found::Missing { reason, .. } => SessionState::Anonymous {
            reason,
            cookies: Vec::new(),
        },
        Found::KeysUnavailable => SessionState::Unavailable {
            reason: "signing keys unavailable",
            retry_after: None,
            cookies: Vec::new(),
        },
    }
}

/// Whether the session was signed out (`/logout` of this token, or
/// `/logout-all` of its user after it was issued), on this replica or, with
/// a `[store]`, on any.
async fn signed_out(state: &AppState, token: &str, claims: &Claims) -> bool {
    // An empty token (a sealed session without an ID token) still answers
    // for its user's logout-all; no token is ever remembered as "".
    state
        .store
        .is_revoked(token, claims.subject(), claims.issued_at())
        .await
}

/// Whether a valid session is close enough to its expiry for an early refresh.
fn near_expiry(generation: &Generation, exp: Option<i64>) -> bool {
    generation
        .config
        .session
        .refresh_before
        .is_some_and(|window| {
            exp.is_some_and(|exp| {
                exp - crate::time::unix_now_i64()
                    < i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
            })
        })
        && generation.config.session.refresh
}

/// Phase 2: a Bearer token (when accepted; a failing one is not retried
/// from the cookie) or the session cookie, verified locally.
async fn authenticate(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) -> Found {
    match &state.idp {
        Idp::Descope {
            client,
            validator,
            access_keys,
        } => {
            if generation.config.session.accept_access_keys
                && let Some(key) = bearer_token(headers)
                && !crate::access_keys::looks_like_jwt(key)
            {
                return match access_keys
                    .authenticate(client, validator, key, client_ip)
                    .await
                {
                    Ok((claims, token)) => Found::Valid {
                        claims,
                        token,
                        refresh_early: None,
                    },
                    Err(crate::access_keys::KeyError::Unavailable) => Found::KeysUnavailable,
                    Err(e) => {
                        tracing::debug!(reason = %e, "access key rejected");
                        Found::Missing {
                            reason: "invalid access key",
                            refresh: None,
                            subject: None,
                            issued_at: None,
                        }
                    }
                };
            }
            authenticate_descope(validator, generation, headers).await
        }
        Idp::Oidc(oidc) => authenticate_oidc(oidc, generation, headers).await,
    }
}

async fn authenticate_descope(
    validator: &SessionValidator,
    generation: &Generation,
    headers: &HeaderMap,
) -> Found {
    let cfg = &generation.config.session;
    if cfg.accept_bearer
        && let Some(token) = bearer_token(headers)
    {
        return match validator.verify_session(token).await {
            Ok(claims) => Found::Valid {
                claims,
                token: token.to_owned(),
                refresh_early: None,
            },
            // Not the client's fault: no signing keys could be loaded yet.
            Err(SessionError::KeysUnavailable) => Found::KeysUnavailable,
            Err(e) => {
                tracing::debug!(reason = %e, "bearer token rejected");
                Found::Missing {
                    reason: "invalid bearer token",
                    refresh: None,
                    subject: None,
                    issued_at: None,
                }
            }
        };
    }
    let tokens = cfg.cookies.read(headers);
    let Some(session) = tokens.session else {
        return Found::Missing {
            reason: "no session",
            refresh: tokens.refresh,
            subject: None,
            issued_at: None,
        };
    };
    match validator.verify_session(&session).await {
        Ok(claims) => {
            let early = near_expiry(generation, claims.expires_at());
            Found::Valid {
                claims,
                token: session,
                refresh_early: tokens.refresh.filter(|_| early),
            }
        }
        Err(SessionError::KeysUnavailable) => Found::KeysUnavailable,
        Err(e) => {
            tracing::debug!(reason = %e, "session cookie rejected");
            Found::Missing {
                reason: if e.is_expired() {
                    "session expired"
                } else {
                    "invalid session"
                },
                refresh: tokens.refresh,
                // The refresh token (a JWT) is checked on its own.
                subject: None,
                issued_at: None,
            }
        }
    }
}

/// The OIDC mode: a Bearer access token per `[oidc] bearer`, or the
/// gateway-sealed session cookie (judged expired with the same 5 s leeway
/// as tokens).
async fn authenticate_oidc(
    oidc: &Arc<Oidc>,
    generation: &Generation,
    headers: &HeaderMap,
) -> Found {
    let cfg = &generation.config.session;
    if cfg.accept_bearer
        && oidc.cfg.bearer != crate::oidc::BearerMode::Off
        && let Some(token) = bearer_token(headers)
    {
        return match oidc.verify_bearer(token).await {
            Ok(claims) => Found::Valid {
                claims,
                token: token.to_owned(),
                refresh_early: None,
            },
            Err(crate::oidc::TokenError::Unavailable) => Found::KeysUnavailable,
            Err(e) => {
                tracing::debug!(reason = %e, "bearer token rejected");
                Found::Missing {
                    reason: "invalid bearer token",
                    refresh: None,
                    subject: None,
                    issued_at: None,
                }
            }
        };
    }
    let Some(value) = cfg.cookies.read(headers).session else {
        return Found::Missing {
            reason: "no session",
            refresh: None,
            subject: None,
            issued_at: None,
        };
    };
    let Some(sealed) = generation.sealer.as_ref().and_then(|s| s.open(&value)) else {
        return Found::Missing {
            reason: "invalid session",
            refresh: None,
            subject: None,
            issued_at: None,
        };
    };
    if crate::oidc::too_old(sealed.signed_in_at) {
        return Found::Missing {
            reason: "session past its maximum age",
            refresh: None,
            subject: None,
            issued_at: None,
        };
    }
    let subject = sealed
        .claims
        .get("sub")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let expired = sealed.expires_at + crate::oidc::tokens_leeway() <= crate::time::unix_now_i64();
    if expired {
        let issued_at = sealed.claims.get("iat").and_then(serde_json::Value::as_i64);
        return Found::Missing {
            reason: "session expired",
            refresh: sealed.refresh_token,
            subject,
            issued_at,
        };
    }
    let early = near_expiry(generation, Some(sealed.expires_at));
    Found::Valid {
        claims: Arc::new(Claims::from_verified(sealed.claims)),
        token: sealed.id_token.unwrap_or_default(),
        refresh_early: sealed.refresh_token.filter(|_| early),
    }
}

/// Phase 3: one shared refresh call per refresh token. `subject`: the
/// user the old session named; a refresh that names another is refused.
/// `issued_at`: when the old session was issued (for the user's logout-all).
/// A signed-out refresh token is refused before the call and again after
/// it, so a logout while the call was in flight still wins.
async fn refresh(
    state: &AppState,
    generation: &Generation,
    headers: &HeaderMap,
    refresh_token: &str,
    subject: Option<&str>,
    issued_at: Option<i64>,
) -> SessionState {
    let cookies = &generation.config.session.cookies;
    let signed_out_refresh = || state.store.is_revoked(refresh_token, subject, issued_at);
    if signed_out_refresh().await {
        return SessionState::Anonymous {
            reason: "signed out",
            cookies: cookies.clear_all(headers),
        };
    }
    let r = match state.refresher.refresh(refresh_token).await {
        Ok(r) => r,
        Err(RefreshError::InvalidToken) => {
            return SessionState::Anonymous {
                reason: "invalid refresh token",
                cookies: cookies.clear_all(headers),
            };
        }
        Err(RefreshError::Revoked) => {
            return SessionState::Anonymous {
                reason: "session revoked",
                cookies: cookies.clear_all(headers),
            };
        }
        Err(RefreshError::Unavailable { retry_after }) => {
            return SessionState::Unavailable {
                reason: "identity provider unavailable",
                retry_after,
                cookies: Vec::new(),
            };
        }
    };
    // A result kept from before a logout (another replica's, shared through
    // the store) must not sign the user back in.
    if signed_out_refresh().await
        || signed_out(state, &r.session_jwt, &r.claims).await
        || (r.refresh_jwt != refresh_token
            && !r.refresh_jwt.is_empty()
            && state.store.is_revoked(&r.refresh_jwt, None, None).await)
    {
        return SessionState::Anonymous {
            reason: "signed out",
            cookies: cookies.clear_all(headers),
        };
    }
    if subject.is_some_and(|s| r.claims.subject() != Some(s)) {
        tracing::error!("a refresh answered for another user; signing the session out");
        return SessionState::Anonymous {
            reason: "refreshed session names another user",
            cookies: cookies.clear_all(headers),
        };
    }
    let set = match &state.idp {
        Idp::Descope { .. } => cookies.set_session(
            headers,
            &r.session_jwt,
            r.refresh_rotated.then_some(r.refresh_jwt.as_str()),
        ),
        Idp::Oidc(_) => match crate::oidc::seal_refreshed(
            generation.sealer.as_ref(),
            &r,
            // The session refreshed is the cookie's: its sign-in time goes on.
            cookies
                .read(headers)
                .session
                .and_then(|v| generation.sealer.as_ref()?.open(&v))
                .and_then(|s| s.signed_in_at)
                .unwrap_or_else(crate::time::unix_now_i64),
        ) {
            Some(value) => cookies.set_opaque_session(headers, &value, None),
            None => {
                return SessionState::Unavailable {
                    reason: "session could not be sealed",
                    retry_after: None,
                    cookies: Vec::new(),
                };
            }
        },
    };
    SessionState::Valid(Session {
        claims: r.claims.clone(),
        token: Some(r.session_jwt.clone()),
        cookies: set,
    })
}

// === request host ===

/// Refuses requests whose host is ambiguous or malformed, before anything is
/// decided on it: more than one `Host` header (RFC 9112 §3.2), a `Host` (or
/// URI authority) outside [`crate::host`]'s grammar (`admin.test:x` is read
/// as `admin.test` by Express and Go, but matches no `host` route), or a
/// `Host` that names another host than the URI authority (absolute-form on
/// HTTP/1.1, `:authority` on HTTP/2). An HTTP/1.1 request without any host
/// is refused too: it would skip every `host` route. Returns the host to
/// judge by: lower case, without port.
pub fn request_host(
    version: http::Version,
    req_uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<Option<String>, Reject> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Reject::BadRequest("more than one Host header"));
    }
    if version == http::Version::HTTP_11 && first.is_none() && req_uri.authority().is_none() {
        return Err(Reject::BadRequest("no Host header"));
    }
    let authority = match req_uri.authority() {
        Some(a) => Some(
            crate::host::parse(a.as_str())
                .map_err(|_| Reject::BadRequest("malformed request authority"))?
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
                .ok_or(Reject::BadRequest("malformed Host header"))?
                .normalized(),
        ),
        None => None,
    };
    match (header_host, authority) {
        (Some(h), Some(a)) if h != a => Err(Reject::BadRequest(
            "Host header differs from the request authority",
        )),
        (h, a) => Ok(h.or(a)),
    }
}

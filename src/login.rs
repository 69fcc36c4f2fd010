//! The hosted login endpoints (docs/login.md): the login page, `POST /session`
//! for the `flow` web component, magic link, enchanted link, OTP, OAuth and
//! SSO, all under `[server] auth_prefix`.
//!
//! ```text
//! GET  /login ─┬─ valid / refreshable session ──► 302 return_to
//!              └─ page (+ flow state cookie)
//! POST /magiclink ──► Descope magiclink/signin (URI = /magiclink/verify?state=<signed>)
//! GET  /magiclink/verify?t&state ──► interstitial ──POST──► magiclink/verify ──► cookies, 303
//! POST /enchantedlink ──► enchantedlink/signin, state cookie(pendingRef) ──► waiting page
//!        page polls /enchantedlink/session ──► pending-session ──► cookies, {return_to}
//! GET  /enchantedlink/verify?t ──► interstitial ──POST──► enchantedlink/verify ──► "done" page
//! POST /otp ──► otp/signin, state cookie(loginId) ──► code form ──► POST /otp/verify ──► cookies
//! GET  /oauth/start ──► oauth/authorize, state cookie ──► 302 provider
//! GET  /oauth/callback?code&state ──► state cookie must match ──► oauth/exchange ──► cookies
//! GET  /sso/start, /sso/callback: the same with sso/* (or legacy saml/*)
//! ```
//!
//! Every token Descope hands back is verified locally before it becomes a
//! cookie, and a new session always replaces the old session cookies (no
//! fixation). Endpoints of methods not listed in `[login] methods` answer 404.
//! Handlers take the request head, its (already bounded) body and the client
//! IP, and return a complete response; the caller only maps the body type.

mod respond;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::cookies::CookieSettings;
use crate::descope::{DescopeClient, DescopeError, DescopeReply};
use crate::login_state::{
    DEFAULT_LINK_STATE_TTL, DEFAULT_STATE_TTL, LoginKind, LoginState, MAX_STATE_COOKIES, Purpose,
    StateCodec, StateCookieSettings, clear_state_cookie, now_unix,
};
use crate::pages::LoginMethod;
use crate::pages::{self, LoginView, OtpRetry, PageSettings};
use crate::ratelimit::{DEFAULT_MAX_KEYS, RateLimiter, RateSpec};
use crate::redirect::RedirectPolicy;
use crate::session::SessionValidator;

pub use respond::{Origin, origin_check};
use respond::{json_response, page, redirect, with_cookies};

/// Largest request body a hosted login endpoint reads (forms, `/session` JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest e-mail address accepted (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

/// Descope's error code for "enchanted link not clicked yet".
const PENDING_CODE: &str = "E062503";

/// What the login endpoints need from the configuration.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// `[server] public_url`: origin of callbacks and of same-origin checks.
    pub public_url: url::Url,
    /// `[server] auth_prefix`, e.g. `/_auth` (no trailing slash).
    pub auth_prefix: String,
    /// `[login] allow_signup`: sign-up-or-in instead of sign-in only.
    pub allow_signup: bool,
    /// `[login] allowed_email_domains`, lower-case; empty allows all.
    pub allowed_email_domains: Vec<String>,
    /// `[login] start_rate_limit`: per e-mail, starts that send a message.
    pub start_rate_limit: RateSpec,
    /// `[login] ip_rate_limit`: per client IP, every start.
    pub ip_rate_limit: RateSpec,
    /// `[login] sso_legacy_saml`: use `/v1/auth/saml/*` instead of `/v1/auth/sso/*`.
    pub sso_legacy_saml: bool,
    /// `[login] allowed_redirect_origins`, validated.
    pub redirect: RedirectPolicy,
    /// Everything the HTML pages show.
    pub pages: PageSettings,
}

/// Why a login step failed; every variant means "no session".
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("login state: {0}")]
    State(#[from] crate::login_state::StateError),
    #[error("descope: {0}")]
    Descope(#[from] DescopeError),
    #[error("token from descope rejected: {0}")]
    Token(#[from] crate::session::SessionError),
    #[error("session and refresh tokens disagree: {0}")]
    Inconsistent(&'static str),
}

/// Why the login endpoints could not be set up from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoginSetupError {
    #[error("login.allowed_redirect_origins: {0}")]
    Redirect(#[from] crate::redirect::RedirectOriginError),
    #[error("session.secret: {0}")]
    Secret(#[from] crate::login_state::StateError),
    #[error("session.secret: no session key can be derived from it")]
    Sealer,
}

/// The configuration-derived part of the login endpoints, built once per
/// configuration generation. The rate limiter lives here too, so a config
/// reload starts it afresh.
pub struct LoginCore {
    settings: LoginSettings,
    /// `scheme://host[:port]` of `public_url`.
    public_origin: String,
    codec: StateCodec,
    state_cookie: StateCookieSettings,
    limiter: RateLimiter,
    cookies: CookieSettings,
}

/// The shared clients a login request needs.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub descope: &'a DescopeClient,
    pub validator: &'a SessionValidator,
    /// Shared login rate limits (`[store]`), on top of the local ones.
    pub store: &'a crate::store::Store,
}

/// One request's view: the core plus the shared clients.
struct LoginService<'a> {
    core: &'a LoginCore,
    deps: Deps<'a>,
}

/// A parsed request for one handler.
struct Req<'a> {
    parts: &'a Parts,
    body: Bytes,
    client_ip: IpAddr,
}

impl Req<'_> {
    fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// First value of a query parameter.
    fn query(&self, name: &str) -> Option<String> {
        first(self.parts.uri.query().unwrap_or("").as_bytes(), name)
    }

    /// First value of a form field (urlencoded body).
    fn form(&self, name: &str) -> Option<String> {
        first(&self.body, name)
    }

    fn is_form(&self) -> bool {
        content_type_is(self.headers(), "application/x-www-form-urlencoded")
    }
}

// === impl LoginCore ===

impl LoginCore {
    /// What the HTML pages show (app name, logo, prefix, methods).
    pub fn page_settings(&self) -> &PageSettings {
        &self.settings.pages
    }

    /// Builds the login endpoints from explicit settings.
    pub fn new(settings: LoginSettings, codec: StateCodec, cookies: CookieSettings) -> Self {
        let public_origin = settings.public_url.origin().ascii_serialization();
        let state_cookie =
            StateCookieSettings::new(cookies.secure, cookies.host_prefix, &settings.auth_prefix);
        let limiter = RateLimiter::new(settings.ip_rate_limit, DEFAULT_MAX_KEYS);
        Self {
            settings,
            public_origin,
            codec,
            state_cookie,
            limiter,
            cookies,
        }
    }

    /// Whether `sub_path` (the path after the auth prefix) is a login endpoint.
    pub fn handles(sub_path: &str) -> bool {
        matches!(
            sub_path,
            "/session"
                | "/magiclink"
                | "/magiclink/verify"
                | "/enchantedlink"
                | "/enchantedlink/verify"
                | "/enchantedlink/session"
                | "/otp"
                | "/otp/verify"
                | "/oauth/start"
                | "/oauth/callback"
                | "/sso/start"
                | "/sso/callback"
        )
    }

    /// The safe redirect target for a raw `return_to` (docs/login.md).
    pub fn sanitize_return_to(&self, raw: Option<&str>) -> String {
        self.settings.redirect.sanitize(raw)
    }

    /// The login page for a request without a usable session (the caller
    /// has already sent signed-in browsers on to `return_to`).
    pub fn login_page(&self, deps: Deps<'_>, parts: &Parts) -> Response<Bytes> {
        let svc = LoginService { core: self, deps };
        let return_to = self.sanitize_return_to(
            first(parts.uri.query().unwrap_or("").as_bytes(), "return_to").as_deref(),
        );
        harden(svc.render_login(
            &parts.headers,
            &return_to,
            None,
            Prefill::default(),
            StatusCode::OK,
        ))
    }

    /// Serves one login endpoint (`/login` itself is served by `hosted`). `body` is at most
    /// [`MAX_BODY_BYTES`] (the caller refuses larger bodies with 413).
    pub async fn handle(
        &self,
        deps: Deps<'_>,
        sub_path: &str,
        parts: &Parts,
        body: Bytes,
        client_ip: IpAddr,
    ) -> Response<Bytes> {
        let svc = LoginService { core: self, deps };
        let req = Req {
            parts,
            body,
            client_ip,
        };
        let m = &parts.method;
        let get = m == Method::GET || m == Method::HEAD;
        let post = m == Method::POST;
        let resp = match sub_path {
            "/session" if post => svc.post_session(&req).await,
            "/magiclink" if post => svc.magiclink_start(&req).await,
            "/magiclink/verify" if get => svc.link_interstitial(&req, LoginKind::MagicLink),
            "/magiclink/verify" if post => svc.magiclink_verify(&req).await,
            "/enchantedlink" if post => svc.enchanted_start(&req).await,
            "/enchantedlink/verify" if get => svc.link_interstitial(&req, LoginKind::EnchantedLink),
            "/enchantedlink/verify" if post => svc.enchanted_verify(&req).await,
            "/enchantedlink/session" if get || post => svc.enchanted_session(&req, post).await,
            "/otp" if post => svc.otp_start(&req).await,
            "/otp/verify" if post => svc.otp_verify(&req).await,
            "/oauth/start" if get => svc.redirect_start(&req, LoginKind::OAuth).await,
            "/oauth/callback" if get => svc.redirect_callback(&req, LoginKind::OAuth).await,
            "/sso/start" if get => svc.redirect_start(&req, LoginKind::Sso).await,
            "/sso/callback" if get => svc.redirect_callback(&req, LoginKind::Sso).await,
            _ if Self::handles(sub_path) => respond::method_not_allowed(sub_path),
            _ => svc.not_found(),
        };
        harden(resp)
    }
}

/// `Cache-Control: no-store` and `Referrer-Policy: no-referrer` on every answer.
fn harden(mut resp: Response<Bytes>) -> Response<Bytes> {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

// === impl LoginService ===

impl LoginService<'_> {
    fn enabled(&self, kind: LoginKind) -> bool {
        self.core
            .settings
            .pages
            .methods
            .iter()
            .any(|m| match (m, kind) {
                (LoginMethod::Flow, LoginKind::Flow)
                | (LoginMethod::MagicLink, LoginKind::MagicLink)
                | (LoginMethod::EnchantedLink, LoginKind::EnchantedLink)
                | (LoginMethod::Otp, LoginKind::Otp)
                | (LoginMethod::OAuth(_), LoginKind::OAuth)
                | (LoginMethod::Sso, LoginKind::Sso) => true,
                (
                    LoginMethod::Flow
                    | LoginMethod::MagicLink
                    | LoginMethod::EnchantedLink
                    | LoginMethod::Otp
                    | LoginMethod::OAuth(_)
                    | LoginMethod::Sso,
                    _,
                ) => false,
            })
    }

    fn not_found(&self) -> Response<Bytes> {
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::NOT_FOUND,
            "Not found",
            "This sign-in method is not available.",
            true,
        ))
    }

    fn prefix(&self) -> &str {
        &self.core.settings.auth_prefix
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.core.public_origin, self.prefix(), path)
    }

    // --- GET /login -------------------------------------------------------

    fn render_login(
        &self,
        headers: &HeaderMap,
        return_to: &str,
        notice: Option<&str>,
        prefill: Prefill<'_>,
        status: StatusCode,
    ) -> Response<Bytes> {
        let mut cookies = Vec::new();
        let mut flow_nonce = None;
        if self.enabled(LoginKind::Flow) {
            match StateCodec::issue(
                LoginKind::Flow,
                return_to.to_owned(),
                None,
                DEFAULT_STATE_TTL,
                now_unix(),
            ) {
                Ok(state) => {
                    cookies = self.state_cookies(headers, &state);
                    flow_nonce = Some(state.nonce);
                }
                Err(e) => tracing::error!(error = %e, "cannot create a login nonce"),
            }
        }
        let view = LoginView {
            return_to,
            flow_nonce: flow_nonce.as_deref(),
            notice,
            email: prefill.email,
            tenant: prefill.tenant,
        };
        let mut p = pages::login(&self.core.settings.pages, &view);
        p.status = status;
        with_cookies(page(p), cookies)
    }

    // --- POST /session (flow web component) ------------------------------

    async fn post_session(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::Flow) {
            return self.not_found();
        }
        let deny =
            |status: StatusCode, error: &str| json_response(status, &json!({ "error": error }));
        if origin_check(req.headers(), &self.core.public_origin) != Origin::Same {
            return deny(StatusCode::FORBIDDEN, "cross_origin");
        }
        if !content_type_is(req.headers(), "application/json") {
            return deny(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type");
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
            return deny(StatusCode::BAD_REQUEST, "malformed");
        };
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(session), Some(refresh), Some(nonce)) =
            (field("sessionJwt"), field("refreshJwt"), field("nonce"))
        else {
            return deny(StatusCode::BAD_REQUEST, "missing_fields");
        };
        let state = match self.core.codec.read_state_cookie(
            &self.core.state_cookie,
            req.headers(),
            nonce,
            LoginKind::Flow,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(reason = %e, "flow session refused: login state");
                return deny(StatusCode::FORBIDDEN, "login_state");
            }
        };
        match self.verify_pair(session, Some(refresh)).await {
            Ok(user) => signed_in_log(&user, "flow", None),
            Err(e) => {
                tracing::info!(reason = %e, "flow session refused: tokens");
                return deny(StatusCode::UNAUTHORIZED, "invalid_tokens");
            }
        }
        let resp = json_response(
            StatusCode::OK,
            &json!({ "return_to": self.landing(&state.return_to) }),
        );
        let mut cookies = self.session_cookies(req.headers(), session, Some(refresh));
        cookies.push(clear_state_cookie(&self.core.state_cookie, &state.nonce));
        with_cookies(resp, cookies)
    }

    // --- magic link ------------------------------------------------------

    async fn magiclink_start(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::MagicLink) {
            return self.not_found();
        }
        let (email, return_to) = match self.start_checks(req).await {
            Ok(v) => v,
            Err(resp) => return *resp,
        };
        let Some(email) = email else {
            return self.bad_start(req, &return_to, "Please enter a valid email address.");
        };
        let state = match StateCodec::issue(
            LoginKind::MagicLink,
            return_to.clone(),
            None,
            DEFAULT_LINK_STATE_TTL,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => return self.internal(&e),
        };
        let sealed = self.core.codec.seal(Purpose::Link, &state);
        let uri = format!(
            "{}?state={}",
            self.url("/magiclink/verify"),
            pages::query_encode(&sealed)
        );
        let path = format!("/v1/auth/magiclink/{}/email", self.signin_variant());
        let body = json!({ "loginId": email, "URI": uri });
        match self
            .deps
            .descope
            .call(Method::POST, &path, None, Some(&body))
            .await
        {
            Ok(reply) => {
                let masked = reply.body.get("maskedEmail").and_then(Value::as_str);
                page(pages::check_email(&self.core.settings.pages, masked))
            }
            Err(e) => self.start_failed(e, || self.check_email_page()),
        }
    }

    /// `GET /magiclink/verify` and `GET /enchantedlink/verify`: a page whose
    /// form POSTs the token back, so link scanners never consume it.
    fn link_interstitial(&self, req: &Req<'_>, kind: LoginKind) -> Response<Bytes> {
        if !self.enabled(kind) {
            return self.not_found();
        }
        let Some(t) = req.query("t").filter(|t| !t.is_empty()) else {
            return self.link_invalid();
        };
        let state = req.query("state").unwrap_or_default();
        let (action, fields): (String, Vec<(&str, &str)>) = match kind {
            LoginKind::MagicLink => (
                format!("{}/magiclink/verify", self.prefix()),
                vec![("t", t.as_str()), ("state", state.as_str())],
            ),
            LoginKind::EnchantedLink
            | LoginKind::Flow
            | LoginKind::Otp
            | LoginKind::OAuth
            | LoginKind::Sso
            | LoginKind::Oidc => (
                format!("{}/enchantedlink/verify", self.prefix()),
                vec![("t", t.as_str())],
            ),
        };
        // Submitted at once only for a link opened directly (from a mail
        // app or the address bar: `Sec-Fetch-Site: none`). From anywhere
        // else the user confirms with a click: another site (webmail, or
        // an attacker's page sending the victim to the attacker's own
        // link), and this site too, since in proxy mode the app shares the
        // gateway's origin and may show links its users posted.
        let auto = req
            .parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v == "none");
        page(pages::interstitial(
            &self.core.settings.pages,
            &action,
            &fields,
            auto,
        ))
    }

    async fn magiclink_verify(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::MagicLink) {
            return self.not_found();
        }
        if let Some(resp) = self.require_same_origin_form(req) {
            return resp;
        }
        let Some(t) = req.form("t").filter(|t| !t.is_empty()) else {
            return self.link_invalid();
        };
        // The state only carries return_to: a missing or stale one (another
        // device, a slow mailbox) still logs in, landing on `/`.
        let return_to = req
            .form("state")
            .and_then(|s| self.core.codec.open(Purpose::Link, &s, now_unix()).ok())
            .filter(|s| s.kind == LoginKind::MagicLink)
            .map_or_else(|| crate::redirect::FALLBACK.to_owned(), |s| s.return_to);
        let body = json!({ "token": t });
        match self
            .deps
            .descope
            .call(Method::POST, "/v1/auth/magiclink/verify", None, Some(&body))
            .await
        {
            Ok(reply) => {
                self.finish(req, &reply, &return_to, None, "magiclink")
                    .await
            }
            // A link opened again (already used) by a browser that the first
            // use signed in: go on to the app rather than "Sign-in failed".
            Err(DescopeError::Rejected { status, code }) if self.signed_in(req).await => {
                tracing::debug!(%status, %code, "used magic link re-opened while signed in");
                redirect(StatusCode::SEE_OTHER, &self.landing(&return_to))
            }
            Err(e) => self.callback_failed(e),
        }
    }

    // --- enchanted link --------------------------------------------------

    async fn enchanted_start(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::EnchantedLink) {
            return self.not_found();
        }
        let (email, return_to) = match self.start_checks(req).await {
            Ok(v) => v,
            Err(resp) => return *resp,
        };
        let Some(email) = email else {
            return self.bad_start(req, &return_to, "Please enter a valid email address.");
        };
        let path = format!("/v1/auth/enchantedlink/{}/email", self.signin_variant());
        let body = json!({ "loginId": email, "URI": self.url("/enchantedlink/verify") });
        let reply = match self
            .deps
            .descope
            .call(Method::POST, &path, None, Some(&body))
            .await
        {
            Ok(r) => r,
            Err(e) => return self.start_failed(e, || self.check_email_page()),
        };
        let s = |k: &str| reply.body.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(pending_ref), Some(link_id)) = (s("pendingRef"), s("linkId")) else {
            tracing::warn!("enchanted link start: answer without pendingRef/linkId");
            return self.unavailable();
        };
        let state = match StateCodec::issue(
            LoginKind::EnchantedLink,
            return_to,
            Some(pending_ref),
            DEFAULT_STATE_TTL,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => return self.internal(&e),
        };
        let cookies = self.state_cookies(req.headers(), &state);
        let p = pages::enchanted_wait(
            &self.core.settings.pages,
            &link_id,
            &state.nonce,
            s("maskedEmail").as_deref(),
        );
        with_cookies(page(p), cookies)
    }

    async fn enchanted_verify(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::EnchantedLink) {
            return self.not_found();
        }
        if let Some(resp) = self.require_same_origin_form(req) {
            return resp;
        }
        let Some(t) = req.form("t").filter(|t| !t.is_empty()) else {
            return self.link_invalid();
        };
        let body = json!({ "token": t });
        match self
            .deps
            .descope
            .call(
                Method::POST,
                "/v1/auth/enchantedlink/verify",
                None,
                Some(&body),
            )
            .await
        {
            Ok(_) => page(pages::message(
                &self.core.settings.pages,
                StatusCode::OK,
                "You're signed in",
                "Return to the tab where you started: it will continue by itself. You can close this tab.",
                false,
            )),
            Err(e) => self.callback_failed(e),
        }
    }

    /// The waiting tab's poll: 202 while pending; then cookies and either
    /// `{return_to}` (POST, script) or a 303 (GET, no script).
    async fn enchanted_session(&self, req: &Req<'_>, post: bool) -> Response<Bytes> {
        if !self.enabled(LoginKind::EnchantedLink) {
            return self.not_found();
        }
        let nonce = if post {
            if origin_check(req.headers(), &self.core.public_origin) != Origin::Same {
                return json_response(StatusCode::FORBIDDEN, &json!({"error": "cross_origin"}));
            }
            req.form("nonce")
        } else {
            req.query("nonce")
        };
        let state = match self.core.codec.read_state_cookie(
            &self.core.state_cookie,
            req.headers(),
            nonce.as_deref().unwrap_or(""),
            LoginKind::EnchantedLink,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(reason = %e, "enchanted link poll refused");
                return json_response(StatusCode::FORBIDDEN, &json!({"error": "login_state"}));
            }
        };
        let pending_ref = state.extra.clone().unwrap_or_default();
        let body = json!({ "pendingRef": pending_ref });
        match self
            .deps
            .descope
            .call(
                Method::POST,
                "/v1/auth/enchantedlink/pending-session",
                None,
                Some(&body),
            )
            .await
        {
            Ok(reply) => match self.accept_reply(&reply).await {
                Ok((session, refresh, user)) => {
                    signed_in_log(&user, "enchantedlink", None);
                    let mut cookies =
                        self.session_cookies(req.headers(), &session, refresh.as_deref());
                    cookies.push(clear_state_cookie(&self.core.state_cookie, &state.nonce));
                    let resp = if post {
                        json_response(
                            StatusCode::OK,
                            &json!({ "return_to": self.landing(&state.return_to) }),
                        )
                    } else {
                        redirect(StatusCode::SEE_OTHER, &self.landing(&state.return_to))
                    };
                    with_cookies(resp, cookies)
                }
                Err(e) => {
                    tracing::warn!(reason = %e, "enchanted link session refused");
                    json_response(
                        StatusCode::UNAUTHORIZED,
                        &json!({"error": "invalid_tokens"}),
                    )
                }
            },
            Err(DescopeError::Rejected { code, .. }) if code == PENDING_CODE => {
                json_response(StatusCode::ACCEPTED, &json!({ "pending": true }))
            }
            Err(e @ (DescopeError::Unavailable | DescopeError::RateLimited { .. })) => {
                tracing::warn!(error = %e, "enchanted link poll: descope unavailable");
                // The page retries on anything but 2xx/4xx JSON with an error.
                json_response(StatusCode::ACCEPTED, &json!({ "pending": true }))
            }
            Err(e) => {
                tracing::info!(error = %e, "enchanted link session failed");
                let resp = json_response(StatusCode::UNAUTHORIZED, &json!({"error": "expired"}));
                with_cookies(
                    resp,
                    vec![clear_state_cookie(&self.core.state_cookie, &state.nonce)],
                )
            }
        }
    }

    // --- OTP -------------------------------------------------------------

    async fn otp_start(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::Otp) {
            return self.not_found();
        }
        let (email, return_to) = match self.start_checks(req).await {
            Ok(v) => v,
            Err(resp) => return *resp,
        };
        let Some(email) = email else {
            return self.bad_start(req, &return_to, "Please enter a valid email address.");
        };
        let path = format!("/v1/auth/otp/{}/email", self.signin_variant());
        let body = json!({ "loginId": email });
        let masked = match self
            .deps
            .descope
            .call(Method::POST, &path, None, Some(&body))
            .await
        {
            Ok(reply) => reply
                .body
                .get("maskedEmail")
                .and_then(Value::as_str)
                .map(str::to_owned),
            // Unknown users get the same code form (no account enumeration).
            Err(DescopeError::Rejected { .. }) => None,
            Err(e) => return self.start_failed(e, || self.check_email_page()),
        };
        let state = match StateCodec::issue(
            LoginKind::Otp,
            return_to,
            Some(email.clone()),
            DEFAULT_STATE_TTL,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => return self.internal(&e),
        };
        let cookies = self.state_cookies(req.headers(), &state);
        let p = pages::otp_code(
            &self.core.settings.pages,
            &state.nonce,
            masked.as_deref(),
            None,
            Some(OtpRetry {
                email: &email,
                return_to: &state.return_to,
            }),
        );
        with_cookies(page(p), cookies)
    }

    async fn otp_verify(&self, req: &Req<'_>) -> Response<Bytes> {
        if !self.enabled(LoginKind::Otp) {
            return self.not_found();
        }
        if let Some(resp) = self.require_same_origin_form(req) {
            return resp;
        }
        let nonce = req.form("nonce").unwrap_or_default();
        let state = match self.core.codec.read_state_cookie(
            &self.core.state_cookie,
            req.headers(),
            &nonce,
            LoginKind::Otp,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(reason = %e, "otp verify refused: login state");
                return self.state_invalid();
            }
        };
        let code: String = req
            .form("code")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let login_id = state.extra.clone().unwrap_or_default();
        let body = json!({ "loginId": login_id, "code": code });
        match self
            .deps
            .descope
            .call(Method::POST, "/v1/auth/otp/verify/email", None, Some(&body))
            .await
        {
            Ok(reply) => {
                self.finish(req, &reply, &state.return_to, Some(&state), "otp")
                    .await
            }
            Err(DescopeError::Rejected { code, .. }) if code != "E061103" => {
                // The same form again: the (masked) address, a new code, another address.
                let masked = mask_email(&login_id);
                let p = pages::otp_code(
                    &self.core.settings.pages,
                    &state.nonce,
                    masked.as_deref(),
                    Some("That code is not valid. Please try again."),
                    Some(OtpRetry {
                        email: &login_id,
                        return_to: &state.return_to,
                    }),
                );
                let mut resp = page(p);
                *resp.status_mut() = StatusCode::UNAUTHORIZED;
                resp
            }
            Err(e) => {
                let resp = self.callback_failed(e);
                with_cookies(
                    resp,
                    vec![clear_state_cookie(&self.core.state_cookie, &state.nonce)],
                )
            }
        }
    }

    // --- OAuth and SSO -----------------------------------------------------

    async fn redirect_start(&self, req: &Req<'_>, kind: LoginKind) -> Response<Bytes> {
        if !self.enabled(kind) {
            return self.not_found();
        }
        let return_to = self
            .core
            .settings
            .redirect
            .sanitize(req.query("return_to").as_deref());
        let (param, value) = match kind {
            LoginKind::OAuth => {
                let provider = req.query("provider").unwrap_or_default();
                let offered = self
                    .core
                    .settings
                    .pages
                    .methods
                    .iter()
                    .any(|m| matches!(m, LoginMethod::OAuth(p) if *p == provider));
                if !offered {
                    return self.bad_start(
                        req,
                        &return_to,
                        "That sign-in provider is not available.",
                    );
                }
                ("provider", provider)
            }
            LoginKind::Sso
            | LoginKind::Flow
            | LoginKind::MagicLink
            | LoginKind::EnchantedLink
            | LoginKind::Otp
            | LoginKind::Oidc => {
                let tenant = req
                    .query("tenant")
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_default();
                if tenant.is_empty()
                    || tenant.len() > MAX_EMAIL_LEN
                    || tenant.chars().any(char::is_control)
                {
                    return self.bad_start(
                        req,
                        &return_to,
                        "Please enter your work email or organisation ID.",
                    );
                }
                if tenant.contains('@') && !self.email_allowed(&tenant) {
                    return self.bad_start(
                        req,
                        &return_to,
                        "That email address cannot sign in here.",
                    );
                }
                ("tenant", tenant)
            }
        };
        // OAuth and SSO send no message: only the per-IP limit applies.
        if let Err(spec) = self.rate_ok(req, None).await {
            return self.rate_limited(req, &return_to, spec);
        }
        let state = match StateCodec::issue(
            kind,
            return_to.clone(),
            Some(value.clone()),
            DEFAULT_STATE_TTL,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => return self.internal(&e),
        };
        let (authorize, callback) = self.redirect_paths(kind);
        let callback_url = format!("{}?state={}", self.url(callback), state.nonce);
        let path = format!(
            "{authorize}?{param}={}&redirectURL={}",
            pages::query_encode(&value),
            pages::query_encode(&callback_url)
        );
        let reply = match self
            .deps
            .descope
            .call(Method::POST, &path, None, Some(&json!({})))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let notice = match kind {
                    LoginKind::Sso => "Single sign-on is not available for that organisation.",
                    LoginKind::OAuth
                    | LoginKind::Flow
                    | LoginKind::MagicLink
                    | LoginKind::EnchantedLink
                    | LoginKind::Otp
                    | LoginKind::Oidc => "That sign-in provider is not available.",
                };
                return self.start_failed(e, || self.bad_start(req, &return_to, notice));
            }
        };
        let Some(target) = reply
            .body
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        else {
            tracing::warn!("authorize answer without a usable url");
            return self.unavailable();
        };
        let cookies = self.state_cookies(req.headers(), &state);
        with_cookies(redirect(StatusCode::FOUND, target), cookies)
    }

    /// `(authorize path, our callback sub-path)` for OAuth / SSO.
    fn redirect_paths(&self, kind: LoginKind) -> (&'static str, &'static str) {
        match kind {
            LoginKind::OAuth if self.core.settings.allow_signup => {
                ("/v1/auth/oauth/authorize", "/oauth/callback")
            }
            LoginKind::OAuth => ("/v1/auth/oauth/authorize/signin", "/oauth/callback"),
            LoginKind::Sso
            | LoginKind::Flow
            | LoginKind::MagicLink
            | LoginKind::EnchantedLink
            | LoginKind::Otp
            | LoginKind::Oidc => {
                if self.core.settings.sso_legacy_saml {
                    ("/v1/auth/saml/authorize", "/sso/callback")
                } else {
                    ("/v1/auth/sso/authorize", "/sso/callback")
                }
            }
        }
    }

    async fn redirect_callback(&self, req: &Req<'_>, kind: LoginKind) -> Response<Bytes> {
        if !self.enabled(kind) {
            return self.not_found();
        }
        let nonce = req.query("state").unwrap_or_default();
        let state = match self.core.codec.read_state_cookie(
            &self.core.state_cookie,
            req.headers(),
            &nonce,
            kind,
            now_unix(),
        ) {
            Ok(s) => s,
            Err(e) => {
                // No matching state cookie: this browser did not start this
                // login (or too long ago). The code is never exchanged.
                tracing::info!(reason = %e, "login callback refused: login state");
                return self.state_invalid();
            }
        };
        let clear = clear_state_cookie(&self.core.state_cookie, &state.nonce);
        let Some(code) = req.query("code").filter(|c| !c.is_empty()) else {
            let resp = page(pages::message(
                &self.core.settings.pages,
                StatusCode::BAD_REQUEST,
                "Sign-in was cancelled",
                "The sign-in did not complete. Please try again.",
                true,
            ));
            return with_cookies(resp, vec![clear]);
        };
        let exchange = match kind {
            LoginKind::OAuth => "/v1/auth/oauth/exchange",
            LoginKind::Sso
            | LoginKind::Flow
            | LoginKind::MagicLink
            | LoginKind::EnchantedLink
            | LoginKind::Otp
            | LoginKind::Oidc => {
                if self.core.settings.sso_legacy_saml {
                    "/v1/auth/saml/exchange"
                } else {
                    "/v1/auth/sso/exchange"
                }
            }
        };
        let body = json!({ "code": code });
        match self
            .deps
            .descope
            .call(Method::POST, exchange, None, Some(&body))
            .await
        {
            Ok(reply) => {
                let method = match kind {
                    LoginKind::OAuth => "oauth",
                    LoginKind::Sso
                    | LoginKind::Flow
                    | LoginKind::MagicLink
                    | LoginKind::EnchantedLink
                    | LoginKind::Otp
                    | LoginKind::Oidc => "sso",
                };
                self.finish(req, &reply, &state.return_to, Some(&state), method)
                    .await
            }
            Err(e) => with_cookies(self.callback_failed(e), vec![clear]),
        }
    }

    // --- shared steps ------------------------------------------------------

    /// Checks common to the e-mail login starts (POST form): same-origin when
    /// the browser says, the e-mail's shape and domain, the rate limit.
    /// Returns `(email, return_to)`; `email` is `None` when it is not valid.
    async fn start_checks(
        &self,
        req: &Req<'_>,
    ) -> Result<(Option<String>, String), Box<Response<Bytes>>> {
        let return_to = self
            .core
            .settings
            .redirect
            .sanitize(req.form("return_to").as_deref());
        if origin_check(req.headers(), &self.core.public_origin) == Origin::Cross {
            return Err(Box::new(self.forbidden_origin()));
        }
        if !req.is_form() {
            return Err(Box::new(self.bad_start(
                req,
                &return_to,
                "Please use the sign-in form.",
            )));
        }
        let email = req.form("email").map(|e| e.trim().to_owned());
        let email = match email {
            Some(e) if is_email(&e) => e,
            Some(_) | None => return Ok((None, return_to)),
        };
        if !self.email_allowed(&email) {
            return Err(Box::new(self.bad_start(
                req,
                &return_to,
                "That email address cannot sign in here.",
            )));
        }
        if let Err(spec) = self.rate_ok(req, Some(&email)).await {
            return Err(Box::new(self.rate_limited(req, &return_to, spec)));
        }
        Ok((Some(email), return_to))
    }

    /// Every start counts against its client IP (`ip_rate_limit`); a start
    /// that sends a message counts against its e-mail too
    /// (`start_rate_limit`). All or nothing: a refused start charges neither.
    /// The local limiter is a floor; with a `[store]` the same limits hold
    /// across every replica too.
    async fn rate_ok(&self, req: &Req<'_>, message_to: Option<&str>) -> Result<(), RateSpec> {
        let s = &self.core.settings;
        let ip = portcullis_core::ratelimit::client_key(req.client_ip);
        let email = message_to.map(|e| format!("email:{}", e.to_lowercase()));
        let mut keys = vec![(ip.as_str(), s.ip_rate_limit)];
        if let Some(e) = &email {
            keys.push((e.as_str(), s.start_rate_limit));
        }
        self.core.limiter.try_acquire_each(&keys)?;
        self.deps.store.rate_ok(&keys).await
    }

    fn email_allowed(&self, email: &str) -> bool {
        let allowed = &self.core.settings.allowed_email_domains;
        if allowed.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        let domain = domain.to_ascii_lowercase();
        allowed.contains(&domain)
    }

    fn signin_variant(&self) -> &'static str {
        if self.core.settings.allow_signup {
            "signup-in"
        } else {
            "signin"
        }
    }

    /// Verifies the tokens of a Descope auth answer, sets the session
    /// cookies (replacing any old ones), clears the state cookie and sends
    /// the browser to `return_to` (303: the request may have been a POST).
    async fn finish(
        &self,
        req: &Req<'_>,
        reply: &DescopeReply,
        return_to: &str,
        state: Option<&LoginState>,
        method: &'static str,
    ) -> Response<Bytes> {
        match self.accept_reply(reply).await {
            Ok((session, refresh, user)) => {
                signed_in_log(&user, method, state.and_then(|s| provider_of(s, method)));
                let mut cookies = self.session_cookies(req.headers(), &session, refresh.as_deref());
                if let Some(s) = state {
                    cookies.push(clear_state_cookie(&self.core.state_cookie, &s.nonce));
                }
                with_cookies(
                    redirect(StatusCode::SEE_OTHER, &self.landing(return_to)),
                    cookies,
                )
            }
            Err(e) => {
                tracing::warn!(reason = %e, "tokens from descope refused");
                let mut resp = self.callback_failed_page();
                if let Some(s) = state {
                    resp = with_cookies(
                        resp,
                        vec![clear_state_cookie(&self.core.state_cookie, &s.nonce)],
                    );
                }
                resp
            }
        }
    }

    /// The verified `(session, refresh)` of a Descope auth answer.
    async fn accept_reply(
        &self,
        reply: &DescopeReply,
    ) -> Result<(String, Option<String>, String), LoginError> {
        // Body `sessionJwt`/`refreshJwt`, else the `Set-Cookie`s (cookie mode).
        let pair = reply.tokens()?;
        let user = self
            .verify_pair(&pair.session_jwt, pair.refresh_jwt.as_deref())
            .await?;
        Ok((pair.session_jwt, pair.refresh_jwt, user))
    }

    /// Both tokens verify, are a session (`drn` DS) and a refresh token
    /// (`drn` DSR), and name the same user. Returns the user id.
    async fn verify_pair(
        &self,
        session: &str,
        refresh: Option<&str>,
    ) -> Result<String, LoginError> {
        let s = self.deps.validator.verify_session(session).await?;
        if s.drn() != Some("DS") {
            return Err(LoginError::Inconsistent("session token drn is not DS"));
        }
        if let Some(r) = refresh {
            let r = self.deps.validator.verify_refresh(r).await?;
            if r.drn() != Some("DSR") {
                return Err(LoginError::Inconsistent("refresh token drn is not DSR"));
            }
            if s.subject().is_none() || s.subject() != r.subject() {
                return Err(LoginError::Inconsistent("tokens name different users"));
            }
        }
        Ok(s.subject().unwrap_or_default().to_owned())
    }

    /// The browser already holds a valid session cookie.
    async fn signed_in(&self, req: &Req<'_>) -> bool {
        match self.core.cookies.read(req.headers()).session {
            Some(token) => self.deps.validator.verify_session(&token).await.is_ok(),
            None => false,
        }
    }

    /// `Set-Cookie` values for a new session. Without a new refresh token any
    /// old refresh cookie is deleted, so the new session can never be paired
    /// with someone else's refresh token.
    fn session_cookies(
        &self,
        headers: &HeaderMap,
        session: &str,
        refresh: Option<&str>,
    ) -> Vec<HeaderValue> {
        let set = self.core.cookies.set_session(headers, session, refresh);
        let set_names: Vec<String> = set.iter().filter_map(cookie_name).collect();
        let mut out: Vec<HeaderValue> = self
            .core
            .cookies
            .clear_all(headers)
            .into_iter()
            .filter(|c| cookie_name(c).is_some_and(|n| !set_names.contains(&n)))
            .collect();
        out.extend(set);
        out
    }

    fn require_same_origin_form(&self, req: &Req<'_>) -> Option<Response<Bytes>> {
        if origin_check(req.headers(), &self.core.public_origin) != Origin::Same {
            return Some(self.forbidden_origin());
        }
        if !req.is_form() {
            return Some(self.link_invalid());
        }
        None
    }

    /// Where a finished login lands: the signed `return_to`, checked again
    /// against the current policy (an origin removed from
    /// `allowed_redirect_origins` since the login started no longer counts).
    fn landing(&self, return_to: &str) -> String {
        self.core.settings.redirect.sanitize(Some(return_to))
    }

    /// The state cookie for `state`, plus deletions of the browser's older
    /// state cookies beyond [`MAX_STATE_COOKIES`].
    fn state_cookies(&self, headers: &HeaderMap, state: &LoginState) -> Vec<HeaderValue> {
        let mut v = self.core.codec.prune_state_cookies(
            &self.core.state_cookie,
            headers,
            MAX_STATE_COOKIES,
            now_unix(),
        );
        v.push(self.core.codec.state_cookie(&self.core.state_cookie, state));
        v
    }

    // --- failure pages -----------------------------------------------------

    /// The login page again with a notice, keeping what the user typed.
    fn bad_start(&self, req: &Req<'_>, return_to: &str, notice: &str) -> Response<Bytes> {
        let (email, tenant) = typed(req);
        let prefill = Prefill {
            email: email.as_deref(),
            tenant: tenant.as_deref(),
        };
        self.render_login(
            req.headers(),
            return_to,
            Some(notice),
            prefill,
            StatusCode::BAD_REQUEST,
        )
    }

    fn rate_limited(&self, req: &Req<'_>, return_to: &str, spec: RateSpec) -> Response<Bytes> {
        let (email, tenant) = typed(req);
        let prefill = Prefill {
            email: email.as_deref(),
            tenant: tenant.as_deref(),
        };
        let mut resp = self.render_login(
            req.headers(),
            return_to,
            Some("Too many sign-in attempts. Please wait a minute and try again."),
            prefill,
            StatusCode::TOO_MANY_REQUESTS,
        );
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(spec.retry_after().as_secs()),
        );
        resp
    }

    fn forbidden_origin(&self) -> Response<Bytes> {
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::FORBIDDEN,
            "Request refused",
            "This request did not come from the sign-in page.",
            true,
        ))
    }

    fn link_invalid(&self) -> Response<Bytes> {
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This sign-in link is not valid. Please request a new one.",
            true,
        ))
    }

    fn state_invalid(&self) -> Response<Bytes> {
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser or has expired. Please start again.",
            true,
        ))
    }

    fn callback_failed_page(&self) -> Response<Bytes> {
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::UNAUTHORIZED,
            "Sign-in failed",
            "We could not sign you in. The link or code may have expired or been used already.",
            true,
        ))
    }

    fn callback_failed(&self, e: DescopeError) -> Response<Bytes> {
        match e {
            DescopeError::Rejected { status, code } => {
                tracing::info!(%status, %code, "descope refused a login callback");
                self.callback_failed_page()
            }
            DescopeError::InvalidResponse => {
                tracing::warn!("descope login callback: unusable answer");
                self.callback_failed_page()
            }
            DescopeError::RateLimited { .. }
            | DescopeError::Unavailable
            | DescopeError::Setup(_) => {
                tracing::warn!(error = %e, "descope unavailable during a login callback");
                self.unavailable()
            }
        }
    }

    /// A login start Descope could not serve: a refusal answers `rejected`
    /// (for e-mail starts the generic confirmation, so nobody learns which
    /// accounts exist); outages get the 503 page.
    fn start_failed(
        &self,
        e: DescopeError,
        rejected: impl FnOnce() -> Response<Bytes>,
    ) -> Response<Bytes> {
        match e {
            DescopeError::Rejected { status, code } => {
                tracing::info!(%status, %code, "descope refused a login start");
                rejected()
            }
            DescopeError::InvalidResponse => {
                tracing::warn!("descope login start: unusable answer");
                self.unavailable()
            }
            DescopeError::RateLimited { .. }
            | DescopeError::Unavailable
            | DescopeError::Setup(_) => {
                tracing::warn!(error = %e, "descope unavailable during a login start");
                self.unavailable()
            }
        }
    }

    fn check_email_page(&self) -> Response<Bytes> {
        page(pages::check_email(&self.core.settings.pages, None))
    }

    fn unavailable(&self) -> Response<Bytes> {
        let mut resp = page(pages::unavailable(&self.core.settings.pages));
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        resp
    }

    fn internal(&self, e: &dyn std::error::Error) -> Response<Bytes> {
        tracing::error!(error = %e, "login endpoint failed");
        page(pages::message(
            &self.core.settings.pages,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Please try again.",
            true,
        ))
    }
}

/// What the user typed into the login page, to show it again.
#[derive(Debug, Clone, Copy, Default)]
struct Prefill<'a> {
    email: Option<&'a str>,
    tenant: Option<&'a str>,
}

/// `(email, tenant)` as the request carried them (form field, SSO query).
fn typed(req: &Req<'_>) -> (Option<String>, Option<String>) {
    let email = if req.is_form() {
        req.form("email")
    } else {
        None
    };
    let tenant = req.query("tenant");
    let keep = |v: Option<String>| {
        v.map(|v| v.trim().to_owned())
            .filter(|v| v.len() <= MAX_EMAIL_LEN)
    };
    (keep(email), keep(tenant))
}

/// One info line per completed sign-in: the user id and the method (never
/// a token or the e-mail address).
fn signed_in_log(user: &str, method: &str, provider: Option<&str>) {
    match provider {
        Some(p) => tracing::info!(user, method, provider = p, "signed in"),
        None => tracing::info!(user, method, "signed in"),
    }
}

/// The OAuth provider of a login state, for the sign-in log line.
fn provider_of<'a>(state: &'a LoginState, method: &str) -> Option<&'a str> {
    (method == "oauth")
        .then_some(state.extra.as_deref())
        .flatten()
}

/// `alice@example.com` → `a***@example.com` (the form Descope shows).
fn mask_email(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let first = local.chars().next()?;
    Some(format!("{first}***@{domain}"))
}

/// First value of `name` in urlencoded `data`.
fn first(data: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(data)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// A plausible e-mail address: one `@`, non-empty local part and a dotted or
/// bracketed domain, no whitespace or control characters, ≤ 254 bytes.
fn is_email(e: &str) -> bool {
    if e.len() > MAX_EMAIL_LEN || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
        }
        None => false,
    }
}

/// The cookie name of a `Set-Cookie` value.
fn cookie_name(v: &HeaderValue) -> Option<String> {
    v.to_str()
        .ok()
        .and_then(|s| s.split_once('='))
        .map(|(n, _)| n.trim().to_owned())
}

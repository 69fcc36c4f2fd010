//! The one answer table: every [`Reject`] becomes a status, a JSON body for
//! API clients or a page in the hosted look for browsers (`Accept:
//! text/html`), and — in forward-auth — the answer each ingress
//! understands. Also the one place that hardens the gateway's own answers.
//!
//! | reject            | proxy                          | nginx | Traefik          | Envoy |
//! |-------------------|--------------------------------|-------|------------------|-------|
//! | BadRequest        | 400                            | 403   | 400              | 400   |
//! | NotFound          | 404                            | 403   | 404              | 404   |
//! | MethodNotAllowed  | 405                            | 403   | 405              | 405   |
//! | Forbidden         | 403                            | 403   | 403              | 403   |
//! | Unauthenticated   | 302 login or 401               | 401   | 302 login or 401 | 401   |
//! | Unavailable       | 503 + Retry-After              | 401   | 503              | 503   |
//! | PayloadTooLarge   | 413                            | 403   | 413              | 413   |
//! | HeadersTooLarge   | 431                            | 403   | 431              | 431   |
//! | Upstream          | 502 / 504 (400 / 413 client's) | –     | –                | –     |
//!
//! nginx's `auth_request` only understands 2xx, 401 and 403.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::config::ForwardAuthMode;
use crate::decide::{Challenge, Mode, Reject};
use crate::http_util::{Body, accepts_html, full, json_error, respond};
use crate::pages::{self, PageSettings};
use crate::state::Generation;

/// Seconds a 503 asks clients to wait when the cause gave no hint.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What an answer depends on besides the reject itself.
pub struct Ctx<'a> {
    pub mode: Mode,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub generation: &'a Generation,
    /// The request's path and query (where "sign in as someone else" on a
    /// 403 page comes back to).
    pub here: &'a str,
}

impl Ctx<'_> {
    fn browser(&self) -> bool {
        self.mode == Mode::Proxy && accepts_html(self.headers)
    }

    fn nginx(&self) -> bool {
        self.mode == Mode::ForwardAuth(ForwardAuthMode::Nginx)
    }

    /// The hosted look: the login settings when login is configured, else
    /// the same look without methods.
    fn page_settings(&self) -> std::borrow::Cow<'_, PageSettings> {
        let cfg = &self.generation.config;
        match self.generation.pages() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(PageSettings::plain(
                &cfg.login.app_name,
                cfg.login.logo_url.as_deref(),
                &cfg.server.auth_prefix,
            )),
        }
    }
}

/// The response for a reject (cookies it carries included).
pub fn reject(r: Reject, cx: &Ctx<'_>) -> Response<Body> {
    let (mut resp, cookies) = match r {
        Reject::BadRequest(_) => (
            error(
                cx,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request is not acceptable.",
            ),
            Vec::new(),
        ),
        Reject::NotFound(_) => (
            error(
                cx,
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such endpoint.",
            ),
            Vec::new(),
        ),
        Reject::MethodNotAllowed(_, allow) => {
            let mut r = error(
                cx,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This method is not allowed here.",
            );
            if let Some(v) = allow
                && r.status() == StatusCode::METHOD_NOT_ALLOWED
            {
                r.headers_mut().insert(header::ALLOW, v);
            }
            (r, Vec::new())
        }
        Reject::PayloadTooLarge(_) => (
            error(
                cx,
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Too large",
                "The request body is too large.",
            ),
            Vec::new(),
        ),
        Reject::HeadersTooLarge => {
            let mut r = error(
                cx,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request too large",
                "The request headers are too large.",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            (r, Vec::new())
        }
        Reject::Forbidden { cookies, .. } => (forbidden(cx), cookies),
        Reject::Unauthenticated {
            challenge,
            return_to,
            cookies,
            ..
        } => (unauthenticated(cx, challenge, &return_to), cookies),
        Reject::Unavailable {
            retry_after,
            cookies,
            ..
        } => (unavailable(cx, retry_after), cookies),
        Reject::Upstream {
            status,
            code,
            message,
            cookies,
            ..
        } => (
            error(cx, status, code, "The app did not answer", message),
            cookies,
        ),
    };
    append_cookies(&mut resp, &cookies);
    resp
}

/// A client or gateway error: a page for browsers, JSON otherwise; in
/// nginx mode every refusal is a 403.
fn error(
    cx: &Ctx<'_>,
    status: StatusCode,
    code: &str,
    title: &str,
    message: &str,
) -> Response<Body> {
    if cx.nginx() {
        return json_error(StatusCode::FORBIDDEN, "forbidden", message);
    }
    if cx.browser() {
        return page(pages::message(
            &cx.page_settings(),
            status,
            title,
            message,
            false,
        ));
    }
    json_error(status, code, message)
}

fn forbidden(cx: &Ctx<'_>) -> Response<Body> {
    if cx.browser() && crate::http_util::is_browser_navigation(cx.method, cx.headers) {
        // "Sign in as someone else" comes back here after the new login.
        if let Some(core) = &cx.generation.login {
            let here = core.sanitize_return_to(Some(cx.here));
            return page(pages::forbidden(core.page_settings(), &here));
        }
        return page(pages::message(
            &cx.page_settings(),
            StatusCode::FORBIDDEN,
            "Access denied",
            "You are signed in, but your account is not allowed to open this page.",
            false,
        ));
    }
    json_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "You are not allowed to access this resource.",
    )
}

fn unauthenticated(cx: &Ctx<'_>, challenge: Challenge, return_to: &str) -> Response<Body> {
    let cfg = &cx.generation.config;
    let login = match cx.mode {
        Mode::Proxy => (challenge == Challenge::Login).then(String::new),
        // Traefik passes a redirect to the browser; it must be absolute.
        // The route's `unauthenticated` decides, as on the proxy path.
        Mode::ForwardAuth(ForwardAuthMode::Traefik) if challenge == Challenge::Login => {
            Some(cfg.server.public_origin.clone())
        }
        Mode::ForwardAuth(_) => None,
    };
    match login {
        Some(origin) => login_redirect(&origin, &cfg.server.auth_prefix, return_to),
        None => {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A valid session is required.",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

fn unavailable(cx: &Ctx<'_>, retry_after: Option<Duration>) -> Response<Body> {
    if cx.nginx() {
        // Not 5xx: nginx would turn it into a 500. The client retries.
        return unauthenticated(cx, Challenge::Status401, "/");
    }
    let mut resp = if cx.browser() {
        page(pages::unavailable(&cx.page_settings()))
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The session service is temporarily unavailable.",
        )
    };
    let secs = retry_after.unwrap_or(DEFAULT_RETRY_AFTER).as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// 302 to `{origin}{auth_prefix}/login?return_to=...` (`origin` empty: a
/// relative redirect on this gateway).
pub fn login_redirect(origin: &str, auth_prefix: &str, return_to: &str) -> Response<Body> {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    redirect(
        StatusCode::FOUND,
        &format!("{origin}{auth_prefix}/login?{q}"),
    )
}

/// A redirect to `location` (dropped if it is not a valid header value).
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut resp = respond(status, "text/plain", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub fn page(p: pages::Page) -> Response<Body> {
    p.into_response().map(full)
}

pub fn append_cookies(resp: &mut Response<Body>, cookies: &[HeaderValue]) {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c.clone());
    }
}

/// The CSP of the gateway's own HTML answers that carry none of their own.
const DEFAULT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";

/// Hardens an answer the gateway wrote itself (never an app's): no caching,
/// no sniffing, no referrer, no framing, and a CSP on HTML without one.
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
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        );
    }
}

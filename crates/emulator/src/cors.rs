//! CORS for a page on another loopback origin: the gateway's login page runs
//! `<descope-wc>`, whose API calls (`fetch` with `credentials: 'include'`,
//! `Authorization` and `x-descope-sdk-*` headers) go to the emulator.
//!
//! Only the paths a browser page uses take part: the auth API
//! (`/v1/auth/*`), Flows (`/v1/flow/*`), the keys, the flow files and the npm
//! files. The management API and the control API never answer a browser on
//! another origin (as Descope's management API does not).
//!
//! A request whose `Origin` is a loopback origin (`localhost`, `127.0.0.0/8`,
//! `[::1]`, any port, http or https) gets that origin echoed with
//! `Access-Control-Allow-Credentials: true`, and its preflight is answered
//! (204) with the methods and the headers it asks for. Other origins get no
//! CORS headers from the API (the browser then refuses the answer); the
//! static flow pages and npm files carry `Access-Control-Allow-Origin: *`
//! themselves, like a CDN's.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderValue, ORIGIN, VARY,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::http::{Req, Resp};

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// Whether a path is one a browser page calls.
fn browser_path(path: &str) -> bool {
    [
        "/v1/auth/",
        "/v1/flow/",
        "/v2/keys/",
        "/v1/keys/",
        "/pages/",
        "/npm/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// The request's `Origin` when it is a loopback origin and the path one a
/// browser page calls.
fn loopback_origin(req: &Req) -> Option<HeaderValue> {
    if !browser_path(&req.path) {
        return None;
    }
    let value = req.headers.get(ORIGIN)?;
    let url = url::Url::parse(value.to_str().ok()?).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let loopback = match url.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    loopback.then(|| value.clone())
}

/// The answer to a CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`), or `None` for any other request.
pub(crate) fn preflight(req: &Req) -> Option<Resp> {
    if req.method != Method::OPTIONS || !req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = loopback_origin(req) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        // The headers asked for are echoed: they are a comma-separated list
        // of header names, which the header value type already vetted.
        if let Some(asked) = req.headers.get(ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
        );
    }
    Some(resp)
}

/// Adds the CORS headers of a loopback `Origin` to an answer.
pub(crate) fn decorate(req: &Req, resp: &mut Resp) {
    let Some(origin) = loopback_origin(req) else {
        return;
    };
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(VARY, HeaderValue::from_static("Origin"));
}

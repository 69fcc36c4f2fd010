//! Response helpers for the login endpoints, and the same-origin check.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::pages::Page;

/// What the request's `Origin` / `Sec-Fetch-Site` say about where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// `Origin` equals the public origin, or `Sec-Fetch-Site: same-origin`.
    Same,
    /// Another origin (or `Origin: null`, or a cross-/same-site fetch).
    Cross,
    /// Neither header: not a browser, or a very old one.
    Unknown,
}

/// Classifies a request against `public_origin` (`scheme://host[:port]`).
/// `Origin` wins when present; otherwise `Sec-Fetch-Site`.
pub(super) fn origin_check(headers: &HeaderMap, public_origin: &str) -> Origin {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(o) = origins.next() {
        let single = origins.next().is_none();
        let same = o
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(public_origin));
        return if same && single {
            Origin::Same
        } else {
            Origin::Cross
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(v) if v.eq_ignore_ascii_case("same-origin") => Origin::Same,
        Some(v) if v.eq_ignore_ascii_case("none") => Origin::Unknown,
        Some(_) => Origin::Cross,
        None => Origin::Unknown,
    }
}

pub(super) fn page(p: Page) -> Response<Bytes> {
    p.into_response().map(Bytes::from)
}

pub(super) fn redirect(status: StatusCode, location: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = status;
    // Targets come from redirect::RedirectPolicy or Descope (validated URL):
    // both are valid header values; anything else falls back to `/`.
    let loc = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    resp.headers_mut().insert(header::LOCATION, loc);
    resp
}

pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn with_cookies(
    mut resp: Response<Bytes>,
    cookies: Vec<HeaderValue>,
) -> Response<Bytes> {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// 405 with the methods the endpoint accepts.
pub(super) fn method_not_allowed(sub_path: &str) -> Response<Bytes> {
    let allow = match sub_path {
        "/login" | "/oauth/start" | "/oauth/callback" | "/sso/start" | "/sso/callback" => {
            "GET, HEAD"
        }
        "/magiclink/verify" | "/enchantedlink/verify" | "/enchantedlink/session" => {
            "GET, HEAD, POST"
        }
        _ => "POST",
    };
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

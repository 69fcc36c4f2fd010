//! Response helpers for the login endpoints, and the same-origin check.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::pages::Page;

/// What the request's `Origin` / `Sec-Fetch-Site` say about where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `Origin` equals the public origin, or `Sec-Fetch-Site: same-origin`.
    Same,
    /// Another origin (or `Origin: null`, or a cross-/same-site fetch).
    Cross,
    /// Neither header: not a browser, or a very old one.
    Unknown,
}

/// Classifies a request against `public_origin` (`scheme://host[:port]`).
/// A real `Origin` wins when present; otherwise `Sec-Fetch-Site` decides.
///
/// `Origin: null` is what browsers send for a form POST from a page with
/// `Referrer-Policy: no-referrer` (all our pages), so it defers to
/// `Sec-Fetch-Site`, which browsers compute from the real initiator and
/// scripts cannot set; without it, `null` stays cross-origin.
pub fn origin_check(headers: &HeaderMap, public_origin: &str) -> Origin {
    let all: Vec<&HeaderValue> = headers.get_all(header::ORIGIN).iter().collect();
    match all.as_slice() {
        [] => fetch_site(headers).unwrap_or(Origin::Unknown),
        [o] if *o == "null" => match fetch_site(headers) {
            Some(Origin::Same) => Origin::Same,
            Some(Origin::Cross | Origin::Unknown) | None => Origin::Cross,
        },
        [o] if o
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(public_origin)) =>
        {
            Origin::Same
        }
        _ => Origin::Cross,
    }
}

/// `Sec-Fetch-Site`: `same-origin` → same, `none` (typed URL) → unknown,
/// anything else → cross; absent → `None`.
fn fetch_site(headers: &HeaderMap) -> Option<Origin> {
    let v = headers.get("sec-fetch-site")?;
    Some(match v.to_str() {
        Ok(v) if v.eq_ignore_ascii_case("same-origin") => Origin::Same,
        Ok(v) if v.eq_ignore_ascii_case("none") => Origin::Unknown,
        Ok(_) | Err(_) => Origin::Cross,
    })
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

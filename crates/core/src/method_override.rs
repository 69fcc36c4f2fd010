//! Method overrides: ways a request names another method than its own.
//!
//! Rack, Laravel/Symfony, Express `method-override` and Spring's
//! `HiddenHttpMethodFilter` let a `POST` act as `PUT`, `PATCH` or `DELETE`
//! through a header (`X-HTTP-Method-Override`, `X-HTTP-Method`,
//! `X-Method-Override`, in any `_`/`-` spelling, since CGI-style stacks read
//! them alike), a `_method` query parameter, or a `_method` field in a form
//! (URL-encoded or multipart) or — Laravel — JSON body. A route limited to
//! `GET, POST` must not let any of them reach the app naming a method the
//! route does not allow: such a request is answered 405 like the method
//! itself would be.
//!
//! Bodies are read only when it matters: a `POST` on a route with `methods`,
//! whose content type is one those frameworks parse for `_method` (or
//! absent, which Rack treats as a form). At most [`MAX_INSPECTED_BODY`]
//! bytes are read; a longer body of that kind on such a route is refused
//! with 413 rather than forwarded unread.

use bytes::Bytes;
use http::{HeaderMap, Method, header};

use crate::inbound::{METHOD_OVERRIDE_PARAM, method_override_values};
use crate::policy::Route;

/// Largest body read to look for a `_method` field.
pub const MAX_INSPECTED_BODY: usize = 1024 * 1024;

/// Whether `name` is a method the route allows (`None`: not a method).
fn allowed(route: &Route, name: &[u8]) -> bool {
    Method::from_bytes(name.trim_ascii().to_ascii_uppercase().as_slice())
        .is_ok_and(|m| route.allows_method(&m))
}

/// Whether a query or form field named `key` is read as `_method` by some
/// framework: PHP turns `.` and ` ` in a parameter name into `_` and drops
/// leading spaces before Laravel/Symfony look (`.method`, `+_method`), and
/// nested-parameter parsers make `_method[]` / `_method[x]` of `_method`;
/// PHP also ends a name at its first NUL (`_method%00x` is `_method`).
/// Compared in any letter case.
pub fn names_override(key: &str) -> bool {
    let key = key.split('\0').next().unwrap_or(key);
    let base = key.trim_start_matches(' ');
    let base = base.split('[').next().unwrap_or(base);
    base.len() == METHOD_OVERRIDE_PARAM.len()
        && base
            .bytes()
            .map(|b| if b == b'.' || b == b' ' { b'_' } else { b })
            .zip(METHOD_OVERRIDE_PARAM.bytes())
            .all(|(a, b)| a.eq_ignore_ascii_case(&b))
}

/// Every override in the headers (any spelling) and the query names a
/// method the route allows; always true for a route without `methods`.
pub fn head_allowed(route: &Route, headers: &HeaderMap, query: Option<&str>) -> bool {
    if route.methods().is_none() {
        return true;
    }
    method_override_values(headers).all(|v| allowed(route, v.as_bytes()))
        && query.is_none_or(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| names_override(k))
                .all(|(_, v)| allowed(route, v.as_bytes()))
        })
}

/// The kinds of body a framework looks into for `_method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    Form,
    Multipart(String),
    Json,
    /// A body of one of those kinds under a `Content-Encoding` (gzip, ...):
    /// apps that decompress would read a `_method` not visible here, so it
    /// is refused rather than inspected.
    Encoded,
}

/// Whether the body of this request must be inspected before it goes on,
/// and as what.
pub fn body_to_inspect(route: &Route, method: &Method, headers: &HeaderMap) -> Option<BodyKind> {
    if *method != Method::POST || route.methods().is_none() {
        return None;
    }
    // A header the client nominated in `Connection` is removed before the
    // request goes on: the app sees no such header, so neither does this.
    let forwarded = |name: &http::HeaderName| !nominated_by_connection(headers, name.as_str());
    let cts: Vec<&http::HeaderValue> = if forwarded(&header::CONTENT_TYPE) {
        headers.get_all(header::CONTENT_TYPE).iter().collect()
    } else {
        Vec::new()
    };
    let kind = match cts.as_slice() {
        [] => BodyKind::Form, // Rack reads a typeless POST as a form
        [ct] => {
            let ct = ct.to_str().unwrap_or_default();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                BodyKind::Form
            } else if essence.eq_ignore_ascii_case("multipart/form-data") {
                // A multipart body without a usable boundary cannot be parsed
                // here, nor by the app: an empty boundary fails closed.
                BodyKind::Multipart(multer::parse_boundary(ct).unwrap_or_default())
            } else if essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
            {
                BodyKind::Json
            } else {
                return None;
            }
        }
        // Two types: apps differ on which one counts; read as none of them.
        _ => BodyKind::Multipart(String::new()),
    };
    let encoded = forwarded(&header::CONTENT_ENCODING)
        && headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .any(|c| !c.trim().eq_ignore_ascii_case("identity") && !c.trim().is_empty());
    Some(if encoded { BodyKind::Encoded } else { kind })
}

/// Whether `Connection` lists `name` (which is then not forwarded).
fn nominated_by_connection(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(name))
}

/// In forward-auth the body is never seen: whether this request could carry
/// a `_method` in a body the app parses (a declared form, multipart or JSON
/// body, possibly encoded) on a route with `methods`. Such a request is
/// refused there, since the override it may hold cannot be checked.
pub fn unreadable_body_may_override(route: &Route, method: &Method, headers: &HeaderMap) -> bool {
    let declared = headers.contains_key(header::CONTENT_TYPE)
        && !nominated_by_connection(headers, header::CONTENT_TYPE.as_str());
    declared && body_to_inspect(route, method, headers).is_some()
}

/// Whether every `_method` in a read body names a method the route allows.
/// A body that does not parse as its kind is refused too: the app would
/// either reject it or read it in a way not checked here.
pub async fn body_allowed(route: &Route, kind: &BodyKind, body: &Bytes) -> bool {
    match kind {
        // `_method[]=DELETE` and `_method[x]=...` count too: a parser that
        // builds nested params may still stringify them into a method.
        BodyKind::Encoded => false,
        BodyKind::Form => form_urlencoded::parse(body)
            .filter(|(k, _)| names_override(k))
            .all(|(_, v)| allowed(route, v.as_bytes())),
        BodyKind::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return true;
            }
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(serde_json::Value::Object(map)) => map
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(METHOD_OVERRIDE_PARAM))
                    .all(|(_, v)| v.as_str().is_some_and(|m| allowed(route, m.as_bytes()))),
                // Arrays, scalars: no `_method` to honour. Invalid JSON:
                // the app refuses it or reads nothing from it.
                Ok(_) | Err(_) => true,
            }
        }
        BodyKind::Multipart(boundary) => {
            if boundary.is_empty() {
                return false;
            }
            let chunk = body.clone();
            let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(chunk) });
            let mut parts = multer::Multipart::new(stream, boundary.clone());
            loop {
                match parts.next_field().await {
                    Ok(None) => return true,
                    Ok(Some(field)) => {
                        let is_override = field.name().is_some_and(names_override);
                        if is_override {
                            match field.bytes().await {
                                Ok(v) if allowed(route, &v) => {}
                                Ok(_) | Err(_) => return false,
                            }
                        }
                    }
                    Err(_) => return false,
                }
            }
        }
    }
}

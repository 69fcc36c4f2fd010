//! Request parsing and response building for the emulator's handlers.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use serde_json::{Map, Value};

use portcullis_wire::ErrorBody;

pub(crate) type Resp = Response<Full<Bytes>>;

/// A fully read request.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The TCP peer (the caller's IP, for access keys' permitted IPs).
    pub(crate) peer: Option<std::net::SocketAddr>,
}

impl Req {
    /// First value of a query parameter, trying each spelling in turn.
    pub(crate) fn query_any(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.query.get(*n))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The JSON body as an object; an empty body is `{}` (go sends none).
    pub(crate) fn json(&self) -> Result<Map<String, Value>, Resp> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(Value::Null) => Ok(Map::new()),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "E011001",
                "Bad request",
                "The request body is not a JSON object",
            )),
        }
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub(crate) fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The colon-separated parts of `Authorization: Bearer a:b:c`.
    pub(crate) fn bearer_parts(&self) -> Vec<String> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().split(':').map(str::to_owned).collect())
            })
            .unwrap_or_default()
    }
}

/// A string field of a JSON object, empty when absent or not a string.
pub(crate) fn str_field<'a>(body: &'a Map<String, Value>, names: &[&str]) -> &'a str {
    names
        .iter()
        .find_map(|n| body.get(*n).and_then(Value::as_str))
        .unwrap_or("")
}

/// A list of strings from a JSON object (non-strings skipped; empty when absent).
pub(crate) fn strings(body: &Map<String, Value>, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `400 E011004` for a management call naming an unknown entity.
pub(crate) fn not_found_entity(what: &str) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E011004",
        "Invalid arguments",
        &format!("No such {what}"),
    )
}

/// A JSON answer.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `200 {}`.
pub(crate) fn ok_empty() -> Resp {
    json(StatusCode::OK, &serde_json::json!({}))
}

/// A Descope error answer.
pub(crate) fn error(status: StatusCode, code: &str, description: &str, message: &str) -> Resp {
    json(status, &ErrorBody::new(code, description, message))
}

/// `400 E011002` for a missing argument.
pub(crate) fn missing(what: &str) -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E011002",
        "Request is missing required arguments",
        &format!("The {what} argument is missing"),
    )
}

/// `404 E011404` for an unknown endpoint.
pub(crate) fn not_found() -> Resp {
    error(
        StatusCode::NOT_FOUND,
        "E011404",
        "Not found",
        "The emulator does not serve this endpoint",
    )
}

/// An HTML page.
pub(crate) fn html(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// `302 Location: url`.
pub(crate) fn redirect(url: &str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(url) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Appends `key=value` to a URL's query (`?` or `&` as needed).
pub(crate) fn append_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{url}{sep}{key}={value}")
}

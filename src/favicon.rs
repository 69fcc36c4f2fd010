//! The gateway's own favicon for signed-out browsers.
//!
//! Browsers fetch `/favicon.ico` on their own, before anyone signs in; on a
//! route that needs a session that would be a 401 or a login redirect in
//! the access log for every visitor. Instead the gateway answers such a
//! request itself with a small built-in icon, without asking the app (which
//! never sees unauthenticated traffic it did not opt into). Signed-in users
//! get the app's own `/favicon.ico` through the normal route; a route with
//! `access = "public"` for `/favicon.ico` serves the app's icon to everyone.

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::http_util::{Body, full};

/// A 32×32 PNG in an ICO container (`assets/favicon.ico`).
pub const ICON: &[u8] = include_bytes!("../assets/favicon.ico");

/// The path browsers fetch by themselves.
pub const PATH: &str = "/favicon.ico";

/// The built-in icon, for a `GET`/`HEAD` of `/favicon.ico` that would
/// otherwise be answered 401 / redirected to the login page.
pub fn for_signed_out(method: &Method, canonical_path: &str) -> Option<Response<Body>> {
    if canonical_path != PATH || !(method == Method::GET || method == Method::HEAD) {
        return None;
    }
    let mut resp = Response::new(full(bytes::Bytes::from_static(ICON)));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/x-icon"),
    );
    // Short-lived and private: once signed in, the app's icon takes over.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

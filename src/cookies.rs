//! The gateway's cookies: session (`DS`), refresh (`DSR`), their chunks, and
//! login state cookies. STUB: the refresh work replaces this file.

use http::{HeaderMap, HeaderValue};

/// Prefix of the short-lived signed login-state cookies (one per login nonce).
pub const STATE_COOKIE_PREFIX: &str = "portcullis_state_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// Built from `[session]` + `public_url`.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Base names from config (`DS`, `DSR`); the `__Host-` prefix is added here.
    pub session_name: String,
    pub refresh_name: String,
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
    /// Use `__Host-` names (only valid with `secure` and no `domain`).
    pub host_prefix: bool,
}

/// Tokens found in a request's cookies (chunks reassembled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTokens {
    pub session: Option<String>,
    pub refresh: Option<String>,
}

impl CookieSettings {
    /// Reads (and reassembles) the session and refresh tokens.
    pub fn read(&self, headers: &HeaderMap) -> RequestTokens {
        let _ = headers;
        RequestTokens::default()
    }

    /// `Set-Cookie` values for a new session: session (+ refresh when given),
    /// chunked when large; also clears stale chunks the request carried.
    pub fn set_session(
        &self,
        request: &HeaderMap,
        session_jwt: &str,
        refresh_jwt: Option<&str>,
    ) -> Vec<HeaderValue> {
        let _ = (request, session_jwt, refresh_jwt);
        Vec::new()
    }

    /// `Set-Cookie` values that delete every session/refresh cookie (and chunk) the request carried.
    pub fn clear_all(&self, request: &HeaderMap) -> Vec<HeaderValue> {
        let _ = request;
        Vec::new()
    }

    /// Whether a cookie name belongs to the gateway (never forwarded upstream).
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        name.starts_with(STATE_COOKIE_PREFIX)
    }
}

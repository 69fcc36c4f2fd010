//! The gateway's cookies: session (`DS`), refresh (`DSR`), their chunks, and
//! login state cookies.
//!
//! Data flow: the pipeline calls [`CookieSettings::read`] on every request to
//! get the session and refresh tokens, [`CookieSettings::set_session`] after a
//! login or refresh to build the `Set-Cookie` values, [`CookieSettings::clear_all`]
//! on logout or revocation, and [`CookieSettings::is_gateway_cookie`] to drop
//! the gateway's cookies from the `Cookie` header it forwards upstream.
//!
//! Naming (configured base names `DS`/`DSR`):
//! - the cookie name is the base name, prefixed with `__Host-` when
//!   `host_prefix` is on (`__Host-DS`);
//! - a token longer than [`CHUNK_SIZE`] bytes (a user in many tenants) is
//!   split into chunk cookies `NAME.0`, `NAME.1`, … `NAME.{n-1}`, each at most
//!   [`CHUNK_SIZE`] bytes, and the unchunked `NAME` is deleted;
//! - [`CookieSettings::read`] takes the unchunked `NAME` when present, else
//!   concatenates `NAME.0`, `NAME.1`, … up to the first missing index;
//! - whenever the shape changes, the cookies of the old shape that the request
//!   carried (the unchunked twin, or chunks beyond the new count) are deleted
//!   in the same response.
//!
//! Every cookie is `HttpOnly; Path=/`, `Secure` when configured, `SameSite`
//! per config, `Domain` only when configured (never Descope's `cookieDomain`),
//! and `Max-Age` from the token's `exp`. Values are never logged.

use std::time::Duration;

use crate::time::unix_now_i64 as unix_now;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::Cookie;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Prefix of the short-lived signed login-state cookies (one per login nonce).
pub const STATE_COOKIE_PREFIX: &str = "portcullis_state_";

/// Largest value stored in one cookie; longer tokens are chunked. Browsers
/// cap name + value at 4096 bytes, so this leaves room for the name and attributes.
pub const CHUNK_SIZE: usize = 3800;

/// Most chunks read or written per token (64 × 3.8 KB is far beyond any
/// server's header limit, so a longer token cannot be a real one).
pub const MAX_CHUNKS: usize = 64;

/// The cookie-name prefix that binds a cookie to the exact host (RFC 6265bis).
pub const HOST_PREFIX: &str = "__Host-";

/// Separator between a cookie name and its chunk index (`DS.0`).
const CHUNK_SEPARATOR: char = '.';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl From<SameSite> for cookie::SameSite {
    fn from(s: SameSite) -> Self {
        match s {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        }
    }
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestTokens {
    pub session: Option<String>,
    pub refresh: Option<String>,
}

// Tokens are secrets: never print them.
impl std::fmt::Debug for RequestTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTokens")
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

// === impl CookieSettings ===

impl CookieSettings {
    /// The session cookie's name as sent to browsers (`__Host-DS` or `DS`).
    pub fn session_cookie_name(&self) -> String {
        self.full_name(&self.session_name)
    }

    /// The refresh cookie's name as sent to browsers (`__Host-DSR` or `DSR`).
    pub fn refresh_cookie_name(&self) -> String {
        self.full_name(&self.refresh_name)
    }

    /// Reads (and reassembles) the session and refresh tokens from every
    /// `Cookie` header. Unparsable headers and pairs are skipped; the first
    /// occurrence of a name wins; empty values count as absent.
    pub fn read(&self, headers: &HeaderMap) -> RequestTokens {
        let jar = request_cookies(headers);
        RequestTokens {
            session: reassemble(&jar, &self.session_cookie_name()),
            refresh: reassemble(&jar, &self.refresh_cookie_name()),
        }
    }

    /// `Set-Cookie` values for a new session: session (+ refresh when given),
    /// chunked when large; also clears stale chunks the request carried.
    pub fn set_session(
        &self,
        request: &HeaderMap,
        session_jwt: &str,
        refresh_jwt: Option<&str>,
    ) -> Vec<HeaderValue> {
        let jar = request_cookies(request);
        let now = unix_now();
        let mut out = self.token_cookies(&jar, &self.session_cookie_name(), session_jwt, now);
        if let Some(refresh) = refresh_jwt {
            out.extend(self.token_cookies(&jar, &self.refresh_cookie_name(), refresh, now));
        }
        out
    }

    /// `Set-Cookie` values for a session value that is not a JWT (the
    /// gateway-sealed session of the OIDC mode), chunked when large;
    /// `max_age: None` makes a browser-session cookie. Stale chunks and a
    /// refresh cookie the request carried are deleted.
    pub fn set_opaque_session(
        &self,
        request: &HeaderMap,
        value: &str,
        max_age: Option<Duration>,
    ) -> Vec<HeaderValue> {
        let jar = request_cookies(request);
        let mut out = self.value_cookies(&jar, &self.session_cookie_name(), value, max_age);
        let refresh = self.refresh_cookie_name();
        for (name, _) in &jar {
            if is_name_or_chunk(name, &refresh) {
                out.push(self.removal(name));
            }
        }
        out
    }

    /// `Set-Cookie` values that delete every session/refresh cookie (and chunk) the request carried.
    /// With `host_prefix`, leftover unprefixed twins (from a config without
    /// the prefix) are deleted too; login state cookies are left alone.
    pub fn clear_all(&self, request: &HeaderMap) -> Vec<HeaderValue> {
        let mut seen: Vec<&str> = Vec::new();
        let jar = request_cookies(request);
        for (name, _) in &jar {
            if self.is_token_cookie(name) && !seen.contains(name) {
                seen.push(name);
            }
        }
        seen.into_iter().map(|n| self.removal(n)).collect()
    }

    /// A session or refresh cookie or chunk, with or without `__Host-`.
    fn is_token_cookie(&self, name: &str) -> bool {
        let bare = name.strip_prefix(HOST_PREFIX).unwrap_or(name);
        if bare.len() != name.len() && !self.host_prefix {
            // `__Host-` cookies cannot be deleted without `Secure`; they are
            // not ours when the prefix is off.
            return false;
        }
        [&self.session_name, &self.refresh_name]
            .into_iter()
            .any(|base| is_name_or_chunk(bare, base))
    }

    /// Whether a cookie name belongs to the gateway (never forwarded upstream):
    /// the session and refresh names (with and without `__Host-`), their chunks,
    /// and the login state cookies.
    pub fn is_gateway_cookie(&self, name: &str) -> bool {
        let bare = name.strip_prefix(HOST_PREFIX).unwrap_or(name);
        if bare.starts_with(STATE_COOKIE_PREFIX) {
            return true;
        }
        [&self.session_name, &self.refresh_name]
            .into_iter()
            .any(|base| is_name_or_chunk(bare, base))
    }

    fn full_name(&self, base: &str) -> String {
        if self.host_prefix {
            format!("{HOST_PREFIX}{base}")
        } else {
            base.to_owned()
        }
    }

    /// The cookies carrying one token under `name`, plus deletions of the
    /// other shape's cookies that the request carried.
    fn token_cookies(
        &self,
        jar: &[(&str, &str)],
        name: &str,
        token: &str,
        now: i64,
    ) -> Vec<HeaderValue> {
        if token.is_empty() || !token.bytes().all(is_cookie_octet) {
            // A verified JWT is always cookie-safe; anything else is dropped
            // rather than allowed to inject attributes.
            tracing::warn!(
                cookie = name,
                "refusing to set a cookie with an unsafe value"
            );
            return Vec::new();
        }
        let max_age = token_exp(token)
            .map(|exp| Duration::from_secs(exp.saturating_sub(now).max(0).unsigned_abs()));
        self.value_cookies(jar, name, token, max_age)
    }

    /// The cookies carrying `token` under `name` (chunked when large), plus
    /// deletions of the other shape's cookies that the request carried.
    fn value_cookies(
        &self,
        jar: &[(&str, &str)],
        name: &str,
        token: &str,
        max_age: Option<Duration>,
    ) -> Vec<HeaderValue> {
        if token.is_empty() || !token.bytes().all(is_cookie_octet) {
            tracing::warn!(
                cookie = name,
                "refusing to set a cookie with an unsafe value"
            );
            return Vec::new();
        }
        let carried = |n: &str| jar.iter().any(|(c, _)| *c == n);
        let mut out = Vec::new();
        if token.len() <= CHUNK_SIZE {
            out.push(self.cookie(name.to_owned(), token.to_owned(), max_age));
            for i in 0..MAX_CHUNKS {
                let chunk = chunk_name(name, i);
                if carried(&chunk) {
                    out.push(self.removal(&chunk));
                }
            }
        } else {
            let chunks: Vec<&[u8]> = token.as_bytes().chunks(CHUNK_SIZE).collect();
            if chunks.len() > MAX_CHUNKS {
                tracing::warn!(cookie = name, "token too large to store in cookies");
                return Vec::new();
            }
            for (i, part) in chunks.iter().enumerate() {
                // The token is ASCII (checked above), so any byte split is valid UTF-8.
                let part = String::from_utf8_lossy(part).into_owned();
                out.push(self.cookie(chunk_name(name, i), part, max_age));
            }
            if carried(name) {
                out.push(self.removal(name));
            }
            for i in chunks.len()..MAX_CHUNKS {
                let chunk = chunk_name(name, i);
                if carried(&chunk) {
                    out.push(self.removal(&chunk));
                }
            }
        }
        out
    }

    fn builder(&self, name: String, value: String) -> cookie::CookieBuilder<'static> {
        let mut b = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site.into());
        if let Some(domain) = &self.domain {
            b = b.domain(domain.clone());
        }
        b
    }

    fn cookie(&self, name: String, value: String, max_age: Option<Duration>) -> HeaderValue {
        let mut b = self.builder(name, value);
        if let Some(age) = max_age {
            let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            b = b.max_age(cookie::time::Duration::seconds(secs));
        }
        header_value(&b.build())
    }

    fn removal(&self, name: &str) -> HeaderValue {
        let mut c = self.builder(name.to_owned(), String::new()).build();
        c.make_removal();
        header_value(&c)
    }
}

/// `NAME.i`.
fn chunk_name(name: &str, i: usize) -> String {
    format!("{name}{CHUNK_SEPARATOR}{i}")
}

/// `name == base` or `name == base.<digits>`.
fn is_name_or_chunk(name: &str, base: &str) -> bool {
    match name.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix(CHUNK_SEPARATOR)
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Every `(name, value)` pair of every `Cookie` header, in order, parsed by
/// the `cookie` crate (no percent-decoding). Headers that are not visible
/// ASCII and pairs that do not parse are skipped; RFC 6265 quotes around a
/// value are removed.
fn request_cookies(headers: &HeaderMap) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for h in headers.get_all(COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for c in Cookie::split_parse(s).flatten() {
            let (Some(name), Some(value)) = (c.name_raw(), c.value_raw()) else {
                continue;
            };
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            out.push((name, value));
        }
    }
    out
}

/// The first non-empty value of `name`, else the chunks `name.0..` joined.
fn reassemble(jar: &[(&str, &str)], name: &str) -> Option<String> {
    let first = |n: &str| {
        jar.iter()
            .find(|(c, v)| *c == n && !v.is_empty())
            .map(|(_, v)| *v)
    };
    if let Some(v) = first(name) {
        return Some(v.to_owned());
    }
    let mut token = String::new();
    for i in 0..MAX_CHUNKS {
        match first(&chunk_name(name, i)) {
            Some(part) => token.push_str(part),
            None => break,
        }
    }
    (!token.is_empty()).then_some(token)
}

/// RFC 6265 `cookie-octet`: visible ASCII except `"`, `,`, `;` and `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn header_value(c: &Cookie<'_>) -> HeaderValue {
    HeaderValue::from_str(&c.to_string())
        .expect("cookie names are config tokens and values are checked cookie-octets")
}

/// The `exp` claim of a JWT, read without verification. Only for choosing a
/// cookie's `Max-Age`: callers pass tokens they have already verified.
fn token_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

#[cfg(test)]
mod tests;

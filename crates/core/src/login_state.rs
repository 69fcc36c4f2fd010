//! Signed login state: what a login start remembers until its
//! callback — `return_to`, a random nonce, an expiry and the login kind.
//!
//! Two carriers, one format:
//!
//! * the **state cookie** `portcullis_state_<nonce>` (HttpOnly, `SameSite=Lax`,
//!   short-lived, one per login so two tabs can log in at once). OAuth, SSO,
//!   OTP, enchanted-link and `flow` logins require it: a callback whose nonce
//!   has no matching, valid cookie in the *same browser* creates no session
//!   (login CSRF / code injection defence);
//! * the magic-link **`state` query value**, signed the same way, because a
//!   magic link may be opened on another device where no cookie exists.
//!
//! A sealed value is `base64url(json) "." base64url(hmac)`, where the HMAC-SHA256
//! (aws-lc-rs) covers a purpose label and the payload, so a cookie value is not
//! accepted as a link state and vice versa. The key is derived from
//! `[session] secret`; values made with `previous_secrets` still open, so a
//! secret rotation does not break logins in progress. Tags are compared in
//! constant time by `aws_lc_rs::hmac::verify`.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::Cookie;
use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::cookies::{HOST_PREFIX, STATE_COOKIE_PREFIX};

/// Lifetime of a state cookie: a login started longer ago than this must start over.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// Lifetime of a magic link's signed `state`: e-mail can be slow, so longer
/// than a cookie (Descope's own link expiry still applies).
pub const DEFAULT_LINK_STATE_TTL: Duration = Duration::from_secs(30 * 60);

/// Minimum length of `[session] secret` (and of each previous secret).
pub const MIN_SECRET_LEN: usize = 32;

/// State cookies a browser keeps besides the one being set: older ones are
/// deleted, so reloading the login page never piles up cookies.
pub const MAX_STATE_COOKIES: usize = 4;

/// Random bytes in a nonce (base64url: 22 characters).
const NONCE_BYTES: usize = 16;
/// Length of an encoded nonce.
const NONCE_LEN: usize = 22;
/// Longest sealed value accepted; anything bigger is not ours.
const MAX_SEALED_LEN: usize = 4096;
/// Domain separation for the key derived from the session secret.
const KEY_LABEL: &[u8] = b"portcullis login-state key v1";

/// What a login state can be opened as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The per-nonce state cookie.
    Cookie,
    /// The magic-link `state` query value.
    Link,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Cookie => b"portcullis/state-cookie/v1\0",
            Self::Link => b"portcullis/link-state/v1\0",
        }
    }
}

/// Which login method started the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginKind {
    Flow,
    MagicLink,
    EnchantedLink,
    Otp,
    OAuth,
    Sso,
    /// The OIDC mode's authorization code flow (extra: nonce and PKCE verifier).
    Oidc,
}

/// The signed content of a login state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    #[serde(rename = "k")]
    pub kind: LoginKind,
    /// Random, base64url, [`NONCE_LEN`] characters; names the state cookie.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Already validated by `redirect::RedirectPolicy`.
    #[serde(rename = "r")]
    pub return_to: String,
    /// Seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires_at: u64,
    /// Kind-specific data: the login id for OTP, the `pendingRef` for an
    /// enchanted link, the provider for OAuth, the tenant for SSO.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
}

/// Why a login state was refused. Every variant means "no session".
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("session secret is shorter than {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    #[error("no state cookie for this login")]
    Missing,
    #[error("login state is malformed")]
    Malformed,
    #[error("login state signature is invalid")]
    BadSignature,
    #[error("login state has expired")]
    Expired,
    #[error("login state belongs to another login")]
    Mismatch,
    #[error("random number generator failed")]
    Random,
}

/// Attributes of the state cookie, from `[session]` and `[server]`.
#[derive(Debug, Clone)]
pub struct StateCookieSettings {
    /// `Secure` attribute (false only when `public_url` is http).
    pub secure: bool,
    /// Cookie `Path`: the auth prefix, so the cookie never travels to the
    /// app; `/` with `host_prefix` (which `__Host-` requires).
    pub path: String,
    /// Named `__Host-portcullis_state_<nonce>`: a cookie set from a sibling
    /// subdomain or over plain http cannot carry that name, so nobody but
    /// this host can plant a state (and with it a login) in a browser.
    pub host_prefix: bool,
}

impl StateCookieSettings {
    /// The settings for `auth_prefix`, `__Host-` named when the session
    /// cookies are (`https` `public_url`, no cookie domain).
    pub fn new(secure: bool, host_prefix: bool, auth_prefix: &str) -> Self {
        let host_prefix = host_prefix && secure;
        Self {
            secure,
            path: if host_prefix {
                "/".to_owned()
            } else {
                auth_prefix.to_owned()
            },
            host_prefix,
        }
    }

    /// The start every state cookie's name has under these settings.
    pub fn name_prefix(&self) -> String {
        if self.host_prefix {
            format!("{HOST_PREFIX}{STATE_COOKIE_PREFIX}")
        } else {
            STATE_COOKIE_PREFIX.to_owned()
        }
    }

    /// The state cookie's name for `nonce`.
    pub fn name(&self, nonce: &str) -> String {
        format!("{}{nonce}", self.name_prefix())
    }
}

/// Seals and opens login states with the current and previous secrets.
pub struct StateCodec {
    /// The first key signs; all of them verify.
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for StateCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCodec")
            .field("keys", &self.keys.len())
            .finish()
    }
}

// === impl StateCodec ===

impl StateCodec {
    /// Builds the codec; every secret must be at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8], previous: &[&[u8]]) -> Result<Self, StateError> {
        let mut keys = Vec::with_capacity(1 + previous.len());
        for s in std::iter::once(secret).chain(previous.iter().copied()) {
            if s.len() < MIN_SECRET_LEN {
                return Err(StateError::WeakSecret);
            }
            let root = hmac::Key::new(hmac::HMAC_SHA256, s);
            let derived = hmac::sign(&root, KEY_LABEL);
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()));
        }
        Ok(Self { keys })
    }

    /// A fresh state with a random nonce, expiring `ttl` after `now` (Unix seconds).
    pub fn issue(
        kind: LoginKind,
        return_to: String,
        extra: Option<String>,
        ttl: Duration,
        now: u64,
    ) -> Result<LoginState, StateError> {
        Ok(LoginState {
            kind,
            nonce: new_nonce()?,
            return_to,
            expires_at: now.saturating_add(ttl.as_secs()),
            extra,
        })
    }

    /// The signed, URL- and cookie-safe form of `state`.
    pub fn seal(&self, purpose: Purpose, state: &LoginState) -> String {
        // Serializing a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(state).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(&self.keys[0], &mac_input(purpose, &payload));
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Verifies a sealed value (any configured secret) and its expiry.
    pub fn open(&self, purpose: Purpose, sealed: &str, now: u64) -> Result<LoginState, StateError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(StateError::Malformed);
        }
        let (payload, tag) = sealed.split_once('.').ok_or(StateError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Malformed)?;
        let input = mac_input(purpose, payload);
        if !self
            .keys
            .iter()
            .any(|k| hmac::verify(k, &input, &tag).is_ok())
        {
            return Err(StateError::BadSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Malformed)?;
        let state: LoginState = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
        if !is_nonce(&state.nonce) {
            return Err(StateError::Malformed);
        }
        if now >= state.expires_at {
            return Err(StateError::Expired);
        }
        Ok(state)
    }

    /// `Set-Cookie` for the state cookie of `state`.
    pub fn state_cookie(&self, settings: &StateCookieSettings, state: &LoginState) -> HeaderValue {
        let max_age = state.expires_at.saturating_sub(now_unix());
        let c = Cookie::build((
            settings.name(&state.nonce),
            self.seal(Purpose::Cookie, state),
        ))
        .http_only(true)
        .secure(settings.secure)
        .same_site(cookie::SameSite::Lax)
        .path(settings.path.clone())
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(0),
        ))
        .build();
        header_value(&c)
    }

    /// The valid state cookie for `nonce` in `headers`, of the expected kind.
    /// A nonce that is not ours in shape is refused before any lookup.
    pub fn read_state_cookie(
        &self,
        settings: &StateCookieSettings,
        headers: &HeaderMap,
        nonce: &str,
        kind: LoginKind,
        now: u64,
    ) -> Result<LoginState, StateError> {
        if !is_nonce(nonce) {
            return Err(StateError::Malformed);
        }
        // Only the name these settings give: with `__Host-`, a planted
        // `portcullis_state_<nonce>` is not read.
        let name = settings.name(nonce);
        let mut result = Err(StateError::Missing);
        for value in request_cookies(headers, &name) {
            result = self.open(Purpose::Cookie, &value, now).and_then(|s| {
                if s.nonce == nonce && s.kind == kind {
                    Ok(s)
                } else {
                    Err(StateError::Mismatch)
                }
            });
            if result.is_ok() {
                break;
            }
        }
        result
    }
}

impl StateCodec {
    /// `Set-Cookie` deletions for the request's state cookies beyond the
    /// newest `keep` valid ones (invalid and expired ones always go).
    pub fn prune_state_cookies(
        &self,
        settings: &StateCookieSettings,
        headers: &HeaderMap,
        keep: usize,
        now: u64,
    ) -> Vec<HeaderValue> {
        let mut valid: Vec<(u64, String)> = Vec::new();
        let mut out = Vec::new();
        let prefix = settings.name_prefix();
        for (name, value) in all_cookies(headers) {
            if !name.starts_with(&prefix) {
                continue;
            }
            match self.open(Purpose::Cookie, &value, now) {
                Ok(s) if settings.name(&s.nonce) == name => valid.push((s.expires_at, name)),
                Ok(_) | Err(_) => out.push(clear_named(settings, name)),
            }
        }
        valid.sort_by_key(|v| std::cmp::Reverse(v.0));
        out.extend(
            valid
                .into_iter()
                .skip(keep)
                .map(|(_, name)| clear_named(settings, name)),
        );
        out
    }
}

/// `Set-Cookie` deleting the state cookie of `nonce` (after use, or on failure).
pub fn clear_state_cookie(settings: &StateCookieSettings, nonce: &str) -> HeaderValue {
    clear_named(settings, settings.name(nonce))
}

fn clear_named(settings: &StateCookieSettings, name: String) -> HeaderValue {
    let c = Cookie::build((name, ""))
        .http_only(true)
        .secure(settings.secure)
        .same_site(cookie::SameSite::Lax)
        .path(settings.path.clone())
        .max_age(cookie::time::Duration::ZERO)
        .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
        .build();
    header_value(&c)
}

/// The cookie name for a nonce without `__Host-` (see
/// [`StateCookieSettings::name`]).
pub fn state_cookie_name(nonce: &str) -> String {
    format!("{STATE_COOKIE_PREFIX}{nonce}")
}

/// Whether `s` has the shape of a nonce we issue (22 base64url characters).
pub fn is_nonce(s: &str) -> bool {
    s.len() == NONCE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Seconds since the Unix epoch (wall clock: expiries travel in signed values).
pub use crate::time::unix_now as now_unix;

fn new_nonce() -> Result<String, StateError> {
    let mut buf = [0u8; NONCE_BYTES];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| StateError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

fn mac_input(purpose: Purpose, payload: &str) -> Vec<u8> {
    let label = purpose.label();
    let mut v = Vec::with_capacity(label.len() + payload.len());
    v.extend_from_slice(label);
    v.extend_from_slice(payload.as_bytes());
    v
}

/// Values of every cookie called `name` across all `Cookie` headers.
fn request_cookies(headers: &HeaderMap, name: &str) -> Vec<String> {
    all_cookies(headers)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .collect()
}

/// `(name, value)` of every cookie across all `Cookie` headers.
fn all_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

fn header_value(c: &Cookie<'_>) -> HeaderValue {
    // Names and values are base64url and fixed attributes: always valid.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;

//! `return_to` validation: where a finished login (or logout) may send the
//! browser.
//!
//! Two shapes are accepted, everything else becomes [`FALLBACK`]:
//!
//! * a same-origin relative path: `/` followed by a character other than `/`
//!   or `\`, with no control or whitespace characters and no `\` anywhere —
//!   checked on the value as given *and* on every percent-decoded layer of it,
//!   so `/%2f%2fevil.com`, `/%5cevil.com`, `/%09/evil.com` and their
//!   double-encoded twins are refused;
//! * an absolute `http`/`https` URL whose exact origin (scheme, host, port) is
//!   in `[login] allowed_redirect_origins`, without user info.
//!
//! Browsers strip tabs and newlines anywhere in a URL and read `\` as `/`, so
//! `/\t/evil.com` and `/\evil.com` are protocol-relative redirects in disguise;
//! refusing every control, whitespace and backslash character closes that
//! whole family instead of enumerating it. The module is pure: no I/O.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::{Origin, Url};

/// Where an invalid or missing `return_to` sends the browser.
pub const FALLBACK: &str = "/";

/// Longest `return_to` accepted (bytes); longer values become [`FALLBACK`].
/// Keeps state cookies and signed query values small.
pub const DEFAULT_MAX_RETURN_TO_LEN: usize = 2048;

/// How many percent-decoding layers are examined. A value still changing
/// after this many rounds is refused (nobody encodes a path five times).
const MAX_DECODE_ROUNDS: usize = 4;

/// Characters re-encoded in an accepted relative path so that it is a valid
/// `Location` header value (non-ASCII is always encoded by `utf8_percent_encode`).
const LOCATION_ENCODE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>');

/// Why an allowed origin could not be used (config validation).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedirectOriginError {
    #[error("not an absolute URL")]
    NotAbsolute,
    #[error("scheme must be http or https")]
    Scheme,
    #[error("an origin has no path, query, fragment or user info")]
    NotAnOrigin,
}

/// The validated set of absolute redirect targets.
#[derive(Debug, Clone, Default)]
pub struct RedirectPolicy {
    allowed: Vec<Origin>,
    /// A path prefix no target may lead into (lower-case, no trailing `/`).
    avoid: Option<String>,
}

impl RedirectPolicy {
    /// Builds the policy from `allowed_redirect_origins` entries such as
    /// `https://app.example.com` or `http://127.0.0.1:3000`.
    pub fn new<S: AsRef<str>>(allowed_origins: &[S]) -> Result<Self, RedirectOriginError> {
        let mut allowed = Vec::with_capacity(allowed_origins.len());
        for raw in allowed_origins {
            allowed.push(parse_origin(raw.as_ref())?);
        }
        Ok(Self {
            allowed,
            avoid: None,
        })
    }

    /// Also refuses every target whose path, once a browser has resolved
    /// its dot segments, lies under `prefix` (any letter case, on every
    /// percent-decoded layer). For a login's `return_to` with the gateway's
    /// own `auth_prefix`: a finished login must not send the browser on to
    /// a login endpoint (say, someone else's magic link), which would
    /// arrive as a same-origin navigation.
    #[must_use]
    pub fn avoiding_prefix(mut self, prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/').to_ascii_lowercase();
        self.avoid = (!p.is_empty()).then_some(p);
        self
    }

    /// The allowed origins, serialized (`scheme://host[:port]`), for CSP `form-action`.
    pub fn origins(&self) -> impl Iterator<Item = String> + '_ {
        self.allowed.iter().map(Origin::ascii_serialization)
    }

    /// The safe redirect target for a raw (query-decoded) `return_to`;
    /// [`FALLBACK`] when absent or refused.
    pub fn sanitize(&self, raw: Option<&str>) -> String {
        raw.and_then(|r| self.check(r))
            .unwrap_or_else(|| FALLBACK.to_owned())
    }

    /// `Some(target)` when `raw` is acceptable, normalised for a `Location`
    /// header; `None` otherwise.
    pub fn check(&self, raw: &str) -> Option<String> {
        if raw.is_empty() || raw.len() > DEFAULT_MAX_RETURN_TO_LEN {
            return None;
        }
        let target = if raw.starts_with('/') {
            relative_path(raw)
        } else {
            self.absolute(raw)
        }?;
        match &self.avoid {
            Some(prefix) if leads_under(&target, prefix) => None,
            _ => Some(target),
        }
    }

    fn absolute(&self, raw: &str) -> Option<String> {
        // The url crate would silently drop tabs/newlines and turn `\` into
        // `/`; refuse such input before it gets the chance.
        if !every_layer(raw, |s| !s.chars().any(is_forbidden)) {
            return None;
        }
        let url = Url::parse(raw).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        // The origin must be written canonically: `http://0x7f.1:3000` or an
        // explicit default port parse to an allowed origin, but nobody
        // legitimate writes them, so they are refused.
        let origin = url.origin();
        let canonical = origin.ascii_serialization();
        let written = raw.get(..canonical.len())?;
        let rest = &raw[canonical.len()..];
        if !written.eq_ignore_ascii_case(&canonical)
            || !(rest.is_empty() || rest.starts_with(['/', '?', '#']))
        {
            return None;
        }
        self.allowed.contains(&origin).then(|| url.to_string())
    }
}

/// A relative path passes when every decoding layer starts with a single `/`
/// and carries no forbidden character.
fn relative_path(raw: &str) -> Option<String> {
    let ok = every_layer(raw, |layer| {
        let mut chars = layer.chars();
        chars.next() == Some('/')
            && !matches!(chars.next(), Some('/' | '\\'))
            && !layer.chars().any(is_forbidden)
    });
    ok.then(|| utf8_percent_encode(raw, LOCATION_ENCODE).to_string())
}

/// Applies `pred` to `raw` and to each percent-decoded layer until decoding
/// stops changing the value. Invalid UTF-8 or too many layers fail.
fn every_layer(raw: &str, pred: impl Fn(&str) -> bool) -> bool {
    let mut current: Cow<'_, str> = Cow::Borrowed(raw);
    for _ in 0..=MAX_DECODE_ROUNDS {
        if !pred(&current) {
            return false;
        }
        let Ok(decoded) = percent_decode_str(&current).decode_utf8() else {
            return false;
        };
        if decoded == current {
            return true;
        }
        current = Cow::Owned(decoded.into_owned());
    }
    false
}

/// Whether `target` (an accepted relative path or absolute URL) leads under
/// `prefix` on any percent-decoded layer of its resolved path; anything
/// that cannot be resolved counts as leading there (fail closed).
fn leads_under(target: &str, prefix: &str) -> bool {
    let Ok(base) = Url::parse("http://gateway.invalid/") else {
        return true;
    };
    let Ok(url) = base.join(target) else {
        return true;
    };
    // Runs of `/` count as one: a front proxy that merges slashes (nginx
    // does by default) turns `/.//_auth/x` (resolved: `//_auth/x`) into
    // `/_auth/x`.
    let under = |path: &str| {
        let lower = merge_slashes(&path.to_ascii_lowercase());
        lower == prefix
            || lower
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let resolved_clear = every_layer(url.path(), |layer| {
        !under(layer)
            && base
                .join(&merge_slashes(layer))
                .is_ok_and(|u| !under(u.path()))
    });
    // nginx merges slashes before it resolves dot segments: `/x//..//_auth`
    // is its `/_auth` (the standard reading keeps `/x//_auth`).
    let merged_first_clear = every_layer(raw_path(target), |layer| {
        base.join(&merge_slashes(layer))
            .is_ok_and(|u| !under(u.path()))
    });
    !(resolved_clear && merged_first_clear)
}

/// The path of a relative target or an absolute URL as written (before any
/// dot-segment resolution): from the first `/` after the authority up to
/// the query or fragment.
fn raw_path(target: &str) -> &str {
    let rest = match target.split_once("://") {
        Some((_, after)) => after.find('/').map_or("", |i| &after[i..]),
        None => target,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// `s` with every run of `/` made one.
fn merge_slashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Control characters, any Unicode whitespace, and `\` (read as `/` by browsers).
fn is_forbidden(c: char) -> bool {
    c.is_control() || c.is_whitespace() || c == '\\'
}

fn parse_origin(raw: &str) -> Result<Origin, RedirectOriginError> {
    let url = Url::parse(raw).map_err(|_| RedirectOriginError::NotAbsolute)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RedirectOriginError::Scheme);
    }
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !raw.trim_end_matches('/').ends_with('?');
    if !bare {
        return Err(RedirectOriginError::NotAnOrigin);
    }
    Ok(url.origin())
}

#[cfg(test)]
mod tests;

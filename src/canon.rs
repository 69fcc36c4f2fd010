//! Canonical request paths (DESIGN §4.1). STUB: the policy work replaces this file.

use std::fmt;

/// Why a request path was refused (always answered with 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Invalid(&'static str),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PathError {}

/// One path segment: its decoded text and its raw `;parameters` (with the `;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub decoded: String,
    pub params: String,
}

/// A request path, decoded once, dot segments resolved, `//` collapsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    segments: Vec<Segment>,
    trailing_slash: bool,
    encoded_slash: bool,
    match_path: String,
}

impl CanonicalPath {
    /// Canonicalizes the path part of a request target (no query).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let _ = raw;
        Err(PathError::Invalid("not implemented"))
    }

    /// The path used for route matching: `/` + decoded segments joined by `/`
    /// (parameters dropped), never with a trailing slash except for `/` itself.
    pub fn match_path(&self) -> &str {
        &self.match_path
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Whether a decoded segment contains `/` (from `%2F`).
    pub fn has_encoded_slash(&self) -> bool {
        self.encoded_slash
    }

    /// The path to forward upstream: segments re-encoded, parameters kept.
    pub fn to_forward(&self) -> String {
        String::new()
    }

    /// This path with a leading `prefix` (a canonical path such as `/api`)
    /// removed at a segment boundary; `None` if it does not start with it.
    pub fn strip_prefix(&self, prefix: &str) -> Option<CanonicalPath> {
        let _ = prefix;
        None
    }
}

//! Canonical request paths.
//!
//! Every request path goes through [`CanonicalPath::parse`] exactly once. The
//! resulting value is used both for the route decision ([`CanonicalPath::match_path`])
//! and for the request sent upstream ([`CanonicalPath::to_forward`]), so no
//! spelling of a path can be judged under one meaning and served under another.
//!
//! ```text
//! raw path ─► split at literal '/' ─► split each segment at the first literal ';'
//!          ─► name: percent-decode once, refuse odd bytes   params: checked, kept raw
//!          ─► resolve '.' / '..' on decoded names, drop empty segments
//!          ─► match_path = "/" + names.join("/")     to_forward = names re-encoded + params
//! ```
//!
//! What is refused (the pipeline answers 400): backslashes in any form, double
//! encoding (`%25` followed by two hex digits, also when the digits are
//! themselves encoded), control characters raw or decoded, invalid UTF-8 after
//! decoding (overlong forms included), malformed escapes (`%zz`, `%4`, IIS
//! `%u002e`), a segment with leading or trailing whitespace or a trailing `.`
//! (Windows and IIS drop those), NTFS stream suffixes (`::$DATA`), Unicode
//! look-alikes of `/`, `\` and `.` (Windows best-fit mapping turns them into the
//! real thing), and a path that climbs above the root. An encoded slash (`%2F`)
//! is accepted here and recorded; the pipeline refuses it unless the matched
//! route has `allow_encoded_slash`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes written as-is in a forwarded segment name: RFC 3986 `pchar` minus `;`
/// (which would start parameters) and minus `%` (which would start an escape).
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Bytes of raw `;parameters` that cannot appear in a request target and are
/// therefore escaped on the way out (everything else is forwarded as given).
const PARAMS_ENCODE: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Unicode characters that some servers (Windows best-fit code pages, NFKC
/// normalisers) turn into `/`, `\` or `.`; refused so they cannot become
/// separators or dot segments behind the gateway.
const CONFUSABLES: &[char] = &[
    '\u{2024}', // ONE DOT LEADER
    '\u{2044}', // FRACTION SLASH
    '\u{2215}', // DIVISION SLASH
    '\u{2216}', // SET MINUS
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{FE52}', // SMALL FULL STOP
    '\u{FE68}', // SMALL REVERSE SOLIDUS
    '\u{FF0E}', // FULLWIDTH FULL STOP
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
];

/// Why a request path was refused (always answered with 400). The text is
/// safe to log: it never contains the path itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0}")]
    Invalid(&'static str),
}

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
    /// Canonicalization dropped or resolved something: a `.` or `..`
    /// segment (raw or encoded), an empty segment (`//`, `/;x/`).
    resolved: bool,
    /// When `resolved`: the match path of the segments before the first
    /// one that was resolved or dropped (what a reader of the raw bytes
    /// sees as the path's head).
    unresolved_head: Option<String>,
    match_path: String,
}

// === impl CanonicalPath ===

/// The match path of decoded segments (`/` for none).
fn head_path(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    segments.iter().fold(String::new(), |mut out, s| {
        out.push('/');
        out.push_str(&s.decoded);
        out
    })
}

impl CanonicalPath {
    /// Canonicalizes the path part of a request target (no query). The path
    /// must start with `/`.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(PathError::Invalid("path does not start with '/'"));
        };
        let mut segments: Vec<Segment> = Vec::new();
        let mut trailing_slash = true; // "/" itself ends in a slash
        let mut resolved = false;
        let mut unresolved_head = None;
        let count = rest.split('/').count();
        for (i, raw_segment) in rest.split('/').enumerate() {
            let (raw_name, raw_params) = match raw_segment.find(';') {
                Some(i) => raw_segment.split_at(i),
                None => (raw_segment, ""),
            };
            let name = decode(raw_name)?;
            check_params(raw_params)?;
            match name.text.as_str() {
                // An empty name (`//`, or `/;x/`) and `.` resolve to nothing;
                // their parameters go with them. Only the very last segment
                // may be empty as written (a trailing slash, or `/` itself).
                "" if i + 1 == count && raw_params.is_empty() => trailing_slash = true,
                "" | "." => {
                    unresolved_head.get_or_insert_with(|| head_path(&segments));
                    trailing_slash = true;
                    resolved = true;
                }
                ".." => {
                    unresolved_head.get_or_insert_with(|| head_path(&segments));
                    if segments.pop().is_none() {
                        return Err(PathError::Invalid("path climbs above the root"));
                    }
                    trailing_slash = true;
                    resolved = true;
                }
                _ => {
                    check_name(&name.text)?;
                    segments.push(Segment {
                        decoded: name.text,
                        params: raw_params.to_owned(),
                    });
                    trailing_slash = false;
                }
            }
        }
        let mut path = Self::from_segments(segments, trailing_slash);
        path.resolved = resolved;
        path.unresolved_head = unresolved_head;
        Ok(path)
    }

    fn from_segments(segments: Vec<Segment>, trailing_slash: bool) -> Self {
        let mut match_path = String::with_capacity(
            segments
                .iter()
                .map(|s| s.decoded.len() + 1)
                .sum::<usize>()
                .max(1),
        );
        for s in &segments {
            match_path.push('/');
            match_path.push_str(&s.decoded);
        }
        if match_path.is_empty() {
            match_path.push('/');
        }
        let encoded_slash = segments
            .iter()
            .any(|s| s.decoded.contains('/') || params_have_slash(&s.params));
        let trailing_slash = trailing_slash || segments.is_empty();
        Self {
            segments,
            trailing_slash,
            encoded_slash,
            resolved: false,
            unresolved_head: None,
            match_path,
        }
    }

    /// The path used for route matching: `/` + decoded segments joined by `/`
    /// (parameters dropped), never with a trailing slash except for `/` itself.
    /// A decoded `%2F` shows up here as a `/` (see [`Self::has_encoded_slash`]).
    pub fn match_path(&self) -> &str {
        &self.match_path
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the path (after dot-segment resolution, as in RFC 3986
    /// `remove_dot_segments`) ends in `/`. Always true for the root.
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// Whether a decoded segment (or its parameters) contains `/` (from `%2F`).
    pub fn has_encoded_slash(&self) -> bool {
        self.encoded_slash
    }

    /// The match path as a stack without path parameters reads it (Node,
    /// Python, Go, IIS): each segment's `;parameters` kept as part of its
    /// name. `None` when no segment has parameters (then it equals
    /// [`Self::match_path`]).
    pub fn match_path_with_params(&self) -> Option<String> {
        if self.segments.iter().all(|s| s.params.is_empty()) {
            return None;
        }
        let mut out = String::with_capacity(self.match_path.len() + 16);
        for s in &self.segments {
            out.push('/');
            out.push_str(&s.decoded);
            out.push_str(&s.params);
        }
        Some(out)
    }

    /// Whether canonicalization changed the path's structure: it resolved a
    /// `.` or `..` segment (raw or encoded, with or without `;parameters`)
    /// or dropped an empty one (`//`, `/;x/`). Forward-auth refuses such a
    /// path: the ingress hands the app the original bytes, which the app
    /// may resolve differently (or not at all), so a decision on the
    /// resolved copy would be a decision about another request.
    pub fn was_resolved(&self) -> bool {
        self.resolved
    }

    /// When [`Self::was_resolved`]: the match path of the segments before
    /// the first dot or empty segment, as written (`/_auth/verify` for
    /// `/_auth/verify/../../admin`). A reader that does not resolve dot
    /// segments routes on this head; the gateway refuses a path whose head
    /// or result lands on one of its own endpoints.
    pub fn unresolved_head(&self) -> Option<&str> {
        self.unresolved_head.as_deref()
    }

    /// The path to forward upstream: each name percent-encoded (anything that
    /// is not an RFC 3986 `pchar`, plus `%` and `;`), its parameters appended as
    /// given, the trailing slash kept.
    pub fn to_forward(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::with_capacity(self.match_path.len() + 16);
        for s in &self.segments {
            out.push('/');
            // The encoder's chunks pushed directly (no formatting machinery).
            out.extend(utf8_percent_encode(&s.decoded, NAME_ENCODE));
            if !s.params.is_empty() {
                out.extend(utf8_percent_encode(&s.params, PARAMS_ENCODE));
            }
        }
        if self.trailing_slash {
            out.push('/');
        }
        out
    }

    /// This path with a leading `prefix` (a canonical path such as `/api`)
    /// removed at a segment boundary; `None` if it does not start with it.
    /// `/api` strips `/api/x` to `/x` and `/api` to `/`, but not `/apix`.
    pub fn strip_prefix(&self, prefix: &str) -> Option<CanonicalPath> {
        self.strip_prefix_with(prefix, false)
    }

    /// [`Self::strip_prefix`], comparing segments case-insensitively when
    /// `case_insensitive` (for `case_insensitive_paths`).
    pub fn strip_prefix_with(&self, prefix: &str, case_insensitive: bool) -> Option<CanonicalPath> {
        let prefix = prefix.strip_prefix('/')?;
        let mut n = 0;
        for want in prefix.split('/').filter(|s| !s.is_empty()) {
            let have = self.segments.get(n)?;
            let same = if case_insensitive {
                fold_case(&have.decoded) == fold_case(want)
            } else {
                have.decoded == want
            };
            if !same {
                return None;
            }
            n += 1;
        }
        let rest = self.segments[n..].to_vec();
        Some(Self::from_segments(rest, self.trailing_slash))
    }
}

impl std::fmt::Display for CanonicalPath {
    /// The forwarded spelling (safe to log: it is what the upstream sees).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_forward())
    }
}

/// Whether a raw path percent-encodes a character that never needs it (an
/// RFC 3986 unreserved one: letters, digits, `-._~`). Stacks disagree on
/// whether they decode those before routing (Express matches `/publi%63`
/// raw and does not see `/public`; Flask decodes it): forward-auth, which
/// cannot rewrite the path the app gets, refuses such a path instead of
/// guessing.
pub fn encodes_unreserved(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!((hex(w[1]), hex(w[2])), (Some(hi), Some(lo))
                if { let c = hi << 4 | lo; c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') })
    })
}

/// Case folding used by `case_insensitive_paths`: upper- then lower-case each
/// character, so that `ſ`, `ı` and the Kelvin sign meet their ASCII letters the
/// way .NET/IIS ordinal-ignore-case comparison would.
pub fn fold_case(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(s.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(s)
        }
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .flat_map(char::to_uppercase)
                .flat_map(char::to_lowercase)
                .collect(),
        )
    }
}

/// A decoded segment name.
struct Decoded {
    text: String,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Percent-decodes `raw` once, refusing malformed escapes, backslashes,
/// control bytes, double encoding and invalid UTF-8.
fn decode(raw: &str) -> Result<Decoded, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::Invalid("malformed percent escape"));
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    check_decoded_bytes(&out)?;
    let text =
        String::from_utf8(out).map_err(|_| PathError::Invalid("invalid UTF-8 after decoding"))?;
    check_decoded_text(&text)?;
    Ok(Decoded { text })
}

/// Refusals that apply to decoded bytes (and so to raw bytes too).
fn check_decoded_bytes(bytes: &[u8]) -> Result<(), PathError> {
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\\' {
            return Err(PathError::Invalid("backslash in path"));
        }
        if is_control(b) {
            return Err(PathError::Invalid("control character in path"));
        }
        // A decoded '%' followed by two hex digits is a second layer of
        // encoding (`%2541`, `%25%34%31`): a server that decodes twice would
        // see a different path.
        if b == b'%'
            && bytes.get(i + 1).copied().and_then(hex).is_some()
            && bytes.get(i + 2).copied().and_then(hex).is_some()
        {
            return Err(PathError::Invalid("double percent-encoding in path"));
        }
    }
    Ok(())
}

/// Refusals on decoded text: Unicode controls and separator look-alikes.
fn check_decoded_text(text: &str) -> Result<(), PathError> {
    if text.is_ascii() {
        return Ok(());
    }
    for c in text.chars() {
        if c.is_control() {
            return Err(PathError::Invalid("control character in path"));
        }
        if CONFUSABLES.contains(&c) {
            return Err(PathError::Invalid("look-alike of '/', '\\' or '.' in path"));
        }
    }
    Ok(())
}

/// Checks a resolved (non-dot, non-empty) name. A name holding an encoded
/// `/` is checked piece by piece, so that a server which decodes `%2F` cannot
/// find dot segments or empty segments in it.
fn check_name(name: &str) -> Result<(), PathError> {
    // An encoded ';' (`/admin%3Bx/y`): Tomcat keeps it in the name, Spring
    // decodes first and then drops `;x` as a parameter (serving `/admin/y`).
    // There is no reading every upstream shares, so it is refused.
    if name.contains(';') {
        return Err(PathError::Invalid("encoded ';' in path"));
    }
    if is_ntfs_stream(name) {
        return Err(PathError::Invalid("NTFS stream suffix in path"));
    }
    if name.split('/').any(is_short_name) {
        return Err(PathError::Invalid("Windows 8.3 short name in path"));
    }
    let mut pieces = name.split('/');
    let several = name.contains('/');
    pieces.try_for_each(|piece| {
        if several && (piece.is_empty() || piece == "." || piece == "..") {
            return Err(PathError::Invalid(
                "empty or dot segment behind an encoded slash",
            ));
        }
        if piece.starts_with(char::is_whitespace) || piece.ends_with(char::is_whitespace) {
            return Err(PathError::Invalid(
                "segment with leading or trailing whitespace",
            ));
        }
        if piece.ends_with('.') {
            return Err(PathError::Invalid("segment with a trailing dot"));
        }
        Ok(())
    })
}

/// Checks raw `;parameters` with the same refusals as names.
fn check_params(raw: &str) -> Result<(), PathError> {
    if raw.is_empty() {
        return Ok(());
    }
    let decoded = decode(raw)?;
    if decoded.text.chars().any(char::is_whitespace) {
        return Err(PathError::Invalid("whitespace in path parameters"));
    }
    // A server without path parameters (IIS, Node) sees them as part of the
    // segment name, so they get the name's Windows-specific refusals too.
    if decoded.text.len() > 1 && decoded.text.ends_with('.') {
        return Err(PathError::Invalid("path parameters with a trailing dot"));
    }
    if is_ntfs_stream(&decoded.text) {
        return Err(PathError::Invalid("NTFS stream suffix in path"));
    }
    Ok(())
}

/// An NTFS alternate data stream: `name:stream:$TYPE`, `name::$DATA`,
/// `dir:$i30:$INDEX_ALLOCATION` (which opens the directory itself), and the
/// degenerate `name::` / `name:` forms. Windows upstreams serve
/// `/admin:$i30:$INDEX_ALLOCATION/x` as `/admin/x`. A colon with text on
/// both sides (`urn:x:y`, `books/1:publish`) stays allowed.
fn is_ntfs_stream(text: &str) -> bool {
    text.contains(":$") || text.contains("::") || text.split('/').any(|s| s.ends_with(':'))
}

/// A Windows 8.3 short name (`ADMINI~1`, `ADMINI~1.ASP`, `AD3F~12`): one to
/// six characters, `~`, digits, and an optional extension of up to three
/// characters. NTFS resolves it to the long name (`/ADMINI~1/` is
/// `/administrator/`), a route glob never sees the long name.
fn is_short_name(segment: &str) -> bool {
    let (base, ext) = match segment.rsplit_once('.') {
        Some((b, e)) if b.contains('~') => (b, Some(e)),
        _ => (segment, None),
    };
    let Some((stem, digits)) = base.rsplit_once('~') else {
        return false;
    };
    let stem_len = stem.chars().count();
    (1..=6).contains(&stem_len)
        && !stem.contains(['~', '.'])
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ext.is_none_or(|e| e.chars().count() <= 3 && !e.is_empty())
}

fn params_have_slash(raw: &str) -> bool {
    raw.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'F' || w[2] == b'f'))
}

#[cfg(test)]
mod tests;

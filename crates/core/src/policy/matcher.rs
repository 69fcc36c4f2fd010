//! Compiled path and host matchers (built once at load, run on every request).
//!
//! A glob is a list of segment matchers run against the canonical match path
//! (`/a/b/c`) by byte offset, so matching allocates nothing except the
//! `{name}` captures it returns. `**` is matched with the classic
//! backtrack-to-the-last-star algorithm, which is linear in practice and
//! O(pattern × path) in the worst case (no exponential blow-up on hostile
//! paths).

use std::borrow::Cow;

use regex::Regex;

use crate::canon::fold_case;

/// One segment of a compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// Exactly this segment (folded when paths are case-insensitive).
    Literal(String),
    /// `*`: any one segment.
    One,
    /// `{name}`: any one segment, captured.
    Capture(String),
    /// `**`: zero or more segments.
    AnyDepth,
}

/// How a route matches the canonical path.
#[derive(Debug)]
pub(crate) enum PathMatcher {
    Glob(Vec<Seg>),
    /// Anchored regex; `named` when it has named groups (returned as captures).
    Regex {
        re: Regex,
        named: bool,
    },
}

/// A compiled `host` pattern (lower-case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: one or more labels before it.
    Suffix(String),
}

// === impl PathMatcher ===

impl PathMatcher {
    /// Whether `path` (a canonical match path) matches; pushes captures onto
    /// `caps` (the caller truncates them on a miss).
    pub(crate) fn matches(&self, path: &str, ci: bool, caps: &mut Vec<(String, String)>) -> bool {
        match self {
            Self::Glob(segs) => glob_match(segs, path, ci, caps),
            Self::Regex { re, named } => {
                let hay: Cow<'_, str> = if ci && !path.is_ascii() {
                    fold_case(path)
                } else {
                    Cow::Borrowed(path)
                };
                if !named {
                    return re.is_match(&hay);
                }
                let Some(c) = re.captures(&hay) else {
                    return false;
                };
                for name in re.capture_names().flatten() {
                    if let Some(m) = c.name(name) {
                        caps.push((name.to_owned(), m.as_str().to_owned()));
                    }
                }
                true
            }
        }
    }
}

/// The next segment of `rest` (the match path without its leading `/`) at
/// byte offset `pos`, and the offset after it; `end` marks "no more".
fn next_seg(rest: &str, pos: usize, end: usize) -> Option<(&str, usize)> {
    if pos >= end {
        return None;
    }
    let tail = &rest[pos..];
    Some(match tail.find('/') {
        Some(i) => (&tail[..i], pos + i + 1),
        None => (tail, end),
    })
}

fn seg_eq(literal: &str, seg: &str, ci: bool) -> bool {
    if !ci {
        literal == seg
    } else if seg.is_ascii() {
        seg.eq_ignore_ascii_case(literal)
    } else {
        fold_case(seg) == literal
    }
}

fn glob_match(pat: &[Seg], path: &str, ci: bool, caps: &mut Vec<(String, String)>) -> bool {
    let rest = path.strip_prefix('/').unwrap_or(path);
    // Offsets run over `rest`; `end` is one past the last segment (0 for "/").
    let end = if rest.is_empty() { 0 } else { rest.len() + 1 };
    let (mut p, mut s) = (0usize, 0usize);
    // (pattern index after the last `**`, path offset it resumes at, captures then)
    let mut star: Option<(usize, usize, usize)> = None;
    loop {
        let Some((seg, s_next)) = next_seg(rest, s, end) else {
            return pat[p..].iter().all(|x| *x == Seg::AnyDepth);
        };
        let stepped = match pat.get(p) {
            Some(Seg::AnyDepth) => {
                star = Some((p + 1, s, caps.len()));
                p += 1;
                continue;
            }
            Some(Seg::One) => true,
            Some(Seg::Capture(name)) => {
                caps.push((name.clone(), seg.to_owned()));
                true
            }
            Some(Seg::Literal(l)) => seg_eq(l, seg, ci),
            None => false,
        };
        if stepped {
            p += 1;
            s = s_next;
            continue;
        }
        // Mismatch: let the last `**` swallow one more segment and retry.
        let Some((sp, ss, cl)) = star else {
            return false;
        };
        let Some((_, ss_next)) = next_seg(rest, ss, end) else {
            return false;
        };
        star = Some((sp, ss_next, cl));
        caps.truncate(cl);
        p = sp;
        s = ss_next;
    }
}

// === impl HostPattern ===

impl HostPattern {
    /// `host` as the client sent it; a port and one trailing dot are ignored,
    /// letters compared without case.
    pub(crate) fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        match self {
            Self::Exact(e) => host.eq_ignore_ascii_case(e),
            Self::Suffix(sfx) => {
                let (h, s) = (host.as_bytes(), sfx.as_bytes());
                h.len() > s.len()
                    && h[h.len() - s.len()..].eq_ignore_ascii_case(s)
                    && h[h.len() - s.len() - 1] != b'.'
            }
        }
    }

    /// Whether every host this pattern matches is also matched by `self`.
    pub(crate) fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(_), Self::Suffix(_)) => false,
            (Self::Suffix(_), Self::Exact(b)) => self.matches(b),
            (Self::Suffix(a), Self::Suffix(b)) => b == a || b.ends_with(a.as_str()),
        }
    }
}

/// Strips a `:port` (outside IPv6 brackets), the brackets themselves and
/// one trailing dot.
fn normalize_host(host: &str) -> &str {
    let host = if let Some(inner) = host.strip_prefix('[') {
        match inner.find(']') {
            Some(i) => &inner[..i],
            None => host,
        }
    } else if host.bytes().filter(|b| *b == b':').count() > 1 {
        host // a bare IPv6 address (already without port)
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Sufficient condition for "every path `b` matches, `a` matches too"
/// (conservative: `false` means "not sure", never a false lint).
pub(crate) fn glob_covers(a: &[Seg], b: &[Seg]) -> bool {
    let mut memo = vec![None; (a.len() + 1) * (b.len() + 1)];
    covers_at(a, b, 0, 0, &mut memo)
}

fn covers_at(a: &[Seg], b: &[Seg], i: usize, j: usize, memo: &mut [Option<bool>]) -> bool {
    let key = i * (b.len() + 1) + j;
    if let Some(v) = memo[key] {
        return v;
    }
    let a_star = a.get(i) == Some(&Seg::AnyDepth);
    let v = match b.get(j) {
        None => a[i..].iter().all(|x| *x == Seg::AnyDepth),
        Some(Seg::AnyDepth) => {
            a_star && (covers_at(a, b, i, j + 1, memo) || covers_at(a, b, i + 1, j, memo))
        }
        Some(bs) => {
            let step = match (a.get(i), bs) {
                (Some(Seg::One | Seg::Capture(_)), _) => true,
                (Some(Seg::Literal(x)), Seg::Literal(y)) => x == y,
                _ => false,
            };
            (step && covers_at(a, b, i + 1, j + 1, memo))
                || (a_star && (covers_at(a, b, i + 1, j, memo) || covers_at(a, b, i, j + 1, memo)))
        }
    };
    memo[key] = Some(v);
    v
}

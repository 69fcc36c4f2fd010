//! `[[routes]]` + `[policy]` → compiled [`Route`]s, collecting every problem.
//!
//! Each check pushes a [`ConfigIssue`] keyed `routes[i].field` (0-based, the
//! same index `describe()` prints) that names the value, what is wrong and
//! the fix; compilation goes on so that one `check-config` run shows all of
//! them.

use http::{HeaderName, Method};
use regex::RegexBuilder;

use crate::canon::{CanonicalPath, fold_case};
use crate::issue::ConfigIssue;

use super::matcher::{HostPattern, PathMatcher, Seg};
use super::rules::{ClaimRule, Rules, Scalar, TenantSource};
use super::{Access, CompileContext, DefaultPolicy, Route, RouteToml, Unauthenticated};

/// Access of a route that does not set `access`.
pub const DEFAULT_ACCESS: Access = Access::Authenticated;
/// What a request matching no route gets when `[policy] default` is unset.
pub const DEFAULT_POLICY: DefaultPolicy = DefaultPolicy::Deny;
/// Upstream of a route that does not set `upstream`.
pub const DEFAULT_UPSTREAM: &str = "default";
/// Upper bound on a compiled `path_regex` (bytes of automaton), so a config
/// cannot make the gateway build a huge matcher.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The methods a route may list in `methods` as written (RFC 9110 and PATCH,
/// RFC 5789). Anything else must be spelled `"EXT:NAME"`, so a typo such as
/// `"GTE"` is an error instead of a route that answers 405 forever.
pub const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
/// Prefix of an extension method in `methods`, e.g. `"EXT:PROPFIND"`.
pub const EXTENSION_METHOD_PREFIX: &str = "EXT:";

/// Collects issues for one route.
struct Ctx<'a> {
    index: usize,
    issues: &'a mut Vec<ConfigIssue>,
}

impl Ctx<'_> {
    fn key(&self, field: &str) -> String {
        format!("routes[{}].{field}", self.index)
    }

    fn push(
        &mut self,
        field: &str,
        value: impl std::fmt::Display,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let issue = ConfigIssue::new(self.key(field), problem, fix).with_value(value);
        self.issues.push(issue);
    }
}

pub(super) fn parse_default(value: Option<&str>, issues: &mut Vec<ConfigIssue>) -> DefaultPolicy {
    match value {
        None => DEFAULT_POLICY,
        Some("deny") => DefaultPolicy::Deny,
        Some("authenticated") => DefaultPolicy::Authenticated,
        Some(other) => {
            issues.push(
                ConfigIssue::new(
                    "policy.default",
                    "unknown default policy",
                    "write \"deny\" (403 for requests matching no route) or \"authenticated\" (any valid session)",
                )
                .with_value(format!("{other:?}")),
            );
            DEFAULT_POLICY
        }
    }
}

pub(super) fn compile_route(
    index: usize,
    raw: &RouteToml,
    cx: &CompileContext<'_>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Route> {
    let before = issues.len();
    let mut c = Ctx { index, issues };
    let ci = cx.case_insensitive_paths;

    let (pattern, matcher) = match (&raw.path, &raw.path_regex) {
        (Some(p), None) => (
            p.clone(),
            compile_glob(&mut c, p, ci).map(PathMatcher::Glob),
        ),
        (None, Some(r)) => (r.clone(), compile_regex(&mut c, r, ci)),
        (Some(p), Some(_)) => {
            c.push(
                "path_regex",
                "(also path)",
                "a route sets both path and path_regex",
                "keep exactly one of them",
            );
            (p.clone(), None)
        }
        (None, None) => {
            c.issues.push(ConfigIssue::new(
                c.key("path"),
                "a route needs a path",
                "add path = \"/some/glob/**\" or path_regex = \"...\"",
            ));
            (String::new(), None)
        }
    };
    let captures = matcher.as_ref().map(capture_names).unwrap_or_default();
    // With case-sensitive matching, the same pattern compiled case-insensitively
    // tells which route a letter-case variant of a path belongs to (see
    // `Policy::resolve`). Compiled only when the first compile succeeded, so
    // its problems are never reported twice.
    let folded = match (&matcher, &raw.path, &raw.path_regex) {
        (Some(_), _, _) if ci => None,
        (Some(_), Some(p), None) => {
            let mut quiet = Vec::new();
            compile_glob(
                &mut Ctx {
                    index,
                    issues: &mut quiet,
                },
                p,
                true,
            )
            .map(PathMatcher::Glob)
        }
        (Some(_), None, Some(r)) => {
            let mut quiet = Vec::new();
            compile_regex(
                &mut Ctx {
                    index,
                    issues: &mut quiet,
                },
                r,
                true,
            )
        }
        _ => None,
    };

    let name = match &raw.name {
        Some(n) if n.trim().is_empty() || n.chars().any(char::is_control) => {
            c.push(
                "name",
                format!("{n:?}"),
                "empty or unprintable route name",
                "use a short label such as \"admin\"",
            );
            pattern.clone()
        }
        Some(n) => n.clone(),
        None => pattern.clone(),
    };
    let methods = raw
        .methods
        .as_ref()
        .and_then(|m| compile_methods(&mut c, m));
    let host = raw.host.as_ref().and_then(|h| compile_host(&mut c, h));
    let access = match raw.access.as_deref() {
        None => DEFAULT_ACCESS,
        Some("public") => Access::Public,
        Some("optional") => Access::Optional,
        Some("authenticated") => Access::Authenticated,
        Some("deny") => Access::Deny,
        Some(other) => {
            c.push(
                "access",
                format!("{other:?}"),
                "unknown access",
                "write one of \"public\", \"optional\", \"authenticated\", \"deny\"",
            );
            DEFAULT_ACCESS
        }
    };
    let unauthenticated = match raw.unauthenticated.as_deref() {
        None => Unauthenticated::Auto,
        Some("redirect") => Unauthenticated::Redirect,
        Some("401") => Unauthenticated::Status401,
        Some(other) => {
            c.push(
                "unauthenticated",
                format!("{other:?}"),
                "unknown answer for unauthenticated requests",
                "write \"redirect\" or \"401\", or remove the key (redirect browser navigations, 401 otherwise)",
            );
            Unauthenticated::Auto
        }
    };
    let rules = compile_rules(&mut c, raw, &captures);
    if !rules.is_empty() {
        match access {
            Access::Authenticated => {}
            Access::Public | Access::Optional | Access::Deny => {
                let a = raw.access.as_deref().unwrap_or_default();
                c.push(
                    "access",
                    format!("{a:?}"),
                    format!(
                        "the route has rules ({}) that a {a} route never checks",
                        rule_keys(raw).join(", ")
                    ),
                    "set access = \"authenticated\" to enforce them, or remove the rules",
                );
            }
        }
    }
    let upstream = compile_upstream(&mut c, raw.upstream.as_deref(), cx.upstreams);
    let strip_prefix = raw
        .strip_prefix
        .as_ref()
        .and_then(|p| compile_strip_prefix(&mut c, p, matcher.as_ref(), ci));

    if c.issues.len() > before {
        return None;
    }
    Some(Route {
        index,
        name,
        access,
        unauthenticated,
        allow_preflight: raw.allow_preflight,
        upstream,
        strip_prefix,
        allow_encoded_slash: raw.allow_encoded_slash,
        pattern,
        is_regex: raw.path_regex.is_some() && raw.path.is_none(),
        matcher: matcher.expect("no issues means the path compiled"),
        folded,
        host,
        host_text: raw.host.clone(),
        methods,
        rules,
        case_insensitive: ci,
    })
}

/// Names of the rule keys set on a route (for messages).
fn rule_keys(raw: &RouteToml) -> Vec<&'static str> {
    let lists: [(&'static str, bool); 8] = [
        ("roles", raw.roles.is_some()),
        ("any_roles", raw.any_roles.is_some()),
        ("permissions", raw.permissions.is_some()),
        ("any_permissions", raw.any_permissions.is_some()),
        ("tenant_roles", raw.tenant_roles.is_some()),
        ("any_tenant_roles", raw.any_tenant_roles.is_some()),
        ("tenant_permissions", raw.tenant_permissions.is_some()),
        (
            "any_tenant_permissions",
            raw.any_tenant_permissions.is_some(),
        ),
    ];
    let mut keys: Vec<&'static str> = lists
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
    if raw.tenant.is_some() {
        keys.push("tenant");
    }
    if raw.claims.is_some() {
        keys.push("claims");
    }
    if raw.require_mfa {
        keys.push("require_mfa");
    }
    keys
}

fn capture_names(m: &PathMatcher) -> Vec<String> {
    match m {
        PathMatcher::Glob(segs) => segs
            .iter()
            .filter_map(|s| match s {
                Seg::Capture(n) => Some(n.clone()),
                Seg::Literal(_) | Seg::One | Seg::AnyDepth => None,
            })
            .collect(),
        PathMatcher::Regex { re, .. } => re.capture_names().flatten().map(str::to_owned).collect(),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn compile_glob(c: &mut Ctx<'_>, glob: &str, ci: bool) -> Option<Vec<Seg>> {
    let v = format!("{glob:?}");
    let Some(rest) = glob.strip_prefix('/') else {
        c.push(
            "path",
            v,
            "a path glob must start with '/'",
            format!("write \"/{glob}\""),
        );
        return None;
    };
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let mut segs = Vec::new();
    let mut seen_any_depth = false;
    let mut ok = true;
    let mut names: Vec<&str> = Vec::new();
    for (n, part) in rest.split('/').enumerate() {
        let problem: Option<(String, String)> = if part.is_empty() {
            if n == rest.split('/').count() - 1 {
                Some((
                    "a trailing '/' in a glob (the route matches with or without it anyway)".into(),
                    format!("write \"/{}\"", rest.trim_end_matches('/')),
                ))
            } else {
                Some((
                    "an empty segment ('//') in a glob".into(),
                    "remove the extra '/'".into(),
                ))
            }
        } else if part == "**" {
            seen_any_depth = true;
            segs.push(Seg::AnyDepth);
            None
        } else if part == "*" {
            segs.push(Seg::One);
            None
        } else if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if !is_ident(inner) {
                Some((
                    format!("capture {{{inner}}} is not a valid name"),
                    "name captures with letters, digits and '_', e.g. {tenant}".into(),
                ))
            } else if names.contains(&inner) {
                Some((
                    format!("capture {{{inner}}} appears twice"),
                    "give each capture its own name".into(),
                ))
            } else if seen_any_depth {
                Some((
                    format!(
                        "capture {{{inner}}} after '**' is ambiguous (which segment would it be?)"
                    ),
                    "put captures before any '**', or use path_regex with a named group".into(),
                ))
            } else {
                names.push(inner);
                segs.push(Seg::Capture(inner.to_owned()));
                None
            }
        } else if part.contains(['*', '{', '}']) {
            Some((
                format!("segment {part:?} mixes a wildcard or capture with text"),
                "'*', '**' and '{name}' must be whole segments; use path_regex for partial matches"
                    .into(),
            ))
        } else if part == "." || part == ".." {
            Some((
                "a dot segment in a glob never matches a canonical path".into(),
                "write the resolved path".into(),
            ))
        } else if part.contains(';') {
            Some((
                "';' in a glob: parameters are dropped before matching".into(),
                "remove the ';...' part".into(),
            ))
        } else if part.contains(['%', '\\']) {
            Some((
                "globs match the decoded path; '%' escapes and '\\' never match".into(),
                "write the decoded characters (e.g. ' ' instead of %20)".into(),
            ))
        } else if part.chars().any(char::is_control)
            || part.starts_with(char::is_whitespace)
            || part.ends_with(char::is_whitespace)
            || part.ends_with('.')
        {
            Some((
                format!("segment {part:?} can never match: such segments are refused with 400"),
                "remove control characters, edge whitespace and trailing dots".into(),
            ))
        } else {
            let lit = if ci {
                fold_case(part).into_owned()
            } else {
                part.to_owned()
            };
            segs.push(Seg::Literal(lit));
            None
        };
        if let Some((problem, fix)) = problem {
            c.push("path", &v, problem, fix);
            ok = false;
        }
    }
    ok.then_some(segs)
}

fn compile_regex(c: &mut Ctx<'_>, re: &str, ci: bool) -> Option<PathMatcher> {
    let anchored = format!("^(?:{re})$");
    match RegexBuilder::new(&anchored)
        .case_insensitive(ci)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(compiled) => {
            let named = compiled.capture_names().flatten().next().is_some();
            Some(PathMatcher::Regex {
                re: compiled,
                named,
            })
        }
        Err(e) => {
            // The regex error spans several lines; keep the first for the message.
            let first = e
                .to_string()
                .lines()
                .rfind(|l| l.starts_with("error"))
                .unwrap_or("invalid")
                .to_owned();
            c.push(
                "path_regex",
                format!("{re:?}"),
                format!("not a valid regular expression ({first})"),
                "fix the syntax (Rust regex, implicitly anchored, matched on the decoded canonical path)",
            );
            None
        }
    }
}

fn compile_methods(c: &mut Ctx<'_>, methods: &[String]) -> Option<Vec<Method>> {
    if methods.is_empty() {
        c.push(
            "methods",
            "[]",
            "an empty method list allows nothing",
            "list methods, or remove the key to allow all",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for m in methods {
        match method_entry(m) {
            Ok(method) => out.push(method),
            Err((what, fix)) => {
                c.push("methods", format!("{m:?}"), what, fix);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// One `methods` entry: a standard method as written, or `EXT:NAME` for an
/// extension method (a valid token that is not a standard method). The error
/// is `(what is wrong, the fix)`.
fn method_entry(m: &str) -> Result<Method, (String, String)> {
    let standard_list = || STANDARD_METHODS.join(", ");
    if let Some(name) = m.strip_prefix(EXTENSION_METHOD_PREFIX) {
        if STANDARD_METHODS.contains(&name.to_ascii_uppercase().as_str()) {
            return Err((
                format!("{name} is a standard method, not an extension"),
                format!("write \"{}\"", name.to_ascii_uppercase()),
            ));
        }
        return Method::from_bytes(name.as_bytes())
            .ok()
            .filter(|_| !name.is_empty())
            .ok_or_else(|| {
                (
                    "not an HTTP method token after EXT:".to_owned(),
                    "write an extension method as \"EXT:NAME\", NAME in letters, digits or !#$%&'*+-.^_`|~, e.g. \"EXT:PROPFIND\"".to_owned(),
                )
            });
    }
    let standard = match m {
        "GET" => Some(Method::GET),
        "HEAD" => Some(Method::HEAD),
        "POST" => Some(Method::POST),
        "PUT" => Some(Method::PUT),
        "PATCH" => Some(Method::PATCH),
        "DELETE" => Some(Method::DELETE),
        "OPTIONS" => Some(Method::OPTIONS),
        "TRACE" => Some(Method::TRACE),
        "CONNECT" => Some(Method::CONNECT),
        _ => None,
    };
    if let Some(method) = standard {
        return Ok(method);
    }
    if STANDARD_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
        return Err((
            "methods are case-sensitive".to_owned(),
            format!("write \"{}\"", m.to_ascii_uppercase()),
        ));
    }
    let what = if Method::from_bytes(m.as_bytes()).is_ok() {
        "not a standard HTTP method (a typo would make the route answer 405 forever)"
    } else {
        "not an HTTP method token"
    };
    Err((
        what.to_owned(),
        format!(
            "write one of {}; an extension method such as WebDAV's PROPFIND is written \"EXT:PROPFIND\"",
            standard_list()
        ),
    ))
}

fn compile_host(c: &mut Ctx<'_>, host: &str) -> Option<HostPattern> {
    let v = format!("{host:?}");
    let lower = host.to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if name.contains(':') && !name.starts_with('[') {
        c.push(
            "host",
            v,
            "host patterns match without the port",
            "remove the ':port' part",
        );
        return None;
    }
    let ipv6 = !wild
        && name.len() > 2
        && name.starts_with('[')
        && name.ends_with(']')
        && name[1..name.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    let valid_labels = name.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !(ipv6 || valid_labels) {
        c.push(
            "host",
            v,
            "not a host name or '*.domain' pattern",
            "write an exact host (\"app.example.com\") or \"*.example.com\" ('*' only as the whole first label)",
        );
        return None;
    }
    Some(if wild {
        HostPattern::Suffix(format!(".{name}"))
    } else if ipv6 {
        HostPattern::Exact(name[1..name.len() - 1].to_owned())
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

/// One list of names (roles, permissions...): `None` when absent.
fn name_list(c: &mut Ctx<'_>, field: &str, list: Option<&Vec<String>>) -> Vec<String> {
    let Some(list) = list else { return Vec::new() };
    if list.is_empty() {
        let fix = if field.starts_with("any_") {
            "list at least one name (an empty any-of list can never be satisfied), or remove the key"
        } else {
            "list at least one name (an empty list requires nothing), or remove the key"
        };
        c.push(field, "[]", "empty list", fix);
        return Vec::new();
    }
    for n in list {
        if n.is_empty() || n.trim() != n || n.chars().any(char::is_control) {
            c.push(
                field,
                format!("{n:?}"),
                "empty name or one with edge whitespace",
                "write the name exactly as in Descope",
            );
        }
    }
    list.clone()
}

fn compile_rules(c: &mut Ctx<'_>, raw: &RouteToml, captures: &[String]) -> Rules {
    let mut r = Rules {
        roles: name_list(c, "roles", raw.roles.as_ref()),
        any_roles: name_list(c, "any_roles", raw.any_roles.as_ref()),
        permissions: name_list(c, "permissions", raw.permissions.as_ref()),
        any_permissions: name_list(c, "any_permissions", raw.any_permissions.as_ref()),
        tenant: None,
        tenant_roles: name_list(c, "tenant_roles", raw.tenant_roles.as_ref()),
        any_tenant_roles: name_list(c, "any_tenant_roles", raw.any_tenant_roles.as_ref()),
        tenant_permissions: name_list(c, "tenant_permissions", raw.tenant_permissions.as_ref()),
        any_tenant_permissions: name_list(
            c,
            "any_tenant_permissions",
            raw.any_tenant_permissions.as_ref(),
        ),
        claims: Vec::new(),
        require_mfa: raw.require_mfa,
    };
    match &raw.tenant {
        Some(t) => r.tenant = compile_tenant(c, t, captures),
        None => {
            let tenant_keys = [
                ("tenant_roles", raw.tenant_roles.is_some()),
                ("any_tenant_roles", raw.any_tenant_roles.is_some()),
                ("tenant_permissions", raw.tenant_permissions.is_some()),
                (
                    "any_tenant_permissions",
                    raw.any_tenant_permissions.is_some(),
                ),
            ];
            for (key, set) in tenant_keys {
                if set {
                    c.push(
                        key,
                        "(set)",
                        "a tenant rule without `tenant`: which tenant would it check?",
                        "add tenant = \"{capture}\", \"header:X-Tenant-Id\", \"dct\" or a tenant id",
                    );
                }
            }
        }
    }
    if let Some(table) = &raw.claims {
        if table.is_empty() {
            c.push(
                "claims",
                "{}",
                "empty claims table",
                "add claim = value pairs, or remove the key",
            );
        }
        for (name, value) in table {
            let field = format!("claims.{name}");
            if let Some(rule) = compile_claim(c, &field, value) {
                r.claims.push((name.clone(), rule));
            }
        }
    }
    r
}

fn compile_tenant(c: &mut Ctx<'_>, t: &str, captures: &[String]) -> Option<TenantSource> {
    let v = format!("{t:?}");
    if let Some(inner) = t.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        if captures.iter().any(|n| n == inner) {
            return Some(TenantSource::Capture(inner.to_owned()));
        }
        let have = if captures.is_empty() {
            "the path captures nothing".to_owned()
        } else {
            format!(
                "the path captures {}",
                captures
                    .iter()
                    .map(|n| format!("{{{n}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        c.push(
            "tenant",
            v,
            format!("{{{inner}}} is not captured by the path ({have})"),
            format!("add a {{{inner}}} segment to path (e.g. \"/t/{{{inner}}}/**\"), or use a captured name"),
        );
        return None;
    }
    // `get` keeps this panic-free on non-ASCII input.
    if let (Some(scheme), Some(rest)) = (t.get(..7), t.get(7..))
        && scheme.eq_ignore_ascii_case("header:")
    {
        let name = rest.trim();
        if !t.starts_with("header:") {
            c.push(
                "tenant",
                v,
                "the header source is spelled in lower case",
                format!("write \"header:{name}\""),
            );
            return None;
        }
        return match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if !name.is_empty() => Some(TenantSource::Header(h)),
            _ => {
                c.push(
                    "tenant",
                    v,
                    "not a valid header name",
                    "write e.g. \"header:X-Tenant-Id\"",
                );
                None
            }
        };
    }
    if t == "dct" {
        return Some(TenantSource::CurrentTenant);
    }
    if t.is_empty()
        || t.contains(['{', '}', ':'])
        || t.chars().any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.push(
            "tenant",
            v,
            "neither a capture, a header source, \"dct\" nor a plain tenant id",
            "write \"{capture}\", \"header:X-Tenant-Id\", \"dct\" or a tenant id such as \"T2abc\"",
        );
        return None;
    }
    Some(TenantSource::Literal(t.to_owned()))
}

fn compile_scalar(c: &mut Ctx<'_>, field: &str, v: &toml::Value) -> Option<Scalar> {
    match v {
        toml::Value::String(s) => Some(Scalar::Str(s.clone())),
        toml::Value::Boolean(b) => Some(Scalar::Bool(*b)),
        toml::Value::Integer(i) => Some(Scalar::Int(*i)),
        toml::Value::Float(f) if f.is_finite() => Some(Scalar::Float(*f)),
        other => {
            c.push(
                field,
                other,
                "a claim value must be a string, boolean, integer or finite number",
                "write a scalar, or a list of scalars for \"one of\"",
            );
            None
        }
    }
}

fn compile_claim(c: &mut Ctx<'_>, field: &str, v: &toml::Value) -> Option<ClaimRule> {
    match v {
        toml::Value::Array(items) => {
            if items.is_empty() {
                c.push(
                    field,
                    "[]",
                    "an empty list can never match",
                    "list the accepted values, or remove the claim",
                );
                return None;
            }
            let scalars: Vec<Scalar> = items
                .iter()
                .filter_map(|i| compile_scalar(c, field, i))
                .collect();
            (scalars.len() == items.len()).then_some(ClaimRule::OneOf(scalars))
        }
        scalar => compile_scalar(c, field, scalar).map(ClaimRule::Equals),
    }
}

fn compile_upstream(c: &mut Ctx<'_>, upstream: Option<&str>, configured: &[String]) -> String {
    let name = upstream.unwrap_or(DEFAULT_UPSTREAM);
    // With no upstreams at all (forward-auth only), an implicit default is fine.
    let implicit_ok = upstream.is_none() && configured.is_empty();
    if !implicit_ok && !configured.iter().any(|u| u == name) {
        let have = if configured.is_empty() {
            "no [upstreams.*] are configured".to_owned()
        } else {
            format!("configured: {}", configured.join(", "))
        };
        let fix = if configured.is_empty() {
            format!("add [upstreams.{name}] url = \"http://...\"")
        } else {
            format!(
                "use one of {}, or add [upstreams.{name}]",
                configured.join(", ")
            )
        };
        c.push(
            "upstream",
            format!("{name:?}"),
            format!("unknown upstream ({have})"),
            fix,
        );
    }
    name.to_owned()
}

fn compile_strip_prefix(
    c: &mut Ctx<'_>,
    prefix: &str,
    matcher: Option<&PathMatcher>,
    ci: bool,
) -> Option<String> {
    let v = format!("{prefix:?}");
    let canonical = CanonicalPath::parse(prefix).ok().filter(|p| {
        p.match_path() == prefix
            && !p.has_encoded_slash()
            && prefix != "/"
            && !prefix.contains(['*', '{', '}', ';'])
    });
    if canonical.is_none() {
        c.push(
            "strip_prefix",
            v,
            "not a canonical path prefix",
            "write a decoded path without trailing '/', wildcards or parameters, e.g. \"/api\"",
        );
        return None;
    }
    // For globs, every matched path must start with the prefix, or stripping
    // would fail at request time.
    if let Some(PathMatcher::Glob(segs)) = matcher {
        let want: Vec<String> = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if ci {
                    fold_case(s).into_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        let starts = want.len() <= segs.len()
            && want
                .iter()
                .zip(segs)
                .all(|(w, s)| matches!(s, Seg::Literal(l) if l == w));
        if !starts {
            c.push(
                "strip_prefix",
                v,
                "the route's path does not always start with this prefix",
                "use a prefix made of the glob's leading literal segments (e.g. path \"/api/**\" with \"/api\")",
            );
            return None;
        }
    }
    Some(prefix.to_owned())
}

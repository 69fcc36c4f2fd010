//! Route policy: which route a request belongs to,
//! and whether a verified user may pass it.
//!
//! ```text
//! [[routes]] (raw) ──compile──► Vec<Route>   (globs → segment matchers, regexes anchored,
//!                                             rules checked, every problem reported)
//! request:  host + CanonicalPath ──find──► RouteMatch { route, captures }   (first match wins)
//!           method ──Route::allows_method──► 405 if not listed (never falls through)
//!           Claims + captures + headers ──Route::authorize──► Grant { tenant } | Denial { reason }
//! ```
//!
//! Pure: no I/O, no clocks. Matching runs on every request, so it allocates
//! nothing except the `{name}` captures of the route that matches.

mod compile;
mod describe;
mod matcher;
pub mod raw;
mod rules;

use http::{HeaderMap, Method};

use crate::canon::{CanonicalPath, fold_case};
use crate::claims::Claims;
use crate::issue::ConfigIssue;
pub use compile::{DEFAULT_ACCESS, DEFAULT_POLICY, DEFAULT_UPSTREAM};
use matcher::{HostPattern, PathMatcher};
pub use raw::{PolicyToml, RouteToml};
use rules::Rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Optional,
    Authenticated,
    Deny,
}

/// What to do with a request that matches no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    Deny,
    Authenticated,
}

/// How to answer an unauthenticated request on a protected route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Browser navigations get a 302 to login, everything else 401.
    Auto,
    Redirect,
    Status401,
}

/// Context for compiling routes.
pub struct CompileContext<'a> {
    pub case_insensitive_paths: bool,
    /// Names of the configured `[upstreams.*]`. When empty (forward-auth
    /// only), routes may leave `upstream` unset.
    pub upstreams: &'a [String],
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Position in `[[routes]]` (0-based).
    pub index: usize,
    /// `name` if given, else the path pattern.
    pub name: String,
    pub access: Access,
    pub unauthenticated: Unauthenticated,
    pub allow_preflight: bool,
    /// Upstream name (default `"default"`).
    pub upstream: String,
    /// Canonical prefix to remove before forwarding.
    pub strip_prefix: Option<String>,
    pub allow_encoded_slash: bool,
    /// `path` or `path_regex` as written.
    pattern: String,
    is_regex: bool,
    matcher: PathMatcher,
    /// The pattern compiled case-insensitively, when `matcher` is not.
    folded: Option<PathMatcher>,
    host: Option<HostPattern>,
    host_text: Option<String>,
    /// `None`: every method.
    methods: Option<Vec<Method>>,
    rules: Rules,
    case_insensitive: bool,
}

/// A route matched for one request, with its `{name}` captures.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub route: &'a Route,
    pub captures: Vec<(String, String)>,
}

/// A path whose letter-case variant, or whose reading with `;parameters`
/// kept, belongs to another route (see [`Policy::resolve`]): refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseConflict;

/// Why the rules refused a verified user (logged; never sent to clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: String,
}

/// The outcome of a successful rule check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The tenant the route is about, when it is a tenant route.
    pub tenant: Option<String>,
}

#[derive(Debug)]
pub struct Policy {
    routes: Vec<Route>,
    default: DefaultPolicy,
    case_insensitive: bool,
    /// Some pattern has an upper-case (or non-ASCII) letter, or is a regex:
    /// then even an all-lower-case path has a case-folded reading that may
    /// select another route (`/admin/x` belongs to `/Admin/**` for an app
    /// that ignores case).
    case_in_patterns: bool,
}

// === impl Policy ===

impl Policy {
    /// Validates and compiles `[[routes]]` and `[policy]`. On failure returns
    /// every problem found (not just the first), keyed `routes[i].field`.
    pub fn compile(
        routes: &[RouteToml],
        policy: &PolicyToml,
        ctx: &CompileContext<'_>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let default = compile::parse_default(policy.default.as_deref(), &mut issues);
        let compiled: Vec<Route> = routes
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| compile::compile_route(i, raw, ctx, &mut issues))
            .collect();
        if !issues.is_empty() {
            return Err(issues);
        }
        let case_in_patterns = compiled
            .iter()
            .any(|r| r.is_regex || matches!(fold_case(&r.pattern), std::borrow::Cow::Owned(_)));
        Ok(Self {
            routes: compiled,
            default,
            case_insensitive: ctx.case_insensitive_paths,
            case_in_patterns,
        })
    }

    /// Lints: routes shadowed by an earlier one, no catch-all route, a public
    /// catch-all. Never fatal unless `check-config --strict`.
    pub fn lints(&self) -> Vec<ConfigIssue> {
        describe::lints(self)
    }

    /// The compiled route table for `check-config`, one route per block,
    /// with each glob's expansion.
    pub fn describe(&self) -> String {
        describe::describe(self)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether any route has a `host` condition (then a request without a
    /// host cannot be judged: it would skip those routes).
    pub fn has_host_routes(&self) -> bool {
        self.routes.iter().any(|r| r.host.is_some())
    }

    pub fn default_policy(&self) -> DefaultPolicy {
        self.default
    }

    /// Whether routes match case-insensitively (`case_insensitive_paths`).
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The first route whose path (and host) matches. `host` is the request
    /// host; a port and a trailing dot are ignored and letters compared
    /// without case, so callers may pass it as received. A route with a
    /// `host` never matches a request without one.
    pub fn find(&self, host: Option<&str>, path: &CanonicalPath) -> Option<RouteMatch<'_>> {
        let p = path.match_path();
        let mut captures = Vec::new();
        for route in self.candidates(host) {
            if route
                .matcher
                .matches(p, self.case_insensitive, &mut captures)
            {
                return Some(RouteMatch { route, captures });
            }
            captures.clear();
        }
        None
    }

    /// [`Self::find`], refusing a path whose route depends on how the
    /// upstream reads it.
    ///
    /// Letter case: Express (by default), ASP.NET Core and IIS route without
    /// regard to letter case, so for them `/ADMIN/x` is `/admin/x`; a
    /// case-sensitive match would judge it by a laxer route (`/**`).
    /// Matching without case instead would open a public route's case
    /// variants (`/PUBLIC/x`) onto a case-sensitive app, where they may be
    /// other resources. So, unless `case_insensitive_paths` is on, the exact
    /// and the case-folded spelling must select the same route.
    ///
    /// Path parameters: Tomcat and Spring drop `;params` (`/admin;x/y` is
    /// their `/admin/y`), Node, Python, Go and IIS keep them in the name
    /// (`/public;x` is not their `/public`). Routes match with parameters
    /// dropped, and the reading that keeps them must select the same route.
    ///
    /// So which route judges a request never depends on how the upstream
    /// reads letter case or parameters; a path for which it would is
    /// refused (400).
    pub fn resolve(
        &self,
        host: Option<&str>,
        path: &CanonicalPath,
    ) -> Result<Option<RouteMatch<'_>>, CaseConflict> {
        let exact = self.find(host, path);
        let want = exact.as_ref().map(|m| m.route.index);
        let primary = path.match_path();
        let with_params = path.match_path_with_params();
        let readings = std::iter::once(primary).chain(with_params.as_deref());
        for (n, reading) in readings.enumerate() {
            if n > 0 && self.index_of(host, reading, self.case_insensitive, false) != want {
                return Err(CaseConflict);
            }
            if self.case_insensitive {
                continue;
            }
            let folded = fold_case(reading);
            if (self.case_in_patterns || matches!(folded, std::borrow::Cow::Owned(_)))
                && self.index_of(host, &folded, true, true) != want
            {
                return Err(CaseConflict);
            }
        }
        Ok(exact)
    }

    /// The index of the first route matching a match path under the given
    /// reading (`folded`: with the case-insensitive matchers).
    fn index_of(&self, host: Option<&str>, path: &str, ci: bool, folded: bool) -> Option<usize> {
        let mut scratch = Vec::new();
        self.candidates(host).find_map(|route| {
            let m = if folded {
                route.folded.as_ref().unwrap_or(&route.matcher)
            } else {
                &route.matcher
            };
            let hit = m.matches(path, ci, &mut scratch);
            scratch.clear();
            hit.then_some(route.index)
        })
    }

    /// Routes whose `host` admits the request host, in order.
    fn candidates<'a, 'h>(
        &'a self,
        host: Option<&'h str>,
    ) -> impl Iterator<Item = &'a Route> + use<'a, 'h> {
        self.routes.iter().filter(move |route| match &route.host {
            None => true,
            Some(pattern) => host.is_some_and(|h| pattern.matches(h)),
        })
    }
}

// === impl Route ===

impl Route {
    /// Whether `method` is allowed (HEAD counts as GET; no `methods`: all).
    pub fn allows_method(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(list) => {
                list.contains(method) || (*method == Method::HEAD && list.contains(&Method::GET))
            }
        }
    }

    /// The listed methods (`None`: all), e.g. for a 405's `Allow` header.
    pub fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    /// `path` or `path_regex` as written in the config.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// `host` as written in the config (`None`: any host).
    pub fn host_pattern(&self) -> Option<&str> {
        self.host_text.as_deref()
    }

    /// Whether this route matches every path on every host (`path = "/**"`,
    /// no `host`), so that nothing after it is reachable and `[policy]
    /// default` never applies.
    pub fn is_catch_all(&self) -> bool {
        self.host.is_none()
            && matches!(&self.matcher, PathMatcher::Glob(s) if s.as_slice() == [matcher::Seg::AnyDepth])
    }

    /// `path` with this route's `strip_prefix` removed, compared with the
    /// same letter-case rule as route matching; `None` when the route has no
    /// `strip_prefix` or the path does not start with it. Prefer this to
    /// calling [`CanonicalPath::strip_prefix`] directly: with
    /// `case_insensitive_paths`, `/API/x` matches `/api/**` and must strip too.
    pub fn strip(&self, path: &CanonicalPath) -> Option<CanonicalPath> {
        let prefix = self.strip_prefix.as_deref()?;
        path.strip_prefix_with(prefix, self.case_insensitive)
    }

    /// Whether the route has any authorization rule (roles, tenant, claims...).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Evaluates every rule of the route against verified claims. A route
    /// without rules grants any verified user. `captures` are the route
    /// match's; `headers` the request's (for `tenant = "header:..."`).
    pub fn authorize(
        &self,
        claims: &Claims,
        captures: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Grant, Denial> {
        self.rules.evaluate(claims, captures, headers)
    }
}

#[cfg(test)]
mod tests;

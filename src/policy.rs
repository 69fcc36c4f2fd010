//! Route policy (DESIGN §3 "Route fields"). STUB: the policy work replaces this file.

pub mod raw;

use http::{HeaderMap, Method};

use crate::canon::CanonicalPath;
use crate::claims::Claims;
use crate::config::ConfigIssue;
pub use raw::{PolicyToml, RouteToml};

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
    /// Names of the configured `[upstreams.*]`.
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
}

/// A route matched for one request, with its `{name}` captures.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub route: &'a Route,
    pub captures: Vec<(String, String)>,
}

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
}

impl Policy {
    pub fn compile(
        routes: &[RouteToml],
        policy: &PolicyToml,
        ctx: &CompileContext<'_>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let _ = (routes, policy, ctx);
        Ok(Self {
            routes: Vec::new(),
            default: DefaultPolicy::Deny,
        })
    }

    /// Lints: shadowed routes, no catch-all.
    pub fn lints(&self) -> Vec<ConfigIssue> {
        Vec::new()
    }

    /// The compiled route table for `check-config`, one route per block,
    /// with each glob's expansion.
    pub fn describe(&self) -> String {
        String::new()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn default_policy(&self) -> DefaultPolicy {
        self.default
    }

    /// The first route whose path (and host) matches. `host` is the request
    /// host without port, lower-cased.
    pub fn find(&self, host: Option<&str>, path: &CanonicalPath) -> Option<RouteMatch<'_>> {
        let _ = (host, path);
        None
    }
}

impl Route {
    /// Whether `method` is allowed (HEAD counts as GET).
    pub fn allows_method(&self, method: &Method) -> bool {
        let _ = method;
        true
    }

    /// Evaluates every rule of the route against verified claims.
    pub fn authorize(
        &self,
        claims: &Claims,
        captures: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Grant, Denial> {
        let _ = (claims, captures, headers);
        Err(Denial {
            reason: "not implemented".into(),
        })
    }
}

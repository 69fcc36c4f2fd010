//! Serde mirror of `[[routes]]` and `[policy]` (docs/configuration.md).
//!
//! Every table denies unknown fields: a typo such as `requried_roles` must fail
//! the load instead of silently dropping a rule. Enumerated values (`access`,
//! `unauthenticated`, `default`) stay strings here so that
//! [`crate::policy::Policy::compile`] can answer a bad value with the key, the
//! value and the accepted spellings instead of a bare serde message.

use serde::Deserialize;

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    /// What a request that matches no route gets: `"deny"` (403, the default)
    /// or `"authenticated"` (any valid session).
    pub default: Option<String>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteToml {
    /// Shown in logs and metrics; defaults to the path pattern.
    pub name: Option<String>,
    /// Glob on the canonical path: `*`, `{name}`, `**`.
    pub path: Option<String>,
    /// Regular expression on the canonical path, implicitly anchored.
    pub path_regex: Option<String>,
    /// Allowed methods (HEAD counts as GET); absent: all.
    pub methods: Option<Vec<String>>,
    /// Request host, exact or `*.example.com`.
    pub host: Option<String>,
    /// `public | optional | authenticated | deny` (default `authenticated`).
    pub access: Option<String>,
    pub roles: Option<Vec<String>>,
    pub any_roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub any_permissions: Option<Vec<String>>,
    /// `"{capture}"`, `"header:NAME"`, `"dct"` or a literal tenant id.
    pub tenant: Option<String>,
    pub tenant_roles: Option<Vec<String>>,
    pub any_tenant_roles: Option<Vec<String>>,
    pub tenant_permissions: Option<Vec<String>>,
    pub any_tenant_permissions: Option<Vec<String>>,
    /// Claim name → required scalar, or list of accepted values.
    pub claims: Option<toml::Table>,
    #[serde(default)]
    pub require_mfa: bool,
    /// `"redirect"` or `"401"`; absent: redirect browser navigations, 401 otherwise.
    pub unauthenticated: Option<String>,
    #[serde(default)]
    pub allow_preflight: bool,
    /// Name of an `[upstreams.*]` table (default `"default"`).
    pub upstream: Option<String>,
    /// Canonical prefix removed before forwarding, e.g. `"/api"`.
    pub strip_prefix: Option<String>,
    #[serde(default)]
    pub allow_encoded_slash: bool,
}

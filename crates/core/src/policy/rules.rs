//! Compiled authorization rules and their evaluation against verified claims.
//!
//! Semantics follow the Descope SDK helpers (descope-api.md §8), taking the
//! stricter reading where they differ: a claim of the wrong JSON type counts as
//! absent (never substring-matched), and a tenant that is only the `dct` grants
//! membership but no tenant roles or permissions (see [`crate::claims`]).
//! Denial reasons name the rule that failed, never a claim value.

use http::{HeaderMap, HeaderName};
use serde_json::Value;

use crate::claims::Claims;

use super::{Denial, Grant};

/// Where a route finds the tenant it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantSource {
    /// `"{name}"`: a path capture.
    Capture(String),
    /// `"header:NAME"`: a request header (missing, empty or repeated → deny).
    Header(HeaderName),
    /// `"dct"`: the token's current tenant.
    CurrentTenant,
    /// A literal tenant id.
    Literal(String),
}

/// One accepted claim value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// A `claims` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClaimRule {
    /// A scalar: the claim must equal it.
    Equals(Scalar),
    /// A list: the claim equals one of them, or is a list sharing one with it.
    OneOf(Vec<Scalar>),
}

/// Every rule of a route; an empty list means "not set".
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rules {
    pub(crate) roles: Vec<String>,
    pub(crate) any_roles: Vec<String>,
    pub(crate) permissions: Vec<String>,
    pub(crate) any_permissions: Vec<String>,
    pub(crate) tenant: Option<TenantSource>,
    pub(crate) tenant_roles: Vec<String>,
    pub(crate) any_tenant_roles: Vec<String>,
    pub(crate) tenant_permissions: Vec<String>,
    pub(crate) any_tenant_permissions: Vec<String>,
    pub(crate) claims: Vec<(String, ClaimRule)>,
    pub(crate) require_mfa: bool,
}

fn deny(reason: &str) -> Denial {
    Denial {
        reason: reason.to_owned(),
    }
}

/// All of `required` are in `granted`.
fn has_all(granted: &[&str], required: &[String]) -> bool {
    required.iter().all(|r| granted.contains(&r.as_str()))
}

/// `required` is unset, or at least one of it is in `granted`.
fn has_any(granted: &[&str], required: &[String]) -> bool {
    required.is_empty() || required.iter().any(|r| granted.contains(&r.as_str()))
}

// === impl Rules ===

impl Rules {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Rules::default()
    }

    pub(crate) fn evaluate(
        &self,
        claims: &Claims,
        captures: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<Grant, Denial> {
        if !self.roles.is_empty() || !self.any_roles.is_empty() {
            let granted = claims.roles();
            if !has_all(&granted, &self.roles) {
                return Err(deny("missing role"));
            }
            if !has_any(&granted, &self.any_roles) {
                return Err(deny("missing any of roles"));
            }
        }
        if !self.permissions.is_empty() || !self.any_permissions.is_empty() {
            let granted = claims.permissions();
            if !has_all(&granted, &self.permissions) {
                return Err(deny("missing permission"));
            }
            if !has_any(&granted, &self.any_permissions) {
                return Err(deny("missing any of permissions"));
            }
        }
        let tenant = match &self.tenant {
            None => None,
            Some(source) => Some(self.check_tenant(source, claims, captures, headers)?),
        };
        for (name, rule) in &self.claims {
            if !claim_matches(claims.get(name), rule) {
                return Err(Denial {
                    reason: format!("claim mismatch: {name}"),
                });
            }
        }
        if self.require_mfa && !is_mfa(claims) {
            return Err(deny("multi-factor authentication required"));
        }
        Ok(Grant { tenant })
    }

    fn check_tenant(
        &self,
        source: &TenantSource,
        claims: &Claims,
        captures: &[(String, String)],
        headers: &HeaderMap,
    ) -> Result<String, Denial> {
        let tenant: &str = match source {
            TenantSource::Capture(name) => captures
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or(""),
            TenantSource::Header(name) => {
                // Every spelling counts: CGI/PHP-style upstreams (and nginx
                // with `underscores_in_headers`) read `X_Tenant_Id` as
                // `X-Tenant-Id`, so a second value under another spelling is
                // a repeat too, not a header the app will ignore.
                let want = crate::identity::normalize_name(name.as_str());
                let mut values = headers
                    .iter()
                    .filter(|(k, _)| crate::identity::normalize_name(k.as_str()) == want)
                    .map(|(_, v)| v);
                match (values.next(), values.next()) {
                    (Some(v), None) => v.to_str().map(str::trim).unwrap_or(""),
                    // Absent, or repeated (which one would the app believe?).
                    _ => "",
                }
            }
            TenantSource::CurrentTenant => claims.current_tenant().unwrap_or(""),
            TenantSource::Literal(id) => id,
        };
        if tenant.is_empty() {
            return Err(deny("no tenant in request"));
        }
        if !claims.is_tenant_member(tenant) {
            return Err(deny("not a member of the tenant"));
        }
        let roles = claims.tenant_roles(tenant);
        if !has_all(&roles, &self.tenant_roles) {
            return Err(deny("missing tenant role"));
        }
        if !has_any(&roles, &self.any_tenant_roles) {
            return Err(deny("missing any of tenant roles"));
        }
        let perms = claims.tenant_permissions(tenant);
        if !has_all(&perms, &self.tenant_permissions) {
            return Err(deny("missing tenant permission"));
        }
        if !has_any(&perms, &self.any_tenant_permissions) {
            return Err(deny("missing any of tenant permissions"));
        }
        Ok(tenant.to_owned())
    }
}

/// `amr` has at least two distinct factors, or contains `"mfa"`.
fn is_mfa(claims: &Claims) -> bool {
    let mut amr = claims.amr();
    if amr.contains(&"mfa") {
        return true;
    }
    amr.sort_unstable();
    amr.dedup();
    amr.len() >= 2
}

fn scalar_eq(want: &Scalar, have: &Value) -> bool {
    match (want, have) {
        (Scalar::Str(w), Value::String(h)) => w == h,
        (Scalar::Bool(w), Value::Bool(h)) => w == h,
        (Scalar::Int(w), Value::Number(h)) => h.as_i64() == Some(*w),
        (Scalar::Float(w), Value::Number(h)) => h.as_f64() == Some(*w),
        _ => false,
    }
}

fn claim_matches(have: Option<&Value>, rule: &ClaimRule) -> bool {
    let Some(have) = have else { return false };
    match rule {
        ClaimRule::Equals(want) => scalar_eq(want, have),
        ClaimRule::OneOf(wants) => match have {
            Value::Array(items) => items.iter().any(|h| wants.iter().any(|w| scalar_eq(w, h))),
            h => wants.iter().any(|w| scalar_eq(w, h)),
        },
    }
}

impl Scalar {
    /// How the value reads in `describe()` (operator-written, not a claim).
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Str(s) => format!("{s:?}"),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
        }
    }
}

//! Verified token claims and the accessors the policy and identity modules use.
//!
//! A [`Claims`] value only ever comes out of signature verification
//! (`session::SessionValidator`), so everything here is trusted input. The
//! accessors follow the Descope SDK helpers (descope-api.md §8) and take the
//! stricter reading where the SDKs differ: a claim of the wrong JSON type is
//! treated as absent (never substring-matched), and a tenant that is only the
//! `dct` grants membership but no tenant roles or permissions.

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// The claims of a verified Descope JWT.
#[derive(Debug, Clone)]
pub struct Claims {
    map: Map<String, Value>,
    /// The identity headers last computed from these claims (see
    /// [`crate::identity::IdentityHeaders::inject`]): a cached session's
    /// headers are built once, not on every request.
    headers: OnceLock<HeaderMemo>,
}

/// Identity header values computed for one header configuration and tenant.
#[derive(Debug, Clone)]
pub(crate) struct HeaderMemo {
    /// [`crate::identity::IdentityHeaders`]' instance id.
    pub config: u64,
    pub tenant: Option<String>,
    pub values: Vec<(HeaderName, HeaderValue)>,
}

/// Claims are equal when their claim sets are (the memo is derived).
impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Claims {
    /// Wraps a verified claim set. Callers must have verified the signature.
    pub fn from_verified(map: Map<String, Value>) -> Self {
        Self {
            map,
            headers: OnceLock::new(),
        }
    }

    /// The memoised identity headers for `config` and `tenant`, if these
    /// are the ones computed first.
    pub(crate) fn header_memo(
        &self,
        config: u64,
        tenant: Option<&str>,
    ) -> Option<&[(HeaderName, HeaderValue)]> {
        self.headers
            .get()
            .filter(|m| m.config == config && m.tenant.as_deref() == tenant)
            .map(|m| m.values.as_slice())
    }

    /// Keeps the first computed identity headers (later ones, for another
    /// tenant or after a reload, are computed per request).
    pub(crate) fn remember_headers(&self, memo: HeaderMemo) {
        let _ = self.headers.set(memo);
    }

    /// The raw claim map (for `/me` and `[identity.headers]`).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// One claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// The user id: the `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// `exp` in seconds since the epoch.
    pub fn expires_at(&self) -> Option<i64> {
        self.map.get("exp").and_then(Value::as_i64)
    }

    /// `iat` in seconds since the epoch.
    pub fn issued_at(&self) -> Option<i64> {
        self.map.get("iat").and_then(Value::as_i64)
    }

    /// `drn`: `"DS"` for a session token, `"DSR"` for a refresh token.
    pub fn drn(&self) -> Option<&str> {
        self.str_claim("drn")
    }

    /// `dct`: the currently selected tenant.
    pub fn current_tenant(&self) -> Option<&str> {
        self.str_claim("dct")
    }

    pub fn email(&self) -> Option<&str> {
        self.str_claim("email")
    }

    pub fn name(&self) -> Option<&str> {
        self.str_claim("name")
    }

    /// Top-level (project) roles; a non-list claim counts as none.
    pub fn roles(&self) -> Vec<&str> {
        string_list(self.map.get("roles"))
    }

    /// Top-level (project) permissions; a non-list claim counts as none.
    pub fn permissions(&self) -> Vec<&str> {
        string_list(self.map.get("permissions"))
    }

    /// The tenant ids in the `tenants` claim (object keys), sorted.
    pub fn tenant_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = match self.map.get("tenants") {
            Some(Value::Object(t)) => t.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        ids.sort_unstable();
        ids
    }

    /// Whether the user belongs to `tenant`: listed in `tenants`, or equal to `dct`.
    pub fn is_tenant_member(&self, tenant: &str) -> bool {
        self.tenant_entry(tenant).is_some() || self.current_tenant() == Some(tenant)
    }

    /// Roles granted in `tenant` (only from the `tenants` claim).
    pub fn tenant_roles(&self, tenant: &str) -> Vec<&str> {
        string_list(self.tenant_entry(tenant).and_then(|t| t.get("roles")))
    }

    /// Permissions granted in `tenant` (only from the `tenants` claim).
    pub fn tenant_permissions(&self, tenant: &str) -> Vec<&str> {
        string_list(self.tenant_entry(tenant).and_then(|t| t.get("permissions")))
    }

    /// `amr`: authentication method references.
    pub fn amr(&self) -> Vec<&str> {
        string_list(self.map.get("amr"))
    }

    fn tenant_entry(&self, tenant: &str) -> Option<&Map<String, Value>> {
        match self.map.get("tenants") {
            Some(Value::Object(t)) => t.get(tenant).and_then(Value::as_object),
            _ => None,
        }
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }
}

/// The string elements of a JSON array; anything else is an empty list.
fn string_list(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => Claims::from_verified(m),
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn wrong_types_count_as_absent() {
        let c = claims(json!({"roles": "admin", "permissions": [1, "read"], "tenants": []}));
        assert!(c.roles().is_empty());
        assert_eq!(c.permissions(), vec!["read"]);
        assert!(c.tenant_ids().is_empty());
    }

    #[test]
    fn dct_grants_membership_but_no_roles() {
        let c = claims(json!({"dct": "T1", "roles": ["admin"]}));
        assert!(c.is_tenant_member("T1"));
        assert!(c.tenant_roles("T1").is_empty());
        assert!(!c.is_tenant_member("T2"));
    }

    #[test]
    fn tenant_roles_come_from_tenants_claim() {
        let c = claims(
            json!({"tenants": {"T1": {"roles": ["owner"], "permissions": ["p"]}, "T2": {}}}),
        );
        assert_eq!(c.tenant_ids(), vec!["T1", "T2"]);
        assert_eq!(c.tenant_roles("T1"), vec!["owner"]);
        assert_eq!(c.tenant_permissions("T1"), vec!["p"]);
        assert!(c.is_tenant_member("T2"));
        assert!(c.tenant_roles("T2").is_empty());
    }
}

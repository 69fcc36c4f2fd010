//! Identity headers: strip every inbound identity header,
//! then inject the verified identity. Pure: header maps and claims in, header
//! maps out.
//!
//! Inbound names are compared after [`normalize_name`] (lower case, `_` → `-`),
//! so `X_Auth_User_Id`, `x-auth-user-id` and duplicates are all removed: some
//! upstream stacks (CGI, PHP, nginx with `underscores_in_headers`) treat `_`
//! and `-` alike, and a spoofed header must never survive in any spelling.

use std::collections::HashSet;

use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::claims::Claims;

// === configuration (built by the gateway's config loader) ===

/// Which family of header names the verified identity is sent under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Portcullis,
    OAuth2Proxy,
    Authelia,
}

/// Whether (and how) the session token itself goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardToken {
    None,
    Authorization,
    Header(HeaderName),
}

/// `[identity]`, validated.
#[derive(Debug)]
pub struct IdentityConfig {
    pub preset: Preset,
    pub forward_token: ForwardToken,
    /// Extra inbound headers to remove (normalized names).
    pub strip_headers: Vec<String>,
    /// `[identity.headers]`: header → claim name.
    pub extra_headers: Vec<(HeaderName, String)>,
    pub assertion: Option<AssertionConfig>,
}

/// `[identity.assertion]`: a short-lived JWT signed by the gateway.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub header: HeaderName,
    pub ttl: Duration,
}

/// Other proxies' identity headers, removed whatever the preset.
const BUILTIN_EXACT: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "gap-auth",
    "x-remote-user",
    "x-webauth-user",
    "x-session-jwt",
    // Envoy / Istio client certificate (XFCC).
    "x-forwarded-client-cert",
    "x-ssl-client-cert",
    "x-client-cert",
    "ssl-client-cert",
    // AWS ALB OIDC.
    "x-amzn-oidc-data",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    // Google IAP.
    "x-goog-authenticated-user-email",
    "x-goog-authenticated-user-id",
    "x-goog-iap-jwt-assertion",
    // Azure App Service EasyAuth.
    "x-ms-client-principal",
    "x-ms-client-principal-id",
    "x-ms-client-principal-name",
    "x-ms-client-principal-idp",
    // Kong.
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-consumer-groups",
    "x-credential-identifier",
    "x-credential-username",
    "x-anonymous-consumer",
    "x-authenticated-scope",
    "x-authenticated-userid",
    "x-userinfo",
    // Cloudflare Access.
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
];

/// Prefixes of identity header families removed whatever the preset
/// (`X-Auth-*` is this gateway's own namespace).
const BUILTIN_PREFIXES: &[&str] = &[
    "x-auth-request-",
    "x-auth-",
    "remote-",
    "x-pomerium-",
    "x-portcullis-",
    // Azure EasyAuth tokens (`X-MS-TOKEN-AAD-ID-TOKEN`, ...).
    "x-ms-token-",
];

/// Every header a preset can produce.
fn preset_names(p: Preset) -> &'static [&'static str] {
    match p {
        Preset::Portcullis => &[
            "X-Auth-User-Id",
            "X-Auth-Email",
            "X-Auth-Name",
            "X-Auth-Roles",
            "X-Auth-Permissions",
            "X-Auth-Tenants",
            "X-Auth-Tenant",
            "X-Auth-Tenant-Roles",
            "X-Auth-Tenant-Permissions",
        ],
        Preset::OAuth2Proxy => &[
            "X-Forwarded-User",
            "X-Forwarded-Email",
            "X-Forwarded-Groups",
            "X-Forwarded-Preferred-Username",
        ],
        Preset::Authelia => &[
            "Remote-User",
            "Remote-Groups",
            "Remote-Name",
            "Remote-Email",
        ],
    }
}

/// Lower case with `_` folded to `-`: the form every comparison uses.
pub fn normalize_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                char::from(b.to_ascii_lowercase())
            }
        })
        .collect()
}

/// Compiled strip/inject rules for one config generation.
#[derive(Debug)]
pub struct IdentityHeaders {
    /// Unique per instance (per configuration generation): keys the
    /// per-session header memo in [`Claims`].
    id: u64,
    preset: Preset,
    strip_exact: HashSet<String>,
    extra: Vec<(HeaderName, String)>,
    /// Every header name the gateway may inject, in a stable order.
    all_names: Vec<HeaderName>,
}

impl IdentityHeaders {
    pub fn new(cfg: &IdentityConfig) -> Self {
        let mut strip_exact: HashSet<String> =
            BUILTIN_EXACT.iter().map(|s| (*s).to_string()).collect();
        for p in [Preset::Portcullis, Preset::OAuth2Proxy, Preset::Authelia] {
            strip_exact.extend(preset_names(p).iter().map(|n| normalize_name(n)));
        }
        strip_exact.extend(cfg.strip_headers.iter().cloned());
        strip_exact.extend(
            cfg.extra_headers
                .iter()
                .map(|(h, _)| normalize_name(h.as_str())),
        );
        if let ForwardToken::Header(h) = &cfg.forward_token {
            strip_exact.insert(normalize_name(h.as_str()));
        }
        if let Some(a) = &cfg.assertion {
            strip_exact.insert(normalize_name(a.header.as_str()));
        }
        let mut all_names: Vec<HeaderName> = preset_names(cfg.preset)
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("preset names are valid"))
            .collect();
        all_names.extend(cfg.extra_headers.iter().map(|(h, _)| h.clone()));
        // Forward-auth answers name these too (always empty there), so an
        // ingress that copies every answer header overwrites a client's copy.
        if let ForwardToken::Header(h) = &cfg.forward_token {
            all_names.push(h.clone());
        }
        if let Some(a) = &cfg.assertion {
            all_names.push(a.header.clone());
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            preset: cfg.preset,
            strip_exact,
            extra: cfg.extra_headers.clone(),
            all_names,
        }
    }

    /// Whether an inbound header name is an identity header to remove.
    pub fn is_identity_header(&self, name: &str) -> bool {
        // `HeaderMap` names are already lower case; only fold when needed, so
        // the common case allocates nothing.
        let n: std::borrow::Cow<'_, str> =
            if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
                normalize_name(name).into()
            } else {
                name.into()
            };
        self.strip_exact.contains(n.as_ref()) || BUILTIN_PREFIXES.iter().any(|p| n.starts_with(p))
    }

    /// Removes every inbound identity header, in all spellings and duplicates.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| self.is_identity_header(k.as_str()))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// Every header name this configuration can inject (for forward-auth
    /// answers, which must name all of them so an ingress overwrites all).
    pub fn all_names(&self) -> &[HeaderName] {
        &self.all_names
    }

    /// The identity headers for a verified user; `tenant` is the route's tenant.
    /// Values that cannot be carried in a header (control characters) are left out.
    pub fn values(&self, claims: &Claims, tenant: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out: Vec<(HeaderName, String)> = Vec::with_capacity(10);
        let mut push = |name: &'static str, v: Option<String>| {
            if let Some(v) = v {
                out.push((HeaderName::from_static(name), v));
            }
        };
        let sub = claims.subject().map(str::to_string);
        let email = claims.email().map(str::to_string);
        let name = claims.name().map(str::to_string);
        let roles = claims.roles().join(",");
        match self.preset {
            Preset::Portcullis => {
                push("x-auth-user-id", sub);
                push("x-auth-email", email);
                push("x-auth-name", name);
                push("x-auth-roles", Some(roles));
                push("x-auth-permissions", Some(claims.permissions().join(",")));
                push("x-auth-tenants", Some(claims.tenant_ids().join(",")));
                if let Some(t) = tenant {
                    push("x-auth-tenant", Some(t.to_string()));
                    push(
                        "x-auth-tenant-roles",
                        Some(claims.tenant_roles(t).join(",")),
                    );
                    push(
                        "x-auth-tenant-permissions",
                        Some(claims.tenant_permissions(t).join(",")),
                    );
                }
            }
            Preset::OAuth2Proxy => {
                push("x-forwarded-user", sub);
                push(
                    "x-forwarded-preferred-username",
                    name.or_else(|| email.clone()),
                );
                push("x-forwarded-email", email);
                push("x-forwarded-groups", Some(roles));
            }
            Preset::Authelia => {
                push("remote-user", sub);
                push("remote-groups", Some(roles));
                push("remote-name", name);
                push("remote-email", email);
            }
        }
        for (h, claim) in &self.extra {
            if let Some(v) = claims.get(claim).and_then(claim_to_header) {
                out.push((h.clone(), v));
            }
        }
        out.into_iter()
            .filter_map(|(h, v)| HeaderValue::from_str(&v).ok().map(|v| (h, v)))
            .collect()
    }

    /// Strips, then injects the verified identity.
    /// [`Self::strip`], then [`Self::inject`].
    pub fn apply(&self, headers: &mut HeaderMap, identity: Option<(&Claims, Option<&str>)>) {
        self.strip(headers);
        self.inject(headers, identity);
    }

    /// Sets the verified identity's headers (the request path strips
    /// inbound ones first, with every other special header, in
    /// `inbound::scrub`).
    pub fn inject(&self, headers: &mut HeaderMap, identity: Option<(&Claims, Option<&str>)>) {
        let Some((claims, tenant)) = identity else {
            return;
        };
        if let Some(values) = claims.header_memo(self.id, tenant) {
            for (h, v) in values {
                headers.insert(h.clone(), v.clone());
            }
            return;
        }
        let values = self.values(claims, tenant);
        for (h, v) in &values {
            headers.insert(h.clone(), v.clone());
        }
        claims.remember_headers(crate::claims::HeaderMemo {
            config: self.id,
            tenant: tenant.map(str::to_owned),
            values,
        });
    }
}

/// A claim as a header value: strings as is, numbers and booleans printed,
/// string lists comma-joined; objects are not forwarded.
fn claim_to_header(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Null | Value::Array(_) | Value::Object(_) => None,
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Null | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForwardToken;
    use serde_json::json;

    fn cfg(preset: Preset) -> IdentityConfig {
        IdentityConfig {
            preset,
            forward_token: ForwardToken::None,
            strip_headers: vec!["x-legacy-user".into()],
            extra_headers: vec![(
                HeaderName::from_static("x-employee-id"),
                "employee_id".into(),
            )],
            assertion: None,
        }
    }

    fn claims() -> Claims {
        match json!({"sub": "U1", "email": "a@example.com", "name": "Ada", "roles": ["admin", "dev"],
                     "permissions": ["read"], "tenants": {"T1": {"roles": ["owner"]}}, "employee_id": 42})
        {
            serde_json::Value::Object(m) => Claims::from_verified(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn strips_every_spelling_and_duplicate() {
        let id = IdentityHeaders::new(&cfg(Preset::Portcullis));
        let mut h = HeaderMap::new();
        for n in [
            "x-auth-user-id",
            "X_AUTH_USER_ID",
            "x_auth_user_id",
            "x-auth-request-user",
            "remote-user",
            "remote_groups",
            "x-forwarded-user",
            "x_forwarded_email",
            "gap-auth",
            "x-pomerium-jwt-assertion",
            "x-webauth-user",
            "x-remote-user",
            "x-legacy-user",
            "X_Legacy_User",
            "x-employee-id",
            "x_employee_id",
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("evil"),
            );
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("evil2"),
            );
        }
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        id.strip(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("accept") && h.contains_key("x-forwarded-for"));
    }

    #[test]
    fn portcullis_preset_values() {
        let id = IdentityHeaders::new(&cfg(Preset::Portcullis));
        let mut h = HeaderMap::new();
        id.apply(&mut h, Some((&claims(), Some("T1"))));
        assert_eq!(h["x-auth-user-id"], "U1");
        assert_eq!(h["x-auth-email"], "a@example.com");
        assert_eq!(h["x-auth-name"], "Ada");
        assert_eq!(h["x-auth-roles"], "admin,dev");
        assert_eq!(h["x-auth-permissions"], "read");
        assert_eq!(h["x-auth-tenants"], "T1");
        assert_eq!(h["x-auth-tenant"], "T1");
        assert_eq!(h["x-auth-tenant-roles"], "owner");
        assert_eq!(h["x-employee-id"], "42");
    }

    /// The per-session memo never hands one tenant's, configuration's or
    /// session's headers to another.
    #[test]
    fn memoised_headers_follow_the_tenant_the_configuration_and_the_session() {
        let id = IdentityHeaders::new(&cfg(Preset::Portcullis));
        let c = claims();
        let injected = |id: &IdentityHeaders, c: &Claims, tenant: Option<&str>| {
            let mut h = HeaderMap::new();
            id.apply(&mut h, Some((c, tenant)));
            h
        };
        let first = injected(&id, &c, Some("T1"));
        assert_eq!(first["x-auth-tenant"], "T1");
        // Served from the memo: the same headers.
        assert_eq!(injected(&id, &c, Some("T1")), first);
        // Another tenant (or none) on the same session: computed for it.
        let other = injected(&id, &c, Some("T9"));
        assert_eq!(other["x-auth-tenant"], "T9");
        assert_eq!(other["x-auth-tenant-roles"], "");
        assert!(!injected(&id, &c, None).contains_key("x-auth-tenant"));
        // Another configuration (a reload): its own preset's headers.
        let h = injected(
            &IdentityHeaders::new(&cfg(Preset::OAuth2Proxy)),
            &c,
            Some("T1"),
        );
        assert_eq!(h["x-forwarded-user"], "U1");
        assert!(!h.contains_key("x-auth-user-id"));
        // Another session under the first configuration: its own claims.
        let bob = match json!({"sub": "U2", "roles": ["viewer"]}) {
            serde_json::Value::Object(m) => Claims::from_verified(m),
            _ => unreachable!(),
        };
        let h = injected(&id, &bob, Some("T1"));
        assert_eq!(h["x-auth-user-id"], "U2");
        assert_eq!(h["x-auth-roles"], "viewer");
        assert!(!h.contains_key("x-auth-email"));
        assert_eq!(injected(&id, &c, Some("T1")), first);
    }

    #[test]
    fn other_presets() {
        let mut h = HeaderMap::new();
        IdentityHeaders::new(&cfg(Preset::OAuth2Proxy)).apply(&mut h, Some((&claims(), None)));
        assert_eq!(h["x-forwarded-user"], "U1");
        assert_eq!(h["x-forwarded-email"], "a@example.com");
        assert_eq!(h["x-forwarded-groups"], "admin,dev");
        assert_eq!(h["x-forwarded-preferred-username"], "Ada");
        assert!(!h.contains_key("x-auth-user-id"));
        let mut h = HeaderMap::new();
        IdentityHeaders::new(&cfg(Preset::Authelia)).apply(&mut h, Some((&claims(), None)));
        assert_eq!(h["remote-user"], "U1");
        assert_eq!(h["remote-groups"], "admin,dev");
        assert_eq!(h["remote-name"], "Ada");
        assert_eq!(h["remote-email"], "a@example.com");
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let id = IdentityHeaders::new(&cfg(Preset::Portcullis));
        let c = match json!({"sub": "U1", "name": "Ada\r\nX-Auth-Roles: admin"}) {
            serde_json::Value::Object(m) => Claims::from_verified(m),
            _ => unreachable!(),
        };
        let mut h = HeaderMap::new();
        id.apply(&mut h, Some((&c, None)));
        assert!(!h.contains_key("x-auth-name"));
        assert_eq!(h["x-auth-roles"], "");
    }
}

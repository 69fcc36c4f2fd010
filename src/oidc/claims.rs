//! Claims mapping: a provider's claims into the shape every route rule,
//! header preset, `/me` and the identity assertion read — `roles`,
//! `permissions` (lists of strings) and `tenants` (`{id: {...}}`) at the
//! top level, from dotted paths such as `realm_access.roles` (Keycloak) or
//! `groups`. Pure.

use serde_json::{Map, Value};

/// The value at a dotted path (`a.b.c`); a key that itself contains dots
/// is found too (`https://example.com/roles`, Auth0's namespaced claims).
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match claims.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// Strings of a claim that is a string list, a single string, or a
/// space/comma separated string (some providers send roles that way).
fn strings(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| Value::String(s.to_owned()))
            .collect(),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The mapped claims: `claims` with `roles`, `permissions` and (when
/// `tenants` is set) `tenants` replaced by the values found at the
/// configured paths. A path that finds nothing yields an empty list, never
/// the provider's own claim of that name by accident.
pub fn map_claims(
    mut claims: Map<String, Value>,
    roles: &str,
    permissions: &str,
    tenants: Option<&str>,
) -> Map<String, Value> {
    let found = |c: &Map<String, Value>, p: &str| lookup(c, p).map(strings).unwrap_or_default();
    let mapped_roles = found(&claims, roles);
    let mapped_permissions = found(&claims, permissions);
    let mapped_tenants = tenants.map(|p| match lookup(&claims, p) {
        // Already Descope-shaped: {id: {roles, permissions}}.
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(other) => Value::Object(
            strings(other)
                .into_iter()
                .filter_map(|id| {
                    id.as_str()
                        .map(|s| (s.to_owned(), Value::Object(Map::new())))
                })
                .collect(),
        ),
        None => Value::Object(Map::new()),
    });
    claims.insert("roles".into(), Value::Array(mapped_roles));
    claims.insert("permissions".into(), Value::Array(mapped_permissions));
    match mapped_tenants {
        Some(t) => {
            claims.insert("tenants".into(), t);
        }
        None => {
            // Without tenants_claim no tenant rule can pass on a provider's
            // look-alike claim.
            claims.remove("tenants");
            claims.remove("dct");
        }
    }
    claims
}

/// `base` with `userinfo` merged in: userinfo wins for profile claims, but
/// never for the token's own registered claims, and only when it names the
/// same subject (OpenID Connect Core §5.3.2).
pub fn merge_userinfo(
    mut base: Map<String, Value>,
    userinfo: Map<String, Value>,
) -> Option<Map<String, Value>> {
    if userinfo.get("sub") != base.get("sub") {
        return None;
    }
    for (k, v) in userinfo {
        if !matches!(
            k.as_str(),
            "iss"
                | "aud"
                | "azp"
                | "exp"
                | "iat"
                | "nbf"
                | "nonce"
                | "sub"
                | "auth_time"
                | "at_hash"
        ) {
            base.insert(k, v);
        }
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn dotted_paths_and_shapes() {
        let c = map(json!({
            "sub": "u1",
            "realm_access": {"roles": ["admin", "user"]},
            "https://example.com/perms": "read write",
            "groups": "eng",
            "roles": ["not-these"],
            "orgs": ["t1", "t2"],
        }));
        let m = map_claims(
            c,
            "realm_access.roles",
            "https://example.com/perms",
            Some("orgs"),
        );
        assert_eq!(m["roles"], json!(["admin", "user"]));
        assert_eq!(m["permissions"], json!(["read", "write"]));
        assert_eq!(m["tenants"], json!({"t1": {}, "t2": {}}));
        let m = map_claims(
            map(json!({"sub": "u1", "groups": "eng", "tenants": {"t": {}}, "dct": "t"})),
            "groups",
            "missing",
            None,
        );
        assert_eq!(m["roles"], json!(["eng"]));
        assert_eq!(m["permissions"], json!([]));
        assert!(m.get("tenants").is_none() && m.get("dct").is_none());
    }

    #[test]
    fn userinfo_must_name_the_same_subject() {
        let base = map(json!({"sub": "u1", "iss": "https://op", "email": "old@x"}));
        let merged = merge_userinfo(
            base.clone(),
            map(json!({"sub": "u1", "email": "new@x", "iss": "evil"})),
        )
        .expect("same sub");
        assert_eq!(merged["email"], "new@x");
        assert_eq!(merged["iss"], "https://op");
        assert!(merge_userinfo(base, map(json!({"sub": "u2", "email": "x"}))).is_none());
    }
}

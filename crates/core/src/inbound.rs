//! Inbound header hygiene: the one place that knows which request headers
//! the gateway treats specially, and the one name normalisation they are
//! all compared under. Pure: a header map in, the same map cleaned.
//!
//! Upstream stacks do not agree on header names. CGI/WSGI/Rack/PHP turn
//! `X-Forwarded-For` and `X_Forwarded_For` alike into
//! `HTTP_X_FORWARDED_FOR`; nginx with `underscores_in_headers` passes both.
//! So every comparison below runs on [`normalize_name`] (lower case, `_` →
//! `-`), and every header of a special kind is handled in all its spellings
//! and all its duplicates — a spoofed value must never survive under a
//! spelling the gateway did not look at.
//!
//! Kinds (see [`Special`]):
//! - identity headers (this gateway's, every preset's, other proxies'):
//!   always removed; the verified identity is injected afterwards;
//! - path overrides (`X-Original-URL`, `X-Rewrite-URL`): always removed —
//!   the gateway forwards the path it decided on and nothing else may name
//!   another one;
//! - client address, scheme and host hints of other proxies and CDNs
//!   (`X-Client-IP`, `True-Client-IP`, `X-Forwarded-Ssl`, `X-Host`, …):
//!   always removed; the gateway sets `X-Forwarded-For/-Proto/-Host` and
//!   `X-Real-IP` itself;
//! - the forwarding headers a trusted proxy may set (`X-Forwarded-For`,
//!   `-Proto`, `-Port`, `-Prefix`, `-Uri`, `Forwarded`, …): kept from a
//!   trusted peer in their canonical spelling only, removed otherwise;
//! - headers the gateway always writes itself (`X-Forwarded-Host`,
//!   `X-Real-IP`, `X-Request-Id`): removed in every spelling, then set;
//! - method overrides (`X-HTTP-Method-Override`, …): judged in every
//!   spelling before forwarding ([`method_override_values`]); the
//!   canonical spelling goes on, other spellings are removed.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::identity::IdentityHeaders;
pub use crate::identity::normalize_name;

/// How the gateway treats an inbound header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Identity,
    PathOverride,
    ClientHint,
    /// Kept from a trusted proxy in its canonical spelling.
    Forwarding,
    /// Set by the gateway on every forwarded request.
    GatewayOwned,
    MethodOverride,
}

/// Headers with which frameworks let a POST act as another method
/// (Rack, Symfony/Laravel, Express `method-override`, ASP.NET, Spring's
/// `HiddenHttpMethodFilter` reads only `_method`).
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query and form field Rails, Laravel/Symfony, Express
/// `method-override` and Spring's `HiddenHttpMethodFilter` read.
pub const METHOD_OVERRIDE_PARAM: &str = "_method";

/// Path overrides: IIS URL Rewrite and frameworks built on it (older
/// Symfony, Zend, Laminas) serve these instead of the request line.
const PATH_OVERRIDES: &[&str] = &["x-original-url", "x-rewrite-url"];

/// What a trusted proxy in front may tell (canonical spelling only).
const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-method",
    "x-original-uri",
    "x-original-method",
    "forwarded",
];

/// What the gateway always writes itself.
const GATEWAY_OWNED: &[&str] = &["x-forwarded-host", "x-real-ip", "x-request-id"];

/// Other proxies' and CDNs' client-address, scheme and host hints. An app
/// behind another proxy may well trust one of these; behind this gateway
/// none of them is ever set by anyone but the client.
const CLIENT_HINTS: &[&str] = &[
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-proxyuser-ip",
    "x-forwarded",
    "forwarded-for",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
    "x-host",
    "x-original-host",
    "x-http-host-override",
];

/// Classifies a header name (already lower case, as `HeaderMap` keeps it).
pub fn classify(name: &str, identity: &IdentityHeaders) -> Option<Special> {
    let n: std::borrow::Cow<'_, str> = if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase())
    {
        normalize_name(name).into()
    } else {
        name.into()
    };
    let n = n.as_ref();
    if identity.is_identity_header(n) {
        Some(Special::Identity)
    } else if PATH_OVERRIDES.contains(&n) {
        Some(Special::PathOverride)
    } else if CLIENT_HINTS.contains(&n) {
        Some(Special::ClientHint)
    } else if FORWARDING.contains(&n) {
        Some(Special::Forwarding)
    } else if GATEWAY_OWNED.contains(&n) {
        Some(Special::GatewayOwned)
    } else if METHOD_OVERRIDE_HEADERS.contains(&n) {
        Some(Special::MethodOverride)
    } else {
        None
    }
}

/// Removes every inbound header the gateway must not pass on as sent (see
/// the module docs); `trusted_peer` keeps a trusted proxy's forwarding
/// headers in their canonical spelling.
pub fn scrub(headers: &mut HeaderMap, trusted_peer: bool, identity: &IdentityHeaders) {
    // Collected first (a `HeaderMap` cannot be changed while iterating);
    // nothing is allocated unless something is to be removed.
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let canonical = !n.contains('_');
        let remove = match classify(n, identity) {
            None => false,
            Some(Special::Forwarding) => !(trusted_peer && canonical),
            Some(Special::MethodOverride) => !canonical,
            Some(
                Special::Identity
                | Special::PathOverride
                | Special::ClientHint
                | Special::GatewayOwned,
            ) => true,
        };
        if remove {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(&name);
    }
}

/// Every value of every method-override header, in any spelling.
pub fn method_override_values(headers: &HeaderMap) -> impl Iterator<Item = &HeaderValue> {
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            let n: std::borrow::Cow<'_, str> = if n.contains('_') {
                normalize_name(n).into()
            } else {
                n.into()
            };
            METHOD_OVERRIDE_HEADERS.contains(&n.as_ref())
        })
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ForwardToken, IdentityConfig, Preset};

    fn identity() -> IdentityHeaders {
        IdentityHeaders::new(&IdentityConfig {
            preset: Preset::Portcullis,
            forward_token: ForwardToken::None,
            strip_headers: Vec::new(),
            extra_headers: Vec::new(),
            assertion: None,
        })
    }

    fn map(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for n in names {
            let name = HeaderName::from_bytes(n.as_bytes()).expect("valid name");
            h.append(name.clone(), HeaderValue::from_static("evil"));
            h.append(name, HeaderValue::from_static("evil2"));
        }
        h
    }

    #[test]
    fn every_spelling_of_every_special_header() {
        let id = identity();
        let always = [
            "x-original-url",
            "X_Original_URL",
            "x-rewrite-url",
            "x_rewrite_url",
            "x-client-ip",
            "X_Client_IP",
            "true-client-ip",
            "cf-connecting-ip",
            "x-forwarded-ssl",
            "x_forwarded_ssl",
            "x-forwarded-scheme",
            "x-host",
            "x_host",
            "x-forwarded-host",
            "X_Forwarded_Host",
            "x-real-ip",
            "x_real_ip",
            "x-request-id",
            "x_forwarded_for",
            "X_Forwarded_Proto",
            "x_original_uri",
            "X_HTTP_Method_Override",
            "x_http_method",
            "x_method_override",
            "x-forwarded-client-cert",
            "x_forwarded_client_cert",
            "x-amzn-oidc-identity",
            "x-amzn-oidc-data",
            "x-goog-authenticated-user-email",
            "x-goog-iap-jwt-assertion",
            "x-ms-client-principal-name",
            "x-ms-client-principal",
            "x-ms-token-aad-id-token",
            "x-consumer-username",
            "x-consumer-id",
            "x-credential-identifier",
            "x-authenticated-userid",
            "cf-access-authenticated-user-email",
            "x-auth-user-id",
            "X_Auth_User_Id",
        ];
        let trusted_only = [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "forwarded",
            "x-original-uri",
        ];
        let kept = [
            "accept",
            "x-http-method-override",
            "x-custom",
            "x-forwardedfor",
        ];
        for trusted in [false, true] {
            let mut all: Vec<&str> = always.to_vec();
            all.extend(trusted_only);
            all.extend(kept);
            let mut h = map(&all);
            scrub(&mut h, trusted, &id);
            for n in always {
                let name = HeaderName::from_bytes(n.as_bytes()).expect("valid");
                assert!(!h.contains_key(&name), "{n} survived (trusted={trusted})");
            }
            for n in trusted_only {
                assert_eq!(h.contains_key(n), trusted, "{n} (trusted={trusted})");
            }
            for n in kept {
                assert_eq!(h.get_all(n).iter().count(), 2, "{n} kept with duplicates");
            }
        }
    }

    #[test]
    fn method_overrides_are_found_in_every_spelling() {
        let h = map(&[
            "x-http-method-override",
            "X_HTTP_Method_Override",
            "x_http_method",
            "x-method-override",
            "x-other",
        ]);
        assert_eq!(method_override_values(&h).count(), 8);
    }
}

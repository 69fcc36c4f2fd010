//! OpenID Provider discovery (OpenID Connect Discovery 1.0 §4): the
//! document at `{issuer}/.well-known/openid-configuration`, checked.

use serde::Deserialize;

/// Largest discovery document accepted.
const MAX_BYTES: usize = 256 * 1024;

/// What the gateway uses of the provider's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: url::Url,
    pub token_endpoint: url::Url,
    pub jwks_uri: url::Url,
    pub userinfo_endpoint: Option<url::Url>,
    pub introspection_endpoint: Option<url::Url>,
    pub revocation_endpoint: Option<url::Url>,
    pub end_session_endpoint: Option<url::Url>,
    pub auth_methods: Vec<String>,
    /// Whether the provider adds `iss` to authorization responses (RFC 9207).
    pub iss_parameter: bool,
}

#[derive(Deserialize)]
struct Raw {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    userinfo_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Why a discovery document was not used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery request failed: {0}")]
    Transport(String),
    #[error("discovery endpoint answered HTTP {0}")]
    Status(u16),
    #[error("discovery document is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("discovery document lacks `{0}`")]
    Missing(&'static str),
    #[error("discovery `issuer` is {found:?}, not the configured issuer exactly")]
    IssuerMismatch { found: String },
    #[error("discovery `{0}` is not an https URL (plain http only on loopback)")]
    Insecure(&'static str),
    #[error("discovery document is larger than {MAX_BYTES} bytes")]
    TooLarge,
}

/// Fetches and checks the document of `issuer`.
pub async fn fetch(http: &reqwest::Client, issuer: &str) -> Result<Metadata, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| DiscoveryError::Transport(crate::http_util::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(DiscoveryError::Status(resp.status().as_u16()));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| DiscoveryError::Transport(e.to_string()))?;
    if body.len() > MAX_BYTES {
        return Err(DiscoveryError::TooLarge);
    }
    parse(&body, issuer)
}

/// Checks a document: the `issuer` equals the configured one exactly
/// (OpenID Connect Discovery §4.3), the endpoints the code flow needs are
/// there, and every endpoint is https (or http on a loopback host).
pub fn parse(body: &[u8], issuer: &str) -> Result<Metadata, DiscoveryError> {
    let raw: Raw = serde_json::from_slice(body)?;
    let found = raw.issuer.ok_or(DiscoveryError::Missing("issuer"))?;
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch { found });
    }
    let required = |v: Option<String>, key: &'static str| -> Result<url::Url, DiscoveryError> {
        let v = v.ok_or(DiscoveryError::Missing(key))?;
        endpoint(&v, key)
    };
    let optional =
        |v: Option<String>, key: &'static str| -> Result<Option<url::Url>, DiscoveryError> {
            v.map(|v| endpoint(&v, key)).transpose()
        };
    Ok(Metadata {
        issuer: found,
        authorization_endpoint: required(raw.authorization_endpoint, "authorization_endpoint")?,
        token_endpoint: required(raw.token_endpoint, "token_endpoint")?,
        jwks_uri: required(raw.jwks_uri, "jwks_uri")?,
        userinfo_endpoint: optional(raw.userinfo_endpoint, "userinfo_endpoint")?,
        introspection_endpoint: optional(raw.introspection_endpoint, "introspection_endpoint")?,
        revocation_endpoint: optional(raw.revocation_endpoint, "revocation_endpoint")?,
        end_session_endpoint: optional(raw.end_session_endpoint, "end_session_endpoint")?,
        // RFC 8414: absent means client_secret_basic.
        auth_methods: raw
            .token_endpoint_auth_methods_supported
            .unwrap_or_else(|| vec!["client_secret_basic".into()]),
        iss_parameter: raw.authorization_response_iss_parameter_supported,
    })
}

fn endpoint(v: &str, key: &'static str) -> Result<url::Url, DiscoveryError> {
    let u = url::Url::parse(v).map_err(|_| DiscoveryError::Missing(key))?;
    if is_secure(&u) {
        Ok(u)
    } else {
        Err(DiscoveryError::Insecure(key))
    }
}

/// https, or http on a loopback host (a provider on the same machine, tests).
pub fn is_secure(u: &url::Url) -> bool {
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://op.example.com/oidc";

    fn doc(extra: &str) -> String {
        format!(
            r#"{{"issuer":"{ISS}","authorization_endpoint":"https://op.example.com/oidc/auth",
            "token_endpoint":"https://op.example.com/oidc/token","jwks_uri":"https://op.example.com/oidc/jwks"{extra}}}"#
        )
    }

    #[test]
    fn a_good_document() {
        let m = parse(
            doc(r#","end_session_endpoint":"https://op.example.com/oidc/session/end""#).as_bytes(),
            ISS,
        )
        .expect("valid");
        assert_eq!(
            m.token_endpoint.as_str(),
            "https://op.example.com/oidc/token"
        );
        assert!(m.end_session_endpoint.is_some());
        assert_eq!(m.auth_methods, ["client_secret_basic"]);
    }

    #[test]
    fn bad_documents() {
        let cases = [
            (
                doc("").replace(ISS, "https://op.example.com/oidc/"),
                "issuer",
            ),
            (
                doc("").replace(
                    r#""jwks_uri":"https://op.example.com/oidc/jwks""#,
                    r#""x":1"#,
                ),
                "jwks_uri",
            ),
            (
                doc("").replace(
                    "https://op.example.com/oidc/token",
                    "http://op.example.com/oidc/token",
                ),
                "token_endpoint",
            ),
            (
                doc(r#","userinfo_endpoint":"http://evil.example/me""#),
                "userinfo",
            ),
            ("[]".to_owned(), "json"),
        ];
        for (body, what) in cases {
            assert!(parse(body.as_bytes(), ISS).is_err(), "{what}");
        }
        assert!(parse(doc("").as_bytes(), "https://other.example").is_err());
    }

    #[test]
    fn loopback_may_be_http() {
        for (u, ok) in [
            ("http://127.0.0.1:9400/x", true),
            ("http://localhost/x", true),
            ("http://[::1]/x", true),
            ("http://10.0.0.1/x", false),
            ("http://op.example/x", false),
            ("https://op.example/x", true),
            ("ftp://op.example/x", false),
        ] {
            assert_eq!(is_secure(&url::Url::parse(u).unwrap()), ok, "{u}");
        }
    }
}

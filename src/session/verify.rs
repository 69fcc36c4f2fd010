//! Token checks, pure: token + key in, claims or a reason out.
//!
//! Order: header (`alg` must be RS256/384/512 or ES256/384, never `none` or
//! HMAC; `kid` required) → the key for `kid` (caller) → `alg` equal to the
//! key's → signature, `exp` (required), `nbf`, with [`DEFAULT_LEEWAY`]
//! (jsonwebtoken, aws-lc backend) → issuer (node SDK rule) → audience →
//! `drn` for the token kind.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::SessionError;
use super::cache::TokenKind;
use super::jwks::{VerifyKey, supported_alg};

/// Clock skew tolerated on `exp` and `nbf`, in seconds (as every Descope SDK).
pub const DEFAULT_LEEWAY: u64 = 5;
/// Longest token looked at; longer input is refused before any work.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest token-supplied string (`kid`, `iss`) echoed into a log line.
const MAX_LOGGED_CHARS: usize = 64;

/// The `drn` of a refresh token.
const REFRESH_DRN: &str = "DSR";

/// The parts of the JOSE header we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Reads the header of a compact JWS without trusting it: three
/// dot-separated parts, a base64url JSON object with a supported `alg` and a
/// `kid`. Rejects `none`, HMAC and anything else up front.
pub fn parse_header(token: &str) -> Result<TokenHeader, SessionError> {
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        return Err(SessionError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || sig.is_empty() {
        // An empty signature is what `alg: none` tokens carry.
        return Err(
            if header_alg(header).is_some_and(|a| supported_alg(&a).is_none()) {
                SessionError::UnsupportedAlg
            } else {
                SessionError::Malformed
            },
        );
    }
    let raw = decode_header(header)?;
    let alg = raw
        .alg
        .as_deref()
        .and_then(supported_alg)
        .ok_or(SessionError::UnsupportedAlg)?;
    if raw.crit.is_some() {
        // No extension is understood, so any critical one must be refused.
        return Err(SessionError::Rejected("critical header extension"));
    }
    let kid = raw
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(SessionError::MissingKid)?;
    Ok(TokenHeader { alg, kid })
}

fn decode_header(header: &str) -> Result<RawHeader, SessionError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| SessionError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| SessionError::Malformed)
}

fn header_alg(header: &str) -> Option<String> {
    decode_header(header).ok().and_then(|h| h.alg)
}

/// The checks that depend on configuration, built once.
pub struct Verifier {
    project_id: String,
    audience: String,
    /// One `Validation` per supported algorithm (exp required, nbf checked,
    /// 5 s leeway; aud and iss are checked here, stricter than the library).
    validations: [(Algorithm, Validation); 5],
}

impl Verifier {
    pub fn new(project_id: &str, audience: &str) -> Self {
        let v = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = DEFAULT_LEEWAY;
            v.validate_exp = true;
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp"]);
            // Audience: checked in `check_audience` (a non-string `aud`
            // must fail, which the library lets through).
            v.validate_aud = false;
            (alg, v)
        };
        Self {
            project_id: project_id.to_owned(),
            audience: audience.to_owned(),
            validations: [
                v(Algorithm::RS256),
                v(Algorithm::RS384),
                v(Algorithm::RS512),
                v(Algorithm::ES256),
                v(Algorithm::ES384),
            ],
        }
    }

    /// Verifies `token` (whose header is `header`) with `key`, then the
    /// claims for `kind`. Returns the claim map and the last UNIX second at
    /// which the token is still valid (`exp` + leeway).
    pub fn verify(
        &self,
        token: &str,
        header: &TokenHeader,
        key: &VerifyKey,
        kind: TokenKind,
    ) -> Result<(Map<String, Value>, u64), SessionError> {
        if header.alg != key.alg {
            return Err(SessionError::AlgMismatch);
        }
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == key.alg)
            .map(|(_, v)| v)
            .ok_or(SessionError::UnsupportedAlg)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let claims = data.claims;
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(SessionError::MissingExp)?;
        self.check_issuer(claims.get("iss"), &header.kid)?;
        check_audience(claims.get("aud"), &self.audience)?;
        let is_refresh = claims.get("drn").and_then(Value::as_str) == Some(REFRESH_DRN);
        match (kind, is_refresh) {
            (TokenKind::Session, false) | (TokenKind::Refresh, true) => {}
            (TokenKind::Session, true) | (TokenKind::Refresh, false) => {
                return Err(SessionError::WrongTokenKind);
            }
        }
        Ok((claims, exp.saturating_add(DEFAULT_LEEWAY)))
    }

    fn check_issuer(&self, iss: Option<&Value>, kid: &str) -> Result<(), SessionError> {
        let iss = iss.and_then(Value::as_str);
        if iss.is_some_and(|i| issuer_matches_project(i, &self.project_id)) {
            return Ok(());
        }
        tracing::debug!(
            kid = ?for_log(kid),
            iss = ?for_log(iss.unwrap_or("<absent>")),
            "token issuer is not this project"
        );
        Err(SessionError::BadIssuer)
    }
}

/// A token-supplied string cut to [`MAX_LOGGED_CHARS`] for a log line; log
/// it with `?` so control characters are escaped.
pub fn for_log(s: &str) -> &str {
    match s.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `exp` as whole seconds (a JSON integer, or a float rounded down).
fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// The node SDK's `issuerMatchesProject`: `iss` equals the project id, or
/// the project id is the last or second-to-last non-empty segment of the
/// URL path (or, when `iss` is not a URL, of the string split on `/`). A
/// URL's host never counts: `https://<pid>/other` is refused.
pub fn issuer_matches_project(iss: &str, project_id: &str) -> bool {
    if project_id.is_empty() {
        return false;
    }
    if iss == project_id {
        return true;
    }
    let matches = |segments: Vec<&str>| {
        let n = segments.len();
        (n >= 1 && segments[n - 1] == project_id) || (n >= 2 && segments[n - 2] == project_id)
    };
    match url::Url::parse(iss) {
        Ok(u) => matches(u.path().split('/').filter(|s| !s.is_empty()).collect()),
        Err(_) => matches(iss.split('/').filter(|s| !s.is_empty()).collect()),
    }
}

/// `aud`, when present, must be the audience or an array holding it. Any
/// other shape (number, object, array without it) is refused.
fn check_audience(aud: Option<&Value>, audience: &str) -> Result<(), SessionError> {
    let ok = match aud {
        None => true,
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(audience)),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(SessionError::BadAudience)
    }
}

fn map_jwt_error(kind: &ErrorKind) -> SessionError {
    match kind {
        ErrorKind::InvalidSignature => SessionError::BadSignature,
        ErrorKind::ExpiredSignature => SessionError::Expired,
        ErrorKind::ImmatureSignature => SessionError::NotYetValid,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => SessionError::MissingExp,
        ErrorKind::InvalidClaimFormat(_) => SessionError::Rejected("claim of the wrong type"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => SessionError::AlgMismatch,
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            SessionError::Rejected("signing key is unusable")
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => SessionError::Malformed,
        // Any other library error denies too.
        _ => SessionError::Rejected("token verification failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issuer_rule_follows_the_node_sdk() {
        let pid = "project-id";
        let cases = [
            ("project-id", true),
            ("https://descope.com/bla/project-id", true),
            ("https://api.descope.com/project-id", true),
            ("https://api.descope.com/v1/apps/project-id", true),
            (
                "https://auth.example.com/v1/apps/agentic/project-id/mcp-server-id-segment",
                true,
            ),
            ("https://api.descope.com/project-id/", true),
            ("some/project-id", true),
            ("project-id/x", true),
            ("https://project-id/other", false),
            ("https://project-id", false),
            (
                "https://auth.example.com/v1/apps/project-id/mcp-server/extra",
                false,
            ),
            ("https://descope.com/bla/bla", false),
            ("https://descope.com/project-id-2", false),
            ("Project-Id", false),
            ("", false),
            ("other", false),
        ];
        for (iss, want) in cases {
            assert_eq!(issuer_matches_project(iss, pid), want, "iss {iss:?}");
        }
        assert!(!issuer_matches_project("", ""));
    }

    #[test]
    fn audience_rule() {
        let cases = [
            (None, true),
            (Some(json!("aud-1")), true),
            (Some(json!(["x", "aud-1"])), true),
            (Some(json!("x")), false),
            (Some(json!([])), false),
            (Some(json!(["x"])), false),
            (Some(json!(5)), false),
            (Some(json!({"aud-1": true})), false),
            (Some(json!(null)), false),
        ];
        for (aud, want) in cases {
            assert_eq!(
                check_audience(aud.as_ref(), "aud-1").is_ok(),
                want,
                "aud {aud:?}"
            );
        }
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn header_checks() {
        let body = b64(&json!({"exp": 1}));
        let tok = |h: Value, sig: &str| format!("{}.{}.{}", b64(&h), body, sig);
        let cases: Vec<(String, Result<TokenHeader, SessionError>)> = vec![
            (
                tok(json!({"alg":"ES384","kid":"k"}), "c2ln"),
                Ok(TokenHeader {
                    alg: Algorithm::ES384,
                    kid: "k".into(),
                }),
            ),
            (
                tok(json!({"alg":"none","kid":"k"}), ""),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"none","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"HS256","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"HS512","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"PS256","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"EdDSA","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"es256","kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"kid":"k"}), "c2ln"),
                Err(SessionError::UnsupportedAlg),
            ),
            (
                tok(json!({"alg":"RS256"}), "c2ln"),
                Err(SessionError::MissingKid),
            ),
            (
                tok(json!({"alg":"RS256","kid":""}), "c2ln"),
                Err(SessionError::MissingKid),
            ),
            (
                tok(json!({"alg":"RS256","kid":"k","crit":["b64"]}), "c2ln"),
                Err(SessionError::Rejected("critical header extension")),
            ),
            (
                tok(json!({"alg":"RS256","kid":"k"}), ""),
                Err(SessionError::Malformed),
            ),
            ("garbage".into(), Err(SessionError::Malformed)),
            ("a.b".into(), Err(SessionError::Malformed)),
            ("a.b.c.d".into(), Err(SessionError::Malformed)),
            ("!!!.b.c".into(), Err(SessionError::Malformed)),
            (
                format!("{}.b.c", URL_SAFE_NO_PAD.encode("[1]")),
                Err(SessionError::Malformed),
            ),
            (
                "x".repeat(DEFAULT_MAX_TOKEN_BYTES + 1),
                Err(SessionError::Malformed),
            ),
            (String::new(), Err(SessionError::Malformed)),
        ];
        for (token, want) in cases {
            let got = parse_header(&token);
            assert_eq!(
                format!("{got:?}"),
                format!("{want:?}"),
                "token {}",
                &token[..token.len().min(60)]
            );
        }
    }

    #[test]
    fn log_strings_are_cut_on_char_boundaries() {
        assert_eq!(for_log("kid-1"), "kid-1");
        let long = "é".repeat(100);
        assert_eq!(for_log(&long).chars().count(), MAX_LOGGED_CHARS);
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&json!(10)), Some(10));
        assert_eq!(numeric_date(&json!(10.7)), Some(10));
        assert_eq!(numeric_date(&json!(-1)), None);
        assert_eq!(numeric_date(&json!("10")), None);
    }
}

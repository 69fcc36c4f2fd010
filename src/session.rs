//! Session token validation (the authenticate phase of `decide`).
//!
//! ```text
//! token ─► SHA-256 ─► claims cache ── hit (same epoch, before exp+leeway) ─► Arc<Claims>
//!                         │ miss
//!                         ▼
//!          verify::parse_header (alg allow-list, kid)
//!                         ▼
//!          jwks: key by kid ── unknown ─► rate-limited, single-flight refetch (wait ≤ 1 s)
//!                         ▼
//!          verify::Verifier (alg = key alg, signature, exp/nbf ±5 s, iss, aud, drn)
//!                         ▼
//!          cache insert (under the epoch read before the key lookup) ─► Arc<Claims>
//! ```
//!
//! The hot path (a repeat token) is a SHA-256 and one read of one of the
//! cache's shards; no global lock. A key-set change or [`SessionValidator::flush_cache`]
//! starts a new cache epoch, so nothing verified with a rotated-out key is
//! served again. Tokens are never logged; failures log kid and reason at
//! debug.

pub mod cache;
pub mod jwks;
pub mod verify;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::time::unix_now;

use tracing::debug;

use crate::claims::Claims;
use crate::metrics::Metrics;

pub use cache::TokenKind;
use cache::{CacheKey, ClaimsCache, Lookup};
pub use jwks::FetchOutcome;
use jwks::{JwksCache, JwksSource, KeySet};
use verify::Verifier;

/// Why a token was not accepted. Every variant denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a compact JWS (three base64url parts), undecodable header or
    /// payload, or longer than `verify::DEFAULT_MAX_TOKEN_BYTES`.
    #[error("token is malformed")]
    Malformed,
    /// Past `exp` (+ 5 s leeway). The only variant worth a silent refresh.
    #[error("token has expired")]
    Expired,
    /// No key set is loaded (no seed, Descope unreachable so far): a
    /// dependency failure rather than a bad token.
    #[error("signing keys are unavailable")]
    KeysUnavailable,
    /// Refused for a reason with no variant of its own (a critical header
    /// extension, a claim of the wrong type, an unusable key).
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    /// Header `alg` is `none`, HMAC or anything but RS256/384/512, ES256/384.
    #[error("token algorithm is not accepted")]
    UnsupportedAlg,
    /// Header has no `kid`.
    #[error("token has no key id")]
    MissingKid,
    /// No key with the token's `kid`, even after a permitted refetch.
    #[error("token key id is unknown")]
    UnknownKid,
    /// Header `alg` differs from the key's `alg`.
    #[error("token algorithm does not match its key")]
    AlgMismatch,
    #[error("token signature is invalid")]
    BadSignature,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not yet valid")]
    NotYetValid,
    #[error("token has no expiry")]
    MissingExp,
    /// `iss` is not this project (node SDK rule).
    #[error("token issuer is not this project")]
    BadIssuer,
    /// `aud` is present and does not contain the configured audience.
    #[error("token audience does not include this gateway")]
    BadAudience,
    /// A refresh token (`drn = DSR`) offered as a session, or the reverse.
    #[error("token is of the wrong kind")]
    WrongTokenKind,
    /// Only from [`SessionValidator::new`]: the seed keys are not JSON or
    /// hold no usable signing key (details logged). Never for a token.
    #[error("seed keys (jwks_file / DESCOPE_PUBLIC_KEY) hold no usable signing key")]
    InvalidSeedKeys,
}

impl SessionError {
    /// Expired tokens (and only those) are worth a refresh without a log line.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }

    /// A short, stable name for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Expired => "expired",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Rejected(_) => "rejected",
            Self::UnsupportedAlg => "unsupported_alg",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::AlgMismatch => "alg_mismatch",
            Self::BadSignature => "bad_signature",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingExp => "missing_exp",
            Self::BadIssuer => "bad_issuer",
            Self::BadAudience => "bad_audience",
            Self::WrongTokenKind => "wrong_token_kind",
            Self::InvalidSeedKeys => "invalid_seed_keys",
        }
    }
}

/// Everything the validator needs, built from `[descope]` config.
pub struct ValidatorSettings {
    pub project_id: String,
    /// Tokens with `aud` must contain this.
    pub audience: String,
    /// `{base}/v2/keys/{project_id}`.
    pub jwks_url: url::Url,
    /// The shared Descope HTTP client (timeouts, TLS roots configured).
    pub http: reqwest::Client,
    pub jwks_min_refetch: Duration,
    pub jwks_refresh: Duration,
    /// Seed keys (JWKS JSON `{"keys":[...]}` or a single JWK), from `jwks_file`/`DESCOPE_PUBLIC_KEY`.
    pub seed_keys: Option<String>,
    /// Maximum number of verified tokens kept in the claims cache (0: no cache).
    pub cache_capacity: usize,
    pub metrics: Arc<Metrics>,
}

/// Verifies session and refresh JWTs against the project's keys.
pub struct SessionValidator {
    verifier: Verifier,
    jwks: Arc<JwksCache>,
    cache: Arc<ClaimsCache>,
    jwks_refresh: Duration,
}

impl SessionValidator {
    /// Builds the validator; fails only on unparsable seed keys (or seed
    /// keys with no usable key), as [`SessionError::InvalidSeedKeys`].
    /// Seed keys serve until the first successful fetch replaces them (the
    /// fetched set is authoritative: a key it lacks stops validating).
    pub fn new(settings: ValidatorSettings) -> Result<Arc<Self>, SessionError> {
        let seed = match settings.seed_keys.as_deref() {
            None => KeySet::default(),
            Some(text) => KeySet::from_seed_json(text).map_err(|e| {
                tracing::error!(error = %e, "seed keys are unusable");
                SessionError::InvalidSeedKeys
            })?,
        };
        let cache = Arc::new(ClaimsCache::new(settings.cache_capacity));
        let jwks = Arc::new(JwksCache::new(
            JwksSource {
                url: settings.jwks_url,
                infer_alg: false,
                descope_project: Some(settings.project_id.clone()),
                http: settings.http,
            },
            seed,
            settings.jwks_min_refetch,
            Arc::clone(&cache),
            settings.metrics,
        ));
        Ok(Arc::new(Self {
            verifier: Verifier::new(&settings.project_id, &settings.audience),
            jwks,
            cache,
            jwks_refresh: settings.jwks_refresh,
        }))
    }

    /// Starts the background task: first JWKS fetch now, then every
    /// `jwks_refresh`. The task ends when the validator is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.jwks.spawn_refresher(self.jwks_refresh)
    }

    /// True once a key set is loaded (seeded or fetched).
    pub fn keys_ready(&self) -> bool {
        !self.jwks.current().is_empty()
    }

    /// Verifies a session JWT (`drn` must not be `DSR`).
    pub async fn verify_session(&self, token: &str) -> Result<Arc<Claims>, SessionError> {
        self.verify(token, TokenKind::Session).await
    }

    /// Verifies a refresh JWT (`drn` must be `DSR`).
    pub async fn verify_refresh(&self, token: &str) -> Result<Arc<Claims>, SessionError> {
        self.verify(token, TokenKind::Refresh).await
    }

    /// Drops every cached verification result (config reload).
    pub fn flush_cache(&self) {
        self.cache.flush();
    }

    /// Fetches the key set now (bypassing the unknown-kid rate limit, joining
    /// a fetch under way) and waits for it.
    pub async fn refetch_now(&self) -> FetchOutcome {
        self.jwks.refetch_now().await
    }

    /// JWKS fetches attempted so far.
    pub fn jwks_fetch_count(&self) -> u64 {
        self.jwks.fetch_count()
    }

    /// Keys in the current set.
    pub fn key_count(&self) -> usize {
        self.jwks.current().len()
    }

    /// Verified tokens currently cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    async fn verify(&self, token: &str, kind: TokenKind) -> Result<Arc<Claims>, SessionError> {
        if token.len() > verify::DEFAULT_MAX_TOKEN_BYTES {
            return Err(SessionError::Malformed);
        }
        let key = CacheKey::new(token, kind);
        // Read before the key set: an insert under this epoch is dropped if
        // the keys change meanwhile.
        let epoch = self.cache.epoch();
        match self.cache.get(&key, unix_now()) {
            Lookup::Hit(claims) => return Ok(claims),
            Lookup::Expired => return Err(SessionError::Expired),
            Lookup::Miss => {}
        }
        let (claims, valid_until) = self.verify_uncached(token, kind).await?;
        let claims = Arc::new(Claims::from_verified(claims));
        self.cache
            .insert(key, Arc::clone(&claims), valid_until, epoch, unix_now());
        Ok(claims)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<(serde_json::Map<String, serde_json::Value>, u64), SessionError> {
        let header = verify::parse_header(token).inspect_err(|e| {
            debug!(reason = e.reason(), "token header refused");
        })?;
        // Take the key out before any await: a key-set guard is never held
        // across the unknown-kid wait.
        let known = self.jwks.current().get(&header.kid).cloned();
        let key = match known {
            Some(k) => k,
            None => {
                self.jwks.refetch_for_unknown_kid().await;
                let keys = self.jwks.current();
                match keys.get(&header.kid) {
                    Some(k) => Arc::clone(k),
                    None => {
                        let err = if keys.is_empty() {
                            SessionError::KeysUnavailable
                        } else {
                            SessionError::UnknownKid
                        };
                        debug!(
                            kid = ?verify::for_log(&header.kid),
                            reason = err.reason(),
                            "token refused"
                        );
                        return Err(err);
                    }
                }
            }
        };
        self.verifier
            .verify(token, &header, &key, kind)
            .inspect_err(|e| {
                debug!(
                    kid = ?verify::for_log(&header.kid),
                    reason = e.reason(),
                    "token refused"
                );
            })
    }
}

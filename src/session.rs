//! Session token validation (DESIGN §6). STUB: the session work replaces this file.

pub mod jwks;

use std::sync::Arc;
use std::time::Duration;

use crate::claims::Claims;
use crate::metrics::Metrics;

/// Why a token was not accepted. Every variant denies.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("token is malformed")]
    Malformed,
    #[error("token has expired")]
    Expired,
    #[error("signing keys are unavailable")]
    KeysUnavailable,
    #[error("token rejected: {0}")]
    Rejected(&'static str),
}

impl SessionError {
    /// Expired tokens (and only those) are worth a refresh without a log line.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
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
    /// Maximum number of verified tokens kept in the claims cache.
    pub cache_capacity: usize,
    pub metrics: Arc<Metrics>,
}

pub struct SessionValidator {
    _settings: ValidatorSettings,
}

impl SessionValidator {
    /// Builds the validator; fails only on unparsable seed keys.
    pub fn new(settings: ValidatorSettings) -> Result<Arc<Self>, SessionError> {
        Ok(Arc::new(Self {
            _settings: settings,
        }))
    }

    /// Starts the background task: first JWKS fetch now, then every `jwks_refresh`.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {})
    }

    /// True once a key set is loaded (seeded or fetched).
    pub fn keys_ready(&self) -> bool {
        false
    }

    /// Verifies a session JWT (`drn` must not be `DSR`).
    pub async fn verify_session(&self, token: &str) -> Result<Arc<Claims>, SessionError> {
        let _ = token;
        Err(SessionError::KeysUnavailable)
    }

    /// Verifies a refresh JWT (`drn` must be `DSR`).
    pub async fn verify_refresh(&self, token: &str) -> Result<Arc<Claims>, SessionError> {
        let _ = token;
        Err(SessionError::KeysUnavailable)
    }

    /// Drops every cached verification result (config reload).
    pub fn flush_cache(&self) {}
}

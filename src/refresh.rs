//! Transparent session refresh. STUB: the refresh work replaces this file.

use std::sync::Arc;
use std::time::Duration;

use crate::claims::Claims;
use crate::descope::DescopeClient;
use crate::metrics::Metrics;
use crate::session::SessionValidator;

/// A refreshed session.
#[derive(Debug)]
pub struct Refreshed {
    pub session_jwt: String,
    /// The refresh token to keep (new when rotated, else the one presented).
    pub refresh_jwt: String,
    /// Whether `refresh_jwt` changed (a new `DSR` cookie must be set).
    pub refresh_rotated: bool,
    pub claims: Arc<Claims>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token failed local verification; Descope was not called.
    #[error("refresh token invalid")]
    InvalidToken,
    /// Descope refused the refresh token (revoked, expired): clear cookies.
    #[error("session revoked")]
    Revoked,
    /// Descope could not be reached or is rate limiting: keep cookies, 503.
    #[error("descope unavailable")]
    Unavailable { retry_after: Option<Duration> },
}

pub struct Refresher {
    _client: DescopeClient,
    _validator: Arc<SessionValidator>,
    _reuse: Duration,
    _metrics: Arc<Metrics>,
}

impl Refresher {
    pub fn new(
        client: DescopeClient,
        validator: Arc<SessionValidator>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            _client: client,
            _validator: validator,
            _reuse: reuse,
            _metrics: metrics,
        })
    }

    /// Refreshes with one shared call per refresh token (single-flight), the
    /// result reused for `refresh_reuse`.
    pub async fn refresh(&self, refresh_jwt: &str) -> Result<Arc<Refreshed>, RefreshError> {
        let _ = refresh_jwt;
        Err(RefreshError::Unavailable { retry_after: None })
    }
}

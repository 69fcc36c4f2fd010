//! The gateway's Descope API client. STUB: the refresh work replaces this file.

use std::path::PathBuf;
use std::time::Duration;

use http::{Method, StatusCode};

/// Default timeout of one Descope call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Built from `[descope]`.
#[derive(Debug, Clone)]
pub struct DescopeSettings {
    pub base_url: url::Url,
    pub project_id: String,
    /// Appended to every Bearer value when the project disables public auth APIs.
    pub auth_management_key: Option<String>,
    pub timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the webpki roots.
    pub ca_file: Option<PathBuf>,
}

/// Why a Descope call failed.
#[derive(Debug, thiserror::Error)]
pub enum DescopeError {
    /// Descope answered 4xx with an error code (e.g. a revoked refresh token).
    #[error("descope refused the request ({status}, {code})")]
    Rejected { status: StatusCode, code: String },
    /// 429; `retry_after` from the `Retry-After` header.
    #[error("descope rate limit")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeout, connection error.
    #[error("descope unavailable")]
    Unavailable,
    /// A 2xx answer we could not use.
    #[error("unexpected response from descope")]
    InvalidResponse,
    /// Bad client setup (CA file, etc.).
    #[error("descope client setup: {0}")]
    Setup(String),
}

/// A raw answer, for flows that need more than tokens.
#[derive(Debug, Clone)]
pub struct DescopeReply {
    pub status: StatusCode,
    pub body: serde_json::Value,
    /// `(name, value)` of every `Set-Cookie` in the answer.
    pub set_cookies: Vec<(String, String)>,
}

/// Tokens from an auth answer (body or `Set-Cookie`).
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub session_jwt: String,
    /// `None` when Descope returned no new refresh token (keep the old one).
    pub refresh_jwt: Option<String>,
}

/// One shared connection pool to Descope.
#[derive(Debug, Clone)]
pub struct DescopeClient {
    http: reqwest::Client,
    settings: DescopeSettings,
}

impl DescopeClient {
    pub fn new(settings: DescopeSettings) -> Result<Self, DescopeError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| DescopeError::Setup(e.to_string()))?;
        Ok(Self { http, settings })
    }

    /// The shared HTTP client (also used for JWKS fetches).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn project_id(&self) -> &str {
        &self.settings.project_id
    }

    /// `{base}/v2/keys/{project_id}`.
    pub fn jwks_url(&self) -> url::Url {
        let mut u = self.settings.base_url.clone();
        u.set_path(&format!("/v2/keys/{}", self.settings.project_id));
        u
    }

    /// One API call with `Authorization: Bearer pid[:refresh][:auth_management_key]`.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        refresh_jwt: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<DescopeReply, DescopeError> {
        let _ = (method, path_and_query, refresh_jwt, body);
        Err(DescopeError::Unavailable)
    }

    /// `POST /v1/auth/refresh`.
    pub async fn refresh(&self, refresh_jwt: &str) -> Result<TokenPair, DescopeError> {
        let _ = refresh_jwt;
        Err(DescopeError::Unavailable)
    }

    /// `POST /v1/auth/logout` (or `/logoutall` when `all`).
    pub async fn logout(&self, refresh_jwt: &str, all: bool) -> Result<(), DescopeError> {
        let _ = (refresh_jwt, all);
        Err(DescopeError::Unavailable)
    }
}

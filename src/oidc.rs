//! The relying-party mode: any OpenID Provider (Authing / GenAuth,
//! Keycloak, Auth0, Okta, Descope's OIDC endpoints) instead of Descope's
//! session API. See docs/oidc.md.
//!
//! ```text
//! start: discovery ({issuer}/.well-known/openid-configuration, retried with
//!        backoff until it loads) ──► JWKS cache (same rules as Descope's keys)
//! /login ──► 302 authorization_endpoint (code, state, nonce, PKCE S256)
//! /oidc/callback ──► token endpoint (code) ──► ID token verified ──► userinfo merged
//!        ──► claims mapped (roles_claim, permissions_claim, tenants_claim)
//!        ──► sealed session cookie (AES-256-GCM under a key from [session] secret)
//! request ──► cookie opened ──► valid: claims │ expired: refresh_token grant (refresh.rs)
//!         ──► Bearer: JWT access token (JWKS) or RFC 7662 introspection (cached ≤ 60 s)
//! /logout ──► revocation_endpoint, then end_session_endpoint (id_token_hint)
//! ```
//!
//! Everything the provider says is checked before it becomes a session:
//! `iss` equals the configured issuer exactly, the ID token's signature,
//! `aud`/`azp`, `exp`, `iat`, `nonce` and algorithm (an allow-list; HS256,
//! keyed with the client secret, only when listed).

mod claims;
mod discovery;
mod sealed;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;

pub use claims::map_claims;
pub use discovery::Metadata;
pub use discovery::is_secure;
pub use sealed::{MAX_SESSION_AGE, SealedSession, Sealer};
pub use tokens::{OidcRefresh, TokenError, TokenResponse};

use crate::claims::Claims;
use crate::metrics::Metrics;
use crate::session::cache::ClaimsCache;
use crate::session::jwks::{JwksCache, JwksSource, KeySet};
use crate::single_flight::SingleFlight;
use portcullis_core::secret::Secret;

/// The leeway on a session's expiry, in seconds (as for tokens).
pub fn tokens_leeway() -> i64 {
    i64::try_from(tokens::LEEWAY_SECS).unwrap_or(5)
}

/// The sealed cookie value for a refreshed session (`None`: no sealer, or
/// the RNG failed).
/// `signed_in_at`: the sign-in time of the session refreshed.
pub fn seal_refreshed(
    sealer: Option<&Sealer>,
    r: &crate::refresh::Refreshed,
    signed_in_at: i64,
) -> Option<String> {
    let sealer = sealer?;
    sealer.seal(&SealedSession {
        claims: r.claims.as_map().clone(),
        expires_at: r.claims.expires_at().unwrap_or(0),
        refresh_token: Some(r.refresh_jwt.clone()),
        id_token: Some(r.session_jwt.clone()),
        signed_in_at: Some(signed_in_at),
    })
}

/// Whether a sealed session signed in at `signed_in_at` is past
/// [`sealed::MAX_SESSION_AGE`].
pub fn too_old(signed_in_at: Option<i64>) -> bool {
    let max = i64::try_from(sealed::MAX_SESSION_AGE.as_secs()).unwrap_or(i64::MAX);
    signed_in_at.is_some_and(|t| crate::time::unix_now_i64().saturating_sub(t) > max)
}

/// The OIDC mode's login state, per configuration generation: what the
/// authorization request and its callback share.
pub struct LoginSetup {
    pub codec: crate::login_state::StateCodec,
    pub state_cookie: crate::login_state::StateCookieSettings,
    pub redirect: crate::redirect::RedirectPolicy,
    /// `{public_url}{auth_prefix}/oidc/callback`.
    pub redirect_uri: String,
    /// Login starts per client IP (`[login] ip_rate_limit`).
    pub limiter: crate::ratelimit::RateLimiter,
}

/// How the gateway authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    /// A public client: PKCE only.
    None,
}

/// How `Authorization: Bearer` access tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerMode {
    /// Verified as a JWT against the provider's keys.
    Jwt,
    /// RFC 7662 introspection, cached until `exp` (at most 60 s).
    Introspect,
    Off,
}

/// `[oidc]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Exactly as configured: `iss` must equal it byte for byte.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// `None`: basic when the provider advertises it, else post.
    pub auth_method: Option<ClientAuth>,
    pub scopes: Vec<String>,
    pub auth_params: Vec<(String, String)>,
    pub pkce: bool,
    pub id_token_algs: Vec<Algorithm>,
    /// Dotted paths into the claims.
    pub roles_claim: String,
    pub permissions_claim: String,
    pub tenants_claim: Option<String>,
    pub userinfo: bool,
    /// Bearer access tokens must carry one of these (default: the client id).
    pub audiences: Vec<String>,
    pub bearer: BearerMode,
    pub timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
    /// SHA-256 of `ca_file`'s contents when loaded (see `DescopeConfig`).
    pub ca_digest: Option<[u8; 32]>,
}

/// Default `[oidc] scopes`.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
/// Default `[oidc] id_token_algs`.
pub const DEFAULT_ID_TOKEN_ALGS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];
/// Default timeout of one call to the provider.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Re-read the discovery document this often once it is loaded.
pub const DISCOVERY_REFRESH: Duration = Duration::from_secs(3600);
/// JWKS refresh and unknown-kid refetch bound (the Descope defaults).
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);
/// Longest an introspection answer is reused.
pub const INTROSPECTION_TTL: Duration = Duration::from_secs(60);
/// Verified bearer tokens kept.
const BEARER_CACHE: usize = 100_000;

/// The provider, as the gateway knows it: settings, discovery, keys.
pub struct Oidc {
    pub cfg: OidcConfig,
    http: reqwest::Client,
    metadata: ArcSwapOption<Metadata>,
    jwks: ArcSwapOption<JwksCache>,
    bearer_cache: Arc<ClaimsCache>,
    /// One introspection call per token at a time, its answer kept ≤ 60 s.
    introspections: SingleFlight<[u8; 32], Result<Arc<Claims>, TokenError>>,
    metrics: Arc<Metrics>,
}

/// Why the provider's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OidcSetupError {
    #[error("oidc.ca_file: {0}")]
    CaFile(String),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Oidc {
    pub fn new(cfg: OidcConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, OidcSetupError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &cfg.ca_file {
            let pem = std::fs::read(p).map_err(|e| OidcSetupError::CaFile(e.to_string()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| OidcSetupError::CaFile(e.to_string()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Arc::new(Self {
            cfg,
            http: b.build()?,
            metadata: ArcSwapOption::empty(),
            jwks: ArcSwapOption::empty(),
            bearer_cache: Arc::new(ClaimsCache::new(BEARER_CACHE)),
            introspections: SingleFlight::with_keep(
                |r: &Result<Arc<Claims>, TokenError>| match r {
                    Ok(c) => c
                        .expires_at()
                        .map_or(INTROSPECTION_TTL, |exp| {
                            Duration::from_secs(
                                exp.saturating_sub(crate::time::unix_now_i64())
                                    .max(0)
                                    .unsigned_abs(),
                            )
                        })
                        .min(INTROSPECTION_TTL),
                    Err(TokenError::Unavailable) => Duration::ZERO,
                    Err(_) => Duration::from_secs(5),
                },
                BEARER_CACHE,
            ),
            metrics,
        }))
    }

    /// The discovery document, once loaded.
    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.metadata.load_full()
    }

    /// Ready: discovery loaded and, unless ID tokens are only HMAC-signed,
    /// signing keys available.
    pub fn is_ready(&self) -> bool {
        if self.metadata.load().is_none() {
            return false;
        }
        let needs_keys = self
            .cfg
            .id_token_algs
            .iter()
            .any(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        !needs_keys
            || self
                .jwks
                .load()
                .as_ref()
                .is_some_and(|j| !j.current().is_empty())
    }

    /// The background loop: discovery now (retried with backoff, 0.5 s
    /// doubling to 30 s, until it loads), then the provider's keys on the
    /// JWKS schedule, and discovery again every hour.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            let mut keys_task: Option<tokio::task::JoinHandle<()>> = None;
            loop {
                match discovery::fetch(&this.http, &this.cfg.issuer).await {
                    Ok(m) => {
                        if failures > 0 || this.metadata.load().is_none() {
                            tracing::info!(issuer = %this.cfg.issuer, "OpenID Provider discovered");
                        }
                        failures = 0;
                        let jwks_changed = this
                            .metadata
                            .load()
                            .as_ref()
                            .is_none_or(|old| old.jwks_uri != m.jwks_uri);
                        if jwks_changed {
                            let cache = Arc::new(JwksCache::new(
                                JwksSource {
                                    url: m.jwks_uri.clone(),
                                    infer_alg: true,
                                    descope_project: None,
                                    http: this.http.clone(),
                                },
                                KeySet::default(),
                                JWKS_MIN_REFETCH,
                                Arc::clone(&this.bearer_cache),
                                Arc::clone(&this.metrics),
                            ));
                            if let Some(t) = keys_task.take() {
                                t.abort();
                            }
                            keys_task = Some(cache.spawn_refresher(JWKS_REFRESH));
                            this.jwks.store(Some(cache));
                        }
                        this.metadata.store(Some(Arc::new(m)));
                        tokio::time::sleep(DISCOVERY_REFRESH).await;
                    }
                    Err(e) => {
                        let delay =
                            crate::session::jwks::retry_delay(failures, rand::random::<f64>());
                        failures = failures.saturating_add(1);
                        if this.metadata.load().is_none() {
                            tracing::warn!(issuer = %this.cfg.issuer, error = %e, retry_in = ?delay, "OpenID Provider discovery failed; not ready yet");
                        } else {
                            tracing::warn!(issuer = %this.cfg.issuer, error = %e, "OpenID Provider discovery failed; keeping the last document");
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        })
    }

    /// Drops every cached bearer verification (config reload).
    pub fn flush_cache(&self) {
        self.bearer_cache.flush();
    }

    fn jwks(&self) -> Option<Arc<JwksCache>> {
        self.jwks.load_full()
    }

    /// The client's authentication to the token, introspection and
    /// revocation endpoints.
    fn auth_method(&self, m: &Metadata) -> ClientAuth {
        match (self.cfg.auth_method, &self.cfg.client_secret) {
            (Some(a), _) => a,
            (None, None) => ClientAuth::None,
            (None, Some(_)) if m.auth_methods.iter().any(|a| a == "client_secret_basic") => {
                ClientAuth::Basic
            }
            (None, Some(_)) => ClientAuth::Post,
        }
    }
}

//! Transparent session refresh: one provider call per refresh token, shared.
//!
//! ```text
//! refresh(token)
//!   key = SHA-256(token)
//!   ├─ a flight or a kept result for key ──► the same result              [shared]
//!   ├─ provider.verify_old(token) fails ──► InvalidToken (no call)         [invalid]
//!   │    (no signing keys at all ──► Unavailable, cookies kept)            [unavailable]
//!   ├─ the provider said 429 and Retry-After has not passed ──► Unavailable [rate_limited]
//!   └─ one flight: provider.redeem(token) (new tokens verified there)
//!        ──► kept for refresh_reuse (a rotation ≥ ROTATED_GRACE, never past
//!            the new session's expiry) ──► every waiter     [ok | revoked | unavailable | rate_limited]
//! ```
//!
//! The call runs in its own task (`single_flight`), so a client that
//! disconnects never loses a rotated refresh token: the result is kept and
//! handed to the next request that presents the same (old) token. That is
//! how a request carrying a token this replica just rotated gets the same
//! [`Refreshed`] (with the new cookies) instead of a logout.
//!
//! The provider is Descope's session API ([`DescopeRefresh`]) or an OpenID
//! Provider's `refresh_token` grant; this module owns what they share. State
//! is per replica and bounded ([`MAX_ENTRIES`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::claims::Claims;
use crate::descope::{DescopeClient, DescopeError};
use crate::metrics::Metrics;
use crate::session::{SessionError, SessionValidator};
use crate::single_flight::SingleFlight;
use crate::store::Store;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Pause after a 429 that carried no usable `Retry-After`.
pub const DEFAULT_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(10);

/// Longest pause honoured from a `Retry-After` (a bogus huge value must not
/// disable refresh for hours).
pub const MAX_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(300);

/// Least time a refresh that rotated the refresh token keeps answering for
/// the old token (a browser that lost the response, a slow tab), even with a
/// shorter `refresh_reuse`; bounded by the new session's expiry.
pub const ROTATED_GRACE: Duration = Duration::from_secs(60);

/// Longest a provider outage answers for a refresh token before the next
/// request tries again.
pub const UNAVAILABLE_KEEP: Duration = Duration::from_secs(1);

/// Most refresh tokens with a flight or a kept result; beyond it, results
/// are not kept (single-flight still applies to calls in flight).
pub const MAX_ENTRIES: usize = 100_000;

/// A refreshed session.
#[derive(Debug)]
pub struct Refreshed {
    /// The new session token (Descope: the session JWT; OIDC: the ID token).
    pub session_jwt: String,
    /// The refresh token to keep (new when rotated, else the one presented).
    pub refresh_jwt: String,
    /// Whether `refresh_jwt` changed (a new refresh cookie must be set).
    pub refresh_rotated: bool,
    pub claims: Arc<Claims>,
    /// OIDC: the access token of the answer, so another replica adopting
    /// the result can fetch the same userinfo (shared sealed, like the rest).
    pub access_token: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token failed local verification; the provider was not called.
    #[error("refresh token invalid")]
    InvalidToken,
    /// The provider refused the refresh token (revoked, expired): clear cookies.
    #[error("session revoked")]
    Revoked,
    /// The provider could not be reached or is rate limiting: keep cookies, 503.
    #[error("provider unavailable")]
    Unavailable { retry_after: Option<Duration> },
}

/// Why a provider could not redeem a refresh token.
#[derive(Debug, Clone)]
pub enum RedeemError {
    /// Refused: the token is revoked or expired at the provider.
    Revoked,
    /// Down, timed out or answered nonsense.
    Unavailable,
    /// 429: no calls until the pause is over.
    RateLimited(Option<Duration>),
    /// An answer that fails verification (never handed out).
    BadAnswer(&'static str),
}

/// One identity provider's refresh.
pub trait Provider: Send + Sync + 'static {
    /// Checks the presented refresh token locally, before any call: the
    /// claims it carries when it is a JWT (Descope), `None` when it is
    /// opaque (OpenID Providers).
    fn verify_old<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Claims>>, RefreshError>>;

    /// Redeems it; the answer is verified before it is returned.
    fn redeem<'a>(
        &'a self,
        token: &'a str,
        old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>>;

    /// Takes a result another replica got for `token` (through the
    /// `[store]`), verified here as [`Self::redeem`] verifies its answer.
    /// Providers that cannot re-verify a result keep the default: their
    /// refresh stays single-flight per replica.
    fn adopt<'a>(
        &'a self,
        token: &'a str,
        shared: SharedTokens,
        old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>> {
        let _ = (token, shared, old);
        Box::pin(async {
            Err(RedeemError::BadAnswer(
                "this provider shares no refresh results",
            ))
        })
    }

    /// Whether [`Self::adopt`] is implemented (the cluster-wide single-flight applies).
    fn shares_results(&self) -> bool {
        false
    }
}

/// A refresh result as stored for the other replicas (sealed, see
/// [`seal_result`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SharedTokens {
    #[serde(rename = "s")]
    pub session: String,
    #[serde(rename = "r")]
    pub refresh: String,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum SharedOutcome {
    #[serde(rename = "ok")]
    Tokens(SharedTokens),
    #[serde(rename = "revoked")]
    Revoked,
}

type Outcome = Result<Arc<Refreshed>, RefreshError>;
type Key = [u8; 32];

pub struct Refresher {
    provider: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
    /// The cluster-wide single-flight (`[store]`), and how long to wait for
    /// another replica's result (the provider timeout and a margin).
    shared: Option<(Arc<Store>, Duration)>,
    reuse: Duration,
    flights: SingleFlight<Key, Outcome>,
    /// No calls before this instant (after a 429).
    blocked_until: Arc<Mutex<Option<Instant>>>,
}

// === impl Refresher ===

impl Refresher {
    /// Descope's refresh, verified with the session validator.
    pub fn new(
        client: DescopeClient,
        validator: Arc<SessionValidator>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_verifier(client, validator, reuse, metrics)
    }

    /// Descope's refresh with any [`TokenVerifier`].
    pub fn with_verifier(
        client: DescopeClient,
        verifier: Arc<dyn TokenVerifier>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_provider(
            Arc::new(DescopeRefresh { client, verifier }),
            reuse,
            metrics,
        )
    }

    /// A refresher for any provider; results are kept for `reuse`.
    pub fn with_provider(
        provider: Arc<dyn Provider>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::build(provider, reuse, metrics, None)
    }

    /// A refresher whose calls are single-flight across every replica that
    /// shares `store` (when the provider can share results); `wait` bounds
    /// how long a replica waits for another's call.
    pub fn cluster_wide(
        provider: Arc<dyn Provider>,
        reuse: Duration,
        metrics: Arc<Metrics>,
        store: Arc<Store>,
        wait: Duration,
    ) -> Arc<Self> {
        let shared = (store.is_shared() && provider.shares_results()).then_some((store, wait));
        Self::build(provider, reuse, metrics, shared)
    }

    fn build(
        provider: Arc<dyn Provider>,
        reuse: Duration,
        metrics: Arc<Metrics>,
        shared: Option<(Arc<Store>, Duration)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            provider,
            metrics,
            shared,
            reuse,
            flights: SingleFlight::with_keep(move |o: &Outcome| keep_for(o, reuse), MAX_ENTRIES),
            blocked_until: Arc::new(Mutex::new(None)),
        })
    }

    /// Refreshes with one shared call per refresh token (single-flight), the
    /// result reused for `refresh_reuse`.
    ///
    /// A forged or expired refresh token never reaches the provider
    /// ([`RefreshError::InvalidToken`]); the new session is verified before
    /// it is returned and must name the same user.
    pub async fn refresh(&self, refresh_jwt: &str) -> Outcome {
        let key = token_key(refresh_jwt);
        if let Some(joined) = self.flights.join(&key) {
            return self.shared(joined.await);
        }
        let old = match self.provider.verify_old(refresh_jwt).await {
            Ok(old) => old,
            Err(e) => {
                self.count(match e {
                    RefreshError::InvalidToken => "invalid",
                    RefreshError::Revoked | RefreshError::Unavailable { .. } => "unavailable",
                });
                return Err(e);
            }
        };
        let now = Instant::now();
        let blocked = self.lock_blocked().filter(|until| *until > now);
        if let Some(until) = blocked
            && !self.flights.is_running(&key)
        {
            self.count("rate_limited");
            return Err(RefreshError::Unavailable {
                retry_after: Some(until - now),
            });
        }
        let provider = Arc::clone(&self.provider);
        let metrics = Arc::clone(&self.metrics);
        let block = Arc::clone(&self.blocked_until);
        let token = refresh_jwt.to_owned();
        let shared = self.shared.clone();
        let reuse = self.reuse;
        let (joined, leader) = self.flights.run_leading(key, move || async move {
            match shared {
                Some((store, wait)) => {
                    let cx = Leader {
                        provider: provider.as_ref(),
                        token: &token,
                        old: old.as_deref(),
                        metrics: &metrics,
                        blocked_until: &block,
                    };
                    redeem_shared(&cx, &store, wait, reuse).await
                }
                None => redeem(provider.as_ref(), &token, old.as_deref(), &metrics, &block).await,
            }
        });
        let outcome = joined.await;
        if leader {
            flatten(outcome)
        } else {
            self.shared(outcome)
        }
    }

    /// Drops any kept result for `refresh_jwt`, and any kept success that
    /// handed out `refresh_jwt` as its (rotated) refresh token, so a
    /// signed-out token is not answered from memory. Calls in flight are
    /// left alone.
    pub fn forget(&self, refresh_jwt: &str) {
        let key = token_key(refresh_jwt);
        self.flights.retain_finished(|k, outcome| {
            *k != key && !matches!(outcome, Ok(r) if r.refresh_jwt == refresh_jwt)
        });
    }

    fn shared(&self, outcome: Result<Outcome, crate::single_flight::FlightAborted>) -> Outcome {
        self.count("shared");
        flatten(outcome)
    }

    fn count(&self, result: &str) {
        self.metrics.refreshes.with_label_values(&[result]).inc();
    }

    fn lock_blocked(&self) -> Option<Instant> {
        *self.blocked_until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A flight that died unanswered (a panic) is an outage, never a sign-out.
fn flatten(outcome: Result<Outcome, crate::single_flight::FlightAborted>) -> Outcome {
    outcome.unwrap_or(Err(RefreshError::Unavailable { retry_after: None }))
}

/// Longest a refresh lease lives unrenewed: a crashed holder delays the
/// other replicas at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// How often the holder renews its lease while the provider call runs.
pub const LEASE_RENEW: Duration = Duration::from_millis(500);
/// How often a replica that waits on another's lease looks for its result.
pub const LEASE_POLL: Duration = Duration::from_millis(20);

struct Leader<'a> {
    provider: &'a dyn Provider,
    token: &'a str,
    old: Option<&'a Claims>,
    metrics: &'a Metrics,
    blocked_until: &'a Mutex<Option<Instant>>,
}

/// The cluster-wide single-flight: the result another replica stored, or
/// the lease to call the provider, or (lease held elsewhere) a wait for its
/// result. The store down at any point → this replica's own call.
async fn redeem_shared(cx: &Leader<'_>, store: &Store, wait: Duration, reuse: Duration) -> Outcome {
    let id = URL_SAFE_NO_PAD.encode(token_key(cx.token));
    let holder = lease_holder();
    let deadline = Instant::now() + wait;
    loop {
        match store.get_result(&id).await {
            None => return redeem_local(cx).await,
            Some(Some(sealed)) => {
                if let Some(outcome) = adopt(cx, &id, &sealed).await {
                    return outcome;
                }
            }
            Some(None) => {}
        }
        match store.try_lease(&id, &holder, LEASE_TTL).await {
            None => return redeem_local(cx).await,
            Some(true) => {
                // The previous holder may have stored its result just before
                // releasing: look once more before calling.
                if let Some(Some(sealed)) = store.get_result(&id).await
                    && let Some(outcome) = adopt(cx, &id, &sealed).await
                {
                    store.release_lease(&id, &holder).await;
                    return outcome;
                }
                return lead(cx, store, &id, &holder, reuse).await;
            }
            Some(false) => {
                if Instant::now() >= deadline {
                    tracing::warn!("another replica's refresh call did not finish in time");
                    return Err(RefreshError::Unavailable { retry_after: None });
                }
                tokio::time::sleep(LEASE_POLL).await;
            }
        }
    }
}

async fn redeem_local(cx: &Leader<'_>) -> Outcome {
    redeem(cx.provider, cx.token, cx.old, cx.metrics, cx.blocked_until).await
}

/// Holds the lease (renewed while the call runs), calls the provider,
/// stores the result for the others, releases the lease.
async fn lead(cx: &Leader<'_>, store: &Store, id: &str, holder: &str, reuse: Duration) -> Outcome {
    let call = redeem_local(cx);
    tokio::pin!(call);
    let mut renewing = true;
    let outcome = loop {
        tokio::select! {
            o = &mut call => break o,
            () = tokio::time::sleep(LEASE_RENEW), if renewing => {
                // Lost (or the store is down): the call goes on regardless.
                renewing = store.renew_lease(id, holder, LEASE_TTL).await == Some(true);
            }
        }
    };
    let stored = match &outcome {
        Ok(r) => Some((
            SharedOutcome::Tokens(SharedTokens {
                session: r.session_jwt.clone(),
                refresh: r.refresh_jwt.clone(),
                access: r.access_token.clone(),
            }),
            keep_for(&outcome, reuse),
        )),
        Err(RefreshError::Revoked) => Some((SharedOutcome::Revoked, reuse)),
        Err(_) => None,
    };
    if let Some((shared, ttl)) = stored
        && let Some(sealed) = seal_result(cx.token, id, &shared)
    {
        store.put_result(id, &sealed, ttl).await;
    }
    store.release_lease(id, holder).await;
    outcome
}

/// Another replica's result, re-verified here; `None` when it cannot be
/// opened (then this replica takes over).
async fn adopt(cx: &Leader<'_>, id: &str, sealed: &str) -> Option<Outcome> {
    let count = |label: &str| cx.metrics.refreshes.with_label_values(&[label]).inc();
    match open_result(cx.token, id, sealed)? {
        SharedOutcome::Revoked => {
            count("shared");
            Some(Err(RefreshError::Revoked))
        }
        SharedOutcome::Tokens(t) => match cx.provider.adopt(cx.token, t, cx.old).await {
            Ok(r) => {
                count("shared");
                Some(Ok(Arc::new(r)))
            }
            Err(e) => {
                tracing::error!(reason = ?e, "a shared refresh result failed verification");
                count("unavailable");
                Some(Err(RefreshError::Unavailable { retry_after: None }))
            }
        },
    }
}

fn lease_holder() -> String {
    let mut b = [0u8; 16];
    // A failing RNG still yields a holder; only its uniqueness suffers.
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b);
    URL_SAFE_NO_PAD.encode(b)
}

const SEAL_SALT: &[u8] = b"portcullis store refresh result salt v1";
const SEAL_INFO: &[u8] = b"portcullis store refresh result key v1";

struct KeyLen;

impl aws_lc_rs::hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

/// The AES-256-GCM key for results of one refresh token: HKDF-SHA256 of
/// the token itself, so only a holder of the old token can read them.
fn result_key(token: &str) -> Option<aws_lc_rs::aead::LessSafeKey> {
    use aws_lc_rs::{aead, hkdf};
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEAL_SALT).extract(token.as_bytes());
    let okm = prk.expand(&[SEAL_INFO], KeyLen).ok()?;
    let mut key = [0u8; 32];
    okm.fill(&mut key).ok()?;
    aead::UnboundKey::new(&aead::AES_256_GCM, &key)
        .ok()
        .map(aead::LessSafeKey::new)
}

/// Seals a result under the old token's key; bound to its store id.
fn seal_result(token: &str, id: &str, outcome: &SharedOutcome) -> Option<String> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    use aws_lc_rs::rand::SecureRandom;
    let key = result_key(token)?;
    let mut plain = serde_json::to_vec(outcome).ok()?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut nonce).ok()?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(id.as_bytes()),
        &mut plain,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&plain);
    Some(URL_SAFE_NO_PAD.encode(out))
}

fn open_result(token: &str, id: &str, sealed: &str) -> Option<SharedOutcome> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = raw.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let mut buf = body.to_vec();
    let plain = result_key(token)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.as_bytes()),
            &mut buf,
        )
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// The leader's call: the provider, the 429 pause, the counters.
async fn redeem(
    provider: &dyn Provider,
    token: &str,
    old: Option<&Claims>,
    metrics: &Metrics,
    blocked_until: &Mutex<Option<Instant>>,
) -> Outcome {
    let count = |label: &str| metrics.refreshes.with_label_values(&[label]).inc();
    match provider.redeem(token, old).await {
        Ok(r) => {
            count("ok");
            // One line per provider call (requests sharing it add none).
            tracing::info!(
                user = r.claims.subject().unwrap_or(""),
                rotated = r.refresh_rotated,
                "session refreshed"
            );
            Ok(Arc::new(r))
        }
        Err(RedeemError::Revoked) => {
            count("revoked");
            Err(RefreshError::Revoked)
        }
        Err(RedeemError::RateLimited(retry_after)) => {
            let pause = retry_after
                .unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF)
                .min(MAX_RATE_LIMIT_BACKOFF);
            tracing::warn!(
                pause_secs = pause.as_secs(),
                "the provider rate limited refresh; pausing refresh calls"
            );
            *blocked_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + pause);
            count("rate_limited");
            Err(RefreshError::Unavailable {
                retry_after: Some(pause),
            })
        }
        Err(RedeemError::Unavailable) => {
            count("unavailable");
            Err(RefreshError::Unavailable { retry_after: None })
        }
        Err(RedeemError::BadAnswer(why)) => {
            tracing::error!(reason = why, "refresh answer rejected");
            count("unavailable");
            Err(RefreshError::Unavailable { retry_after: None })
        }
    }
}

/// How long an outcome answers for its refresh token: `refresh_reuse`;
/// a rotation at least [`ROTATED_GRACE`] (the old token is dead at the
/// provider, so this answer is the only one a late request can get). A
/// success never outlives its session's `exp`.
fn keep_for(outcome: &Outcome, reuse: Duration) -> Duration {
    match outcome {
        Ok(r) => {
            let keep = if r.refresh_rotated {
                reuse.max(ROTATED_GRACE)
            } else {
                reuse
            };
            match r.claims.expires_at() {
                Some(exp) => keep.min(Duration::from_secs(
                    exp.saturating_sub(crate::time::unix_now_i64())
                        .max(0)
                        .unsigned_abs(),
                )),
                None => keep,
            }
        }
        // An outage ends sooner than the reuse window: requests within a
        // second share the failure, later ones try the provider again.
        Err(RefreshError::Unavailable { .. }) => reuse.min(UNAVAILABLE_KEEP),
        Err(_) => reuse,
    }
}

/// SHA-256 of the token: the table never holds raw refresh tokens as keys.
fn token_key(token: &str) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(d.as_ref());
    key
}

// === Descope ===

/// Local token verification, as Descope's refresh needs it. Implemented by
/// [`SessionValidator`]; tests may supply their own.
pub trait TokenVerifier: Send + Sync + 'static {
    /// A session JWT (`drn` not `DSR`), signature and expiry checked.
    fn verify_session<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>>;

    /// A refresh JWT (`drn = DSR`), signature and expiry checked.
    fn verify_refresh<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>>;
}

impl TokenVerifier for SessionValidator {
    fn verify_session<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>> {
        Box::pin(SessionValidator::verify_session(self, token))
    }

    fn verify_refresh<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Claims>, SessionError>> {
        Box::pin(SessionValidator::verify_refresh(self, token))
    }
}

/// Descope's `POST /v1/auth/refresh`, with the refresh JWT checked locally
/// first and the new tokens checked after.
pub struct DescopeRefresh {
    pub client: DescopeClient,
    pub verifier: Arc<dyn TokenVerifier>,
}

impl Provider for DescopeRefresh {
    fn verify_old<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Claims>>, RefreshError>> {
        Box::pin(async move {
            match self.verifier.verify_refresh(token).await {
                Ok(c) => Ok(Some(c)),
                // No signing keys yet (Descope unreachable since start-up):
                // the token may well be fine, so an outage, not a sign-out.
                Err(SessionError::KeysUnavailable) => {
                    Err(RefreshError::Unavailable { retry_after: None })
                }
                Err(e) => {
                    tracing::debug!(reason = %e, "refresh token failed local verification");
                    Err(RefreshError::InvalidToken)
                }
            }
        })
    }

    fn redeem<'a>(
        &'a self,
        token: &'a str,
        old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>> {
        Box::pin(async move {
            let subject = old.and_then(Claims::subject);
            let pair = self.client.refresh(token).await.map_err(|e| match e {
                DescopeError::Rejected { status, code } => {
                    tracing::info!(%status, %code, user = subject.unwrap_or(""), "descope refused the refresh token");
                    RedeemError::Revoked
                }
                DescopeError::RateLimited { retry_after } => RedeemError::RateLimited(retry_after),
                DescopeError::Unavailable | DescopeError::InvalidResponse | DescopeError::Setup(_) => {
                    tracing::warn!(error = %e, "session refresh failed");
                    RedeemError::Unavailable
                }
            })?;
            self.accept(token, subject, pair)
                .await
                .map_err(RedeemError::BadAnswer)
        })
    }

    fn adopt<'a>(
        &'a self,
        token: &'a str,
        shared: SharedTokens,
        old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>> {
        Box::pin(async move {
            let pair = crate::descope::TokenPair {
                session_jwt: shared.session,
                refresh_jwt: Some(shared.refresh),
            };
            self.accept(token, old.and_then(Claims::subject), pair)
                .await
                .map_err(RedeemError::BadAnswer)
        })
    }

    fn shares_results(&self) -> bool {
        true
    }
}

impl DescopeRefresh {
    /// Verifies the new tokens: the session must verify and name the same
    /// user as the refresh token; a rotated refresh token must verify too.
    async fn accept(
        &self,
        presented: &str,
        subject: Option<&str>,
        pair: crate::descope::TokenPair,
    ) -> Result<Refreshed, &'static str> {
        let claims = self
            .verifier
            .verify_session(&pair.session_jwt)
            .await
            .map_err(|_| "new session token does not verify")?;
        if claims.subject().is_none() || claims.subject() != subject {
            return Err("new session token names another user");
        }
        let (refresh_jwt, refresh_rotated) = match pair.refresh_jwt {
            Some(new) if new != presented => {
                let new_claims = self
                    .verifier
                    .verify_refresh(&new)
                    .await
                    .map_err(|_| "new refresh token does not verify")?;
                if new_claims.subject() != subject {
                    return Err("new refresh token names another user");
                }
                (new, true)
            }
            Some(_) | None => (presented.to_owned(), false),
        };
        Ok(Refreshed {
            session_jwt: pair.session_jwt,
            refresh_jwt,
            refresh_rotated,
            claims,
            access_token: None,
        })
    }
}

#[cfg(test)]
mod tests;

//! Transparent session refresh: one Descope call per refresh token, shared.
//!
//! ```text
//! refresh(dsr)
//!   key = SHA-256(dsr)
//!   ├─ reuse entry for key (done < refresh_reuse ago) ──► same result   [shared]
//!   ├─ call in flight for key ──► wait for it ──► same result           [shared]
//!   ├─ verify_refresh(dsr) locally fails ──► InvalidToken (no call)     [invalid]
//!   │    (no signing keys at all ──► Unavailable, cookies kept)         [unavailable]
//!   ├─ Descope said 429 and Retry-After has not passed ──► Unavailable  [rate_limited]
//!   └─ spawn one task: POST /v1/auth/refresh ──► verify new session JWT
//!        ──► store result (success or failure) for refresh_reuse ──► wake waiters
//!                                   [ok | revoked | unavailable | rate_limited]
//! ```
//!
//! The Descope call runs in its own task, so a client that disconnects never
//! loses a rotated refresh token: the result is stored and handed to the next
//! request that presents the same (old) token within `refresh_reuse`. That is
//! how a request carrying a token this replica just rotated gets the same
//! [`Refreshed`] (with the new cookies) instead of a logout. A rotation is
//! remembered for at least [`ROTATED_GRACE`], never past the new session's
//! expiry: the old token is dead at Descope, so this is the only answer a
//! late request can get.
//!
//! State is per replica and bounded: reuse entries expire after
//! `refresh_reuse`, are swept as the table grows, and the table never holds
//! more than [`MAX_ENTRIES`] finished results. The lock is a plain mutex that
//! is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::claims::Claims;
use crate::descope::{DescopeClient, DescopeError};
use crate::metrics::Metrics;
use crate::session::{SessionError, SessionValidator};

/// Pause after a 429 that carried no usable `Retry-After`.
pub const DEFAULT_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(10);

/// Longest pause honoured from a `Retry-After` (a bogus huge value must not
/// disable refresh for hours).
pub const MAX_RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(300);

/// Least time a refresh that rotated the refresh token keeps answering for
/// the old token (a browser that lost the response, a slow tab), even with a
/// shorter `refresh_reuse`; bounded by the new session's expiry.
pub const ROTATED_GRACE: Duration = Duration::from_secs(60);

/// Most finished results kept for reuse; beyond it, results are not cached
/// (single-flight still applies to calls in flight).
pub const MAX_ENTRIES: usize = 100_000;

/// Table size below which expired entries are not swept.
const SWEEP_FLOOR: usize = 1024;

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

/// Local token verification, as the refresher needs it. Implemented by
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

type Outcome = Result<Arc<Refreshed>, RefreshError>;
type Key = [u8; 32];

/// One refresh token's entry.
enum Slot {
    /// A call is running; its task publishes the outcome here.
    InFlight(watch::Receiver<Option<Outcome>>),
    /// A finished outcome, reused until `until`.
    Done { outcome: Outcome, until: Instant },
}

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    /// No refresh calls before this instant (after a 429).
    blocked_until: Option<Instant>,
    /// Sweep expired entries once the table reaches this size.
    next_sweep: usize,
}

/// How a refresh proceeds after local verification.
enum Start {
    Ready(Outcome),
    Wait(watch::Receiver<Option<Outcome>>),
    Blocked(Duration),
    Lead(watch::Receiver<Option<Outcome>>),
}

/// What a lookup found.
enum Found {
    Ready(Outcome),
    Wait(watch::Receiver<Option<Outcome>>),
    Nothing,
}

struct Inner {
    client: DescopeClient,
    verifier: Arc<dyn TokenVerifier>,
    reuse: Duration,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

pub struct Refresher {
    inner: Arc<Inner>,
}

// === impl Refresher ===

impl Refresher {
    pub fn new(
        client: DescopeClient,
        validator: Arc<SessionValidator>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Self::with_verifier(client, validator, reuse, metrics)
    }

    /// Like [`Refresher::new`] with any [`TokenVerifier`].
    pub fn with_verifier(
        client: DescopeClient,
        verifier: Arc<dyn TokenVerifier>,
        reuse: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(Inner {
                client,
                verifier,
                reuse,
                metrics,
                state: Mutex::new(State {
                    next_sweep: SWEEP_FLOOR,
                    ..State::default()
                }),
            }),
        })
    }

    /// Refreshes with one shared call per refresh token (single-flight), the
    /// result reused for `refresh_reuse`.
    ///
    /// A forged or expired refresh token never reaches Descope
    /// ([`RefreshError::InvalidToken`]); the new session JWT is verified
    /// before it is returned and must name the same user.
    pub async fn refresh(&self, refresh_jwt: &str) -> Result<Arc<Refreshed>, RefreshError> {
        let key = token_key(refresh_jwt);
        let inner = &self.inner;

        match inner.lookup(&key) {
            Found::Ready(outcome) => return inner.shared(outcome),
            Found::Wait(rx) => return inner.shared(wait(rx).await),
            Found::Nothing => {}
        }

        let old_claims = match inner.verifier.verify_refresh(refresh_jwt).await {
            Ok(c) => c,
            // No signing keys yet (Descope unreachable since start-up): the
            // token may well be fine, so this is an outage, not a sign-out.
            Err(SessionError::KeysUnavailable) => {
                inner.count("unavailable");
                return Err(RefreshError::Unavailable { retry_after: None });
            }
            Err(e) => {
                tracing::debug!(reason = %e, "refresh token failed local verification");
                inner.count("invalid");
                return Err(RefreshError::InvalidToken);
            }
        };

        match inner.start(key, refresh_jwt, old_claims) {
            Start::Ready(outcome) => inner.shared(outcome),
            Start::Wait(rx) => inner.shared(wait(rx).await),
            Start::Blocked(retry_after) => {
                inner.count("rate_limited");
                Err(RefreshError::Unavailable {
                    retry_after: Some(retry_after),
                })
            }
            // The leader's result is counted by the task, not as shared.
            Start::Lead(rx) => wait(rx).await,
        }
    }

    /// Drops any stored result for `refresh_jwt`, and any stored success that
    /// handed out `refresh_jwt` as its (rotated) refresh token, so a signed-out
    /// token is not answered from the reuse table. Calls in flight are left alone.
    pub fn forget(&self, refresh_jwt: &str) {
        let key = token_key(refresh_jwt);
        let mut state = self.inner.lock();
        state.slots.retain(|k, slot| match slot {
            Slot::InFlight(_) => true,
            Slot::Done { outcome, .. } => {
                *k != key && !matches!(outcome, Ok(r) if r.refresh_jwt == refresh_jwt)
            }
        });
    }
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single inserts/removes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lookup(&self, key: &Key) -> Found {
        lookup_locked(&mut self.lock(), key)
    }

    /// Under the lock: reuse a result, join a flight, refuse while rate
    /// limited, or become the leader and spawn the call.
    fn start(self: &Arc<Self>, key: Key, token: &str, old_claims: Arc<Claims>) -> Start {
        let mut state = self.lock();
        match lookup_locked(&mut state, &key) {
            Found::Ready(outcome) => Start::Ready(outcome),
            Found::Wait(rx) => Start::Wait(rx),
            Found::Nothing => {
                let now = Instant::now();
                if let Some(until) = state.blocked_until.filter(|u| *u > now) {
                    return Start::Blocked(until - now);
                }
                let (tx, rx) = watch::channel(None);
                state.slots.insert(key, Slot::InFlight(rx.clone()));
                drop(state);
                let inner = self.clone();
                let token = token.to_owned();
                tokio::spawn(async move {
                    let outcome = inner.call_descope(&token, &old_claims).await;
                    inner.finish(key, outcome.clone());
                    tx.send_replace(Some(outcome));
                });
                Start::Lead(rx)
            }
        }
    }

    fn count(&self, result: &str) {
        self.metrics.refreshes.with_label_values(&[result]).inc();
    }

    fn shared(&self, outcome: Outcome) -> Outcome {
        self.count("shared");
        outcome
    }

    /// The Descope call and the checks on its answer; counts the result.
    async fn call_descope(&self, refresh_jwt: &str, old: &Claims) -> Outcome {
        let pair = match self.client.refresh(refresh_jwt).await {
            Ok(pair) => pair,
            Err(e) => {
                let (label, err) = match e {
                    DescopeError::Rejected { status, code } => {
                        tracing::info!(%status, %code, user = old.subject().unwrap_or(""), "descope refused the refresh token");
                        ("revoked", RefreshError::Revoked)
                    }
                    DescopeError::RateLimited { retry_after } => {
                        let pause = retry_after
                            .unwrap_or(DEFAULT_RATE_LIMIT_BACKOFF)
                            .min(MAX_RATE_LIMIT_BACKOFF);
                        tracing::warn!(
                            pause_secs = pause.as_secs(),
                            "descope rate limited refresh; pausing refresh calls"
                        );
                        self.lock().blocked_until = Some(Instant::now() + pause);
                        (
                            "rate_limited",
                            RefreshError::Unavailable {
                                retry_after: Some(pause),
                            },
                        )
                    }
                    DescopeError::Unavailable
                    | DescopeError::InvalidResponse
                    | DescopeError::Setup(_) => {
                        tracing::warn!(error = %e, "session refresh failed");
                        (
                            "unavailable",
                            RefreshError::Unavailable { retry_after: None },
                        )
                    }
                };
                self.count(label);
                return Err(err);
            }
        };
        match self.accept(refresh_jwt, old, pair).await {
            Ok(r) => {
                self.count("ok");
                // One line per Descope refresh (requests sharing it add none).
                tracing::info!(
                    user = r.claims.subject().unwrap_or(""),
                    rotated = r.refresh_rotated,
                    "session refreshed"
                );
                Ok(Arc::new(r))
            }
            Err(why) => {
                tracing::error!(reason = why, "descope refresh answer rejected");
                self.count("unavailable");
                Err(RefreshError::Unavailable { retry_after: None })
            }
        }
    }

    /// Verifies the new tokens: the session must verify and name the same
    /// user as the refresh token; a rotated refresh token must verify too.
    async fn accept(
        &self,
        presented: &str,
        old: &Claims,
        pair: crate::descope::TokenPair,
    ) -> Result<Refreshed, &'static str> {
        let claims = self
            .verifier
            .verify_session(&pair.session_jwt)
            .await
            .map_err(|_| "new session token does not verify")?;
        if claims.subject().is_none() || claims.subject() != old.subject() {
            return Err("new session token names another user");
        }
        let (refresh_jwt, refresh_rotated) = match pair.refresh_jwt {
            Some(new) if new != presented => {
                let new_claims = self
                    .verifier
                    .verify_refresh(&new)
                    .await
                    .map_err(|_| "new refresh token does not verify")?;
                if new_claims.subject() != old.subject() {
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
        })
    }

    /// Stores a finished outcome for reuse (or drops the slot when reuse is
    /// off or the table is full), sweeping expired entries as it grows.
    fn finish(&self, key: Key, outcome: Outcome) {
        let now = Instant::now();
        let keep = self.keep_for(&outcome);
        let mut state = self.lock();
        if state.slots.len() >= state.next_sweep {
            state.slots.retain(|_, slot| match slot {
                Slot::InFlight(_) => true,
                Slot::Done { until, .. } => *until > now,
            });
            state.next_sweep = (state.slots.len() * 2).max(SWEEP_FLOOR);
        }
        if keep.is_zero() || state.slots.len() > MAX_ENTRIES {
            state.slots.remove(&key);
        } else {
            state.slots.insert(
                key,
                Slot::Done {
                    outcome,
                    until: now + keep,
                },
            );
        }
    }

    /// How long an outcome answers for its refresh token: `refresh_reuse`;
    /// a rotation at least [`ROTATED_GRACE`] (the old token is dead at
    /// Descope, so this answer is the only one a late request can get). A
    /// success never outlives its session's `exp`.
    fn keep_for(&self, outcome: &Outcome) -> Duration {
        match outcome {
            Ok(r) => {
                let keep = if r.refresh_rotated {
                    self.reuse.max(ROTATED_GRACE)
                } else {
                    self.reuse
                };
                match r.claims.expires_at() {
                    Some(exp) => keep.min(Duration::from_secs(
                        exp.saturating_sub(unix_now()).max(0).unsigned_abs(),
                    )),
                    None => keep,
                }
            }
            Err(_) => self.reuse,
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Looks `key` up, dropping expired results and abandoned flights.
fn lookup_locked(state: &mut State, key: &Key) -> Found {
    let found = match state.slots.get(key) {
        None => return Found::Nothing,
        Some(Slot::Done { outcome, until }) if *until > Instant::now() => {
            Found::Ready(outcome.clone())
        }
        Some(Slot::Done { .. }) => Found::Nothing,
        // A flight whose task died without an answer (a panic) is abandoned.
        Some(Slot::InFlight(rx)) if rx.has_changed().is_err() && rx.borrow().is_none() => {
            Found::Nothing
        }
        Some(Slot::InFlight(rx)) => Found::Wait(rx.clone()),
    };
    if matches!(found, Found::Nothing) {
        state.slots.remove(key);
    }
    found
}

/// Waits for a flight's outcome; a flight that died unanswered is `Unavailable`.
async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v
            .clone()
            .unwrap_or(Err(RefreshError::Unavailable { retry_after: None })),
        Err(_) => Err(RefreshError::Unavailable { retry_after: None }),
    }
}

/// SHA-256 of the token: the table never holds raw refresh tokens as keys.
fn token_key(token: &str) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(d.as_ref());
    key
}

#[cfg(test)]
mod tests;

//! Descope access keys for machine clients (`[session] accept_access_keys`).
//!
//! ```text
//! Authorization: Bearer <access key>   (not a JWT)
//!   key = SHA-256(access key)             the table never holds a key
//!   ├─ a kept session JWT for key, not expired ──► verified (validator cache)
//!   ├─ an exchange for key in flight ──► its result                  [shared]
//!   ├─ this client IP exchanged too often ──► refused, no call        [limited]
//!   └─ POST /v1/auth/accesskey/exchange (Bearer pid:key)
//!        ──► session JWT verified like any session ──► kept until its exp
//! ```
//!
//! A revoked or expired key stops working when the session JWT it was
//! exchanged for expires (Descope's session lifetime). Exchanges of keys
//! not in the table are limited per client IP ([`EXCHANGES_PER_IP`]), so the
//! exchange cannot be used as an oracle to guess keys. Keys never reach a log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::claims::Claims;
use crate::descope::{DescopeClient, DescopeError};
use crate::ratelimit::{RateLimiter, RateSpec};
use crate::session::{SessionError, SessionValidator};
use crate::single_flight::SingleFlight;

/// Exchanges of keys the gateway does not hold, per client IP.
pub const EXCHANGES_PER_IP: &str = "30/min";

/// Most access keys whose session JWT is kept.
pub const MAX_KEYS: usize = 10_000;

/// Why an access key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Descope refused the key (unknown, revoked, expired, IP not permitted).
    #[error("access key refused")]
    Refused,
    /// This client exchanged too many unknown keys; no call was made.
    #[error("too many access key exchanges from this client")]
    RateLimited,
    /// Descope (or the signing keys) could not be reached.
    #[error("access key exchange unavailable")]
    Unavailable,
}

type Key = [u8; 32];

/// The table of exchanged keys, their flights and the per-IP limiter.
pub struct AccessKeys {
    kept: Mutex<HashMap<Key, (String, i64)>>,
    flights: SingleFlight<Key, Result<(String, i64), KeyError>>,
    limiter: RateLimiter,
}

impl Default for AccessKeys {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a Bearer credential is shaped like a JWT (three dot-separated
/// parts); anything else is taken for an access key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl AccessKeys {
    pub fn new() -> Self {
        let spec = RateSpec::parse(EXCHANGES_PER_IP).unwrap_or_else(|_| unreachable!());
        Self {
            kept: Mutex::new(HashMap::new()),
            flights: SingleFlight::new(),
            limiter: RateLimiter::new(spec, 100_000),
        }
    }

    /// The verified claims of the session `access_key` stands for, and that
    /// session's JWT.
    pub async fn authenticate(
        &self,
        client: &DescopeClient,
        validator: &Arc<SessionValidator>,
        access_key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(Arc<Claims>, String), KeyError> {
        let key = hash(access_key);
        let now = crate::time::unix_now_i64();
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(_, exp)| *exp > now)
            .map(|(jwt, _)| jwt.clone());
        let jwt = match kept {
            Some(jwt) => jwt,
            None => {
                self.exchange(client, validator, key, access_key, client_ip)
                    .await?
            }
        };
        match verify_exchanged(validator, &jwt).await {
            Ok(claims) => Ok((claims, jwt)),
            Err(SessionError::KeysUnavailable) => Err(KeyError::Unavailable),
            Err(_) => {
                self.forget(&key);
                Err(KeyError::Refused)
            }
        }
    }

    async fn exchange(
        &self,
        client: &DescopeClient,
        validator: &Arc<SessionValidator>,
        key: Key,
        access_key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<String, KeyError> {
        let joined = match self.flights.join(&key) {
            Some(j) => j,
            None => {
                // Per client as the login limits count it (an IPv6 client by its /64).
                let ip = client_ip.map_or_else(
                    || "unknown".to_owned(),
                    portcullis_core::ratelimit::client_key,
                );
                if !self.limiter.try_acquire(&[ip.as_str()]) {
                    tracing::info!(client = %ip, "access key exchange refused: too many from this client");
                    return Err(KeyError::RateLimited);
                }
                let client = client.clone();
                let validator = Arc::clone(validator);
                let access_key = access_key.to_owned();
                self.flights.run(key, move || async move {
                    exchange_once(&client, &validator, &access_key).await
                })
            }
        };
        let (jwt, exp) = joined.await.unwrap_or(Err(KeyError::Unavailable))?;
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_KEYS {
            let now = crate::time::unix_now_i64();
            kept.retain(|_, (_, e)| *e > now);
            if kept.len() >= MAX_KEYS {
                kept.clear();
            }
        }
        kept.insert(key, (jwt.clone(), exp));
        Ok(jwt)
    }

    fn forget(&self, key: &Key) {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// One exchange: the session JWT and its expiry, verified.
async fn exchange_once(
    client: &DescopeClient,
    validator: &SessionValidator,
    access_key: &str,
) -> Result<(String, i64), KeyError> {
    let body = serde_json::json!({ "loginOptions": {} });
    let reply = client
        .call(
            http::Method::POST,
            "/v1/auth/accesskey/exchange",
            Some(access_key),
            Some(&body),
        )
        .await
        .map_err(|e| match e {
            DescopeError::Rejected { .. } => KeyError::Refused,
            _ => KeyError::Unavailable,
        })?;
    let jwt = reply
        .body
        .get("sessionJwt")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(KeyError::Unavailable)?
        .to_owned();
    let claims = verify_exchanged(validator, &jwt)
        .await
        .map_err(|e| match e {
            SessionError::KeysUnavailable => KeyError::Unavailable,
            _ => KeyError::Refused,
        })?;
    let exp = claims.expires_at().unwrap_or(0);
    tracing::info!(user = %claims.subject().unwrap_or(""), "access key exchanged");
    Ok((jwt, exp))
}

/// Verifies a JWT that came from our own exchange. Descope marks some
/// access-key sessions with the refresh token's `drn` (`DSR`); such a JWT
/// is accepted here — it was handed to the gateway by Descope for this key,
/// never presented by a client as a cookie or Bearer.
async fn verify_exchanged(
    validator: &SessionValidator,
    jwt: &str,
) -> Result<Arc<Claims>, SessionError> {
    match validator.verify_session(jwt).await {
        Err(SessionError::WrongTokenKind) => validator.verify_refresh(jwt).await,
        other => other,
    }
}

fn hash(access_key: &str) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_key.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(d.as_ref());
    key
}

//! JWKS cache: the project's signing keys, read lock-free on every request.
//!
//! ```text
//! seed (jwks_file / DESCOPE_PUBLIC_KEY) ──┐
//! refresher: now, then every jwks_refresh ┼─► fetch (single-flight) ──► KeySet ──► ArcSwap
//!   (no keys yet: retry 0.5 s → 30 s)     │          │ error: keep cached keys     │
//! unknown kid (≤ 1 per jwks_min_refetch) ─┘          └─► changed: flush claims ◄───┘
//! ```
//!
//! While no key is loaded at all (no seed, and every fetch so far failed)
//! the gateway is not ready, so the refresher does not wait for the next
//! `jwks_refresh`: it retries with capped exponential backoff
//! ([`INITIAL_RETRY_DELAY`] doubling up to [`MAX_RETRY_DELAY`], jittered),
//! and goes back to the `jwks_refresh` schedule once keys are in place. Each
//! failed fetch is logged once, with its cause.
//!
//! Readers call [`JwksCache::current`] (one `ArcSwap` load) and never wait on
//! a periodic refresh. Only a token whose `kid` is not in the set waits, and
//! only for a fetch that is already under way or that it may start (bounded
//! by [`DEFAULT_KID_WAIT`]); unknown-kid fetches are rate-limited so a flood
//! of forged kids causes at most one fetch per `jwks_min_refetch`. A fetch
//! that fails, or answers with no usable key, keeps the cached set. A fetch
//! whose keys differ from the cached ones replaces them (a rotated-out key
//! stops validating at once) and flushes the verified-claims cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::session::cache::ClaimsCache;
use crate::single_flight::SingleFlight;

/// How long a request with an unknown `kid` waits for a JWKS fetch before it
/// is refused (a key rotation is picked up within about a second).
pub const DEFAULT_KID_WAIT: Duration = Duration::from_secs(1);
/// Upper bound on one JWKS fetch, on top of the shared client's own timeouts.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS body accepted; a real one is a few KiB.
pub const DEFAULT_MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Floor for the periodic refresh interval (a zero interval would spin).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// First retry delay of the refresher while no signing key is loaded.
pub const INITIAL_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Longest retry delay of the refresher while no signing key is loaded.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Smallest RSA modulus accepted, in bytes (2048 bits; aws-lc refuses less).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why a key set could not be loaded or fetched.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("key set is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("key set has no `keys` array")]
    NotAKeySet,
    #[error("key set holds no usable signing key")]
    NoUsableKeys,
    #[error("JWKS request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("JWKS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("JWKS response is larger than {DEFAULT_MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS fetch took longer than {DEFAULT_FETCH_TIMEOUT:?}")]
    Timeout,
}

/// One usable verification key.
pub struct VerifyKey {
    pub kid: String,
    /// The only algorithm this key verifies (the JWK's `alg`).
    pub alg: Algorithm,
    pub key: DecodingKey,
    /// The public key members as published, to tell a changed set from a
    /// re-fetched identical one.
    material: KeyMaterial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa { n: String, e: String },
    Ec { crv: String, x: String, y: String },
}

/// An immutable set of verification keys by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyKey>>,
}

/// The JWK members we read; everything else is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// Parses a JWKS document `{"keys": [JWK, ...]}`, as the endpoint serves.
    /// Unusable keys are skipped (debug log); no usable key is an error.
    pub fn from_jwks_json(text: &str) -> Result<Self, JwksError> {
        Self::parse_jwks_json(text, false)
    }

    /// [`Self::from_jwks_json`]; with `infer_alg`, a JWK without `alg`
    /// (RFC 7517 makes it optional; OpenID Providers may omit it) gets the
    /// one its key type implies: RS256 for RSA, ES256/ES384 for P-256/P-384.
    pub fn parse_jwks_json(text: &str, infer_alg: bool) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_str(text)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        Self::from_jwks(keys, infer_alg)
    }

    /// Parses seed keys: a JWKS document or one JWK (as `DESCOPE_PUBLIC_KEY`
    /// holds). No usable key is an error.
    pub fn from_seed_json(text: &str) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_str(text)?;
        match doc.get("keys").and_then(Value::as_array) {
            Some(keys) => Self::from_jwks(keys, false),
            None => Self::from_jwks(std::slice::from_ref(&doc), false),
        }
    }

    fn from_jwks(keys: &[Value], infer_alg: bool) -> Result<Self, JwksError> {
        let mut set = HashMap::new();
        for raw in keys {
            let Some(key) = parse_jwk(raw, infer_alg) else {
                continue;
            };
            if set.contains_key(&key.kid) {
                debug!(kid = %key.kid, "JWKS lists a kid twice; keeping the first key");
                continue;
            }
            set.insert(key.kid.clone(), Arc::new(key));
        }
        if set.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(Self { keys: set })
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The one key for `alg`, when exactly one is in the set (a token
    /// without `kid` is only verified when no other key could apply).
    pub fn only_key_for(&self, alg: Algorithm) -> Option<&Arc<VerifyKey>> {
        let mut matching = self.keys.values().filter(|k| k.alg == alg);
        match (matching.next(), matching.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Same kids with the same algorithms and key material.
    fn same_keys(&self, other: &KeySet) -> bool {
        self.keys.len() == other.keys.len()
            && self.keys.iter().all(|(kid, k)| {
                other
                    .keys
                    .get(kid)
                    .is_some_and(|o| o.alg == k.alg && o.material == k.material)
            })
    }
}

/// Turns one JWK into a verification key, or `None` (debug log) when it is
/// not a usable signing key: no `kid`/`alg`, `use` other than `sig`, an
/// algorithm other than RS256/384/512 or ES256/384, members that do not fit
/// the algorithm.
fn parse_jwk(raw: &Value, infer_alg: bool) -> Option<VerifyKey> {
    let jwk: RawJwk = match serde_json::from_value(raw.clone()) {
        Ok(j) => j,
        Err(e) => {
            debug!(error = %e, "skipping JWK: unexpected member types");
            return None;
        }
    };
    let Some(kid) = jwk.kid.filter(|k| !k.is_empty()) else {
        debug!("skipping JWK without kid");
        return None;
    };
    let skip = |why: &str| {
        debug!(kid = %kid, reason = why, "skipping JWK");
    };
    // Descope's JWKs always name their algorithm; an OpenID Provider's may
    // not: then (with `infer_alg`) the key type decides, with RS256 for RSA
    // keys, the algorithm every provider signs with by default.
    let inferred = match (infer_alg, jwk.kty.as_deref(), jwk.crv.as_deref()) {
        (false, _, _) => None,
        (true, Some("RSA"), _) => Some("RS256"),
        (true, Some("EC"), Some("P-256")) => Some("ES256"),
        (true, Some("EC"), Some("P-384")) => Some("ES384"),
        (true, _, _) => None,
    };
    let Some(alg_name) = jwk.alg.as_deref().or(inferred).map(str::to_owned) else {
        skip("no alg");
        return None;
    };
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        skip("use is not sig");
        return None;
    }
    let Some(alg) = supported_alg(&alg_name) else {
        skip("unsupported alg");
        return None;
    };
    let kty = jwk.kty.as_deref();
    let (key, material) = match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            let (Some("RSA"), Some(n), Some(e)) = (kty, jwk.n, jwk.e) else {
                skip("RSA alg without an RSA key (kty, n, e)");
                return None;
            };
            let modulus = b64_len(&n);
            if modulus.is_none_or(|len| len < MIN_RSA_MODULUS_BYTES) || b64_len(&e).is_none() {
                skip("RSA modulus unreadable or shorter than 2048 bits");
                return None;
            }
            let Ok(key) = DecodingKey::from_rsa_components(&n, &e) else {
                skip("RSA members are not base64url");
                return None;
            };
            (key, KeyMaterial::Rsa { n, e })
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (want_crv, coord_len) = if alg == Algorithm::ES256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            let (Some("EC"), Some(crv), Some(x), Some(y)) = (kty, jwk.crv, jwk.x, jwk.y) else {
                skip("EC alg without an EC key (kty, crv, x, y)");
                return None;
            };
            if crv != want_crv || b64_len(&x) != Some(coord_len) || b64_len(&y) != Some(coord_len) {
                skip("EC curve or coordinates do not fit the alg");
                return None;
            }
            let Ok(key) = DecodingKey::from_ec_components(&x, &y) else {
                skip("EC members are not base64url");
                return None;
            };
            (key, KeyMaterial::Ec { crv, x, y })
        }
        // `supported_alg` only returns the algorithms above.
        _ => return None,
    };
    Some(VerifyKey {
        kid,
        alg,
        key,
        material,
    })
}

/// The algorithms the gateway verifies: RS256/384/512 and ES256/384. Never
/// `none`, HMAC, PS* or EdDSA.
pub fn supported_alg(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        _ => None,
    }
}

/// Decoded length of an unpadded base64url string, `None` if it is not one.
fn b64_len(s: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(s).ok().map(|v| v.len())
}

/// What one fetch did to the cached key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// New keys are in place (and the claims cache was flushed).
    Updated,
    /// The endpoint served the keys we already had.
    Unchanged,
    /// The fetch failed; the cached keys stay.
    Failed,
}

/// Where and how to fetch the key set.
pub struct JwksSource {
    pub url: url::Url,
    /// Accept JWKs without `alg` (OpenID Providers), see [`KeySet::parse_jwks_json`].
    pub infer_alg: bool,
    /// Descope wants the project id on the request; an OpenID Provider
    /// serves its keys to anyone.
    pub descope_project: Option<String>,
    pub http: reqwest::Client,
}

/// The cached key set plus the machinery that keeps it fresh.
pub struct JwksCache {
    source: JwksSource,
    min_refetch: Duration,
    keys: ArcSwap<KeySet>,
    /// One fetch at a time; periodic, unknown-kid and manual fetches share it.
    flight: SingleFlight<(), FetchOutcome>,
    /// When the last unknown-kid fetch was started (rate limit).
    last_kid_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    claims: Arc<ClaimsCache>,
    metrics: Arc<Metrics>,
}

impl JwksCache {
    /// A cache holding `seed` (possibly empty) until the first fetch.
    pub fn new(
        source: JwksSource,
        seed: KeySet,
        min_refetch: Duration,
        claims: Arc<ClaimsCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            source,
            min_refetch,
            keys: ArcSwap::from_pointee(seed),
            flight: SingleFlight::new(),
            last_kid_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            claims,
            metrics,
        }
    }

    /// The current key set (one atomic load; never blocks).
    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Number of fetches attempted so far (successful or not).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Starts a fetch, or joins the one under way, and waits for it.
    pub async fn refetch_now(self: &Arc<Self>) -> FetchOutcome {
        self.start_fetch().await.unwrap_or(FetchOutcome::Failed)
    }

    /// Called for a `kid` not in the cached set. Starts a fetch if the
    /// unknown-kid rate limit allows one, else joins a fetch already under
    /// way, and waits for it up to [`DEFAULT_KID_WAIT`]. Returns at once when
    /// neither applies. The caller then looks the kid up again.
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>) {
        let waiter = {
            let mut last = self
                .last_kid_fetch
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if last.is_none_or(|t| now.duration_since(t) >= self.min_refetch) {
                *last = Some(now);
                Some(self.start_fetch())
            } else {
                self.flight.join(&())
            }
        };
        if let Some(waiter) = waiter
            && tokio::time::timeout(DEFAULT_KID_WAIT, waiter)
                .await
                .is_err()
        {
            debug!("JWKS fetch for an unknown kid is still running; not waiting longer");
        }
    }

    /// Periodic refresh: fetch now, then every `every` while keys are
    /// loaded; while none is, retry after [`retry_delay`] (0.5 s doubling up
    /// to 30 s, jittered). Stops when the cache is dropped.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = every.max(MIN_REFRESH_INTERVAL);
        tokio::spawn(async move {
            // Consecutive attempts that ended with no key loaded.
            let mut failures: u32 = 0;
            loop {
                let Some(this) = weak.upgrade() else { break };
                let waiter = this.start_fetch();
                drop(this);
                // The outcome is logged and counted by the fetch itself.
                let _ = waiter.await;
                let Some(this) = weak.upgrade() else { break };
                let have_keys = !this.keys.load().is_empty();
                drop(this);
                let delay = if have_keys {
                    failures = 0;
                    every
                } else {
                    let d = retry_delay(failures, rand::random::<f64>()).min(every);
                    failures = failures.saturating_add(1);
                    debug!(retry_in = ?d, attempts = failures, "no signing keys yet; retrying the JWKS fetch");
                    d
                };
                tokio::time::sleep(delay).await;
            }
        })
    }

    /// Waits for the fetch under way, if any (tests use it to observe the
    /// refresher's work without sleeping).
    #[cfg(test)]
    pub(crate) async fn settle(&self) {
        if let Some(waiter) = self.flight.join(&()) {
            let _ = waiter.await;
        }
    }

    fn start_fetch(self: &Arc<Self>) -> crate::single_flight::Joined<FetchOutcome> {
        let this = Arc::clone(self);
        self.flight
            .run((), move || async move { this.fetch_and_store().await })
    }

    async fn fetch_and_store(&self) -> FetchOutcome {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = match tokio::time::timeout(DEFAULT_FETCH_TIMEOUT, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(JwksError::Timeout),
        };
        match fetched {
            Ok(set) => {
                self.metrics.jwks_fetches.with_label_values(&["ok"]).inc();
                let cached = self.keys.load();
                if cached.same_keys(&set) {
                    debug!(keys = set.len(), "JWKS unchanged");
                    return FetchOutcome::Unchanged;
                }
                if cached.is_empty() {
                    info!(keys = set.len(), "JWKS loaded; signing keys available");
                } else {
                    info!(keys = set.len(), "JWKS updated");
                }
                drop(cached);
                // Store first, then flush: a verification that sees the new
                // cache epoch is guaranteed to see the new keys too.
                self.keys.store(Arc::new(set));
                self.claims.flush();
                FetchOutcome::Updated
            }
            Err(e) => {
                self.metrics
                    .jwks_fetches
                    .with_label_values(&["error"])
                    .inc();
                let cause = crate::http_util::error_chain(&e);
                if self.keys.load().is_empty() {
                    warn!(
                        error = %cause,
                        url = %self.source.url,
                        "JWKS fetch failed and no signing keys are loaded yet: not ready, retrying"
                    );
                } else {
                    warn!(error = %cause, url = %self.source.url, "JWKS fetch failed; keeping the cached keys");
                }
                FetchOutcome::Failed
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let src = &self.source;
        let mut req = src.http.get(src.url.clone());
        if let Some(pid) = &src.descope_project {
            req = req.bearer_auth(pid).header("x-descope-project-id", pid);
        }
        let mut resp = req.send().await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(JwksError::Status(resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > DEFAULT_MAX_JWKS_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > DEFAULT_MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| JwksError::NotAKeySet)?;
        KeySet::parse_jwks_json(text, src.infer_alg)
    }
}

/// Delay before the refresher's retry after `failures` consecutive failed
/// attempts (0 for the first retry) while no key is loaded:
/// [`INITIAL_RETRY_DELAY`] · 2^failures, capped at [`MAX_RETRY_DELAY`], then
/// scaled into [½, 1] of that by `jitter` ∈ [0, 1) so replicas started
/// together do not retry in lockstep.
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let base = INITIAL_RETRY_DELAY
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_RETRY_DELAY);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_delay_doubles_from_half_a_second_to_thirty_seconds() {
        let no_jitter: Vec<Duration> = (0..10).map(|n| retry_delay(n, 1.0)).collect();
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            no_jitter,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16000),
                ms(30000),
                ms(30000),
                ms(30000),
                ms(30000)
            ]
        );
        assert_eq!(retry_delay(0, 0.0), ms(250));
        assert_eq!(retry_delay(u32::MAX, 0.0), ms(15000));
        for n in 0..40 {
            for j in [0.0, 0.3, 0.999] {
                let d = retry_delay(n, j);
                assert!(d >= ms(250) && d <= MAX_RETRY_DELAY, "{n} {j} {d:?}");
            }
        }
    }

    // P-256 and P-384 points are only length-checked here (verification is
    // exercised in session/tests.rs with real keys).
    fn b64(n: usize) -> String {
        URL_SAFE_NO_PAD.encode(vec![7u8; n])
    }

    fn ec(kid: &str, alg: &str, crv: &str, len: usize) -> Value {
        json!({"kty":"EC","kid":kid,"alg":alg,"crv":crv,"x":b64(len),"y":b64(len),"use":"sig"})
    }

    fn rsa(kid: &str, alg: &str, bytes: usize) -> Value {
        json!({"kty":"RSA","kid":kid,"alg":alg,"n":b64(bytes),"e":"AQAB"})
    }

    #[test]
    fn usable_keys_are_kept_and_others_skipped() {
        let mut no_kid = ec("x", "ES256", "P-256", 32);
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut no_alg = ec("no-alg", "ES256", "P-256", 32);
        no_alg.as_object_mut().expect("object").remove("alg");
        let mut enc = rsa("enc", "RS256", 256);
        enc["use"] = json!("enc");
        let cases: Vec<(Value, Option<Algorithm>)> = vec![
            (ec("e256", "ES256", "P-256", 32), Some(Algorithm::ES256)),
            (ec("e384", "ES384", "P-384", 48), Some(Algorithm::ES384)),
            (rsa("r256", "RS256", 256), Some(Algorithm::RS256)),
            (rsa("r384", "RS384", 384), Some(Algorithm::RS384)),
            (rsa("r512", "RS512", 512), Some(Algorithm::RS512)),
            (no_kid, None),
            (no_alg, None),
            (enc, None),
            (ec("wrong-crv", "ES256", "P-384", 48), None),
            (ec("short", "ES384", "P-384", 32), None),
            (ec("es512", "ES512", "P-521", 66), None),
            (rsa("small-rsa", "RS256", 128), None),
            (rsa("ps", "PS256", 256), None),
            (rsa("rsa-as-ec", "ES256", 256), None),
            (ec("ec-as-rsa", "RS256", "P-256", 32), None),
            (
                json!({"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"}),
                None,
            ),
            (
                json!({"kty":"RSA","kid":"none","alg":"none","n":b64(256),"e":"AQAB"}),
                None,
            ),
            (json!({"kid": 5, "alg": "ES256"}), None),
            (
                json!({"kty":"EC","kid":"bad-b64","alg":"ES256","crv":"P-256","x":"!!","y":"!!"}),
                None,
            ),
        ];
        for (jwk, want) in cases {
            let got = parse_jwk(&jwk, false).map(|k| k.alg);
            assert_eq!(got, want, "jwk {jwk}");
        }
    }

    #[test]
    fn seed_accepts_a_jwks_or_a_single_jwk() {
        let one = ec("k1", "ES256", "P-256", 32);
        let set = KeySet::from_seed_json(&one.to_string()).expect("single JWK");
        assert!(set.get("k1").is_some());
        let jwks = json!({"keys":[one, rsa("k2","RS256",256)]});
        let set = KeySet::from_seed_json(&jwks.to_string()).expect("JWKS");
        assert_eq!(set.len(), 2);
        assert!(matches!(
            KeySet::from_seed_json("{\"keys\":[]}"),
            Err(JwksError::NoUsableKeys)
        ));
        assert!(matches!(
            KeySet::from_seed_json("not json"),
            Err(JwksError::Json(_))
        ));
    }

    #[test]
    fn fetched_document_must_be_a_key_set() {
        let one = ec("k1", "ES256", "P-256", 32);
        assert!(matches!(
            KeySet::from_jwks_json(&one.to_string()),
            Err(JwksError::NotAKeySet)
        ));
        assert!(matches!(
            KeySet::from_jwks_json(r#"{"keys":[{"kty":"oct"}]}"#),
            Err(JwksError::NoUsableKeys)
        ));
    }

    #[test]
    fn duplicate_kid_keeps_first() {
        let jwks = json!({"keys":[ec("k","ES256","P-256",32), rsa("k","RS256",256)]});
        let set = KeySet::from_jwks_json(&jwks.to_string()).expect("valid");
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("k").map(|k| k.alg), Some(Algorithm::ES256));
    }

    #[test]
    fn same_keys_compares_material() {
        let a = json!({"keys":[ec("k","ES256","P-256",32)]}).to_string();
        let mut other = ec("k", "ES256", "P-256", 32);
        other["x"] = json!(URL_SAFE_NO_PAD.encode([8u8; 32]));
        let b = json!({"keys":[other]}).to_string();
        let a1 = KeySet::from_jwks_json(&a).expect("valid");
        let a2 = KeySet::from_jwks_json(&a).expect("valid");
        let b1 = KeySet::from_jwks_json(&b).expect("valid");
        assert!(a1.same_keys(&a2));
        assert!(!a1.same_keys(&b1));
        assert!(!a1.same_keys(&KeySet::default()));
    }
}

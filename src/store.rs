//! Shared state across replicas (`[store]`, Redis), with local fallback.
//!
//! ```text
//! Store
//!   ├─ logout memory: signed-out session tokens (SHA-256, until their exp)
//!   │    and logout-all times per user; kept locally always, in Redis too
//!   ├─ login rate limits: a fixed-window counter per key (Lua, atomic,
//!   │    all keys or none), on top of the local token bucket
//!   └─ refresh leases and results (see `refresh`): SET NX PX, renewed by
//!        compare-and-pexpire, released by compare-and-delete
//! ```
//!
//! Every Redis call on the request path is bounded by `[store] timeout`.
//! A failed or slow call marks the store down (one warning, the
//! `portcullis_store_up` gauge at 0); while down no request waits on Redis
//! and every replica uses its local state only. A probe (`PING`) runs every
//! second, so Redis back → shared again within a second or two. Nothing
//! here ever turns into a 5xx: a missing answer means "local only".
//!
//! Without `[store]` only the local logout memory is used.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::Metrics;
use crate::ratelimit::RateSpec;
use portcullis_core::secret::Secret;

/// How often the store is probed (`PING`), up or down.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Most signed-out tokens (and, separately, users) remembered locally.
pub const MAX_LOCAL_ENTRIES: usize = 100_000;

/// How long a logout-all is remembered: longer than any session token lives.
pub const LOGOUT_ALL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

const RATE_SCRIPT: &str = r"
for i, k in ipairs(KEYS) do
  local c = tonumber(redis.call('GET', k) or '0')
  if c >= tonumber(ARGV[2 * i - 1]) then return i end
end
for i, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, ARGV[2 * i]) end
end
return 0
";

/// A logout-all time is only ever moved later: a replica replaying an
/// older one must not shorten another replica's newer logout-all.
const LATER_SCRIPT: &str = r"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > c then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
";

/// Entries written to Redis per round trip when the local logout memory is
/// replayed after an outage.
const REPLAY_BATCH: usize = 500;

const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Default `[store] key_prefix`.
pub const DEFAULT_STORE_KEY_PREFIX: &str = "portcullis:";
/// Default `[store] timeout`: one Redis call on the request path.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// `[store]`: Redis shared by the replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub redis_url: Secret,
    pub key_prefix: String,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of `ca_file`'s contents when loaded: a bundle replaced at the
    /// same path is a change a reload refuses rather than ignores.
    pub ca_digest: Option<[u8; 32]>,
}

/// Why the store could not be set up (a bad URL or CA file).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.redis_url: {0}")]
    Url(String),
    #[error("store.ca_file: {0}")]
    Ca(String),
}

/// Shared state, or local state only.
pub struct Store {
    remote: Option<Remote>,
    local: Mutex<Local>,
    /// Whether `local` holds anything (the common case without a store and
    /// without sign-outs skips hashing and the lock).
    remembered: AtomicBool,
    metrics: Arc<Metrics>,
}

struct Remote {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    up: AtomicBool,
    rate: redis::Script,
    later: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

#[derive(Default)]
struct Local {
    /// SHA-256 of a signed-out session token → its `exp` (unix seconds).
    tokens: HashMap<[u8; 32], i64>,
    /// User id → logout-all time (unix milliseconds).
    users: HashMap<String, i64>,
}

// === impl Store ===

impl Store {
    /// No `[store]`: local memory only.
    pub fn local(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            remote: None,
            local: Mutex::new(Local::default()),
            remembered: AtomicBool::new(false),
            metrics,
        })
    }

    /// Connects lazily (a Redis that is down at start is not an error: the
    /// probe finds it when it comes up) and starts the probe.
    pub async fn connect(
        cfg: &StoreConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, StoreError> {
        let url = cfg.redis_url.expose();
        let client = match &cfg.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| StoreError::Ca(e.to_string()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(url),
        }
        // The error may quote the URL (and its password): say only what kind.
        .map_err(|e| StoreError::Url(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| StoreError::Url(format!("{:?}", e.kind())))?;
        let store = Arc::new(Self {
            remote: Some(Remote {
                conn,
                prefix: cfg.key_prefix.clone(),
                timeout: cfg.timeout,
                up: AtomicBool::new(false),
                rate: redis::Script::new(RATE_SCRIPT),
                later: redis::Script::new(LATER_SCRIPT),
                renew: redis::Script::new(RENEW_SCRIPT),
                release: redis::Script::new(RELEASE_SCRIPT),
            }),
            local: Mutex::new(Local::default()),
            remembered: AtomicBool::new(false),
            metrics,
        });
        store.probe().await;
        if !store.is_up() {
            tracing::warn!(
                "the shared store (Redis) is not reachable; each replica uses its local state until it is"
            );
        }
        tokio::spawn(probe_loop(Arc::downgrade(&store)));
        Ok(store)
    }

    /// Whether a `[store]` is configured.
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether Redis answered its last call.
    pub fn is_up(&self) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| r.up.load(Ordering::Relaxed))
    }

    /// One `PING`; brings the store up (or down).
    async fn probe(&self) {
        let Some(r) = &self.remote else { return };
        let mut conn = r.conn.clone();
        let answer = tokio::time::timeout(
            r.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok(_)) => {
                self.metrics.store_up.set(1);
                if !r.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "the shared store (Redis) answers; state is shared across replicas"
                    );
                    self.replay_logouts().await;
                }
            }
            Ok(Err(_)) | Err(_) => self.mark_down("ping"),
        }
    }

    fn mark_down(&self, op: &'static str) {
        self.metrics.store_errors.with_label_values(&[op]).inc();
        self.metrics.store_up.set(0);
        if let Some(r) = &self.remote
            && r.up.swap(false, Ordering::Relaxed)
        {
            tracing::warn!(
                op,
                "the shared store (Redis) failed or is slow; falling back to local state"
            );
        }
    }

    /// Runs one Redis call when the store is up, bounded by the timeout;
    /// `None` when there is no store, it is down, or the call failed.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let r = self.remote.as_ref()?;
        if !r.up.load(Ordering::Relaxed) {
            return None;
        }
        match tokio::time::timeout(r.timeout, f(r.conn.clone())).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::debug!(op, kind = ?e.kind(), "store call failed");
                self.mark_down(op);
                None
            }
            Err(_) => {
                self.mark_down(op);
                None
            }
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        let prefix = self.remote.as_ref().map_or("", |r| r.prefix.as_str());
        format!("{prefix}{kind}:{id}")
    }

    fn lock_local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    // === logout memory ===

    /// Writes this replica's logout memory to Redis (once it answers again):
    /// a logout made while it was down, or whose write failed, otherwise
    /// never reaches the other replicas. Tokens are set until their `exp`,
    /// logout-all times only moved later. A failure marks the store down
    /// again, and the next recovery replays once more.
    async fn replay_logouts(&self) {
        let now = crate::time::unix_now_i64();
        let now_ms = unix_now_ms();
        let (tokens, users) = {
            let local = self.lock_local();
            (
                local
                    .tokens
                    .iter()
                    .filter(|(_, exp)| **exp > now)
                    .map(|(h, e)| (*h, *e))
                    .collect::<Vec<_>>(),
                local
                    .users
                    .iter()
                    .map(|(u, t)| (u.clone(), *t))
                    .collect::<Vec<_>>(),
            )
        };
        let Some(r) = &self.remote else { return };
        let ttl_all = i64::try_from(LOGOUT_ALL_TTL.as_millis()).unwrap_or(i64::MAX);
        for chunk in tokens.chunks(REPLAY_BATCH) {
            let mut pipe = redis::pipe();
            for (hash, exp) in chunk {
                let key = self.key("revoked", &URL_SAFE_NO_PAD.encode(hash));
                let ttl_ms = (exp - now).saturating_mul(1000);
                pipe.cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore();
            }
            let done = self
                .call("replay", |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
            if done.is_none() {
                return;
            }
        }
        for chunk in users.chunks(REPLAY_BATCH) {
            let mut pipe = redis::pipe();
            // After a restart Redis has forgotten the script.
            pipe.load_script(&r.later).ignore();
            let mut any = false;
            for (user, at_ms) in chunk {
                let left = ttl_all - (now_ms - at_ms);
                if left <= 0 {
                    continue;
                }
                any = true;
                let key = self.key("logout_all", &URL_SAFE_NO_PAD.encode(digest(user)));
                pipe.invoke_script(r.later.key(key).arg(*at_ms).arg(left))
                    .ignore();
            }
            if !any {
                continue;
            }
            let done = self
                .call("replay", |mut c| async move {
                    pipe.query_async::<()>(&mut c).await
                })
                .await;
            if done.is_none() {
                return;
            }
        }
        if !tokens.is_empty() || !users.is_empty() {
            tracing::info!(
                tokens = tokens.len(),
                users = users.len(),
                "logouts remembered here were written to the shared store"
            );
        }
    }

    /// Remembers a signed-out session token until `exp` (unix seconds).
    pub async fn revoke_session(&self, token: &str, exp: i64) {
        let now = crate::time::unix_now_i64();
        if exp <= now || token.is_empty() {
            return;
        }
        let hash = digest(token);
        {
            let mut local = self.lock_local();
            if local.tokens.len() >= MAX_LOCAL_ENTRIES {
                local.tokens.retain(|_, e| *e > now);
            }
            make_room(&mut local.tokens, MAX_LOCAL_ENTRIES);
            local.tokens.insert(hash, exp);
            self.remembered.store(true, Ordering::Release);
        }
        let key = self.key("revoked", &URL_SAFE_NO_PAD.encode(hash));
        let ttl_ms = u64::try_from(exp - now).unwrap_or(0).saturating_mul(1000);
        self.call("revoke", |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    }

    /// Remembers a logout-all of `subject` now: every session of that user
    /// issued before it is refused.
    pub async fn revoke_user(&self, subject: &str) {
        let now_ms = unix_now_ms();
        {
            let mut local = self.lock_local();
            let horizon = now_ms - i64::try_from(LOGOUT_ALL_TTL.as_millis()).unwrap_or(i64::MAX);
            if local.users.len() >= MAX_LOCAL_ENTRIES {
                local.users.retain(|_, t| *t > horizon);
            }
            if !local.users.contains_key(subject) {
                make_room(&mut local.users, MAX_LOCAL_ENTRIES);
            }
            local.users.insert(subject.to_owned(), now_ms);
            self.remembered.store(true, Ordering::Release);
        }
        let key = self.key("logout_all", &URL_SAFE_NO_PAD.encode(digest(subject)));
        let ttl = u64::try_from(LOGOUT_ALL_TTL.as_millis()).unwrap_or(u64::MAX);
        self.call("revoke", |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(now_ms)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    }

    /// Whether a session token was signed out (on any replica, when the
    /// store answers): the token itself, or its user with logout-all after
    /// the token's `iat`. `iat` is whole seconds, so a token issued in the
    /// same second as a logout-all counts as before it (fail closed).
    pub async fn is_revoked(&self, token: &str, subject: Option<&str>, iat: Option<i64>) -> bool {
        if self.remote.is_none() && !self.remembered.load(Ordering::Acquire) {
            return false;
        }
        let hash = digest(token);
        let issued_ms = iat.map(|s| s.saturating_mul(1000));
        {
            let local = self.lock_local();
            if local.tokens.contains_key(&hash) {
                return true;
            }
            if let (Some(sub), Some(issued)) = (subject, issued_ms)
                && local.users.get(sub).is_some_and(|t| issued < *t)
            {
                return true;
            }
        }
        if self.remote.is_none() {
            return false;
        }
        let token_key = self.key("revoked", &URL_SAFE_NO_PAD.encode(hash));
        let user_key = subject.map(|s| self.key("logout_all", &URL_SAFE_NO_PAD.encode(digest(s))));
        let answer = self
            .call("revoked", |mut c| async move {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(&token_key);
                if let Some(k) = &user_key {
                    cmd.arg(k);
                }
                cmd.query_async::<Vec<Option<i64>>>(&mut c).await
            })
            .await;
        let Some(values) = answer else { return false };
        if values.first().is_some_and(Option::is_some) {
            return true;
        }
        match (values.get(1).copied().flatten(), issued_ms) {
            (Some(at), Some(issued)) => issued < at,
            _ => false,
        }
    }

    // === rate limits ===

    /// The shared limit: one event against every key, or none. `Err` names
    /// the spec of the first key over its limit. Without a store, or while
    /// it is down, everything passes (the local limiter still applies).
    pub async fn rate_ok(&self, keys: &[(&str, RateSpec)]) -> Result<(), RateSpec> {
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let names: Vec<String> = keys
            .iter()
            .map(|(k, _)| self.key("rate", &URL_SAFE_NO_PAD.encode(digest(k))))
            .collect();
        let mut args = Vec::with_capacity(keys.len() * 2);
        for (_, spec) in keys {
            args.push(u64::from(spec.limit));
            args.push(u64::try_from(spec.period.as_millis()).unwrap_or(u64::MAX));
        }
        let script = r.rate.clone();
        let answer = self
            .call("rate", |mut c| async move {
                let mut inv = script.prepare_invoke();
                for n in &names {
                    inv.key(n);
                }
                for a in &args {
                    inv.arg(*a);
                }
                inv.invoke_async::<usize>(&mut c).await
            })
            .await;
        match answer {
            Some(i) if i >= 1 => Err(keys.get(i - 1).map_or(keys[0].1, |(_, s)| *s)),
            _ => Ok(()),
        }
    }

    // === refresh leases ===

    /// `SET key holder NX PX ttl`: `Some(true)` taken, `Some(false)` held by
    /// another, `None` no store.
    pub async fn try_lease(&self, id: &str, holder: &str, ttl: Duration) -> Option<bool> {
        let key = self.key("lease", id);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call("lease", |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async::<Option<String>>(&mut c)
                .await
                .map(|v| v.is_some())
        })
        .await
    }

    /// Extends a lease when `holder` still holds it.
    pub async fn renew_lease(&self, id: &str, holder: &str, ttl: Duration) -> Option<bool> {
        let script = self.remote.as_ref()?.renew.clone();
        let key = self.key("lease", id);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call("lease", |mut c| async move {
            script
                .key(&key)
                .arg(holder)
                .arg(ms)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|n| n == 1)
        })
        .await
    }

    /// Drops a lease when `holder` still holds it.
    pub async fn release_lease(&self, id: &str, holder: &str) {
        let Some(script) = self.remote.as_ref().map(|r| r.release.clone()) else {
            return;
        };
        let key = self.key("lease", id);
        self.call("lease", |mut c| async move {
            script
                .key(&key)
                .arg(holder)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await;
    }

    /// Stores a (sealed) refresh result for `ttl`.
    pub async fn put_result(&self, id: &str, value: &str, ttl: Duration) {
        let key = self.key("refreshed", id);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.call("result", |mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    }

    /// The stored refresh result: `Some(None)` none yet, `None` no store.
    pub async fn get_result(&self, id: &str) -> Option<Option<String>> {
        let key = self.key("refreshed", id);
        self.call("result", |mut c| async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await
    }
}

async fn probe_loop(store: Weak<Store>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        store.probe().await;
    }
}

fn digest(value: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Makes room for one more entry in a full logout memory: a new logout is
/// always remembered (refusing it would let a flood of logouts of one's
/// own sessions hide every later one), at the cost of the sixteenth of the
/// entries with the smallest values, i.e. nearest their expiry (tokens) or
/// oldest (logout-all times).
fn make_room<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, i64>, limit: usize) {
    if map.len() < limit {
        return;
    }
    let drop = (limit / 16).max(1).min(map.len());
    let mut values: Vec<i64> = map.values().copied().collect();
    let (_, cut, _) = values.select_nth_unstable(drop - 1);
    let cut = *cut;
    let mut left = drop;
    map.retain(|_, v| {
        if left > 0 && *v <= cut {
            left -= 1;
            false
        } else {
            true
        }
    });
    tracing::warn!(
        dropped = drop - left,
        "logout memory full: the logouts nearest their expiry were forgotten"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_logout_memory_forgets_the_nearest_expiry_not_the_newest() {
        let mut m: HashMap<u32, i64> = (0..32).map(|k| (k, 1_000 + i64::from(k))).collect();
        make_room(&mut m, 32);
        // A sixteenth of 32: the two entries nearest their expiry.
        assert_eq!(m.len(), 30);
        assert!(!m.contains_key(&0) && !m.contains_key(&1));
        assert!((2..32).all(|k| m.contains_key(&k)));
        // Not full: nothing goes.
        make_room(&mut m, 32);
        assert_eq!(m.len(), 30);
        // Equal values: exactly a sixteenth goes, never more.
        let mut same: HashMap<u32, i64> = (0..32).map(|k| (k, 5)).collect();
        make_room(&mut same, 32);
        assert_eq!(same.len(), 30);
    }

    #[tokio::test]
    async fn a_logout_is_remembered_even_when_the_memory_is_full() {
        let store = Store::local(Arc::new(Metrics::new()));
        let now = crate::time::unix_now_i64();
        let now_ms = unix_now_ms();
        {
            let mut local = store.lock_local();
            for i in 0..MAX_LOCAL_ENTRIES {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(i as u64).to_le_bytes());
                local
                    .tokens
                    .insert(k, now + 3600 + i64::try_from(i).unwrap());
            }
            for i in 0..MAX_LOCAL_ENTRIES {
                local
                    .users
                    .insert(format!("flood-{i}"), now_ms - i64::try_from(i).unwrap());
            }
        }
        store.revoke_session("victim-token", now + 60).await;
        assert!(store.is_revoked("victim-token", None, None).await);
        store.revoke_user("victim").await;
        assert!(
            store
                .is_revoked("other", Some("victim"), Some(now - 10))
                .await
        );
        assert!(store.lock_local().tokens.len() <= MAX_LOCAL_ENTRIES);
        assert!(store.lock_local().users.len() <= MAX_LOCAL_ENTRIES);
    }

    #[tokio::test]
    async fn local_memory_refuses_signed_out_tokens_and_earlier_sessions() {
        let store = Store::local(Arc::new(Metrics::new()));
        let now = crate::time::unix_now_i64();
        assert!(!store.is_revoked("tok-a", Some("u1"), Some(now - 10)).await);
        store.revoke_session("tok-a", now + 60).await;
        assert!(store.is_revoked("tok-a", Some("u1"), Some(now - 10)).await);
        assert!(!store.is_revoked("tok-b", Some("u1"), Some(now - 10)).await);
        // An already expired token is not worth remembering.
        store.revoke_session("tok-c", now - 1).await;
        assert!(store.lock_local().tokens.len() == 1);

        store.revoke_user("u1").await;
        assert!(store.is_revoked("tok-b", Some("u1"), Some(now - 10)).await);
        assert!(!store.is_revoked("tok-b", Some("u2"), Some(now - 10)).await);
        // A session issued well after the logout-all is fine.
        assert!(!store.is_revoked("tok-d", Some("u1"), Some(now + 5)).await);
        // Without a store nothing is shared and rate limits pass.
        let spec = RateSpec::parse("1/min").unwrap();
        assert!(store.rate_ok(&[("k", spec)]).await.is_ok());
        assert!(store.rate_ok(&[("k", spec)]).await.is_ok());
        assert_eq!(
            store.try_lease("x", "h", Duration::from_secs(1)).await,
            None
        );
    }
}

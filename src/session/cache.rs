//! Verified-claims cache: a token verified once is served from here until
//! its `exp`, so the hot path is one SHA-256 and one sharded-map lookup.
//!
//! Keys are the SHA-256 of the token plus its kind (session/refresh), so the
//! cache never holds a token. Entries carry the cache *epoch* they were
//! verified under; [`ClaimsCache::flush`] bumps the epoch (and empties the
//! shards), so an entry verified against a key set that has since changed
//! can never be served, even if its insert raced with the flush.
//!
//! Bounded: each of the shards holds at most `capacity / shards` (rounded
//! up) entries. A full shard first drops expired and stale entries, then an
//! arbitrary eighth of the rest, so a flood of distinct valid tokens costs
//! re-verification, never memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::digest;

use crate::claims::Claims;

/// Number of independently locked shards (a power of two): enough that two
/// to a few dozen workers rarely touch the same lock.
pub const DEFAULT_SHARDS: usize = 16;

/// Which verification a cached result stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A session JWT (`drn` not `DSR`).
    Session,
    /// A refresh JWT (`drn` = `DSR`).
    Refresh,
}

/// The cache key: SHA-256 of the token and the kind it was verified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    digest: [u8; 32],
    kind: TokenKind,
}

impl CacheKey {
    pub fn new(token: &str, kind: TokenKind) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(d.as_ref());
        Self {
            digest: bytes,
            kind,
        }
    }

    fn shard(&self, mask: usize) -> usize {
        usize::from(self.digest[0]) & mask
    }
}

struct Entry {
    claims: Arc<Claims>,
    /// Last second (UNIX time) at which the token still verifies: `exp` + leeway.
    valid_until: u64,
    epoch: u64,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Arc<Claims>),
    /// Verified earlier, now past `exp` (+ leeway).
    Expired,
    Miss,
}

pub struct ClaimsCache {
    shards: Box<[RwLock<HashMap<CacheKey, Entry>>]>,
    per_shard: usize,
    epoch: AtomicU64,
}

impl ClaimsCache {
    /// A cache of about `capacity` entries; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        // Fewer shards for tiny capacities, so the bound stays close to it.
        let shards = DEFAULT_SHARDS.min(capacity.max(1).next_power_of_two());
        let per_shard = capacity.div_ceil(shards);
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard,
            epoch: AtomicU64::new(0),
        }
    }

    /// The current epoch; read it *before* loading the key set used to
    /// verify, and insert under it.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Looks `key` up at `now` (UNIX seconds).
    pub fn get(&self, key: &CacheKey, now: u64) -> Lookup {
        if self.per_shard == 0 {
            return Lookup::Miss;
        }
        let epoch = self.epoch();
        let shard = self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(key) {
            Some(e) if e.epoch != epoch => Lookup::Miss,
            Some(e) if now > e.valid_until => Lookup::Expired,
            Some(e) => Lookup::Hit(Arc::clone(&e.claims)),
            None => Lookup::Miss,
        }
    }

    /// Stores a verification result made under `epoch`, valid through
    /// `valid_until` (UNIX seconds). Evicts when the shard is full.
    pub fn insert(
        &self,
        key: CacheKey,
        claims: Arc<Claims>,
        valid_until: u64,
        epoch: u64,
        now: u64,
    ) {
        if self.per_shard == 0 || epoch != self.epoch() {
            return;
        }
        let mut shard = self
            .shard(&key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.epoch == epoch && e.valid_until >= now);
            if shard.len() >= self.per_shard {
                let n = (self.per_shard / 8).max(1);
                let victims: Vec<CacheKey> = shard.keys().take(n).copied().collect();
                for k in victims {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(
            key,
            Entry {
                claims,
                valid_until,
                epoch,
            },
        );
    }

    /// Invalidates every entry (new epoch) and frees the memory.
    pub fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for s in self.shards.iter() {
            s.write().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Entries held (including expired ones not yet evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the cache can hold.
    pub fn bound(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    fn shard(&self, key: &CacheKey) -> &RwLock<HashMap<CacheKey, Entry>> {
        &self.shards[key.shard(self.shards.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn claims(sub: &str) -> Arc<Claims> {
        let mut m = Map::new();
        m.insert("sub".into(), sub.into());
        Arc::new(Claims::from_verified(m))
    }

    #[test]
    fn hit_miss_expired() {
        let c = ClaimsCache::new(100);
        let k = CacheKey::new("tok", TokenKind::Session);
        assert!(matches!(c.get(&k, 10), Lookup::Miss));
        c.insert(k, claims("u"), 20, c.epoch(), 10);
        assert!(matches!(c.get(&k, 20), Lookup::Hit(ref x) if x.subject() == Some("u")));
        assert!(matches!(c.get(&k, 21), Lookup::Expired));
        let other_kind = CacheKey::new("tok", TokenKind::Refresh);
        assert!(matches!(c.get(&other_kind, 10), Lookup::Miss));
    }

    #[test]
    fn flush_and_stale_epoch_inserts_are_ignored() {
        let c = ClaimsCache::new(100);
        let k = CacheKey::new("tok", TokenKind::Session);
        let before = c.epoch();
        c.insert(k, claims("u"), 20, before, 10);
        c.flush();
        assert!(matches!(c.get(&k, 10), Lookup::Miss));
        assert!(c.is_empty());
        // A verification that started before the flush must not land.
        c.insert(k, claims("u"), 20, before, 10);
        assert!(matches!(c.get(&k, 10), Lookup::Miss));
        c.insert(k, claims("u"), 20, c.epoch(), 10);
        assert!(matches!(c.get(&k, 10), Lookup::Hit(_)));
    }

    #[test]
    fn bounded_under_a_flood() {
        for cap in [1usize, 7, 100, 1000] {
            let c = ClaimsCache::new(cap);
            assert!(
                c.bound() >= cap && c.bound() < cap + DEFAULT_SHARDS,
                "cap {cap}"
            );
            for i in 0..(cap * 20 + 50) {
                let k = CacheKey::new(&format!("token-{i}"), TokenKind::Session);
                c.insert(k, claims("u"), 1_000, c.epoch(), 10);
                assert!(
                    c.len() <= c.bound(),
                    "cap {cap}: {} > {}",
                    c.len(),
                    c.bound()
                );
            }
            // The newest entry is always kept.
            let last = CacheKey::new(&format!("token-{}", cap * 20 + 49), TokenKind::Session);
            assert!(matches!(c.get(&last, 10), Lookup::Hit(_)));
        }
    }

    #[test]
    fn full_shard_drops_expired_first() {
        let c = ClaimsCache::new(1);
        let old = CacheKey::new("old", TokenKind::Session);
        c.insert(old, claims("old"), 5, c.epoch(), 1);
        let new = CacheKey::new("new", TokenKind::Session);
        c.insert(new, claims("new"), 50, c.epoch(), 10);
        assert!(matches!(c.get(&new, 10), Lookup::Hit(_)));
        assert!(matches!(c.get(&old, 10), Lookup::Miss));
    }

    #[test]
    fn zero_capacity_disables() {
        let c = ClaimsCache::new(0);
        let k = CacheKey::new("tok", TokenKind::Session);
        c.insert(k, claims("u"), 20, c.epoch(), 10);
        assert!(matches!(c.get(&k, 10), Lookup::Miss));
        assert_eq!(c.bound(), 0);
    }
}

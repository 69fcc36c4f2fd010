//! Login-start rate limiting: `[login] ip_rate_limit` (every start, per
//! client IP; generous, so an office behind one NAT fits) and
//! `[login] start_rate_limit` (per e-mail address, for starts that send a
//! message: magic link, enchanted link, one-time code), e.g. `"10/min"`.
//!
//! Each key has a token bucket that holds at most `limit` tokens and refills
//! `limit` tokens per period, so a burst of `limit` starts is allowed and the
//! long-run rate is `limit` per period. Memory is bounded: at most
//! `max_keys` buckets exist; when the table is full, buckets that have fully
//! refilled (indistinguishable from absent ones) are swept, and if it is
//! still full the start is refused — failing closed rather than evicting a
//! victim's bucket on an attacker's behalf. Limits are per replica.
//!
//! Time comes from `tokio::time::Instant`, so tests run on paused time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default `[login] start_rate_limit` (per e-mail, message-sending starts).
pub const DEFAULT_START_RATE_LIMIT: &str = "10/min";
/// Default `[login] ip_rate_limit` (per client IP, every start): 40 people
/// behind one NAT starting a sign-in within the same minute, several times.
pub const DEFAULT_IP_RATE_LIMIT: &str = "300/min";

/// Default bound on the number of tracked keys (IPs + e-mails): ~100 bytes
/// each, so a few MB at most.
pub const DEFAULT_MAX_KEYS: usize = 50_000;

/// Why a rate spec did not parse.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RateSpecError {
    #[error("expected COUNT/UNIT such as \"10/min\" (units: s, sec, min, m, h, hour)")]
    Syntax,
    #[error("the count must be a whole number from 1 to 1000000")]
    Count,
}

/// The rate-limit key of a client address: IPv4 as it is, IPv6 by its /64
/// (one host commonly holds a whole /64, so per-address buckets would let it
/// start logins from as many addresses as it likes). IPv4-mapped IPv6 counts
/// as the IPv4 address.
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("ip:{v4}"),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("ip:{net}/64")
            }
        },
    }
}

/// `COUNT/UNIT`: `limit` events per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub limit: u32,
    pub period: Duration,
}

impl RateSpec {
    /// A fair `Retry-After`: the time one token takes to come back.
    pub fn retry_after(&self) -> Duration {
        (self.period / self.limit.max(1)).max(Duration::from_secs(1))
    }

    /// Parses `"10/min"`, `"5/s"`, `"100/hour"`, `"3/10m"` (a humantime period).
    pub fn parse(raw: &str) -> Result<Self, RateSpecError> {
        let (count, unit) = raw.trim().split_once('/').ok_or(RateSpecError::Syntax)?;
        let limit: u32 = count.trim().parse().map_err(|_| RateSpecError::Count)?;
        if limit == 0 || limit > 1_000_000 {
            return Err(RateSpecError::Count);
        }
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| RateSpecError::Syntax)?,
        };
        if period.is_zero() {
            return Err(RateSpecError::Syntax);
        }
        Ok(Self { limit, period })
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// The limit it was last charged under (for sweeping full buckets).
    spec: RateSpec,
}

/// A keyed token-bucket limiter with bounded memory.
#[derive(Debug)]
pub struct RateLimiter {
    spec: RateSpec,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

// === impl RateLimiter ===

impl RateLimiter {
    pub fn new(spec: RateSpec, max_keys: usize) -> Self {
        Self {
            spec,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from *every* key, or from none: allowed only when each
    /// key has a token left. Keys are compared as given (callers normalise,
    /// e.g. lower-case e-mails and prefix `ip:`/`email:`).
    pub fn try_acquire(&self, keys: &[&str]) -> bool {
        let keyed: Vec<(&str, RateSpec)> = keys.iter().map(|k| (*k, self.spec)).collect();
        self.try_acquire_each(&keyed).is_ok()
    }

    /// [`Self::try_acquire`] with a limit per key (all or nothing, as there).
    /// On refusal returns the spec of the first key without a token left,
    /// so the caller can compute a `Retry-After`.
    pub fn try_acquire_each(&self, keys: &[(&str, RateSpec)]) -> Result<(), RateSpec> {
        let now = Instant::now();
        let first = keys.first().map_or(self.spec, |(_, s)| *s);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(first); // poisoned: fail closed
        };
        let refill = |b: &Bucket, spec: RateSpec| -> f64 {
            let capacity = f64::from(spec.limit);
            let per_sec = capacity / spec.period.as_secs_f64();
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            (b.tokens + elapsed * per_sec).min(capacity)
        };
        // Room for keys not tracked yet.
        let new_keys = keys
            .iter()
            .filter(|(k, _)| !buckets.contains_key(*k))
            .count();
        if buckets.len() + new_keys > self.max_keys {
            buckets.retain(|_, b| refill(b, b.spec) < f64::from(b.spec.limit));
        }
        if buckets.len() + new_keys > self.max_keys {
            // Still full: make room by dropping buckets that are not
            // refusing anyone (a token left), so a flood of one-off keys
            // (many e-mail addresses) cannot lock every new client out of
            // login. The fullest go first and only a batch of them (a
            // sixteenth of the table, so the sweep is rare): a dropped key
            // starts again from a full bucket, which costs little for a key
            // that was nearly full, while the nearly drained ones (a flood's
            // target, say) keep their count. Exhausted buckets always stay.
            let needed = buckets.len() + new_keys - self.max_keys;
            let mut spare: Vec<(f64, &String)> = buckets
                .iter()
                .filter_map(|(k, b)| {
                    let tokens = refill(b, b.spec);
                    (tokens >= 1.0).then(|| (tokens / f64::from(b.spec.limit), k))
                })
                .collect();
            if spare.len() < needed {
                return Err(first); // (nearly) every tracked key is exhausted
            }
            let batch = needed.max(self.max_keys / 16).min(spare.len());
            spare.select_nth_unstable_by(batch - 1, |a, b| b.0.total_cmp(&a.0));
            let drop: Vec<String> = spare
                .iter()
                .take(batch)
                .map(|(_, k)| (*k).clone())
                .collect();
            for k in &drop {
                buckets.remove(k);
            }
        }
        if let Some((_, spec)) = keys
            .iter()
            .find(|(k, spec)| buckets.get(*k).is_some_and(|b| refill(b, *spec) < 1.0))
        {
            return Err(*spec);
        }
        for (k, spec) in keys {
            let tokens = buckets
                .get(*k)
                .map_or(f64::from(spec.limit), |b| refill(b, *spec));
            buckets.insert(
                (*k).to_owned(),
                Bucket {
                    tokens: tokens - 1.0,
                    updated: now,
                    spec: *spec,
                },
            );
        }
        Ok(())
    }

    /// Number of tracked keys (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(spec: &str, max_keys: usize) -> RateLimiter {
        RateLimiter::new(RateSpec::parse(spec).expect("valid spec"), max_keys)
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            "ip:2001:db8:1:2::/64"
        );
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, u32, u64)] = &[
            ("10/min", 10, 60),
            ("10/m", 10, 60),
            (" 5 / s ", 5, 1),
            ("100/hour", 100, 3600),
            ("3/10m", 3, 600),
            ("1/second", 1, 1),
        ];
        for (raw, limit, secs) in ok {
            assert_eq!(
                RateSpec::parse(raw),
                Ok(RateSpec {
                    limit: *limit,
                    period: Duration::from_secs(*secs)
                }),
                "{raw}"
            );
        }
        let bad: &[(&str, RateSpecError)] = &[
            ("10", RateSpecError::Syntax),
            ("10/fortnight", RateSpecError::Syntax),
            ("0/min", RateSpecError::Count),
            ("-1/min", RateSpecError::Count),
            ("x/min", RateSpecError::Count),
            ("2000000/min", RateSpecError::Count),
            ("1/0s", RateSpecError::Syntax),
        ];
        for (raw, want) in bad {
            assert_eq!(RateSpec::parse(raw), Err(want.clone()), "{raw}");
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn burst_then_refill() {
        let l = limiter("3/min", 100);
        for _ in 0..3 {
            assert!(l.try_acquire(&["ip:1"]));
        }
        assert!(!l.try_acquire(&["ip:1"]));
        // Other keys are independent.
        assert!(l.try_acquire(&["ip:2"]));
        // One token comes back every 20 s.
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(!l.try_acquire(&["ip:1"]));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(l.try_acquire(&["ip:1"]));
        assert!(!l.try_acquire(&["ip:1"]));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn all_or_nothing_across_keys() {
        let l = limiter("2/min", 100);
        assert!(l.try_acquire(&["ip:1", "email:a@x"]));
        assert!(l.try_acquire(&["ip:2", "email:a@x"]));
        // The e-mail is exhausted; the new IP must not be charged.
        assert!(!l.try_acquire(&["ip:3", "email:a@x"]));
        assert!(l.try_acquire(&["ip:3"]));
        assert!(l.try_acquire(&["ip:3"]));
        assert!(!l.try_acquire(&["ip:3"]));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn memory_is_bounded_and_only_exhausted_keys_fill_it() {
        let l = limiter("2/min", 3);
        assert!(l.try_acquire(&["a"]));
        assert!(l.try_acquire(&["b"]));
        assert!(l.try_acquire(&["c"]));
        // Full of partly used buckets: one makes room for a new key (a
        // flood of one-off keys cannot lock new clients out).
        assert!(l.try_acquire(&["d"]));
        assert_eq!(l.tracked(), 3);
        // Exhausted buckets are kept: they are the ones limiting.
        assert!(l.try_acquire(&["d"]));
        assert!(!l.try_acquire(&["d"]), "d is exhausted");
        assert!(l.try_acquire(&["e"]));
        assert!(l.try_acquire(&["e"]));
        assert!(l.try_acquire(&["f"]));
        assert!(l.try_acquire(&["f"]));
        assert_eq!(l.tracked(), 3);
        // Full of exhausted buckets: a new key is refused (fail closed) ...
        assert!(!l.try_acquire(&["g"]));
        assert!(!l.try_acquire(&["d"]), "and d is still limited");
        // ... until they refill and are swept.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(l.try_acquire(&["g"]));
        assert_eq!(l.tracked(), 1);
    }

    /// A flood of one-off keys filling the table does not give a nearly
    /// drained key its budget back: the fullest buckets make room first.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_flood_of_new_keys_does_not_reset_a_drained_key() {
        let l = limiter("10/min", 64);
        for _ in 0..9 {
            assert!(l.try_acquire(&["email:victim"]));
        }
        for n in 0..10_000 {
            assert!(
                l.try_acquire(&[format!("ip:{n}").as_str()]),
                "flood key {n}"
            );
        }
        assert!(l.tracked() <= 64);
        assert!(l.try_acquire(&["email:victim"]), "its last token");
        assert!(
            !l.try_acquire(&["email:victim"]),
            "the flood reset its bucket"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn each_key_has_its_own_limit() {
        let l = limiter("1/min", 100);
        let ip = RateSpec::parse("300/min").expect("valid");
        let email = RateSpec::parse("2/min").expect("valid");
        // 40 people behind one NAT, each with their own address.
        for n in 0..40 {
            let e = format!("email:u{n}@x");
            assert_eq!(l.try_acquire_each(&[("ip:nat", ip), (&e, email)]), Ok(()));
        }
        // One address is limited on its own, and says which limit refused.
        assert_eq!(
            l.try_acquire_each(&[("ip:nat", ip), ("email:u1@x", email)]),
            Ok(())
        );
        assert_eq!(
            l.try_acquire_each(&[("ip:nat", ip), ("email:u1@x", email)]),
            Err(email)
        );
        assert_eq!(email.retry_after(), Duration::from_secs(30));
    }
}

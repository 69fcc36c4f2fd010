//! Wall-clock seconds, the clock JWT `exp`, `iat` and `nbf` are measured on.
//! (Deadlines and TTLs inside the process use `tokio::time::Instant`, so tests
//! can pause time.)

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the UNIX epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`unix_now`] as a signed number, for arithmetic with JWT claims.
pub fn unix_now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

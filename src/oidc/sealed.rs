//! The gateway-sealed session of the OIDC mode: the verified (mapped)
//! claims, their expiry, the refresh token and the ID token (for logout),
//! encrypted and authenticated with AES-256-GCM (aws-lc-rs) under a key
//! derived by HKDF-SHA256 from `[session] secret`. Nothing in it is readable
//! or forgeable by the browser; values sealed under a `previous_secrets`
//! key still open, so a secret rotation signs nobody out.
//!
//! Wire form: `o1.` + base64url(nonce ‖ ciphertext ‖ tag), cookie-safe.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const PREFIX: &str = "o1.";
const SALT: &[u8] = b"portcullis oidc session salt v1";
const INFO: &[u8] = b"portcullis oidc session key v1";
const AAD: &[u8] = b"portcullis/oidc-session/v1";
/// Largest sealed value opened (the cookie chunks bound it anyway).
const MAX_SEALED: usize = 16 * 1024;

/// What a session cookie holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedSession {
    /// The mapped claims (`roles`, `permissions`, `tenants` at the top).
    #[serde(rename = "c")]
    pub claims: Map<String, Value>,
    /// When the session needs a refresh (the ID token's `exp`).
    #[serde(rename = "e")]
    pub expires_at: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// For `id_token_hint` at logout and `forward_token`.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// When the user signed in (unix seconds), kept through refreshes: a
    /// session older than [`MAX_SESSION_AGE`] is not refreshed. `None` in
    /// cookies sealed before it was recorded (counted from their next
    /// refresh).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<i64>,
}

/// The longest an OIDC session lives from its sign-in, refreshes included
/// (oauth2-proxy's default `cookie_expire`). It is also how long a signed-out
/// refresh token and a logout-all are remembered, so a copy of a cookie
/// signed out earlier can never outlive that memory.
pub const MAX_SESSION_AGE: std::time::Duration = crate::store::LOGOUT_ALL_TTL;

/// Seals and opens sessions; the first key seals, every key opens.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
    rng: SystemRandom,
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// From the current secret and the previous ones.
    pub fn new(secret: &[u8], previous: &[&[u8]]) -> Option<Self> {
        let keys = std::iter::once(secret)
            .chain(previous.iter().copied())
            .map(derive)
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// The cookie value for `session`; `None` only if the RNG fails.
    pub fn seal(&self, session: &SealedSession) -> Option<String> {
        let mut plain = serde_json::to_vec(session).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.keys
            .first()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut plain,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&plain);
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a cookie value; `None` when it is not one of ours (tampered,
    /// another secret, another format).
    pub fn open(&self, value: &str) -> Option<SealedSession> {
        let body = value.strip_prefix(PREFIX)?;
        if body.len() > MAX_SEALED {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.keys.iter().find_map(|key| {
            let mut buf = sealed.to_vec();
            let plain = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(AAD),
                    &mut buf,
                )
                .ok()?;
            serde_json::from_slice(plain).ok()
        })
    }
}

fn derive(secret: &[u8]) -> Option<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
    let okm = prk.expand(&[INFO], KeyLen).ok()?;
    let mut key = [0u8; 32];
    okm.fill(&mut key).ok()?;
    UnboundKey::new(&AES_256_GCM, &key)
        .ok()
        .map(LessSafeKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> SealedSession {
        SealedSession {
            claims: json!({"sub": "u1", "roles": ["admin"]})
                .as_object()
                .cloned()
                .unwrap(),
            expires_at: 1_900_000_000,
            refresh_token: Some("rt".into()),
            id_token: Some("id".into()),
            signed_in_at: Some(1_800_000_000),
        }
    }

    #[test]
    fn round_trip_and_rotation() {
        let a = Sealer::new(b"0123456789abcdef0123456789abcdef", &[]).unwrap();
        let sealed = a.seal(&session()).unwrap();
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert!(!sealed.contains("admin"), "nothing readable");
        assert_eq!(a.open(&sealed), Some(session()));
        // Two seals of the same session differ (random nonce).
        assert_ne!(a.seal(&session()).unwrap(), sealed);
        // A rotated secret still opens old values; an unrelated one does not.
        let b = Sealer::new(
            b"another-secret-another-secret-xx",
            &[b"0123456789abcdef0123456789abcdef"],
        )
        .unwrap();
        assert_eq!(b.open(&sealed), Some(session()));
        let c = Sealer::new(b"another-secret-another-secret-xx", &[]).unwrap();
        assert_eq!(c.open(&sealed), None);
    }

    #[test]
    fn tampering_is_refused() {
        let a = Sealer::new(b"0123456789abcdef0123456789abcdef", &[]).unwrap();
        let sealed = a.seal(&session()).unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.open(&String::from_utf8(bytes).unwrap()), None);
        for bad in ["", "o1.", "o1.AAAA", "x1.abcd", &sealed[..sealed.len() - 2]] {
            assert_eq!(a.open(bad), None, "{bad:?}");
        }
    }
}

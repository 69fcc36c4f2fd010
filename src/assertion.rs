//! The identity assertion (`[identity.assertion]`): a short-lived JWT signed by
//! the gateway with a key generated at start, sent to the upstream in a header
//! so apps can verify identity cryptographically; the public key is served at
//! `{auth_prefix}/jwks.json`. The key lives as long as the process (so a
//! reload never invalidates what apps have cached); whether an assertion is
//! sent, under which header and for how long it is valid are settings of
//! the current configuration.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::claims::Claims;

pub struct AssertionSigner {
    key: EncodingKey,
    kid: String,
    jwk: serde_json::Value,
}

impl AssertionSigner {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation does not fail with the system RNG");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("a freshly generated PKCS#8 key parses");
        let point = pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let x = b64.encode(&point[1..33]);
        let y = b64.encode(&point[33..65]);
        let kid = format!("{:016x}", rand::random::<u64>());
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        Self { key, kid, jwk }
    }

    /// `{"keys": [JWK]}` for `{auth_prefix}/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// A signed assertion of the verified identity, for `audience` (the
    /// upstream URL), valid for `ttl`.
    pub fn sign(
        &self,
        issuer: &str,
        audience: &str,
        claims: &Claims,
        tenant: Option<&str>,
        ttl: std::time::Duration,
    ) -> Option<String> {
        let now = crate::time::unix_now();
        let mut body = serde_json::Map::new();
        body.insert("iss".into(), issuer.into());
        body.insert("aud".into(), audience.into());
        body.insert("sub".into(), claims.subject()?.into());
        body.insert("iat".into(), now.into());
        body.insert("exp".into(), (now + ttl.as_secs()).into());
        for k in [
            "email",
            "name",
            "roles",
            "permissions",
            "tenants",
            "dct",
            "amr",
        ] {
            if let Some(v) = claims.get(k) {
                body.insert(k.into(), v.clone());
            }
        }
        if let Some(t) = tenant {
            body.insert("tenant".into(), t.into());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &body, &self.key).ok()
    }
}

impl Default for AssertionSigner {
    fn default() -> Self {
        Self::new()
    }
}

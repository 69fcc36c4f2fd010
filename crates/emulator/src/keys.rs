//! Signing keys: generated at start with aws-lc-rs, published as a JWKS, used
//! through `jsonwebtoken` to sign tokens.
//!
//! A [`KeyRing`] holds the current key plus retired keys that stay in the JWKS
//! (so tokens signed before a rotation still verify) until dropped.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::options::KeyType;
use crate::util::random_hex;

/// Errors generating or using a signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("cannot load the generated key into the JWT signer")]
    Load(#[source] jsonwebtoken::errors::Error),
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// One signing key with its public JWK.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    /// A fresh key of the given type: ES384 on P-384 (as Descope's own
    /// fixtures), ES256 on P-256, or RS256 with a 2048-bit modulus.
    pub(crate) fn generate(key_type: KeyType, kid: String) -> Result<Self, KeyError> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        match key_type {
            KeyType::Ec => {
                Self::generate_ec(kid, &ECDSA_P384_SHA384_FIXED_SIGNING, Algorithm::ES384)
            }
            KeyType::Ec256 => {
                Self::generate_ec(kid, &ECDSA_P256_SHA256_FIXED_SIGNING, Algorithm::ES256)
            }
            KeyType::Rsa => Self::generate_rsa(kid),
        }
    }

    fn generate_ec(
        kid: String,
        curve: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        alg: Algorithm,
    ) -> Result<Self, KeyError> {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair};
        let (name, crv, len) = match alg {
            Algorithm::ES256 => ("ES256", "P-256", 32),
            Algorithm::ES384 => ("ES384", "P-384", 48),
            _ => return Err(KeyError::Generate),
        };
        let pair = EcdsaKeyPair::generate(curve).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
        // Uncompressed SEC1 point: 0x04 || x || y, `len` bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 1 + 2 * len || point[0] != 4 {
            return Err(KeyError::Generate);
        }
        let jwk = json!({
            "kty": "EC",
            "kid": kid,
            "alg": name,
            "use": "sig",
            "crv": crv,
            "x": URL_SAFE_NO_PAD.encode(&point[1..1 + len]),
            "y": URL_SAFE_NO_PAD.encode(&point[1 + len..]),
        });
        Ok(Self {
            kid,
            alg,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        })
    }

    fn generate_rsa(kid: String) -> Result<Self, KeyError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair;
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        // jsonwebtoken's RSA signer wants PKCS#1; its PEM reader unwraps PKCS#8.
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(KeyError::Load)?;
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        Ok(Self {
            kid,
            alg: Algorithm::RS256,
            encoding,
            jwk,
        })
    }

    /// The public JWK (`kty`, `kid`, `alg`, `use`, and `crv/x/y` or `n/e`).
    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` with `typ: JWT` and this key's `kid`.
    pub(crate) fn sign(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(KeyError::Sign)
    }
}

/// The current signing key and the retired keys still published.
pub(crate) struct KeyRing {
    current: SigningKey,
    retired: Vec<SigningKey>,
}

impl KeyRing {
    pub(crate) fn new(key_type: KeyType) -> Result<Self, KeyError> {
        Ok(Self {
            current: SigningKey::generate(key_type, new_kid())?,
            retired: Vec::new(),
        })
    }

    pub(crate) fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Makes `next` the signing key; the old key stays published unless `drop_old`.
    pub(crate) fn install(&mut self, next: SigningKey, drop_old: bool) {
        let old = std::mem::replace(&mut self.current, next);
        if drop_old {
            self.retired.clear();
        } else {
            self.retired.push(old);
        }
    }

    /// Every published key, current first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.retired.iter().rev())
    }

    /// `{"keys": [...]}`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": self.all().map(|k| k.jwk().clone()).collect::<Vec<_>>() })
    }

    /// Verifies a token signed by one of the published keys (signature, `exp`
    /// without leeway) and returns its claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self
            .all()
            .find(|k| k.kid == kid)
            .ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(VerifyError::UnknownKey);
        }
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.jwk.clone()).map_err(|_| VerifyError::UnknownKey)?;
        let decoding =
            jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|_| VerifyError::UnknownKey)?;
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        match jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(VerifyError::Expired),
                _ => Err(VerifyError::Invalid),
            },
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerifyError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token was not signed by a published key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token signature or claims are invalid")]
    Invalid,
}

/// A random key id (32 hex characters, like Descope's).
fn new_kid() -> String {
    random_hex(16)
}

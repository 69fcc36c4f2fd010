//! The token-parsing entry points of `session::verify` on arbitrary input:
//! `parse_header` (runs on every presented token before any key lookup),
//! `issuer_matches_project`, JWKS parsing, and `Verifier::verify` with a fixed
//! key. Never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::session::TokenKind;
use portcullis::session::jwks::KeySet;
use portcullis::session::verify::{TokenHeader, Verifier, issuer_matches_project, parse_header};

/// The P-256 key of RFC 7515 appendix A.3, as a one-key JWKS.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::from_jwks_json(JWKS).expect("fixed JWKS parses"))
}

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new("P2abc", "P2abc"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(header) = parse_header(input) {
                assert!(!header.kid.is_empty(), "accepted a token without kid");
            }
        }
        1 => {
            let (iss, pid) = input.split_once('\n').unwrap_or((input, "P2abc"));
            let _ = issuer_matches_project(iss, pid);
        }
        2 => {
            let _ = KeySet::from_jwks_json(input);
            let _ = KeySet::from_seed_json(input);
        }
        _ => {
            // Signature and claim checks on arbitrary tokens: take the
            // token's own header when it parses, else pretend it named the key.
            let Some(key) = keys().get("k1") else {
                return;
            };
            let header = parse_header(input).unwrap_or(TokenHeader {
                alg: key.alg,
                kid: key.kid.clone(),
            });
            for kind in [TokenKind::Session, TokenKind::Refresh] {
                let _ = verifier().verify(input, &header, key, kind);
            }
        }
    }
});

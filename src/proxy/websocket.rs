//! The WebSocket opening handshake (RFC 6455 §4), checked on both sides.
//!
//! A `101 Switching Protocols` turns the connection into a byte tunnel that
//! the gateway no longer judges. So the gateway tunnels only when
//!
//! - the client asked for a WebSocket: HTTP/1.1 `GET` without a body, with
//!   `Upgrade: websocket` and `Connection: upgrade`, one `Sec-WebSocket-Key`
//!   that is the base64 of 16 bytes, and `Sec-WebSocket-Version: 13`; and
//! - the upstream accepted exactly that: `101` with `Upgrade: websocket`, an
//!   `upgrade` token in `Connection`, and one `Sec-WebSocket-Accept` equal to
//!   base64(SHA-1(key + the RFC 6455 GUID)).
//!
//! A request that is not a valid handshake goes upstream without `Upgrade`;
//! any 101 that does not complete a valid handshake is a 502 (the caller
//! drops the upstream connection, never turning it into a tunnel).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{self, HeaderMap};
use http::{Method, Request, Version};

/// The GUID RFC 6455 §1.3 appends to the key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid client handshake: what the upstream's accept must be.
#[derive(Debug, Clone)]
pub struct Handshake {
    expected_accept: String,
}

impl Handshake {
    /// The handshake `req` asks for, when it is a valid one. `upgrade_asked`
    /// says the hop-by-hop headers (already removed) were `Connection:
    /// upgrade` with `Upgrade: websocket` and nothing else.
    pub fn from_request<B>(req: &Request<B>, upgrade_asked: bool) -> Option<Self> {
        if !upgrade_asked || req.version() != Version::HTTP_11 || req.method() != Method::GET {
            return None;
        }
        let headers = req.headers();
        let version = only(headers, header::SEC_WEBSOCKET_VERSION)?;
        if version.trim() != "13" {
            return None;
        }
        let key = only(headers, header::SEC_WEBSOCKET_KEY)?.trim();
        let decoded = STANDARD.decode(key).ok()?;
        if decoded.len() != 16 {
            return None;
        }
        Some(Self {
            expected_accept: accept_for(key),
        })
    }

    /// Whether the upstream's 101 headers complete this handshake.
    pub fn accepted_by(&self, headers: &HeaderMap) -> bool {
        let upgrade = only(headers, header::UPGRADE)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
        let connection = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        let accept = only(headers, header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.trim() == self.expected_accept);
        upgrade && connection && accept
    }
}

/// The value of the one header called `name` (none, several or a non-text
/// value: `None`).
fn only(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2 step 5.4).
pub fn accept_for(key: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(GUID.as_bytes());
    STANDARD.encode(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder()
            .method(method)
            .version(version)
            .uri("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn accept_matches_the_rfc_example() {
        assert_eq!(accept_for(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn only_a_valid_client_handshake_is_one() {
        let good = [("sec-websocket-key", KEY), ("sec-websocket-version", "13")];
        assert!(
            Handshake::from_request(&request(Version::HTTP_11, Method::GET, &good), true).is_some()
        );
        type Case<'a> = (Version, Method, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case<'_>] = &[
            (Version::HTTP_11, Method::GET, &good, false),
            (Version::HTTP_10, Method::GET, &good, true),
            (Version::HTTP_2, Method::GET, &good, true),
            (Version::HTTP_11, Method::POST, &good, true),
            (
                Version::HTTP_11,
                Method::GET,
                &[("sec-websocket-version", "13")],
                true,
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[("sec-websocket-key", KEY)],
                true,
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[("sec-websocket-key", KEY), ("sec-websocket-version", "8")],
                true,
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[
                    ("sec-websocket-key", "c2hvcnQ="),
                    ("sec-websocket-version", "13"),
                ],
                true,
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[
                    ("sec-websocket-key", "!!!!"),
                    ("sec-websocket-version", "13"),
                ],
                true,
            ),
            (
                Version::HTTP_11,
                Method::GET,
                &[
                    ("sec-websocket-key", KEY),
                    ("sec-websocket-key", KEY),
                    ("sec-websocket-version", "13"),
                ],
                true,
            ),
        ];
        for (version, method, headers, asked) in cases {
            let req = request(*version, method.clone(), headers);
            assert!(
                Handshake::from_request(&req, *asked).is_none(),
                "{version:?} {method} {headers:?} asked={asked}"
            );
        }
    }

    #[test]
    fn only_the_right_accept_completes_it() {
        let good = [("sec-websocket-key", KEY), ("sec-websocket-version", "13")];
        let hs =
            Handshake::from_request(&request(Version::HTTP_11, Method::GET, &good), true).unwrap();
        let answer = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        assert!(hs.accepted_by(&answer(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-accept", accept),
        ])));
        for bad in [
            answer(&[]),
            answer(&[("upgrade", "websocket"), ("connection", "upgrade")]),
            answer(&[("upgrade", "websocket"), ("sec-websocket-accept", accept)]),
            answer(&[("connection", "upgrade"), ("sec-websocket-accept", accept)]),
            answer(&[
                ("upgrade", "h2c"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", accept),
            ]),
            answer(&[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", KEY),
            ]),
            answer(&[
                ("upgrade", "websocket"),
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", accept),
            ]),
            answer(&[
                ("upgrade", "websocket"),
                ("connection", "upgrade"),
                ("sec-websocket-accept", accept),
                ("sec-websocket-accept", accept),
            ]),
        ] {
            assert!(!hs.accepted_by(&bad), "{bad:?}");
        }
    }
}

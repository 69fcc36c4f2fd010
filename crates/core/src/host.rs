//! The one grammar for a request host (`Host`, HTTP/2 `:authority`,
//! Traefik's `X-Forwarded-Host`): a DNS name or an IP literal, with an
//! optional numeric port. Pure.
//!
//! RFC 3986's `reg-name` allows much more (`admin.test,x`, `a;b`, `%41`),
//! and servers disagree on what such a value names: Express and Go read
//! `admin.test:x` as `admin.test`, while a `host` route sees another string
//! and the request falls through to a laxer route. So only this is a host:
//!
//! ```text
//! host = name [ ":" port ] | "[" IPv6 "]" [ ":" port ]
//! name = label *( "." label ) [ "." ]      label = 1*63( ALPHA / DIGIT / "-" / "_" )
//! port = 1*5DIGIT (≤ 65535)
//! ```
//!
//! Anything else is refused with 400 before a route is chosen. `_` is
//! allowed in labels because container and service names use it.

use std::net::Ipv6Addr;

/// A validated host: the name (IPv6 literals keep their brackets) and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    pub name: &'a str,
    pub port: Option<u16>,
}

impl HostPort<'_> {
    /// The name in lower case, without the brackets of an IPv6 literal and
    /// without one trailing dot: the form host routes compare.
    pub fn normalized(&self) -> String {
        let n = self
            .name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(self.name);
        n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase()
    }
}

/// Why a host value was refused (safe to log: never echoes the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host is not a DNS name or IP literal")]
    BadName,
    #[error("host port is not a number from 0 to 65535")]
    BadPort,
}

/// Longest accepted name (RFC 1035: 253 characters plus a trailing dot).
const MAX_NAME: usize = 254;

/// Parses a host value; see the module docs for the grammar.
pub fn parse(value: &str) -> Result<HostPort<'_>, HostError> {
    if value.is_empty() {
        return Err(HostError::Empty);
    }
    let (name, port) = if value.starts_with('[') {
        let end = value.find(']').ok_or(HostError::BadName)?;
        let inner = &value[1..end];
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(HostError::BadName);
        }
        let rest = &value[end + 1..];
        let port = match rest {
            "" => None,
            _ => Some(port(rest.strip_prefix(':').ok_or(HostError::BadName)?)?),
        };
        (&value[..=end], port)
    } else {
        let (name, port) = match value.split_once(':') {
            Some((n, p)) => (n, Some(port(p)?)),
            None => (value, None),
        };
        if !is_dns_name(name) {
            return Err(HostError::BadName);
        }
        (name, port)
    };
    Ok(HostPort { name, port })
}

fn port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    p.parse().map_err(|_| HostError::BadPort)
}

fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let ok: &[(&str, &str, Option<u16>)] = &[
            ("example.com", "example.com", None),
            ("Example.COM", "Example.COM", None),
            ("example.com.", "example.com.", None),
            ("example.com:8080", "example.com", Some(8080)),
            ("localhost", "localhost", None),
            ("my_service:3000", "my_service", Some(3000)),
            ("127.0.0.1", "127.0.0.1", None),
            ("127.0.0.1:0", "127.0.0.1", Some(0)),
            ("[::1]", "[::1]", None),
            ("[::1]:8443", "[::1]", Some(8443)),
            ("[2001:db8::7]:65535", "[2001:db8::7]", Some(65535)),
            ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
        ];
        for (raw, name, port) in ok {
            assert_eq!(parse(raw), Ok(HostPort { name, port: *port }), "{raw}");
        }
        assert_eq!(parse("[::1]:80").map(|h| h.normalized()), Ok("::1".into()));
        assert_eq!(
            parse("Admin.Test.:80").map(|h| h.normalized()),
            Ok("admin.test".into())
        );
    }

    #[test]
    fn refused() {
        let bad = [
            "",
            ":80",
            "admin.test:x",
            "admin.test:80x",
            "admin.test:",
            "admin.test:65536",
            "admin.test:123456",
            "admin.test:-1",
            "admin.test:+80",
            "admin.test,x",
            "admin.test;x",
            "admin.test x",
            "admin.test\t",
            "a@admin.test",
            "admin.test/x",
            "admin.test\\x",
            "admin.test#x",
            "admin.test?x",
            "%61dmin.test",
            "admin..test",
            ".admin.test",
            "admin.test..",
            "admin.test:80:80",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "[admin.test]",
            "::1",
            "é.example",
            "admin.test\u{0}",
        ];
        for raw in bad {
            assert!(parse(raw).is_err(), "{raw:?} must be refused");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(parse(&long).is_err());
        let many = "a.".repeat(130);
        assert!(parse(&many).is_err());
    }
}

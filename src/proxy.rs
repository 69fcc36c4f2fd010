//! Forwarding to upstreams: one pool of keep-alive connections per upstream
//! ([`pool`]),
//! hop-by-hop removal (RFC 9110 §7.6.1), `X-Forwarded-*` believed only from
//! trusted proxies, streaming bodies both ways, WebSocket upgrades, and clean
//! 502/504 answers that carry no internals.
//!
//! The rules for the upstream leg's connections (each closes a way to make
//! the upstream read something the gateway never judged, or to hand one
//! user's failure to another):
//!
//! - **A 101 is a tunnel only for a valid WebSocket handshake** the client
//!   asked for and the upstream accepted ([`websocket`]); any other 101 is a
//!   502 and the upstream connection is dropped.
//! - **A request body never precedes another request on an upstream
//!   connection.** An upstream that ignores a body (a handler that never
//!   reads it, a server that does not speak `chunked`) reads it as the next
//!   request, with whatever identity headers the body spells. So every
//!   request with a body, whatever its method or framing, goes with
//!   `Connection: close`: the upstream answers it and closes, and nothing
//!   follows it on that connection. Requests without a body (most of them)
//!   keep their pooled connections.
//! - **A HEAD goes with `Connection: close`** too: a hand-written server that
//!   answers HEAD with a body would have that body read as the answer to the
//!   next request on the connection.
//! - **A stale keep-alive connection costs one retry, never a 502** — for a
//!   request that is safe to send twice: an idempotent method (GET, HEAD,
//!   OPTIONS, PUT, DELETE) without a body, that failed on a reused
//!   connection before any byte of its answer arrived ([`pool`]). It is sent
//!   once more on a fresh connection. A request the connection closed under
//!   before it was written is sent on a fresh one too (it was never sent).
//!   Nothing else is ever replayed.
//! - **Limits are sizes.** An upstream answer's status line and headers may
//!   take [`UPSTREAM_MAX_HEADER_BYTES`]; there is no separate header count
//!   below what that size allows (see [`header_slots`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;

use crate::http_util::{Body, BoxError, ip_value};

mod body;
mod pool;
pub mod websocket;

use body::{BodyFault, ClientBody, FaultCell};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The largest status line + headers an upstream answer may have; beyond
/// it the answer is a 502. Four to eight times what nginx accepts from an
/// upstream by default (`proxy_buffer_size`).
pub const UPSTREAM_MAX_HEADER_BYTES: usize = 64 * 1024;

/// hyper parses a message head into a header table of fixed length,
/// allocated per message, and refuses a head with more lines than it holds
/// (100 unless told): a hidden count below the size limit. The table is
/// sized from the byte limit instead, one entry per this many bytes, so any
/// head within the size limit whose lines average at least this long fits.
/// (One entry per 4 bytes, the shortest possible line, would make the
/// table for a 32 KiB limit 512 KiB per message; past 128 KiB the
/// allocator maps and unmaps it every time, which costs ~10 µs a request.)
pub const HEADER_BYTES_PER_SLOT: usize = 16;

/// The header table length for a head of at most `max_bytes`.
pub fn header_slots(max_bytes: usize) -> usize {
    (max_bytes / HEADER_BYTES_PER_SLOT).max(100)
}

/// Upstream answers' header table: [`UPSTREAM_MAX_HEADER_BYTES`] at one
/// entry per 32 bytes (2048 lines, a 64 KiB table: answer headers are long
/// lines — cookies, CSP, cache control — and the table stays below the
/// allocator's per-call mapping threshold).
const UPSTREAM_HEADER_SLOTS: usize = UPSTREAM_MAX_HEADER_BYTES / 32;

/// Methods whose request may be sent twice (idempotent, RFC 9110 §9.2.2),
/// when it has no body.
fn replayable(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// Headers that describe one hop and never cross the gateway.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `[upstreams.NAME]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    /// `scheme://authority` plus an optional base path (no trailing slash).
    pub url: url::Url,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    pub body_idle_timeout: Duration,
    /// Extra CA certificates (PEM) for an https upstream.
    pub ca_file: Option<PathBuf>,
}

/// Why forwarding failed (mapped to 502/504 by the pipeline, or to the
/// client's 400/413 when the client's own body broke the request).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream connection failed")]
    Connect(#[source] BoxError),
    #[error("upstream request failed")]
    Request(#[source] BoxError),
    #[error("upstream response headers timed out")]
    Timeout,
    #[error("bad upstream URI")]
    Uri(#[source] http::Error),
    /// The answer's headers are larger than [`UPSTREAM_MAX_HEADER_BYTES`].
    #[error("upstream response headers over the size limit")]
    HeadersTooLarge,
    /// A 101 that does not complete a WebSocket handshake the client asked for.
    #[error("upstream switched protocols without a valid WebSocket handshake")]
    BadUpgrade,
    /// The client's body was malformed (bad chunked framing) or cut short.
    #[error("client request body malformed or incomplete")]
    ClientBody(#[source] BoxError),
    /// The client's body went past `max_body_bytes` (no `Content-Length`).
    #[error("client request body over max_body_bytes")]
    ClientBodyTooLarge,
    /// Every `max_connections` slot is taken: no room for another tunnel.
    #[error("no connection slot left for a WebSocket tunnel")]
    NoSlot,
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect(_)
            | Self::Request(_)
            | Self::Uri(_)
            | Self::HeadersTooLarge
            | Self::BadUpgrade => StatusCode::BAD_GATEWAY,
            Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::ClientBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoSlot => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Request(_) => "reset",
            Self::Timeout => "timeout",
            Self::Uri(_) => "uri",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BadUpgrade => "bad_upgrade",
            Self::ClientBody(_) => "client_body",
            Self::ClientBodyTooLarge => "client_body_too_large",
            Self::NoSlot => "no_slot",
        }
    }

    /// The client's fault, not the upstream's: logged at debug, not counted
    /// as an upstream error.
    pub fn is_client_fault(&self) -> bool {
        match self {
            Self::ClientBody(_) | Self::ClientBodyTooLarge | Self::NoSlot => true,
            Self::Connect(_)
            | Self::Request(_)
            | Self::Timeout
            | Self::Uri(_)
            | Self::HeadersTooLarge
            | Self::BadUpgrade => false,
        }
    }

    /// The `error` code and message of the JSON answer.
    pub fn public_text(&self) -> (&'static str, &'static str) {
        match self {
            Self::Timeout => ("gateway_timeout", "The upstream service did not answer."),
            Self::Connect(_)
            | Self::Request(_)
            | Self::Uri(_)
            | Self::HeadersTooLarge
            | Self::BadUpgrade => ("bad_gateway", "The upstream service did not answer."),
            Self::ClientBody(_) => (
                "bad_request",
                "The request body is malformed or incomplete.",
            ),
            Self::ClientBodyTooLarge => ("payload_too_large", "The request body is too large."),
            Self::NoSlot => (
                "unavailable",
                "Too many open connections; try again shortly.",
            ),
        }
    }
}

/// One upstream: its settings and connections.
pub struct Upstream {
    pub cfg: UpstreamConfig,
    /// `scheme://authority` of every request to it, parsed once.
    origin: Option<(http::uri::Scheme, http::uri::Authority)>,
    /// The `Host` a request gets when it has none (the upstream URL's host,
    /// and its port unless it is the scheme's default).
    host: Option<HeaderValue>,
    pool: pool::Pool,
    /// WebSocket handshakes go on a connection of their own (it becomes
    /// the tunnel), through hyper-util's client without a pool.
    handshakes: Client<Connector, Body>,
}

/// Every configured upstream, by name.
pub struct Upstreams {
    map: HashMap<String, Upstream>,
}

impl Upstreams {
    pub fn new(cfgs: &HashMap<String, UpstreamConfig>) -> Self {
        Self::reusing(cfgs, None)
    }

    /// Like [`Self::new`], keeping the pooled client (and so its idle
    /// keep-alive connections) of every upstream whose settings did not
    /// change since `previous` and that has no `ca_file`: a reload of
    /// unrelated settings drops no plain connection.
    pub fn reusing(cfgs: &HashMap<String, UpstreamConfig>, previous: Option<&Upstreams>) -> Self {
        let map = cfgs
            .iter()
            .map(|(name, cfg)| {
                let origin = origin(&cfg.url);
                let (pool, handshakes) = previous
                    .and_then(|p| p.map.get(name))
                    // A CA bundle is read when the client is built: with one,
                    // the client is always rebuilt, so a bundle rotated in
                    // place is applied by the reload that reports it.
                    .filter(|old| old.cfg == *cfg && cfg.ca_file.is_none())
                    .map_or_else(
                        || build_clients(cfg, origin.as_ref()),
                        |old| (old.pool.clone(), old.handshakes.clone()),
                    );
                (
                    name.clone(),
                    Upstream {
                        // The URL never spells a scheme's default port, so
                        // its authority is the `Host` an HTTP client sends.
                        host: origin
                            .as_ref()
                            .and_then(|(_, a)| HeaderValue::from_str(a.as_str()).ok()),
                        origin,
                        cfg: cfg.clone(),
                        pool,
                        handshakes,
                    },
                )
            })
            .collect();
        Self { map }
    }

    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.map.get(name)
    }
}

/// An upstream's keep-alive pool, and the pool-less client for WebSocket
/// handshakes (same connector, same limits).
fn build_clients(
    cfg: &UpstreamConfig,
    origin: Option<&(http::uri::Scheme, http::uri::Authority)>,
) -> (pool::Pool, Client<Connector, Body>) {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_client_config(cfg.ca_file.as_deref()))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut h1 = hyper::client::conn::http1::Builder::new();
    h1.max_buf_size(UPSTREAM_MAX_HEADER_BYTES)
        .max_headers(UPSTREAM_HEADER_SLOTS);
    let target = origin.and_then(|(scheme, authority)| {
        Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .ok()
    });
    // A connection left to run on its own (one carrying a request body)
    // is closed when nothing moves on it for longer than the upstream may
    // take to answer or to send the next piece of its answer.
    let stall = cfg.body_idle_timeout.max(cfg.response_header_timeout);
    let pool = pool::Pool::new(https.clone(), h1, target, stall);
    let handshakes = Client::builder(TokioExecutor::new())
        .http1_max_buf_size(UPSTREAM_MAX_HEADER_BYTES)
        .http1_max_headers(UPSTREAM_HEADER_SLOTS)
        .pool_max_idle_per_host(0)
        .build(https);
    (pool, handshakes)
}

/// webpki roots plus the optional extra CA bundle. A CA file that cannot be
/// read was already refused by config validation; on a race (file removed
/// since) the extra roots are simply absent and verification fails closed.
pub fn tls_client_config(ca_file: Option<&std::path::Path>) -> rustls::ClientConfig {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = ca_file {
        match CertificateDer::pem_file_iter(p) {
            Ok(iter) => {
                for cert in iter.flatten() {
                    if let Err(e) = roots.add(cert) {
                        tracing::warn!(file = %p.display(), error = %e, "ignoring a CA certificate");
                    }
                }
            }
            Err(e) => tracing::warn!(file = %p.display(), error = %e, "cannot read CA file"),
        }
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Facts about the downstream connection needed to set forwarding headers.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub peer: SocketAddr,
    /// The peer is a configured trusted proxy.
    pub trusted: bool,
    /// The client address believed for logs and rate limits.
    pub client_ip: IpAddr,
    pub tls: bool,
}

impl ClientInfo {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        trusted_proxies: &[IpNet],
        headers: &HeaderMap,
    ) -> Self {
        let trusted = in_nets(trusted_proxies, peer.ip());
        let client_ip = if trusted {
            forwarded_client(headers, trusted_proxies, peer.ip())
        } else {
            peer.ip()
        };
        Self {
            peer,
            trusted,
            client_ip,
            tls,
        }
    }
}

/// Whether `ip` is in one of `nets`, in either of its spellings: on a
/// dual-stack listener an IPv4 peer arrives as `::ffff:a.b.c.d`, which an
/// IPv4 network must still match (and an IPv4-mapped network an IPv4 one).
pub fn in_nets(nets: &[IpNet], ip: IpAddr) -> bool {
    let other = match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
    };
    nets.iter().any(|n| n.contains(&ip) || n.contains(&other))
}

/// The client behind trusted proxies: `X-Forwarded-For` read from the right,
/// past the trusted proxies' own addresses, to the first one that is not
/// trusted. An entry that is not an address (`unknown`, garbage) ends the
/// walk: what is left of it was written by whoever the untrusted hop was,
/// so the last address vouched for (a trusted proxy, or the peer) stands.
/// Entries with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`) are read
/// without it.
fn forwarded_client(headers: &HeaderMap, trusted_proxies: &[IpNet], peer: IpAddr) -> IpAddr {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = forwarded_ip(entry) else { break };
        client = ip;
        if !in_nets(trusted_proxies, ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry as an address: bare, bracketed, or with a port.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
}

/// Removes `Connection`-nominated headers, then the hop-by-hop list.
/// Returns whether the message asked for a protocol upgrade (WebSocket).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // Most messages carry none of these: one pass over the names (no
    // lookups, no allocation) settles it. `Connection` is in the list, so a
    // message without any of them nominates nothing either.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return None;
    }
    let upgrade_requested = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    // Only a WebSocket upgrade is passed on. Any other protocol switch
    // (`h2c` above all) would turn the connection into a tunnel to the
    // upstream on which every later request bypasses the gateway's
    // decision ("h2c smuggling"); such requests go upstream as plain
    // requests, without `Upgrade`. A single `Upgrade` value only.
    let upgrade = if upgrade_requested {
        let mut values = headers.get_all(header::UPGRADE).iter();
        match (values.next(), values.next()) {
            (Some(v), None)
                if v.to_str()
                    .is_ok_and(|p| p.trim().eq_ignore_ascii_case("websocket")) =>
            {
                Some(v.clone())
            }
            _ => None,
        }
    } else {
        None
    };
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        // The request was judged by its Host: `Connection: host` may not
        // send it upstream without one (then the upstream URL's would go).
        .filter(|n| n != header::HOST)
        .collect();
    for n in nominated {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    upgrade
}

/// Sets `X-Forwarded-For/-Proto/-Host`, `X-Real-IP` and `X-Request-Id`.
/// Runs after [`crate::inbound::scrub`], which has removed every inbound
/// forwarding header except a trusted proxy's canonical ones: a trusted
/// proxy's `X-Forwarded-For` is extended and its `X-Forwarded-Proto` kept;
/// `X-Forwarded-Host` is always the `Host` the decision was made on.
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    info: &ClientInfo,
    host: Option<HeaderValue>,
    request_id: &HeaderValue,
) {
    let prior: Vec<&str> = if info.trusted {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    // A trusted proxy's chain (its readable values) is extended; otherwise
    // the chain starts at the peer.
    let xff = if prior.is_empty() {
        Some(ip_value(info.peer.ip()))
    } else {
        HeaderValue::from_str(&format!("{}, {}", prior.join(", "), info.peer.ip())).ok()
    };
    set(headers, &X_FORWARDED_FOR, xff);
    if !(info.trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = HeaderValue::from_static(if info.tls { "https" } else { "http" });
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    set(headers, &X_FORWARDED_HOST, host);
    // A trusted proxy's `Forwarded` may carry a client's `host=` (nginx
    // passes a client's `Forwarded` on): apps reading it (Rack, Spring's
    // ForwardedHeaderFilter) would see another host than the one judged.
    // Such a header is dropped whole rather than re-spelled.
    // (Only a trusted peer's can be here: every other `Forwarded` was
    // scrubbed on the way in.)
    if info.trusted
        && headers.get_all(&FORWARDED).iter().any(|v| {
            v.as_bytes()
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"host="))
        })
    {
        headers.remove(&FORWARDED);
    }
    set(headers, &X_REAL_IP, Some(ip_value(info.client_ip)));
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Request-Id`, to the upstream and on every answer.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Sets `name` to `value`, or removes it when there is none.
fn set(headers: &mut HeaderMap, name: &HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(v) => {
            headers.insert(name.clone(), v);
        }
        None => {
            headers.remove(name);
        }
    }
}

impl Upstream {
    /// Forwards `req` (headers already rewritten by the pipeline) to
    /// `path_and_query` on this upstream and streams the answer back.
    /// `upgrade` is what [`strip_hop_by_hop`] returned for the request;
    /// `retries` counts retries after stale connections.
    pub async fn forward(
        &self,
        mut req: Request<Body>,
        path_and_query: &str,
        upgrade: Option<HeaderValue>,
        max_body: Option<u64>,
        retries: &prometheus::IntCounter,
    ) -> Result<Response<Body>, UpstreamError> {
        // A handshake has no body: one with a body would leave the body on
        // a kept-alive connection when the upstream refuses the upgrade.
        let handshake = websocket::Handshake::from_request(&req, upgrade.is_some())
            .filter(|_| req.body().is_end_stream());
        let downstream_upgrade = handshake.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let slots = handshake
            .as_ref()
            .and_then(|_| req.extensions().get::<ConnectionSlots>().cloned());
        let (mut parts, body) = req.into_parts();
        if self.cfg.preserve_host {
            if !parts.headers.contains_key(header::HOST)
                && let Some(h) = parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, h);
            }
        } else {
            parts.headers.remove(header::HOST);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = &self.host
        {
            parts.headers.insert(header::HOST, h.clone());
        }
        let has_body = !body.is_end_stream();
        if handshake.is_some() {
            set_websocket_upgrade(&mut parts.headers);
        } else if has_body || parts.method == http::Method::HEAD {
            // See the module docs: nothing may follow a body (which the
            // upstream may not read) or a HEAD (which it may answer with a
            // body) on the same upstream connection.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        parts.version = Version::HTTP_11;
        if let Some(hs) = handshake {
            parts.uri = self.uri(path_and_query)?;
            return self.handshake(parts, hs, downstream_upgrade, slots).await;
        }
        parts.uri = self.origin_form(path_and_query)?;
        let replay = (!has_body && replayable(&parts.method)).then(|| {
            (
                parts.method.clone(),
                parts.uri.clone(),
                parts.headers.clone(),
            )
        });
        let fault = FaultCell::default();
        let body: Body = if has_body {
            ClientBody::new(body, max_body, fault.clone()).boxed_unsync()
        } else {
            crate::http_util::empty()
        };
        let pool = &self.pool;
        let exchange = async {
            let conn = pool.checkout().await.map_err(Lost::Connect)?;
            let again = match pool.send(conn, Request::from_parts(parts, body)).await {
                Ok(resp) => return Ok(resp),
                // Never written: sent as it is on a fresh connection.
                Err(pool::Failure::NotSent(req, e)) => {
                    tracing::debug!(upstream = %self.cfg.name, error = %e,
                        "upstream connection closed before the request was sent; sending it on a fresh one");
                    retries.inc();
                    *req
                }
                Err(pool::Failure::Failed { error, stale: true }) if replay.is_some() => {
                    let Some((method, uri, headers)) = replay else {
                        return Err(Lost::Request(error.into()));
                    };
                    tracing::debug!(upstream = %self.cfg.name, error = %error,
                        "stale keep-alive connection; retrying on a fresh one");
                    retries.inc();
                    let mut again = Request::new(crate::http_util::empty());
                    *again.method_mut() = method;
                    *again.uri_mut() = uri;
                    *again.headers_mut() = headers;
                    *again.version_mut() = Version::HTTP_11;
                    again
                }
                Err(pool::Failure::Failed { error, .. }) => {
                    return Err(Lost::Request(error.into()));
                }
            };
            let conn = pool.connect().await.map_err(Lost::Connect)?;
            match pool.send(conn, again).await {
                Ok(resp) => Ok(resp),
                Err(pool::Failure::NotSent(_, e) | pool::Failure::Failed { error: e, .. }) => {
                    Err(Lost::Request(e.into()))
                }
            }
        };
        // `response_header_timeout` is the upstream's time to answer once it
        // has the whole request: it starts when the body has been sent (a
        // large upload is no upstream timeout; a stalled one ends by the
        // client connection's idle timeout, as a client fault).
        let answer = async {
            let mut exchange = std::pin::pin!(exchange);
            let wait = self.cfg.response_header_timeout;
            let mut deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    r = &mut exchange => return Some(r),
                    () = tokio::time::sleep_until(deadline) => {
                        if !has_body {
                            return None;
                        }
                        match fault.ended_at() {
                            // The answer's time counts from the body's end.
                            Some(end) if end + wait <= tokio::time::Instant::now() => {
                                return None;
                            }
                            Some(end) => deadline = end + wait,
                            None => deadline = tokio::time::Instant::now() + wait,
                        }
                    }
                }
            }
        };
        let resp = match answer.await.ok_or(()) {
            Err(()) => return Err(UpstreamError::Timeout),
            Ok(Err(lost)) => {
                return Err(match (fault.get(), lost) {
                    (Some(BodyFault::Malformed), Lost::Connect(e) | Lost::Request(e)) => {
                        UpstreamError::ClientBody(e)
                    }
                    (Some(BodyFault::TooLarge), _) => UpstreamError::ClientBodyTooLarge,
                    (None, Lost::Connect(e)) => UpstreamError::Connect(e),
                    (None, Lost::Request(e)) => UpstreamError::Request(e),
                });
            }
            Ok(Ok(r)) => r,
        };
        // hyper bounds the head only roughly (by its read buffer); the limit
        // is exact here.
        if header_bytes(resp.headers()) > UPSTREAM_MAX_HEADER_BYTES {
            return Err(UpstreamError::HeadersTooLarge);
        }
        // No upgrade was asked for: a 101 is the upstream's error (the
        // connection, dropped with the answer, is never reused).
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Err(UpstreamError::BadUpgrade);
        }
        Ok(self.answer(resp))
    }

    /// A WebSocket handshake: sent on a connection of its own, which
    /// becomes the tunnel if the upstream accepts.
    async fn handshake(
        &self,
        parts: http::request::Parts,
        hs: websocket::Handshake,
        downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
        slots: Option<ConnectionSlots>,
    ) -> Result<Response<Body>, UpstreamError> {
        let sent = self
            .handshakes
            .request(Request::from_parts(parts, crate::http_util::empty()));
        let resp = match tokio::time::timeout(self.cfg.response_header_timeout, sent).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.is_connect() => return Err(UpstreamError::Connect(e.into())),
            Ok(Err(e)) => return Err(UpstreamError::Request(e.into())),
            Ok(Ok(r)) => r,
        };
        if header_bytes(resp.headers()) > UPSTREAM_MAX_HEADER_BYTES {
            return Err(UpstreamError::HeadersTooLarge);
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return tunnel(resp, Some(hs), downstream_upgrade, slots);
        }
        Ok(self.answer(resp))
    }

    /// An upstream answer as the client gets it: hop-by-hop headers gone,
    /// its body bounded by `body_idle_timeout`.
    fn answer<B>(&self, resp: Response<B>) -> Response<Body>
    where
        B: HttpBody<Data = Bytes, Error = hyper::Error> + Unpin + Send + 'static,
    {
        let (mut parts, body) = resp.into_parts();
        // With both framings the body was read by its chunks (RFC 9112
        // §6.3); the Content-Length beside them would misframe the answer.
        if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        strip_hop_by_hop(&mut parts.headers);
        let body = IdleTimeout::new(body, self.cfg.body_idle_timeout).boxed_unsync();
        Response::from_parts(parts, body)
    }
}

/// Why the upstream leg produced no answer (before the client's body fault
/// is taken into account).
enum Lost {
    Connect(BoxError),
    Request(BoxError),
}

/// The traffic listener's connection slots (`server.max_connections`), in
/// each request's extensions: a WebSocket tunnel holds one for its life.
#[derive(Clone)]
pub struct ConnectionSlots(pub std::sync::Arc<tokio::sync::Semaphore>);

/// A 101 from the upstream: a tunnel only for the WebSocket handshake the
/// client asked for and the upstream accepted correctly, else 502; 503 when
/// every connection slot is taken.
fn tunnel(
    mut resp: Response<hyper::body::Incoming>,
    handshake: Option<websocket::Handshake>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    slots: Option<ConnectionSlots>,
) -> Result<Response<Body>, UpstreamError> {
    // Dropping `resp` without taking its upgrade closes the upstream
    // connection: it is never reused and never becomes a tunnel.
    let (Some(hs), Some(down)) = (handshake, downstream_upgrade) else {
        return Err(UpstreamError::BadUpgrade);
    };
    if !hs.accepted_by(resp.headers()) {
        return Err(UpstreamError::BadUpgrade);
    }
    // The connection's own slot is given back when its task ends, which is
    // as soon as the upgrade happens: the tunnel counts on its own.
    let slot = match slots {
        Some(s) => match s.0.try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => return Err(UpstreamError::NoSlot),
        },
        None => None,
    };
    let up = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let _slot = slot;
        if let (Ok(d), Ok(u)) = tokio::join!(down, up) {
            let mut d = TokioIo::new(d);
            let mut u = TokioIo::new(u);
            let _ = tokio::io::copy_bidirectional(&mut d, &mut u).await;
        }
    });
    let (mut parts, _) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    set_websocket_upgrade(&mut parts.headers);
    Ok(Response::from_parts(parts, crate::http_util::empty()))
}

/// `Upgrade: websocket` + `Connection: upgrade`, the only upgrade the
/// gateway passes on (request to the upstream, 101 back to the client).
fn set_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

/// The size of `headers` as header lines (`name: value` + CRLF).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// The answer to `CONNECT`: 405, and the connection closes (whatever the
/// client sends next would be tunnel bytes, not HTTP). The gateway is not a
/// forward proxy; forwarding a CONNECT as a plain request would drop its
/// authority-form target and serve some other path.
pub fn connect_refused() -> Response<Body> {
    let mut resp = crate::http_util::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "CONNECT is not supported.",
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    // The methods the gateway forwards (routes may narrow them).
    resp.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    resp
}

impl Upstream {
    /// The request target sent on an upstream connection: the base path
    /// and `path_and_query` (origin form; the authority is the connection's).
    fn origin_form(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        if self.origin.is_none() {
            // Fails the way `uri` does: the upstream URL has no authority.
            return self.uri(path_and_query);
        }
        Uri::builder()
            .path_and_query(self.full_path(path_and_query))
            .build()
            .map_err(UpstreamError::Uri)
    }

    fn full_path(&self, path_and_query: &str) -> String {
        let base = self.cfg.url.path().trim_end_matches('/');
        if base.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{base}{path_and_query}")
        }
    }

    /// The upstream URI for `path_and_query`: its origin and base path.
    fn uri(&self, path_and_query: &str) -> Result<Uri, UpstreamError> {
        let pq = self.full_path(path_and_query);
        let mut builder = Uri::builder();
        builder = match &self.origin {
            Some((scheme, authority)) => {
                builder.scheme(scheme.clone()).authority(authority.clone())
            }
            None => builder
                .scheme(self.cfg.url.scheme())
                .authority(authority(&self.cfg.url)),
        };
        builder
            .path_and_query(pq)
            .build()
            .map_err(UpstreamError::Uri)
    }
}

/// An upstream URL's scheme and authority as URI parts (`None` if they do
/// not parse: every request then fails with the parse error, as a 502).
fn origin(u: &url::Url) -> Option<(http::uri::Scheme, http::uri::Authority)> {
    let scheme = u.scheme().parse().ok()?;
    let authority = authority(u).parse().ok()?;
    Some((scheme, authority))
}

fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("localhost");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// A body that fails when no frame arrives for `idle` (long downloads and
/// SSE live as long as bytes keep flowing). The timer is armed the first
/// time the body has to wait: an answer read in one go (most of them)
/// never touches the timer wheel.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    /// Once armed: the timer, and when the last frame arrived (the timer
    /// is re-armed lazily from it).
    timer: Option<(Pin<Box<tokio::time::Sleep>>, tokio::time::Instant)>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upstream body idle timeout")]
pub struct BodyIdleTimeout;

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                if let Some((_, last)) = &mut this.timer {
                    *last = tokio::time::Instant::now();
                }
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                // Armed at the first wait: every frame so far came without one.
                let (timer, last) = this.timer.get_or_insert_with(|| {
                    let now = tokio::time::Instant::now();
                    (Box::pin(tokio::time::sleep_until(now + idle)), now)
                });
                loop {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let deadline = *last + idle;
                    if deadline <= tokio::time::Instant::now() {
                        return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout))));
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_sent_upstream_spells_a_port_only_when_it_is_not_the_default() {
        for (url, host) in [
            ("http://up.test", "up.test"),
            ("http://up.test:80/base", "up.test"),
            ("https://up.test:443", "up.test"),
            ("https://up.test:80", "up.test:80"),
            ("http://up.test:443", "up.test:443"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://[::1]:80", "[::1]"),
            ("http://[::1]:8080", "[::1]:8080"),
        ] {
            let cfg = UpstreamConfig {
                name: "default".into(),
                url: url.parse().unwrap(),
                preserve_host: false,
                connect_timeout: Duration::from_secs(1),
                response_header_timeout: Duration::from_secs(1),
                body_idle_timeout: Duration::from_secs(1),
                ca_file: None,
            };
            let ups = Upstreams::new(&HashMap::from([("default".to_owned(), cfg)]));
            let got = ups.get("default").and_then(|u| u.host.clone());
            assert_eq!(got, Some(HeaderValue::from_static(host)), "{url}");
        }
    }

    #[test]
    fn networks_match_both_spellings_of_an_ipv4_address() {
        let nets: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "::ffff:10.0.0.0/104".parse().unwrap(),
        ];
        for (ip, inside) in [
            ("127.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("10.1.2.3", true),
            ("::ffff:10.1.2.3", true),
            ("127.0.0.2", false),
            ("::ffff:127.0.0.2", false),
            ("::1", false),
            ("::127.0.0.1", false),
        ] {
            assert_eq!(in_nets(&nets, ip.parse().unwrap()), inside, "{ip}");
        }
    }

    fn info(trusted: bool) -> ClientInfo {
        ClientInfo {
            peer: "10.0.0.2:4000".parse().unwrap(),
            trusted,
            client_ip: "203.0.113.7".parse().unwrap(),
            tls: false,
        }
    }

    fn forwarded(trusted: bool, prior: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for p in prior {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_bytes(p).unwrap());
        }
        let id = HeaderValue::from_static("rid");
        set_forwarding_headers(
            &mut h,
            &info(trusted),
            Some(HeaderValue::from_static("app.test")),
            &id,
        );
        h
    }

    #[test]
    fn forwarding_headers_extend_only_a_trusted_chain() {
        let h = forwarded(true, &[b"198.51.100.1", b"203.0.113.7"]);
        assert_eq!(h[&X_FORWARDED_FOR], "198.51.100.1, 203.0.113.7, 10.0.0.2");
        assert_eq!(h[&X_REAL_IP], "203.0.113.7");
        assert_eq!(h[&X_FORWARDED_HOST], "app.test");
        assert_eq!(h[&X_REQUEST_ID], "rid");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        // An untrusted peer's chain is not extended (scrub removed it before;
        // here it is simply replaced).
        assert_eq!(
            forwarded(false, &[b"198.51.100.1"])[&X_FORWARDED_FOR],
            "10.0.0.2"
        );
        // A trusted chain with nothing readable starts at the peer.
        assert_eq!(
            forwarded(true, &[b"\xff\xfe"])[&X_FORWARDED_FOR],
            "10.0.0.2"
        );
        // The peer's cached value never leaks to another peer.
        let mut other = info(false);
        other.peer = "[2001:db8::9]:1".parse().unwrap();
        let mut h = HeaderMap::new();
        set_forwarding_headers(&mut h, &other, None, &HeaderValue::from_static("r"));
        assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::9");
        assert!(!h.contains_key(&X_FORWARDED_HOST));
    }
}

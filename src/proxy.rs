//! Forwarding to upstreams (DESIGN §4 step 8): one pooled keep-alive client per
//! upstream, hop-by-hop removal (RFC 9110 §7.6.1), `X-Forwarded-*` believed
//! only from trusted proxies, streaming bodies both ways, WebSocket upgrades,
//! and clean 502/504 answers that carry no internals.

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

use crate::http_util::{Body, BoxError};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Headers that describe one hop and never cross the gateway.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
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

/// Why forwarding failed (mapped to 502/504 by the pipeline).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream connection failed")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("upstream request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("upstream response headers timed out")]
    Timeout,
    #[error("bad upstream URI")]
    Uri(#[source] http::Error),
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect(_) | Self::Request(_) | Self::Uri(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Request(_) => "reset",
            Self::Timeout => "timeout",
            Self::Uri(_) => "uri",
        }
    }
}

/// One upstream: its settings and pooled client.
pub struct Upstream {
    pub cfg: UpstreamConfig,
    client: Client<Connector, Body>,
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
    /// change since `previous`: a reload of unrelated settings drops no
    /// connection.
    pub fn reusing(cfgs: &HashMap<String, UpstreamConfig>, previous: Option<&Upstreams>) -> Self {
        let map = cfgs
            .iter()
            .map(|(name, cfg)| {
                let client = previous
                    .and_then(|p| p.map.get(name))
                    .filter(|old| old.cfg == *cfg)
                    .map_or_else(|| build_client(cfg), |old| old.client.clone());
                (
                    name.clone(),
                    Upstream {
                        cfg: cfg.clone(),
                        client,
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

/// One pooled keep-alive client for an upstream.
fn build_client(cfg: &UpstreamConfig) -> Client<Connector, Body> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_client_config(cfg.ca_file.as_deref()))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
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
        let trusted = trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
        let client_ip = if trusted {
            // The right-most address in X-Forwarded-For that is not a trusted proxy.
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .find(|ip| !trusted_proxies.iter().any(|n| n.contains(ip)))
                .unwrap_or(peer.ip())
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

/// Removes `Connection`-nominated headers, then the hop-by-hop list.
/// Returns whether the message asked for a protocol upgrade (WebSocket).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
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
        .collect();
    for n in nominated {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
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
    host: Option<&str>,
    request_id: &str,
) {
    let peer_ip = info.peer.ip().to_string();
    let prior: Vec<String> = if info.trusted {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    } else {
        Vec::new()
    };
    let xff = if prior.is_empty() {
        peer_ip
    } else {
        format!("{}, {peer_ip}", prior.join(", "))
    };
    set(headers, "x-forwarded-for", &xff);
    if !(info.trusted && headers.contains_key("x-forwarded-proto")) {
        set(
            headers,
            "x-forwarded-proto",
            if info.tls { "https" } else { "http" },
        );
    }
    match host {
        Some(h) => set(headers, "x-forwarded-host", h),
        None => {
            headers.remove("x-forwarded-host");
        }
    }
    set(headers, "x-real-ip", &info.client_ip.to_string());
    set(headers, "x-request-id", request_id);
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    } else {
        headers.remove(name);
    }
}

impl Upstream {
    /// Forwards `req` (headers already rewritten by the pipeline) to
    /// `path_and_query` on this upstream and streams the answer back.
    pub async fn forward(
        &self,
        mut req: Request<Body>,
        path_and_query: &str,
        upgrade: Option<HeaderValue>,
        max_body: Option<u64>,
    ) -> Result<Response<Body>, UpstreamError> {
        let base = self.cfg.url.path().trim_end_matches('/');
        let uri = Uri::builder()
            .scheme(self.cfg.url.scheme())
            .authority(authority(&self.cfg.url))
            .path_and_query(format!("{base}{path_and_query}"))
            .build()
            .map_err(UpstreamError::Uri)?;
        let downstream_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
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
        if let Some(u) = &upgrade {
            parts.headers.insert(header::UPGRADE, u.clone());
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        } else if matches!(parts.method, http::Method::GET | http::Method::HEAD)
            && !body.is_end_stream()
        {
            // A body on GET/HEAD is framed correctly here, but an upstream
            // that ignores it would read it as the next request on this
            // pooled connection — one sent on behalf of someone else and
            // never judged by the gateway. Such a connection is not reused.
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let body: Body = match max_body {
            Some(limit) => {
                http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
                    .boxed_unsync()
            }
            None => body,
        };
        let upstream_req = Request::from_parts(parts, body);
        let fut = self.client.request(upstream_req);
        let mut resp = match tokio::time::timeout(self.cfg.response_header_timeout, fut).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.is_connect() => return Err(UpstreamError::Connect(e)),
            Ok(Err(e)) => return Err(UpstreamError::Request(e)),
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(down) = downstream_upgrade
        {
            let up = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(d), Ok(u)) = tokio::join!(down, up) {
                    let mut d = TokioIo::new(d);
                    let mut u = TokioIo::new(u);
                    let _ = tokio::io::copy_bidirectional(&mut d, &mut u).await;
                }
            });
            let (mut parts, _) = resp.into_parts();
            let up_value = parts.headers.get(header::UPGRADE).cloned();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(v) = up_value {
                parts.headers.insert(header::UPGRADE, v);
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
            return Ok(Response::from_parts(parts, crate::http_util::empty()));
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = IdleTimeout::new(body, self.cfg.body_idle_timeout).boxed_unsync();
        Ok(Response::from_parts(parts, body))
    }
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
/// SSE live as long as bytes keep flowing).
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    /// When the last frame arrived; the timer is re-armed lazily from it.
    last: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            last: tokio::time::Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle)),
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
                this.last = tokio::time::Instant::now();
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => loop {
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let deadline = this.last + this.idle;
                if deadline <= tokio::time::Instant::now() {
                    return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout))));
                }
                this.timer.as_mut().reset(deadline);
            },
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

//! The traffic listener: accept loop, connection limits, optional rustls TLS
//! (HTTP/1.1 + HTTP/2 via ALPN, h2c in plain text), header-read timeout
//! (slowloris), header size limit, graceful drain.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::TlsConfig;
use crate::state::AppState;

/// Why the certificate or key files could not be used (each names its file).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Pem {
        path: std::path::PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificate found")]
    NoCertificate(std::path::PathBuf),
    #[error("certificate/key mismatch or unsupported key: {0}")]
    KeyMismatch(rustls::Error),
}

/// Serves certificates from files and reloads them on demand (cert-manager
/// rotates the files in place; `reload` is called by the file watcher).
#[derive(Debug)]
pub struct TlsReloader {
    cfg: TlsConfig,
    current: ArcSwap<CertifiedKey>,
}

impl TlsReloader {
    pub fn load(cfg: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let key = load_certified_key(cfg)?;
        Ok(Arc::new(Self {
            cfg: cfg.clone(),
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Re-reads the files; on error keeps serving the previous certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cfg)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    pub fn paths(&self) -> [&std::path::Path; 2] {
        [&self.cfg.cert_file, &self.cfg.key_file]
    }

    fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut sc = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(sc)
    }
}

#[derive(Debug)]
struct Resolver(Arc<TlsReloader>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

fn load_certified_key(cfg: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Pem { path, source }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_file)
        .map_err(pem(&cfg.cert_file))?
        .collect::<Result<_, _>>()
        .map_err(pem(&cfg.cert_file))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cfg.cert_file.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(pem(&cfg.key_file))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    CertifiedKey::from_der(certs, key, &provider).map_err(TlsError::KeyMismatch)
}

/// Accepts connections until the shutdown signal, then drains them.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<TlsReloader>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
    let generation = state.current();
    let limits = generation.config.server.max_connections;
    let permits = Arc::new(Semaphore::new(limits));
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let generation = state.current();
        let server_cfg = &generation.config.server;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server_cfg.header_read_timeout)
            // Twice the limit: a head somewhat over `max_header_bytes` still
            // reaches the pipeline, which answers 431 as a page or JSON and
            // logs it; only a far larger one gets hyper's bare 431.
            .max_buf_size((server_cfg.max_header_bytes.saturating_mul(2)).max(8192))
            // Size is the limit, not a count: room for every header line a
            // head within `max_header_bytes` can hold at 16 bytes a line.
            .max_headers(crate::proxy::header_slots(server_cfg.max_header_bytes))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            // HTTP/2 counts 32 bytes more per header line than HTTP/1.1
            // spells (RFC 9113 §6.5.2); room for that, and the exact
            // HTTP/1.1-spelled size is checked per request by the pipeline.
            .max_header_list_size(
                u32::try_from(
                    server_cfg.max_header_bytes
                        + 32 * crate::proxy::header_slots(server_cfg.max_header_bytes),
                )
                .unwrap_or(u32::MAX),
            );
        // No keep-alive PINGs: hyper's server sends them on idle connections
        // too, and the PING and its automatic answer count as traffic for
        // the idle timeout, so an HTTP/2 client that sends nothing would
        // hold its connection (and a `max_connections` slot) for ever. A
        // dead peer is closed by the idle timeout like on HTTP/1.
        let idle = server_cfg.idle_timeout;
        let watcher = graceful.watcher();
        let tls_on = acceptor.is_some();
        // hyper keeps room for one request future per connection for the
        // connection's whole life; boxed, that room is one pointer, and the
        // request's state exists only while the request does.
        let slots = crate::proxy::ConnectionSlots(Arc::clone(&permits));
        let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
            let state = state.clone();
            // A WebSocket tunnel outlives its connection's task (and so
            // that task's permit): it takes a slot of its own from here.
            // Only a request asking for an upgrade can become one (and the
            // extension map is allocated only then).
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(slots.clone());
            }
            Box::pin(async move {
                Ok::<_, std::convert::Infallible>(
                    crate::pipeline::handle(state, req, peer, tls_on).await,
                )
            })
        });
        match acceptor.clone() {
            Some(acc) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(idle.min(Duration::from_secs(10)), acc.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let io = crate::server::IdleIo::new(TokioIo::new(tls_stream), idle);
                    let conn = builder.serve_connection_with_upgrades(io, svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                });
            }
            None => {
                // Built before the spawn: the task holds the connection
                // alone, not the builder and the handshake's state as well.
                let io = crate::server::IdleIo::new(TokioIo::new(stream), idle);
                let conn =
                    watcher.watch(builder.serve_connection_with_upgrades(io, svc).into_owned());
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    let grace = state.current().config.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub use idle::IdleIo;

mod idle {
    //! Closes a connection on which no byte moved for `idle` (keep-alive idle
    //! timeout; HTTP/2 and upgraded WebSocket streams keep it alive by traffic).
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use hyper::rt::{Read, ReadBufCursor, Write};
    use tokio::time::{Instant, Sleep};

    pub struct IdleIo<T> {
        inner: T,
        idle: Duration,
        /// Last time a byte moved. The timer is not reset on every read and
        /// write (that would touch the timer wheel per I/O); when it fires,
        /// it is re-armed from `last` if there was activity since.
        last: Instant,
        timer: Pin<Box<Sleep>>,
    }

    impl<T> IdleIo<T> {
        pub fn new(inner: T, idle: Duration) -> Self {
            Self {
                inner,
                idle,
                last: Instant::now(),
                timer: Box::pin(tokio::time::sleep(idle)),
            }
        }

        fn touch(&mut self) {
            self.last = Instant::now();
        }

        fn expired(&mut self, cx: &mut Context<'_>) -> bool {
            loop {
                if self.timer.as_mut().poll(cx).is_pending() {
                    return false;
                }
                let deadline = self.last + self.idle;
                if deadline <= Instant::now() {
                    return true;
                }
                self.timer.as_mut().reset(deadline);
            }
        }
    }

    use std::future::Future as _;

    impl<T: Read + Unpin> Read for IdleIo<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: ReadBufCursor<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(r) => {
                    this.touch();
                    Poll::Ready(r)
                }
                Poll::Pending => {
                    if this.expired(cx) {
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "idle timeout",
                        )))
                    } else {
                        Poll::Pending
                    }
                }
            }
        }
    }

    impl<T: Write + Unpin> Write for IdleIo<T> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let this = &mut *self;
            let r = Pin::new(&mut this.inner).poll_write(cx, buf);
            if r.is_ready() {
                this.touch();
            }
            r
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let this = &mut *self;
            let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            if r.is_ready() {
                this.touch();
            }
            r
        }
    }
}

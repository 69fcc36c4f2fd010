//! Kept-alive HTTP/1.1 connections to one upstream, driven by the request
//! that uses them.
//!
//! hyper's client connection is two halves: a sender, and a connection
//! future that does the I/O. The usual pool (hyper-util's) runs every
//! connection future as a task of its own, so each request crosses tasks
//! twice (the request through a channel to the connection task, the answer
//! back) and wakes both. Here the request's own task polls the connection
//! future while it waits for the answer, and the answer's body polls it
//! while the body is read; an idle connection sits in the pool, polled by
//! nobody until it is checked out. That saves about 1.5 µs per request on
//! the bench host (8 % of a minimal hyper proxy's CPU).
//!
//! What the pool promises:
//!
//! - **A checked-out connection is open and idle.** It is polled once
//!   before use: a close (or stray bytes) that arrived while it was idle is
//!   read then, and the connection is dropped instead of used.
//! - **A connection goes back only when its exchange is over**: the whole
//!   answer read, the connection idle (not closing, not still sending).
//!   An answer that is not read to its end (the client went away, an error,
//!   a timeout) closes its connection, and so does a 204 or 304 that
//!   announces a body: hyper reads none, so body bytes a broken server
//!   sends late would be read as the next request's answer.
//! - **A request body flows whatever becomes of the answer.** A request
//!   with a body is the last on its connection (`Connection: close`), so
//!   that connection runs as a task of its own until it closes: an app may
//!   answer early and read on. Such a connection is closed when the app
//!   has not read a byte of the upload for the upstream's longer timeout
//!   (`body_idle_timeout` or `response_header_timeout`), so an app that
//!   stops reading and never closes cannot hold it for ever; a slow client
//!   is not mistaken for such an app.
//! - **Failures say whether a retry is safe**: a request the connection
//!   closed under before it was written comes back whole
//!   ([`Failure::NotSent`]); one that failed on a reused connection before
//!   a single byte of its answer arrived is *stale* ([`Failure::Failed`]),
//!   the case of an upstream closing a kept-alive connection just as the
//!   request went out. The caller decides what may be sent again.
//! - **Bounded**: at most [`MAX_IDLE`] idle connections, none kept past
//!   [`IDLE_TIMEOUT`]; a sweep every [`SWEEP_EVERY`] closes the expired ones
//!   and those the upstream closed, while the pool lives.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower_service::Service;

use crate::http_util::{Body, BoxError};

/// Idle connections kept per upstream.
pub const MAX_IDLE: usize = 256;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often idle connections are checked while nobody uses them.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Stream = hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
type Io = TokioIo<Counting<TokioIo<Stream>>>;

/// One upstream's pool (cheap to clone: the clones share it).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    /// How long a connection running on its own (one carrying a request
    /// body) may go without moving a byte before it is closed.
    stall: Duration,
    builder: http1::Builder,
    /// `scheme://authority/` of the upstream (`None`: it does not parse,
    /// and nothing is ever connected).
    target: Option<Uri>,
    idle: Mutex<Vec<Idle>>,
    sweeping: AtomicBool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// An open connection, checked out of the pool or new. Boxed: hyper's
/// connection state is large, and a connection moves from the pool to the
/// request, to the answer's body and back on every request.
pub type Conn = Box<ConnState>;

pub struct ConnState {
    tx: http1::SendRequest<Body>,
    /// The connection future; dropped as soon as it finishes (closed or
    /// failed), which fails whatever request was still queued on it (with
    /// the request, when it was not written yet) instead of leaving that
    /// request waiting for ever.
    driver: Option<http1::Connection<Io, Body>>,
    /// What moved on its socket.
    io: Arc<IoStats>,
    /// It carried an exchange before.
    reused: bool,
}

impl ConnState {
    /// Moves the connection's I/O along; false once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.driver.as_mut()
            && Pin::new(driver).poll(cx).is_ready()
        {
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// Open, and ready for a request. Polled with a waker that wakes
    /// nobody: the connection is about to sit in the pool, or has just
    /// come out of it, and a close the upstream sends later must not wake
    /// the task that last used it.
    fn is_idle_unwatched(&mut self) -> bool {
        self.drive(&mut Context::from_waker(Waker::noop())) && self.tx.is_ready()
    }
}

impl Idle {
    /// Not expired, open, and ready for a request.
    fn usable(&mut self) -> bool {
        self.since.elapsed() < IDLE_TIMEOUT && self.conn.is_idle_unwatched()
    }
}

/// Why a request got no answer.
pub enum Failure {
    /// The connection closed before the request was written: the request,
    /// untouched, and the reason.
    NotSent(Box<Request<Body>>, hyper::Error),
    /// Written (at least in part) and failed. `stale`: on a reused
    /// connection, before any byte of the answer arrived.
    Failed { error: hyper::Error, stale: bool },
}

impl Pool {
    pub fn new(
        connector: Connector,
        builder: http1::Builder,
        target: Option<Uri>,
        stall: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                stall,
                builder,
                target,
                idle: Mutex::new(Vec::new()),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// The most recently used idle connection that is still open, or a new
    /// one.
    pub async fn checkout(&self) -> Result<Conn, BoxError> {
        match self.take_idle() {
            Some(conn) => Ok(conn),
            None => self.connect().await,
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        loop {
            // Checked (and dropped, if it closed) outside the lock.
            let mut idle = self.inner.lock().pop()?;
            if idle.usable() {
                return Some(idle.conn);
            }
        }
    }

    /// A new connection (the connector's connect timeout applies).
    pub async fn connect(&self) -> Result<Conn, BoxError> {
        let Some(target) = self.inner.target.clone() else {
            return Err("the upstream URL has no usable authority".into());
        };
        let mut connector = self.inner.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
        let stream = connector.call(target).await?;
        let stats = Arc::new(IoStats::default());
        let io = TokioIo::new(Counting {
            inner: TokioIo::new(stream),
            stats: Arc::clone(&stats),
        });
        let (tx, driver) = self.inner.builder.handshake(io).await?;
        Ok(Box::new(ConnState {
            tx,
            driver: Some(driver),
            io: stats,
            reused: false,
        }))
    }

    /// Sends `req` on `conn` and waits for the answer's head, driving the
    /// connection meanwhile. The answer's body keeps driving it and hands
    /// it back to the pool at its end.
    ///
    /// A request with a body is the last on its connection (the caller
    /// sends it with `Connection: close`), and its body must keep flowing
    /// whatever becomes of the answer: an app may answer early and read on.
    /// Its connection runs as a task of its own until it closes.
    pub async fn send(
        &self,
        mut conn: Conn,
        req: Request<Body>,
    ) -> Result<Response<Returning>, Failure> {
        let has_body = !req.body().is_end_stream();
        let reused = conn.reused;
        let io = Arc::clone(&conn.io);
        io.answered.store(false, Ordering::Release);
        let mut sent = std::pin::pin!(conn.tx.try_send_request(req));
        let mut conn = if has_body {
            tokio::spawn(run_alone(conn, self.inner.stall));
            None
        } else {
            Some(conn)
        };
        let result = std::future::poll_fn(|cx| {
            if let Some(conn) = conn.as_mut() {
                conn.drive(cx);
            }
            let r = std::task::ready!(sent.as_mut().poll(cx));
            // An answer without a body ends here: whether the connection
            // can be reused is known now (the body is never polled).
            let done = match (&r, conn.as_mut()) {
                (Ok(resp), Some(conn)) if resp.body().is_end_stream() => {
                    Some(conn.is_idle_unwatched() && !framed_without_body(resp))
                }
                _ => None,
            };
            Poll::Ready((r, done))
        })
        .await;
        match result {
            (Ok(resp), done) => {
                let conn = conn.and_then(|mut conn| {
                    conn.reused = true;
                    match done {
                        Some(true) => {
                            self.put(conn);
                            None
                        }
                        Some(false) => None,
                        None => Some(conn),
                    }
                });
                Ok(resp.map(|inner| Returning {
                    inner,
                    conn,
                    pool: Arc::clone(&self.inner),
                }))
            }
            (Err(mut e), _) => match e.take_message() {
                Some(req) => Err(Failure::NotSent(Box::new(req), e.into_error())),
                None => Err(Failure::Failed {
                    stale: reused && !io.answered.load(Ordering::Acquire),
                    error: e.into_error(),
                }),
            },
        }
    }

    fn put(&self, conn: Conn) {
        Inner::put(&self.inner, conn);
    }
}

/// Drives a connection until it closes, or until the upstream has not read
/// a byte of the upload for `stall`: its socket stayed full and nothing
/// moved (an app that stopped reading and never closes would otherwise
/// hold the task and its socket for ever). A connection that is quiet
/// because the *client* is slow (pausing its upload, or reading the answer
/// slowly) is left alone: the client's side has its own timeouts.
async fn run_alone(mut conn: Conn, stall: Duration) {
    let io = Arc::clone(&conn.io);
    let mut done = std::pin::pin!(std::future::poll_fn(|cx| {
        if conn.drive(cx) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }));
    let mut seen = io.moved.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = &mut done => return,
            () = tokio::time::sleep(stall) => {
                let now = io.moved.load(Ordering::Relaxed);
                if now == seen && io.write_blocked.load(Ordering::Relaxed) {
                    tracing::debug!("upstream connection stalled; closing it");
                    return;
                }
                seen = now;
            }
        }
    }
}

/// A 204 or 304 is bodiless whatever its headers say, so hyper reads no
/// body; one that announces a body anyway may be followed by one on the
/// wire (a hand-written server), which would be read as the next request's
/// answer. Such a connection is not reused. (A 304's `Content-Length` may be
/// the full representation's, legitimately: then one connection is lost.)
fn framed_without_body<B>(resp: &Response<B>) -> bool {
    let bodiless = matches!(resp.status().as_u16(), 204 | 304);
    let framed = resp.headers().contains_key(http::header::TRANSFER_ENCODING)
        || resp
            .headers()
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    bodiless && framed
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checked under the lock (a poll of an idle connection reads only
    /// when its socket has something: a close), so the pool never looks
    /// empty to a checkout meanwhile; closed outside it.
    fn sweep_now(&self) {
        let closing: Vec<Idle> = self.lock().extract_if(.., |i| !i.usable()).collect();
        drop(closing);
    }

    fn put(this: &Arc<Self>, conn: Conn) {
        {
            let mut idle = this.lock();
            if idle.len() >= MAX_IDLE {
                drop(idle);
                // Closed outside the lock.
                drop(conn);
                return;
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        if !this.sweeping.load(Ordering::Acquire)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
            && !this.sweeping.swap(true, Ordering::AcqRel)
        {
            // The guard exists before the task does: a task dropped
            // unpolled (its runtime shutting down) clears the flag too.
            let running = Sweeping(Arc::downgrade(this));
            rt.spawn(sweep(running));
        }
    }
}

/// The sweeper's claim on its pool: dropped with the sweeper (the pool is
/// gone, or the runtime shut down), it lets the next `put` start another.
struct Sweeping(Weak<Inner>);

impl Drop for Sweeping {
    fn drop(&mut self) {
        if let Some(pool) = self.0.upgrade() {
            pool.sweeping.store(false, Ordering::Release);
        }
    }
}

/// Every [`SWEEP_EVERY`], closes idle connections that expired or that the
/// upstream closed; ends with the pool.
async fn sweep(running: Sweeping) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = running.0.upgrade() else {
            return;
        };
        pool.sweep_now();
    }
}

/// An upstream answer's body. Reading it drives its connection; at its end
/// the connection goes back to the pool if it is idle.
pub struct Returning {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Arc<Inner>,
}

impl Returning {
    /// Hands the connection back once the answer is over.
    fn finish(&mut self) {
        if let Some(mut conn) = self.conn.take()
            && conn.is_idle_unwatched()
        {
            Inner::put(&self.pool, conn);
        }
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut r = Pin::new(&mut this.inner).poll_frame(cx);
        if r.is_pending()
            && let Some(conn) = this.conn.as_mut()
        {
            // The frames come from the connection: move it, then look again.
            conn.drive(cx);
            r = Pin::new(&mut this.inner).poll_frame(cx);
        }
        match &r {
            Poll::Ready(None) => this.finish(),
            // Trailers are the last frame; hyper's server stops reading then.
            Poll::Ready(Some(Ok(f))) if f.is_trailers() || this.inner.is_end_stream() => {
                this.finish();
            }
            // A broken answer leaves the connection in no known state.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Notes when answer bytes arrive. It sits above TLS, so a TLS record
/// (an alert, a session ticket) is not mistaken for an answer. hyper's own
/// I/O traits hide how many bytes a read produced, so this is a tokio
/// `AsyncRead`/`AsyncWrite` between two `TokioIo` adapters.
struct Counting<T> {
    inner: T,
    stats: Arc<IoStats>,
}

#[derive(Default)]
struct IoStats {
    /// Set by the first byte read after a request is sent.
    answered: AtomicBool,
    /// Reads and writes that moved bytes, ever.
    moved: AtomicU64,
    /// The last write found the socket full: the upstream is not reading.
    write_blocked: AtomicBool,
}

impl<T> Counting<T> {
    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        self.stats
            .write_blocked
            .store(r.is_pending(), Ordering::Relaxed);
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.stats.moved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.stats.answered.store(true, Ordering::Release);
            this.stats.moved.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A keep-alive upstream answering every request `200 ok`; counts the
    /// connections it accepted.
    async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// An upstream that answers one request per connection, keeps the
    /// connection open until `close` is notified, closes it and notifies
    /// `closed`.
    async fn upstream_closing_on_demand() -> (
        SocketAddr,
        Arc<tokio::sync::Notify>,
        Arc<tokio::sync::Notify>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let close = Arc::new(tokio::sync::Notify::new());
        let closed = Arc::new(tokio::sync::Notify::new());
        let (close_rx, closed_tx) = (Arc::clone(&close), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                close_rx.notified().await;
                drop(s);
                closed_tx.notify_one();
            }
        });
        (addr, close, closed)
    }

    fn pool(addr: SocketAddr) -> Pool {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::super::tls_client_config(None))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let target = format!("http://{addr}/").parse().unwrap();
        Pool::new(
            connector,
            http1::Builder::new(),
            Some(target),
            Duration::from_secs(60),
        )
    }

    /// One exchange on a checked-out connection, its answer read to the end.
    async fn exchange(pool: &Pool) {
        exchange_on(pool, pool.checkout().await.unwrap()).await;
    }

    async fn exchange_on(pool: &Pool, conn: Conn) {
        let req = Request::builder()
            .uri("/")
            .header(http::header::HOST, "up.test")
            .body(crate::http_util::empty())
            .unwrap();
        let Ok(resp) = pool.send(conn, req).await else {
            panic!("the exchange failed");
        };
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    /// Whether `check` holds within 2 s (checked every millisecond): well
    /// inside [`SWEEP_EVERY`], so the pool's own sweeper cannot be what
    /// makes it hold.
    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        for _ in 0..2000 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }

    fn idle(pool: &Pool) -> usize {
        pool.inner.lock().len()
    }

    fn age_all(pool: &Pool, by: Duration) {
        for i in pool.inner.lock().iter_mut() {
            i.since = i.since.checked_sub(by).expect("an earlier instant");
        }
    }

    #[tokio::test]
    async fn a_connection_is_reused_until_it_has_been_idle_too_long() {
        let (addr, accepted) = upstream().await;
        let pool = pool(addr);
        for _ in 0..3 {
            exchange(&pool).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(idle(&pool), 1);
        age_all(&pool, IDLE_TIMEOUT);
        exchange(&pool).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "an expired connection is closed, not used"
        );
        assert_eq!(idle(&pool), 1);
    }

    #[tokio::test]
    async fn the_sweep_closes_expired_connections_and_keeps_the_others() {
        let (addr, _) = upstream().await;
        let pool = pool(addr);
        // Two connections at once, both back in the pool.
        let (a, b) = (
            pool.checkout().await.unwrap(),
            pool.checkout().await.unwrap(),
        );
        for conn in [a, b] {
            exchange_on(&pool, conn).await;
        }
        assert_eq!(idle(&pool), 2);
        pool.inner.sweep_now();
        assert_eq!(idle(&pool), 2, "fresh idle connections are kept");
        age_all(&pool, IDLE_TIMEOUT);
        pool.inner.sweep_now();
        assert_eq!(idle(&pool), 0, "expired ones are closed");
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept() {
        let (addr, _) = upstream().await;
        let pool = pool(addr);
        let mut conns = Vec::new();
        for _ in 0..MAX_IDLE + 3 {
            conns.push(pool.checkout().await.unwrap());
        }
        for conn in conns {
            pool.put(conn);
        }
        assert_eq!(idle(&pool), MAX_IDLE);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_never_checked_out() {
        let (addr, close, closed) = upstream_closing_on_demand().await;
        let pool = pool(addr);
        exchange(&pool).await;
        assert_eq!(idle(&pool), 1);
        close.notify_one();
        closed.notified().await;
        // The close reaches the socket at the kernel's pace: until it has,
        // the connection is open and may be checked out (and goes back).
        assert!(
            eventually(|| match pool.take_idle() {
                None => true,
                Some(conn) => {
                    pool.put(conn);
                    false
                }
            })
            .await,
            "a connection the upstream closed is still checked out"
        );
        assert_eq!(idle(&pool), 0);
    }

    #[tokio::test]
    async fn the_sweep_closes_connections_the_upstream_closed() {
        let (addr, close, closed) = upstream_closing_on_demand().await;
        let pool = pool(addr);
        exchange(&pool).await;
        pool.inner.sweep_now();
        assert_eq!(idle(&pool), 1, "an open idle connection is kept");
        close.notify_one();
        closed.notified().await;
        assert!(
            eventually(|| {
                pool.inner.sweep_now();
                idle(&pool) == 0
            })
            .await,
            "the sweep keeps a connection the upstream closed"
        );
    }
}

//! Upstream connections that remember what happened on them, so a failed
//! request can tell a stale keep-alive connection from a real failure.
//!
//! An upstream may close a kept-alive connection just as the next request is
//! written to it (Node's `keepAliveTimeout`, gunicorn, Python servers). The
//! request then fails although the upstream never saw it in any useful
//! sense. hyper-util's client retries on its own only when the connection
//! was found closed *before* the request was written
//! (`retry_canceled_requests`); once the bytes are out it reports an error
//! and keeps no record of whether the connection was reused. This module
//! wraps every upstream connection to keep exactly that record, handed to
//! the client through `Connected::extra` and read back from a failed
//! request's `Error::connect_info`:
//!
//! - the number of exchanges (a write after a read starts the next one: on
//!   HTTP/1.1 without pipelining, each request is one exchange), and
//! - whether any response byte arrived in the current exchange.
//!
//! A request failed on a stale connection when it was not the first on it
//! and no byte of its response arrived. The counting sits above TLS, so a
//! TLS alert or session ticket is not mistaken for a response byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http_util::BoxError;

/// What one connection has seen (shared by the connection and the client).
#[derive(Debug, Default)]
pub struct ConnStats {
    exchanges: AtomicU64,
    answered: AtomicBool,
}

/// The handle stored in `Connected::extra` (extras must be `Clone`).
#[derive(Debug, Clone)]
struct StatsExtra(Arc<ConnStats>);

/// Whether `err` is a request lost to a stale kept-alive connection: the
/// connection had carried an earlier request and not one byte of this
/// request's answer arrived.
pub fn failed_on_stale_connection(err: &hyper_util::client::legacy::Error) -> bool {
    if err.is_connect() {
        return false;
    }
    let Some(info) = err.connect_info() else {
        return false;
    };
    let mut extensions = http::Extensions::new();
    info.get_extras(&mut extensions);
    extensions.get::<StatsExtra>().is_some_and(|s| {
        s.0.exchanges.load(Ordering::Acquire) >= 2 && !s.0.answered.load(Ordering::Acquire)
    })
}

/// Wraps a connector so each connection it makes keeps [`ConnStats`].
#[derive(Debug, Clone)]
pub struct Tracking<C>(pub C);

impl<C> tower_service::Service<Uri> for Tracking<C>
where
    C: tower_service::Service<Uri> + Send + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Tracked<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(Tracked::new) })
    }
}

/// A connection that counts exchanges and answer bytes. hyper's own IO
/// traits hide how many bytes a read produced, so the counting layer is a
/// tokio `AsyncRead`/`AsyncWrite` between two `TokioIo` adapters.
pub struct Tracked<T> {
    io: TokioIo<Counting<TokioIo<T>>>,
}

impl<T> Tracked<T> {
    fn new(inner: T) -> Self {
        Self {
            io: TokioIo::new(Counting {
                inner: TokioIo::new(inner),
                stats: Arc::default(),
                writing: false,
            }),
        }
    }
}

struct Counting<T> {
    inner: T,
    stats: Arc<ConnStats>,
    /// The last I/O was a write (the current exchange is sending).
    writing: bool,
}

impl<T> Counting<T> {
    fn on_write(&mut self) {
        if !self.writing {
            self.writing = true;
            self.stats.answered.store(false, Ordering::Release);
            self.stats.exchanges.fetch_add(1, Ordering::AcqRel);
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
            this.writing = false;
            this.stats.answered.store(true, Ordering::Release);
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
        self.on_write();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.on_write();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

impl<T: Read + Write + Unpin> Read for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Read + Write + Unpin> Write for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Tracked<T> {
    fn connected(&self) -> Connected {
        let counting = self.io.inner();
        counting
            .inner
            .inner()
            .connected()
            .extra(StatsExtra(counting.stats.clone()))
    }
}

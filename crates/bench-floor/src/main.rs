//! `hyper-floor LISTEN UPSTREAM`: a reverse proxy that does nothing but
//! proxy, on the same stack as the gateway (hyper's auto HTTP/1 + h2c
//! server; hyper's client connections kept in a pool and driven by the
//! request that uses them, as the gateway's are; a current-thread tokio
//! runtime; mimalloc). `scripts/bench` runs it beside the gateway as the
//! floor of what a hyper proxy costs on the machine: no routing, no header
//! hygiene, no session work, no retries, no log. It is not part of the
//! product.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: hyper-floor LISTEN_ADDR UPSTREAM_ADDR (e.g. 127.0.0.1:8080 127.0.0.1:9000)"
        );
        std::process::exit(2);
    };
    let (listen, upstream): (SocketAddr, SocketAddr) = match (listen.parse(), upstream.parse()) {
        (Ok(l), Ok(u)) => (l, u),
        _ => {
            eprintln!("hyper-floor: both arguments must be IP:PORT socket addresses");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(serve(listen, upstream)) {
        eprintln!("hyper-floor: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let pool = Pool {
        idle: Arc::default(),
        upstream,
    };
    eprintln!("hyper-floor: listening on {listen}, proxying to http://{upstream}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let pool = pool.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let pool = pool.clone();
            Box::pin(async move { Ok::<_, Infallible>(forward(&pool, req).await) })
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

type Driver = http1::Connection<TokioIo<tokio::net::TcpStream>, Incoming>;

/// An upstream connection (boxed: it moves from the pool to the request,
/// its answer and back). The connection future is dropped when it
/// finishes, which fails a request still queued on it.
struct Conn(Box<(http1::SendRequest<Incoming>, Option<Driver>)>);

impl Conn {
    /// Moves the connection along; false once it has closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = self.0.1.as_mut()
            && Pin::new(driver).poll(cx).is_ready()
        {
            self.0.1 = None;
        }
        self.0.1.is_some()
    }

    fn is_idle(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && self.0.0.is_ready()
    }
}

/// Idle upstream connections, most recently used last.
#[derive(Clone)]
struct Pool {
    idle: Arc<Mutex<Vec<Conn>>>,
    upstream: SocketAddr,
}

impl Pool {
    fn take_idle(&self) -> Option<Conn> {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let mut conn = self.idle.lock().ok()?.pop()?;
            if conn.is_idle(&mut cx) {
                return Some(conn);
            }
        }
    }

    async fn checkout(&self) -> std::io::Result<Conn> {
        if let Some(conn) = self.take_idle() {
            return Ok(conn);
        }
        let stream = tokio::net::TcpStream::connect(self.upstream).await?;
        stream.set_nodelay(true)?;
        let (tx, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        Ok(Conn(Box::new((tx, Some(conn)))))
    }

    fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 1024
        {
            idle.push(conn);
        }
    }
}

/// The answer's body: reading it drives the connection, which goes back
/// to the pool at the end.
struct Returning {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Pool,
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
            if !conn.drive(cx) {
                this.conn = None;
            }
            r = Pin::new(&mut this.inner).poll_frame(cx);
        }
        let ended = match &r {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                this.conn = None;
                false
            }
            Poll::Pending => false,
        };
        if ended
            && let Some(mut conn) = this.conn.take()
            && conn.is_idle(cx)
        {
            this.pool.put(conn);
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

async fn forward(pool: &Pool, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = path.parse::<Uri>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    *req.uri_mut() = uri;
    let Ok(mut conn) = pool.checkout().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut sent = std::pin::pin!(conn.0.0.send_request(req));
    let answer = std::future::poll_fn(|cx| {
        conn.drive(cx);
        sent.as_mut().poll(cx)
    })
    .await;
    match answer {
        Ok(resp) => resp.map(|inner| {
            Returning {
                inner,
                conn: Some(conn),
                pool: pool.clone(),
            }
            .boxed()
        }),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = code;
    resp
}

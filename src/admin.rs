//! The admin listener (never behind auth; loopback by default):
//! `/healthz` (process up), `/readyz` (config loaded, keys available, not
//! draining), `/metrics` (Prometheus text).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http_util::{Body, respond};
use crate::state::AppState;

/// Connections the admin listener serves at once (probes and scrapes need
/// a handful); beyond it a new connection is closed at once, so the admin
/// port can never use up the process's file descriptors.
const MAX_ADMIN_CONNECTIONS: usize = 256;
/// A request head must arrive within this; a connection idle this long
/// between requests is closed.
const ADMIN_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const ADMIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                // Out of file descriptors (EMFILE) and the like: back off
                // as the traffic listener does, instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, &req)) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT);
            let io = crate::server::IdleIo::new(TokioIo::new(stream), ADMIN_IDLE_TIMEOUT);
            let _ = builder.serve_connection(io, svc).await;
        });
    }
}

fn handle(state: &AppState, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    match req.uri().path() {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            if state.is_ready() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "signing keys not loaded yet\n",
                )
            }
        }
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.metrics.render(),
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

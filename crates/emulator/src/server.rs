//! The accept loop and the per-request wrapper: read the body, count the call,
//! apply faults, dispatch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::http::{Req, Resp, error, json};
use crate::options::{Fault, FaultKind};
use crate::routes;
use crate::shared::Shared;
use portcullis_wire::ErrorBody;

/// Largest request body read (management bodies are small).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `Retry-After` of a plain status-429 fault (rate-limit faults set their own).
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// Fault path that applies to every endpoint without a fault of its own.
pub(crate) const WILDCARD: &str = "*";

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub(crate) struct Dropped;

pub(crate) struct ServerHandle {
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ServerHandle {
    /// Stops the accept loop and closes connections; later calls return at once.
    pub(crate) async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

pub(crate) fn start(listener: TcpListener, shared: Arc<Shared>) -> ServerHandle {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(shared.clone(), req, peer)
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
    });
    ServerHandle {
        stop,
        task: std::sync::Mutex::new(Some(task)),
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let is_control = path.starts_with("/emulator/");
    let fault = {
        let mut st = shared.lock();
        *st.calls.entry(path.clone()).or_insert(0) += 1;
        if is_control {
            None
        } else {
            take_fault(&mut st.faults, &path)
        }
    };
    if let Some(kind) = fault {
        match kind {
            FaultKind::Latency { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            FaultKind::Drop => return Err(Dropped),
            FaultKind::RateLimit { retry_after_secs } => {
                let mut resp = json(
                    StatusCode::TOO_MANY_REQUESTS,
                    &ErrorBody::new(
                        "E130429",
                        "https://docs.descope.com/rate-limit",
                        "API rate limit exceeded.",
                    ),
                );
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(retry_after_secs));
                return Ok(resp);
            }
            FaultKind::Status {
                status,
                error_code,
                error_message,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let code = error_code.unwrap_or_else(|| default_code(status).to_owned());
                let message = error_message.unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("Injected failure")
                        .to_owned()
                });
                let mut resp = error(status, &code, "Injected fault", &message);
                if status == StatusCode::TOO_MANY_REQUESTS {
                    // Descope's 429s always carry an integer Retry-After.
                    resp.headers_mut()
                        .insert("retry-after", HeaderValue::from(DEFAULT_RETRY_AFTER_SECS));
                }
                return Ok(resp);
            }
        }
    }
    let body: Bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "E011001",
                "Bad request",
                "The request body is too large or was cut off",
            ));
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| {
            let mut map = std::collections::HashMap::new();
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
            map
        })
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        peer: Some(peer),
    };
    let method = req.method.clone();
    let resp = routes::dispatch(&shared, &req);
    // Path and status only: query strings and bodies may carry tokens.
    tracing::debug!(target: "portcullis::emulator", %method, path = %req.path, status = resp.status().as_u16(), "emulator request");
    Ok(resp)
}

/// The fault to apply to this call, consuming one use of a counted fault.
fn take_fault(
    faults: &mut std::collections::HashMap<String, Fault>,
    path: &str,
) -> Option<FaultKind> {
    let key = if faults.contains_key(path) {
        path
    } else {
        WILDCARD
    };
    let fault = faults.get_mut(key)?;
    let kind = fault.kind.clone();
    match fault.times {
        None => {}
        Some(0) => {
            faults.remove(key);
            return None;
        }
        Some(1) => {
            faults.remove(key);
        }
        Some(n) => fault.times = Some(n - 1),
    }
    Some(kind)
}

/// The error code an injected status fault carries by default.
fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "E011001",
        401 => "E061301",
        403 => "E011003",
        404 => "E011404",
        429 => "E130429",
        _ => "E010000",
    }
}

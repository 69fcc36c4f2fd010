//! A scripted stand-in for Descope used by unit tests: a real hyper server on
//! `127.0.0.1:0` that records every request, counts calls per path, answers
//! from a handler, and can hold answers until a gate opens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// What the fake saw.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub project_header: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Close the connection without answering.
    pub drop: bool,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            drop: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn dropped() -> Self {
        Self {
            status: 500,
            headers: Vec::new(),
            body: String::new(),
            drop: true,
        }
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Answer + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    seen: Mutex<Vec<Recorded>>,
    counts: Mutex<HashMap<String, usize>>,
    arrived: Notify,
    gate: watch::Receiver<bool>,
}

/// A running fake; dropped with the test runtime.
pub(crate) struct FakeDescope {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    gate: watch::Sender<bool>,
}

impl FakeDescope {
    /// Starts a fake whose handler gets the request and the 1-based call
    /// number for its path. The gate starts open.
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let (gate_tx, gate_rx) = watch::channel(true);
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            seen: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
            gate: gate_rx,
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(s.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            gate: gate_tx,
        }
    }

    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("valid url")
    }

    /// Calls seen for `path`.
    pub fn calls(&self, path: &str) -> usize {
        self.shared
            .counts
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().expect("lock").clone()
    }

    /// Holds every answer until [`FakeDescope::open`].
    pub fn close(&self) {
        self.gate.send_replace(false);
    }

    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Waits until at least `n` calls to `path` arrived.
    pub async fn wait_calls(&self, path: &str, n: usize) {
        loop {
            let notified = self.shared.arrived.notified();
            if self.calls(path) >= n {
                return;
            }
            notified.await;
        }
    }
}

async fn serve(
    s: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let authorization = header("authorization");
    let project_header = header("x-descope-project-id");
    let content_type = header("content-type");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let rec = Recorded {
        method,
        path: path.clone(),
        authorization,
        project_header,
        content_type,
        body,
    };
    let n = {
        let mut counts = s.counts.lock().expect("lock");
        let c = counts.entry(path).or_insert(0);
        *c += 1;
        *c
    };
    s.seen.lock().expect("lock").push(rec.clone());
    s.arrived.notify_waiters();
    let mut gate = s.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    let answer = (s.handler)(&rec, n);
    if answer.drop {
        // An error from the service makes hyper close the connection unanswered.
        return Err(std::io::Error::other("scripted drop"));
    }
    let mut resp = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp
        .body(Full::new(Bytes::from(answer.body)))
        .expect("valid response"))
}

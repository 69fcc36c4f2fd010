//! Test harness: a Descope emulator, a recording upstream and a gateway, all
//! in-process on `127.0.0.1:0`, talked to over real sockets.

#![allow(dead_code)]

mod apps;
mod op;
mod raw;
mod redis;

pub use apps::*;
pub use op::*;
pub use raw::*;
pub use redis::*;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis::app::{GatewayHandle, StartOptions};
use portcullis::config::{Config, LoadOptions};
use portcullis_emulator::{Emulator, EmulatorOptions, KeyType, MintSpec};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub const PROJECT_ID: &str = "P2testproject0000000000000000";

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .try_init();
        }
    });
}

// === recording upstream ===

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

#[derive(Clone, Default)]
pub struct Upstream {
    pub addr: Option<SocketAddr>,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    /// Signalled when an upload's first chunk arrives at `/__upload`.
    pub first_chunk: Arc<Notify>,
    /// Released by the test to let `/__hold` answer.
    pub release: Arc<Notify>,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr.expect("spawned"))
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// An upstream that records every request and answers 200 with a JSON echo.
/// Special paths: `/__slow` never answers within a test's timeout, `/__hold`
/// answers once `release` is notified, `/__upload` streams the body and
/// signals `first_chunk`, `/__ws` accepts a WebSocket and echoes messages,
/// `/__setcookie` sets a cookie.
pub async fn spawn_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = Upstream {
        addr: Some(listener.local_addr().unwrap()),
        ..Default::default()
    };
    let state = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            state
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(upstream_handle(state, req).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // Never the narrowest limit in a test of the gateway's limits.
                builder.http1().max_headers(10_000);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    up
}

async fn upstream_handle(state: Upstream, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    if path == "/__ws" {
        state.seen.lock().unwrap().push(Recorded {
            method,
            target,
            headers: headers.clone(),
            body_len: 0,
        });
        let key = headers.get("sec-websocket-key").cloned();
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                use futures_util::{SinkExt, StreamExt};
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let accept = key
            .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()))
            .unwrap_or_default();
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", accept)
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    let mut body_len = 0usize;
    if path == "/__upload" {
        let mut body = req.into_body();
        let mut first = true;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(d) = frame.data_ref() {
                body_len += d.len();
                if first && !d.is_empty() {
                    first = false;
                    state.first_chunk.notify_one();
                }
            }
        }
    } else {
        body_len = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
    }
    state.seen.lock().unwrap().push(Recorded {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body_len,
    });
    match path.as_str() {
        "/__slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        "/__hold" => state.release.notified().await,
        _ => {}
    }
    let hdrs: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let body = json!({"method": method, "target": target, "headers": hdrs, "body_len": body_len})
        .to_string();
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        // Hop-by-hop headers the gateway must not pass back.
        .header("connection", "x-upstream-private")
        .header("x-upstream-private", "secret")
        .header("keep-alive", "timeout=5");
    if path == "/__setcookie" {
        resp = resp.header("set-cookie", "app=1; Path=/");
    }
    resp.body(Full::new(Bytes::from(body))).unwrap()
}

// === emulator ===

pub async fn spawn_emulator() -> Emulator {
    spawn_emulator_with(KeyType::Ec).await
}

pub async fn spawn_emulator_with(key_type: KeyType) -> Emulator {
    init();
    Emulator::spawn(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            project_id: PROJECT_ID.into(),
            key_type,
            management_key: Some("K-test-management".into()),
            ..EmulatorOptions::default()
        },
    )
    .await
    .expect("emulator starts")
}

/// Claims from a JSON object literal.
pub fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn session_token(emu: &Emulator, sub: &str, extra: Value) -> String {
    emu.mint(&MintSpec {
        sub: sub.into(),
        refresh: false,
        ttl_secs: 600,
        claims: claims(extra),
    })
}

pub fn refresh_token(emu: &Emulator, sub: &str) -> String {
    emu.mint(&MintSpec {
        sub: sub.into(),
        refresh: true,
        ttl_secs: 3600,
        claims: Map::new(),
    })
}

// === gateway ===

pub struct TestGateway {
    pub handle: GatewayHandle,
    pub emu: Arc<Emulator>,
    pub upstream: Upstream,
    pub client: reqwest::Client,
}

/// The base of every test config: listen on port 0, the emulator and upstream
/// filled in. `extra` is appended (routes, tables).
pub fn base_toml(emu: &Emulator, upstream: &Upstream, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://gw.test"

[admin]
listen = "127.0.0.1:0"

[descope]
project_id = "{pid}"
base_url = "{base}"
jwks_min_refetch = "1s"

[upstreams.default]
url = "{up}"
response_header_timeout = "2s"

{extra}
"#,
        pid = emu.project_id(),
        base = emu.base_url(),
        up = upstream.url(),
    )
}

pub fn config(toml: &str) -> Config {
    Config::from_toml(
        toml,
        std::path::Path::new("."),
        &HashMap::<String, String>::new(),
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("test config is valid: {e}"))
}

impl TestGateway {
    /// Emulator + upstream + gateway with `routes_and_tables` appended to the base config.
    pub async fn spawn(routes_and_tables: &str) -> Self {
        Self::spawn_editing(routes_and_tables, |toml| toml).await
    }

    /// Like [`Self::spawn`], with the whole config passed through `edit`
    /// first (to change keys the base config already sets).
    pub async fn spawn_editing(
        routes_and_tables: &str,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let emu = Arc::new(spawn_emulator().await);
        let upstream = spawn_upstream().await;
        let toml = edit(base_toml(&emu, &upstream, routes_and_tables));
        Self::spawn_with(emu, upstream, &toml).await
    }

    pub async fn spawn_with(emu: Arc<Emulator>, upstream: Upstream, toml: &str) -> Self {
        init();
        let handle = portcullis::app::start(config(toml), StartOptions::default())
            .await
            .expect("gateway starts");
        wait_ready(&handle).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self {
            handle,
            emu,
            upstream,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.handle.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.handle.admin_addr.expect("admin listener"),
            path
        )
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn session(&self, sub: &str, extra: Value) -> String {
        session_token(&self.emu, sub, extra)
    }

    /// Sends raw bytes and returns the status and the whole response text.
    pub async fn raw(&self, request: &str) -> (u16, String) {
        raw_request(self.handle.addr, request).await
    }
}

/// Waits until the gateway says it is ready (keys loaded), polling the admin listener.
pub async fn wait_ready(handle: &GatewayHandle) {
    for _ in 0..3000 {
        if handle.state.is_ready() {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gateway never became ready");
}

/// Writes `request` verbatim on a fresh connection and reads the response head and body.
pub async fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A GET request line + headers for `raw_request` (connection closed after).
pub fn raw_get(target: &str, extra_headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n{extra_headers}\r\n")
}

// === log capture ===

/// The JSON log lines written on this thread while the guard lives. A
/// `#[tokio::test]` runs the gateway's tasks on its own (current) thread, so
/// this sees the gateway's events and no other test's.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub fn capture_logs() -> Logs {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(LogWriter(buf.clone()))
        .finish();
    Logs {
        buf,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// The parsed lines whose message is `message`.
    pub fn lines_with(&self, message: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }
}

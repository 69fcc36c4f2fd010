//! Hand-written upstreams on raw TCP: each test scripts what the server does
//! on every connection (answer, close at the wrong moment, send a bad 101,
//! ignore a body), and the upstream logs every request head it read, with
//! the connection it came on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{TestGateway, Upstream, base_toml, spawn_emulator};

/// One request head as a raw upstream read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The connection it came on (1, 2, ... in accept order).
    pub conn: usize,
    /// Its place on that connection (1 for the first request).
    pub nth: usize,
    pub method: String,
    pub target: String,
    /// The whole head as received (request line and header lines).
    pub head: String,
}

impl RawRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn content_length(&self) -> usize {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// One accepted connection, as a script sees it.
pub struct RawConn {
    pub stream: TcpStream,
    /// Bytes read but not yet consumed as a head or a body.
    buf: Vec<u8>,
    pub id: usize,
    served: usize,
    log: Arc<Mutex<Vec<RawRequest>>>,
}

impl RawConn {
    /// Reads the next request head: the bytes up to the first empty line.
    /// Never reads a body: a script that does not call [`RawConn::skip_body`]
    /// reads whatever follows as the next request, as a server that ignores
    /// bodies does. `None` when the peer closed first.
    pub async fn next_head(&mut self) -> Option<RawRequest> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(self.record(&head));
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads and discards the `Content-Length` body of `req`; returns how
    /// many of its bytes arrived (fewer when the peer closed first).
    pub async fn skip_body(&mut self, req: &RawRequest) -> usize {
        let len = req.content_length();
        let mut want = len;
        let take = want.min(self.buf.len());
        self.buf.drain(..take);
        want -= take;
        while want > 0 {
            let mut chunk = vec![0u8; want.min(16 * 1024)];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => want -= n,
            }
        }
        len - want
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Waits until the peer has sent more bytes (or closed), without reading
    /// them: dropping the connection afterwards closes it with unread data,
    /// which the kernel turns into a reset.
    pub async fn wait_for_bytes(&mut self) {
        if self.buf.is_empty() {
            let mut one = [0u8; 1];
            let _ = self.stream.peek(&mut one).await;
        }
    }

    /// Like [`RawConn::wait_for_bytes`], and logs the head that arrived
    /// (peeked, so it stays unread).
    pub async fn peek_head(&mut self) -> Option<RawRequest> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = self.stream.peek(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            if let Some(end) = find(&chunk[..n], b"\r\n\r\n") {
                let head = chunk[..end + 4].to_vec();
                return Some(self.record(&head));
            }
            if n == chunk.len() {
                return None;
            }
            tokio::task::yield_now().await;
        }
    }

    fn record(&mut self, head: &[u8]) -> RawRequest {
        self.served += 1;
        let head = String::from_utf8_lossy(head).into_owned();
        let mut words = head.split(' ');
        let req = RawRequest {
            conn: self.id,
            nth: self.served,
            method: words.next().unwrap_or_default().to_string(),
            target: words.next().unwrap_or_default().to_string(),
            head,
        };
        self.log.lock().unwrap().push(req.clone());
        req
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A raw TCP upstream running one script per connection.
#[derive(Clone)]
pub struct RawUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<RawRequest>>>,
    conns: Arc<AtomicUsize>,
}

impl RawUpstream {
    pub async fn spawn<F, Fut>(script: F) -> Self
    where
        F: Fn(RawConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Self {
            addr: listener.local_addr().unwrap(),
            log: Arc::default(),
            conns: Arc::default(),
        };
        let (log, conns) = (up.log.clone(), up.conns.clone());
        let script = Arc::new(script);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let id = conns.fetch_add(1, Ordering::SeqCst) + 1;
                let conn = RawConn {
                    stream,
                    buf: Vec::new(),
                    id,
                    served: 0,
                    log: log.clone(),
                };
                tokio::spawn(script(conn));
            }
        });
        up
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head read so far, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.log.lock().unwrap().clone()
    }

    /// How many connections the gateway opened.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// `200 OK` with a keep-alive friendly `Content-Length` body.
pub fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl TestGateway {
    /// An emulator and a gateway whose `default` upstream is `url`, with
    /// `routes_and_tables` appended to the base config.
    pub async fn spawn_for_url(url: &str, routes_and_tables: &str) -> Self {
        let emu = Arc::new(spawn_emulator().await);
        let addr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .expect("http://ip:port");
        let up = Upstream {
            addr: Some(addr),
            ..Default::default()
        };
        let toml = base_toml(&emu, &up, routes_and_tables);
        Self::spawn_with(emu, up, &toml).await
    }
}

/// Sends `request` on a fresh connection and returns everything the gateway
/// wrote back until it closed (or 10 s passed).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// A TCP relay in front of `target` that models network latency on the one
/// thing that matters for stale keep-alive connections: the upstream's FIN
/// reaches the gateway `fin_delay` late. A request the gateway sends in that
/// window reaches a server that has already closed, and is reset, as across
/// a real network when a keep-alive timer fires while the request is in
/// flight. Returns the relay's address.
pub async fn spawn_late_fin_relay(
    target: SocketAddr,
    fin_delay: std::time::Duration,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(up) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let (closed_tx, mut closed_rx) = tokio::sync::watch::channel(false);
                // Upstream → gateway; on the upstream's EOF, hold the FIN back.
                let to_down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                    let _ = closed_tx.send(true);
                    tokio::time::sleep(fin_delay).await;
                    let _ = down_w.shutdown().await;
                    down_w
                });
                // Gateway → upstream; bytes that arrive after the upstream
                // closed end the connection at once (a reset).
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    tokio::select! {
                        r = down_r.read(&mut chunk) => match r {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if *closed_rx.borrow() {
                                    to_down.abort();
                                    return;
                                }
                                if up_w.write_all(&chunk[..n]).await.is_err() {
                                    to_down.abort();
                                    return;
                                }
                            }
                        },
                        _ = closed_rx.changed() => {}
                    }
                }
                let _ = up_w.shutdown().await;
                let _ = to_down.await;
            });
        }
    });
    addr
}

/// Reads and discards until the peer closes `s`; false if it is still open
/// after `within`.
pub async fn closed_within(s: &mut TcpStream, within: std::time::Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

//! A 101 turns a connection into an unjudged byte tunnel, so the gateway
//! tunnels only a WebSocket handshake the client asked for and the upstream
//! accepted correctly. Every other 101 is a 502 and no tunnel: raw TCP
//! upstreams answer each bad shape, and a probe the client sends after the
//! answer must never reach the upstream.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::support::*;

const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Bytes a tunnel would carry, and that are no HTTP request (so the gateway
/// cannot forward them as one: it answers 400 and closes).
const PROBE: &str = "TUNNEL-PROBE\r\n\r\n";

/// A valid WebSocket handshake request (plus `extra` header lines).
fn ws_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// An upstream that answers every request head with `answer(head)` and then
/// logs whatever else arrives on the connection (tunnelled bytes show up as
/// a "request" starting with the probe).
async fn answering(answer: Answer) -> RawUpstream {
    RawUpstream::spawn(move |mut c| async move {
        while let Some(req) = c.next_head().await {
            c.write(answer(&req).as_bytes()).await;
        }
    })
    .await
}

/// A correct acceptance of the client's handshake.
fn accepting(req: &RawRequest) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_for(req)
    )
}

/// Sends `request`, reads the gateway's answer head, then sends a probe as a
/// tunnel would carry it, and reads until the gateway closes. Returns the
/// status of the first answer and all text read.
async fn handshake_then_probe(gw: &TestGateway, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(gw.handle.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the answer head (and whatever body came with it).
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let _ = s.write_all(PROBE.as_bytes()).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    (status, String::from_utf8_lossy(&got).into_owned())
}

fn probes_seen(up: &RawUpstream) -> usize {
    up.requests()
        .iter()
        .filter(|r| r.head.starts_with("TUNNEL-PROBE"))
        .count()
}

fn accept_for(req: &RawRequest) -> String {
    derive_accept_key(req.header("sec-websocket-key").unwrap_or("").as_bytes())
}

#[tokio::test]
async fn a_correct_websocket_handshake_is_tunnelled() {
    // The control: with a correct 101 the probe does travel the tunnel, so
    // the refusals below are what the gateway decided, not the harness.
    let up = answering(accepting).await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let (status, text) = handshake_then_probe(&gw, &ws_request("")).await;
    assert_eq!(status, 101, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{text}"
    );
    assert_eq!(probes_seen(&up), 1, "{:?}", up.requests());
    let seen = &up.requests()[0];
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("sec-websocket-key"), Some(KEY));
}

/// Upstream answers that are not a correct acceptance of the client's key.
type Answer = fn(&RawRequest) -> String;

const BAD_ANSWERS: &[(&str, Answer)] = &[
    ("bare 101", |_| {
        "HTTP/1.1 101 Switching Protocols\r\n\r\n".into()
    }),
    ("no accept", |_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .into()
    }),
    ("wrong accept", |_| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(b"another key entirely")
        )
    }),
    ("accept of the raw key", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            req.header("sec-websocket-key").unwrap_or("")
        )
    }),
    ("empty accept", |_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: \r\n\r\n"
            .into()
    }),
    ("two accepts", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {a}\r\nSec-WebSocket-Accept: {a}\r\n\r\n",
            a = accept_for(req)
        )
    }),
    ("other protocol", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(req)
        )
    }),
    ("two protocols", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(req)
        )
    }),
    ("no upgrade header", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(req)
        )
    }),
    ("no connection upgrade", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(req)
        )
    }),
    ("no connection header", |req| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(req)
        )
    }),
];

#[tokio::test]
async fn an_incorrect_101_is_a_502_and_never_a_tunnel() {
    for (name, answer) in BAD_ANSWERS {
        let up = answering(*answer).await;
        let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
        let (status, text) = handshake_then_probe(&gw, &ws_request("")).await;
        assert_eq!(status, 502, "{name}: {text}");
        assert!(
            !text.contains(" 101 "),
            "{name}: a 101 reached the client: {text}"
        );
        assert_eq!(probes_seen(&up), 0, "{name}: bytes were tunnelled");
        // The gateway keeps serving, and the upstream connection that said
        // 101 is not used again.
        let conns = up.connections();
        let (status, _) = gw.raw(&raw_get("/after", "")).await;
        assert_eq!(status, 502, "{name}: this upstream answers 101 to anything");
        assert!(
            up.connections() > conns,
            "{name}: the 101 connection was reused"
        );
    }
}

/// Client requests that are not a valid WebSocket handshake.
fn bad_requests() -> Vec<(&'static str, String)> {
    vec![
        ("plain GET", raw_get_keep("/ws", "")),
        ("no Connection: upgrade", {
            ws_request("").replace("Connection: Upgrade\r\n", "")
        }),
        (
            "no Upgrade header",
            ws_request("").replace("Upgrade: websocket\r\n", ""),
        ),
        ("no key", {
            ws_request("").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "")
        }),
        ("key not base64", {
            ws_request("").replace(KEY, "not base64 at all!!!!!!!")
        }),
        (
            "key of 15 bytes",
            ws_request("").replace(KEY, "dGhlIHNhbXBsZSBub25j"),
        ),
        (
            "key of 17 bytes",
            ws_request("").replace(KEY, "dGhlIHNhbXBsZSBub25jZSE="),
        ),
        (
            "two keys",
            ws_request(&format!("Sec-WebSocket-Key: {KEY}\r\n")),
        ),
        (
            "no version",
            ws_request("").replace("Sec-WebSocket-Version: 13\r\n", ""),
        ),
        (
            "version 8",
            ws_request("").replace("Version: 13", "Version: 8"),
        ),
        ("two versions", ws_request("Sec-WebSocket-Version: 13\r\n")),
        ("h2c", {
            "GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
                .to_string()
        }),
        (
            "other protocol",
            ws_request("").replace("Upgrade: websocket", "Upgrade: tls/1.3"),
        ),
        ("two protocols", {
            ws_request("").replace("Upgrade: websocket", "Upgrade: websocket, h2c")
        }),
        ("POST", ws_request("").replace("GET /ws", "POST /ws")),
        ("HTTP/1.0", ws_request("").replace("HTTP/1.1", "HTTP/1.0")),
        ("with a body", ws_request("Content-Length: 5\r\n") + "hello"),
    ]
}

fn raw_get_keep(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\n{extra}\r\n")
}

#[tokio::test]
async fn a_101_to_anything_but_a_valid_handshake_is_a_502() {
    // The upstream says a well-formed 101 (accepting whatever key came, or
    // none) to every request: only the request's shape can stop the tunnel.
    let up = answering(accepting).await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    for (name, request) in bad_requests() {
        let before = probes_seen(&up);
        let (status, text) = handshake_then_probe(&gw, &request).await;
        assert_eq!(status, 502, "{name}: {text}");
        assert_eq!(probes_seen(&up), before, "{name}: bytes were tunnelled");
        if let Some(seen) = up.requests().iter().rev().find(|r| r.target == "/ws") {
            // Nothing asked the upstream to switch protocols.
            assert_eq!(seen.header("upgrade"), None, "{name}: {}", seen.head);
        }
    }
}

#[tokio::test]
async fn http2_requests_never_tunnel() {
    // HTTP/2 has no Upgrade, and extended CONNECT is not offered: a 101
    // from the upstream to an HTTP/2 request is a 502.
    let up = answering(accepting).await;
    let gw = TestGateway::spawn_for_url(&up.url(), PUBLIC_ALL).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    for extra in [
        vec![],
        vec![("sec-websocket-key", KEY), ("sec-websocket-version", "13")],
    ] {
        let mut req = h2.get(gw.url("/ws"));
        for (k, v) in &extra {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 502, "{extra:?}");
    }
    // Nothing reached the upstream asking for an upgrade.
    assert!(up.requests().iter().all(|r| r.header("upgrade").is_none()));

    // Extended CONNECT (RFC 8441) is not offered, and a plain HTTP/2
    // CONNECT is refused before anything is forwarded.
    let tcp = TcpStream::connect(gw.handle.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender.ready().await.unwrap();
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri("gw.test:443")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 405);
    assert!(up.requests().iter().all(|r| r.method != "CONNECT"));
}

#[tokio::test]
async fn websocket_tunnels_count_against_max_connections() {
    // A tunnel outlives its connection's task: it holds a connection slot of
    // its own, so tunnels cannot grow past max_connections (here 5, one
    // slot of which the connection asking for a tunnel needs itself; the
    // harness may hold an idle keep-alive connection too).
    let up = answering(accepting).await;
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let addr = up.url().strip_prefix("http://").unwrap().parse().unwrap();
    let upstream = Upstream {
        addr: Some(addr),
        ..Default::default()
    };
    let toml = base_toml(&emu, &upstream, PUBLIC_ALL).replacen(
        "[server]\n",
        "[server]\nmax_connections = 5\n",
        1,
    );
    let gw = TestGateway::spawn_with(emu, upstream, &toml).await;
    let mut open = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(gw.handle.addr).await.unwrap();
        s.write_all(ws_request("").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        statuses.push(text.split(' ').nth(1).unwrap_or("").to_owned());
        open.push(s);
    }
    let tunnels = statuses.iter().filter(|s| *s == "101").count();
    assert!(
        statuses[0] == "101" && (1..=4).contains(&tunnels),
        "{statuses:?}"
    );
    // Refused (503), or not even accepted while every slot is taken.
    assert_ne!(
        statuses.last().map(String::as_str),
        Some("101"),
        "{statuses:?}"
    );
    // Closing a tunnel gives its slot back.
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(gw.handle.addr).await.unwrap();
        s.write_all(ws_request("").as_bytes()).await.unwrap();
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        if String::from_utf8_lossy(&chunk[..n]).starts_with("HTTP/1.1 101") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots were not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

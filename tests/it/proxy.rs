use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;

use crate::support::*;

const PUBLIC_ALL: &str = "[[routes]]\npath = \"/**\"\naccess = \"public\"\n";

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    let (status, text) = gw
        .raw(&raw_get("/hop", "Connection: close, X-Private-Hop\r\nX-Private-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-Kept: yes\r\n"))
        .await;
    assert_eq!(status, 200);
    let h = gw.upstream.last().headers;
    for gone in ["x-private-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(!h.contains_key(gone), "{gone} reached the upstream");
    }
    assert_eq!(h["x-kept"], "yes");
    let lower = text.to_ascii_lowercase();
    assert!(
        !lower.contains("x-upstream-private"),
        "a Connection-nominated response header leaked:\n{text}"
    );
    assert!(!lower.contains("keep-alive: timeout"), "{text}");
}

#[tokio::test]
async fn forwarded_headers_believed_only_from_trusted_proxies() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    let (status, _) = gw
        .raw(&raw_get("/f", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nForwarded: for=203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nX-Request-Id: spoofed\r\n"))
        .await;
    assert_eq!(status, 200);
    let h = gw.upstream.last().headers;
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "gw.test");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert!(!h.contains_key("forwarded"));
    let rid = h["x-request-id"].to_str().unwrap();
    assert_ne!(rid, "spoofed");
    assert_eq!(rid.len(), 32);

    let gw = TestGateway::spawn_editing(PUBLIC_ALL, |toml| {
        toml.replace("[admin]", "trusted_proxies = [\"127.0.0.1/32\"]\n[admin]")
    })
    .await;
    let (_, text) = gw
        .raw(&raw_get("/f", "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example\r\nX-Request-Id: from-proxy\r\n"))
        .await;
    let h = gw.upstream.last().headers;
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    // Host routes judge by `Host`; the app must see that same host, even
    // when a trusted proxy (which may pass a client's header along) says
    // otherwise.
    assert_eq!(h["x-forwarded-host"], "gw.test");
    assert_eq!(h["x-real-ip"], "203.0.113.9");
    assert_eq!(h["x-request-id"], "from-proxy");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-request-id: from-proxy")
    );
    // The same for `Forwarded`: a trusted proxy's chain goes on, but not
    // with a `host=` the request was not judged by.
    gw.raw(&raw_get("/f", "Forwarded: for=203.0.113.9;proto=https\r\n"))
        .await;
    assert_eq!(
        gw.upstream.last().headers["forwarded"],
        "for=203.0.113.9;proto=https"
    );
    for forwarded in [
        "for=203.0.113.9;host=admin.example",
        "for=203.0.113.9, for=198.51.100.1;HOST=\"admin.example\"",
    ] {
        gw.raw(&raw_get("/f", &format!("Forwarded: {forwarded}\r\n")))
            .await;
        let h = gw.upstream.last().headers;
        assert!(!h.contains_key("forwarded"), "{forwarded}: {h:?}");
        assert_eq!(h["x-forwarded-host"], "gw.test");
    }
}

#[tokio::test]
async fn host_is_rewritten_unless_preserved() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    gw.get("/h")
        .header("host", "app.example")
        .send()
        .await
        .unwrap();
    let h = gw.upstream.last().headers;
    assert_eq!(h["host"], gw.upstream.addr.unwrap().to_string());
    assert_eq!(h["x-forwarded-host"], "app.example");

    let gw = TestGateway::spawn_editing(PUBLIC_ALL, |toml| {
        toml.replace(
            "response_header_timeout = \"2s\"",
            "response_header_timeout = \"2s\"\npreserve_host = true",
        )
    })
    .await;
    gw.get("/h")
        .header("host", "app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(gw.upstream.last().headers["host"], "app.example");
    // `Connection: host` may not take the judged Host away (the upstream
    // would get its own name from the URL instead).
    gw.raw("GET /h HTTP/1.1\r\nHost: app.example\r\nConnection: host, close\r\n\r\n")
        .await;
    assert_eq!(gw.upstream.last().headers["host"], "app.example");
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504_without_internals() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = base_toml(
        &emu,
        &up,
        &format!(
            "[upstreams.dead]\nurl = \"http://{dead}\"\n[[routes]]\npath = \"/dead/**\"\naccess = \"public\"\nupstream = \"dead\"\n{PUBLIC_ALL}"
        ),
    );
    let gw = TestGateway::spawn_with(emu, up, &toml).await;
    let r = gw.get("/dead/x").send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("127.0.0.1") && !body.to_lowercase().contains("connect"),
        "{body}"
    );
    let r = gw.get("/__slow").send().await.unwrap();
    assert_eq!(r.status(), 504);
    let body = r.text().await.unwrap();
    assert!(!body.contains("127.0.0.1"), "{body}");
    // The gateway keeps serving.
    assert_eq!(gw.get("/ok").send().await.unwrap().status(), 200);
    let metrics = gw
        .client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portcullis_upstream_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_upstream_errors_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn named_upstreams_and_strip_prefix() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let billing = spawn_upstream().await;
    let toml = base_toml(
        &emu,
        &up,
        &format!(
            "[upstreams.billing]\nurl = \"{}\"\n[[routes]]\npath = \"/api/**\"\naccess = \"public\"\nupstream = \"billing\"\nstrip_prefix = \"/api\"\n{PUBLIC_ALL}",
            billing.url()
        ),
    );
    let gw = TestGateway::spawn_with(emu, up, &toml).await;
    gw.get("/api/v1/items?x=1").send().await.unwrap();
    assert_eq!(billing.last().target, "/v1/items?x=1");
    gw.get("/api").send().await.unwrap();
    assert_eq!(billing.last().target, "/");
    gw.get("/other").send().await.unwrap();
    assert_eq!(gw.upstream.last().target, "/other");
    assert_eq!(billing.count(), 2);
}

#[tokio::test]
async fn upstream_set_cookie_passes_through() {
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    let r = gw.get("/__setcookie").send().await.unwrap();
    assert_eq!(r.headers()["set-cookie"], "app=1; Path=/");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_without_buffering() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let token = gw.session("U-up", json!({}));
    const CHUNK: usize = 1 << 20;
    const TOTAL_CHUNKS: usize = 256; // 256 MiB
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let req = gw
        .client
        .post(gw.url("/__upload"))
        .bearer_auth(&token)
        .body(body)
        .send();
    let send = tokio::spawn(req);
    let chunk = bytes::Bytes::from(vec![7u8; CHUNK]);
    tx.send(Ok(chunk.clone())).await.unwrap();
    // The upstream sees the first chunk while the client still holds back the rest.
    tokio::time::timeout(Duration::from_secs(20), gw.upstream.first_chunk.notified())
        .await
        .expect("the first chunk reached the upstream before the body was complete");
    let rss_before = rss_kib();
    for _ in 1..TOTAL_CHUNKS {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    drop(tx);
    let resp = send.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 64,
        "memory grew by {grown_mib} MiB while streaming 256 MiB"
    );
    assert_eq!(gw.upstream.last().body_len, CHUNK * TOTAL_CHUNKS);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn websocket_upgrade_through_an_authenticated_route() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let token = gw.session("U-ws", json!({}));
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/__ws", gw.handle.addr)
        .into_client_request()
        .unwrap();
    // Unauthenticated upgrade attempts are refused.
    assert!(tokio_tungstenite::connect_async(req.clone()).await.is_err());
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade through the gateway");
    assert_eq!(resp.status(), 101);
    ws.send("hello".into()).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(msg.into_text().unwrap().as_str(), "hello");
    assert_eq!(gw.upstream.last().headers["x-auth-user-id"], "U-ws");
}

/// A request without a host (HTTP/1.0 without `Host`, an empty `Host`)
/// would skip every `host` route for a laxer one: refused when routes
/// depend on the host, served when none does.
#[tokio::test]
async fn a_request_without_a_host_is_refused_when_routes_depend_on_it() {
    let gw = TestGateway::spawn(
        "[[routes]]\nhost = \"admin.test\"\npath = \"/**\"\nroles = [\"admin\"]\n\
         [[routes]]\npath = \"/**\"\naccess = \"public\"\n",
    )
    .await;
    for req in [
        "GET /x HTTP/1.0\r\n\r\n",
        "GET /x HTTP/1.0\r\nHost:\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
    ] {
        let (status, text) = gw.raw(req).await;
        assert_eq!(status, 400, "{req:?}: {text}");
    }
    let (status, _) = gw
        .raw("GET /x HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 401);
    let (status, _) = gw.raw(&raw_get("/x", "")).await;
    assert_eq!(status, 200);
    assert_eq!(gw.upstream.count(), 1, "only the request with a host");

    let plain = TestGateway::spawn(PUBLIC_ALL).await;
    let (status, text) = plain.raw("GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{text}");
}

/// With `forward_token = "authorization"` the header is the gateway's: a
/// client's own never reaches the app, on a public route or signed in.
#[tokio::test]
async fn a_clients_authorization_never_passes_for_the_forwarded_token() {
    let gw = TestGateway::spawn(
        "[identity]\nforward_token = \"authorization\"\n\
         [[routes]]\npath = \"/public/**\"\naccess = \"public\"\n\
         [[routes]]\npath = \"/**\"\n",
    )
    .await;
    let r = gw
        .get("/public/x")
        .header("authorization", "Bearer forged.forged.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !gw.upstream.last().headers.contains_key("authorization"),
        "the client's header reached the app"
    );
    let r = gw
        .get("/public/x")
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!gw.upstream.last().headers.contains_key("authorization"));
    // Signed in: the verified session JWT, and only it.
    let token = gw.session("U-1", json!({}));
    let r = gw
        .get("/app")
        .header("cookie", format!("DS={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = gw.upstream.last().headers;
    assert_eq!(h["authorization"], format!("Bearer {token}"));
    assert_eq!(h.get_all("authorization").iter().count(), 1);
}

/// `X-Forwarded-For` from a trusted proxy is read from the right: an entry
/// with a port is that address, and an entry that is no address ends the
/// walk (what is left of it is the untrusted client's own text).
#[tokio::test]
async fn forwarded_for_entries_with_ports_or_garbage_are_read_safely() {
    let gw = TestGateway::spawn_editing(PUBLIC_ALL, |toml| {
        toml.replace(
            "[admin]",
            "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n[admin]",
        )
    })
    .await;
    for (xff, client) in [
        ("6.6.6.6, 203.0.113.7:5555", "203.0.113.7"),
        ("6.6.6.6, [2001:db8::7]:443", "2001:db8::7"),
        ("6.6.6.6, [2001:db8::8]", "2001:db8::8"),
        ("6.6.6.6, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        ("6.6.6.6, unknown", "127.0.0.1"),
        ("6.6.6.6, unknown, 10.1.2.3", "10.1.2.3"),
        ("6.6.6.6, 203.0.113.5 extra", "127.0.0.1"),
    ] {
        let (status, _) = gw
            .raw(&raw_get("/f", &format!("X-Forwarded-For: {xff}\r\n")))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            gw.upstream.last().headers["x-real-ip"],
            client,
            "X-Forwarded-For: {xff}"
        );
    }
}

/// A 405 says which methods the route takes (`Allow`, RFC 9110).
#[tokio::test]
async fn a_405_names_the_allowed_methods() {
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/ro/**\"\naccess = \"public\"\nmethods = [\"GET\"]\n\
         [[routes]]\npath = \"/w/**\"\naccess = \"public\"\nmethods = [\"POST\", \"PUT\"]\n",
    )
    .await;
    let r = gw.client.post(gw.url("/ro/x")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = gw.get("/w/x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST, PUT");
    let r = gw
        .client
        .post(gw.url("/_auth/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = gw.client.put(gw.url("/_auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().contains_key("allow"));
    let r = gw
        .client
        .post(gw.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn a_slow_upload_is_not_an_upstream_timeout() {
    // response_header_timeout (2 s here) is the upstream's time to answer
    // once it has the whole request: an upload that takes longer is no 504.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::spawn(PUBLIC_ALL).await;
    let mut s = tokio::net::TcpStream::connect(gw.handle.addr)
        .await
        .unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 8\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for b in b"12345678" {
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(gw.upstream.last().body_len, 8);
}

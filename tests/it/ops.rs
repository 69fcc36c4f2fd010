use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    assert_eq!(
        gw.client
            .get(gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        gw.client
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let token = gw.session("U", json!({}));
    gw.get("/x").bearer_auth(&token).send().await.unwrap();
    gw.get("/x").send().await.unwrap();
    let m = gw
        .client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "portcullis_requests_total{decision=\"allowed\",route=\"/**\",status=\"2xx\"} 1",
        "portcullis_requests_total{decision=\"unauthenticated\",route=\"/**\",status=\"4xx\"} 1",
        "portcullis_request_duration_seconds_bucket",
        "portcullis_in_flight_requests",
        "portcullis_jwks_fetches_total",
        // Exported before their first event, at 0.
        "portcullis_refresh_total{result=\"ok\"} 0",
        "portcullis_refresh_total{result=\"unavailable\"} 0",
        "portcullis_config_reloads_total{result=\"error\"} 0",
        "portcullis_upstream_errors_total{kind=\"connect\"} 0",
        "portcullis_store_errors_total{op=\"ping\"} 0",
        "portcullis_jwks_fetches_total{result=\"error\"} 0",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
}

#[tokio::test]
async fn not_ready_until_keys_are_loaded() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n")
        .replace(&emu.base_url(), &format!("http://{dead}"));
    let handle = portcullis::app::start(config(&toml), Default::default())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/readyz", handle.admin_addr.unwrap());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 503);
    // Without keys nothing validates: fail closed, as an outage (503), not a logout.
    let token = session_token(&emu, "U", json!({}));
    let r = client
        .get(format!("http://{}/x", handle.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    handle.shutdown().await;
}

/// A pod started while Descope's key endpoint fails becomes ready within
/// seconds of it recovering (the no-keys backoff), not at the next
/// `jwks_refresh` (5 minutes by default).
#[tokio::test]
async fn ready_within_seconds_after_the_key_endpoint_recovers() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let keys_path = format!("/v2/keys/{}", emu.project_id());
    let control = reqwest::Client::new();
    // The emulator's HTTP fault API: every key fetch answers 503.
    let r = control
        .post(format!("{}/emulator/faults", emu.base_url()))
        .json(&json!({"path": keys_path, "type": "status", "status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let toml = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n");
    assert!(!toml.contains("jwks_refresh"), "the default 5 min schedule");
    let handle = portcullis::app::start(config(&toml), Default::default())
        .await
        .unwrap();
    let readyz = format!("http://{}/readyz", handle.admin_addr.unwrap());
    let status = |c: &reqwest::Client| {
        let req = c.get(&readyz).send();
        async move { req.await.unwrap().status().as_u16() }
    };
    // Two failed fetches (the start-up one and a retry): still not ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while emu.calls(&keys_path) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry after a failed key fetch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&control).await, 503);
    let r = control
        .delete(format!("{}/emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cleared = tokio::time::Instant::now();
    loop {
        if status(&control).await == 200 {
            break;
        }
        assert!(
            cleared.elapsed() < Duration::from_secs(10),
            "not ready 10 s after the key endpoint recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = session_token(&emu, "U", json!({}));
    let r = control
        .get(format!("http://{}/x", handle.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    handle.shutdown().await;
}

#[tokio::test]
async fn oversize_headers_get_431_and_slow_headers_are_cut_off() {
    let gw = TestGateway::spawn_editing(
        "[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
        |toml| {
            toml.replace(
                "[admin]",
                "header_read_timeout = \"1s\"\nmax_header_bytes = 8192\n[admin]",
            )
        },
    )
    .await;
    let big = "a".repeat(20_000);
    let (status, _) = gw.raw(&raw_get("/x", &format!("X-Big: {big}\r\n"))).await;
    assert_eq!(status, 431);
    // Slowloris: a request head that never completes is closed by the gateway.
    let mut s = tokio::net::TcpStream::connect(gw.handle.addr)
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the gateway kept a slowloris connection open");
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    let in_flight = tokio::spawn(gw.get("/__hold").send());
    // Wait until the upstream has the request.
    for _ in 0..3000 {
        if gw.upstream.count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gw.upstream.count(), 1);
    let state = gw.handle.state.clone();
    let admin = gw.admin_url("/readyz");
    let release = gw.upstream.release.clone();
    let addr = gw.handle.addr;
    let shutdown = tokio::spawn(gw.handle.shutdown());
    for _ in 0..3000 {
        if !state.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!state.is_ready(), "readiness drops while draining");
    let _ = admin;
    release.notify_one();
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the in-flight request finished during shutdown"
    );
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn hot_reload_flips_decisions_and_survives_bad_files() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    let v1 = base_toml(
        &emu,
        &up,
        "[[routes]]\npath = \"/**\"\nroles = [\"admin\"]\n",
    );
    std::fs::write(&path, &v1).unwrap();
    init();
    let handle = portcullis::app::start(
        portcullis::config::Config::load(&path).unwrap(),
        portcullis::app::StartOptions {
            config_path: Some(path.clone()),
            signals: false,
        },
    )
    .await
    .unwrap();
    wait_ready(&handle).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/x", handle.addr);
    let token = session_token(&emu, "U-r", json!({"roles": ["viewer"]}));
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    std::fs::write(
        &path,
        v1.replace("roles = [\"admin\"]", "roles = [\"viewer\"]"),
    )
    .unwrap();
    let mut flipped = false;
    for _ in 0..100 {
        if client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            flipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flipped, "the decision flipped after the file changed");

    std::fs::write(&path, "this is [not toml").unwrap();
    let metrics_url = format!("http://{}/metrics", handle.admin_addr.unwrap());
    let mut counted = false;
    for _ in 0..100 {
        let m = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains("portcullis_config_reloads_total{result=\"error\"} 1") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted, "the failed reload was counted");
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the last good config keeps serving"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_and_stalled_bodies_are_closed() {
    // An upstream that sends headers and one chunk, then stalls forever.
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stall_addr = stall.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = stall.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                    )
                    .await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
        }
    });
    let gw = TestGateway::spawn_editing(
        &format!(
            "[upstreams.stall]\nurl = \"http://{stall_addr}\"\nbody_idle_timeout = \"1s\"\n\
             [[routes]]\npath = \"/stall/**\"\naccess = \"public\"\nupstream = \"stall\"\n\
             [[routes]]\npath = \"/**\"\naccess = \"public\"\n"
        ),
        |toml| toml.replace("[admin]", "idle_timeout = \"1s\"\n[admin]"),
    )
    .await;

    // A stalled body ends (with an error) instead of holding the client forever;
    // the bytes that did arrive were streamed first.
    let resp = gw.get("/stall/x").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), resp.bytes()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the stalled body was cut off: {body:?}"
    );

    // An idle keep-alive connection is closed by the gateway.
    let mut s = tokio::net::TcpStream::connect(gw.handle.addr)
        .await
        .unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut s, Duration::from_secs(20)).await,
        "the idle connection was closed"
    );
}

/// An HTTP/2 client that opens a connection and then sends nothing is closed
/// by the idle timeout, like an HTTP/1 one: the server's own keep-alive
/// PINGs used to count as traffic and held such connections for ever.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    // Longer than the 30 s PING interval the server used to have.
    let gw = TestGateway::spawn_editing(
        "[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
        |toml| toml.replace("[admin]", "idle_timeout = \"32s\"\n[admin]"),
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.handle.addr)
        .await
        .unwrap();
    // The h2c prior-knowledge preface and an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(45)).await,
        "the idle HTTP/2 connection was not closed"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "closed by the idle timeout, not at once: {:?}",
        started.elapsed()
    );
}

/// Signed-out browsers' own `/favicon.ico` fetches get the gateway's icon,
/// not 401/redirect noise, and never reach the app; signed-in users and a
/// public route get the app's.
#[tokio::test]
async fn signed_out_favicon_requests_get_the_built_in_icon() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    for accept in ["image/avif,image/webp,*/*", "text/html"] {
        let r = gw
            .get("/favicon.ico")
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/x-icon");
        assert_eq!(r.bytes().await.unwrap().as_ref(), portcullis::favicon::ICON);
    }
    assert_eq!(
        gw.upstream.count(),
        0,
        "the app never saw a signed-out request"
    );
    // Other paths and methods are unchanged.
    assert_eq!(gw.get("/favicon.png").send().await.unwrap().status(), 401);
    let post = gw.client.post(gw.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(post.status(), 401);
    // Signed in: the app's own icon.
    let token = gw.session("U", json!({}));
    let r = gw
        .get("/favicon.ico")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json",
        "the upstream's answer"
    );
    assert_eq!(gw.upstream.last().target, "/favicon.ico");

    // A public route for it: the app serves everyone.
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/favicon.ico\"\naccess = \"public\"\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    let r = gw.get("/favicon.ico").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.count(), 1);
}

/// The admin port closes connections that send nothing, so idle
/// connections cannot pile up there (it shares the process's file
/// descriptors with the traffic listener).
#[tokio::test]
async fn the_admin_listener_closes_silent_connections() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\n").await;
    let admin = gw.handle.admin_addr.unwrap();
    let mut silent = tokio::net::TcpStream::connect(admin).await.unwrap();
    // A head that never ends.
    let mut slow = tokio::net::TcpStream::connect(admin).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for s in [&mut silent, &mut slow] {
        assert!(
            closed_within(s, Duration::from_secs(25)).await,
            "the admin connection was not closed"
        );
    }
    // The port still answers.
    let r = gw
        .client
        .get(gw.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

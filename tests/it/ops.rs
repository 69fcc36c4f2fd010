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
    // Without keys nothing validates: fail closed.
    let token = session_token(&emu, "U", json!({}));
    let r = client
        .get(format!("http://{}/x", handle.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    handle.shutdown().await;
}

#[tokio::test]
async fn oversize_headers_get_431_and_slow_headers_are_cut_off() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let toml = base_toml(
        &emu,
        &up,
        "[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
    )
    .replace(
        "[admin]",
        "header_read_timeout = \"1s\"\nmax_header_bytes = 8192\n[admin]",
    );
    let gw = TestGateway::spawn_with(emu, up, &toml).await;
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
    for _ in 0..500 {
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
    for _ in 0..500 {
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

//! TLS on the traffic listener: rustls with HTTP/1.1 and HTTP/2 via ALPN,
//! certificates generated in the test and reloaded when the files change.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn write_cert(dir: &std::path::Path) -> reqwest::Certificate {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap()
}

#[tokio::test]
async fn tls_with_alpn_h2_and_http11_and_certificate_reload() {
    init();
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca1 = write_cert(dir.path());
    let cfg_path = dir.path().join("portcullis.toml");
    let toml = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n").replace(
        "[admin]",
        "tls = { cert_file = \"tls.crt\", key_file = \"tls.key\" }\n[admin]",
    );
    std::fs::write(&cfg_path, &toml).unwrap();
    let handle = portcullis::app::start(
        portcullis::config::Config::load(&cfg_path).unwrap(),
        portcullis::app::StartOptions {
            config_path: Some(cfg_path.clone()),
            signals: false,
        },
    )
    .await
    .unwrap();
    wait_ready(&handle).await;
    let url = format!("https://localhost:{}/x", handle.addr.port());
    let token = session_token(&emu, "U-tls", json!({}));
    let client = |ca: &reqwest::Certificate, h2: bool| {
        let b = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .resolve("localhost", handle.addr);
        if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        }
        .build()
        .unwrap()
    };
    let r = client(&ca1, true)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let r = client(&ca1, false)
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(up.last().headers["x-forwarded-proto"], "https");

    // cert-manager style rotation: new files, same names; new handshakes use them.
    let ca2 = write_cert(dir.path());
    let mut rotated = false;
    for _ in 0..100 {
        if let Ok(r) = client(&ca2, false)
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
        {
            if r.status() == 200 {
                rotated = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the rotated certificate was served");
    handle.shutdown().await;
}

#[tokio::test]
async fn plain_listener_speaks_h2c() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c.get(gw.url("/h2c")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(gw.upstream.last().target, "/h2c");
}

//! The reload contract: what a reload applies, what it refuses (naming the
//! key), and what it keeps (upstream connection pools, the running state).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis::app::{GatewayHandle, StartOptions};
use portcullis::config::Config;
use serde_json::json;

use crate::support::*;

struct Reloading {
    handle: GatewayHandle,
    emu: Arc<portcullis_emulator::Emulator>,
    up: Upstream,
    path: std::path::PathBuf,
    base: String,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Reloading {
    async fn start(extra: &str) -> Self {
        Self::start_mapped(extra, |t| t).await
    }

    /// [`Self::start`] with the config text passed through `map` first.
    async fn start_mapped(extra: &str, map: impl FnOnce(String) -> String) -> Self {
        let emu = Arc::new(spawn_emulator().await);
        let up = spawn_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        let base = map(base_toml(&emu, &up, extra));
        std::fs::write(&path, &base).unwrap();
        init();
        let handle = portcullis::app::start(
            Config::load(&path).unwrap(),
            StartOptions {
                config_path: Some(path.clone()),
                signals: false,
            },
        )
        .await
        .unwrap();
        wait_ready(&handle).await;
        Self {
            handle,
            emu,
            up,
            path,
            base,
            _dir: dir,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.handle.addr)
    }

    async fn reloads(&self, result: &str) -> u64 {
        let m = self
            .client
            .get(format!(
                "http://{}/metrics",
                self.handle.admin_addr.unwrap()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let needle = format!("portcullis_config_reloads_total{{result=\"{result}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Writes `text` and waits (bounded) until the watcher counted one more
    /// reload with `result`.
    async fn write_and_wait(&self, text: &str, result: &str) {
        let before = self.reloads(result).await;
        std::fs::write(&self.path, text).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.reloads(result).await <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {result} reload was counted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const ROUTES: &str = "[[routes]]\npath = \"/**\"\nroles = [\"admin\"]\n";

#[tokio::test]
async fn a_reload_that_changes_a_restart_only_key_is_refused_whole() {
    let gw = Reloading::start(ROUTES).await;
    let token = session_token(&gw.emu, "U-v", json!({"roles": ["viewer"]}));
    let status = || gw.client.get(gw.url("/x")).bearer_auth(&token).send();
    assert_eq!(status().await.unwrap().status(), 403);
    // Each of these, changed together with a route rule, must leave the
    // running configuration as it is: nothing half-applied.
    let changes = [
        ("jwks_min_refetch = \"1s\"", "jwks_min_refetch = \"3s\""),
        (
            "jwks_min_refetch = \"1s\"",
            "jwks_min_refetch = \"1s\"\ntimeout = \"2s\"",
        ),
        (
            "jwks_min_refetch = \"1s\"",
            "jwks_min_refetch = \"1s\"\njwks_refresh = \"1m\"",
        ),
        (
            "jwks_min_refetch = \"1s\"",
            "jwks_min_refetch = \"1s\"\nauth_management_key = \"K2abcdefghijklmnopqrstuvwxyz0123456789\"",
        ),
        ("[admin]", "[session]\nrefresh_reuse = \"30s\"\n[admin]"),
        (
            "public_url = \"http://gw.test\"",
            "public_url = \"http://gw.test\"\nmax_connections = 77",
        ),
        (
            "listen = \"127.0.0.1:0\"\n\n[descope]",
            "listen = \"127.0.0.1:1\"\n\n[descope]",
        ),
    ];
    for (from, to) in changes {
        assert!(gw.base.contains(from), "{from}");
        let text = gw
            .base
            .replace(from, to)
            .replace("roles = [\"admin\"]", "roles = [\"viewer\"]");
        gw.write_and_wait(&text, "error").await;
        assert_eq!(
            status().await.unwrap().status(),
            403,
            "{to}: the route change must not apply either"
        );
    }
    // The same route change alone applies.
    gw.write_and_wait(
        &gw.base
            .replace("roles = [\"admin\"]", "roles = [\"viewer\"]"),
        "ok",
    )
    .await;
    assert_eq!(status().await.unwrap().status(), 200);
    gw.handle.shutdown().await;
}

#[test]
fn restart_only_changes_are_named() {
    let emu_free = |extra: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://gw.test\"\n{extra}\n[descope]\nproject_id = \"P2testproject0000000000000000\"\nbase_url = \"http://127.0.0.1:1\"\n[upstreams.default]\nurl = \"http://127.0.0.1:2\"\n"
        )
    };
    let a = config(&emu_free(""));
    let b = config(
        &emu_free("max_connections = 5\n[session]\nrefresh_reuse = \"1m\"").replace(
            "base_url = \"http://127.0.0.1:1\"",
            "base_url = \"http://127.0.0.1:1\"\ntimeout = \"1s\"",
        ),
    );
    assert_eq!(
        a.restart_only().changed(&b.restart_only()),
        [
            "server.max_connections",
            "descope.timeout",
            "session.refresh_reuse"
        ]
    );
    assert!(a.restart_only().changed(&a.restart_only()).is_empty());
}

#[tokio::test]
async fn assertion_settings_apply_on_reload() {
    let gw = Reloading::start("[[routes]]\npath = \"/**\"\n").await;
    let token = session_token(&gw.emu, "U-a", json!({}));
    let get = |p: &str| gw.client.get(gw.url(p)).bearer_auth(&token).send();
    assert_eq!(get("/_auth/jwks.json").await.unwrap().status(), 404);
    get("/x").await.unwrap();
    assert!(!gw.up.last().headers.contains_key("x-auth-assertion"));
    let on = gw.base.replace(
        "[[routes]]",
        "[identity.assertion]\nenabled = true\n[[routes]]",
    );
    gw.write_and_wait(&on, "ok").await;
    assert_eq!(get("/_auth/jwks.json").await.unwrap().status(), 200);
    get("/x").await.unwrap();
    let headers = gw.up.last().headers;
    let assertion = headers
        .iter()
        .find(|(k, _)| k.as_str().contains("assertion"))
        .map(|(k, _)| k.as_str().to_string());
    assert!(
        assertion.is_some(),
        "an assertion header after the reload: {headers:?}"
    );
    gw.handle.shutdown().await;
}

#[tokio::test]
async fn upstream_connection_pools_survive_a_reload_of_other_settings() {
    let gw = Reloading::start("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(client.get(gw.url("/a")).send().await.unwrap().status(), 200);
    }
    let before = gw.up.connections.load(Ordering::SeqCst);
    assert_eq!(before, 1, "sequential requests share one pooled connection");
    let changed = gw.base.replace(
        "access = \"public\"",
        "access = \"public\"\n[[routes]]\npath = \"/never\"\naccess = \"deny\"",
    );
    gw.write_and_wait(&changed, "ok").await;
    for _ in 0..3 {
        assert_eq!(client.get(gw.url("/a")).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        gw.up.connections.load(Ordering::SeqCst),
        before,
        "the reload kept the upstream's keep-alive connection"
    );
    // A change of the upstream itself builds a new pool.
    let moved = changed.replace(
        "response_header_timeout = \"2s\"",
        "response_header_timeout = \"3s\"",
    );
    gw.write_and_wait(&moved, "ok").await;
    client.get(gw.url("/a")).send().await.unwrap();
    assert_eq!(gw.up.connections.load(Ordering::SeqCst), before + 1);
    gw.handle.shutdown().await;
}

#[tokio::test]
async fn a_generation_that_cannot_be_built_is_not_installed() {
    let gw = Reloading::start(
        "[login]\nmethods = [\"magiclink\"]\n[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    let mut broken = Config::load(&gw.path).unwrap();
    // Validation refuses such a secret; a generation built from one anyway
    // must fail rather than serve with login turned off.
    broken.session.secret = Some(portcullis::config::Secret::new("short".into()));
    assert!(gw.handle.state.install(broken).is_err());
    let page = gw
        .client
        .get(gw.url("/_auth/login"))
        .header("host", "gw.test")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        gw.handle.state.current().login.is_some(),
        "login still served"
    );
    gw.handle.shutdown().await;
}

#[test]
fn a_store_change_needs_a_restart() {
    let with = |store: &str| {
        config(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://gw.test\"\n[descope]\nproject_id = \"P2testproject0000000000000000\"\nbase_url = \"http://127.0.0.1:1\"\n[upstreams.default]\nurl = \"http://127.0.0.1:2\"\n{store}"
        ))
    };
    let none = with("");
    let one = with("[store]\nredis_url = \"redis://127.0.0.1:1\"\n");
    let slower = with("[store]\nredis_url = \"redis://127.0.0.1:1\"\ntimeout = \"1s\"\n");
    assert_eq!(none.restart_only().changed(&one.restart_only()), ["store"]);
    assert_eq!(
        one.restart_only().changed(&slower.restart_only()),
        ["store"]
    );
    assert!(one.restart_only().changed(&one.restart_only()).is_empty());
}

/// A TLS server config presenting `cert`.
fn server_config(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Arc<rustls::ServerConfig> {
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    )
}

/// A TLS upstream whose certificate can be replaced while it runs; every
/// answer closes its connection, so each request is a new handshake.
async fn tls_upstream(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> (
    std::net::SocketAddr,
    Arc<std::sync::Mutex<Arc<rustls::ServerConfig>>>,
) {
    let current = Arc::new(std::sync::Mutex::new(server_config(cert)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::clone(&current);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let cfg = Arc::clone(&served.lock().unwrap());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, current)
}

#[tokio::test]
async fn a_ca_bundle_rotated_in_place_is_applied_by_the_reload() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (addr, serving) = tls_upstream(&first).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, first.cert.pem()).unwrap();
    let extra = format!(
        "[upstreams.tls]\nurl = \"https://localhost:{}\"\nca_file = \"{}\"\n\
         [[routes]]\npath = \"/tls/**\"\naccess = \"public\"\nupstream = \"tls\"\n",
        addr.port(),
        ca.display()
    );
    let gw = Reloading::start(&extra).await;
    let get = || gw.client.get(gw.url("/tls/x")).send();
    assert_eq!(get().await.unwrap().status(), 200);
    // The upstream moves to a certificate from another CA; the bundle file
    // is replaced at the same path, and the config reloaded.
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    *serving.lock().unwrap() = server_config(&second);
    assert_eq!(
        get().await.unwrap().status(),
        502,
        "the old bundle no longer fits"
    );
    std::fs::write(&ca, second.cert.pem()).unwrap();
    gw.write_and_wait(&format!("{}\n# reloaded\n", gw.base), "ok")
        .await;
    assert_eq!(
        get().await.unwrap().status(),
        200,
        "the reload applied the new bundle"
    );
    gw.handle.shutdown().await;
}

#[tokio::test]
async fn a_restart_only_ca_bundle_replaced_in_place_is_refused_not_ignored() {
    // descope.ca_file is read once, when the Descope client is built: a
    // bundle replaced at the same path cannot be applied by a reload, so the
    // reload says so (error) instead of reporting success.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("descope-ca.pem");
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&ca, first.cert.pem()).unwrap();
    let ca_line = format!("jwks_min_refetch = \"1s\"\nca_file = \"{}\"", ca.display());
    let gw = Reloading::start_mapped(ROUTES, |t| {
        t.replacen("jwks_min_refetch = \"1s\"", &ca_line, 1)
    })
    .await;
    assert!(gw.base.contains("ca_file"));
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&ca, second.cert.pem()).unwrap();
    gw.write_and_wait(&format!("{}\n# touched\n", gw.base), "error")
        .await;
    assert_eq!(gw.reloads("ok").await, 0);
    gw.handle.shutdown().await;
}

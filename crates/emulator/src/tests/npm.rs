//! `--web-components`: the two npm packages served CDN-style, nothing else.

use std::path::Path;

use super::{PID, client, spawn_with};
use crate::{EmulatorOptions, WebComponents};

fn package(root: &Path, name: &str, version: &str, files: &[(&str, &str)]) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("package.json"),
        format!(r#"{{"name": "{name}", "version": "{version}"}}"#),
    )
    .expect("write");
    for (path, body) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, body).expect("write");
    }
}

/// The status of a GET sent byte for byte as written.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn serves_the_installed_packages_and_nothing_outside_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nm = dir.path().join("node_modules");
    package(
        &nm,
        "@descope/web-component",
        "4.3.2",
        &[(
            "dist/index.js",
            "customElements.define('descope-wc', class {});",
        )],
    );
    package(
        &nm,
        "@descope/web-components-ui",
        "3.14.1",
        &[
            ("dist/umd/index.js", "self.DescopeUI = {};"),
            ("dist/umd/1408.js.LICENSE.txt", "MIT"),
            ("dist/umd/theme.css", "a{}"),
        ],
    );
    package(
        &nm,
        "@descope/web-js-sdk",
        "1.53.0",
        &[("dist/index.umd.js", "x")],
    );
    std::fs::write(dir.path().join("secret.txt"), "not for the web").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        dir.path().join("secret.txt"),
        nm.join("@descope/web-components-ui/dist/umd/escape.js"),
    )
    .expect("symlink");
    let wc = WebComponents::load(&nm).expect("loads");
    assert_eq!(wc.version("@descope/web-components-ui"), Some("3.14.1"));
    let emu = spawn_with(EmulatorOptions {
        project_id: PID.to_owned(),
        web_components: Some(nm.clone()),
        ..EmulatorOptions::default()
    })
    .await;
    let c = client();
    let get = |path: &str| c.get(format!("{}/npm/{path}", emu.base_url())).send();
    for (path, content_type, body) in [
        (
            "@descope/web-component@4.3.2/dist/index.js",
            "text/javascript; charset=utf-8",
            "customElements",
        ),
        (
            "@descope/web-components-ui@3.14.1/dist/umd/index.js",
            "text/javascript; charset=utf-8",
            "DescopeUI",
        ),
        (
            "@descope/web-components-ui@3.14.1/dist/umd/1408.js.LICENSE.txt",
            "text/plain; charset=utf-8",
            "MIT",
        ),
        (
            "@descope/web-components-ui@3.14.1/dist/umd/theme.css",
            "text/css; charset=utf-8",
            "a{}",
        ),
    ] {
        let resp = get(path).await.expect("reachable");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        assert!(resp.text().await.expect("text").contains(body), "{path}");
    }
    // The config the flow pages serve names the installed UI version.
    let config: serde_json::Value = c
        .get(format!(
            "{}/pages/{PID}/v2-beta/config.json",
            emu.base_url()
        ))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["componentsVersion"], "3.14.1");
    for refused in [
        "@descope/web-component@4.3.1/dist/index.js",
        "@descope/web-component@latest/dist/index.js",
        "@descope/web-js-sdk@1.53.0/dist/index.umd.js",
        "@descope/web-component@4.3.2/../web-js-sdk/package.json",
        "@descope/web-component@4.3.2/dist/../../../../secret.txt",
        "@descope/web-component@4.3.2/dist/%2e%2e/package.json",
        "@descope/web-component@4.3.2/dist",
        "@descope/web-component@4.3.2/",
        "@descope/web-component@4.3.2//dist/index.js",
        "@descope/web-component@4.3.2/.hidden",
        "@descope/web-components-ui@3.14.1/dist/umd/escape.js",
        "@descope/web-component@4.3.2/dist\\index.js",
        "@descope/web-component",
    ] {
        // Raw, so that no client normalises `..` or `%2e` first.
        assert_eq!(
            raw_get(emu.addr(), &format!("/npm/{refused}")).await,
            404,
            "{refused}"
        );
    }
    assert_eq!(
        raw_get(
            emu.addr(),
            "/npm/@descope/web-component@4.3.2/dist/index.js"
        )
        .await,
        200
    );
    let post = c
        .post(format!(
            "{}/npm/@descope/web-component@4.3.2/dist/index.js",
            emu.base_url()
        ))
        .send()
        .await
        .expect("reachable");
    assert_eq!(post.status(), 404);
    emu.shutdown().await;

    // Without the packages the emulator refuses to start, naming the fix.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let err = WebComponents::load(&empty).expect_err("nothing installed");
    assert!(err.to_string().contains("npm install"), "{err}");
}

#[tokio::test]
async fn without_web_components_nothing_is_served_under_npm() {
    let emu = super::spawn(crate::KeyType::Ec).await;
    let resp = client()
        .get(format!(
            "{}/npm/@descope/web-component@4.3.2/dist/index.js",
            emu.base_url()
        ))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 404);
    emu.shutdown().await;
}

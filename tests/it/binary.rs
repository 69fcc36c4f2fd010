//! The built binary, as operators run it: start, serve, SIGHUP reload, SIGTERM drain, exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn run_serves_reloads_on_sighup_and_exits_cleanly_on_sigterm() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    // A fixed free port for the child: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = base_toml(
        &emu,
        &up,
        "[[routes]]\npath = \"/**\"\nroles = [\"admin\"]\n",
    )
    .replace(
        "listen = \"127.0.0.1:0\"\npublic_url",
        &format!("listen = \"127.0.0.1:{port}\"\npublic_url"),
    )
    .replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"\"",
    );
    std::fs::write(&path, &toml).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "-c"])
            .arg(&path)
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait for the "listening" log line.
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("startup log")
            .expect("child alive");
        if line.contains("portcullis listening") {
            // Plain values, not Rust debug output (`Some(..)`).
            assert!(line.contains("\"admin\":\"off\""), "{line}");
            assert!(!line.contains("Some(") && !line.contains("None"), "{line}");
            break;
        }
    }
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/x");
    let token = session_token(&emu, "U-bin", json!({"roles": ["viewer"]}));
    let mut status = 0;
    for _ in 0..100 {
        status = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status != 401 {
            break; // keys loaded
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 403);
    // Access log lines are JSON and never carry the token.
    std::fs::write(
        &path,
        toml.replace("roles = [\"admin\"]", "roles = [\"viewer\"]"),
    )
    .unwrap();
    let pid = child.0.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let mut ok = false;
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
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ok {
        let mut seen = Vec::new();
        while let Ok(l) = rx.try_recv() {
            seen.push(l);
        }
        let _ = child.0.kill();
        panic!("not reloaded; log:\n{}", seen.join("\n"));
    }
    // A SIGHUP re-validates even when the text is unchanged (a rotated
    // `*_file` secret is read again): one more "reloaded" line.
    let mut lines = Vec::new();
    let reloaded = |l: &str| l.contains("configuration reloaded");
    let wait_reloaded = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
                               lines: &mut Vec<String>| {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a reload log line")
                .expect("child alive");
            let done = reloaded(&line);
            lines.push(line);
            if done {
                break;
            }
        }
    };
    wait_reloaded(&mut rx, &mut lines).await;
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    wait_reloaded(&mut rx, &mut lines).await;
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        lines.push(l);
    }
    let code = child.0.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    let access: Vec<&String> = lines.iter().filter(|l| l.contains("\"request\"")).collect();
    assert!(
        !access.is_empty() || lines.iter().any(|l| l.contains("draining")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(&token)),
        "a token reached the log"
    );
}

/// Kills the child when the test ends early (a failed assertion must not
/// leave a gateway running that holds the test runner's output open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the binary to its exit (killed after 30 s) and returns its status and stderr.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env_remove("PORTCULLIS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("portcullis {args:?} did not exit although its port is taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// The one error line, checked: names the address and the setting, says
/// what is wrong and the fix, and does not repeat the OS error.
fn assert_bind_error(status: std::process::ExitStatus, stderr: &str, addr: &str, setting: &str) {
    assert!(!status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    assert!(
        line.starts_with(&format!(
            "error: cannot listen on {addr} ({setting}): the address is already in use"
        )),
        "{line}"
    );
    assert!(line.contains("; fix: stop that process"), "{line}");
    assert!(!line.contains("os error"), "{line}");
    assert_eq!(stderr.matches("already in use").count(), 1, "{stderr}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_port_in_use_is_one_line_naming_the_key_and_the_fix() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    let base = base_toml(&emu, &up, "[[routes]]\npath = \"/**\"\n");
    for (key, toml) in [
        (
            "server.listen",
            base.replacen(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"{addr}\""),
                1,
            ),
        ),
        (
            "admin.listen",
            base.replace(
                "[admin]\nlisten = \"127.0.0.1:0\"",
                &format!("[admin]\nlisten = \"{addr}\""),
            ),
        ),
    ] {
        assert!(toml.contains(&addr));
        std::fs::write(&path, toml).unwrap();
        let (status, stderr) = run_to_exit(&["run", "-c", path.to_str().unwrap()]);
        assert_bind_error(status, &stderr, &addr, key);
        assert!(
            stderr.contains(&format!("set {key} to a free address")),
            "{stderr}"
        );
    }
    drop(taken);
}

#[tokio::test]
async fn dev_names_the_flag_of_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for flag in [
        "--emulator-listen",
        "--demo-listen",
        "--listen",
        "--admin-listen",
    ] {
        let free = |f: &str| {
            if f == flag {
                addr.clone()
            } else {
                format!("127.0.0.1:{}", free_port())
            }
        };
        let listen = free("--listen");
        let emulator = free("--emulator-listen");
        let demo = free("--demo-listen");
        let admin = free("--admin-listen");
        let (status, stderr) = run_to_exit(&[
            "dev",
            "--listen",
            &listen,
            "--emulator-listen",
            &emulator,
            "--demo-listen",
            &demo,
            "--admin-listen",
            &admin,
        ]);
        assert_bind_error(status, &stderr, &addr, &format!("portcullis dev {flag}"));
        assert!(
            stderr.contains(&format!("pass {flag} with a free address")),
            "{stderr}"
        );
    }
    drop(taken);
}

/// Starts the binary on free ports with `stderr` as its log sink, a public
/// catch-all route, JSON logs; returns (child, gateway URL, admin URL).
async fn spawn_logging(
    dir: &std::path::Path,
    stderr: Stdio,
) -> (KillOnDrop, String, String, Upstream) {
    let emu = spawn_emulator().await;
    let up = spawn_upstream().await;
    let (port, admin) = (free_port(), free_port());
    let toml = base_toml(
        &emu,
        &up,
        "[[routes]]\npath = \"/**\"\naccess = \"public\"\n",
    )
    .replace(
        "listen = \"127.0.0.1:0\"\npublic_url",
        &format!("listen = \"127.0.0.1:{port}\"\npublic_url"),
    )
    .replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"127.0.0.1:{admin}\""),
    );
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, &toml).unwrap();
    let child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "-c"])
            .arg(&path)
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let admin = format!("http://127.0.0.1:{admin}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep the emulator alive as long as the child uses it.
    std::mem::forget(emu);
    (child, format!("http://127.0.0.1:{port}"), admin, up)
}

/// `n` GETs on `concurrency` keep-alive connections; every one must answer 200.
async fn hammer(url: &str, n: usize, concurrency: usize) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let per = n / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{url}/load/{i}"));
            tokio::spawn(async move {
                for _ in 0..per {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A log sink that stops reading (a stalled pipe) never stalls a request:
/// lines beyond the bounded queue are dropped and counted.
#[tokio::test]
async fn a_stalled_log_sink_never_stalls_requests() {
    let dir = tempfile::tempdir().unwrap();
    // A pipe nobody reads: full after 64 KiB, then every write would block.
    let (child, url, admin, up) = spawn_logging(dir.path(), Stdio::piped()).await;
    // Access lines are ~250 bytes: well past the buffer.
    let n = portcullis::telemetry::QUEUE_BYTES / 150 + 4_000;
    tokio::time::timeout(Duration::from_secs(60), hammer(&url, n, 16))
        .await
        .expect("requests kept flowing while the log sink was stalled");
    assert!(up.count() >= n / 16 * 16);
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the dropped-lines counter is exported");
    assert!(dropped > 0, "{dropped} lines dropped");
    drop(child);
}

/// Lines still queued at SIGTERM are written before the process exits.
#[tokio::test]
async fn access_lines_are_flushed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let (mut child, url, _admin, _up) = spawn_logging(dir.path(), Stdio::from(file)).await;
    hammer(&url, 400, 8).await;
    let pid = child.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = child.0.wait().unwrap();
        std::mem::forget(child);
        s
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let access = text
        .lines()
        .filter(|l| l.contains("\"message\":\"request\"") && l.contains("/load/"))
        .count();
    assert_eq!(access, 400, "every access line reached the sink");
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
}

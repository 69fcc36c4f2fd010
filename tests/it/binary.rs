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
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut lines = Vec::new();
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

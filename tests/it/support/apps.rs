//! Real frameworks as upstreams: the apps under `tests/upstreams/` (Express,
//! Flask on Werkzeug, stdlib wsgiref and http.server), spawned on a free
//! loopback port. Each answers every request with JSON saying what it
//! routed: `route` (the handler that matched), `method`, `path` as the
//! framework sees it, and the headers it received.
//!
//! The apps are installed by `tests/upstreams/install` (scripts/test runs it;
//! this harness runs it too when a part is missing). When `node` or `python3`
//! is not on the machine at all, [`App::spawn`] prints a loud notice and
//! returns `None` so the test can skip — unless `PORTCULLIS_REQUIRE_APPS` is
//! set (scripts/test sets it), where a missing tool fails the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// Express 4 with method-override (`tests/upstreams/express/app.js`).
    Express,
    /// Flask on Werkzeug's threaded HTTP/1.1 server, with a method-override
    /// middleware (`app.py flask`).
    Flask,
    /// A plain WSGI app on the standard library's wsgiref (`app.py wsgiref`).
    Wsgiref,
    /// A hand-written stdlib `http.server` handler with HTTP/1.1 keep-alive
    /// that never reads request bodies (`app.py http`).
    HttpServer,
}

impl Framework {
    fn tool(self) -> &'static str {
        match self {
            Self::Express => "node",
            Self::Flask | Self::Wsgiref | Self::HttpServer => "python3",
        }
    }

    fn install_part(self) -> Option<&'static str> {
        match self {
            Self::Express => Some("express"),
            Self::Flask => Some("python"),
            // Standard library only.
            Self::Wsgiref | Self::HttpServer => None,
        }
    }

    fn installed(self, root: &Path) -> bool {
        match self {
            Self::Express => root
                .join("express/node_modules/.portcullis-stamp")
                .is_file(),
            Self::Flask => root.join("python/.venv/.requirements.stamp").is_file(),
            Self::Wsgiref | Self::HttpServer => true,
        }
    }

    fn command(self, root: &Path) -> Command {
        match self {
            Self::Express => {
                let mut c = Command::new("node");
                c.arg(root.join("express/app.js"));
                c
            }
            Self::Flask => {
                let mut c = Command::new(root.join("python/.venv/bin/python"));
                c.arg(root.join("python/app.py")).arg("flask");
                c
            }
            Self::Wsgiref | Self::HttpServer => {
                let mut c = Command::new("python3");
                c.arg(root.join("python/app.py"))
                    .arg(if self == Self::Wsgiref {
                        "wsgiref"
                    } else {
                        "http"
                    });
                c
            }
        }
    }
}

fn upstreams_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstreams")
}

fn on_path(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Serialises installs within this test process (the script itself holds a
/// file lock against other processes).
static INSTALL: Mutex<()> = Mutex::new(());

fn ensure_installed(fw: Framework, root: &Path) {
    let Some(part) = fw.install_part() else {
        return;
    };
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if fw.installed(root) {
        return;
    }
    let status = std::process::Command::new(root.join("install"))
        .arg(part)
        .status()
        .expect("tests/upstreams/install runs");
    assert!(
        status.success(),
        "tests/upstreams/install {part} failed ({status})"
    );
}

/// A running framework app; killed when dropped.
pub struct App {
    pub framework: Framework,
    pub addr: SocketAddr,
    _child: Child,
}

impl App {
    /// Starts `fw` with default settings; `None` (after a loud notice) when
    /// its runtime is not installed on this machine.
    pub async fn spawn(fw: Framework) -> Option<Self> {
        Self::spawn_with_env(fw, &[]).await
    }

    /// Starts `fw` with extra environment variables (for Express:
    /// `KEEP_ALIVE_TIMEOUT_MS`).
    pub async fn spawn_with_env(fw: Framework, env: &[(&str, &str)]) -> Option<Self> {
        let tool = fw.tool();
        if !on_path(tool) {
            if std::env::var_os("PORTCULLIS_REQUIRE_APPS").is_some() {
                panic!("{tool} is required for the {fw:?} upstream but is not installed");
            }
            eprintln!(
                "\n!!!!!!!! SKIPPED: `{tool}` is not installed, so the {fw:?} upstream \
                 cannot run. scripts/test installs it; run that to run this test. !!!!!!!!\n"
            );
            return None;
        }
        let root = upstreams_dir();
        ensure_installed(fw, &root);
        let mut cmd = fw.command(&root);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{fw:?} app starts: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{fw:?} app printed no port within 30 s"))
            .expect("read the app's stdout")
            .unwrap_or_else(|| panic!("{fw:?} app exited before printing its port"));
        let port: u16 = first
            .strip_prefix("port=")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{fw:?} app printed {first:?}, not port=<n>"));
        // Keep draining stdout so the app never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self {
            framework: fw,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _child: child,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The JSON an app answered with (panics on anything else, with the text).
pub async fn app_echo(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the app did not answer with its JSON echo ({status}): {text}"))
}

/// `fw` behind a gateway whose `default` upstream it is, with
/// `routes_and_tables` appended to the base config; `None` when the
/// framework cannot run here (see [`App::spawn`]). Keep the `App` alive for
/// as long as the gateway is used.
pub async fn gateway_in_front_of(
    fw: Framework,
    routes_and_tables: &str,
) -> Option<(App, super::TestGateway)> {
    let app = App::spawn(fw).await?;
    let gw = super::TestGateway::spawn_for_url(&app.url(), routes_and_tables).await;
    Some((app, gw))
}

//! A real OpenID Provider for the OIDC tests: panva/oidc-provider under
//! `tests/upstreams/oidc-provider/provider.mjs`, spawned on a free loopback
//! port, plus a small cookie-keeping client that signs in through its
//! built-in login and consent forms the way a browser would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running provider; killed when dropped.
pub struct Op {
    pub issuer: String,
    _child: Child,
    client: reqwest::Client,
}

static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Op {
    /// Starts the provider with `env` (see provider.mjs); `None` when node
    /// is missing outside CI.
    pub async fn spawn(env: &[(&str, &str)]) -> Option<Self> {
        let ok = std::process::Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("PORTCULLIS_REQUIRE_APPS").is_none(),
                "node is required for the OpenID Provider tests"
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: node is not installed; scripts/test installs it. !!!!!!!!\n"
            );
            return None;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstreams");
        {
            let _g = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
            if !root
                .join("oidc-provider/node_modules/.portcullis-stamp")
                .is_file()
            {
                let s = std::process::Command::new(root.join("install"))
                    .arg("oidc")
                    .status()
                    .expect("tests/upstreams/install runs");
                assert!(s.success(), "tests/upstreams/install oidc failed");
            }
        }
        // A node that has not printed its port within 30 s (seen once on a
        // loaded machine) is killed and started again, up to three times.
        let mut started = None;
        for _ in 0..3 {
            let mut cmd = Command::new("node");
            cmd.arg(root.join("oidc-provider/provider.mjs"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("node starts the provider");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
                Ok(line) => {
                    let first = line
                        .expect("read stdout")
                        .expect("the provider printed its port");
                    started = Some((child, lines, first));
                    break;
                }
                Err(_) => {
                    eprintln!("the OpenID Provider printed no port within 30 s; starting it again");
                    let _ = child.kill().await;
                }
            }
        }
        let (child, mut lines, first) = started.expect("the provider started within three tries");
        let port: u16 = first
            .strip_prefix("port=")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("provider printed {first:?}"));
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self {
            issuer: format!("http://127.0.0.1:{port}"),
            _child: child,
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        })
    }

    /// Calls by endpoint (`/token refresh_token`, `/token/introspection`, …).
    pub async fn counts(&self) -> HashMap<String, u64> {
        let v: Value = self
            .client
            .get(format!("{}/__counts", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect()
    }

    pub async fn count(&self, key: &str) -> u64 {
        self.counts().await.get(key).copied().unwrap_or(0)
    }

    /// The next `times` calls to `path` answer `status` with `error`.
    pub async fn fault(&self, path: &str, status: u16, times: u32, error: &str) {
        let r = self
            .client
            .post(format!("{}/__fault", self.issuer))
            .query(&[
                ("path", path),
                ("status", &status.to_string()),
                ("times", &times.to_string()),
                ("error", error),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    pub async fn set_roles(&self, account: &str, roles: &[&str]) {
        let r = self
            .client
            .post(format!("{}/__roles", self.issuer))
            .query(&[("account", account), ("roles", &roles.join(","))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

/// A browser: cookies per host, redirects followed by hand, the gateway's
/// public origin (`http://gw.test`) sent to the gateway's address.
pub struct Browser {
    pub gateway: SocketAddr,
    client: reqwest::Client,
    jars: HashMap<String, Vec<(String, String)>>,
}

/// Where a sign-in stopped.
pub struct Landed {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Browser {
    pub fn new(gateway: SocketAddr) -> Self {
        Self {
            gateway,
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jars: HashMap::new(),
        }
    }

    fn host(url: &url::Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        )
    }

    /// The cookie header this browser sends to `url`'s host.
    pub fn cookie_header(&self, url: &url::Url) -> String {
        self.jars
            .get(&Self::host(url))
            .map(|j| {
                j.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// This browser's cookie `name` for the gateway.
    pub fn gateway_cookie(&self, name: &str) -> Option<String> {
        self.jars
            .get("gw.test:80")?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn set_gateway_cookies(&mut self, cookies: Vec<(String, String)>) {
        self.jars.insert("gw.test:80".into(), cookies);
    }

    pub fn gateway_cookies(&self) -> Vec<(String, String)> {
        self.jars.get("gw.test:80").cloned().unwrap_or_default()
    }

    fn store(&mut self, url: &url::Url, headers: &reqwest::header::HeaderMap) {
        let jar = self.jars.entry(Self::host(url)).or_default();
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let Ok(c) = cookie::Cookie::parse(v.to_owned()) else {
                continue;
            };
            jar.retain(|(k, _)| k != c.name());
            let expired = c.max_age().is_some_and(|a| a.is_zero() || a.is_negative())
                || c.expires_datetime()
                    .is_some_and(|t| t.unix_timestamp() < 1_000_000_000);
            if !expired && !c.value().is_empty() {
                jar.push((c.name().to_owned(), c.value().to_owned()));
            }
        }
    }

    /// One request: to the gateway's address when `url` is on gw.test.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<Vec<(String, String)>>,
        extra: &[(&str, &str)],
    ) -> Landed {
        let parsed = url::Url::parse(url).expect("absolute URL");
        let target = if parsed.host_str() == Some("gw.test") {
            let mut t = parsed.clone();
            t.set_host(Some("127.0.0.1")).unwrap();
            t.set_port(Some(self.gateway.port())).unwrap();
            t
        } else {
            parsed.clone()
        };
        let mut req = self
            .client
            .request(method, target.as_str())
            .header("accept", "text/html");
        if parsed.host_str() == Some("gw.test") {
            req = req.header("host", "gw.test");
        }
        let cookies = self.cookie_header(&parsed);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(&f);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.store(&parsed, &headers);
        let body = resp.text().await.unwrap_or_default();
        Landed {
            status,
            url: url.to_owned(),
            body,
            headers,
        }
    }

    /// Follows redirects from `url`, filling the provider's login form as
    /// `account` and confirming its consent form, until a page that is not
    /// a redirect or a provider form (or the gateway's callback answered).
    pub async fn sign_in(&mut self, url: &str, account: &str) -> Landed {
        self.drive(url, account, None).await
    }

    /// Like [`Self::sign_in`], but stops before requesting a URL that
    /// starts with `stop` and returns it (status 0, nothing fetched).
    pub async fn sign_in_until(&mut self, url: &str, account: &str, stop: &str) -> String {
        let landed = self.drive(url, account, Some(stop)).await;
        assert_eq!(
            landed.status, 0,
            "stopped before {stop}: {} {}",
            landed.url, landed.body
        );
        landed.url
    }

    async fn drive(&mut self, url: &str, account: &str, stop: Option<&str>) -> Landed {
        let mut next = (
            reqwest::Method::GET,
            url.to_owned(),
            None::<Vec<(String, String)>>,
        );
        for _ in 0..20 {
            let (m, u, f) = next;
            if let Some(stop) = stop
                && u.starts_with(stop)
            {
                return Landed {
                    status: 0,
                    url: u,
                    body: String::new(),
                    headers: Default::default(),
                };
            }
            let landed = self.send(m, &u, f, &[]).await;
            if (300..400).contains(&landed.status) {
                let loc = landed.headers["location"].to_str().unwrap().to_owned();
                let base = url::Url::parse(&u).unwrap();
                next = (
                    reqwest::Method::GET,
                    base.join(&loc).unwrap().to_string(),
                    None,
                );
                continue;
            }
            let on_op = !u.contains("gw.test");
            if landed.status == 200 && on_op && landed.body.contains("name=\"prompt\"") {
                let base = url::Url::parse(&u).unwrap();
                let action = landed
                    .body
                    .split("action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("the provider's form has an action");
                let action = base
                    .join(&action.replace("&amp;", "&"))
                    .unwrap()
                    .to_string();
                let form = if landed.body.contains("value=\"login\"") {
                    vec![
                        ("prompt".into(), "login".into()),
                        ("login".into(), account.into()),
                        ("password".into(), "any".into()),
                    ]
                } else {
                    vec![("prompt".into(), "consent".into())]
                };
                next = (reqwest::Method::POST, action, Some(form));
                continue;
            }
            return landed;
        }
        panic!("sign-in did not finish within 20 steps");
    }
}

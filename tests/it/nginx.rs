//! Forward-auth behind a real nginx (`auth_request`), as the README documents it:
//! nginx in front of the recording upstream, asking the gateway's `/verify`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> String {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("nginx is not installed: scripts/test installs it (apt-get install nginx)");
}

async fn start_nginx(gateway: std::net::SocketAddr, upstream: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream app {{ server {up}; }}
  server {{
    listen 127.0.0.1:{port};
    location = /_portcullis_verify {{
      internal;
      proxy_pass              http://{gateway}/_auth/verify;
      proxy_pass_request_body off;
      proxy_set_header        Content-Length "";
      proxy_set_header        X-Original-URI $request_uri;
      proxy_set_header        X-Original-Method $request_method;
    }}
    location / {{
      auth_request /_portcullis_verify;
      auth_request_set $auth_user   $upstream_http_x_auth_user_id;
      auth_request_set $auth_roles  $upstream_http_x_auth_roles;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      proxy_set_header X-Auth-User-Id $auth_user;
      proxy_set_header X-Auth-Roles   $auth_roles;
      add_header Set-Cookie $auth_cookie;
      error_page 401 = @login;
      proxy_pass http://app;
    }}
    location @login {{ return 302 /_auth/login?return_to=$request_uri; }}
  }}
}}
"#,
        up = upstream.trim_start_matches("http://"),
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx_bin())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until nginx accepts connections.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Nginx {
                child,
                port,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nginx did not start");
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_app() {
    let gw = TestGateway::spawn(
        "[forward_auth]\nmode = \"nginx\"\n[[routes]]\npath = \"/public/**\"\naccess = \"public\"\n[[routes]]\npath = \"/admin/**\"\nroles = [\"admin\"]\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    let nginx = start_nginx(gw.handle.addr, &gw.upstream.url()).await;
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let c = &gw.client;
    let admin = gw.session("U-admin", json!({"roles": ["admin"]}));
    let user = gw.session("U-user", json!({"roles": ["viewer"]}));

    let r = c
        .get(format!("{base}/admin/x"))
        .header("cookie", format!("DS={admin}"))
        .header("x-auth-user-id", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(
        seen.headers
            .get_all("x-auth-user-id")
            .iter()
            .collect::<Vec<_>>(),
        vec!["U-admin"]
    );
    assert_eq!(seen.headers["x-auth-roles"], "admin");

    let r = c
        .get(format!("{base}/admin/x"))
        .header("cookie", format!("DS={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.get(format!("{base}/admin/x?a=b")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/_auth/login?return_to=/admin/x?a=b"
    );
    // A public route: the spoofed header is overwritten with the empty answer.
    let before = gw.upstream.count();
    let r = c
        .get(format!("{base}/public/x"))
        .header("x-auth-user-id", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.count(), before + 1);
    assert_eq!(
        gw.upstream
            .last()
            .headers
            .get("x-auth-user-id")
            .map(|v| v.to_str().unwrap()),
        Some("")
    );
    // Path tricks are decided on the canonical path.
    let r = c
        .get(format!("{base}/public/..%2f..%2fadmin/x"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
}

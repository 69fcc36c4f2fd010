//! Ways around the gateway: request shapes whose meaning differs between the
//! gateway's decision and what the upstream (or the ingress) acts on.

use serde_json::json;

use crate::support::*;

/// A restrictive host route followed by a public catch-all: the classic shape
/// where any disagreement about the request's host is a bypass.
const HOST_ROUTES: &str = r#"
[[routes]]
host = "admin.test"
path = "/**"
roles = ["admin"]
[[routes]]
path = "/**"
access = "public"
"#;

#[tokio::test]
async fn duplicate_host_header_is_refused() {
    let gw = TestGateway::spawn(HOST_ROUTES).await;
    // The gateway would judge by the first Host, an upstream may serve the last.
    let (status, _) = gw
        .raw("GET /x HTTP/1.1\r\nHost: www.test\r\nHost: admin.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 400);
    // Neither does a Host that is not a bare host[:port].
    for host in [
        "www.test@admin.test",
        "admin.test#.www.test",
        "admin.test/x",
    ] {
        let (status, _) = gw
            .raw(&format!(
                "GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(status, 400, "{host}");
    }
    // Nor an HTTP/1.1 request without any host (it would skip host routes).
    let (status, _) = gw.raw("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(gw.upstream.count(), 0, "nothing reaches the upstream");
}

#[tokio::test]
async fn absolute_form_authority_must_agree_with_host() {
    let gw = TestGateway::spawn(HOST_ROUTES).await;
    // RFC 9112 §3.2.2: a server takes the host from an absolute-form target
    // and ignores Host; the gateway must not judge by a different one.
    let (status, _) = gw
        .raw("GET http://admin.test/x HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 400);
    assert_eq!(gw.upstream.count(), 0);
    // Userinfo in the authority, with or without a Host.
    for req in [
        "GET http://u@admin.test/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET http://u@admin.test/x HTTP/1.1\r\nHost: admin.test\r\nConnection: close\r\n\r\n",
    ] {
        let (status, _) = gw.raw(req).await;
        assert_eq!(status, 400, "{req:?}");
    }
    assert_eq!(gw.upstream.count(), 0);
    // Agreeing authority and Host (any letter case, a port) are fine.
    let (status, _) = gw
        .raw("GET http://WWW.test:80/x HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn nginx_verify_ignores_client_supplied_original_host() {
    let gw = TestGateway::spawn(&format!(
        "[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{HOST_ROUTES}"
    ))
    .await;
    // The README's nginx snippet sets X-Original-URI and -Method only; every
    // other client header reaches the subrequest as the client wrote it.
    let r = gw
        .get("/_auth/verify")
        .header("host", "admin.test")
        .header("x-original-uri", "/secret")
        .header("x-original-host", "www.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn encoded_slash_in_the_hosted_prefix_is_refused() {
    let gw = TestGateway::spawn(
        "[forward_auth]\nmode = \"envoy\"\ntrusted_callers = [\"127.0.0.1/32\"]\n[[routes]]\npath = \"/**\"\n",
    )
    .await;
    for target in ["/_auth%2Fverify/x", "/_auth%2fme", "/_auth/verify%2Fx"] {
        let (status, _) = gw.raw(&raw_get(target, "")).await;
        assert_eq!(status, 400, "{target}");
    }
    // Forward-auth: an encoded slash into the hosted prefix is no free pass.
    let r = gw.get("/_auth/verify/_auth%2Fadmin").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn verify_does_not_wave_through_a_disguised_hosted_prefix() {
    let gw = TestGateway::spawn(
        "[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n[[routes]]\npath = \"/**\"\nroles = [\"admin\"]\n",
    )
    .await;
    let ask = |uri: &'static str| gw.get("/_auth/verify").header("x-original-uri", uri).send();
    // The real hosted endpoints stay reachable (login must work)...
    assert_eq!(ask("/_auth/login?return_to=/").await.unwrap().status(), 200);
    // ...but an ingress routes `/_auth;x/...` to the app: route rules apply.
    assert_eq!(ask("/_auth;x/admin").await.unwrap().status(), 401);
    // nginx mode answers 403 for a refused (encoded-slash) path.
    assert_eq!(ask("/_auth%2Fadmin").await.unwrap().status(), 403);
}

#[tokio::test]
async fn tenant_header_in_another_spelling_is_refused() {
    let gw = TestGateway::spawn(
        r#"
[[routes]]
path = "/th/**"
tenant = "header:X-Tenant-Id"
"#,
    )
    .await;
    let t = gw.session("U-1", json!({"tenants": {"T1": {}}}));
    let ok = gw
        .get("/th/x")
        .bearer_auth(&t)
        .header("x-tenant-id", "T1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // CGI/PHP-style upstreams read X_Tenant_Id as X-Tenant-Id: the gateway
    // checked T1, the app could act on T2.
    let n = gw.upstream.count();
    let (status, _) = gw
        .raw(&raw_get(
            "/th/x",
            &format!("Authorization: Bearer {t}\r\nX-Tenant-Id: T1\r\nX_Tenant_Id: T2\r\n"),
        ))
        .await;
    assert_eq!(status, 403);
    assert_eq!(gw.upstream.count(), n);
}

#[tokio::test]
async fn h2c_upgrade_is_not_passed_on() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    // An upstream that accepts h2c would otherwise hand the client a raw
    // HTTP/2 connection on which no later request is judged by the gateway.
    let (status, _) = gw
        .raw(&raw_get(
            "/healthz",
            "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        ))
        .await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    assert!(seen.headers.get("upgrade").is_none(), "{:?}", seen.headers);
    assert!(seen.headers.get("http2-settings").is_none());
    // A WebSocket upgrade is still passed on (see proxy::websocket_*).
}

#[tokio::test]
async fn transfer_encoding_with_content_length_cannot_smuggle() {
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/pub/**\"\naccess = \"public\"\n[[routes]]\npath = \"/**\"\nroles = [\"admin\"]\n",
    )
    .await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    let req = format!(
        "POST /pub/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
    );
    let (status, _) = gw.raw(&req).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for r in gw.upstream.requests() {
        assert!(
            !r.target.starts_with("/admin"),
            "smuggled: {r:?} (status {status})"
        );
        // Whatever was forwarded carries one framing only.
        assert!(
            r.headers.get("transfer-encoding").is_none()
                || r.headers.get("content-length").is_none()
        );
    }
}

#[tokio::test]
async fn identity_header_with_odd_spelling_never_reaches_upstream() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    for spoof in [
        "X-Auth-User-Id : evil\r\n",
        "X-Auth-User-Id:evil\r\n x-continued: 1\r\n",
        "X-AUTH_USER-ID: evil\r\n",
        "Connection: keep-alive, X-Auth-User-Id\r\nX-Auth-User-Id: evil\r\n",
    ] {
        let n = gw.upstream.count();
        let (status, _) = gw.raw(&raw_get("/x", spoof)).await;
        if gw.upstream.count() > n {
            let seen = gw.upstream.last();
            for (k, v) in &seen.headers {
                assert!(
                    v.as_bytes() != b"evil",
                    "{spoof:?} reached the upstream as {k}: {v:?} (status {status})"
                );
            }
        }
    }
}

#[tokio::test]
async fn get_with_a_body_does_not_reuse_the_upstream_connection() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: gw.test\r\n\r\n";
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let (status, _) = gw.raw(&req).await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.target, "/x");
    assert_eq!(seen.body_len, smuggled.len());
    assert_eq!(seen.headers["connection"], "close");
    // Without a body the pooled connection is kept.
    gw.raw(&raw_get("/y", "")).await;
    assert!(gw.upstream.last().headers.get("connection").is_none());
}

#[tokio::test]
async fn reload_refuses_a_descope_change_it_cannot_apply() {
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
    // The operator moves to another project (and relaxes the route). The
    // validator was built for the old project at start: installing this
    // would keep accepting the old project's tokens while claiming success.
    let v2 = v1
        .replace(PROJECT_ID, "P2otherproject000000000000000")
        .replace("roles = [\"admin\"]", "roles = [\"viewer\"]");
    std::fs::write(&path, v2).unwrap();
    let metrics_url = format!("http://{}/metrics", handle.admin_addr.unwrap());
    let mut refused = false;
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
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the reload was refused and counted");
    let status = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "the last good configuration keeps serving");
}

#[tokio::test]
async fn gateway_cookies_never_reach_the_upstream_in_any_shape() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/**\"\naccess = \"public\"\n").await;
    let (status, _) = gw
        .raw(&raw_get(
            "/x",
            "Cookie: app=1; DS=s; __Host-DS=h\r\nCookie: DS.0=a;DS.1=b ; DSR=r; __Host-DSR.3=c\r\nCookie: portcullis_state_abc=st; __Host-portcullis_state_def=st; app2=2\r\nAuthorization: Bearer not-a-token\r\n",
        ))
        .await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    let cookies: Vec<_> = seen
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies, vec!["app=1; app2=2".to_string()]);
    // The consumed Authorization header is not forwarded either.
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn path_override_headers_never_reach_the_upstream() {
    let gw = TestGateway::spawn("[[routes]]\npath = \"/public/**\"\naccess = \"public\"\n").await;
    let (status, _) = gw
        .raw(&raw_get(
            "/public/x",
            "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Original-URI: /admin\r\nX-Forwarded-Uri: /admin\r\nX-Forwarded-Path: /admin\r\n",
        ))
        .await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    for h in [
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x-forwarded-uri",
        "x-forwarded-path",
    ] {
        assert!(seen.headers.get(h).is_none(), "{h} reached the upstream");
    }
}

#[tokio::test]
async fn method_override_cannot_escape_a_route_method_list() {
    let gw = TestGateway::spawn(
        "[[routes]]\npath = \"/ro/**\"\naccess = \"public\"\nmethods = [\"GET\", \"POST\"]\n[[routes]]\npath = \"/any/**\"\naccess = \"public\"\n",
    )
    .await;
    let post = |path: &str, hdr: Option<(&'static str, &'static str)>| {
        let mut r = gw.client.post(gw.url(path));
        if let Some((k, v)) = hdr {
            r = r.header(k, v);
        }
        r.send()
    };
    assert_eq!(post("/ro/x", None).await.unwrap().status(), 200);
    assert_eq!(
        post("/ro/x", Some(("x-http-method-override", "post")))
            .await
            .unwrap()
            .status(),
        200
    );
    for h in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let r = post("/ro/x", Some((h, "DELETE"))).await.unwrap();
        assert_eq!(r.status(), 405, "{h}");
    }
    // A route without a method list is not affected.
    assert_eq!(
        post("/any/x", Some(("x-http-method-override", "DELETE")))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn verify_judges_method_overrides_too() {
    let gw = TestGateway::spawn(
        "[forward_auth]\nmode = \"nginx\"\ntrusted_callers = [\"127.0.0.1/32\"]\n[[routes]]\npath = \"/ro/**\"\naccess = \"public\"\nmethods = [\"GET\", \"POST\"]\n",
    )
    .await;
    let ask = |override_to: Option<&'static str>| {
        let mut r = gw
            .get("/_auth/verify")
            .header("x-original-uri", "/ro/x")
            .header("x-original-method", "POST");
        if let Some(m) = override_to {
            r = r.header("x-http-method-override", m);
        }
        r.send()
    };
    assert_eq!(ask(None).await.unwrap().status(), 200);
    assert_eq!(ask(Some("DELETE")).await.unwrap().status(), 403);
}

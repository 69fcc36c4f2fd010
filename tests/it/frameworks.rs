//! Real frameworks behind the gateway (Express, Flask/Werkzeug, wsgiref,
//! stdlib http.server; see `support::apps`): each shows what it routed, and
//! the behaviour that is theirs — Node closing idle keep-alive connections
//! — costs users nothing.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"

[[routes]]
path = "/**"
"#;

#[tokio::test]
async fn every_framework_app_echoes_what_it_routed() {
    for fw in [
        Framework::Express,
        Framework::Flask,
        Framework::Wsgiref,
        Framework::HttpServer,
    ] {
        let Some(app) = App::spawn(fw).await else {
            continue;
        };
        let gw = TestGateway::spawn_for_url(&app.url(), ROUTES).await;
        let echo = app_echo(gw.get("/public/a?x=1").send().await.unwrap()).await;
        assert_eq!(echo["route"], "public", "{fw:?}: {echo}");
        assert_eq!(echo["method"], "GET", "{fw:?}: {echo}");
        assert_eq!(echo["path"], "/public/a", "{fw:?}: {echo}");

        // Authenticated: the app gets the verified identity.
        let token = gw.session("U-fw", json!({"roles": ["admin"]}));
        let r = gw
            .client
            .delete(gw.url("/admin/x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let echo = app_echo(r).await;
        assert_eq!(echo["route"], "admin", "{fw:?}: {echo}");
        assert_eq!(echo["method"], "DELETE", "{fw:?}: {echo}");
        let headers = echo["headers"].as_object().expect("headers object");
        let user = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-auth-user-id"))
            .map(|(_, v)| v.clone());
        assert_eq!(user, Some(json!("U-fw")), "{fw:?}: {echo}");

        // Unauthenticated requests never reach the app.
        let r = gw.get("/admin/x").send().await.unwrap();
        assert_eq!(r.status(), 401, "{fw:?}");
    }
}

#[tokio::test]
async fn express_routes_case_insensitively_and_honours_method_override() {
    // What the case and method-override tests build on: Express's own
    // behaviour, straight, without the gateway.
    let Some(app) = App::spawn(Framework::Express).await else {
        return;
    };
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let echo = app_echo(
        c.get(format!("{}/ADMIN/x", app.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["route"], "admin");
    assert_eq!(echo["path"], "/ADMIN/x");
    let echo = app_echo(
        c.post(format!("{}/api/items/7", app.url()))
            .header("X-HTTP-Method-Override", "DELETE")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["route"], "item-delete");
    assert_eq!(echo["original_method"], "POST");
    let echo = app_echo(
        c.post(format!("{}/api/items/7?_method=DELETE", app.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["route"], "item-delete");
}

#[tokio::test]
async fn flask_honours_its_method_override_middleware() {
    let Some((_app, gw)) = gateway_in_front_of(Framework::Flask, ROUTES).await else {
        return;
    };
    let token = gw.session("U-mo", json!({}));
    for (extra_header, query) in [(Some("DELETE"), ""), (None, "?_method=PUT")] {
        let mut req = gw
            .client
            .post(gw.url(&format!("/admin/x{query}")))
            .bearer_auth(&token);
        if let Some(m) = extra_header {
            req = req.header("X-HTTP-Method-Override", m);
        }
        let echo = app_echo(req.send().await.unwrap()).await;
        assert_eq!(echo["original_method"], "POST", "{echo}");
        assert_eq!(
            echo["method"],
            extra_header.unwrap_or("PUT"),
            "the app acts on the override: {echo}"
        );
    }
}

#[tokio::test]
async fn node_closing_idle_keep_alive_connections_costs_users_nothing() {
    // Node closes a kept-alive socket keepAliveTimeout (here 1 ms; Node 20
    // adds 1 s of its own) after its last answer. Across a network its FIN
    // takes a while to arrive; the relay makes that 2 s. Each request below
    // comes 1.2 s after the last answer: Node has closed, the gateway does
    // not know yet, and the request meets a dead connection — the most
    // common 502 in front of Node apps. None of them may become one.
    let env = [("KEEP_ALIVE_TIMEOUT_MS", "1")];
    let Some(app) = App::spawn_with_env(Framework::Express, &env).await else {
        return;
    };
    let relay = spawn_late_fin_relay(app.addr, Duration::from_secs(2)).await;
    let gw = TestGateway::spawn_for_url(&format!("http://{relay}"), ROUTES).await;
    let mut statuses = Vec::new();
    for i in 0..8u64 {
        let method = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"][(i % 5) as usize];
        let r = gw
            .client
            .request(method.parse().unwrap(), gw.url(&format!("/public/ka-{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        let _ = r.bytes().await;
        // The idle gap is the traffic pattern under test, not a wait for
        // anything: longer than Node's timeout, shorter than the FIN's trip.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let bad: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(bad.is_empty(), "users saw {bad:?}");
    let retries = gw
        .client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_upstream_retries_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        retries >= 3,
        "only {retries} requests met a connection Node had closed"
    );
}

#[tokio::test]
async fn werkzeug_and_wsgiref_answer_bodies_on_any_method() {
    // A body on OPTIONS/DELETE reaches WSGI apps and is answered once.
    for fw in [Framework::Flask, Framework::Wsgiref] {
        let Some(app) = App::spawn(fw).await else {
            continue;
        };
        let gw = TestGateway::spawn_for_url(&app.url(), ROUTES).await;
        for method in ["OPTIONS", "DELETE", "POST", "PUT", "PATCH"] {
            let r = gw
                .client
                .request(method.parse().unwrap(), gw.url("/public/b"))
                .body("0123456789")
                .send()
                .await
                .unwrap();
            let echo = app_echo(r).await;
            assert_eq!(echo["method"], method, "{fw:?}: {echo}");
            assert_eq!(echo["body_len"], 10, "{fw:?} {method}: {echo}");
        }
    }
}

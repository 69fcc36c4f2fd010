//! The answer table: every gateway error is a page in the hosted look for
//! browsers (`Accept: text/html`) and JSON for API clients, with or without
//! login methods configured.

use crate::support::*;

const ROUTES: &str = r#"
[server]
max_body_bytes = 16
[[routes]]
path = "/down/**"
access = "public"
upstream = "down"
[[routes]]
path = "/get-only/**"
access = "public"
methods = ["GET"]
[[routes]]
path = "/**"
access = "public"
"#;

/// (what, raw request without the Accept line, status)
fn cases() -> Vec<(&'static str, String, u16)> {
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    vec![
        ("bad path", raw_get("/a%00b", ""), 400),
        ("unknown hosted endpoint", raw_get("/_auth/nothing-here", ""), 404),
        (
            "method not allowed",
            "DELETE /get-only/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n".to_owned(),
            405,
        ),
        (
            "body too large",
            "POST /x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n".to_owned(),
            413,
        ),
        ("headers too large", raw_get("/x", &big), 431),
        ("upstream down", raw_get("/down/x", ""), 502),
    ]
}

async fn check(gw: &TestGateway, login_look: &str) {
    let mut failures = Vec::new();
    for (what, req, status) in cases() {
        let body = if what == "body too large" {
            "x".repeat(100)
        } else {
            String::new()
        };
        for (accept, html) in [
            ("text/html,application/xhtml+xml", true),
            ("application/json", false),
        ] {
            // raw_get ends the head; splice Accept in before the blank line.
            let head = req.trim_end_matches("\r\n").to_owned();
            let full = format!("{head}\r\nAccept: {accept}\r\n\r\n{body}");
            let (got, text) = gw.raw(&full).await;
            let lower = text.to_ascii_lowercase();
            let ok = got == status
                && if html {
                    lower.contains("content-type: text/html")
                        && text.contains(login_look)
                        && lower.contains("content-security-policy:")
                        && lower.contains("cache-control: no-store")
                } else {
                    lower.contains("content-type: application/json") && text.contains("\"error\"")
                };
            if !ok {
                failures.push(format!(
                    "{what} ({accept}): {got}, want {status}\n{}",
                    text.lines().take(12).collect::<Vec<_>>().join("\n")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn toml(emu: &portcullis_emulator::Emulator, up: &Upstream, extra: &str) -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    base_toml(
        emu,
        up,
        &format!("[upstreams.down]\nurl = \"http://{dead}\"\n{extra}"),
    )
    .replace("[server]\nlisten", "[server]\nmax_body_bytes = 16\nlisten")
    .replace("[server]\nmax_body_bytes = 16\n[[routes]]", "[[routes]]")
}

#[tokio::test]
async fn errors_are_pages_for_browsers_and_json_for_apis() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let routes = ROUTES.replace("[server]\nmax_body_bytes = 16\n", "");
    let gw = TestGateway::spawn_with(
        emu,
        up.clone(),
        &toml(&spawn_emulator().await, &up, &routes),
    )
    .await;
    check(&gw, r#"<main class="card">"#).await;
}

#[tokio::test]
async fn with_login_configured_too() {
    let emu = std::sync::Arc::new(spawn_emulator().await);
    let up = spawn_upstream().await;
    let routes = ROUTES.replace("[server]\nmax_body_bytes = 16\n", "");
    let extra = format!(
        "[login]\nmethods = [\"magiclink\"]\napp_name = \"Acme Wiki\"\n[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{routes}"
    );
    let gw = TestGateway::spawn_with(emu.clone(), up.clone(), &toml(&emu, &up, &extra)).await;
    check(&gw, "Acme Wiki").await;
}

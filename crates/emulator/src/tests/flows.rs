//! Descope Flows over HTTP, the way `<descope-wc>` drives them: static
//! files, `flow/start`, `flow/next` for the code, magic-link and OAuth
//! paths, errors on the screen, CORS for a page on another loopback origin.

use serde_json::{Value, json};

use super::{PID, bearer, choose_on_hosted_page, client, spawn, verify};
use crate::{Emulator, KeyType};

const PAGE: &str = "http://127.0.0.1:8080/_auth/login?return_to=%2Fapp";

async fn flow(emu: &Emulator, path: &str, body: Value) -> Value {
    let resp = client()
        .post(format!("{}/v1/flow/{path}", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .header("origin", "http://127.0.0.1:8080")
        .json(&body)
        .send()
        .await
        .expect("flow reachable");
    assert_eq!(resp.status(), 200, "{path} {body}");
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:8080")
    );
    resp.json().await.expect("json")
}

async fn start(emu: &Emulator, flow_id: &str) -> Value {
    flow(
        emu,
        "start",
        json!({"flowId": flow_id, "options": {"location": PAGE}, "interactionId": "", "input": {}}),
    )
    .await
}

async fn next(emu: &Emulator, at: &Value, interaction: &str, input: Value) -> Value {
    flow(
        emu,
        "next",
        json!({"executionId": at["executionId"], "stepId": at["stepId"],
               "interactionId": interaction, "version": 1, "input": input}),
    )
    .await
}

fn outbox_last(emu: &Emulator, kind: &str, login_id: &str) -> crate::OutboxEntry {
    emu.outbox()
        .into_iter()
        .rev()
        .find(|e| e.kind == kind && e.login_id == login_id)
        .expect("message in the outbox")
}

#[tokio::test]
async fn static_flow_files_are_served_offline() {
    let emu = spawn(KeyType::Ec).await;
    let c = client();
    let get = |file: &str| {
        c.get(format!("{}/pages/{PID}/v2-beta/{file}", emu.base_url()))
            .send()
    };
    let config = get("config.json").await.expect("config");
    assert_eq!(config.status(), 200);
    assert_eq!(
        config
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    let config: Value = config.json().await.expect("json");
    assert_eq!(
        config["componentsVersion"],
        crate::DEFAULT_COMPONENTS_VERSION
    );
    assert_eq!(config["flows"]["sign-in"]["version"], 1);
    assert_eq!(config["flows"]["sign-up-or-in"]["version"], 1);
    assert_eq!(config["telemetry"]["enabled"], false);
    let theme = get("theme.json")
        .await
        .expect("theme")
        .text()
        .await
        .expect("text");
    let theme_json: Value = serde_json::from_str(&theme).expect("theme is JSON");
    assert!(theme_json["light"]["globals"].as_str().is_some());
    assert!(theme_json["dark"]["components"]["descope-button"].is_object());
    assert!(
        !theme.contains("http://") && !theme.contains("https://"),
        "the theme names no URL (no fonts from a public host)"
    );
    for screen in ["welcome", "otp-code", "magic-link-sent"] {
        let html = get(&format!("{screen}.html"))
            .await
            .expect("screen")
            .text()
            .await
            .expect("text");
        assert!(html.contains("<descope-"), "{screen}");
        assert!(html.contains("data-type=\"error-message\""), "{screen}");
        assert!(html.contains("not Descope"), "{screen}");
    }
    for missing in ["nope.html", "../config.json", "config.json/x"] {
        assert_eq!(
            get(missing).await.expect("reachable").status(),
            404,
            "{missing}"
        );
    }
    let other = c
        .get(format!(
            "{}/pages/Pother/v2-beta/config.json",
            emu.base_url()
        ))
        .send()
        .await
        .expect("reachable");
    assert_eq!(other.status(), 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn code_flow_shows_a_wrong_code_on_the_screen_then_completes() {
    let emu = spawn(KeyType::Ec).await;
    let welcome = start(&emu, "sign-in").await;
    assert_eq!(welcome["status"], "waiting");
    assert_eq!(welcome["action"], "screen");
    assert_eq!(welcome["screen"]["id"], "welcome");
    assert_eq!(welcome["screen"]["state"]["title"], "Sign in");
    let exec = welcome["executionId"].as_str().expect("id");
    assert!(exec.starts_with("sign-in|#|"), "{exec}");

    let code_screen = next(
        &emu,
        &welcome,
        "send-code",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(code_screen["screen"]["id"], "otp-code");
    assert_eq!(
        code_screen["screen"]["state"]["maskedEmail"],
        "a***@example.com"
    );
    assert_ne!(code_screen["stepId"], welcome["stepId"]);
    let sent = outbox_last(&emu, "otp", "alice@example.com");
    let code = sent.code.expect("code");
    assert_eq!(sent.to, "alice@example.com");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let again = next(&emu, &code_screen, "verify-code", json!({"code": wrong})).await;
    assert_eq!(again["screen"]["id"], "otp-code");
    assert_eq!(again["stepId"], code_screen["stepId"]);
    assert!(
        again["screen"]["state"]["errorText"]
            .as_str()
            .is_some_and(|t| t.contains("wrong")),
        "{again}"
    );
    let done = next(&emu, &again, "submit-code", json!({"code": code})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let auth = &done["authInfo"];
    assert_eq!(auth["user"]["userId"], "U-alice");
    let session = verify(&emu, auth["sessionJwt"].as_str().expect("session")).await;
    assert_eq!(session["sub"], "U-alice");
    assert_eq!(session["drn"], "DS");
    assert_eq!(session["amr"], json!(["email"]));
    let refresh = verify(&emu, auth["refreshJwt"].as_str().expect("refresh")).await;
    assert_eq!(refresh["drn"], "DSR");
    // The execution is over.
    let resp = client()
        .post(format!("{}/v1/flow/next", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .json(
            &json!({"executionId": exec, "stepId": "2", "interactionId": "verify-code",
                      "input": {"code": code}}),
        )
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["errorCode"], "E103205");
    emu.shutdown().await;
}

#[tokio::test]
async fn sign_in_refuses_unknown_emails_on_the_screen_and_sign_up_or_in_creates_them() {
    let emu = spawn(KeyType::Ec).await;
    let welcome = start(&emu, "sign-in").await;
    let refused = next(
        &emu,
        &welcome,
        "send-code",
        json!({"email": "new@example.com"}),
    )
    .await;
    assert_eq!(refused["screen"]["id"], "welcome");
    assert!(refused["screen"]["state"]["errorText"].as_str().is_some());
    assert!(emu.user_id("new@example.com").is_none());
    let invalid = next(
        &emu,
        &welcome,
        "send-code",
        json!({"email": "not an email"}),
    )
    .await;
    assert!(invalid["screen"]["state"]["errorText"].as_str().is_some());

    let welcome = start(&emu, "sign-up-or-in").await;
    assert_eq!(welcome["screen"]["state"]["title"], "Sign up or sign in");
    let code_screen = next(
        &emu,
        &welcome,
        "send-code",
        json!({"email": "new@example.com"}),
    )
    .await;
    assert_eq!(code_screen["screen"]["id"], "otp-code");
    let code = outbox_last(&emu, "otp", "new@example.com")
        .code
        .expect("code");
    let done = next(&emu, &code_screen, "verify-code", json!({"code": code})).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["authInfo"]["firstSeen"], true);
    assert!(emu.user_id("new@example.com").is_some());

    let resp = client()
        .post(format!("{}/v1/flow/start", emu.base_url()))
        .header("authorization", bearer(&[PID]))
        .json(&json!({"flowId": "no-such-flow"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn magic_link_resumes_the_execution_and_the_waiting_tab_completes_too() {
    let emu = spawn(KeyType::Ec).await;
    let welcome = start(&emu, "sign-in").await;
    let waiting = next(
        &emu,
        &welcome,
        "send-link",
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(waiting["screen"]["id"], "magic-link-sent");
    let poll = next(&emu, &waiting, "polling", json!({})).await;
    assert_eq!(poll["action"], "poll");
    assert_eq!(poll["status"], "waiting");

    let link = outbox_last(&emu, "magiclink", "alice@example.com")
        .link
        .expect("link");
    assert!(link.starts_with(PAGE), "{link}");
    let url = url::Url::parse(&link).expect("absolute link");
    let param = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .expect("link parameter")
    };
    let token = param("t");
    let run = param("descope-login-flow");
    let (exec, step) = run.rsplit_once('_').expect("{executionId}_{stepId}");
    assert_eq!(exec, waiting["executionId"]);
    assert_eq!(step, waiting["stepId"]);

    // The tab the link opens resumes the execution with the token.
    let at = json!({"executionId": exec, "stepId": step});
    let link_tab = next(&emu, &at, "submit", json!({"token": token})).await;
    assert_eq!(link_tab["status"], "completed", "{link_tab}");
    assert_eq!(link_tab["authInfo"]["user"]["userId"], "U-alice");
    // The waiting tab's next poll completes with a session of its own, once.
    let waited = next(&emu, &waiting, "polling", json!({})).await;
    assert_eq!(waited["status"], "completed", "{waited}");
    assert_ne!(
        waited["authInfo"]["sessionJwt"],
        link_tab["authInfo"]["sessionJwt"]
    );
    // A used link does not work twice.
    let fresh = start(&emu, "sign-in").await;
    let waiting = next(
        &emu,
        &fresh,
        "send-link",
        json!({"email": "alice@example.com"}),
    )
    .await;
    let first = outbox_last(&emu, "magiclink", "alice@example.com")
        .link
        .expect("link");
    let resent = next(&emu, &waiting, "resend", json!({})).await;
    assert_eq!(resent["screen"]["id"], "magic-link-sent");
    let old_token = url::Url::parse(&first)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned())
        .expect("t");
    let stale = next(&emu, &resent, "submit", json!({"token": old_token})).await;
    assert!(
        stale["screen"]["state"]["errorText"].as_str().is_some(),
        "{stale}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn oauth_buttons_go_through_the_consent_page_and_back_into_the_flow() {
    let emu = spawn(KeyType::Ec).await;
    let welcome = start(&emu, "sign-in").await;
    let redirect = next(
        &emu,
        &welcome,
        "oauth-google",
        json!({"provider": "google"}),
    )
    .await;
    assert_eq!(redirect["action"], "redirect");
    assert!(
        redirect["screen"].is_object(),
        "a redirect carries a screen"
    );
    let url = redirect["redirect"]["url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{}/emulator/oauth/consent?", emu.base_url())));
    let code = choose_on_hosted_page(url, "alice@example.com", PAGE).await;
    let at = json!({"executionId": redirect["executionId"], "stepId": redirect["stepId"]});
    let done = next(&emu, &at, "submit", json!({"exchangeCode": code})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let session = verify(&emu, done["authInfo"]["sessionJwt"].as_str().expect("jwt")).await;
    assert_eq!(session["amr"], json!(["oauth"]));
    emu.shutdown().await;
}

#[tokio::test]
async fn cors_answers_loopback_pages_only() {
    let emu = spawn(KeyType::Ec).await;
    let c = client();
    let preflight = |origin: &'static str| {
        c.request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/flow/start", emu.base_url()),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-descope-sdk-name",
        )
        .send()
    };
    let ok = preflight("http://localhost:8080").await.expect("preflight");
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:8080");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-descope-sdk-name")
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("POST")
    );
    let foreign = preflight("https://evil.example").await.expect("preflight");
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let resp = c
        .get(format!("{}/v2/keys/{PID}", emu.base_url()))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("keys");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // The management and control APIs never answer another origin, loopback or not.
    for path in ["/emulator/health", "/v1/mgmt/license"] {
        let resp = c
            .get(format!("{}{path}", emu.base_url()))
            .header("origin", "http://127.0.0.1:8080")
            .send()
            .await
            .expect("reachable");
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn codes_and_links_a_flow_sends_show_in_both_outboxes() {
    let emu = spawn(KeyType::Ec).await;
    let welcome = start(&emu, "sign-in").await;
    next(
        &emu,
        &welcome,
        "send-code",
        json!({"email": "alice@example.com"}),
    )
    .await;
    let welcome = start(&emu, "sign-in").await;
    next(
        &emu,
        &welcome,
        "send-link",
        json!({"email": "bob@example.com"}),
    )
    .await;
    let code = outbox_last(&emu, "otp", "alice@example.com")
        .code
        .expect("code");
    let link = outbox_last(&emu, "magiclink", "bob@example.com")
        .link
        .expect("link");

    let entries: Value = client()
        .get(format!("{}/emulator/outbox.json", emu.base_url()))
        .send()
        .await
        .expect("outbox.json")
        .json()
        .await
        .expect("json");
    let entries = entries.as_array().expect("array");
    assert!(entries.iter().any(|e| e["loginId"] == "alice@example.com"
        && e["to"] == "alice@example.com"
        && e["email"] == "alice@example.com"
        && e["code"] == code.as_str()));
    assert!(
        entries
            .iter()
            .any(|e| e["loginId"] == "bob@example.com" && e["link"] == link.as_str())
    );

    let resp = client()
        .get(format!("{}/emulator/outbox", emu.base_url()))
        .send()
        .await
        .expect("outbox page");
    assert_eq!(resp.headers()["refresh"], "5", "the page reloads itself");
    let html = resp.text().await.expect("html");
    assert!(html.contains("alice@example.com") && html.contains(&code));
    assert!(html.contains(&crate::http::escape(&link)));
    assert!(
        html.contains(" UTC (") && html.contains("s ago)"),
        "readable times"
    );
    assert!(html.contains("not Descope"));
    emu.shutdown().await;
}

#[tokio::test]
async fn management_lists_the_emulated_flows() {
    let emu = spawn(KeyType::Ec).await;
    let body: Value = super::mgmt(&emu, "/v1/mgmt/flow/list", json!({}))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = body["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, ["sign-in", "sign-up-or-in"]);
    assert_eq!(body["total"], 2);
    emu.shutdown().await;
}

//! Hosted login over HTTP against the emulator: every flow end to end, the
//! state-cookie CSRF rule, open redirects, sign-in only, the e-mail domain
//! allow-list, the start rate limit and session replacement.

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_emulator::{Emulator, EmulatorOptions, MintSpec};
use reqwest::header::{self, HeaderMap};
use serde_json::{Map, Value, json};

use crate::support::{PROJECT_ID, TestGateway, base_toml, init, spawn_upstream};

const PUBLIC: &str = "http://gw.test";
const SECRET: &str = "login-test-secret-login-test-secret-0123";

const SEED: &str = r#"
[[tenants]]
id = "T-acme"
name = "Acme"
sso = true
domains = ["acme.test"]

[[users]]
login_id = "alice@example.com"
user_id = "U-alice"
name = "Alice"
roles = ["admin"]

[[users]]
login_id = "bob@acme.test"
user_id = "U-bob"
tenants = [{ id = "T-acme", roles = ["member"] }]
"#;

/// A gateway whose `[login]` table is `login`, with a seeded emulator.
async fn spawn(login: &str) -> TestGateway {
    spawn_at(login, "http://gw.test").await
}

/// [`spawn`] with another `public_url`.
async fn spawn_at(login: &str, public_url: &str) -> TestGateway {
    init();
    let emu = Emulator::spawn(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            project_id: PROJECT_ID.into(),
            management_key: Some("K-test-management".into()),
            seed: Some(SEED.into()),
            ..EmulatorOptions::default()
        },
    )
    .await
    .expect("emulator starts");
    let upstream = spawn_upstream().await;
    let extra = format!(
        r#"
[session]
secret = "{SECRET}"

[login]
{login}

[[routes]]
path = "/**"
access = "authenticated"
"#
    );
    let toml = base_toml(&emu, &upstream, &extra).replacen(
        "public_url = \"http://gw.test\"",
        &format!("public_url = \"{public_url}\""),
        1,
    );
    TestGateway::spawn_with(Arc::new(emu), upstream, &toml).await
}

const ALL_METHODS: &str = r#"methods = ["flow", "magiclink", "enchantedlink", "otp", "oauth:google", "sso"]
allowed_redirect_origins = ["https://docs.example.com"]"#;

/// A minimal cookie jar: applies `Set-Cookie` (deleting on `Max-Age=0`).
#[derive(Default, Clone, Debug)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, headers: &HeaderMap) {
        for (name, value, deleted) in set_cookies(headers) {
            if deleted {
                self.0.remove(&name);
            } else {
                self.0.insert(name, value);
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn state_cookies(&self) -> usize {
        self.0
            .keys()
            .filter(|k| k.contains("portcullis_state_"))
            .count()
    }
}

/// `(name, value, deleted)` of every `Set-Cookie`.
fn set_cookies(headers: &HeaderMap) -> Vec<(String, String, bool)> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|s| {
            let c = cookie::Cookie::parse(s.to_owned()).ok()?;
            let deleted = c.max_age().is_some_and(|a| a.is_zero()) || c.value().is_empty();
            Some((c.name().to_owned(), c.value().to_owned(), deleted))
        })
        .collect()
}

fn sets(headers: &HeaderMap, name: &str) -> bool {
    set_cookies(headers)
        .iter()
        .any(|(n, _, deleted)| n == name && !deleted)
}

fn location(headers: &HeaderMap) -> String {
    headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The path and query of a link to the gateway's public URL.
fn local(link: &str) -> String {
    link.strip_prefix(PUBLIC)
        .or_else(|| link.strip_prefix("https://gw.test"))
        .unwrap_or_else(|| panic!("link {link} is not on {PUBLIC}"))
        .to_owned()
}

/// The value of `name="…" value="…"` in an HTML page.
fn html_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

/// The value of a `data-*="…"` attribute in an HTML page.
fn data_attr(html: &str, attr: &str) -> String {
    let marker = format!("{attr}=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {attr}")) + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn outbox(gw: &TestGateway, kind: &str) -> Vec<Value> {
    gw.emu
        .outbox()
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

impl TestGateway {
    /// A request as a browser on the public origin (`http://gw.test`) sends it.
    fn get_public(&self, path: &str) -> reqwest::RequestBuilder {
        self.get(path).header(header::HOST, "gw.test")
    }

    async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        jar: &Jar,
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header(header::HOST, "gw.test")
            .header(header::COOKIE, jar.header())
            .form(fields);
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        req.send().await.unwrap()
    }

    async fn get_with(&self, path: &str, jar: &Jar) -> reqwest::Response {
        // The browser is on the public origin (`public_url` is http://gw.test).
        self.get_public(path)
            .header(header::COOKIE, jar.header())
            .header(header::ACCEPT, "text/html")
            .send()
            .await
            .unwrap()
    }

    /// Asserts the jar holds a working session: the upstream answers.
    async fn assert_signed_in(&self, jar: &Jar) {
        let before = self.upstream.count();
        let resp = self.get_with("/private", jar).await;
        assert_eq!(resp.status(), 200, "signed-in request was refused");
        assert_eq!(self.upstream.count(), before + 1);
    }
}

fn assert_hosted_headers(headers: &HeaderMap) {
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
}

// === tests ===

#[tokio::test]
async fn login_page_offers_methods_with_hardened_headers() {
    let gw = spawn(ALL_METHODS).await;
    let resp = gw
        .get_with("/_auth/login?return_to=%2Fdocs%3Fa%3D1", &Jar::default())
        .await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_hosted_headers(&h);
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let mut jar = Jar::default();
    jar.absorb(&h);
    assert_eq!(jar.state_cookies(), 1, "the flow method gets a login nonce");
    let html = resp.text().await.unwrap();
    for m in ["flow", "magiclink", "enchantedlink", "otp", "oauth", "sso"] {
        assert!(html.contains(&format!("data-method=\"{m}\"")), "{m}");
    }
    assert!(html.contains(r#"name="return_to" value="/docs?a=1""#));
    assert!(html.contains("<descope-wc"));
    // Reloading the page many times never piles up state cookies.
    let mut reloads = jar.clone();
    for _ in 0..8 {
        let resp = gw.get_with("/_auth/login", &reloads).await;
        reloads.absorb(resp.headers());
        assert!(reloads.state_cookies() <= 5, "{}", reloads.state_cookies());
    }
    assert_eq!(reloads.state_cookies(), 5);
    // A signed-in browser goes straight on.
    let (mut signed, _) = minted_session(&gw, "U-alice");
    signed.0.extend(jar.0);
    let resp = gw.get_with("/_auth/login?return_to=/docs", &signed).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(location(resp.headers()), "/docs");
}

#[tokio::test]
async fn magic_link_round_trip_is_scanner_safe_and_replaces_the_old_session() {
    let gw = spawn(ALL_METHODS).await;
    // An old session of somebody else is in the browser (fixation attempt).
    let (mut jar, _) = minted_session(&gw, "U-mallory");
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "alice@example.com"), ("return_to", "/docs/p?x=1")],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_hosted_headers(resp.headers());
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("data-page=\"check-email\"")
    );
    let sent = outbox(&gw, "magiclink").await;
    assert_eq!(sent.len(), 1);
    let link = local(sent[0]["link"].as_str().unwrap());
    assert!(link.starts_with("/_auth/magiclink/verify?state="), "{link}");

    // GET (what a mail scanner does) consumes nothing.
    let page = gw.get_with(&link, &Jar::default()).await;
    assert_eq!(page.status(), 200);
    assert!(set_cookies(page.headers()).is_empty());
    let html = page.text().await.unwrap();
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/verify"), 0);
    // Sent on at once only when the link was opened directly; from another
    // site (an attacker's page can send a victim to the attacker's own
    // link) or from this one (the app shares the origin and may show links
    // its users posted) the user has to press Continue.
    assert!(!html.contains(".submit()"), "no Sec-Fetch-Site: a click");
    for (site, auto) in [
        ("none", true),
        ("same-origin", false),
        ("cross-site", false),
        ("same-site", false),
    ] {
        let html = gw
            .get_public(&link)
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(html.contains(".submit()"), auto, "Sec-Fetch-Site: {site}");
        assert!(html.contains("<button type=\"submit\">Continue</button>"));
    }
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/verify"), 0);
    let t = html_field(&html, "t");
    let state = html_field(&html, "state");

    // A cross-site POST of the same form is refused without calling Descope.
    for origin in [Some("https://evil.example"), None] {
        let resp = gw
            .post_form(
                "/_auth/magiclink/verify",
                &[("t", &t), ("state", &state)],
                &jar,
                origin,
            )
            .await;
        assert_eq!(resp.status(), 403, "origin {origin:?}");
        assert!(set_cookies(resp.headers()).is_empty());
    }
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/verify"), 0);

    let resp = gw
        .post_form(
            "/_auth/magiclink/verify",
            &[("t", &t), ("state", &state)],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(resp.headers()), "/docs/p?x=1");
    assert!(sets(resp.headers(), "DS") && sets(resp.headers(), "DSR"));
    jar.absorb(resp.headers());
    gw.assert_signed_in(&jar).await;
    let seen = gw.upstream.last();
    let user = seen
        .headers
        .iter()
        .find(|(k, _)| k.as_str().ends_with("user-id"))
        .map(|(_, v)| v.to_str().unwrap().to_owned());
    assert_eq!(
        user.as_deref(),
        Some("U-alice"),
        "the old session was replaced"
    );

    // The token is single-use.
    let again = gw
        .post_form(
            "/_auth/magiclink/verify",
            &[("t", &t), ("state", &state)],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(again.status(), 401);
    assert!(!sets(again.headers(), "DS"));
}

#[tokio::test]
async fn magic_link_state_is_optional_but_cannot_be_forged() {
    let gw = spawn(ALL_METHODS).await;
    for (i, state) in ["", "garbage", "eyJrIjoib2F1dGgifQ.AAAA"]
        .iter()
        .enumerate()
    {
        let _ = gw
            .post_form(
                "/_auth/magiclink",
                &[("email", "alice@example.com"), ("return_to", "/x")],
                &Jar::default(),
                Some(PUBLIC),
            )
            .await;
        let sent = outbox(&gw, "magiclink").await;
        let t = query_param(sent[i]["link"].as_str().unwrap(), "t").unwrap();
        let resp = gw
            .post_form(
                "/_auth/magiclink/verify",
                &[("t", &t), ("state", state)],
                &Jar::default(),
                Some(PUBLIC),
            )
            .await;
        // Cross-device use still logs in, but never trusts an unsigned return_to.
        assert_eq!(resp.status(), 303);
        assert_eq!(location(resp.headers()), "/");
        assert!(sets(resp.headers(), "DS"));
    }
}

#[tokio::test]
async fn sign_in_only_unless_allow_signup() {
    let gw = spawn(r#"methods = ["magiclink", "otp"]"#).await;
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "newcomer@example.com")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    // Same answer as for a known user (no account enumeration)...
    assert_eq!(resp.status(), 200);
    // ...but nothing was sent and the sign-in (not sign-up) endpoint was used.
    assert!(outbox(&gw, "magiclink").await.is_empty());
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signin/email"), 1);
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signup-in/email"), 0);

    let gw = spawn(
        r#"methods = ["magiclink", "oauth:google"]
allow_signup = true"#,
    )
    .await;
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "newcomer@example.com")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(outbox(&gw, "magiclink").await.len(), 1);
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signup-in/email"), 1);
    let resp = gw
        .get_public("/_auth/oauth/start?provider=google")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(gw.emu.calls("/v1/auth/oauth/authorize"), 1);
}

/// Starts an OAuth or SSO login, picks `user_id` on the emulator's page and
/// returns the callback path plus the jar holding the state cookie.
async fn provider_round(gw: &TestGateway, start: &str, user_id: &str) -> (String, Jar) {
    let resp = gw.get_public(start).send().await.unwrap();
    assert_eq!(resp.status(), 302, "start {start}");
    assert_hosted_headers(resp.headers());
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    assert_eq!(jar.state_cookies(), 1);
    let provider_url = location(resp.headers());
    assert!(
        provider_url.starts_with(&gw.emu.base_url()),
        "{provider_url}"
    );
    let state = query_param(&provider_url, "state").unwrap();
    let action = if provider_url.contains("/oauth/") {
        "/emulator/oauth/consent"
    } else {
        "/emulator/sso/idp"
    };
    let back = gw
        .client
        .post(format!("{}{action}", gw.emu.base_url()))
        .form(&[("state", state.as_str()), ("user_id", user_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status().as_u16() / 100, 3);
    (local(&location(back.headers())), jar)
}

#[tokio::test]
async fn oauth_round_trip_requires_the_matching_state_cookie() {
    let gw = spawn(ALL_METHODS).await;
    let (callback, jar) = provider_round(
        &gw,
        "/_auth/oauth/start?provider=google&return_to=/app",
        "U-alice",
    )
    .await;
    assert!(
        callback.starts_with("/_auth/oauth/callback?state="),
        "{callback}"
    );
    assert_eq!(gw.emu.calls("/v1/auth/oauth/authorize/signin"), 1);

    // Login CSRF: the code arrives in a browser that did not start the login,
    // or that holds another login's state cookie. No session, no exchange.
    let (_, other_jar) = provider_round(&gw, "/_auth/oauth/start?provider=google", "U-bob").await;
    for wrong in [Jar::default(), other_jar] {
        let resp = gw.get_with(&callback, &wrong).await;
        assert_eq!(resp.status(), 400);
        assert_hosted_headers(resp.headers());
        assert!(!sets(resp.headers(), "DS"));
    }
    assert_eq!(gw.emu.calls("/v1/auth/oauth/exchange"), 0);

    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(resp.headers()), "/app");
    assert_hosted_headers(resp.headers());
    let mut jar = jar;
    jar.absorb(resp.headers());
    assert!(jar.has("DS") && jar.has("DSR"));
    assert_eq!(jar.state_cookies(), 0, "the state cookie is used up");
    gw.assert_signed_in(&jar).await;

    // Replaying the callback: the state cookie is gone.
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 400);

    // Unknown providers are refused before Descope is asked.
    let resp = gw
        .get_public("/_auth/oauth/start?provider=github")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn an_https_gateway_names_its_state_cookie_host_only() {
    // Cookie tossing: a sibling subdomain (or any plain-http answer for the
    // host) can set `portcullis_state_<nonce>` for this host, with the
    // attacker's own sealed state, and then send the victim the attacker's
    // callback. With an https public_url the state cookie is
    // `__Host-portcullis_state_<nonce>`, which only this host can set.
    let gw = spawn_at(ALL_METHODS, "https://gw.test").await;
    let (callback, jar) = provider_round(
        &gw,
        "/_auth/oauth/start?provider=google&return_to=/app",
        "U-alice",
    )
    .await;
    let (name, value) = jar
        .0
        .iter()
        .find(|(k, _)| k.contains("portcullis_state_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("a state cookie");
    assert!(name.starts_with("__Host-portcullis_state_"), "{name}");
    // The attacker's planted copy, under the name a sibling can set.
    let mut planted = Jar::default();
    planted
        .0
        .insert(name.trim_start_matches("__Host-").to_owned(), value);
    let resp = gw.get_with(&callback, &planted).await;
    assert_eq!(resp.status(), 400);
    assert!(!sets(resp.headers(), "__Host-DS"));
    assert_eq!(gw.emu.calls("/v1/auth/oauth/exchange"), 0);
    // `__Host-` requires Path=/ and Secure, no Domain: the app path now
    // carries it, and the gateway keeps it from the app.
    let start = gw
        .get_public("/_auth/oauth/start?provider=google")
        .send()
        .await
        .unwrap();
    let set = start
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-portcullis_state_"))
        .expect("state Set-Cookie");
    assert!(set.contains("Path=/;") || set.ends_with("Path=/"), "{set}");
    assert!(set.contains("Secure") && !set.contains("Domain"), "{set}");
    // The browser that started the login finishes it.
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 303);
    let mut jar = jar;
    jar.absorb(resp.headers());
    assert!(jar.has("__Host-DS"), "{jar:?}");
    assert_eq!(jar.state_cookies(), 0, "the state cookie is used up");
}

#[tokio::test]
async fn sso_round_trip_and_legacy_saml_paths() {
    let gw = spawn(ALL_METHODS).await;
    let (callback, mut jar) = provider_round(
        &gw,
        "/_auth/sso/start?tenant=bob%40acme.test&return_to=/t/acme",
        "U-bob",
    )
    .await;
    assert!(callback.starts_with("/_auth/sso/callback?state="));
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(resp.headers()), "/t/acme");
    jar.absorb(resp.headers());
    gw.assert_signed_in(&jar).await;
    assert_eq!(gw.emu.calls("/v1/auth/sso/authorize"), 1);
    assert_eq!(gw.emu.calls("/v1/auth/sso/exchange"), 1);
    // An organisation without SSO: back to the login page, with a notice.
    let resp = gw
        .get_public("/_auth/sso/start?tenant=carol%40nowhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Single sign-on is not available for that organisation.")
    );

    let gw = spawn(
        r#"methods = ["sso"]
sso_legacy_saml = true"#,
    )
    .await;
    let (callback, jar) = provider_round(&gw, "/_auth/sso/start?tenant=T-acme", "U-bob").await;
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(gw.emu.calls("/v1/auth/saml/authorize"), 1);
    assert_eq!(gw.emu.calls("/v1/auth/saml/exchange"), 1);
    assert_eq!(gw.emu.calls("/v1/auth/sso/exchange"), 0);
}

#[tokio::test]
async fn otp_round_trip() {
    let gw = spawn(ALL_METHODS).await;
    let resp = gw
        .post_form(
            "/_auth/otp",
            &[("email", "alice@example.com"), ("return_to", "/inbox")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    let html = resp.text().await.unwrap();
    let nonce = html_field(&html, "nonce");
    let code = outbox(&gw, "otp").await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", wrong), ("nonce", &nonce)],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert!(!sets(resp.headers(), "DS"));

    // The code alone is not enough: the browser must hold the state cookie.
    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", &code), ("nonce", &nonce)],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 400);

    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", &code), ("nonce", &nonce)],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(resp.headers()), "/inbox");
    jar.absorb(resp.headers());
    gw.assert_signed_in(&jar).await;
}

#[tokio::test]
async fn enchanted_link_round_trip_with_polling() {
    let gw = spawn(ALL_METHODS).await;
    let resp = gw
        .post_form(
            "/_auth/enchantedlink",
            &[("email", "alice@example.com"), ("return_to", "/wiki")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    let html = resp.text().await.unwrap();
    let nonce = data_attr(&html, "data-nonce");
    let link_id = data_attr(&html, "data-link-id");
    let sent = outbox(&gw, "enchantedlink").await;
    assert_eq!(sent[0]["code"].as_str(), Some(link_id.as_str()));

    let poll = |jar: Jar| {
        let gw = &gw;
        let nonce = nonce.clone();
        async move {
            gw.post_form(
                "/_auth/enchantedlink/session",
                &[("nonce", &nonce)],
                &jar,
                Some(PUBLIC),
            )
            .await
        }
    };
    assert_eq!(poll(jar.clone()).await.status(), 202);
    // Polling needs the state cookie of this tab.
    assert_eq!(poll(Jar::default()).await.status(), 403);

    // The link is opened (on any device): interstitial, then POST.
    let link = local(sent[0]["link"].as_str().unwrap());
    let page = gw.get_with(&link, &Jar::default()).await;
    assert_eq!(page.status(), 200);
    let t = html_field(&page.text().await.unwrap(), "t");
    assert_eq!(gw.emu.calls("/v1/auth/enchantedlink/verify"), 0);
    let resp = gw
        .post_form(
            "/_auth/enchantedlink/verify",
            &[("t", &t)],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        !sets(resp.headers(), "DS"),
        "the clicking device gets no session"
    );

    let resp = poll(jar.clone()).await;
    assert_eq!(resp.status(), 200);
    jar.absorb(resp.headers());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["return_to"], "/wiki");
    assert!(jar.has("DS"));
    gw.assert_signed_in(&jar).await;
}

/// A session/refresh pair minted by the emulator for `sub`, as a jar.
fn minted_session(gw: &TestGateway, sub: &str) -> (Jar, (String, String)) {
    let mint = |refresh: bool| {
        gw.emu.mint(&MintSpec {
            sub: sub.into(),
            refresh,
            ttl_secs: 600,
            claims: Map::new(),
        })
    };
    let (s, r) = (mint(false), mint(true));
    let mut jar = Jar::default();
    jar.0.insert("DS".into(), s.clone());
    jar.0.insert("DSR".into(), r.clone());
    (jar, (s, r))
}

#[tokio::test]
async fn flow_session_post_checks_origin_type_nonce_and_tokens() {
    let gw = spawn(ALL_METHODS).await;
    let resp = gw
        .get_with("/_auth/login?return_to=/after", &Jar::default())
        .await;
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    let html = resp.text().await.unwrap();
    let nonce = data_attr(&html, "data-nonce");
    let (_, (s, r)) = minted_session(&gw, "U-alice");
    let (_, (s_other, r_other)) = minted_session(&gw, "U-bob");

    let post = |body: Value, ct: &'static str, origin: Option<&'static str>, jar: Jar| {
        let gw = &gw;
        async move {
            let mut req = gw
                .client
                .post(gw.url("/_auth/session"))
                .header(header::COOKIE, jar.header())
                .header(header::CONTENT_TYPE, ct)
                .body(body.to_string());
            if let Some(o) = origin {
                req = req.header(header::ORIGIN, o);
            }
            req.send().await.unwrap()
        }
    };
    let good = json!({"sessionJwt": s, "refreshJwt": r, "nonce": nonce});
    let json_ct = "application/json";
    let refusals: Vec<(Value, &str, Option<&str>, Jar, u16)> = vec![
        (good.clone(), json_ct, None, jar.clone(), 403),
        (
            good.clone(),
            json_ct,
            Some("https://evil.example"),
            jar.clone(),
            403,
        ),
        (good.clone(), "text/plain", Some(PUBLIC), jar.clone(), 415),
        (good.clone(), json_ct, Some(PUBLIC), Jar::default(), 403),
        (
            json!({"sessionJwt": s, "refreshJwt": r, "nonce": "AAAAAAAAAAAAAAAAAAAAAA"}),
            json_ct,
            Some(PUBLIC),
            jar.clone(),
            403,
        ),
        (
            json!({"sessionJwt": s, "refreshJwt": r_other, "nonce": nonce}),
            json_ct,
            Some(PUBLIC),
            jar.clone(),
            401,
        ),
        (
            json!({"sessionJwt": r, "refreshJwt": s, "nonce": nonce}),
            json_ct,
            Some(PUBLIC),
            jar.clone(),
            401,
        ),
        (
            json!({"sessionJwt": s_other, "nonce": nonce}),
            json_ct,
            Some(PUBLIC),
            jar.clone(),
            400,
        ),
    ];
    for (i, (body, ct, origin, jar, want)) in refusals.into_iter().enumerate() {
        let resp = post(body, ct, origin, jar).await;
        assert_eq!(resp.status().as_u16(), want, "case {i}");
        assert!(!sets(resp.headers(), "DS"), "case {i}");
    }
    let resp = post(good, json_ct, Some(PUBLIC), jar.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_hosted_headers(resp.headers());
    jar.absorb(resp.headers());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["return_to"], "/after");
    assert_eq!(jar.state_cookies(), 0);
    gw.assert_signed_in(&jar).await;
}

#[tokio::test]
async fn open_redirects_land_on_root() {
    let gw = spawn(ALL_METHODS).await;
    let (jar, _) = minted_session(&gw, "U-alice");
    let payloads = [
        "//evil.example",
        "/\\evil.example",
        "/%2f%2fevil.example",
        "/%5cevil.example",
        "/%09/evil.example",
        "https://evil.example/",
        "https://docs.example.com.evil.example/",
        "javascript:alert(1)",
        "http://docs.example.com/",
        // A finished login never goes on to a login endpoint (someone
        // else's magic link would arrive as a same-origin navigation).
        "/_auth/magiclink/verify?state=x&t=y",
        "/_AUTH/enchantedlink/verify?t=y",
        "/x/../_auth/oauth/callback?code=c",
        "/%5fauth/login",
        "https://docs.example.com/_auth/magiclink/verify?t=y",
    ];
    for p in payloads {
        let path = format!(
            "/_auth/login?return_to={}",
            form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        );
        let resp = gw.get_with(&path, &jar).await;
        assert_eq!(resp.status(), 302, "{p}");
        assert_eq!(location(resp.headers()), "/", "{p}");
    }
    let resp = gw
        .get_with("/_auth/login?return_to=https://docs.example.com/x", &jar)
        .await;
    assert_eq!(location(resp.headers()), "https://docs.example.com/x");

    // Through a whole OAuth login too.
    let (callback, jar) = provider_round(
        &gw,
        "/_auth/oauth/start?provider=google&return_to=%2F%2Fevil.example",
        "U-alice",
    )
    .await;
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(location(resp.headers()), "/");
}

#[tokio::test]
async fn email_domain_allow_list() {
    let gw = spawn(
        r#"methods = ["magiclink", "sso"]
allowed_email_domains = ["example.com"]"#,
    )
    .await;
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "bob@acme.test")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let resp = gw
        .get_public("/_auth/sso/start?tenant=bob%40acme.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signin/email"), 0);
    assert_eq!(gw.emu.calls("/v1/auth/sso/authorize"), 0);
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "alice@EXAMPLE.com")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(outbox(&gw, "magiclink").await.len(), 1);
}

#[tokio::test]
async fn login_starts_are_rate_limited_per_ip_and_email() {
    let gw = spawn(
        r#"methods = ["magiclink", "oauth:google"]
start_rate_limit = "2/min"
ip_rate_limit = "4/min""#,
    )
    .await;
    let start = |email: &'static str| {
        let gw = &gw;
        async move {
            gw.post_form(
                "/_auth/magiclink",
                &[("email", email)],
                &Jar::default(),
                Some(PUBLIC),
            )
            .await
        }
    };
    let oauth = || gw.get_public("/_auth/oauth/start?provider=google").send();
    assert_eq!(start("alice@example.com").await.status(), 200);
    assert_eq!(start("alice@example.com").await.status(), 200);
    // The e-mail is exhausted (start_rate_limit) ...
    let third = start("alice@example.com").await;
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()[header::RETRY_AFTER], "30");
    // ... in any letter case, but another address from the same IP is not.
    assert_eq!(start("ALICE@example.com").await.status(), 429);
    assert_eq!(start("carol@example.com").await.status(), 200);
    // The refused starts charged nothing: this is the IP's fourth start.
    assert_eq!(oauth().await.unwrap().status(), 302);
    // Now the client IP is exhausted (ip_rate_limit), whatever the method.
    let resp = oauth().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "15");
    assert_eq!(start("dave@example.com").await.status(), 429);
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signin/email"), 3);
}

#[tokio::test]
async fn an_office_behind_one_address_signs_in_with_the_defaults() {
    // 40 colleagues behind one NAT at 9 am: each starts a magic link and
    // an OAuth sign-in; nobody gets a 429 from the default limits.
    let gw = spawn(r#"methods = ["magiclink", "oauth:google"]"#).await;
    for n in 0..40 {
        let email = format!("user{n}@example.com");
        let resp = gw
            .post_form(
                "/_auth/magiclink",
                &[("email", email.as_str())],
                &Jar::default(),
                Some(PUBLIC),
            )
            .await;
        assert_eq!(resp.status(), 200, "magic link start {n}");
        let resp = gw
            .get_public("/_auth/oauth/start?provider=google")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "oauth start {n}");
    }
    assert_eq!(gw.emu.calls("/v1/auth/magiclink/signin/email"), 40);
}

#[tokio::test]
async fn unlisted_methods_and_wrong_verbs() {
    let gw = spawn(r#"methods = ["magiclink"]"#).await;
    for path in [
        "/_auth/oauth/start?provider=google",
        "/_auth/sso/start?tenant=T-acme",
        "/_auth/oauth/callback?state=x&code=y",
    ] {
        let resp = gw.get_public(path).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_hosted_headers(resp.headers());
    }
    let resp = gw
        .post_form(
            "/_auth/otp",
            &[("email", "alice@example.com")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let resp = gw.get_public("/_auth/magiclink").send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()[header::ALLOW], "POST");
    // A cross-site form post to a login start is refused.
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "alice@example.com")],
            &Jar::default(),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert!(outbox(&gw, "magiclink").await.is_empty());
}

#[tokio::test]
async fn descope_outages_show_the_friendly_page() {
    use portcullis_emulator::Fault;
    let gw = spawn(ALL_METHODS).await;
    gw.emu
        .set_fault("/v1/auth/magiclink/signin/email", Fault::status(503));
    let resp = gw
        .post_form(
            "/_auth/magiclink",
            &[("email", "alice@example.com")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
    assert_hosted_headers(resp.headers());
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("data-page=\"unavailable\"")
    );

    // An exchange that times out or is refused by Descope sets no session.
    let (callback, jar) =
        provider_round(&gw, "/_auth/oauth/start?provider=google", "U-alice").await;
    gw.emu
        .set_fault("/v1/auth/oauth/exchange", Fault::rate_limit(7));
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 503);
    assert!(!sets(resp.headers(), "DS"));
    gw.emu.clear_faults();
    let (callback, jar) =
        provider_round(&gw, "/_auth/oauth/start?provider=google", "U-alice").await;
    gw.emu
        .set_fault("/v1/auth/oauth/exchange", Fault::status(400));
    let resp = gw.get_with(&callback, &jar).await;
    assert_eq!(resp.status(), 401);
    assert!(!sets(resp.headers(), "DS"));
}

#[tokio::test]
async fn cookie_mode_tokens_are_verified_and_set() {
    let gw = spawn(ALL_METHODS).await;
    gw.emu.set_cookie_mode(true);
    let resp = gw
        .post_form(
            "/_auth/otp",
            &[("email", "alice@example.com"), ("return_to", "/c")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    let nonce = html_field(&resp.text().await.unwrap(), "nonce");
    let code = outbox(&gw, "otp").await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", &code), ("nonce", &nonce)],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert!(sets(resp.headers(), "DS") && sets(resp.headers(), "DSR"));
    jar.absorb(resp.headers());
    gw.assert_signed_in(&jar).await;
}

// === what a new operator and user see: log lines, pages kept, ways back ===

/// Signs Alice in by magic link; returns the jar, the link's form fields and
/// the tokens the browser got.
async fn magic_link_sign_in(gw: &TestGateway, return_to: &str) -> (Jar, String, String) {
    gw.post_form(
        "/_auth/magiclink",
        &[("email", "alice@example.com"), ("return_to", return_to)],
        &Jar::default(),
        Some(PUBLIC),
    )
    .await;
    let sent = outbox(gw, "magiclink").await;
    let link = local(sent.last().unwrap()["link"].as_str().unwrap());
    let html = gw
        .get_with(&link, &Jar::default())
        .await
        .text()
        .await
        .unwrap();
    let (t, state) = (html_field(&html, "t"), html_field(&html, "state"));
    let resp = gw
        .post_form(
            "/_auth/magiclink/verify",
            &[("t", &t), ("state", &state)],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303);
    let mut jar = Jar::default();
    jar.absorb(resp.headers());
    (jar, t, state)
}

#[tokio::test]
async fn sign_ins_and_refreshes_log_one_info_line_each_and_never_a_token() {
    let logs = crate::support::capture_logs();
    let gw = spawn(ALL_METHODS).await;
    let (jar, _, _) = magic_link_sign_in(&gw, "/docs").await;
    let lines = logs.lines_with("signed in");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["user"], "U-alice");
    assert_eq!(lines[0]["method"], "magiclink");

    // OTP: a wrong code first, then the right one.
    let resp = gw
        .post_form(
            "/_auth/otp",
            &[("email", "alice@example.com"), ("return_to", "/inbox")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    let mut otp_jar = Jar::default();
    otp_jar.absorb(resp.headers());
    let nonce = html_field(&resp.text().await.unwrap(), "nonce");
    let code = outbox(&gw, "otp").await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", wrong), ("nonce", &nonce)],
            &otp_jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let html = resp.text().await.unwrap();
    assert!(html.contains("That code is not valid"), "{html}");
    assert!(
        html.contains("<strong>a***@example.com</strong>"),
        "the address stays: {html}"
    );
    assert!(
        html.contains(r#"data-method="otp-resend""#),
        "a new code can be sent"
    );
    assert!(html.contains(r#"name="email" value="alice@example.com""#));
    assert!(
        html.contains(r#"data-action="other-email""#),
        "another address can be used"
    );
    assert_eq!(html_field(&html, "nonce"), nonce, "the same code form");
    assert!(
        logs.lines_with("signed in").len() == 1,
        "a wrong code signs nobody in"
    );
    let resp = gw
        .post_form(
            "/_auth/otp/verify",
            &[("code", &code), ("nonce", &nonce)],
            &otp_jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303);
    let lines = logs.lines_with("signed in");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["method"], "otp");

    // A refresh: one line with the user id.
    let expired = gw.emu.mint(&MintSpec {
        sub: "U-alice".into(),
        refresh: false,
        ttl_secs: -60,
        claims: Map::new(),
    });
    let mut refreshing = jar.clone();
    refreshing.0.insert("DS".into(), expired);
    let resp = gw.get_with("/private", &refreshing).await;
    assert_eq!(resp.status(), 200);
    let lines = logs.lines_with("session refreshed");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["user"], "U-alice");

    let text = logs.text();
    for token in jar.0.values().chain(refreshing.0.values()) {
        assert!(!text.contains(token.as_str()), "a token reached the log");
    }
    assert!(!text.contains(&code), "the one-time code reached the log");
}

#[tokio::test]
async fn a_used_magic_link_opened_again_while_signed_in_goes_on_to_the_app() {
    let gw = spawn(ALL_METHODS).await;
    let (jar, t, state) = magic_link_sign_in(&gw, "/docs/p").await;
    let resp = gw
        .post_form(
            "/_auth/magiclink/verify",
            &[("t", &t), ("state", &state)],
            &jar,
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 303, "not 'Sign-in failed'");
    assert_eq!(location(resp.headers()), "/docs/p");
    assert!(!sets(resp.headers(), "DS"), "the session is kept as it is");
    // Signed out, the same used link still fails.
    let resp = gw
        .post_form(
            "/_auth/magiclink/verify",
            &[("t", &t), ("state", &state)],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_login_page_keeps_what_was_typed_after_a_notice() {
    let gw = spawn(ALL_METHODS).await;
    let resp = gw
        .get_with(
            "/_auth/sso/start?tenant=carol%40nowhere.test&return_to=/x",
            &Jar::default(),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Single sign-on is not available"), "{html}");
    assert!(html.contains(r#"value="carol@nowhere.test""#), "{html}");
    let gw2 = spawn(&format!(
        "{ALL_METHODS}\nallowed_email_domains = [\"example.com\"]"
    ))
    .await;
    let resp = gw2
        .post_form(
            "/_auth/magiclink",
            &[("email", "mallory@blocked.test"), ("return_to", "/x")],
            &Jar::default(),
            Some(PUBLIC),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(r#"type="email" autocomplete="email" value="mallory@blocked.test""#),
        "{html}"
    );
}

#[tokio::test]
async fn sign_out_pages_confirm_with_a_way_back_and_can_sign_in_again() {
    let gw = spawn(ALL_METHODS).await;
    for (path, button) in [
        ("/_auth/logout", "Sign out"),
        ("/_auth/logout-all", "Sign out on every device"),
    ] {
        let resp = gw
            .get_with(&format!("{path}?return_to=%2Fdocs"), &Jar::default())
            .await;
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        assert!(
            html.contains(r#"<main class="card">"#),
            "login-page look: {html}"
        );
        assert!(
            html.contains(&format!(
                r#"action="{path}" data-method="logout"><button type="submit">{button}</button>"#
            )),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/docs" data-action="cancel""#),
            "{html}"
        );
    }
    // An unsafe return_to is not a cancel target.
    let html = gw
        .get_with(
            "/_auth/logout?return_to=https%3A%2F%2Fevil.example%2F",
            &Jar::default(),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"href="/" data-action="cancel""#), "{html}");
    // The 403 page's "Sign in as someone else": sign out, then log in again
    // on the way to the page the user was opening.
    let (jar, _) = minted_session(&gw, "U-alice");
    let browser_post = |path: &str, jar: &Jar| {
        gw.client
            .post(gw.url(path))
            .header(header::COOKIE, jar.header())
            .header(header::ORIGIN, PUBLIC)
            .header(header::ACCEPT, "text/html")
            .send()
    };
    let resp = browser_post("/_auth/logout?return_to=%2Fadmin%2Fpanel%3Ftab%3D2", &jar)
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        location(resp.headers()),
        "/_auth/login?return_to=%2Fadmin%2Fpanel%3Ftab%3D2"
    );
    assert!(
        set_cookies(resp.headers())
            .iter()
            .any(|(n, _, deleted)| n == "DS" && *deleted)
    );
    // Without it: after_logout, as before.
    let (jar, _) = minted_session(&gw, "U-alice");
    let resp = browser_post("/_auth/logout", &jar).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(location(resp.headers()), "/");
}

/// A sign-in started on another origin than `public_url`'s (the user typed
/// `localhost` for `127.0.0.1`, or an internal name) is first sent to the
/// public origin, so its state cookie lands where the callback arrives.
#[tokio::test]
async fn sign_in_starts_move_to_the_public_origin() {
    let gw = spawn(ALL_METHODS).await;
    for (host, path) in [
        (gw.handle.addr.to_string(), "/_auth/login?return_to=%2Fdocs"),
        ("localhost".to_owned(), "/_auth/login"),
        (
            "GW.test:8080".to_owned(),
            "/_auth/oauth/start?provider=google",
        ),
        (
            "internal.gw.test".to_owned(),
            "/_auth/sso/start?tenant=T-acme",
        ),
    ] {
        let r = gw
            .get(path)
            .header(header::HOST, host.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{host} {path}");
        let sep = if path.contains('?') { '&' } else { '?' };
        let moved = format!("http://gw.test{path}{sep}_portcullis_moved=1");
        assert_eq!(
            r.headers()[header::LOCATION].to_str().unwrap(),
            moved,
            "{host}"
        );
        assert!(
            r.headers().get(header::SET_COOKIE).is_none(),
            "no state cookie on {host}"
        );
        // Behind a proxy that rewrites Host the moved request arrives under
        // the other name again: served, never a redirect loop.
        let again = moved.trim_start_matches("http://gw.test");
        let r = gw
            .get(again)
            .header(header::HOST, host.as_str())
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        assert!(
            !location.starts_with("http://gw.test/_auth/"),
            "{host} {again}: a second move would loop ({location})"
        );
    }
    // On the public origin (any letter case, the default port spelled out) the page is served.
    for host in ["gw.test", "GW.Test", "gw.test:80"] {
        let r = gw
            .get("/_auth/login")
            .header(header::HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
}

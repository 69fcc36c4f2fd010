//! The bypass classes, each with many spellings, in every mode: the proxy
//! path and `/verify` in nginx, Traefik and Envoy shape. A signed-in user
//! without the `admin` role probes; nothing may reach (or be allowed to) a
//! route its bytes do not belong to.

use serde_json::json;

use crate::support::*;

const ROUTES: &str = r#"
[[routes]]
path = "/public/**"
access = "public"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/get-only/**"
methods = ["GET"]
[[routes]]
path = "/forms/**"
methods = ["GET", "POST"]
[[routes]]
host = "admin.test"
path = "/**"
roles = ["admin"]
[[routes]]
path = "/**"
access = "authenticated"
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Proxy,
    Nginx,
    Traefik,
    Envoy,
}

const MODES: [Mode; 4] = [Mode::Proxy, Mode::Nginx, Mode::Traefik, Mode::Envoy];

struct Rig {
    gw: TestGateway,
    mode: Mode,
    user: String,
}

impl Rig {
    /// `server` is extra `[server]` keys.
    async fn new(mode: Mode, server: &str) -> Self {
        Self::with_routes(mode, server, ROUTES).await
    }

    async fn with_routes(mode: Mode, server: &str, routes: &str) -> Self {
        let fa = match mode {
            Mode::Proxy | Mode::Traefik => "traefik",
            Mode::Nginx => "nginx",
            Mode::Envoy => "envoy",
        };
        let emu = std::sync::Arc::new(spawn_emulator().await);
        let up = spawn_upstream().await;
        let toml = base_toml(
            &emu,
            &up,
            &format!(
                "[forward_auth]\nmode = \"{fa}\"\ntrusted_callers = [\"127.0.0.1/32\"]\n{routes}"
            ),
        )
        .replacen("[server]\n", &format!("[server]\n{server}\n"), 1);
        let gw = TestGateway::spawn_with(emu, up, &toml).await;
        let user = gw.session("U-user", json!({"roles": ["member"]}));
        Self { gw, mode, user }
    }

    /// The request as the mode carries it: `target` is the original request
    /// target (path and query), `host` the original Host, `extra` more
    /// header lines (already `\r\n`-terminated).
    fn request(&self, method: &str, target: &str, host: &str, extra: &str) -> String {
        let cookie = format!("Cookie: DS={}\r\n", self.user);
        match self.mode {
            Mode::Proxy => format!(
                "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{cookie}{extra}\r\n"
            ),
            Mode::Nginx => format!(
                "GET /_auth/verify HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Original-URI: {target}\r\nX-Original-Method: {method}\r\n{cookie}{extra}\r\n"
            ),
            Mode::Traefik => format!(
                "GET /_auth/verify HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nX-Forwarded-Uri: {target}\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Proto: https\r\n{cookie}{extra}\r\n"
            ),
            Mode::Envoy => format!(
                "{method} /_auth/verify{target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{cookie}{extra}\r\n"
            ),
        }
    }

    async fn send(&self, method: &str, target: &str, host: &str, extra: &str) -> (u16, String) {
        self.gw
            .raw(&self.request(method, target, host, extra))
            .await
    }

    /// The status a refusal of a malformed request has in this mode.
    fn refused(&self) -> u16 {
        if self.mode == Mode::Nginx { 403 } else { 400 }
    }
}

/// Runs `check` for every mode and collects the failures of all of them.
async fn in_every_mode<F>(extra: &str, check: F)
where
    F: AsyncFn(&Rig, &mut Vec<String>),
{
    in_every_mode_with(ROUTES, extra, check).await;
}

/// [`in_every_mode`] with other `[[routes]]`.
async fn in_every_mode_with<F>(routes: &str, extra: &str, check: F)
where
    F: AsyncFn(&Rig, &mut Vec<String>),
{
    let mut failures = Vec::new();
    for mode in MODES {
        let rig = Rig::with_routes(mode, extra, routes).await;
        check(&rig, &mut failures).await;
        // Nothing refused or forbidden ever reached the app.
        if rig.mode != Mode::Proxy && rig.gw.upstream.count() != 0 {
            failures.push(format!("{mode:?}: forward-auth reached the upstream"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Expects `status` for each target and, in proxy mode, that nothing
/// reached the upstream.
async fn expect_all(rig: &Rig, failures: &mut Vec<String>, targets: &[&str], status: u16) {
    for target in targets {
        let before = rig.gw.upstream.count();
        let (got, text) = rig.send("GET", target, "gw.test", "").await;
        if got != status {
            failures.push(format!(
                "{:?} {target}: status {got}, want {status} ({})",
                rig.mode,
                text.lines().next().unwrap_or("")
            ));
        }
        if rig.gw.upstream.count() != before {
            failures.push(format!(
                "{:?} {target}: reached the upstream as {}",
                rig.mode,
                rig.gw.upstream.last().target
            ));
        }
    }
}

#[tokio::test]
async fn forward_auth_never_judges_a_resolved_copy_of_the_original_path() {
    // Express (and any app that does not resolve dot segments) routes
    // `/admin/../public/x` to its `/admin` router.
    let targets = [
        "/admin/../public/x",
        "/admin/%2e%2e/public/x",
        "/admin/%2E%2E/public/x",
        "/admin/.%2e/public/x",
        "/admin/%2e./public/x",
        "/admin/..;/public/x",
        "/admin/..;x=1/public/x",
        "/admin;x/../public/x",
        "/admin/x/../../public/x",
        "//admin/../public/x",
        "/admin/./../public/x",
        "/admin//../public/x",
        "/admin/%2e/../public/x",
        "/admin/./x",
        "/admin//x",
        "//admin/x",
        "/admin/;x/y",
        "/;x/admin/y",
        "/public/../admin/x",
        "/public/./x",
        "/public//x",
        "/public/x/.",
        "/public/x/..",
        "/public/%2e",
        "/admin/../public/x?y=1",
        // Encoded letters: Express matches them raw, Flask decodes them.
        "/publi%63/x",
        "/%70ublic/x",
        "/public/%78",
        "/%61dmin/x",
    ];
    in_every_mode("", async |rig, failures| {
        if rig.mode == Mode::Proxy {
            // The proxy forwards the canonical form: the app gets exactly
            // the path that was judged.
            for (target, want_status, want_fwd) in [
                ("/admin/../public/x", 200, Some("/public/x")),
                ("/admin/%2e%2e/public/x", 200, Some("/public/x")),
                ("/admin/..;/public/x", 200, Some("/public/x")),
                ("//admin/../public/x", 200, Some("/public/x")),
                ("/public/../admin/x", 403, None),
            ] {
                let before = rig.gw.upstream.count();
                let (got, _) = rig.send("GET", target, "gw.test", "").await;
                let fwd = (rig.gw.upstream.count() > before).then(|| rig.gw.upstream.last().target);
                if got != want_status || fwd.as_deref() != want_fwd {
                    failures.push(format!(
                        "proxy {target}: {got} {fwd:?}, want {want_status} {want_fwd:?}"
                    ));
                }
            }
        } else {
            expect_all(rig, failures, &targets, rig.refused()).await;
            // Plain spellings are still judged normally.
            let (ok, _) = rig.send("GET", "/public/x", "gw.test", "").await;
            let (forbidden, _) = rig.send("GET", "/admin/x", "gw.test", "").await;
            if ok != 200 || forbidden != 403 {
                failures.push(format!("{:?}: plain paths {ok} / {forbidden}", rig.mode));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn no_letter_case_variant_escapes_its_route() {
    // Express, ASP.NET Core and IIS serve these as `/admin/...`; a
    // case-sensitive app may serve `/PUBLIC/...` as something else.
    let targets = [
        "/ADMIN/x",
        "/Admin/x",
        "/aDmIn/x",
        "/ADMIN",
        "/Admin/",
        "/%41DMIN/x",
        "/%41dmin/x",
        "/adm%49n/x",
        "/adm%C4%B1n/x", // dotless ı: ASP.NET's ordinal-ignore-case upper-cases it to I
        "/PUBLIC/x",
        "/Public/x",
        "/pUBLIC",
        "/GET-ONLY/x",
    ];
    in_every_mode("", async |rig, failures| {
        expect_all(rig, failures, &targets, rig.refused()).await;
        // Letter case inside a route's own territory changes nothing.
        let (got, _) = rig.send("GET", "/admin/X", "gw.test", "").await;
        if got != 403 {
            failures.push(format!("{:?} /admin/X: {got}, want 403", rig.mode));
        }
        let before = rig.gw.upstream.count();
        let (got, _) = rig.send("GET", "/Other/Path", "gw.test", "").await;
        if got != 200 {
            failures.push(format!("{:?} /Other/Path: {got}, want 200", rig.mode));
        }
        if rig.mode == Mode::Proxy && rig.gw.upstream.last().target != "/Other/Path" {
            failures.push(format!("proxy forwarded {}", rig.gw.upstream.last().target));
        }
        let _ = before;
    })
    .await;
}

#[tokio::test]
async fn a_route_spelled_with_capitals_is_not_escaped_by_lower_case() {
    // `/Admin/**` (ASP.NET style): an app that ignores letter case serves
    // `/admin/users` as `/Admin/users`, so the lower-case spelling may not
    // fall through to the laxer catch-all, with or without capitals of its
    // own; the same for a regex route.
    const CAPITALS: &str = r#"
[[routes]]
path = "/Admin/**"
roles = ["admin"]
[[routes]]
path_regex = "/Reports/[0-9]+"
roles = ["admin"]
[[routes]]
path = "/**"
access = "public"
"#;
    let targets = [
        "/admin/users",
        "/admin",
        "/ADMIN/users",
        "/reports/1",
        "/REPORTS/2",
    ];
    in_every_mode_with(CAPITALS, "", async |rig, failures| {
        expect_all(rig, failures, &targets, rig.refused()).await;
        for (target, want) in [("/Admin/users", 403), ("/Reports/7", 403), ("/other", 200)] {
            let (got, _) = rig.send("GET", target, "gw.test", "").await;
            if got != want {
                failures.push(format!("{:?} {target}: {got}, want {want}", rig.mode));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn case_insensitive_paths_judge_every_case_by_the_same_route() {
    let targets = ["/ADMIN/x", "/Admin/x", "/admin/X", "/aDmIn"];
    in_every_mode("case_insensitive_paths = true", async |rig, failures| {
        expect_all(rig, failures, &targets, 403).await;
        let (got, _) = rig.send("GET", "/PUBLIC/x", "gw.test", "").await;
        if got != 200 {
            failures.push(format!("{:?} /PUBLIC/x: {got}, want 200", rig.mode));
        }
    })
    .await;
}

#[tokio::test]
async fn path_parameters_never_decide_the_route() {
    // Tomcat and Spring drop `;x` (`/admin;x/y` is their `/admin/y`);
    // Express, Flask, Go and IIS keep it in the name (`/public;x/y` is not
    // their `/public/y`). Either way the route must be the same.
    let refused = [
        "/public;x/y",
        "/public;/y",
        "/public;jsessionid=1",
        "/admin;x/y",
        "/admin;/y",
        "/ADMIN;x/y",
    ];
    in_every_mode("", async |rig, failures| {
        expect_all(rig, failures, &refused, rig.refused()).await;
        // Parameters inside a route's own territory are fine.
        for (target, want) in [
            ("/public/x;jsessionid=1", 200),
            ("/admin/x;v=1", 403),
            ("/a;v=1/b", 200),
        ] {
            let (got, _) = rig.send("GET", target, "gw.test", "").await;
            if got != want {
                failures.push(format!("{:?} {target}: {got}, want {want}", rig.mode));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_host_is_a_name_or_ip_literal_with_a_numeric_port() {
    let hosts = [
        "admin.test:x",
        "admin.test,x",
        "admin.test:80x",
        "admin.test;x",
        "admin.test:",
        "admin.test:65536",
        "admin.test:80:80",
        "admin.test/x",
        "admin.test#x",
        "admin.test?x",
        "admin.test\\x",
        "evil@admin.test",
        "admin.test@evil",
        "%61dmin.test",
        "admin..test",
        ".admin.test",
        "[::1",
        "[::1]x",
        "[admin.test]",
        ":80",
        "admin.test x",
    ];
    in_every_mode("", async |rig, failures| {
        for host in hosts {
            let before = rig.gw.upstream.count();
            let (got, _) = rig.send("GET", "/x", host, "").await;
            if got != rig.refused() {
                failures.push(format!(
                    "{:?} Host {host:?}: {got}, want {}",
                    rig.mode,
                    rig.refused()
                ));
            }
            if rig.gw.upstream.count() != before {
                failures.push(format!("{:?} Host {host:?} reached the upstream", rig.mode));
            }
        }
        // Valid spellings of the admin host are judged by its route.
        for host in ["admin.test", "ADMIN.test", "admin.test.", "admin.test:8080"] {
            let (got, _) = rig.send("GET", "/x", host, "").await;
            if got != 403 {
                failures.push(format!("{:?} Host {host:?}: {got}, want 403", rig.mode));
            }
        }
        for host in ["other.test", "[::1]:8080", "127.0.0.1", "my_service:3000"] {
            let (got, _) = rig.send("GET", "/x", host, "").await;
            if got != 200 {
                failures.push(format!("{:?} Host {host:?}: {got}, want 200", rig.mode));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn method_overrides_are_judged_in_every_spelling() {
    let overrides = [
        "X-HTTP-Method-Override: DELETE",
        "X_HTTP_Method_Override: DELETE",
        "x_http_method_override: delete",
        "X-HTTP-Method: DELETE",
        "X_HTTP_METHOD: PUT",
        "X-Method-Override: PATCH",
        "X_Method_Override: DELETE",
        "X-HTTP-Method-Override: GET\r\nX_HTTP_Method_Override: DELETE",
    ];
    in_every_mode("", async |rig, failures| {
        let not_allowed = if rig.mode == Mode::Nginx { 403 } else { 405 };
        for o in overrides {
            let (got, _) = rig
                .send("GET", "/get-only/x", "gw.test", &format!("{o}\r\n"))
                .await;
            if got != not_allowed {
                failures.push(format!("{:?} {o:?}: {got}, want {not_allowed}", rig.mode));
            }
        }
        for q in [
            "/get-only/x?_method=DELETE",
            "/get-only/x?_METHOD=put",
            "/get-only/x?%5Fmethod=DELETE",
            "/get-only/x?a=1&_method=PATCH",
            // PHP reads `.` and ` ` in a name as `_` and drops leading spaces.
            "/get-only/x?.method=DELETE",
            "/get-only/x?+_method=DELETE",
            "/get-only/x?_method%2E=x&%20.METHOD=put",
            "/get-only/x?_method[]=DELETE",
            // PHP ends a name at its first NUL.
            "/get-only/x?_method%00=DELETE",
            "/get-only/x?_method%00x=DELETE",
        ] {
            let (got, _) = rig.send("GET", q, "gw.test", "").await;
            if got != not_allowed {
                failures.push(format!("{:?} {q}: {got}, want {not_allowed}", rig.mode));
            }
        }
        // An override naming an allowed method is fine.
        let (got, _) = rig
            .send(
                "GET",
                "/get-only/x?_method=GET",
                "gw.test",
                "X_HTTP_Method_Override: GET\r\n",
            )
            .await;
        if got != 200 {
            failures.push(format!("{:?} allowed override: {got}", rig.mode));
        }
    })
    .await;
}

#[tokio::test]
async fn method_override_fields_in_post_bodies_are_judged() {
    let gw = Rig::new(Mode::Proxy, "").await;
    // `ct` may carry more header lines after the type (`\r\n`-separated).
    let post = |ct: &str, body: &str| {
        let mut r = format!(
            "POST /forms/x HTTP/1.1\r\nHost: gw.test\r\nCookie: DS={}\r\nContent-Length: {}\r\n",
            gw.user,
            body.len()
        );
        if ct.contains("Connection:") {
            r.push_str(ct);
            r.push_str("\r\n");
        } else {
            r.push_str("Connection: close\r\n");
            if !ct.is_empty() {
                r.push_str(&format!("Content-Type: {ct}\r\n"));
            }
        }
        r.push_str("\r\n");
        r.push_str(body);
        r
    };
    let multipart = |name: &str, value: &str| {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--XyZ--\r\n"
        )
    };
    let refused = [
        (
            "application/x-www-form-urlencoded",
            "a=1&_method=DELETE".to_string(),
        ),
        (
            "application/x-www-form-urlencoded; charset=utf-8",
            "_method=put".to_string(),
        ),
        (
            "application/x-www-form-urlencoded",
            "%5Fmethod=PATCH".to_string(),
        ),
        (
            "application/x-www-form-urlencoded",
            "_method[]=DELETE".to_string(),
        ),
        ("", "_method=DELETE".to_string()),
        (
            "multipart/form-data; boundary=XyZ",
            multipart("_method", "DELETE"),
        ),
        (
            "application/json",
            r#"{"title":"x","_method":"DELETE"}"#.to_string(),
        ),
        (
            "application/vnd.api+json",
            r#"{"_method":"PUT"}"#.to_string(),
        ),
        ("multipart/form-data", multipart("_method", "DELETE")),
        (
            "application/x-www-form-urlencoded",
            "a=1&.method=DELETE".to_string(),
        ),
        (
            "application/x-www-form-urlencoded",
            "+_method=DELETE".to_string(),
        ),
        (
            "application/x-www-form-urlencoded",
            "_method%00x=DELETE".to_string(),
        ),
        (
            "multipart/form-data; boundary=XyZ",
            multipart(".method", "DELETE"),
        ),
        // `Connection` would strip the type on the way: the app sees a
        // typeless POST, which Rack reads as a form.
        (
            "Content-Type: text/plain\r\nConnection: close, content-type",
            "_method=DELETE".to_string(),
        ),
        // A compressed form cannot be read here; an app may decompress it.
        (
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nConnection: close",
            "\u{1f}not-really-gzip".to_string(),
        ),
        // Two types: apps disagree on which one counts.
        (
            "Content-Type: text/plain\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close",
            "_method=DELETE".to_string(),
        ),
    ];
    let mut failures = Vec::new();
    for (ct, body) in &refused {
        let (got, _) = gw.gw.raw(&post(ct, body)).await;
        if got != 405 {
            failures.push(format!("{ct:?} {body:?}: {got}, want 405"));
        }
    }
    assert_eq!(gw.gw.upstream.count(), 0, "nothing refused reached the app");
    let allowed = [
        (
            "application/x-www-form-urlencoded",
            "a=1&_method=POST".to_string(),
        ),
        ("application/x-www-form-urlencoded", "a=1&b=2".to_string()),
        (
            "multipart/form-data; boundary=XyZ",
            multipart("other", "DELETE"),
        ),
        ("application/json", r#"{"_method":"GET"}"#.to_string()),
        ("text/plain", "_method=DELETE".to_string()),
        (
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: identity\r\nConnection: close",
            "a=1".to_string(),
        ),
    ];
    for (ct, body) in &allowed {
        let before = gw.gw.upstream.count();
        let (got, _) = gw.gw.raw(&post(ct, body)).await;
        if got != 200 {
            failures.push(format!("{ct:?} {body:?}: {got}, want 200"));
        } else if gw.gw.upstream.count() != before + 1
            || gw.gw.upstream.last().body_len != body.len()
        {
            failures.push(format!("{ct:?}: the app did not get the same body"));
        }
    }
    // A body too large to inspect is refused, not forwarded unread.
    let big = format!("a={}", "x".repeat(1024 * 1024 + 1));
    let (got, _) = gw
        .gw
        .raw(&post("application/x-www-form-urlencoded", &big))
        .await;
    if got != 413 {
        failures.push(format!("large form: {got}, want 413"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Forward-auth never sees the body: a POST declaring a body the app may
/// read `_method` from, on a route with `methods`, is refused there (the
/// proxy path reads it instead); other POSTs pass.
#[tokio::test]
async fn forward_auth_refuses_bodies_it_cannot_check_for_overrides() {
    in_every_mode("", async |rig, failures| {
        if rig.mode == Mode::Proxy {
            return;
        }
        let not_allowed = if rig.mode == Mode::Nginx { 403 } else { 405 };
        for (extra, want) in [
            (
                "Content-Type: application/x-www-form-urlencoded\r\n",
                not_allowed,
            ),
            (
                "Content-Type: multipart/form-data; boundary=x\r\n",
                not_allowed,
            ),
            ("Content-Type: application/json\r\n", not_allowed),
            (
                "content-type: Application/X-WWW-Form-Urlencoded\r\n",
                not_allowed,
            ),
            ("Content-Type: text/plain\r\n", 200),
            ("Content-Type: application/octet-stream\r\n", 200),
            ("", 200),
        ] {
            let (got, _) = rig.send("POST", "/forms/x", "gw.test", extra).await;
            if got != want {
                failures.push(format!("{:?} POST {extra:?}: {got}, want {want}", rig.mode));
            }
        }
        // A route without `methods` has nothing to protect.
        let (got, _) = rig
            .send(
                "POST",
                "/other/x",
                "gw.test",
                "Content-Type: application/x-www-form-urlencoded\r\n",
            )
            .await;
        if got != 200 {
            failures.push(format!("{:?} POST without methods: {got}", rig.mode));
        }
    })
    .await;
}

#[tokio::test]
async fn other_proxies_headers_never_reach_the_app_in_any_spelling() {
    let gw = Rig::new(Mode::Proxy, "").await;
    let spoofed = [
        "X_Forwarded_For",
        "X_Forwarded_Host",
        "X_Forwarded_Proto",
        "X-Forwarded-Ssl",
        "X_Forwarded_Ssl",
        "X-Forwarded-Scheme",
        "X-Forwarded-Server",
        "X_Original_URL",
        "X-Original-URL",
        "X_Rewrite_URL",
        "X_Real_IP",
        "X-Client-IP",
        "X_Client_IP",
        "True-Client-IP",
        "CF-Connecting-IP",
        "X-Cluster-Client-IP",
        "X-Host",
        "X_Host",
        "X-Original-Host",
        "X-Forwarded-Client-Cert",
        "X_Forwarded_Client_Cert",
        "X-Amzn-Oidc-Identity",
        "X-Amzn-Oidc-Data",
        "X-Goog-Authenticated-User-Email",
        "X-Goog-IAP-JWT-Assertion",
        "X-MS-CLIENT-PRINCIPAL-NAME",
        "X-MS-CLIENT-PRINCIPAL",
        "X-MS-TOKEN-AAD-ID-TOKEN",
        "X-Consumer-Username",
        "X-Consumer-ID",
        "X-Credential-Identifier",
        "X-Authenticated-Userid",
        "Cf-Access-Authenticated-User-Email",
        "X_Auth_User_Id",
        "X_HTTP_Method_Override",
    ];
    let extra: String = spoofed.iter().map(|h| format!("{h}: evil\r\n")).collect();
    let (status, _) = gw.send("GET", "/public/x", "gw.test", &extra).await;
    assert_eq!(status, 200);
    let seen = gw.gw.upstream.last().headers;
    let mut leaked = Vec::new();
    for (name, value) in &seen {
        if value.as_bytes() == b"evil" {
            leaked.push(name.as_str().to_string());
        }
    }
    assert!(leaked.is_empty(), "reached the app: {leaked:?}");
    assert_eq!(seen["x-forwarded-host"], "gw.test");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn forward_auth_without_the_original_method_is_refused_where_methods_matter() {
    // An ingress config that leaves out X-Original-Method (or
    // X-Forwarded-Method) would have a POST judged as GET.
    for mode in [Mode::Nginx, Mode::Traefik] {
        let rig = Rig::new(mode, "").await;
        let ask = |target: &str| {
            let cookie = format!("Cookie: DS={}\r\n", rig.user);
            match mode {
                Mode::Nginx => format!(
                    "GET /_auth/verify HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nX-Original-URI: {target}\r\n{cookie}\r\n"
                ),
                _ => format!(
                    "GET /_auth/verify HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nX-Forwarded-Uri: {target}\r\nX-Forwarded-Host: gw.test\r\nX-Forwarded-Proto: https\r\n{cookie}\r\n"
                ),
            }
        };
        for (target, want) in [
            ("/get-only/x", rig.refused()),
            ("/forms/x", rig.refused()),
            ("/public/x", 200),
            ("/other", 200),
            ("/admin/x", 403),
        ] {
            let (got, _) = rig.gw.raw(&ask(target)).await;
            assert_eq!(got, want, "{mode:?} {target}");
        }
    }
}

#[tokio::test]
async fn forward_auth_refuses_its_own_identity_headers_in_another_spelling() {
    // The ingress replaces `X-Auth-User-Id` on the way to the app, not
    // `X_Auth_User_Id`, which an app folding `_` into `-` reads as the same.
    in_every_mode("", async |rig, failures| {
        for forged in ["X_Auth_User_Id", "x_auth_email", "X-Auth_Roles"] {
            let extra = format!("{forged}: U-admin\r\n");
            let (got, _) = rig.send("GET", "/public/x", "gw.test", &extra).await;
            let want = if rig.mode == Mode::Proxy {
                200
            } else {
                rig.refused()
            };
            if got != want {
                failures.push(format!("{:?} {forged}: {got}, want {want}", rig.mode));
            }
        }
        // Another header with an underscore is no reason to refuse.
        let (got, _) = rig
            .send("GET", "/public/x", "gw.test", "X_Custom: 1\r\n")
            .await;
        if got != 200 {
            failures.push(format!("{:?} X_Custom: {got}, want 200", rig.mode));
        }
    })
    .await;
}

#[tokio::test]
async fn windows_path_forms_are_refused() {
    let targets = [
        "/admin:$i30:$INDEX_ALLOCATION/x",
        "/admin::$INDEX_ALLOCATION/x",
        "/admin%3A$i30%3A$INDEX_ALLOCATION/x",
        "/admin%3A%24i30%3A%24INDEX_ALLOCATION/x",
        "/public/x.aspx::$DATA",
        "/admin:stream:$DATA",
        "/ADMINI~1/x",
        "/admini~1/x",
        "/ADMINI~2/x",
        "/ADMINI%7E1/x",
        "/WEB~1.CON",
        "/public/FILE~1.TXT",
    ];
    in_every_mode("", async |rig, failures| {
        expect_all(rig, failures, &targets, rig.refused()).await;
    })
    .await;
}

#[tokio::test]
async fn an_encoded_semicolon_is_refused() {
    // Spring decodes, then drops `;x` as a parameter: `/admin%3bx/y` is
    // its `/admin/y`.
    let targets = [
        "/admin%3bx/y",
        "/admin%3Bx/y",
        "/admin%3B/y",
        "/admin%3b",
        "/public/x%3b/y",
        "/admin%3bjsessionid=1/y",
    ];
    in_every_mode("", async |rig, failures| {
        expect_all(rig, failures, &targets, rig.refused()).await;
    })
    .await;
}

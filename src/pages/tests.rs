use super::*;

fn settings(methods: &[&str]) -> PageSettings {
    PageSettings {
        app_name: "Acme <Wiki>".into(),
        logo_url: Some("https://cdn.example/logo.png\"onerror=\"x".into()),
        auth_prefix: "/_auth".into(),
        methods: methods.iter().map(|m| method(m)).collect(),
        project_id: "P123".into(),
        flow_id: "sign-in".into(),
        descope_base_url: Some("http://127.0.0.1:4000".into()),
        web_component: ScriptRef {
            url: "https://cdn.example/wc.js".into(),
            integrity: Some("sha384-abc".into()),
        },
        web_js_sdk: ScriptRef {
            url: "https://cdn.example/sdk.js".into(),
            integrity: None,
        },
        cdn_url: None,
        redirect_origins: vec!["https://other.example".into()],
        inbox_url: Some("https://mail.example/?q=\"x".into()),
    }
}

const EVIL: &str = "\"><script>alert(1)</script>'`";

fn assert_no_injection(html: &str) {
    assert!(
        !html.contains("<script>alert(1)"),
        "unescaped script in {html}"
    );
    assert!(
        !html.contains("\"onerror=\"x"),
        "unescaped attribute in {html}"
    );
}

#[test]
fn escape_table() {
    let cases = [
        ("plain", "plain"),
        ("a&b", "a&amp;b"),
        ("<x>", "&lt;x&gt;"),
        ("\"'`", "&quot;&#39;&#96;"),
        ("caf\u{e9}", "caf\u{e9}"),
    ];
    for (raw, want) in cases {
        assert_eq!(escape(raw), want);
    }
}

#[test]
fn login_page_offers_every_method_and_escapes() {
    let s = settings(&[
        "flow",
        "magiclink",
        "enchantedlink",
        "otp",
        "oauth:google",
        "oauth:github",
        "sso",
    ]);
    let page = login(
        &s,
        &LoginView {
            return_to: EVIL,
            flow_nonce: Some("NONCE123"),
            notice: Some(EVIL),
            email: Some(EVIL),
            tenant: Some(EVIL),
        },
    );
    let html = &page.html;
    assert_eq!(page.status, StatusCode::OK);
    assert_no_injection(html);
    for m in ["flow", "magiclink", "enchantedlink", "otp", "oauth", "sso"] {
        assert!(
            html.contains(&format!("data-method=\"{m}\"")),
            "missing {m}"
        );
    }
    assert!(html.contains(
        r#"<descope-wc project-id="P123" flow-id="sign-in" base-url="http://127.0.0.1:4000">"#
    ));
    assert!(html.contains(r#"data-nonce="NONCE123""#));
    assert!(html.contains(r#"data-session="/_auth/session""#));
    assert!(html.contains(
        r#"src="https://cdn.example/wc.js" integrity="sha384-abc" crossorigin="anonymous""#
    ));
    assert!(html.contains(r#"src="https://cdn.example/sdk.js">"#));
    assert!(html.contains("/_auth/oauth/start?provider=google&amp;return_to=%22%3E%3Cscript"));
    assert!(html.contains("Continue with Github"));
    assert!(html.contains("Acme &lt;Wiki&gt;"));
    assert!(page.csp.contains("frame-ancestors 'none'"));
    assert!(page.csp.contains("'strict-dynamic'"));
    assert!(page.csp.contains("http://127.0.0.1:4000"));
}

#[test]
fn login_page_without_flow_has_a_strict_csp() {
    let s = settings(&["magiclink"]);
    let page = login(
        &s,
        &LoginView {
            return_to: "/x",
            flow_nonce: None,
            notice: None,
            ..LoginView::default()
        },
    );
    assert!(!page.html.contains("descope-wc"));
    assert!(!page.html.contains("<script"));
    assert!(page.csp.starts_with("default-src 'none'"));
    assert!(page.csp.contains("frame-ancestors 'none'"));
    // The one inline style is allowed by nonce, and that nonce is in the CSP.
    let nonce = page
        .html
        .split("<style nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("style nonce");
    assert!(page.csp.contains(&format!("style-src 'nonce-{nonce}'")));
}

#[test]
fn nonces_differ_per_page() {
    let s = settings(&["magiclink"]);
    let a = login(&s, &LoginView::default());
    let b = login(&s, &LoginView::default());
    assert_ne!(a.csp, b.csp);
}

#[test]
fn interstitial_posts_fields_and_allows_redirect_origins() {
    let s = settings(&["magiclink"]);
    let page = interstitial(
        &s,
        "/_auth/magiclink/verify",
        &[("t", EVIL), ("state", "abc.def")],
        true,
    );
    assert_no_injection(&page.html);
    assert!(
        page.html
            .contains(r#"<form id="continue" method="post" action="/_auth/magiclink/verify">"#)
    );
    assert!(page.html.contains(r#"name="state" value="abc.def""#));
    assert!(page.html.contains(".submit()"));
    assert!(
        page.csp
            .contains("form-action 'self' https://other.example")
    );
    assert!(page.csp.contains("frame-ancestors 'none'"));
    let manual = interstitial(&s, "/_auth/magiclink/verify", &[("t", "x")], false);
    assert!(!manual.html.contains(".submit()"), "a click, no script");
    assert!(
        manual
            .html
            .contains(r#"<button type="submit">Continue</button>"#)
    );
}

#[test]
fn other_pages_escape_and_carry_csp() {
    let s = settings(&["magiclink"]);
    let pages = [
        check_email(&s, Some(EVIL)),
        enchanted_wait(&s, EVIL, EVIL, Some(EVIL)),
        otp_code(
            &s,
            EVIL,
            Some(EVIL),
            Some(EVIL),
            Some(OtpRetry {
                email: EVIL,
                return_to: EVIL,
            }),
        ),
        message(&s, StatusCode::BAD_REQUEST, EVIL, EVIL, true),
        forbidden(&s, EVIL),
        unavailable(&s),
        logout_confirm(&s, true, EVIL, EVIL),
    ];
    for p in &pages {
        assert_no_injection(&p.html);
        assert!(p.csp.contains("frame-ancestors 'none'"), "{}", p.csp);
        let resp = p.clone().into_response();
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
    assert_eq!(pages[4].status, StatusCode::FORBIDDEN);
    assert_eq!(pages[5].status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        pages[1]
            .html
            .contains(r#"data-poll="/_auth/enchantedlink/session""#)
    );
}

fn method(raw: &str) -> LoginMethod {
    match raw {
        "flow" => LoginMethod::Flow,
        "magiclink" => LoginMethod::MagicLink,
        "enchantedlink" => LoginMethod::EnchantedLink,
        "otp" => LoginMethod::Otp,
        "sso" => LoginMethod::Sso,
        other => LoginMethod::OAuth(other.trim_start_matches("oauth:").to_owned()),
    }
}

#[test]
fn one_email_field_serves_every_email_method() {
    let s = settings(&["otp", "oauth:google", "magiclink"]);
    let html = login(
        &s,
        &LoginView {
            return_to: "/",
            flow_nonce: None,
            notice: None,
            ..LoginView::default()
        },
    )
    .html;
    assert_eq!(html.matches(r#"name="email""#).count(), 1);
    // In configured order; the first one is the primary button and the form's action.
    let otp = html
        .find(r#"formaction="/_auth/otp" data-method="otp">"#)
        .expect("otp button");
    let magic = html
        .find(r#"formaction="/_auth/magiclink" data-method="magiclink" class="secondary">"#)
        .expect("magic-link button");
    assert!(otp < magic);
    assert!(html.contains(
        r#"<form method="post" action="/_auth/otp" class="method" data-method="email">"#
    ));
    assert!(!html.contains("enchantedlink"));
    let none = login(&settings(&["sso"]), &LoginView::default()).html;
    assert!(!none.contains(r#"name="email""#));
}

#[test]
fn titles_name_the_app_once() {
    let s = settings(&["magiclink"]);
    let title = |html: &str| {
        let start = html.find("<title>").expect("title") + "<title>".len();
        let end = html.find("</title>").expect("title end");
        html[start..end].to_owned()
    };
    let login_title = title(&login(&s, &LoginView::default()).html);
    assert_eq!(login_title, "Sign in to Acme &lt;Wiki&gt;");
    assert_eq!(
        title(&check_email(&s, None).html),
        "Check your email \u{b7} Acme &lt;Wiki&gt;"
    );
}

#[test]
fn login_page_keeps_what_the_user_typed() {
    let s = settings(&["magiclink", "sso"]);
    let html = login(
        &s,
        &LoginView {
            return_to: "/x",
            notice: Some("Single sign-on is not available for that organisation."),
            email: Some("bob@acme.test"),
            tenant: Some("acme-corp"),
            ..LoginView::default()
        },
    )
    .html;
    assert!(
        html.contains(r#"name="email" type="email" autocomplete="email" value="bob@acme.test""#)
    );
    assert!(html.contains(r#"name="tenant" type="text" autocomplete="email" value="acme-corp""#));
}

#[test]
fn otp_form_offers_a_new_code_and_another_email() {
    let s = settings(&["otp"]);
    let html = otp_code(
        &s,
        "N1",
        Some("a***@example.com"),
        Some("That code is not valid. Please try again."),
        Some(OtpRetry {
            email: "alice@example.com",
            return_to: "/inbox?folder=work",
        }),
    )
    .html;
    assert!(html.contains("<strong>a***@example.com</strong>"));
    assert!(html.contains(
        r#"<form method="post" action="/_auth/otp" class="method" data-method="otp-resend">"#
    ));
    assert!(html.contains(r#"name="email" value="alice@example.com""#));
    assert!(html.contains(r#"name="return_to" value="/inbox?folder=work""#));
    assert!(html.contains(
        r#"href="/_auth/login?return_to=%2Finbox%3Ffolder%3Dwork" data-action="other-email""#
    ));
    assert!(
        html.contains(r#"data-action="inbox""#),
        "inbox link from inbox_url"
    );
}

#[test]
fn flow_section_passes_cdn_url_and_skips_an_empty_sdk_script() {
    let mut s = settings(&["flow"]);
    s.cdn_url = Some("http://127.0.0.1:4000\"x".into());
    s.web_js_sdk.url = String::new();
    let page = login(
        &s,
        &LoginView {
            return_to: "/",
            flow_nonce: Some("N"),
            notice: None,
            ..LoginView::default()
        },
    );
    assert!(page.html.contains(
        r#"base-url="http://127.0.0.1:4000" base-cdn-url="http://127.0.0.1:4000&quot;x""#
    ));
    assert!(!page.html.contains("sdk.js"));
    assert_eq!(
        page.html.matches(" src=").count(),
        2,
        "the component and the logo"
    );
}

#[test]
fn forbidden_page_signs_in_again_to_the_same_page() {
    let s = settings(&["magiclink"]);
    let html = forbidden(&s, "/admin/panel?tab=2").html;
    assert!(html.contains(r#"action="/_auth/logout?return_to=%2Fadmin%2Fpanel%3Ftab%3D2""#));
}

#[test]
fn logout_page_has_the_login_look_and_a_way_back() {
    let s = settings(&["magiclink"]);
    let page = logout_confirm(&s, false, "/_auth/logout", "/docs");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html.contains(r#"<main class="card">"#),
        "the login page layout"
    );
    assert!(
        page.html
            .contains(r#"<form method="post" action="/_auth/logout" data-method="logout">"#)
    );
    assert!(
        page.html
            .contains(r#"href="/docs" data-action="cancel">Cancel</a>"#)
    );
    assert!(page.csp.contains("form-action 'self'"));
    let all = logout_confirm(&s, true, "/_auth/logout-all", "/");
    assert!(all.html.contains("Sign out on every device"));
}

#[test]
fn primary_buttons_use_a_text_colour_made_for_the_accent() {
    // The e2e suite measures the contrast in Chromium; here: no hard-coded white.
    assert!(CSS.contains("color:var(--on-accent)"));
    assert!(CSS.contains("--accent:#7a9cff;--on-accent:#0b1020"));
}

#[test]
fn flow_csp_names_exactly_the_origins_the_component_uses() {
    // Against the emulator (a loopback API): only that origin, no https: wildcard.
    let mut s = settings(&["flow"]);
    s.logo_url = Some("https://cdn.example/logo.png".into());
    let view = LoginView {
        return_to: "/",
        flow_nonce: Some("N"),
        notice: None,
        ..LoginView::default()
    };
    let csp = login(&s, &view).csp;
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:4000;"),
        "{csp}"
    );
    assert!(
        csp.contains("img-src 'self' data: https://cdn.example;"),
        "{csp}"
    );
    assert!(csp.contains("frame-src 'none'"), "{csp}");
    assert!(
        !csp.contains("https:;") && !csp.contains("https: "),
        "{csp}"
    );
    // Against Descope: its API and static hosts for connect-src, nothing else there.
    s.descope_base_url = Some("https://api.descope.com".into());
    let csp = login(&s, &view).csp;
    assert!(
        csp.contains(
            "connect-src 'self' https://api.descope.com https://static.descope.com https://static2.descope.com;"
        ),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
}

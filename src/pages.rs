//! Server-rendered HTML for the hosted endpoints: the login page, the
//! magic-link interstitial, "check your email", the enchanted-link waiting
//! page, the OTP code form and the error / 403 / 503 pages.
//!
//! No template engine and no framework: every page is a small function that
//! builds a string, and **every** dynamic value goes through [`escape`]
//! (attribute-safe). Values that scripts need travel in `data-*` attributes,
//! never inside script text. Each page carries its own random CSP nonce for
//! its one inline `<style>` and `<script>`; the CSP always says
//! `frame-ancestors 'none'` (no clickjacking of a login form).
//!
//! The `flow` method embeds Descope's `descope-wc` web component. Its scripts
//! are loaded from configurable URLs with optional SRI hashes, and the page
//! posts `{sessionJwt, refreshJwt, nonce}` from the component's `success`
//! event to `{auth_prefix}/session`.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, Response, StatusCode, header};

/// Poll interval of the enchanted-link waiting page, in milliseconds
/// (Descope's SDK clamps its own polling to at least 1 s).
pub const ENCHANTED_POLL_MS: u32 = 2000;

/// A sign-in method the login page offers (`[login] methods`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMethod {
    Flow,
    MagicLink,
    EnchantedLink,
    Otp,
    OAuth(String),
    Sso,
}

/// A script the flow page loads, with its optional SRI hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRef {
    pub url: String,
    /// `sha384-…` (Subresource Integrity); strongly recommended.
    pub integrity: Option<String>,
}

/// What the pages need from the configuration.
#[derive(Debug, Clone)]
pub struct PageSettings {
    pub app_name: String,
    pub logo_url: Option<String>,
    /// `[server] auth_prefix`, e.g. `/_auth`.
    pub auth_prefix: String,
    pub methods: Vec<LoginMethod>,
    pub project_id: String,
    pub flow_id: String,
    /// Passed to `descope-wc` as `base-url` (and allowed in the flow page's
    /// CSP `connect-src`); `None` lets the component use Descope's default.
    pub descope_base_url: Option<String>,
    pub web_component: ScriptRef,
    /// Not loaded when its URL is empty (the web component bundles the SDK).
    pub web_js_sdk: ScriptRef,
    /// Passed to `descope-wc` as `base-cdn-url` (`[login] cdn_url`): the
    /// origin its npm libraries load from; `None` leaves Descope's CDNs.
    pub cdn_url: Option<String>,
    /// Origins a form submission may be redirected to (`allowed_redirect_origins`).
    pub redirect_origins: Vec<String>,
    /// `[login] inbox_url`: an "Open your inbox" link on the check-your-email
    /// pages (in `dev`, the emulator's outbox).
    pub inbox_url: Option<String>,
}

impl PageSettings {
    /// Settings for pages shown without login methods (the sign-out pages):
    /// the look, no methods.
    pub fn plain(app_name: &str, logo_url: Option<&str>, auth_prefix: &str) -> Self {
        Self {
            app_name: app_name.to_owned(),
            logo_url: logo_url.map(str::to_owned),
            auth_prefix: auth_prefix.trim_end_matches('/').to_owned(),
            methods: Vec::new(),
            project_id: String::new(),
            flow_id: String::new(),
            descope_base_url: None,
            web_component: ScriptRef {
                url: String::new(),
                integrity: None,
            },
            web_js_sdk: ScriptRef {
                url: String::new(),
                integrity: None,
            },
            cdn_url: None,
            redirect_origins: Vec::new(),
            inbox_url: None,
        }
    }
}

/// A rendered page: status, body and the CSP that belongs to it.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    pub csp: String,
}

impl Page {
    /// The response: `text/html`, the page's CSP, `Cache-Control: no-store`,
    /// `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.
    pub fn into_response(self) -> Response<String> {
        let mut resp = Response::new(self.html);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        resp
    }
}

/// Per-request inputs of the login page.
#[derive(Debug, Clone, Default)]
pub struct LoginView<'a> {
    /// Already validated.
    pub return_to: &'a str,
    /// The login nonce for the `flow` method (its state cookie is set by the caller).
    pub flow_nonce: Option<&'a str>,
    /// A message shown above the methods (e.g. "That link has expired").
    pub notice: Option<&'a str>,
    /// What the user typed into the e-mail field, kept when the page is shown again.
    pub email: Option<&'a str>,
    /// What the user typed into the SSO field, kept when the page is shown again.
    pub tenant: Option<&'a str>,
}

// === pages ===

/// The login page offering the configured methods.
pub fn login(s: &PageSettings, v: &LoginView<'_>) -> Page {
    let nonce = csp_nonce();
    let p = &s.auth_prefix;
    let rt = escape(v.return_to);
    let mut body = String::new();
    if let Some(n) = v.notice {
        let _ = write!(body, r#"<p class="notice" role="alert">{}</p>"#, escape(n));
    }
    let mut sections: Vec<String> = Vec::new();
    let mut oauth_buttons = String::new();
    let mut email_done = false;
    for m in &s.methods {
        match m {
            LoginMethod::Flow => {
                if let Some(fnonce) = v.flow_nonce {
                    sections.push(flow_section(s, fnonce));
                }
            }
            // One e-mail field serves every e-mail method: a button each.
            LoginMethod::MagicLink | LoginMethod::EnchantedLink | LoginMethod::Otp => {
                if !email_done {
                    email_done = true;
                    sections.push(email_form(s, &rt, v.email.unwrap_or("")));
                }
            }
            LoginMethod::OAuth(provider) => {
                let href = format!(
                    "{p}/oauth/start?provider={}&return_to={}",
                    query_encode(provider),
                    query_encode(v.return_to)
                );
                let _ = write!(
                    oauth_buttons,
                    r#"<a class="button secondary" href="{}" data-provider="{}">Continue with {}</a>"#,
                    escape(&href),
                    escape(provider),
                    escape(&provider_label(provider)),
                );
            }
            LoginMethod::Sso => sections.push(format!(
                r#"<form method="get" action="{}" class="method" data-method="sso">
<label for="sso-tenant">Work email or organisation ID</label>
<input id="sso-tenant" name="tenant" type="text" autocomplete="email" value="{}" required>
<input type="hidden" name="return_to" value="{rt}">
<button type="submit">Continue with single sign-on</button>
</form>"#,
                escape(&format!("{p}/sso/start")),
                escape(v.tenant.unwrap_or("")),
            )),
        }
    }
    if !oauth_buttons.is_empty() {
        sections.push(format!(
            r#"<div class="method oauth" data-method="oauth">{oauth_buttons}</div>"#
        ));
    }
    body.push_str(&sections.join("<div class=\"or\" aria-hidden=\"true\">or</div>"));
    let has_flow = s.methods.contains(&LoginMethod::Flow) && v.flow_nonce.is_some();
    let csp = if has_flow {
        flow_csp(s, &nonce)
    } else {
        strict_csp(&nonce, None)
    };
    let scripts = if has_flow {
        flow_scripts(s, &nonce)
    } else {
        String::new()
    };
    Page {
        status: StatusCode::OK,
        html: layout(
            s,
            &nonce,
            &format!("Sign in to {}", s.app_name),
            &body,
            &scripts,
        ),
        csp,
    }
}

/// The scanner-safe interstitial: a form that POSTs `fields` to `action`,
/// submitted by script at once (a button without script).
/// The link's landing page: a form that POSTs the token back. `auto`
/// submits it at once; otherwise the user presses Continue (a link that
/// arrived from another site could be an attacker's own, signing the
/// victim into the attacker's account).
pub fn interstitial(s: &PageSettings, action: &str, fields: &[(&str, &str)], auto: bool) -> Page {
    let nonce = csp_nonce();
    let mut inputs = String::new();
    for (name, value) in fields {
        let _ = write!(
            inputs,
            r#"<input type="hidden" name="{}" value="{}">"#,
            escape(name),
            escape(value)
        );
    }
    let body = format!(
        r#"<form id="continue" method="post" action="{}">{inputs}
<p>{}</p>
<button type="submit">Continue</button></form>"#,
        escape(action),
        if auto {
            "Finishing sign-in&hellip;"
        } else {
            "Select Continue to finish signing in."
        }
    );
    let script = if auto {
        format!(r#"<script nonce="{nonce}">document.getElementById('continue').submit();</script>"#)
    } else {
        String::new()
    };
    let form_action = form_action(s);
    Page {
        status: StatusCode::OK,
        html: layout(s, &nonce, "Signing in", &body, &script),
        csp: strict_csp(&nonce, Some(&form_action)),
    }
}

/// "Check your email" after a magic link was sent.
pub fn check_email(s: &PageSettings, masked: Option<&str>) -> Page {
    let to = masked.map_or_else(
        || "your inbox".to_owned(),
        |m| format!("<strong>{}</strong>", escape(m)),
    );
    let body = format!(
        r#"<p data-page="check-email">We sent a sign-in link to {to}. Open it on any device to finish signing in.</p>
{inbox}<p class="small">You can close this tab.</p>"#,
        inbox = inbox_link(s),
    );
    message_with_body(s, StatusCode::OK, "Check your email", &body)
}

/// The enchanted-link page: shows the link number and polls
/// `{auth_prefix}/enchantedlink/session` until the link is clicked.
pub fn enchanted_wait(
    s: &PageSettings,
    link_id: &str,
    login_nonce: &str,
    masked: Option<&str>,
) -> Page {
    let nonce = csp_nonce();
    let to = masked.map_or_else(
        || "your inbox".to_owned(),
        |m| format!("<strong>{}</strong>", escape(m)),
    );
    let poll = format!("{}/enchantedlink/session", s.auth_prefix);
    let body = format!(
        r#"<div id="enchanted" data-poll="{}" data-nonce="{}" data-interval="{ENCHANTED_POLL_MS}">
<p>We sent an email to {to}. Click the link numbered</p>
<p class="link-number" data-link-id="{}">{}</p>
<p class="small" id="status" role="status">Waiting for you to click the link&hellip;</p>
{inbox}</div>"#,
        escape(&poll),
        escape(login_nonce),
        escape(link_id),
        escape(link_id),
        inbox = inbox_link(s),
    );
    let script = format!(
        r#"<script nonce="{nonce}">
(function () {{
  var el = document.getElementById('enchanted');
  var status = document.getElementById('status');
  var body = new URLSearchParams({{ nonce: el.dataset.nonce }});
  function poll() {{
    fetch(el.dataset.poll, {{ method: 'POST', credentials: 'same-origin', body: body }})
      .then(function (r) {{
        if (r.status === 202) {{ setTimeout(poll, +el.dataset.interval); return; }}
        return r.json().then(function (j) {{
          if (r.ok && j.return_to) {{ window.location.assign(j.return_to); }}
          else {{ status.textContent = 'This sign-in has expired. Please start again.'; }}
        }});
      }})
      .catch(function () {{ setTimeout(poll, +el.dataset.interval * 2); }});
  }}
  setTimeout(poll, +el.dataset.interval);
}})();
</script>"#
    );
    Page {
        status: StatusCode::OK,
        html: layout(s, &nonce, "Check your email", &body, &script),
        csp: strict_csp(&nonce, None),
    }
}

/// What the OTP code form offers besides the code field: sending a new code
/// to the same address, and starting again with another one.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtpRetry<'a> {
    /// The address the code went to (posted back by "Send a new code").
    pub email: &'a str,
    /// Already validated.
    pub return_to: &'a str,
}

/// The OTP code form (after the code was sent, and again after a wrong code).
pub fn otp_code(
    s: &PageSettings,
    login_nonce: &str,
    masked: Option<&str>,
    notice: Option<&str>,
    retry: Option<OtpRetry<'_>>,
) -> Page {
    let to = masked.map_or_else(
        || "your email".to_owned(),
        |m| format!("<strong>{}</strong>", escape(m)),
    );
    let notice = notice.map_or_else(String::new, |n| {
        format!(r#"<p class="notice" role="alert">{}</p>"#, escape(n))
    });
    let p = &s.auth_prefix;
    let retry = retry.map_or_else(String::new, |r| {
        format!(
            r#"<form method="post" action="{}" class="method" data-method="otp-resend">
<input type="hidden" name="email" value="{}">
<input type="hidden" name="return_to" value="{}">
<button type="submit" class="secondary">Send a new code</button>
</form>
<p class="small"><a href="{}" data-action="other-email">Use another email</a></p>"#,
            escape(&format!("{p}/otp")),
            escape(r.email),
            escape(r.return_to),
            escape(&format!(
                "{p}/login?return_to={}",
                query_encode(r.return_to)
            )),
        )
    });
    let body = format!(
        r#"{notice}<form method="post" action="{}" class="method" data-method="otp-verify">
<p>We sent a code to {to}.</p>
<label for="otp-code">Code</label>
<input id="otp-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus>
<input type="hidden" name="nonce" value="{}">
<button type="submit">Sign in</button>
</form>
{retry}{inbox}"#,
        escape(&format!("{p}/otp/verify")),
        escape(login_nonce),
        inbox = inbox_link(s),
    );
    let nonce = csp_nonce();
    let form_action = form_action(s);
    Page {
        status: StatusCode::OK,
        html: layout(s, &nonce, "Enter your code", &body, ""),
        csp: strict_csp(&nonce, Some(&form_action)),
    }
}

/// A plain message page (errors, "signed in on your other device", …).
/// `retry_link` adds a "Back to sign-in" link.
pub fn message(
    s: &PageSettings,
    status: StatusCode,
    title: &str,
    text: &str,
    retry_link: bool,
) -> Page {
    let mut body = format!(r#"<p data-page="message">{}</p>"#, escape(text));
    if retry_link {
        let _ = write!(
            body,
            r#"<p><a class="button secondary" href="{}">Back to sign-in</a></p>"#,
            escape(&format!("{}/login", s.auth_prefix))
        );
    }
    message_with_body(s, status, title, &body)
}

/// The 403 page for browsers. "Sign in as someone else" signs out and goes
/// on to the login page with `return_to` (the page the user was opening).
pub fn forbidden(s: &PageSettings, return_to: &str) -> Page {
    let body = format!(
        r#"<p data-page="forbidden">You are signed in, but your account does not have access to this page.</p>
<p class="small">If you think this is a mistake, ask an administrator for access.</p>
<form method="post" action="{}"><button type="submit" class="secondary">Sign in as someone else</button></form>"#,
        escape(&format!(
            "{}/logout?return_to={}",
            s.auth_prefix,
            query_encode(return_to)
        ))
    );
    message_with_body(s, StatusCode::FORBIDDEN, "Access denied", &body)
}

/// The sign-out confirmation (`GET {auth_prefix}/logout` and `/logout-all`):
/// one button that POSTs to `action` (same origin), and a link back to `cancel`.
pub fn logout_confirm(s: &PageSettings, everywhere: bool, action: &str, cancel: &str) -> Page {
    let (title, text, button) = if everywhere {
        (
            "Sign out everywhere",
            "This signs you out on every device and browser where you are signed in.",
            "Sign out on every device",
        )
    } else {
        (
            "Sign out",
            "This signs you out in this browser.",
            "Sign out",
        )
    };
    let body = format!(
        r#"<p data-page="logout">{text}</p>
<form method="post" action="{}" data-method="logout"><button type="submit">{button}</button></form>
<p><a class="button secondary" href="{}" data-action="cancel">Cancel</a></p>"#,
        escape(action),
        escape(cancel),
    );
    message_with_body(s, StatusCode::OK, title, &body)
}

/// "Open your inbox" when `[login] inbox_url` is set.
fn inbox_link(s: &PageSettings) -> String {
    s.inbox_url.as_deref().map_or_else(String::new, |u| {
        format!(
            r#"<p><a class="button secondary" href="{}" target="_blank" rel="noopener noreferrer" data-action="inbox">Open your inbox</a></p>"#,
            escape(u)
        )
    })
}

/// The friendly 503 page (Descope unreachable); the caller adds `Retry-After`.
pub fn unavailable(s: &PageSettings) -> Page {
    let body = r#"<p data-page="unavailable">Sign-in is temporarily unavailable. Your session is safe; please try again in a moment.</p>"#;
    let mut page = message_with_body(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again shortly",
        body,
    );
    // Reload by itself after a while: harmless for a GET navigation.
    page.html = page.html.replacen(
        "<head>",
        r#"<head><meta http-equiv="refresh" content="15">"#,
        1,
    );
    page
}

// === building blocks ===

fn message_with_body(s: &PageSettings, status: StatusCode, title: &str, body: &str) -> Page {
    let nonce = csp_nonce();
    let form_action = form_action(s);
    Page {
        status,
        html: layout(s, &nonce, title, body, ""),
        csp: strict_csp(&nonce, Some(&form_action)),
    }
}

/// The e-mail form: one field, one submit button per configured e-mail
/// method (`formaction`), the first one primary.
fn email_form(s: &PageSettings, rt_escaped: &str, email: &str) -> String {
    let p = &s.auth_prefix;
    let mut buttons = String::new();
    let mut first_action = None;
    for m in &s.methods {
        let (path, method, label) = match m {
            LoginMethod::MagicLink => ("/magiclink", "magiclink", "Email me a sign-in link"),
            LoginMethod::EnchantedLink => (
                "/enchantedlink",
                "enchantedlink",
                "Email me an enchanted link",
            ),
            LoginMethod::Otp => ("/otp", "otp", "Email me a one-time code"),
            LoginMethod::Flow | LoginMethod::OAuth(_) | LoginMethod::Sso => continue,
        };
        let action = escape(&format!("{p}{path}"));
        let class = if first_action.is_none() {
            ""
        } else {
            r#" class="secondary""#
        };
        first_action.get_or_insert_with(|| action.clone());
        let _ = write!(
            buttons,
            r#"<button type="submit" formaction="{action}" data-method="{method}"{class}>{label}</button>"#
        );
    }
    format!(
        r#"<form method="post" action="{}" class="method" data-method="email">
<label for="login-email">Email</label>
<input id="login-email" name="email" type="email" autocomplete="email" value="{}" required>
<input type="hidden" name="return_to" value="{rt_escaped}">
{buttons}
</form>"#,
        first_action.unwrap_or_default(),
        escape(email),
    )
}

fn flow_section(s: &PageSettings, login_nonce: &str) -> String {
    let mut base = s
        .descope_base_url
        .as_deref()
        .map_or_else(String::new, |b| format!(r#" base-url="{}""#, escape(b)));
    if let Some(cdn) = &s.cdn_url {
        let _ = write!(base, r#" base-cdn-url="{}""#, escape(cdn));
    }
    format!(
        r#"<div class="method flow" data-method="flow" id="flow" data-session="{}" data-nonce="{}">
<descope-wc project-id="{}" flow-id="{}"{base}></descope-wc>
<p class="notice" id="flow-error" role="alert" hidden>Sign-in failed. Please try again.</p>
</div>"#,
        escape(&format!("{}/session", s.auth_prefix)),
        escape(login_nonce),
        escape(&s.project_id),
        escape(&s.flow_id),
    )
}

fn flow_scripts(s: &PageSettings, nonce: &str) -> String {
    let mut out = String::new();
    for sc in [&s.web_js_sdk, &s.web_component] {
        if sc.url.is_empty() {
            continue;
        }
        let integrity = sc.integrity.as_deref().map_or_else(String::new, |i| {
            format!(r#" integrity="{}" crossorigin="anonymous""#, escape(i))
        });
        let _ = write!(
            out,
            r#"<script nonce="{nonce}" src="{}"{integrity}></script>"#,
            escape(&sc.url)
        );
    }
    let _ = write!(
        out,
        r#"<script nonce="{nonce}">
(function () {{
  var box = document.getElementById('flow');
  var wc = box.querySelector('descope-wc');
  var err = document.getElementById('flow-error');
  wc.addEventListener('success', function (e) {{
    var d = e.detail || {{}};
    fetch(box.dataset.session, {{
      method: 'POST', credentials: 'same-origin',
      headers: {{ 'Content-Type': 'application/json' }},
      body: JSON.stringify({{ sessionJwt: d.sessionJwt, refreshJwt: d.refreshJwt, nonce: box.dataset.nonce }})
    }}).then(function (r) {{
      return r.json().then(function (j) {{
        if (r.ok && j.return_to) {{
          // The gateway's HttpOnly cookies now hold the session: drop any copy
          // the Descope SDK persisted in script-readable storage.
          try {{ ['DS', 'DSR'].forEach(function (k) {{ localStorage.removeItem(k); }}); }} catch (x) {{}}
          window.location.assign(j.return_to);
        }} else {{ err.hidden = false; }}
      }});
    }}).catch(function () {{ err.hidden = false; }});
  }});
  wc.addEventListener('error', function () {{ err.hidden = false; }});
}})();
</script>"#
    );
    out
}

fn layout(s: &PageSettings, nonce: &str, title: &str, body: &str, scripts: &str) -> String {
    let logo = s.logo_url.as_deref().map_or_else(String::new, |u| {
        format!(
            r#"<img class="logo" src="{}" alt="" height="48">"#,
            escape(u)
        )
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{page_title}</title>
<style nonce="{nonce}">{CSS}</style>
</head><body>
<main class="card">
<header>{logo}<p class="app">{app}</p><h1>{title_e}</h1></header>
{body}
</main>
{scripts}
</body></html>
"#,
        title_e = escape(title),
        app = escape(&s.app_name),
        page_title = escape(&page_title(title, &s.app_name)),
    )
}

/// The document title: `"{title} · {app}"`, or the title alone when it
/// already names the app ("Sign in to Acme", not "Sign in to Acme · Acme").
fn page_title(title: &str, app: &str) -> String {
    if app.is_empty() || title.contains(app) {
        title.to_owned()
    } else {
        format!("{title} \u{b7} {app}")
    }
}

const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f4f5f7;--card:#fff;--accent:#2f5bea;--on-accent:#fff;--muted:#5b6470;--border:#d5d9e0}\
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--bg:#15171a;--card:#1f2226;--accent:#7a9cff;--on-accent:#0b1020;--muted:#a0a8b3;--border:#3a3f46}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;padding:1.5rem .75rem;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}\
.card{margin:auto;width:min(26rem,92vw);background:var(--card);border:1px solid var(--border);border-radius:12px;padding:2rem;box-shadow:0 4px 24px rgba(0,0,0,.06)}\
header{text-align:center;margin-bottom:1.25rem}.logo{display:block;margin:0 auto .5rem}\
.app{margin:0;color:var(--muted);font-size:.9rem}h1{margin:.25rem 0 0;font-size:1.4rem}\
label{display:block;font-weight:600;margin:.5rem 0 .25rem}\
input[type=email],input[type=text]{width:100%;padding:.6rem .7rem;border:1px solid var(--border);border-radius:8px;font:inherit;background:transparent;color:inherit}\
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\
button,.button{display:block;width:100%;margin-top:.75rem;padding:.65rem;border:0;border-radius:8px;background:var(--accent);color:var(--on-accent);font:inherit;font-weight:600;text-align:center;text-decoration:none;cursor:pointer}\
.secondary{background:transparent;color:var(--fg);border:1px solid var(--border)}\
.or{display:flex;align-items:center;gap:.75rem;color:var(--muted);margin:1.25rem 0;font-size:.85rem}\
.or::before,.or::after{content:'';flex:1;border-top:1px solid var(--border)}\
.notice{padding:.6rem .8rem;border-radius:8px;background:rgba(200,60,60,.12)}\
.small{color:var(--muted);font-size:.9rem}\
a{color:var(--accent)}a.button{color:var(--on-accent)}a.button.secondary{color:var(--fg)}\
.link-number{font-size:3rem;font-weight:700;text-align:center;margin:.5rem 0}\
";

/// CSP for pages without the flow component: nothing but our own nonce'd
/// inline style/script, same-origin fetches and (optionally) `form-action`.
fn strict_csp(nonce: &str, form_action: Option<&str>) -> String {
    let mut csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data: https:; connect-src 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    if let Some(fa) = form_action {
        let _ = write!(csp, "; form-action {fa}");
    }
    csp
}

/// CSP for the page embedding `descope-wc`. Scripts are trusted by nonce
/// (`'strict-dynamic'` lets the component load the UI library it needs from
/// `base-cdn-url`). The rest depends on where the component runs:
///
/// - against a loopback API (the emulator, `portcullis dev`): exactly what
///   the component uses there — the API origin for its calls and flow files
///   (`connect-src`), inline styles of its widgets, `data:` fonts and images,
///   no frames;
/// - against Descope: the API origin and Descope's static hosts (the flow
///   files' fallbacks) for `connect-src`, and https styles, fonts, images and
///   frames, which a project's theme and widgets (web fonts, captchas) name.
fn flow_csp(s: &PageSettings, nonce: &str) -> String {
    let base = s.descope_base_url.as_deref().and_then(origin_of);
    let local = base.as_deref().is_some_and(is_loopback_origin);
    let mut connect = String::from("'self'");
    if let Some(base) = &base {
        let _ = write!(connect, " {base}");
    }
    if local {
        // The UI library's icon font comes from where the library loads.
        let cdn = s
            .cdn_url
            .as_deref()
            .and_then(origin_of)
            .map_or_else(String::new, |o| format!(" {o}"));
        format!(
            "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:{logo}; \
             font-src 'self' data:{cdn}; connect-src {connect}; frame-src 'none'; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            logo = s
                .logo_url
                .as_deref()
                .and_then(origin_of)
                .map_or_else(String::new, |o| format!(" {o}")),
        )
    } else {
        for host in DESCOPE_STATIC_ORIGINS {
            let _ = write!(connect, " {host}");
        }
        format!(
            "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; \
             style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; \
             font-src 'self' data: https:; connect-src {connect}; frame-src https:; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
    }
}

/// Where `descope-wc` reads flow files when `{base-url}/pages` has none
/// (sdk-mixins `staticResourcesMixin`).
const DESCOPE_STATIC_ORIGINS: [&str; 2] =
    ["https://static.descope.com", "https://static2.descope.com"];

/// `http(s)://localhost…`, `127.0.0.0/8`, `[::1]`.
fn is_loopback_origin(origin: &str) -> bool {
    let Ok(u) = url::Url::parse(origin) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `form-action`: ourselves plus the allowed redirect origins (browsers
/// apply `form-action` to the redirect that follows a POST).
fn form_action(s: &PageSettings) -> String {
    let mut fa = String::from("'self'");
    for o in &s.redirect_origins {
        if let Some(o) = origin_of(o) {
            let _ = write!(fa, " {o}");
        }
    }
    fa
}

fn origin_of(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

fn provider_label(p: &str) -> String {
    let mut c = p.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A fresh CSP nonce (128 bits, base64).
fn csp_nonce() -> String {
    let mut buf = [0u8; 16];
    // aws-lc's RNG does not fail in practice; if it did, the page would carry
    // a zero nonce, which only weakens the CSP (a second line of defence:
    // every dynamic value is escaped anyway).
    let _ = aws_lc_rs::rand::fill(&mut buf);
    STANDARD.encode(buf)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '`' => out.push_str("&#96;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query component.
pub fn query_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests;

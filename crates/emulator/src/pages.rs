//! Hosted HTML pages: the OAuth consent page and the SSO IdP page (a person
//! picks a demo user, the browser goes back to `redirectURL?code=...`), the
//! code page for authorize calls without a redirect URL, and the outbox.
//!
//! Every page says plainly that this is the emulator, not Descope.

use http::{Method, StatusCode};

use crate::auth;
use crate::http::{Req, Resp, escape, html, redirect};
use crate::shared::Shared;

const BANNER: &str = "<p style=\"background:#fee;border:2px solid #c00;padding:8px\"><strong>\
    This is the Portcullis Descope-API emulator, not Descope.</strong> Nothing here is a real \
    identity provider.</p>";

/// `None` when the path is not a hosted page.
pub(crate) fn handle(shared: &Shared, req: &Req) -> Option<Resp> {
    let resp = match (&req.method, req.path.as_str()) {
        (&Method::GET, "/emulator/oauth/consent") => chooser(shared, req, "oauth"),
        (&Method::GET, "/emulator/sso/idp") => chooser(shared, req, "sso"),
        (&Method::POST, "/emulator/oauth/consent" | "/emulator/sso/idp") => choose(shared, req),
        (&Method::GET, "/emulator/oauth/code") => {
            let code = req
                .query
                .get("code")
                .map(String::as_str)
                .unwrap_or_default();
            page(
                "Authorization code",
                &format!(
                    "<p>No redirect URL was given. Exchange this code:</p><pre id=\"code\">{}</pre>",
                    escape(code)
                ),
            )
        }
        _ => return None,
    };
    Some(resp)
}

fn page(title: &str, body: &str) -> Resp {
    html(
        StatusCode::OK,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body>{BANNER}<h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        ),
    )
}

/// The consent / IdP page: one button per eligible user, plus a login id field.
fn chooser(shared: &Shared, req: &Req, kind: &str) -> Resp {
    let state = req.query.get("state").cloned().unwrap_or_default();
    let st = shared.lock();
    let Some(auth) = st.authorizations.get(&state) else {
        return html(
            StatusCode::BAD_REQUEST,
            "<!doctype html><p>This sign-in request is unknown or expired; start again.</p>"
                .to_owned(),
        );
    };
    let (title, intro) = if kind == "oauth" {
        (
            format!("Sign in with {} (emulated)", auth.provider),
            "Pick the account to sign in as:".to_owned(),
        )
    } else {
        let tenant = st
            .tenants
            .get(&auth.provider)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        (
            format!("{tenant} single sign-on (emulated IdP)"),
            "Pick the person to sign in as:".to_owned(),
        )
    };
    let action = if kind == "oauth" {
        "/emulator/oauth/consent"
    } else {
        "/emulator/sso/idp"
    };
    let mut buttons = String::new();
    for user in st
        .users
        .values()
        .filter(|u| kind == "oauth" || u.tenants.iter().any(|t| t.id == auth.provider))
    {
        let label = if user.name.is_empty() {
            user.login_ids.first().cloned().unwrap_or_default()
        } else {
            format!(
                "{} ({})",
                user.name,
                user.login_ids.first().cloned().unwrap_or_default()
            )
        };
        buttons.push_str(&format!(
            "<li><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"state\" value=\"{s}\">\
             <input type=\"hidden\" name=\"user_id\" value=\"{id}\">\
             <button type=\"submit\" data-login-id=\"{login}\">{label}</button></form></li>",
            s = escape(&state),
            id = escape(&user.user_id),
            login = escape(user.login_ids.first().map(String::as_str).unwrap_or("")),
            label = escape(&label),
        ));
    }
    let other = format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"state\" value=\"{s}\">\
         <label>Or another login id: <input name=\"login_id\" type=\"text\"></label> \
         <button type=\"submit\">Continue</button></form>",
        s = escape(&state)
    );
    page(&title, &format!("<p>{intro}</p><ul>{buttons}</ul>{other}"))
}

/// `POST` of the chooser: issue a code and send the browser back.
fn choose(shared: &Shared, req: &Req) -> Resp {
    let form = req.form();
    let state = form.get("state").map(String::as_str).unwrap_or_default();
    let user_id = form
        .get("user_id")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    let login = form.get("login_id").map(String::as_str);
    let mut st = shared.lock();
    match auth::consent(&mut st, state, user_id, login) {
        Ok(url) => redirect(&url),
        Err(message) => html(
            StatusCode::BAD_REQUEST,
            format!("<!doctype html>{BANNER}<p>{}</p>", escape(message)),
        ),
    }
}

/// How often the outbox page reloads itself, in seconds.
const OUTBOX_REFRESH_SECS: u32 = 5;

/// `2026-12-02 10:15:03 UTC (12 s ago)`.
fn sent_at(epoch: i64, now: i64) -> String {
    let Ok(secs) = u64::try_from(epoch) else {
        return epoch.to_string();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let stamp = humantime::format_rfc3339_seconds(at)
        .to_string()
        .replacen('T', " ", 1)
        .replace('Z', " UTC");
    let ago = now.saturating_sub(epoch).max(0);
    let ago = match ago {
        0..=59 => format!("{ago} s ago"),
        60..=3599 => format!("{} min ago", ago / 60),
        _ => format!("{} h ago", ago / 3600),
    };
    format!("{stamp} ({ago})")
}

/// `GET /emulator/outbox`: newest first, readable times, reloads itself.
pub(crate) fn outbox(shared: &Shared) -> Resp {
    let entries = shared.lock().outbox.clone();
    let now = crate::util::now_secs();
    let mut rows = String::new();
    for e in entries.iter().rev() {
        rows.push_str(&format!(
            "<tr data-kind=\"{kind}\" data-login-id=\"{login}\"><td>{}</td><td>{kind}</td><td>{login}</td><td>{}</td><td>{}</td><td class=\"code\">{}</td>\
             <td><time datetime=\"{}\">{}</time></td></tr>",
            e.id,
            escape(&e.to),
            e.link
                .as_deref()
                .map(|l| format!("<a href=\"{0}\">{0}</a>", escape(l)))
                .unwrap_or_default(),
            escape(e.code.as_deref().unwrap_or("")),
            e.sent_at,
            escape(&sent_at(e.sent_at, now)),
            kind = escape(&e.kind),
            login = escape(&e.login_id),
        ));
    }
    let empty = if entries.is_empty() {
        "<p><em>Nothing sent yet.</em></p>"
    } else {
        ""
    };
    let mut resp = page(
        "Outbox",
        &format!(
            "<p>Messages the emulator would have sent (magic links, enchanted links, one-time \
             codes), newest first. This page reloads every {OUTBOX_REFRESH_SECS} seconds.</p>{empty}\
             <table border=\"1\" cellpadding=\"4\"><tr><th>#</th><th>kind</th><th>login id</th><th>to</th>\
             <th>link</th><th>code</th><th>sent</th></tr>{rows}</table>"
        ),
    );
    if let Ok(v) = http::HeaderValue::from_str(&OUTBOX_REFRESH_SECS.to_string()) {
        // `Refresh` reloads the same URL (a `?control_token=` included).
        resp.headers_mut().insert("refresh", v);
    }
    resp
}

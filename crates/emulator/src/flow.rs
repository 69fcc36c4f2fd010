//! Descope Flows: `POST /v1/flow/start` and `POST /v1/flow/next` (core-js
//! `sdk/flow`) as a small step machine over the emulator's users, outbox,
//! one-time codes, magic links and hosted OAuth consent page, so that the
//! real `<descope-wc>` renders the screens of `flow_pages.rs` and completes
//! sign-in with real JWTs in `authInfo`.
//!
//! ```text
//! start ─► welcome ──send-code──► otp-code ──verify-code/submit-code──► completed
//!             │                      │ wrong code: same screen + errorText
//!             │                      └─resend / back
//!             ├──send-link──► magic-link-sent ──polling──► poll … completed
//!             │                 ▲ the link: {location}?t=…&descope-login-flow={exec}_{step}
//!             │                 └ next(submit, {token}) in the tab it opens ─► completed
//!             └──oauth-{provider}──► redirect to the consent page ─► {location}?code=…
//!                                    &descope-login-flow=… ─► next(submit, {exchangeCode}) ─► completed
//! ```
//!
//! `sign-in` refuses unknown emails (an error on the screen); `sign-up-or-in`
//! creates the user. Every answer that is not `completed` or `poll` carries
//! a `screen` (the component requires one). Execution ids are
//! `{flowId}|#|{random}`, the shape the component parses from
//! `descope-login-flow`. Executions expire after [`FLOW_TTL_SECS`] without
//! progress; a later call answers `E103205` (the component then stops polling).

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::auth::{self, Mode, OtpRefusal};
use crate::flow_pages::FLOW_IDS;
use crate::http::{Req, Resp, append_query, error, json, str_field};
use crate::shared::Shared;
use crate::state::{
    Authorization, FLOW_TTL_SECS, FlowExecution, FlowScreen, LINK_TTL_SECS, PendingLogin, State,
};
use crate::tokens::{append_cookies, jwt_body};
use crate::util::{now_secs, random_hex};

/// OAuth providers the welcome screen offers (button ids `oauth-{provider}`).
const OAUTH_PROVIDERS: [&str; 2] = ["google", "github"];

/// `POST /v1/flow/start` and `/v1/flow/next`.
pub(crate) fn handle(shared: &Shared, req: &Req, next: bool) -> Resp {
    let body = match req.json() {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let input = body
        .get("input")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let interaction = str_field(&body, &["interactionId"]).to_owned();
    let mut st = shared.lock();
    st.sweep();
    let exec_id = if next {
        let id = str_field(&body, &["executionId"]).to_owned();
        if !st.flow_executions.contains_key(&id) {
            return error(
                StatusCode::BAD_REQUEST,
                "E103205",
                "Flow execution not found",
                "The flow execution is unknown or timed out; start the flow again",
            );
        }
        id
    } else {
        match start(&mut st, &body) {
            Ok(id) => id,
            Err(resp) => return resp,
        }
    };
    if let Some(exec) = st.flow_executions.get_mut(&exec_id) {
        exec.expires_at = now_secs().saturating_add(FLOW_TTL_SECS);
    }
    let step = Step {
        shared,
        exec_id,
        input,
    };
    if !next && interaction.is_empty() {
        // A plain start shows the first screen.
        return step.screen(&mut st, FlowScreen::Welcome, &Map::new());
    }
    step.interact(&mut st, &interaction)
}

/// A new execution for `flowId`; its id.
fn start(st: &mut State, body: &Map<String, Value>) -> Result<String, Resp> {
    let flow_id = str_field(body, &["flowId"]);
    if !FLOW_IDS.contains(&flow_id) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "E102000",
            "Flow not found",
            &format!(
                "The emulator runs the flows {}; there is no flow {flow_id:?}",
                FLOW_IDS.join(", ")
            ),
        ));
    }
    let options = body.get("options").and_then(Value::as_object);
    let option = |k: &str| options.map(|o| str_field(o, &[k]).to_owned());
    let location = option("redirectUrl")
        .filter(|u| !u.is_empty())
        .or_else(|| option("location"))
        .unwrap_or_default();
    let id = format!("{flow_id}|#|{}", random_hex(12));
    st.flow_executions.insert(
        id.clone(),
        FlowExecution {
            signup: flow_id == "sign-up-or-in",
            step: 1,
            screen: FlowScreen::Welcome,
            login_id: String::new(),
            location,
            link_token: None,
            link_login: None,
            expires_at: now_secs().saturating_add(FLOW_TTL_SECS),
        },
    );
    Ok(id)
}

/// One `start`/`next` call on an execution.
struct Step<'a> {
    shared: &'a Shared,
    exec_id: String,
    input: Map<String, Value>,
}

impl Step<'_> {
    fn exec<'s>(&self, st: &'s State) -> Option<&'s FlowExecution> {
        st.flow_executions.get(&self.exec_id)
    }

    fn exec_mut<'s>(&self, st: &'s mut State) -> Option<&'s mut FlowExecution> {
        st.flow_executions.get_mut(&self.exec_id)
    }

    fn input(&self, key: &str) -> String {
        str_field(&self.input, &[key]).trim().to_owned()
    }

    /// Runs `interaction` on the current screen.
    fn interact(&self, st: &mut State, interaction: &str) -> Resp {
        let Some(screen) = self.exec(st).map(|e| e.screen) else {
            return gone();
        };
        // Back from the link or the OAuth provider: the URL's parameters.
        if interaction == "submit" {
            let code = self.input("exchangeCode");
            if !code.is_empty() {
                return self.oauth_return(st, &code);
            }
            let token = self.input("token");
            if !token.is_empty() {
                return self.link_opened(st, &token);
            }
        }
        match (screen, interaction) {
            (FlowScreen::Welcome, "send-code") => self.send_code(st),
            (FlowScreen::Welcome, "send-link") => self.send_link(st),
            (FlowScreen::Welcome, i) if i.starts_with("oauth-") => {
                self.oauth(st, i.trim_start_matches("oauth-"))
            }
            (FlowScreen::OtpCode, "verify-code" | "submit-code") => self.verify_code(st),
            (FlowScreen::OtpCode, "resend") => {
                let login_id = self
                    .exec(st)
                    .map(|e| e.login_id.clone())
                    .unwrap_or_default();
                self.deliver_code(st, &login_id, false);
                self.screen(
                    st,
                    FlowScreen::OtpCode,
                    &notice("We sent a new code. Codes sent before it no longer work."),
                )
            }
            (FlowScreen::LinkSent, "polling") => self.poll(st),
            (FlowScreen::LinkSent, "resend") => {
                self.deliver_link(st);
                self.screen(
                    st,
                    FlowScreen::LinkSent,
                    &notice("We sent a new link. Links sent before it no longer work."),
                )
            }
            (FlowScreen::OtpCode | FlowScreen::LinkSent, "back") => {
                if let Some(exec) = self.exec_mut(st) {
                    exec.link_token = None;
                }
                self.screen(st, FlowScreen::Welcome, &Map::new())
            }
            (_, other) => error(
                StatusCode::BAD_REQUEST,
                "E102001",
                "Unknown interaction",
                &format!("The screen {:?} has no interaction {other:?}", screen.id()),
            ),
        }
    }

    /// A screen answer for the current step (`state` merged over the
    /// screen's standing state: title, masked email, the email typed).
    fn screen(&self, st: &mut State, screen: FlowScreen, extra: &Map<String, Value>) -> Resp {
        let Some(exec) = self.exec_mut(st) else {
            return gone();
        };
        if exec.screen != screen {
            exec.step = exec.step.saturating_add(1);
            exec.screen = screen;
        }
        let title = if exec.signup {
            "Sign up or sign in"
        } else {
            "Sign in"
        };
        let mut state = Map::new();
        state.insert("title".into(), json!(title));
        state.insert("form".into(), json!({ "email": exec.login_id }));
        if !exec.login_id.is_empty() {
            state.insert("maskedEmail".into(), json!(auth::mask(&exec.login_id)));
        }
        for (k, v) in extra {
            state.insert(k.clone(), v.clone());
        }
        json(
            StatusCode::OK,
            &json!({
                "executionId": self.exec_id,
                "stepId": exec.step.to_string(),
                "stepName": screen.step_name(),
                "status": "waiting",
                "action": "screen",
                "screen": { "id": screen.id(), "state": state, "componentsConfig": {} },
            }),
        )
    }

    /// The current screen again with an error under its fields.
    fn screen_error(&self, st: &mut State, text: &str) -> Resp {
        let screen = self.exec(st).map_or(FlowScreen::Welcome, |e| e.screen);
        self.screen(st, screen, &error_text(text))
    }

    /// The email of a `send-*` interaction, resolved to a user per the flow
    /// (sign-in: must exist; sign-up-or-in: created); stored on the execution.
    fn login_email(&self, st: &mut State) -> Result<(String, bool), Resp> {
        let email = self.input("email");
        let email = if email.is_empty() {
            self.input("loginId")
        } else {
            email
        };
        if !looks_like_email(&email) {
            return Err(self.screen_error(st, "Enter a valid email address."));
        }
        let signup = self.exec(st).is_some_and(|e| e.signup);
        if let Some(exec) = self.exec_mut(st) {
            exec.login_id.clone_from(&email);
        }
        let mode = if signup { Mode::Either } else { Mode::Existing };
        match auth::resolve_user(st, &email, mode, &Map::new()) {
            Ok((_, created)) => Ok((email, created)),
            Err(_) => Err(self.screen_error(
                st,
                "No account with this email. Ask an administrator to invite you.",
            )),
        }
    }

    fn send_code(&self, st: &mut State) -> Resp {
        let (email, created) = match self.login_email(st) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        self.deliver_code(st, &email, created);
        self.screen(st, FlowScreen::OtpCode, &Map::new())
    }

    /// Sends a fresh code (it replaces earlier ones) to the outbox.
    fn deliver_code(&self, st: &mut State, email: &str, created: bool) {
        let Some(user_id) = st.user_id_by_login(email) else {
            return;
        };
        let (to, _) = auth::destination(st, &user_id, email, "email");
        let code = st.new_otp(email, created, None);
        st.send(auth::outbox_entry(
            "otp",
            email,
            "email",
            &to,
            None,
            Some(code),
        ));
    }

    fn verify_code(&self, st: &mut State) -> Resp {
        let login_id = self
            .exec(st)
            .map(|e| e.login_id.clone())
            .unwrap_or_default();
        let code = self.input("code");
        match auth::check_otp(st, &login_id, &code) {
            Ok((first_seen, _)) => {
                let Some(user_id) = st.user_id_by_login(&login_id) else {
                    return self.screen_error(st, "No account with this email.");
                };
                let login = PendingLogin {
                    user_id,
                    amr: "email",
                    expires_at: now_secs(),
                    custom_claims: Map::new(),
                    tenant: None,
                    first_seen,
                    step_up: None,
                };
                self.complete(st, &login)
            }
            Err(OtpRefusal::Wrong) => self.screen_error(
                st,
                "That code is wrong or has expired. Check the email and try again.",
            ),
            Err(OtpRefusal::TooManyAttempts) => {
                self.screen_error(st, "Too many wrong codes. Send a new code to try again.")
            }
        }
    }

    fn send_link(&self, st: &mut State) -> Resp {
        if let Err(resp) = self.login_email(st) {
            return resp;
        }
        // The step the link resumes is the "check your email" step.
        let resp = self.screen(st, FlowScreen::LinkSent, &Map::new());
        self.deliver_link(st);
        resp
    }

    /// Sends a fresh magic link for the current ("check your email") step:
    /// `{location}?t={token}&descope-login-flow={executionId}_{stepId}`.
    fn deliver_link(&self, st: &mut State) {
        let Some(exec) = self.exec(st).cloned() else {
            return;
        };
        let Some(user_id) = st.user_id_by_login(&exec.login_id) else {
            return;
        };
        if let Some(old) = &exec.link_token {
            st.tokens.remove(old);
        }
        let token = st.new_token(PendingLogin {
            user_id: user_id.clone(),
            amr: "email",
            expires_at: now_secs().saturating_add(LINK_TTL_SECS),
            custom_claims: Map::new(),
            tenant: None,
            first_seen: false,
            step_up: None,
        });
        let link = append_query(
            &append_query(&exec.location, "t", &token),
            "descope-login-flow",
            &format!("{}_{}", self.exec_id, exec.step),
        );
        let (to, _) = auth::destination(st, &user_id, &exec.login_id, "email");
        st.send(auth::outbox_entry(
            "magiclink",
            &exec.login_id,
            "email",
            &to,
            Some(link),
            None,
        ));
        if let Some(exec) = self.exec_mut(st) {
            exec.link_token = Some(token);
        }
    }

    /// The tab the magic link opened: `next(submit, {token})`. Completes this
    /// tab, and lets the waiting tab's next poll complete too.
    fn link_opened(&self, st: &mut State, token: &str) -> Resp {
        let expected = self.exec(st).and_then(|e| e.link_token.clone());
        if expected.as_deref() != Some(token) {
            return self.screen_error(st, "This sign-in link is no longer valid. Send a new one.");
        }
        match st.tokens.remove(token) {
            Some(login) if login.expires_at >= now_secs() && login.amr == "email" => {
                if let Some(exec) = self.exec_mut(st) {
                    exec.link_token = None;
                    exec.link_login = Some(login.clone());
                }
                self.complete(st, &login)
            }
            Some(_) | None => {
                self.screen_error(st, "This sign-in link has expired. Send a new one.")
            }
        }
    }

    /// The waiting tab's poll: `poll` until the link is opened, then
    /// `completed` (once).
    fn poll(&self, st: &mut State) -> Resp {
        let opened = self.exec_mut(st).and_then(|e| e.link_login.take());
        match opened {
            Some(login) => self.complete(st, &login),
            None => {
                let step = self.exec(st).map(|e| e.step).unwrap_or(0);
                json(
                    StatusCode::OK,
                    &json!({
                        "executionId": self.exec_id,
                        "stepId": step.to_string(),
                        "status": "waiting",
                        "action": "poll",
                    }),
                )
            }
        }
    }

    /// `oauth-{provider}`: the consent page, which returns to the flow's page
    /// with `code` and `descope-login-flow`.
    fn oauth(&self, st: &mut State, provider: &str) -> Resp {
        if !OAUTH_PROVIDERS.contains(&provider) {
            return self.screen_error(st, "This sign-in provider is not offered.");
        }
        let Some(exec) = self.exec(st).cloned() else {
            return gone();
        };
        let redirect_url = append_query(
            &exec.location,
            "descope-login-flow",
            &format!("{}_{}", self.exec_id, exec.step),
        );
        let url = auth::new_authorization(
            st,
            &self.shared.base_url,
            Authorization {
                kind: "oauth",
                provider: provider.to_owned(),
                redirect_url,
                allow_signup: exec.signup,
                expires_at: now_secs().saturating_add(LINK_TTL_SECS),
                step_up: None,
            },
        );
        json(
            StatusCode::OK,
            &json!({
                "executionId": self.exec_id,
                "stepId": exec.step.to_string(),
                "stepName": "OAuth",
                "status": "waiting",
                "action": "redirect",
                "redirect": { "url": url, "isPopup": false },
                "screen": { "id": exec.screen.id(), "state": {}, "componentsConfig": {} },
            }),
        )
    }

    /// Back from the consent page: `next(submit, {exchangeCode})`.
    fn oauth_return(&self, st: &mut State, code: &str) -> Resp {
        match st.tokens.remove(code) {
            Some(login) if login.expires_at >= now_secs() && login.amr == "oauth" => {
                self.complete(st, &login)
            }
            Some(_) | None => self.screen(
                st,
                FlowScreen::Welcome,
                &error_text("That sign-in did not complete. Please try again."),
            ),
        }
    }

    /// `completed` with the JWT response in `authInfo`; the execution ends
    /// unless a waiting tab still has to collect its session.
    fn complete(&self, st: &mut State, login: &PendingLogin) -> Resp {
        match auth::finish_login(&self.shared.issuer(), st, login) {
            Ok((issued, first_seen)) => {
                let (body, cookies) = jwt_body(st, &issued, &login.user_id, first_seen, true);
                let step = self.exec(st).map(|e| e.step).unwrap_or(0);
                if self.exec(st).is_some_and(|e| e.link_login.is_none()) {
                    st.flow_executions.remove(&self.exec_id);
                }
                let login_id = st
                    .users
                    .get(&login.user_id)
                    .and_then(|u| u.login_ids.first().cloned())
                    .unwrap_or_default();
                let mut resp = json(
                    StatusCode::OK,
                    &json!({
                        "executionId": self.exec_id,
                        "stepId": step.to_string(),
                        "stepName": "Completed",
                        "status": "completed",
                        "action": "none",
                        "authInfo": body,
                        "lastAuth": { "authMethod": login.amr, "loginId": login_id },
                    }),
                );
                append_cookies(&mut resp, &cookies);
                resp
            }
            Err(refusal) => self.screen_error(st, refusal.text()),
        }
    }
}

fn gone() -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E103205",
        "Flow execution not found",
        "The flow execution is unknown or timed out; start the flow again",
    )
}

fn error_text(text: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("errorText".into(), json!(text));
    m
}

/// An informational message where errors show (the screens have one slot).
fn notice(text: &str) -> Map<String, Value> {
    error_text(text)
}

/// `local@domain.tld`, no spaces: what the email field accepts too.
fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
        && s.len() <= 254
}

//! The auth API's login methods: magic link, enchanted link, OTP, TOTP,
//! password, OAuth and SSO/SAML (paths and bodies from py
//! `descope/authmethod/*.py` and core-js `sdk/*`). Descope Flows (`flow.rs`)
//! reuse the building blocks here.
//!
//! Every login ends in a [`PendingLogin`] being completed: the user is marked
//! seen, a session + refresh pair is issued and answered as a JWTResponse
//! (cookie mode respected). Links, codes and OAuth/SSO codes are single-use.
//! "Sent" links and codes land in the outbox.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::http::{Req, Resp, append_query, error, json, missing, ok_empty, str_field};
use crate::options::OutboxEntry;
use crate::shared::Shared;
use crate::state::{
    Authorization, LINK_TTL_SECS, PendingLogin, State, StepUp, TenantMembership, UserSpec,
};
use crate::tokens::{internal, jwt_response, refused};
use crate::util::{now_secs, random_hex};

/// Shortest password accepted by password sign-up (the emulator's policy).
pub(crate) const DEFAULT_PASSWORD_MIN_LENGTH: usize = 8;
/// Wrong OTP entries allowed before the code is burnt (`E061103`).
const MAX_OTP_ATTEMPTS: u32 = 5;
/// TOTP step (RFC 6238).
const TOTP_STEP_SECS: i64 = 30;

/// Which user-existence rule a login start applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Sign-in: the user must exist.
    Existing,
    /// Sign-up: the user must not exist.
    New,
    /// Sign-up-or-in.
    Either,
}

impl Mode {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "signin" => Some(Self::Existing),
            "signup" => Some(Self::New),
            "signup-in" => Some(Self::Either),
            _ => None,
        }
    }
}

/// `None` when the path is not a flow endpoint.
pub(crate) fn handle(shared: &Shared, req: &Req) -> Option<Resp> {
    let path = req.path.strip_prefix("/v1/auth/")?;
    let segments: Vec<&str> = path.split('/').collect();
    let post = req.method == Method::POST;
    let body = if post {
        match req.json() {
            Ok(b) => b,
            Err(resp) => return Some(resp),
        }
    } else {
        Map::new()
    };
    let step_up = match step_up(shared, req, &body) {
        Ok(s) => s,
        Err(resp) => return Some(resp),
    };
    let resp = match (post, segments.as_slice()) {
        (true, ["magiclink", "verify"]) => verify_token(shared, &body),
        (true, ["magiclink", mode, method]) => match Mode::parse(mode) {
            Some(mode) => link_start(shared, &body, mode, method, false, step_up),
            None => return None,
        },
        (true, ["enchantedlink", "verify"]) => enchanted_verify(shared, &body),
        (true, ["enchantedlink", "pending-session"]) => pending_session(shared, &body),
        (true, ["enchantedlink", mode, method]) => match Mode::parse(mode) {
            Some(mode) => link_start(shared, &body, mode, method, true, step_up),
            None => return None,
        },
        (true, ["otp", "verify", method]) => otp_verify(shared, &body, method),
        (true, ["otp", mode, method]) => match Mode::parse(mode) {
            Some(mode) => otp_start(shared, &body, mode, method, step_up),
            None => return None,
        },
        (true, ["totp", "signup"]) => totp_signup(shared, &body),
        (true, ["totp", "update"]) => totp_update(shared, &body),
        (true, ["totp", "verify"]) => totp_verify(shared, &body, step_up),
        (true, ["password", "signup"]) => password_signup(shared, &body),
        (true, ["password", "signin"]) => password_signin(shared, &body, step_up),
        (true, ["password", "replace"]) => password_replace(shared, &body),
        (true, ["password", "update"]) => password_update(shared, &body),
        (true, ["password", "reset"]) => password_reset(shared, &body),
        (false, ["password", "policy"]) => json(
            StatusCode::OK,
            &json!({"active": true, "minLength": DEFAULT_PASSWORD_MIN_LENGTH, "lowercase": false,
                    "uppercase": false, "number": false, "nonAlphanumeric": false}),
        ),
        (true, ["oauth", "authorize"]) => authorize(shared, req, "oauth", true, step_up),
        (true, ["oauth", "authorize", "signin"]) => authorize(shared, req, "oauth", false, step_up),
        (true, ["oauth", "authorize", "signup" | "signup-in" | "update"]) => {
            authorize(shared, req, "oauth", true, step_up)
        }
        (
            true,
            ["sso" | "saml", "authorize"]
            | [
                "sso" | "saml",
                "authorize",
                "signin" | "signup" | "signup-in",
            ],
        ) => authorize(shared, req, "sso", true, step_up),
        (true, ["oauth" | "sso" | "saml", "exchange"] | ["oauth", "authorize", "exchange"]) => {
            exchange(shared, &body)
        }
        _ => return None,
    };
    Some(resp)
}

// === shared helpers ===

/// The session a step-up / MFA login adds to: when the login options (nested
/// under `loginOptions`, or the body itself for OAuth/SSO) ask for `stepup`
/// or `mfa`, the refresh token in `Bearer pid:refreshJwt` must be valid.
fn step_up(shared: &Shared, req: &Req, body: &Map<String, Value>) -> Result<Option<StepUp>, Resp> {
    let options = body
        .get("loginOptions")
        .and_then(Value::as_object)
        .unwrap_or(body);
    let wanted = ["stepup", "stepUp", "mfa"]
        .iter()
        .any(|k| options.get(*k).and_then(Value::as_bool).unwrap_or(false));
    if !wanted {
        return Ok(None);
    }
    let parts = req.bearer_parts();
    let Some(token) = parts.get(1).filter(|t| !t.is_empty()) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "E061301",
            "Unauthorized",
            "Step-up and MFA logins need the current refresh token",
        ));
    };
    let claims = shared
        .lock()
        .check_refresh(token)
        .map_err(|r| refused(Some(r)))?;
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Some(StepUp { sub, amr }))
}

/// Completes a login: marks the user seen and answers a JWTResponse.
fn complete(shared: &Shared, st: &mut State, login: &PendingLogin) -> Resp {
    match finish_login(&shared.issuer(), st, login) {
        Ok((issued, first_seen)) => jwt_response(st, &issued, &login.user_id, first_seen, true),
        Err(refusal) => refusal.response(),
    }
}

/// Why a login cannot complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginRefusal {
    UnknownUser,
    Disabled,
    Signing,
}

impl LoginRefusal {
    /// The auth API's answer.
    pub(crate) fn response(self) -> Resp {
        match self {
            Self::UnknownUser => user_not_found(),
            Self::Disabled => error(
                StatusCode::FORBIDDEN,
                "E062109",
                "User disabled",
                "The user is disabled",
            ),
            Self::Signing => internal(),
        }
    }

    /// What a flow screen says.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::UnknownUser => "No account with this email.",
            Self::Disabled => "This account is disabled.",
            Self::Signing => "The emulator could not sign a token.",
        }
    }
}

/// Marks the user seen and issues the session + refresh pair of a completed
/// login; returns the tokens and `firstSeen`.
pub(crate) fn finish_login(
    issuer: &str,
    st: &mut State,
    login: &PendingLogin,
) -> Result<(crate::state::Issued, bool), LoginRefusal> {
    let Some(user) = st.users.get_mut(&login.user_id) else {
        return Err(LoginRefusal::UnknownUser);
    };
    if user.status == "disabled" {
        return Err(LoginRefusal::Disabled);
    }
    let first_seen = login.first_seen || !user.seen;
    user.seen = true;
    if login.amr == "email" {
        user.verified_email = true;
    }
    // A step-up adds this factor to the factors of the same user's session.
    let mut factors: Vec<String> = match &login.step_up {
        Some(s) if s.sub == login.user_id => s.amr.clone(),
        Some(_) | None => Vec::new(),
    };
    if !factors.iter().any(|f| f == login.amr) {
        factors.push(login.amr.to_owned());
    }
    let amr = json!(factors);
    st.issue(
        issuer,
        &login.user_id,
        &amr,
        login.tenant.as_deref(),
        &login.custom_claims,
    )
    .map(|issued| (issued, first_seen))
    .map_err(|_| LoginRefusal::Signing)
}

fn user_not_found() -> Resp {
    error(
        StatusCode::BAD_REQUEST,
        "E062108",
        "User not found",
        "No user with this login id; sign up first",
    )
}

fn user_exists() -> Resp {
    error(
        StatusCode::CONFLICT,
        "E062107",
        "User already exists",
        "A user with this login id already exists",
    )
}

fn invalid_token() -> Resp {
    error(
        StatusCode::UNAUTHORIZED,
        "E061301",
        "Unauthorized",
        "The token or code is invalid, used or expired",
    )
}

/// Finds or creates the user of a login start per `mode`; `(user_id, created)`.
pub(crate) fn resolve_user(
    st: &mut State,
    login_id: &str,
    mode: Mode,
    body: &Map<String, Value>,
) -> Result<(String, bool), Resp> {
    if login_id.is_empty() {
        return Err(missing("loginId"));
    }
    match (st.user_id_by_login(login_id), mode) {
        (Some(_), Mode::New) => Err(user_exists()),
        (Some(id), Mode::Existing | Mode::Either) => Ok((id, false)),
        (None, Mode::Existing) => Err(user_not_found()),
        (None, Mode::New | Mode::Either) => {
            let user = body.get("user").and_then(Value::as_object);
            let field = |k: &str| {
                user.and_then(|u| u.get(k))
                    .or_else(|| body.get(k))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let spec = UserSpec {
                login_id: login_id.to_owned(),
                name: field("name"),
                email: field("email"),
                phone: field("phone"),
                password: body
                    .get("password")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..UserSpec::default()
            };
            Ok((st.upsert_user(spec), true))
        }
    }
}

/// `a***@example.com` / `+*******0100`.
pub(crate) fn mask(value: &str) -> String {
    match value.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => {
            let n = value.chars().count();
            let tail: String = value.chars().skip(n.saturating_sub(4)).collect();
            format!("{}{tail}", "*".repeat(n.saturating_sub(4)))
        }
    }
}

/// Where a message to this user goes for a delivery method, and the masked field.
pub(crate) fn destination(
    st: &State,
    user_id: &str,
    login_id: &str,
    method: &str,
) -> (String, &'static str) {
    let user = st.users.get(user_id);
    match method {
        "email" => (
            user.map(|u| u.email.clone())
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| login_id.to_owned()),
            "maskedEmail",
        ),
        _ => (
            user.map(|u| u.phone.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| login_id.to_owned()),
            "maskedPhone",
        ),
    }
}

fn valid_method(method: &str) -> bool {
    matches!(method, "email" | "sms" | "voice" | "whatsapp" | "im")
}

// === magic link and enchanted link ===

fn link_start(
    shared: &Shared,
    body: &Map<String, Value>,
    mode: Mode,
    method: &str,
    enchanted: bool,
    step_up: Option<StepUp>,
) -> Resp {
    if !valid_method(method) || (enchanted && method != "email") {
        return error(
            StatusCode::BAD_REQUEST,
            "E011004",
            "Invalid arguments",
            "Unsupported delivery method",
        );
    }
    let login_id = str_field(body, &["loginId"]).to_owned();
    let uri = str_field(body, &["URI", "redirectUrl", "redirectURL"]).to_owned();
    if uri.is_empty() {
        return missing("URI");
    }
    let mut st = shared.lock();
    let (user_id, created) = match resolve_user(&mut st, &login_id, mode, body) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let (to, masked_key) = destination(&st, &user_id, &login_id, method);
    let login = PendingLogin {
        user_id,
        amr: if method == "email" { "email" } else { "sms" },
        expires_at: now_secs().saturating_add(LINK_TTL_SECS),
        custom_claims: custom_claims(body),
        tenant: None,
        first_seen: created,
        step_up,
    };
    if enchanted {
        let (token, pending_ref) = st.new_enchanted(login);
        let link = append_query(&uri, "t", &token);
        use rand::Rng as _;
        let link_id = format!("{}", rand::rng().random_range(10..100u32));
        st.send(outbox_entry(
            "enchantedlink",
            &login_id,
            method,
            &to,
            Some(link),
            Some(link_id.clone()),
        ));
        json(
            StatusCode::OK,
            &json!({"pendingRef": pending_ref, "linkId": link_id, "maskedEmail": mask(&to)}),
        )
    } else {
        let token = st.new_token(login);
        let link = append_query(&uri, "t", &token);
        st.send(outbox_entry(
            "magiclink",
            &login_id,
            method,
            &to,
            Some(link),
            None,
        ));
        json(StatusCode::OK, &json!({ masked_key: mask(&to) }))
    }
}

pub(crate) fn custom_claims(body: &Map<String, Value>) -> Map<String, Value> {
    body.get("loginOptions")
        .and_then(Value::as_object)
        .and_then(|o| o.get("customClaims"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn outbox_entry(
    kind: &str,
    login_id: &str,
    delivery: &str,
    to: &str,
    link: Option<String>,
    code: Option<String>,
) -> OutboxEntry {
    OutboxEntry {
        id: 0,
        kind: kind.to_owned(),
        login_id: login_id.to_owned(),
        delivery: delivery.to_owned(),
        to: to.to_owned(),
        email: (delivery == "email").then(|| to.to_owned()),
        link,
        code,
        sent_at: 0,
    }
}

/// `POST /v1/auth/magiclink/verify` `{token}` (also embedded links and
/// password-reset links).
fn verify_token(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let token = str_field(body, &["token"]);
    if token.is_empty() {
        return missing("token");
    }
    let mut st = shared.lock();
    match st.tokens.remove(token) {
        Some(login) if login.expires_at >= now_secs() && matches!(login.amr, "email" | "sms") => {
            complete(shared, &mut st, &login)
        }
        Some(_) | None => invalid_token(),
    }
}

/// `POST /v1/auth/enchantedlink/verify` `{token}` → `{}`; the pending session
/// becomes ready.
fn enchanted_verify(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let token = str_field(body, &["token"]);
    let mut st = shared.lock();
    let Some(pending_ref) = st.enchanted_tokens.remove(token) else {
        return invalid_token();
    };
    match st.pending_sessions.get_mut(&pending_ref) {
        Some(session) if session.login.expires_at >= now_secs() => {
            session.verified = true;
            ok_empty()
        }
        Some(_) | None => invalid_token(),
    }
}

/// `POST /v1/auth/enchantedlink/pending-session` `{pendingRef}`: 401 `E062503`
/// while the link is not clicked, then the JWTResponse (once).
fn pending_session(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let pending_ref = str_field(body, &["pendingRef"]);
    let mut st = shared.lock();
    match st.pending_sessions.get(pending_ref) {
        None => invalid_token(),
        Some(s) if s.login.expires_at < now_secs() => invalid_token(),
        Some(s) if !s.verified => error(
            StatusCode::UNAUTHORIZED,
            "E062503",
            "Enchanted link is pending",
            "The link has not been clicked yet",
        ),
        Some(_) => match st.pending_sessions.remove(pending_ref) {
            Some(s) => complete(shared, &mut st, &s.login),
            None => invalid_token(),
        },
    }
}

// === OTP ===

fn otp_start(
    shared: &Shared,
    body: &Map<String, Value>,
    mode: Mode,
    method: &str,
    step_up: Option<StepUp>,
) -> Resp {
    if !valid_method(method) {
        return error(
            StatusCode::BAD_REQUEST,
            "E011004",
            "Invalid arguments",
            "Unsupported delivery method",
        );
    }
    let login_id = str_field(body, &["loginId"]).to_owned();
    let mut st = shared.lock();
    let (user_id, created) = match resolve_user(&mut st, &login_id, mode, body) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let (to, masked_key) = destination(&st, &user_id, &login_id, method);
    let code = st.new_otp(&login_id, created, step_up);
    st.send(outbox_entry(
        "otp",
        &login_id,
        method,
        &to,
        None,
        Some(code),
    ));
    json(StatusCode::OK, &json!({ masked_key: mask(&to) }))
}

fn otp_verify(shared: &Shared, body: &Map<String, Value>, method: &str) -> Resp {
    let login_id = str_field(body, &["loginId"]);
    let code = str_field(body, &["code"]);
    if login_id.is_empty() {
        return missing("loginId");
    }
    let mut st = shared.lock();
    let (first_seen, step_up) = match check_otp(&mut st, login_id, code) {
        Ok(x) => x,
        Err(OtpRefusal::Wrong) => return wrong_code(),
        Err(OtpRefusal::TooManyAttempts) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "E061103",
                "Too many OTP attempts",
                "Too many wrong codes; request a new one",
            );
        }
    };
    let Some(user_id) = st.user_id_by_login(login_id) else {
        return user_not_found();
    };
    if let Some(user) = st.users.get_mut(&user_id) {
        if method == "email" {
            user.verified_email = true;
        } else {
            user.verified_phone = true;
        }
    }
    let login = PendingLogin {
        user_id,
        amr: if method == "email" { "email" } else { "sms" },
        expires_at: now_secs(),
        custom_claims: custom_claims(body),
        tenant: None,
        first_seen,
        step_up,
    };
    complete(shared, &mut st, &login)
}

/// Why a one-time code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtpRefusal {
    /// Wrong, expired or never sent.
    Wrong,
    /// The last allowed wrong entry: the code is burnt.
    TooManyAttempts,
}

/// Checks (and on success consumes) the code sent to `login_id`; returns
/// the sign-up flag and step-up of the start that sent it. Every wrong
/// entry counts; the [`MAX_OTP_ATTEMPTS`]th burns the code.
pub(crate) fn check_otp(
    st: &mut State,
    login_id: &str,
    code: &str,
) -> Result<(bool, Option<StepUp>), OtpRefusal> {
    let key = login_id.to_lowercase();
    let Some(entry) = st.otp_codes.get_mut(&key) else {
        return Err(OtpRefusal::Wrong);
    };
    if entry.expires_at < now_secs() {
        st.otp_codes.remove(&key);
        return Err(OtpRefusal::Wrong);
    }
    let matches =
        aws_lc_rs::constant_time::verify_slices_are_equal(entry.code.as_bytes(), code.as_bytes())
            .is_ok();
    if !matches {
        entry.attempts += 1;
        if entry.attempts >= MAX_OTP_ATTEMPTS {
            st.otp_codes.remove(&key);
            return Err(OtpRefusal::TooManyAttempts);
        }
        return Err(OtpRefusal::Wrong);
    }
    let result = (entry.first_seen, entry.step_up.clone());
    st.otp_codes.remove(&key);
    Ok(result)
}

fn wrong_code() -> Resp {
    error(
        StatusCode::UNAUTHORIZED,
        "E061102",
        "Wrong OTP code",
        "The code is wrong or expired",
    )
}

// === TOTP (RFC 6238, HMAC-SHA1, 6 digits, 30 s) ===

fn totp_signup(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let mut st = shared.lock();
    let (user_id, _) = match resolve_user(&mut st, &login_id, Mode::New, body) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    totp_provision(&mut st, &user_id, &login_id)
}

fn totp_update(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let mut st = shared.lock();
    let Some(user_id) = st.user_id_by_login(&login_id) else {
        return user_not_found();
    };
    totp_provision(&mut st, &user_id, &login_id)
}

fn totp_provision(st: &mut State, user_id: &str, login_id: &str) -> Resp {
    let mut secret = vec![0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    let key = base32(&secret);
    if let Some(user) = st.users.get_mut(user_id) {
        user.totp_secret = Some(secret);
    }
    let label: String = form_urlencoded::byte_serialize(login_id.as_bytes()).collect();
    let url =
        format!("otpauth://totp/Descope-Emulator:{label}?secret={key}&issuer=Descope-Emulator");
    json(
        StatusCode::OK,
        &json!({"provisioningURL": url, "image": "", "key": key}),
    )
}

fn totp_verify(shared: &Shared, body: &Map<String, Value>, step_up: Option<StepUp>) -> Resp {
    let login_id = str_field(body, &["loginId"]);
    let code = str_field(body, &["code"]);
    let mut st = shared.lock();
    let Some(user_id) = st.user_id_by_login(login_id) else {
        return user_not_found();
    };
    let Some(secret) = st.users.get(&user_id).and_then(|u| u.totp_secret.clone()) else {
        return wrong_code();
    };
    let step = now_secs() / TOTP_STEP_SECS;
    let ok = [step - 1, step, step + 1]
        .iter()
        .any(|s| totp_code(&secret, *s) == code);
    if !ok {
        return wrong_code();
    }
    let login = PendingLogin {
        user_id,
        amr: "totp",
        expires_at: now_secs(),
        custom_claims: custom_claims(body),
        tenant: None,
        first_seen: false,
        step_up,
    };
    complete(shared, &mut st, &login)
}

/// The six-digit RFC 6238 code of `secret` for time step `step`.
pub(crate) fn totp_code(secret: &[u8], step: i64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = aws_lc_rs::hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// RFC 4648 base32 without padding (the `otpauth` secret format).
pub(crate) fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

// === password ===

fn weak_password(password: &str) -> Option<Resp> {
    (password.chars().count() < DEFAULT_PASSWORD_MIN_LENGTH).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            "E062902",
            "Password does not meet the policy",
            &format!("Passwords need at least {DEFAULT_PASSWORD_MIN_LENGTH} characters"),
        )
    })
}

fn password_signup(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let password = str_field(body, &["password"]);
    if let Some(resp) = weak_password(password) {
        return resp;
    }
    let mut st = shared.lock();
    let (user_id, _) = match resolve_user(&mut st, &login_id, Mode::New, body) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if let Some(user) = st.users.get_mut(&user_id) {
        user.password = Some(password.to_owned());
    }
    let login = password_login(user_id, true);
    complete(shared, &mut st, &login)
}

fn password_login(user_id: String, first_seen: bool) -> PendingLogin {
    PendingLogin {
        user_id,
        amr: "pwd",
        expires_at: now_secs(),
        custom_claims: Map::new(),
        tenant: None,
        first_seen,
        step_up: None,
    }
}

/// The user whose password matches, or 401.
fn check_password(st: &State, login_id: &str, password: &str) -> Result<String, Resp> {
    let user = st.user_by_login(login_id).ok_or_else(user_not_found)?;
    let matches = user.password.as_deref().is_some_and(|p| {
        aws_lc_rs::constant_time::verify_slices_are_equal(p.as_bytes(), password.as_bytes()).is_ok()
    });
    if matches {
        Ok(user.user_id.clone())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "E062901",
            "Invalid credentials",
            "The login id or password is wrong",
        ))
    }
}

fn password_signin(shared: &Shared, body: &Map<String, Value>, step_up: Option<StepUp>) -> Resp {
    let mut st = shared.lock();
    match check_password(
        &st,
        str_field(body, &["loginId"]),
        str_field(body, &["password"]),
    ) {
        Ok(user_id) => {
            let mut login = password_login(user_id, false);
            login.step_up = step_up;
            complete(shared, &mut st, &login)
        }
        Err(resp) => resp,
    }
}

fn password_replace(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let new = str_field(body, &["newPassword"]);
    if let Some(resp) = weak_password(new) {
        return resp;
    }
    let mut st = shared.lock();
    match check_password(
        &st,
        str_field(body, &["loginId"]),
        str_field(body, &["oldPassword"]),
    ) {
        Ok(user_id) => {
            if let Some(user) = st.users.get_mut(&user_id) {
                user.password = Some(new.to_owned());
            }
            complete(shared, &mut st, &password_login(user_id, false))
        }
        Err(resp) => resp,
    }
}

/// `POST /v1/auth/password/update` `{loginId, newPassword}`; the refresh token
/// in the Authorization header must belong to the user.
fn password_update(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let new = str_field(body, &["newPassword"]);
    if let Some(resp) = weak_password(new) {
        return resp;
    }
    let mut st = shared.lock();
    let Some(user_id) = st.user_id_by_login(str_field(body, &["loginId"])) else {
        return user_not_found();
    };
    if let Some(user) = st.users.get_mut(&user_id) {
        user.password = Some(new.to_owned());
    }
    ok_empty()
}

fn password_reset(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let login_id = str_field(body, &["loginId"]).to_owned();
    let uri = str_field(body, &["redirectUrl", "URI", "redirectURL"]).to_owned();
    let mut st = shared.lock();
    let Some(user_id) = st.user_id_by_login(&login_id) else {
        return user_not_found();
    };
    let (to, _) = destination(&st, &user_id, &login_id, "email");
    let login = PendingLogin {
        user_id,
        amr: "email",
        expires_at: now_secs().saturating_add(LINK_TTL_SECS),
        custom_claims: Map::new(),
        tenant: None,
        first_seen: false,
        step_up: None,
    };
    let token = st.new_token(login);
    let link = if uri.is_empty() {
        None
    } else {
        Some(append_query(&uri, "t", &token))
    };
    st.send(outbox_entry(
        "password-reset",
        &login_id,
        "email",
        &to,
        link,
        Some(token),
    ));
    json(
        StatusCode::OK,
        &json!({"resetMethod": "magiclink", "maskedEmail": mask(&to)}),
    )
}

// === OAuth and SSO ===

/// `POST /v1/auth/oauth/authorize?provider=&redirectURL=` and
/// `/v1/auth/{sso,saml}/authorize?tenant=&redirectURL=` → `{url}` of the
/// hosted consent / IdP page.
fn authorize(
    shared: &Shared,
    req: &Req,
    kind: &'static str,
    allow_signup: bool,
    step_up: Option<StepUp>,
) -> Resp {
    let redirect_url = req
        .query_any(&["redirectURL", "redirectUrl", "redirect_url"])
        .unwrap_or_default()
        .to_owned();
    let mut st = shared.lock();
    let provider = if kind == "oauth" {
        req.query_any(&["provider"]).unwrap_or("google").to_owned()
    } else {
        let Some(tenant) = req.query_any(&["tenant"]) else {
            return missing("tenant");
        };
        match find_sso_tenant(&st, tenant) {
            Some(id) => id,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "E011004",
                    "Invalid arguments",
                    "No tenant with SSO configured matches",
                );
            }
        }
    };
    let redirect_url = if redirect_url.is_empty() && kind == "sso" {
        // The tenant's configured redirect URL, when the start names none.
        st.tenants
            .get(&provider)
            .and_then(|t| t.sso_config.as_ref())
            .map(|c| c.redirect_url.clone())
            .unwrap_or_default()
    } else {
        redirect_url
    };
    let url = new_authorization(
        &mut st,
        &shared.base_url,
        Authorization {
            kind,
            provider,
            redirect_url,
            allow_signup,
            expires_at: now_secs().saturating_add(LINK_TTL_SECS),
            step_up,
        },
    );
    json(StatusCode::OK, &json!({ "url": url }))
}

/// Stores an authorize request for the hosted consent (OAuth) or IdP (SSO)
/// page and returns that page's URL.
pub(crate) fn new_authorization(st: &mut State, base_url: &str, auth: Authorization) -> String {
    let state = random_hex(16);
    let page = if auth.kind == "oauth" {
        "oauth/consent"
    } else {
        "sso/idp"
    };
    st.sweep();
    st.authorizations.insert(state.clone(), auth);
    format!("{base_url}/emulator/{page}?state={state}")
}

/// A tenant by id, or by the domain of an email; it must have SSO on
/// (seeded, `enforceSSO`, or settings configured through the management API).
fn find_sso_tenant(st: &State, tenant: &str) -> Option<String> {
    if let Some(t) = st.tenants.get(tenant) {
        return t.is_sso().then(|| t.id.clone());
    }
    let domain = tenant.rsplit_once('@').map_or(tenant, |(_, d)| d);
    st.tenants
        .values()
        .find(|t| t.is_sso() && t.has_domain(domain))
        .map(|t| t.id.clone())
}

/// Completes a hosted-page choice: a code for the chosen user, or the
/// created user for a sign-up. Returns the URL to send the browser to.
pub(crate) fn consent(
    st: &mut State,
    state: &str,
    user_id: Option<&str>,
    new_login: Option<&str>,
) -> Result<String, &'static str> {
    let auth = st
        .authorizations
        .remove(state)
        .filter(|a| a.expires_at >= now_secs())
        .ok_or("This sign-in request is unknown or expired; start again.")?;
    let (user_id, created) = match (user_id, new_login) {
        (Some(id), _) if st.users.contains_key(id) => (id.to_owned(), false),
        (_, Some(login)) if !login.trim().is_empty() => {
            let login = login.trim();
            match st.user_id_by_login(login) {
                Some(id) => (id, false),
                None if auth.allow_signup || auth.kind == "sso" => {
                    let spec = UserSpec {
                        login_id: login.to_owned(),
                        ..UserSpec::default()
                    };
                    (st.upsert_user(spec), true)
                }
                None => return Err("No such user, and this request does not allow sign-up."),
            }
        }
        _ => return Err("Pick a user."),
    };
    let tenant = (auth.kind == "sso").then(|| auth.provider.clone());
    if let Some(tenant_id) = &tenant {
        // SSO provisions the user into the tenant (just-in-time), with the
        // default SSO roles of the tenant's settings.
        let roles = st
            .tenants
            .get(tenant_id)
            .and_then(|t| t.sso_config.as_ref())
            .map(|c| c.default_roles.clone())
            .unwrap_or_default();
        if let Some(user) = st.users.get_mut(&user_id)
            && !user.tenants.iter().any(|t| &t.id == tenant_id)
        {
            user.tenants.push(TenantMembership {
                id: tenant_id.clone(),
                roles,
            });
        }
    }
    let login = PendingLogin {
        user_id,
        amr: if auth.kind == "sso" { "fed" } else { "oauth" },
        expires_at: now_secs().saturating_add(LINK_TTL_SECS),
        custom_claims: Map::new(),
        tenant: None,
        first_seen: created,
        step_up: auth.step_up.clone(),
    };
    let code = st.new_token(login);
    if auth.redirect_url.is_empty() {
        Ok(format!("/emulator/oauth/code?code={code}"))
    } else {
        Ok(append_query(&auth.redirect_url, "code", &code))
    }
}

/// `POST /v1/auth/{oauth,sso,saml}/exchange` `{code}` → JWTResponse.
fn exchange(shared: &Shared, body: &Map<String, Value>) -> Resp {
    let code = str_field(body, &["code"]);
    if code.is_empty() {
        return missing("code");
    }
    let mut st = shared.lock();
    match st.tokens.remove(code) {
        Some(login) if login.expires_at >= now_secs() && login.amr != "email" => {
            complete(shared, &mut st, &login)
        }
        Some(_) | None => invalid_token(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 8 digits
        // truncated here to the last 6.
        let secret = b"12345678901234567890";
        for (time, code8) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp_code(secret, time / 30), code8[2..], "t={time}");
        }
    }

    #[test]
    fn base32_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn masks_emails_and_phones() {
        assert_eq!(mask("alice@example.com"), "a***@example.com");
        assert_eq!(mask("+15555550100"), "********0100");
    }
}

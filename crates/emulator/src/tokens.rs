//! Answers that carry tokens, shared by every login method: the JWTResponse
//! builder (cookie mode included), refused-refresh and signing-failure errors,
//! and reading a request cookie.

use http::StatusCode;
use http::header::{HeaderValue, SET_COOKIE};

use crate::http::{Req, Resp, error, json};
use crate::keys::VerifyError;
use crate::state::{Issued, RefreshRefusal, State};
use crate::util::now_secs;
use portcullis_wire::JwtResponse;

/// A cookie sent with the request.
pub(crate) fn cookie_value(req: &Req, name: &str) -> Option<String> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `401` for a refused refresh token.
pub(crate) fn refused(reason: Option<RefreshRefusal>) -> Resp {
    let (code, message) = match reason {
        None => ("E061301", "Refresh token is missing"),
        Some(RefreshRefusal::Revoked) => ("E064001", "Token expired by logged out"),
        Some(RefreshRefusal::Verify(VerifyError::Expired)) => {
            ("E061301", "Refresh token has expired")
        }
        Some(RefreshRefusal::Verify(
            VerifyError::Malformed | VerifyError::UnknownKey | VerifyError::Invalid,
        )) => ("E061301", "Refresh token is invalid"),
        Some(RefreshRefusal::NotRefresh) => ("E061301", "The token is not a refresh token"),
    };
    error(StatusCode::UNAUTHORIZED, code, "Unauthorized", message)
}

/// `500` when signing fails (it cannot with a generated key).
pub(crate) fn internal() -> Resp {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "E010000",
        "Internal error",
        "The emulator could not sign a token",
    )
}

/// Builds the JWTResponse for issued tokens. The refresh token goes in the
/// body (`include_refresh`) or, in cookie mode, in `Set-Cookie` only; in
/// cookie mode the session token is also set as a `DS` cookie.
pub(crate) fn jwt_response(
    st: &State,
    issued: &Issued,
    sub: &str,
    first_seen: bool,
    include_refresh: bool,
) -> Resp {
    let (body, cookies) = jwt_body(st, issued, sub, first_seen, include_refresh);
    let mut resp = json(StatusCode::OK, &body);
    append_cookies(&mut resp, &cookies);
    resp
}

/// The JWTResponse body of [`jwt_response`] and, in cookie mode, the
/// `Set-Cookie` values that go with it (a flow's `authInfo` is this body).
pub(crate) fn jwt_body(
    st: &State,
    issued: &Issued,
    sub: &str,
    first_seen: bool,
    include_refresh: bool,
) -> (JwtResponse, Vec<String>) {
    let now = now_secs();
    let max_age = issued.refresh_exp.saturating_sub(now).max(0);
    let body = JwtResponse {
        session_jwt: issued.session.clone(),
        refresh_jwt: (include_refresh && !st.cookie_mode).then(|| issued.refresh.clone()),
        cookie_path: "/".to_owned(),
        cookie_max_age: max_age,
        cookie_expiration: issued.refresh_exp,
        user: st.users.get(sub).map(|u| st.user_response(u)),
        first_seen,
        session_expiration: issued.session_exp,
        ..JwtResponse::default()
    };
    let mut cookies = Vec::new();
    if st.cookie_mode {
        let session_age = issued.session_exp.saturating_sub(now).max(0);
        for (name, value, age) in [
            ("DS", &issued.session, session_age),
            ("DSR", &issued.refresh, max_age),
        ] {
            cookies.push(format!(
                "{name}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict"
            ));
        }
    }
    (body, cookies)
}

/// Appends `Set-Cookie` headers.
pub(crate) fn append_cookies(resp: &mut Resp, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
}

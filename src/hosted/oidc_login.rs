//! The OIDC mode's sign-in: `/login` sends the browser to the provider's
//! authorization endpoint (code flow with `state`, `nonce` and PKCE S256,
//! all remembered in a per-login signed state cookie), and
//! `/oidc/callback` turns the code into a sealed session.
//!
//! A callback with `error=`, without its state cookie, with a tampered
//! state, a replayed code or a token that fails verification gets a 4xx
//! page (a 5xx only when the provider is down), never a session.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::HeaderMap;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::answer::{self, append_cookies};
use crate::http_util::Body;
use crate::login_state::{
    DEFAULT_STATE_TTL, LoginKind, MAX_STATE_COOKIES, StateCodec, clear_state_cookie, now_unix,
};
use crate::oidc::{Oidc, SealedSession, TokenError, TokenResponse};
use crate::pages::{self, PageSettings};
use crate::proxy::ClientInfo;
use crate::state::Generation;

/// What the state cookie carries besides `return_to`.
#[derive(Serialize, Deserialize)]
struct Extra {
    /// The OpenID Connect `nonce`.
    n: String,
    /// The PKCE code verifier, when PKCE is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
}

fn page(generation: &Generation, status: StatusCode, title: &str, text: &str) -> Response<Body> {
    let cfg = &generation.config;
    let settings = PageSettings::plain(
        &cfg.login.app_name,
        cfg.login.logo_url.as_deref(),
        &cfg.server.auth_prefix,
    );
    answer::page(pages::message(&settings, status, title, text, true))
}

fn random_b64(n: usize) -> Option<String> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).ok()?;
    Some(URL_SAFE_NO_PAD.encode(buf))
}

/// `GET /login` without a session: 302 to the provider.
pub async fn start(
    oidc: &Oidc,
    store: &crate::store::Store,
    generation: &Generation,
    headers: &HeaderMap,
    return_to: &str,
    client_ip: IpAddr,
) -> Response<Body> {
    let Some(setup) = &generation.oidc_login else {
        return page(
            generation,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Sign-in is not set up on this gateway.",
        );
    };
    // The local limiter is a floor; with a `[store]` the limit holds across
    // every replica too (the same key as the Descope mode's starts).
    let key = portcullis_core::ratelimit::client_key(client_ip);
    let spec = generation.config.login.ip_rate_limit;
    if !setup.limiter.try_acquire(&[key.as_str()])
        || store.rate_ok(&[(key.as_str(), spec)]).await.is_err()
    {
        let mut r = page(
            generation,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts",
            "Please wait a minute and try again.",
        );
        let retry = generation
            .config
            .login
            .ip_rate_limit
            .retry_after()
            .as_secs();
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, retry.into());
        return r;
    }
    let (Some(nonce), Some(verifier)) = (random_b64(32), random_b64(32)) else {
        return page(
            generation,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Please try again.",
        );
    };
    let verifier = oidc.cfg.pkce.then_some(verifier);
    let challenge = verifier.as_deref().map(|v| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
        URL_SAFE_NO_PAD.encode(d.as_ref())
    });
    let extra = serde_json::to_string(&Extra {
        n: nonce.clone(),
        v: verifier,
    })
    .ok();
    let now = now_unix();
    let Ok(state) = StateCodec::issue(
        LoginKind::Oidc,
        return_to.to_owned(),
        extra,
        DEFAULT_STATE_TTL,
        now,
    ) else {
        return page(
            generation,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Please try again.",
        );
    };
    let url = match oidc.authorization_url(
        &setup.redirect_uri,
        &state.nonce,
        &nonce,
        challenge.as_deref(),
    ) {
        Ok(u) => u,
        Err(_) => {
            return provider_unavailable(generation);
        }
    };
    let mut cookies =
        setup
            .codec
            .prune_state_cookies(&setup.state_cookie, headers, MAX_STATE_COOKIES - 1, now);
    cookies.push(setup.codec.state_cookie(&setup.state_cookie, &state));
    let mut r = answer::redirect(StatusCode::FOUND, url.as_str());
    append_cookies(&mut r, &cookies);
    r
}

/// `GET /oidc/callback?code=&state=`.
pub async fn callback(
    oidc: &Oidc,
    generation: &Generation,
    req: &Request<Incoming>,
    info: &ClientInfo,
) -> Response<Body> {
    let _ = info;
    let Some(setup) = &generation.oidc_login else {
        return page(
            generation,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such endpoint.",
        );
    };
    let q = |name: &str| {
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let refused = |text: &str| page(generation, StatusCode::BAD_REQUEST, "Sign-in failed", text);
    let state_param = q("state").unwrap_or_default();
    let clear = clear_state_cookie(&setup.state_cookie, &state_param);
    let with_clear = |mut r: Response<Body>| {
        if crate::login_state::is_nonce(&state_param) {
            append_cookies(&mut r, std::slice::from_ref(&clear));
        }
        r
    };
    if let Some(err) = q("error") {
        tracing::info!(error = %err.chars().take(64).collect::<String>(), "the provider answered the sign-in with an error");
        return with_clear(refused(
            "The sign-in was cancelled or refused. Please try again.",
        ));
    }
    let state = match setup.codec.read_state_cookie(
        &setup.state_cookie,
        req.headers(),
        &state_param,
        LoginKind::Oidc,
        now_unix(),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(reason = %e, "oidc callback refused: login state");
            return with_clear(refused(
                "This sign-in expired or was started in another browser. Please sign in again.",
            ));
        }
    };
    let meta = oidc.metadata();
    // RFC 9207: the provider names itself in the response; it must be ours.
    match (q("iss"), meta.as_ref().is_some_and(|m| m.iss_parameter)) {
        (Some(iss), _) if iss != oidc.cfg.issuer => {
            return with_clear(refused("The sign-in answer came from another provider."));
        }
        (None, true) => {
            return with_clear(refused("The sign-in answer does not name its provider."));
        }
        _ => {}
    }
    let Some(extra) = state
        .extra
        .as_deref()
        .and_then(|x| serde_json::from_str::<Extra>(x).ok())
    else {
        return with_clear(refused("This sign-in is not valid. Please sign in again."));
    };
    let Some(code) = q("code").filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return with_clear(refused("The sign-in answer has no code."));
    };
    let outcome = async {
        let tokens = oidc
            .exchange_code(&code, &setup.redirect_uri, extra.v.as_deref())
            .await?;
        let (claims, exp) = oidc.session_claims(&tokens, Some(&extra.n)).await?;
        Ok::<_, TokenError>((tokens, claims, exp))
    }
    .await;
    let (tokens, claims, exp) = match outcome {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(reason = %e, "oidc sign-in refused");
            return with_clear(sign_in_failed(generation, &e));
        }
    };
    let target = setup.redirect.sanitize(Some(&state.return_to));
    with_clear(establish(generation, req, tokens, claims, exp, &target))
}

/// The answer to a code exchange or ID-token check that failed.
fn sign_in_failed(generation: &Generation, e: &TokenError) -> Response<Body> {
    let refused = |text: &str| page(generation, StatusCode::BAD_REQUEST, "Sign-in failed", text);
    match e {
        TokenError::Unavailable | TokenError::RateLimited(_) => provider_unavailable(generation),
        TokenError::InvalidGrant => {
            refused("This sign-in was already used or has expired. Please sign in again.")
        }
        TokenError::Invalid(_) | TokenError::Refused(_) => {
            refused("The sign-in could not be verified. Please try again.")
        }
    }
}

/// 503 + `Retry-After`: the provider cannot be reached just now.
fn provider_unavailable(generation: &Generation) -> Response<Body> {
    let mut r = page(
        generation,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in temporarily unavailable",
        "The sign-in service cannot be reached just now. Please try again in a few seconds.",
    );
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, 5u64.into());
    r
}

/// Seals the verified session into its cookie and sends the browser on.
fn establish(
    generation: &Generation,
    req: &Request<Incoming>,
    tokens: TokenResponse,
    claims: Map<String, Value>,
    exp: i64,
    target: &str,
) -> Response<Body> {
    let unavailable = || {
        page(
            generation,
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            "Please try again.",
        )
    };
    let Some(sealer) = &generation.sealer else {
        return unavailable();
    };
    let user = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let sealed = SealedSession {
        claims,
        expires_at: exp,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
        signed_in_at: Some(crate::time::unix_now_i64()),
    };
    let Some(value) = sealer.seal(&sealed) else {
        return unavailable();
    };
    // Without a refresh token the cookie ends with the session; with one
    // it lasts the browser session (the refresh token's life is unknown).
    let max_age = sealed.refresh_token.is_none().then(|| {
        std::time::Duration::from_secs(
            exp.saturating_sub(crate::time::unix_now_i64())
                .max(0)
                .unsigned_abs(),
        )
    });
    let cookies =
        generation
            .config
            .session
            .cookies
            .set_opaque_session(req.headers(), &value, max_age);
    tracing::info!(user = %user, method = "oidc", "signed in");
    let mut r = answer::redirect(StatusCode::FOUND, target);
    append_cookies(&mut r, &cookies);
    r
}

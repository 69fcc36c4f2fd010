//! The calls to the provider and the checks on what it answers: the
//! authorization request, the token endpoint (code and refresh grants),
//! ID token and access token verification, userinfo, introspection,
//! revocation and the end-session URL.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::claims::{map_claims, merge_userinfo};
use super::{BearerMode, ClientAuth, Metadata, Oidc};
use crate::claims::Claims;
use crate::refresh::{RedeemError, RefreshError, Refreshed};
use crate::session::cache::{CacheKey, Lookup, TokenKind};

/// Leeway on `exp`, `nbf` and `iat`, as for Descope's tokens.
pub const LEEWAY_SECS: u64 = 5;
/// Largest answer read from the provider.
const MAX_ANSWER: usize = 256 * 1024;

/// Why a token or an answer was refused, or the provider could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not valid (signature, issuer, audience, expiry, nonce…).
    #[error("token refused: {0}")]
    Invalid(&'static str),
    /// `invalid_grant`: the code or refresh token is spent, revoked or expired.
    #[error("the provider refused the grant")]
    InvalidGrant,
    /// The provider answered an error about us (`invalid_client`, …).
    #[error("the provider refused the request: {0}")]
    Refused(String),
    #[error("the provider is rate limiting")]
    RateLimited(Option<Duration>),
    /// Down, timed out, not discovered yet, or no keys.
    #[error("the provider is unavailable")]
    Unavailable,
}

/// A token endpoint answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(<redacted>)")
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

impl Oidc {
    fn meta(&self) -> Result<Arc<Metadata>, TokenError> {
        self.metadata().ok_or(TokenError::Unavailable)
    }

    /// The authorization request URL (code flow).
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: Option<&str>,
    ) -> Result<url::Url, TokenError> {
        let m = self.meta()?;
        let mut u = m.authorization_endpoint.clone();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.cfg.scopes.join(" "))
                .append_pair("state", state)
                .append_pair("nonce", nonce);
            if let Some(c) = code_challenge {
                q.append_pair("code_challenge", c)
                    .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.cfg.auth_params {
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }

    /// The RP-initiated logout URL, when the provider advertises one.
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout: &str,
    ) -> Option<url::Url> {
        let mut u = self.metadata()?.end_session_endpoint.clone()?;
        {
            let mut q = u.query_pairs_mut();
            if let Some(h) = id_token_hint {
                q.append_pair("id_token_hint", h);
            }
            q.append_pair("client_id", &self.cfg.client_id)
                .append_pair("post_logout_redirect_uri", post_logout);
        }
        Some(u)
    }

    /// A POST to one of the provider's endpoints with the client's
    /// authentication; the JSON answer, or the error it stands for.
    async fn post(
        &self,
        url: &url::Url,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Value, TokenError> {
        let m = self.meta()?;
        let mut req = self
            .http
            .post(url.clone())
            .header("accept", "application/json");
        match self.auth_method(&m) {
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: both parts form-encoded, then Basic.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let secret = self.cfg.client_secret.as_ref().map_or("", |s| s.expose());
                let pair = format!("{}:{}", enc(&self.cfg.client_id), enc(secret));
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                req = req.header("authorization", format!("Basic {b64}"));
            }
            ClientAuth::Post => {
                form.push(("client_id", self.cfg.client_id.clone()));
                if let Some(s) = &self.cfg.client_secret {
                    form.push(("client_secret", s.expose().to_owned()));
                }
            }
            ClientAuth::None => form.push(("client_id", self.cfg.client_id.clone())),
        }
        let resp = req.form(&form).send().await.map_err(|e| {
            tracing::warn!(error = %crate::http_util::error_chain(&e), endpoint = %url, "OpenID Provider unreachable");
            TokenError::Unavailable
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(|_| TokenError::Unavailable)?;
        if body.len() > MAX_ANSWER {
            return Err(TokenError::Unavailable);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TokenError::RateLimited(retry_after));
        }
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), endpoint = %url, "OpenID Provider error");
            return Err(TokenError::Unavailable);
        }
        if !status.is_success() {
            let code = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .and_then(|e| e.error)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            return Err(if code == "invalid_grant" {
                TokenError::InvalidGrant
            } else {
                tracing::warn!(error = %code, endpoint = %url, "OpenID Provider refused the request");
                TokenError::Refused(code)
            });
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|_| TokenError::Unavailable)
    }

    async fn token(&self, form: Vec<(&'static str, String)>) -> Result<TokenResponse, TokenError> {
        let m = self.meta()?;
        let v = self.post(&m.token_endpoint, form).await?;
        serde_json::from_value(v)
            .map_err(|_| TokenError::Invalid("token answer is not a token response"))
    }

    /// The code grant.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        self.token(form).await
    }

    /// The refresh grant.
    pub async fn refresh_grant(&self, refresh_token: &str) -> Result<TokenResponse, TokenError> {
        self.token(vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
        ])
        .await
    }

    /// Revokes a refresh token (RFC 7009) when the provider can; best effort.
    pub async fn revoke(&self, refresh_token: &str) {
        let Some(endpoint) = self.metadata().and_then(|m| m.revocation_endpoint.clone()) else {
            return;
        };
        if let Err(e) = self
            .post(
                &endpoint,
                vec![
                    ("token", refresh_token.to_owned()),
                    ("token_type_hint", "refresh_token".to_owned()),
                ],
            )
            .await
        {
            tracing::warn!(error = %e, "refresh token revocation failed");
        }
    }

    /// The key that verifies a token signed with `alg` under `kid`.
    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            let secret = self.cfg.client_secret.as_ref().ok_or(TokenError::Invalid(
                "an HMAC-signed token without a client secret",
            ))?;
            return Ok(DecodingKey::from_secret(secret.expose().as_bytes()));
        }
        let jwks = self.jwks().ok_or(TokenError::Unavailable)?;
        let find = |set: &crate::session::jwks::KeySet| match kid {
            Some(k) => set
                .get(k)
                .filter(|key| key.alg == alg)
                .map(|key| key.key.clone()),
            // No kid: only an unambiguous key will do.
            None => set.only_key_for(alg).map(|key| key.key.clone()),
        };
        if let Some(k) = find(&jwks.current()) {
            return Ok(k);
        }
        jwks.refetch_for_unknown_kid().await;
        let set = jwks.current();
        if set.is_empty() {
            return Err(TokenError::Unavailable);
        }
        find(&set).ok_or(TokenError::Invalid("no provider key for this token"))
    }

    /// Verifies a JWT from the provider: signature (an allowed algorithm
    /// only), `iss` exactly, `aud` containing one of `audiences`, `exp`,
    /// `nbf`, `iat`. Returns its claims.
    async fn verify_jwt(
        &self,
        token: &str,
        algs: &[Algorithm],
        audiences: &[String],
    ) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed token"))?;
        if !algs.contains(&header.alg) {
            return Err(TokenError::Invalid("token algorithm not allowed"));
        }
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[self.cfg.issuer.as_str()]);
        v.set_audience(audiences);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            tracing::debug!(reason = %e, "provider token refused");
            TokenError::Invalid("token signature or registered claims refused")
        })?;
        let claims = data.claims;
        let now = crate::time::unix_now_i64();
        if claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_none_or(|iat| iat > now + LEEWAY_SECS as i64)
        {
            return Err(TokenError::Invalid("token issued in the future"));
        }
        Ok(claims)
    }

    /// Verifies an ID token (OpenID Connect Core §3.1.3.7): the JWT checks,
    /// `aud` containing our client id, `azp` equal to it when present (and
    /// required with several audiences), and `nonce` when one was sent.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, TokenError> {
        let claims = self
            .verify_jwt(
                token,
                &self.cfg.id_token_algs,
                std::slice::from_ref(&self.cfg.client_id),
            )
            .await?;
        let several = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.cfg.client_id => {
                return Err(TokenError::Invalid("azp names another client"));
            }
            None if several => return Err(TokenError::Invalid("several audiences without azp")),
            Some(_) | None => {}
        }
        if let Some(want) = nonce {
            let got = claims
                .get("nonce")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !constant_eq(got.as_bytes(), want.as_bytes()) {
                return Err(TokenError::Invalid("nonce does not match"));
            }
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(TokenError::Invalid("no subject"));
        }
        Ok(claims)
    }

    /// Userinfo (GET, then POST for providers that want it, such as Authing).
    async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, TokenError> {
        let m = self.meta()?;
        let Some(url) = m.userinfo_endpoint.clone() else {
            return Err(TokenError::Unavailable);
        };
        let mut last = TokenError::Unavailable;
        for post in [false, true] {
            let req = if post {
                self.http.post(url.clone())
            } else {
                self.http.get(url.clone())
            };
            let resp = match req
                .bearer_auth(access_token)
                .header("accept", "application/json")
                .send()
                .await
            {
                Ok(r) => r,
                Err(_) => return Err(TokenError::Unavailable),
            };
            let status = resp.status();
            if status.is_success() {
                let body = resp.bytes().await.map_err(|_| TokenError::Unavailable)?;
                return match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(m)) => Ok(m),
                    // A signed (JWT) userinfo answer is not read.
                    _ => Err(TokenError::Invalid("userinfo is not a JSON object")),
                };
            }
            last = if status.is_server_error() {
                TokenError::Unavailable
            } else {
                TokenError::Refused(format!("userinfo HTTP {}", status.as_u16()))
            };
            if status != reqwest::StatusCode::METHOD_NOT_ALLOWED
                && status != reqwest::StatusCode::UNAUTHORIZED
            {
                break;
            }
        }
        Err(last)
    }

    /// The session a token answer stands for: the ID token verified (with
    /// `nonce` on sign-in), userinfo merged when configured, claims mapped.
    /// Returns the claims and their expiry.
    pub async fn session_claims(
        &self,
        tokens: &TokenResponse,
        nonce: Option<&str>,
    ) -> Result<(Map<String, Value>, i64), TokenError> {
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or(TokenError::Invalid("no ID token in the answer"))?;
        let mut claims = self.verify_id_token(id_token, nonce).await?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if self.cfg.userinfo
            && let (Some(at), true) = (
                tokens.access_token.as_deref(),
                self.metadata()
                    .is_some_and(|m| m.userinfo_endpoint.is_some()),
            )
        {
            let info = self.userinfo(at).await?;
            claims = merge_userinfo(claims, info)
                .ok_or(TokenError::Invalid("userinfo names another subject"))?;
        }
        Ok((self.map(claims), exp))
    }

    fn map(&self, claims: Map<String, Value>) -> Map<String, Value> {
        map_claims(
            claims,
            &self.cfg.roles_claim,
            &self.cfg.permissions_claim,
            self.cfg.tenants_claim.as_deref(),
        )
    }

    /// Checks an `Authorization: Bearer` access token per `[oidc] bearer`.
    pub async fn verify_bearer(self: &Arc<Self>, token: &str) -> Result<Arc<Claims>, TokenError> {
        let key = CacheKey::new(token, TokenKind::Session);
        let now = crate::time::unix_now();
        let epoch = self.bearer_cache.epoch();
        match self.bearer_cache.get(&key, now) {
            Lookup::Hit(c) => return Ok(c),
            Lookup::Expired => return Err(TokenError::Invalid("token has expired")),
            Lookup::Miss => {}
        }
        let claims = match self.cfg.bearer {
            BearerMode::Off => return Err(TokenError::Invalid("bearer tokens are off")),
            BearerMode::Jwt => {
                let algs: Vec<Algorithm> = self
                    .cfg
                    .id_token_algs
                    .iter()
                    .copied()
                    .filter(|a| {
                        !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
                    })
                    .collect();
                let c = self.verify_jwt(token, &algs, &self.cfg.audiences).await?;
                Arc::new(Claims::from_verified(self.map(c)))
            }
            BearerMode::Introspect => return self.introspect(token).await,
        };
        let until = claims
            .expires_at()
            .map_or(now, |e| u64::try_from(e).unwrap_or(0) + LEEWAY_SECS);
        self.bearer_cache
            .insert(key, Arc::clone(&claims), until, epoch, now);
        Ok(claims)
    }

    /// RFC 7662 introspection, one call per token at a time, the answer
    /// kept until `exp` (at most 60 s).
    async fn introspect(self: &Arc<Self>, token: &str) -> Result<Arc<Claims>, TokenError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(digest.as_ref());
        let this = Arc::clone(self);
        let token = token.to_owned();
        self.introspections
            .run(
                k,
                move || async move { this.introspect_uncached(&token).await },
            )
            .await
            .unwrap_or(Err(TokenError::Unavailable))
    }

    async fn introspect_uncached(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let m = self.meta()?;
        let endpoint = m
            .introspection_endpoint
            .clone()
            .ok_or(TokenError::Unavailable)?;
        let v = self
            .post(
                &endpoint,
                vec![
                    ("token", token.to_owned()),
                    ("token_type_hint", "access_token".to_owned()),
                ],
            )
            .await?;
        let Value::Object(answer) = v else {
            return Err(TokenError::Invalid("introspection answer is not an object"));
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Invalid("token is not active"));
        }
        let aud_ok = match answer.get("aud") {
            Some(Value::String(a)) => self.cfg.audiences.iter().any(|w| w == a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.cfg.audiences.iter().any(|w| w == a)),
            Some(_) => false,
            None => {
                answer.get("client_id").and_then(Value::as_str) == Some(self.cfg.client_id.as_str())
            }
        };
        if !aud_ok {
            return Err(TokenError::Invalid("token is for another audience"));
        }
        if let Some(iss) = answer.get("iss").and_then(Value::as_str)
            && iss != self.cfg.issuer
        {
            return Err(TokenError::Invalid("token is from another issuer"));
        }
        if answer
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(TokenError::Invalid("token names no subject"));
        }
        let exp = answer.get("exp").and_then(Value::as_i64);
        if exp.is_some_and(|e| e + LEEWAY_SECS as i64 <= crate::time::unix_now_i64()) {
            return Err(TokenError::Invalid("token has expired"));
        }
        Ok(Arc::new(Claims::from_verified(self.map(answer))))
    }
}

/// The refresh grant as a [`crate::refresh::Provider`]: refresh tokens are
/// opaque, so nothing is checked before the call; the new ID token is
/// verified and userinfo re-merged, so role changes take effect.
pub struct OidcRefresh(pub Arc<Oidc>);

impl crate::refresh::Provider for OidcRefresh {
    fn verify_old<'a>(
        &'a self,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Claims>>, RefreshError>> {
        Box::pin(async { Ok(None) })
    }

    fn redeem<'a>(
        &'a self,
        token: &'a str,
        _old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>> {
        Box::pin(async move {
            let answer = self.0.refresh_grant(token).await.map_err(redeem_error)?;
            self.refreshed(token, answer).await
        })
    }

    /// Another replica's answer: its ID token verified here, its userinfo
    /// fetched here with its access token, exactly as for our own answer.
    fn adopt<'a>(
        &'a self,
        token: &'a str,
        shared: crate::refresh::SharedTokens,
        _old: Option<&'a Claims>,
    ) -> BoxFuture<'a, Result<Refreshed, RedeemError>> {
        Box::pin(async move {
            let answer = TokenResponse {
                access_token: shared.access,
                id_token: Some(shared.session),
                refresh_token: Some(shared.refresh),
                expires_in: None,
            };
            self.refreshed(token, answer).await
        })
    }

    fn shares_results(&self) -> bool {
        true
    }
}

impl OidcRefresh {
    /// The session a refresh answer stands for, verified.
    async fn refreshed(
        &self,
        token: &str,
        answer: TokenResponse,
    ) -> Result<Refreshed, RedeemError> {
        let (claims, _exp) = self
            .0
            .session_claims(&answer, None)
            .await
            .map_err(redeem_error)?;
        let id_token = answer.id_token.clone().unwrap_or_default();
        let (refresh_jwt, refresh_rotated) = match answer.refresh_token {
            Some(new) if new != token => (new, true),
            Some(_) | None => (token.to_owned(), false),
        };
        Ok(Refreshed {
            session_jwt: id_token,
            refresh_jwt,
            refresh_rotated,
            claims: Arc::new(Claims::from_verified(claims)),
            access_token: answer.access_token,
        })
    }
}

fn redeem_error(e: TokenError) -> RedeemError {
    match e {
        TokenError::InvalidGrant => RedeemError::Revoked,
        TokenError::RateLimited(r) => RedeemError::RateLimited(r),
        TokenError::Unavailable => RedeemError::Unavailable,
        TokenError::Invalid(why) => RedeemError::BadAnswer(why),
        TokenError::Refused(_) => {
            RedeemError::BadAnswer("the provider refused the refresh request")
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    #[allow(deprecated)] // the constant-time comparison aws-lc-rs offers
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

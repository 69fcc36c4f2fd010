//! The gateway's Descope API client.
//!
//! One [`DescopeClient`] per gateway holds one pooled `reqwest::Client`
//! (rustls with the webpki roots plus an optional `ca_file`; no redirects
//! followed; a timeout per attempt). Every call is a JSON request with
//! `Authorization: Bearer <project_id>[:<refresh_jwt>][:<auth_management_key>]`
//! and `x-descope-project-id` (descope-api.md §2).
//!
//! ```text
//! refresh()/logout()/call()
//!   └─► send_once ──► 502/503/504 or connect error? ──► wait 200 ms, send once more
//!         └─► classify: 2xx → DescopeReply
//!                       429 → RateLimited{Retry-After}
//!                       4xx + errorCode → Rejected
//!                       5xx, timeout, connect → Unavailable
//!                       anything else → InvalidResponse
//! ```
//!
//! Tokens are never logged; error values carry only status codes and
//! Descope's error codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

/// Default timeout of one Descope call (each attempt).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause before the single retry of a call that met 502/503/504 or a connect error.
pub const RETRY_DELAY: Duration = Duration::from_millis(200);

/// Largest answer body read from Descope; real answers are a few KB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Descope's default session cookie name (cookie-mode answers).
pub const DESCOPE_SESSION_COOKIE: &str = "DS";

/// Descope's default refresh cookie name (cookie-mode answers).
pub const DESCOPE_REFRESH_COOKIE: &str = "DSR";

/// Header naming the project on every call.
const PROJECT_ID_HEADER: &str = "x-descope-project-id";

/// Built from `[descope]`.
#[derive(Clone)]
pub struct DescopeSettings {
    pub base_url: url::Url,
    pub project_id: String,
    /// Appended to every Bearer value when the project disables public auth APIs.
    pub auth_management_key: Option<String>,
    pub timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the webpki roots.
    pub ca_file: Option<PathBuf>,
}

// The auth management key is a secret: never print it.
impl std::fmt::Debug for DescopeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DescopeSettings")
            .field("base_url", &self.base_url.as_str())
            .field("project_id", &self.project_id)
            .field(
                "auth_management_key",
                &self.auth_management_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a Descope call failed.
#[derive(Debug, thiserror::Error)]
pub enum DescopeError {
    /// Descope answered 4xx with an error code (e.g. a revoked refresh token).
    #[error("descope refused the request ({status}, {code})")]
    Rejected { status: StatusCode, code: String },
    /// 429; `retry_after` from the `Retry-After` header (integer seconds).
    #[error("descope rate limit")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeout, connection error.
    #[error("descope unavailable")]
    Unavailable,
    /// An answer we could not use (bad 2xx body, 3xx, 4xx without an error code).
    #[error("unexpected response from descope")]
    InvalidResponse,
    /// Bad client setup (CA file, base URL, etc.).
    #[error("descope client setup: {0}")]
    Setup(String),
}

/// A raw answer, for flows that need more than tokens.
#[derive(Debug, Clone)]
pub struct DescopeReply {
    pub status: StatusCode,
    /// The JSON body (`{}` when the body was empty).
    pub body: serde_json::Value,
    /// `(name, value)` of every `Set-Cookie` in the answer.
    pub set_cookies: Vec<(String, String)>,
}

/// Tokens from an auth answer (body or `Set-Cookie`).
#[derive(Clone)]
pub struct TokenPair {
    pub session_jwt: String,
    /// `None` when Descope returned no new refresh token (keep the old one).
    pub refresh_jwt: Option<String>,
}

// Tokens are secrets: never print them.
impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("session_jwt", &"<redacted>")
            .field(
                "refresh_jwt",
                &self.refresh_jwt.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

// === impl DescopeReply ===

impl DescopeReply {
    /// The tokens of a `JWTResponse` (refresh, magic-link verify, OAuth/SSO
    /// exchange...): the session from body `sessionJwt` or the session cookie,
    /// the refresh token from body `refreshJwt` or the refresh cookie (names
    /// from body `sessionCookieName`/`cookieName`, else `DS`/`DSR`).
    /// No session token at all is [`DescopeError::InvalidResponse`].
    pub fn tokens(&self) -> Result<TokenPair, DescopeError> {
        let session_cookie =
            body_str(&self.body, "sessionCookieName").unwrap_or(DESCOPE_SESSION_COOKIE);
        let refresh_cookie = body_str(&self.body, "cookieName").unwrap_or(DESCOPE_REFRESH_COOKIE);
        let session_jwt = body_str(&self.body, "sessionJwt")
            .or_else(|| self.cookie(session_cookie))
            .ok_or(DescopeError::InvalidResponse)?
            .to_owned();
        let refresh_jwt = body_str(&self.body, "refreshJwt")
            .or_else(|| self.cookie(refresh_cookie))
            .map(str::to_owned);
        Ok(TokenPair {
            session_jwt,
            refresh_jwt,
        })
    }

    /// The value of a non-empty `Set-Cookie` by name (the last one wins).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .rev()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// A non-empty string field of a JSON object.
fn body_str<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One shared connection pool to Descope.
#[derive(Debug, Clone)]
pub struct DescopeClient {
    http: reqwest::Client,
    settings: Arc<DescopeSettings>,
}

// === impl DescopeClient ===

impl DescopeClient {
    /// Builds the client: TLS roots (webpki + `ca_file`), timeout, no
    /// redirects. Fails on an unreadable/empty `ca_file`, a base URL that is
    /// neither https nor http on a loopback host, or an empty project id.
    pub fn new(settings: DescopeSettings) -> Result<Self, DescopeError> {
        check_base_url(&settings.base_url)?;
        if settings.project_id.is_empty() || settings.project_id.contains(':') {
            return Err(DescopeError::Setup(
                "project id must be non-empty and contain no ':'".into(),
            ));
        }
        let tls = tls_config(settings.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DescopeError::Setup(format!("http client: {e}")))?;
        Ok(Self {
            http,
            settings: Arc::new(settings),
        })
    }

    /// The shared HTTP client (also used for JWKS fetches).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn project_id(&self) -> &str {
        &self.settings.project_id
    }

    /// `{base}/v2/keys/{project_id}`.
    pub fn jwks_url(&self) -> url::Url {
        self.endpoint(&format!("/v2/keys/{}", self.settings.project_id))
            .unwrap_or_else(|_| self.settings.base_url.clone())
    }

    /// One API call with `Authorization: Bearer pid[:refresh][:auth_management_key]`.
    ///
    /// The body is JSON (`{}` when `None`; no body on GET/HEAD). Retried once,
    /// after [`RETRY_DELAY`], on 502/503/504 or a connect error. Only 2xx is
    /// `Ok`; everything else is mapped as the module docs show.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        refresh_jwt: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<DescopeReply, DescopeError> {
        let url = self.endpoint(path_and_query)?;
        let first = self.send_once(&method, &url, refresh_jwt, body).await;
        if !first.retryable() {
            return first.into_result();
        }
        tokio::time::sleep(RETRY_DELAY).await;
        self.send_once(&method, &url, refresh_jwt, body)
            .await
            .into_result()
    }

    /// `POST /v1/auth/refresh`.
    ///
    /// A 4xx with an error code other than 400/401/403 is not taken as a
    /// revocation ([`DescopeError::InvalidResponse`] instead).
    pub async fn refresh(&self, refresh_jwt: &str) -> Result<TokenPair, DescopeError> {
        let reply = self
            .call(Method::POST, "/v1/auth/refresh", Some(refresh_jwt), None)
            .await
            .map_err(|e| match e {
                DescopeError::Rejected { status, .. } if !is_revocation_status(status) => {
                    DescopeError::InvalidResponse
                }
                other => other,
            })?;
        reply.tokens()
    }

    /// `POST /v1/auth/logout` (or `/logoutall` when `all`).
    pub async fn logout(&self, refresh_jwt: &str, all: bool) -> Result<(), DescopeError> {
        let path = if all {
            "/v1/auth/logoutall"
        } else {
            "/v1/auth/logout"
        };
        self.call(Method::POST, path, Some(refresh_jwt), None)
            .await
            .map(|_| ())
    }

    /// `{base}{path_and_query}`; a base path prefix is kept.
    fn endpoint(&self, path_and_query: &str) -> Result<url::Url, DescopeError> {
        if !path_and_query.starts_with('/') {
            return Err(DescopeError::Setup(format!(
                "descope path must start with '/': {path_and_query}"
            )));
        }
        let base = self.settings.base_url.as_str().trim_end_matches('/');
        url::Url::parse(&format!("{base}{path_and_query}"))
            .map_err(|e| DescopeError::Setup(format!("descope url: {e}")))
    }

    fn bearer(&self, refresh_jwt: Option<&str>) -> String {
        let mut v = format!("Bearer {}", self.settings.project_id);
        for part in [refresh_jwt, self.settings.auth_management_key.as_deref()]
            .into_iter()
            .flatten()
        {
            v.push(':');
            v.push_str(part);
        }
        v
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &url::Url,
        refresh_jwt: Option<&str>,
        body: Option<&Value>,
    ) -> Attempt {
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, self.bearer(refresh_jwt))
            .header(PROJECT_ID_HEADER, &self.settings.project_id);
        if *method != Method::GET && *method != Method::HEAD {
            let bytes = match body {
                Some(v) => serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()),
                None => b"{}".to_vec(),
            };
            req = req.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                tracing::debug!(error = %e, "descope connect error");
                return Attempt::ConnectError;
            }
            Err(e) => {
                tracing::debug!(error = %e, "descope request failed");
                return Attempt::Done(Err(DescopeError::Unavailable));
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) => return Attempt::Done(Err(e)),
        };
        Attempt::Answer(status, classify(status, &headers, &body))
    }
}

/// The outcome of one attempt, before the retry decision.
enum Attempt {
    ConnectError,
    Answer(StatusCode, Result<DescopeReply, DescopeError>),
    Done(Result<DescopeReply, DescopeError>),
}

impl Attempt {
    fn retryable(&self) -> bool {
        match self {
            Attempt::ConnectError => true,
            Attempt::Answer(status, _) => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            Attempt::Done(_) => false,
        }
    }

    fn into_result(self) -> Result<DescopeReply, DescopeError> {
        match self {
            Attempt::ConnectError => Err(DescopeError::Unavailable),
            Attempt::Answer(_, r) | Attempt::Done(r) => r,
        }
    }
}

/// The statuses that, with an error code, mean "this refresh token is dead".
fn is_revocation_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    )
}

/// Maps one HTTP answer to a reply or an error (pure; see the module docs).
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DescopeReply, DescopeError> {
    if status.is_success() {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body).map_err(|_| DescopeError::InvalidResponse)?
        };
        if !body.is_object() {
            return Err(DescopeError::InvalidResponse);
        }
        let set_cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|s| cookie::Cookie::parse(s).ok())
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect();
        return Ok(DescopeReply {
            status,
            body,
            set_cookies,
        });
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(DescopeError::RateLimited { retry_after });
    }
    if status.is_server_error() {
        return Err(DescopeError::Unavailable);
    }
    if status.is_client_error() {
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| body_str(&v, "errorCode").map(str::to_owned));
        return match code {
            Some(code) => Err(DescopeError::Rejected { status, code }),
            None => Err(DescopeError::InvalidResponse),
        };
    }
    Err(DescopeError::InvalidResponse)
}

/// Reads a body up to [`MAX_RESPONSE_BYTES`]; a failure mid-body is `Unavailable`.
async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, DescopeError> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(DescopeError::InvalidResponse);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf),
            Err(e) => {
                tracing::debug!(error = %e, "descope body read failed");
                return Err(DescopeError::Unavailable);
            }
        }
    }
}

/// https always; plain http only for loopback hosts (tests, the emulator).
fn check_base_url(url: &url::Url) -> Result<(), DescopeError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        "http" => Err(DescopeError::Setup(
            "plain http is only allowed for loopback hosts; use https".into(),
        )),
        other => Err(DescopeError::Setup(format!(
            "unsupported base_url scheme {other:?}; use https"
        ))),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// rustls with the webpki roots, plus every certificate in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, DescopeError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| DescopeError::Setup(format!("ca_file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(DescopeError::Setup(format!(
                "ca_file {}: no PEM certificates found",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| DescopeError::Setup(format!("ca_file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DescopeError::Setup(format!("tls: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

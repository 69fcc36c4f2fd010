//! The Descope-API emulator (DESIGN §7): a local, faithful stand-in for the
//! parts of Descope's API that the gateway and the official SDKs use.
//!
//! **This is not Descope.** It signs tokens with keys generated at start, keeps
//! everything in memory, and is meant for tests, `portcullis dev` and users' own
//! CI. It refuses non-loopback listen addresses unless explicitly allowed (CLI
//! `--allow-remote`, which requires a control token).
//!
//! ```text
//! accept (hyper 1, HTTP/1.1 + h2) ─► server::handle
//!     1. count the call by path             (Emulator::calls)
//!     2. apply a fault set for the path     (status, latency, 429, drop)
//!     3. routes::dispatch ─► session endpoints (refresh, logout, me, tenant select)
//!                         ├► flows   (magic/enchanted link, OTP, TOTP, password,
//!                         │           access key, OAuth, SSO/SAML + hosted pages)
//!                         ├► mgmt    (/v1/mgmt/*, /v2/mgmt/*: users, tenants, roles,
//!                         │           permissions, test-user helpers)
//!                         └► control (/emulator/*: mint, rotate keys, faults, calls,
//!                                     revoke, cookie mode, rotation, users, outbox)
//! ```
//!
//! All state (users, tenants, roles, issued refresh tokens, pending links,
//! outbox, faults, call counts, keys) is per instance, behind one mutex that is
//! never held across an await.
//!
//! # Tokens
//!
//! Session tokens (`drn: "DS"`) and refresh tokens (`drn: "DSR"`) are signed
//! with the current key (ES384 on P-384 by default, or RS256), `kid` in the
//! header, and carry `iss` (`{base_url}/{project_id}` by default, or the bare
//! project id), `sub`, `iat`, `exp`, `jti`, `amr`, top-level `roles` and
//! `permissions` (including those granted by the roles), `tenants`
//! (`{id: {roles, permissions}}`), `dct` after a tenant select, and `email` /
//! `name` when known. A refresh always reflects the user's *current* roles and
//! tenants. `dct` is never set implicitly (Descope's "exactly one tenant"
//! rule is not emulated). Every refresh token issued is registered by `jti`; logout,
//! `logoutall`, `revoke_user` and rotation (when on) make it unusable; a
//! refresh checks, revokes and issues under one lock, so a rotated token is
//! accepted once even under concurrent use.
//!
//! A login with `loginOptions.stepup` / `mfa` (or, for OAuth/SSO, those keys
//! in the body) and the current refresh token in `Bearer pid:refreshJwt`
//! adds its factor to that session's `amr` (e.g. `["email", "pwd"]`).
//!
//! # Faults and call counts
//!
//! Every call is counted by path (faulted calls included). A fault set for a
//! path (or for `"*"`, every path without its own) answers a status with a
//! Descope error body, adds latency, answers 429 `E130429` with an integer
//! `Retry-After`, or drops the connection; optionally for the next N calls
//! only. The control API under `/emulator/` is never faulted.
//!
//! # Management key
//!
//! The management API needs `Bearer pid:managementKey`: the configured key,
//! else the control token when one is set, else any non-empty key.
//!
//! # Seed file (`--seed FILE`, [`EmulatorOptions::seed`])
//!
//! ```toml
//! [[permissions]]
//! name = "invoices:read"
//! description = "Read invoices"          # optional
//!
//! [[roles]]
//! name = "admin"
//! permissions = ["invoices:read"]        # granted to holders of the role
//!
//! [[tenants]]
//! id = "T-acme"                          # optional; generated when absent
//! name = "Acme"
//! sso = true                             # the SSO IdP page serves this tenant
//! domains = ["acme.test"]                # optional self-provisioning domains
//!
//! [[users]]
//! login_id = "alice@example.com"
//! user_id = "U-alice"                    # optional; generated when absent
//! name = "Alice Example"                 # optional
//! email = "alice@example.com"            # optional; defaults to login_id if it has an @
//! phone = "+15555550100"                 # optional
//! roles = ["admin"]                      # project-level roles
//! password = "correct horse"             # optional, for password sign-in
//! tenants = [{ id = "T-acme", roles = ["member"] }]
//! claims = { department = "eng" }        # optional extra session-token claims
//!
//! [[access_keys]]
//! key = "K-ci-secret"                    # sent as Bearer <projectId>:<key>; no ':'
//! id = "K-ci"                            # optional; the session's `sub`
//! roles = ["admin"]
//! tenants = [{ id = "T-acme", roles = ["member"] }]
//! ```
//!
//! Unknown keys are errors. `config/dev-seed.toml` (used by `portcullis dev`)
//! is a complete example.
//!
//! # Control API
//!
//! Everything the Rust handle does is also available over HTTP under
//! `/emulator/*` (see `control.rs`), protected by `Authorization: Bearer
//! <control-token>` when a control token is set.

// Handlers return ready error responses through `Result`; they are not on a
// hot path, so the size of `Response` in `Err` does not matter here.
#![allow(clippy::result_large_err)]

pub mod cli;
mod control;
pub mod demo;
mod flows;
mod http;
pub(crate) mod keys;
mod mgmt;
mod pages;
mod routes;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::state::State;
pub use self::state::{TenantMembership, UserSpec};

/// Default lifetime of a session token (Descope's default is 10 minutes).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(10 * 60);
/// Default lifetime of a refresh token (Descope's default is 4 weeks; 30 days here).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default project id when none is given.
pub const DEFAULT_PROJECT_ID: &str = "P2EmulatorProjectId0000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    /// RS256 with a 2048-bit key.
    Rsa,
    /// ES384 on P-384, like Descope's own fixtures.
    #[default]
    Ec,
}

/// What the `iss` claim of issued tokens looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssuerMode {
    /// `{base_url}/{project_id}` (what Descope issues today).
    #[default]
    Url,
    /// The bare project id.
    ProjectId,
}

/// Options for one emulator instance.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub project_id: String,
    pub key_type: KeyType,
    /// Required by the management API when set. When `None`, the control
    /// token is required instead if one is set (so a remote emulator is never
    /// open), else any non-empty key is accepted.
    pub management_key: Option<String>,
    /// Protects `/emulator/*` when set.
    pub control_token: Option<String>,
    /// Seed file contents (TOML: users, roles, tenants; see the module docs).
    pub seed: Option<String>,
    pub session_ttl: Duration,
    pub refresh_ttl: Duration,
    pub issuer: IssuerMode,
    /// Refresh tokens in `Set-Cookie` instead of the body (Descope's
    /// "manage in cookies" project setting).
    pub cookie_mode: bool,
    /// A new refresh token on every refresh; the old one stops working.
    pub refresh_rotation: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            key_type: KeyType::default(),
            management_key: None,
            control_token: None,
            seed: None,
            session_ttl: DEFAULT_SESSION_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            issuer: IssuerMode::default(),
            cookie_mode: false,
            refresh_rotation: false,
        }
    }
}

/// What to put in a minted token.
#[derive(Debug, Clone, Default)]
pub struct MintSpec {
    pub sub: String,
    /// `true` for a refresh token (`drn = "DSR"`), else a session token (`drn = "DS"`).
    pub refresh: bool,
    /// Lifetime in seconds from now; negative for an already expired token.
    pub ttl_secs: i64,
    /// Extra or overriding claims (roles, tenants, iss, aud, ...).
    pub claims: Map<String, Value>,
}

/// An injected failure for one endpoint path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Apply to the next `n` calls only; `None` for every call until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// The kinds of injected failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum FaultKind {
    /// Answer with this status and a Descope error body (a default one when absent).
    Status {
        status: u16,
        #[serde(default)]
        error_code: Option<String>,
        #[serde(default)]
        error_message: Option<String>,
    },
    /// Delay the answer, then serve normally.
    Latency { millis: u64 },
    /// 429 with `E130429` and an integer `Retry-After`.
    RateLimit { retry_after_secs: u64 },
    /// Close the connection without an answer.
    Drop,
}

impl Fault {
    /// A status answer with the default error body for that status.
    pub fn status(status: u16) -> Self {
        Self::always(FaultKind::Status {
            status,
            error_code: None,
            error_message: None,
        })
    }

    pub fn latency(delay: Duration) -> Self {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Self::always(FaultKind::Latency { millis })
    }

    pub fn rate_limit(retry_after_secs: u64) -> Self {
        Self::always(FaultKind::RateLimit { retry_after_secs })
    }

    pub fn drop_connection() -> Self {
        Self::always(FaultKind::Drop)
    }

    /// Limit the fault to the next `n` calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn always(kind: FaultKind) -> Self {
        Self { kind, times: None }
    }
}

/// One "sent" message: a magic or enchanted link, an OTP code, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxEntry {
    /// Increasing from 1.
    pub id: u64,
    /// `magiclink`, `enchantedlink`, `otp`, `password-reset`.
    pub kind: String,
    pub login_id: String,
    /// `email`, `sms`, `voice`, `whatsapp`.
    pub delivery: String,
    /// Address the message went to.
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Epoch seconds.
    pub sent_at: i64,
}

/// State shared by the server tasks and the handle.
pub(crate) struct Shared {
    pub(crate) project_id: String,
    pub(crate) base_url: String,
    pub(crate) management_key: Option<String>,
    pub(crate) control_token: Option<String>,
    pub(crate) key_type: KeyType,
    pub(crate) issuer: IssuerMode,
    state: Mutex<State>,
}

impl Shared {
    /// The state lock; a panic in another holder does not make the data unusable
    /// for an emulator, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `iss` of issued tokens.
    pub(crate) fn issuer(&self) -> String {
        match self.issuer {
            IssuerMode::Url => format!("{}/{}", self.base_url, self.project_id),
            IssuerMode::ProjectId => self.project_id.clone(),
        }
    }
}

/// A running emulator; dropping it does not stop it, call `shutdown`.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: server::ServerHandle,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until `shutdown`.
    pub async fn spawn(listen: SocketAddr, opts: EmulatorOptions) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let mut state = State::new(opts.key_type, &opts)?;
        if let Some(seed) = &opts.seed {
            state.apply_seed(seed)?;
        }
        let shared = Arc::new(Shared {
            project_id: opts.project_id.clone(),
            base_url,
            management_key: opts.management_key.clone(),
            control_token: opts.control_token.clone(),
            key_type: opts.key_type,
            issuer: opts.issuer,
            state: Mutex::new(state),
        });
        let server = server::start(listener, shared.clone());
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn project_id(&self) -> &str {
        &self.shared.project_id
    }

    /// A token signed with the current key. `spec.claims` override the defaults
    /// (`iss`, `sub`, `iat`, `exp`, `drn`, `jti`, `amr`); a refresh token is
    /// registered so that the refresh endpoint accepts it.
    pub fn mint(&self, spec: &MintSpec) -> String {
        let mut st = self.shared.lock();
        st.mint(&self.shared.issuer(), spec)
            .expect("signing with a freshly generated key cannot fail")
    }

    /// The published key set, `{"keys": [...]}`.
    pub fn jwks(&self) -> Value {
        self.shared.lock().keys.jwks()
    }

    /// A new signing key; the old one stays in the JWKS.
    pub fn rotate_keys(&self) {
        self.rotate(false);
    }

    /// A new signing key; the old one leaves the JWKS (tokens it signed stop verifying).
    pub fn rotate_keys_drop_old(&self) {
        self.rotate(true);
    }

    fn rotate(&self, drop_old: bool) {
        let key = keys::SigningKey::generate(self.shared.key_type, random_hex(16))
            .expect("key generation worked at start and does not fail later");
        self.shared.lock().keys.install(key, drop_old);
    }

    /// Number of calls served on one endpoint path, e.g. `/v1/auth/refresh`
    /// (faulted calls included).
    pub fn calls(&self, path: &str) -> u64 {
        self.shared.lock().calls.get(path).copied().unwrap_or(0)
    }

    /// Calls served on `/v1/auth/refresh`.
    pub fn refresh_calls(&self) -> u64 {
        self.calls("/v1/auth/refresh")
    }

    /// Answers the next `n` calls on `path` with `status` (and a default
    /// Descope error body), then serves normally again.
    pub fn fail_next(&self, path: &str, n: u32, status: u16) {
        self.set_fault(path, Fault::status(status).times(n));
    }

    /// Forgets every call count.
    pub fn reset_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Applies `fault` to calls on `path` (replacing any fault set there);
    /// the path `"*"` applies to every endpoint without a fault of its own
    /// (never to the control API under `/emulator/`).
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.shared.lock().faults.insert(path.to_owned(), fault);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Refresh (and session) tokens in `Set-Cookie` instead of the body.
    pub fn set_cookie_mode(&self, on: bool) {
        self.shared.lock().cookie_mode = on;
    }

    /// A new refresh token on each refresh, the old one revoked.
    pub fn set_refresh_rotation(&self, on: bool) {
        self.shared.lock().refresh_rotation = on;
    }

    /// Lifetime of session tokens issued from now on.
    pub fn set_session_ttl(&self, ttl: Duration) {
        self.shared.lock().session_ttl = ttl;
    }

    /// Lifetime of refresh tokens issued from now on.
    pub fn set_refresh_ttl(&self, ttl: Duration) {
        self.shared.lock().refresh_ttl = ttl;
    }

    /// Adds (or replaces, by login id) a user; returns the user id.
    pub fn add_user(&self, spec: UserSpec) -> String {
        self.shared.lock().upsert_user(spec)
    }

    /// Replaces a user's project-level roles; `false` if no such login id.
    pub fn set_user_roles(&self, login_id: &str, roles: Vec<String>) -> bool {
        self.shared.lock().set_user_roles(login_id, roles)
    }

    /// Replaces a user's tenant memberships; `false` if no such login id.
    pub fn set_user_tenants(&self, login_id: &str, tenants: Vec<TenantMembership>) -> bool {
        self.shared.lock().set_user_tenants(login_id, tenants)
    }

    /// Replaces the extra session claims of a user (what a Descope JWT
    /// template would add); `false` if no such login id.
    pub fn set_user_claims(&self, login_id: &str, claims: Map<String, Value>) -> bool {
        self.shared.lock().set_user_claims(login_id, claims)
    }

    /// The user id for a login id.
    pub fn user_id(&self, login_id: &str) -> Option<String> {
        self.shared
            .lock()
            .user_by_login(login_id)
            .map(|u| u.user_id.clone())
    }

    /// Revokes every refresh token issued to `user_id` so far.
    pub fn revoke_user(&self, user_id: &str) {
        self.shared.lock().revoke_user(user_id);
    }

    /// Every message "sent" so far, oldest first.
    pub fn outbox(&self) -> Vec<OutboxEntry> {
        self.shared.lock().outbox.clone()
    }

    /// Stops accepting, closes open connections and waits for the server task.
    /// Takes `&self` so that a shared (`Arc`) handle can be shut down too.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random id in Descope's style: `prefix` + 27 alphanumerics.
pub(crate) fn random_id(prefix: &str) -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..27)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{tail}")
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

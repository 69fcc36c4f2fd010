//! [`Emulator`]: the handle a test or `portcullis dev` holds on a running
//! emulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::keys;
use crate::npm::WebComponents;
use crate::options::{EmulatorOptions, Fault, MintSpec, OutboxEntry};
use crate::server;
use crate::shared::Shared;
use crate::state::{AccessKeySpec, State, TenantMembership, UserSpec};
use crate::util::random_hex;

/// A running emulator; dropping it does not stop it, call `shutdown`.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: server::ServerHandle,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until `shutdown`.
    pub async fn spawn(listen: SocketAddr, opts: EmulatorOptions) -> anyhow::Result<Self> {
        let web_components = opts
            .web_components
            .as_deref()
            .map(WebComponents::load)
            .transpose()?;
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
            web_components,
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

    /// With rotation on: reusing an already-rotated refresh token revokes
    /// every refresh token descended from the same sign-in.
    pub fn set_refresh_family_revocation(&self, on: bool) {
        self.shared.lock().refresh_family_revocation = on;
    }

    /// How many times a reused refresh token revoked its family.
    pub fn family_revocations(&self) -> u64 {
        self.shared.lock().family_revocations
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

    /// Creates an access key (what management `accesskey/create` does);
    /// returns `(key id, cleartext)`. The cleartext is what a machine
    /// client sends as `Bearer <projectId>:<cleartext>` to the exchange.
    pub fn create_access_key(&self, spec: AccessKeySpec) -> Result<(String, String), String> {
        self.shared
            .lock()
            .create_access_key(spec, "emulator handle")
    }

    /// Deactivates (`false`) or re-activates an access key; `false` if there
    /// is no such key.
    pub fn set_access_key_active(&self, id: &str, active: bool) -> bool {
        match self.shared.lock().access_keys.get_mut(id) {
            Some(k) => {
                k.active = active;
                true
            }
            None => false,
        }
    }

    /// Deletes an access key; `false` if there is no such key.
    pub fn delete_access_key(&self, id: &str) -> bool {
        self.shared.lock().access_keys.remove(id).is_some()
    }

    /// Calls served on `/v1/auth/accesskey/exchange` (refused ones included).
    pub fn access_key_exchanges(&self) -> u64 {
        self.calls("/v1/auth/accesskey/exchange")
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

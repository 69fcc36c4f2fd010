//! Configuration: TOML → [`raw::RawConfig`] (serde mirror, unknown keys are
//! errors) → validated [`Config`] holding parsed values (addresses, URLs,
//! durations, header names, the compiled route policy).
//!
//! Validation collects *every* problem before failing, each as a
//! [`ConfigIssue`] naming the key, the value, what is wrong and the fix.
//! Lints (legal but risky settings) are kept in [`Config::lints`];
//! `check-config --strict` fails on them.

pub mod raw;
pub mod reference;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use portcullis_core::issue::ConfigIssue;
pub use validate::{EnvLookup, parse_duration};

use crate::cookies::CookieSettings;
use crate::policy::Policy;

// === defaults (docs/configuration.md) ===

/// Traffic listener.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Admin listener (`/healthz`, `/readyz`, `/metrics`); loopback by default.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Where the hosted endpoints live.
pub const DEFAULT_AUTH_PREFIX: &str = "/_auth";
/// Slowloris guard: the whole request head must arrive within this.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head accepted (431 beyond).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Concurrent downstream connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How long in-flight requests may take to finish on SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Timeout of one Descope API call.
pub const DEFAULT_DESCOPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Refetch JWKS at most this often on an unknown `kid` (forged-kid DoS guard).
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);
/// Periodic JWKS refresh.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
/// A refresh result (or failure) is shared by requests with the same DSR for this long.
pub const DEFAULT_REFRESH_REUSE: Duration = Duration::from_secs(10);
/// Default Descope API origin (regional hosts derive from 32+ char project ids).
pub const DEFAULT_DESCOPE_BASE_URL: &str = "https://api.descope.com";
/// Upstream TCP connect timeout.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream response-header timeout (504 beyond).
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream body idle timeout (no byte either way for this long closes the stream).
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Verified-claims cache capacity.
pub const DEFAULT_CLAIMS_CACHE_CAPACITY: usize = 100_000;
/// Minimum length of `[session] secret`.
pub const MIN_SECRET_BYTES: usize = 32;
pub use crate::ratelimit::{DEFAULT_IP_RATE_LIMIT, DEFAULT_START_RATE_LIMIT};
/// `@descope/web-component`, pinned, from the npm mirror of jsDelivr (self-host by overriding).
pub const DEFAULT_WEB_COMPONENT_URL: &str =
    "https://cdn.jsdelivr.net/npm/@descope/web-component@4.3.2/dist/index.js";
/// SRI hash of [`DEFAULT_WEB_COMPONENT_URL`] (sha384 of the npm package's file).
pub const DEFAULT_WEB_COMPONENT_INTEGRITY: &str =
    "sha384-jkNsr0xLvx++Lu94mSjNN2kMpYJuzCLUyM3KMd85wCLtlU+FW6K7kfWWVDlDLyTo";
/// `@descope/web-js-sdk`, pinned.
pub const DEFAULT_WEB_JS_SDK_URL: &str =
    "https://cdn.jsdelivr.net/npm/@descope/web-js-sdk@1.53.0/dist/index.umd.js";
/// SRI hash of [`DEFAULT_WEB_JS_SDK_URL`].
pub const DEFAULT_WEB_JS_SDK_INTEGRITY: &str =
    "sha384-kfSWE1ut2bU+6lhWl3hQaf77homlQNYXTM3U1btrJUb43lkRp3NstXxsezKuga7+";
/// Descope flow used by the `flow` login method.
pub const DEFAULT_FLOW_ID: &str = "sign-in";

pub use portcullis_core::secret::Secret;

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    /// The identity provider: Descope's session API or an OpenID Provider.
    pub idp: IdpConfig,
    pub session: SessionConfig,
    /// `[store]`: shared state on Redis; `None` keeps every replica on its own.
    pub store: Option<StoreConfig>,
    pub login: LoginConfig,
    pub forward_auth: ForwardAuthConfig,
    pub upstreams: HashMap<String, UpstreamConfig>,
    pub identity: IdentityConfig,
    pub policy: Policy,
    /// Legal but risky settings (`check-config --strict` fails on them).
    pub lints: Vec<ConfigIssue>,
}

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: url::Url,
    /// `scheme://host[:port]` of `public_url`, for same-origin checks.
    pub public_origin: String,
    pub auth_prefix: String,
    pub trusted_proxies: Vec<IpNet>,
    pub case_insensitive_paths: bool,
    pub tls: Option<TlsConfig>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug)]
pub struct AdminConfig {
    /// `None` when `listen = ""` (admin listener off).
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct DescopeConfig {
    pub project_id: String,
    pub base_url: url::Url,
    pub auth_management_key: Option<Secret>,
    pub audience: String,
    pub timeout: Duration,
    /// Seed keys (JWKS or single JWK JSON) from `jwks_file` or `DESCOPE_PUBLIC_KEY`.
    pub seed_keys: Option<String>,
    pub jwks_min_refetch: Duration,
    pub jwks_refresh: Duration,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of `ca_file`'s contents when loaded: a bundle replaced at the
    /// same path is a change a reload cannot apply (and says so).
    pub ca_digest: Option<[u8; 32]>,
}

pub use crate::store::{DEFAULT_STORE_KEY_PREFIX, DEFAULT_STORE_TIMEOUT, StoreConfig};

#[derive(Debug)]
pub struct SessionConfig {
    pub cookies: CookieSettings,
    /// Signs login-state values; `None` only when no login method is on.
    pub secret: Option<Secret>,
    pub previous_secrets: Vec<Secret>,
    pub refresh: bool,
    pub refresh_reuse: Duration,
    pub refresh_before: Option<Duration>,
    pub accept_bearer: bool,
    /// Exchange non-JWT Bearer credentials as Descope access keys.
    pub accept_access_keys: bool,
}

pub use crate::pages::LoginMethod;

#[derive(Debug)]
pub struct LoginConfig {
    pub methods: Vec<LoginMethod>,
    pub allow_signup: bool,
    pub flow_id: String,
    pub allowed_email_domains: Vec<String>,
    /// Message-sending login starts per e-mail address.
    pub start_rate_limit: crate::ratelimit::RateSpec,
    /// Login starts of any kind per client IP.
    pub ip_rate_limit: crate::ratelimit::RateSpec,
    /// Exact origins (`scheme://host[:port]`) allowed as absolute `return_to`.
    pub allowed_redirect_origins: Vec<String>,
    pub after_logout: String,
    pub app_name: String,
    pub logo_url: Option<String>,
    /// A link to the user's inbox on the "check your email" pages (in `dev`, the emulator's outbox).
    pub inbox_url: Option<String>,
    pub web_component_url: String,
    pub web_component_integrity: Option<String>,
    pub web_js_sdk_url: String,
    pub web_js_sdk_integrity: Option<String>,
    /// `[login] cdn_url`: the origin the flow's web component loads its npm
    /// libraries from (`base-cdn-url`); `None` leaves Descope's CDNs.
    pub cdn_url: Option<String>,
    pub sso_legacy_saml: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuthMode {
    Nginx,
    Traefik,
    Envoy,
}

#[derive(Debug)]
pub struct ForwardAuthConfig {
    pub mode: ForwardAuthMode,
    pub trusted_callers: Vec<IpNet>,
}

pub use crate::proxy::UpstreamConfig;

pub use portcullis_core::identity::{AssertionConfig, ForwardToken, IdentityConfig, Preset};

/// Exactly one identity provider per gateway.
#[derive(Debug, PartialEq, Eq)]
pub enum IdpConfig {
    Descope(DescopeConfig),
    Oidc(crate::oidc::OidcConfig),
}

impl Config {
    /// `[descope]`, in Descope mode.
    pub fn descope(&self) -> Option<&DescopeConfig> {
        match &self.idp {
            IdpConfig::Descope(d) => Some(d),
            IdpConfig::Oidc(_) => None,
        }
    }

    /// `[oidc]`, in the OpenID Connect mode.
    pub fn oidc(&self) -> Option<&crate::oidc::OidcConfig> {
        match &self.idp {
            IdpConfig::Oidc(o) => Some(o),
            IdpConfig::Descope(_) => None,
        }
    }
}

/// The settings the running process was built from: the listeners, the
/// Descope client and its key cache, the refresher. A reload cannot apply
/// them (sockets are bound, clients hold them), so a reload that changes
/// any is refused, naming each key; a restart applies it. Everything else
/// in [`Config`] takes effect on reload.
#[derive(Debug, Clone, Copy)]
pub struct RestartOnly<'a> {
    config: &'a Config,
}

impl RestartOnly<'_> {
    /// The keys whose value differs between `self` and `other`.
    pub fn changed(&self, other: &RestartOnly<'_>) -> Vec<&'static str> {
        let (a, b) = (self.config, other.config);
        let mut keys: Vec<&'static str> = [
            ("server.listen", a.server.listen != b.server.listen),
            ("server.tls", a.server.tls != b.server.tls),
            (
                "server.max_connections",
                a.server.max_connections != b.server.max_connections,
            ),
            ("admin.listen", a.admin.listen != b.admin.listen),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        keys.extend(idp_changes(&a.idp, &b.idp));
        if a.session.refresh_reuse != b.session.refresh_reuse {
            keys.push("session.refresh_reuse");
        }
        if a.store != b.store {
            keys.push("store");
        }
        keys
    }
}

/// The identity provider's restart-only keys that differ.
fn idp_changes(a: &IdpConfig, b: &IdpConfig) -> Vec<&'static str> {
    match (a, b) {
        (IdpConfig::Descope(da), IdpConfig::Descope(db)) => [
            ("descope.project_id", da.project_id != db.project_id),
            ("descope.base_url", da.base_url != db.base_url),
            (
                "descope.auth_management_key",
                da.auth_management_key != db.auth_management_key,
            ),
            ("descope.audience", da.audience != db.audience),
            ("descope.timeout", da.timeout != db.timeout),
            ("descope.jwks_file", da.seed_keys != db.seed_keys),
            (
                "descope.jwks_min_refetch",
                da.jwks_min_refetch != db.jwks_min_refetch,
            ),
            ("descope.jwks_refresh", da.jwks_refresh != db.jwks_refresh),
            (
                "descope.ca_file",
                da.ca_file != db.ca_file || da.ca_digest != db.ca_digest,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect(),
        // Every [oidc] key shapes the provider's client, built at start.
        (IdpConfig::Oidc(oa), IdpConfig::Oidc(ob)) => {
            if oa == ob {
                Vec::new()
            } else {
                vec!["oidc"]
            }
        }
        (IdpConfig::Descope(_), IdpConfig::Oidc(_))
        | (IdpConfig::Oidc(_), IdpConfig::Descope(_)) => {
            vec!["descope / oidc (the identity provider)"]
        }
    }
}

/// Every problem found; `Display` lists them one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.0 {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Options that change validation for the embedded `dev` setup.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// `portcullis dev`: a missing `[session] secret` is generated instead of required.
    pub dev: bool,
}

impl Config {
    /// Reads, parses and validates a config file, resolving `env:` values and
    /// `*_file` twins (relative paths are relative to the file's directory).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigIssue::new(
                "(file)",
                format!("cannot read {}: {e}", path.display()),
                "pass an existing, readable TOML file with -c or PORTCULLIS_CONFIG",
            )])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &base, &validate::ProcessEnv, LoadOptions::default())
    }

    /// Parses and validates TOML text with an explicit environment (tests use a map).
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: &dyn EnvLookup,
        opts: LoadOptions,
    ) -> Result<Self, ConfigErrors> {
        let raw = validate::parse_raw(text).map_err(|e| ConfigErrors(vec![*e]))?;
        validate::validate(raw, base_dir, env, opts)
    }

    /// The settings only a restart applies.
    pub fn restart_only(&self) -> RestartOnly<'_> {
        RestartOnly { config: self }
    }
}

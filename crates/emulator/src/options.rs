//! The public option and value types of the emulator: key type, issuer
//! mode, start-up options, mint specs, faults and outbox entries. A leaf
//! module: it depends on no other module of the crate.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Default lifetime of a session token (Descope's default is 10 minutes).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(10 * 60);
/// Default lifetime of a refresh token (Descope's default is 4 weeks; 30 days here).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default project id when none is given.
pub const DEFAULT_PROJECT_ID: &str = "P2EmulatorProjectId0000000000";
/// The `@descope/web-components-ui` version the Flow pages ask for
/// (`config.json` `componentsVersion`) when no `--web-components` folder
/// names the installed one. The generated `theme.json` comes from it.
pub const DEFAULT_COMPONENTS_VERSION: &str = "3.14.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    /// RS256 with a 2048-bit key.
    Rsa,
    /// ES384 on P-384, like Descope's own fixtures.
    #[default]
    Ec,
    /// ES256 on P-256 (`--key-type ec256`), for gateways and tests that
    /// need the other curve Descope-compatible issuers use.
    #[value(name = "ec256")]
    Ec256,
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
    /// A `node_modules` folder holding `@descope/web-component` and
    /// `@descope/web-components-ui`, served CDN-style at
    /// `/npm/{package}@{version}/{path}` (`--web-components DIR`).
    pub web_components: Option<std::path::PathBuf>,
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
            web_components: None,
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
    /// The same address when the message went by e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Epoch seconds.
    pub sent_at: i64,
}

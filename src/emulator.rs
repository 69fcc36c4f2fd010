//! The Descope-API emulator (DESIGN §7). STUB: the emulator work replaces this file.

pub mod cli;

use std::net::SocketAddr;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    Rsa,
    #[default]
    Ec,
}

/// Options for one emulator instance.
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    pub project_id: String,
    pub key_type: KeyType,
    pub management_key: Option<String>,
    pub control_token: Option<String>,
    /// Seed file contents (TOML: users, roles, tenants).
    pub seed: Option<String>,
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

/// A running emulator; dropping it does not stop it, call `shutdown`.
pub struct Emulator {
    addr: SocketAddr,
}

impl Emulator {
    pub async fn spawn(listen: SocketAddr, opts: EmulatorOptions) -> anyhow::Result<Self> {
        let _ = opts;
        Ok(Self { addr: listen })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token signed with the current key.
    pub fn mint(&self, spec: &MintSpec) -> String {
        let _ = spec;
        String::new()
    }

    /// Number of calls served on one endpoint path, e.g. `/v1/auth/refresh`.
    pub fn calls(&self, path: &str) -> u64 {
        let _ = path;
        0
    }
}

//! Serde mirror of `portcullis.toml` (every key: docs/configuration.md). Every table denies unknown
//! keys, so a typo such as `requried_roles` is an error, never a silently
//! dropped rule. Values stay as written (strings for durations, addresses,
//! URLs) so that validation can name the key and the bad value.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::policy::{PolicyToml, RouteToml};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    /// `None` when the file has no `[descope]` table.
    pub descope: Option<RawDescope>,
    /// The OpenID Connect relying-party mode (instead of `[descope]`).
    pub oidc: Option<RawOidc>,
    /// Shared state across replicas; `None` without a `[store]` table.
    pub store: Option<RawStore>,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub login: RawLogin,
    #[serde(default)]
    pub forward_auth: RawForwardAuth,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub policy: PolicyToml,
    #[serde(default)]
    pub routes: Vec<RouteToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub auth_prefix: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub case_insensitive_paths: Option<bool>,
    pub tls: Option<RawTls>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_header_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDescope {
    pub project_id: Option<String>,
    pub base_url: Option<String>,
    pub auth_management_key: Option<String>,
    pub auth_management_key_file: Option<String>,
    /// Tombstone: the gateway never reads the full management key.
    pub management_key: Option<toml::Value>,
    pub audience: Option<String>,
    pub timeout: Option<String>,
    pub jwks_file: Option<String>,
    pub jwks_min_refetch: Option<String>,
    pub jwks_refresh: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub auth_params: Option<BTreeMap<String, String>>,
    pub pkce: Option<bool>,
    pub id_token_algs: Option<Vec<String>>,
    pub roles_claim: Option<String>,
    pub permissions_claim: Option<String>,
    pub tenants_claim: Option<String>,
    pub userinfo: Option<bool>,
    pub audiences: Option<Vec<String>>,
    pub bearer: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie_session: Option<String>,
    pub cookie_refresh: Option<String>,
    pub same_site: Option<String>,
    pub cookie_domain: Option<String>,
    pub secure: Option<bool>,
    pub host_prefix: Option<bool>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub previous_secrets: Option<Vec<String>>,
    pub refresh: Option<bool>,
    pub refresh_reuse: Option<String>,
    pub refresh_before: Option<String>,
    pub accept_bearer: Option<bool>,
    pub accept_access_keys: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    pub methods: Option<Vec<String>>,
    pub allow_signup: Option<bool>,
    pub flow_id: Option<String>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub start_rate_limit: Option<String>,
    pub ip_rate_limit: Option<String>,
    pub allowed_redirect_origins: Option<Vec<String>>,
    pub after_logout: Option<String>,
    pub app_name: Option<String>,
    pub logo_url: Option<String>,
    pub inbox_url: Option<String>,
    pub web_component_url: Option<String>,
    pub web_component_integrity: Option<String>,
    pub web_js_sdk_url: Option<String>,
    pub web_js_sdk_integrity: Option<String>,
    pub cdn_url: Option<String>,
    pub sso_legacy_saml: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    pub mode: Option<String>,
    pub trusted_callers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Option<String>,
    pub preserve_host: Option<bool>,
    pub connect_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    pub body_idle_timeout: Option<String>,
    /// Extra CA certificates (PEM) trusted for an https upstream.
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub preset: Option<String>,
    pub forward_token: Option<String>,
    pub strip_headers: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub assertion: Option<RawAssertion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    pub enabled: Option<bool>,
    pub header: Option<String>,
    pub ttl: Option<String>,
}

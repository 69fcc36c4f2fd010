//! The emulator's in-memory world: keys, users, tenants, roles, permissions,
//! issued refresh tokens, pending logins, outbox, faults and call counts.
//!
//! Everything here is synchronous and runs under the one state mutex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::keys::{KeyError, KeyRing, VerifyError};
use crate::options::{EmulatorOptions, Fault, KeyType, MintSpec, OutboxEntry};
use crate::util::{now_secs, random_hex, random_id};
use portcullis_wire::{UserResponse, UserTenant};

/// Errors loading a seed file.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file is not valid TOML for the emulator seed format")]
    Parse(#[from] toml::de::Error),
    #[error("seed access key {id:?}: {reason}")]
    AccessKey { id: String, reason: String },
}

/// A user to create (seed file `[[users]]`, `Emulator::add_user`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserSpec {
    #[serde(alias = "loginId")]
    pub login_id: String,
    #[serde(alias = "userId")]
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub roles: Vec<String>,
    pub tenants: Vec<TenantMembership>,
    pub password: Option<String>,
    /// A test user (management `create/test`); deleted by "delete all test users".
    pub test: bool,
    /// Extra claims put in every session token of this user (what a Descope
    /// JWT template would add), e.g. `{ department = "eng" }`.
    pub claims: Map<String, Value>,
}

/// A user's membership of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantMembership {
    #[serde(alias = "tenantId")]
    pub id: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SeedPermission {
    name: String,
    description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SeedRole {
    name: String,
    description: String,
    permissions: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SeedTenant {
    id: Option<String>,
    name: String,
    sso: bool,
    domains: Vec<String>,
}

/// An access key to create (seed file `[[access_keys]]`,
/// `Emulator::create_access_key`; the management API builds one too).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessKeySpec {
    /// The secret clients send as `Bearer <projectId>:<key>` (no `:`);
    /// generated when absent.
    pub key: Option<String>,
    /// The key id, which is the `sub` of its sessions; generated when absent.
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Project-level roles (ignored when `user_id` binds the key to a user).
    pub roles: Vec<String>,
    pub tenants: Vec<TenantMembership>,
    /// Epoch seconds after which the key stops working; 0: never.
    #[serde(alias = "expireTime")]
    pub expire_time: i64,
    /// IPs or CIDRs the exchange may come from; empty: any.
    #[serde(alias = "permittedIps")]
    pub permitted_ips: Vec<String>,
    /// Claims added to every session of the key.
    #[serde(alias = "customClaims")]
    pub claims: Map<String, Value>,
    /// Binds the key to a user: its sessions carry that user's roles and tenants.
    #[serde(alias = "userId")]
    pub user_id: Option<String>,
    #[serde(alias = "customAttributes")]
    pub custom_attributes: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Seed {
    permissions: Vec<SeedPermission>,
    roles: Vec<SeedRole>,
    tenants: Vec<SeedTenant>,
    users: Vec<UserSpec>,
    access_keys: Vec<AccessKeySpec>,
}

/// A user record.
#[derive(Debug, Clone, Default)]
pub(crate) struct User {
    pub(crate) user_id: String,
    pub(crate) login_ids: Vec<String>,
    pub(crate) name: String,
    pub(crate) given_name: String,
    pub(crate) middle_name: String,
    pub(crate) family_name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) verified_email: bool,
    pub(crate) verified_phone: bool,
    pub(crate) roles: Vec<String>,
    pub(crate) tenants: Vec<TenantMembership>,
    pub(crate) status: String,
    pub(crate) picture: String,
    pub(crate) test: bool,
    pub(crate) custom_attributes: Map<String, Value>,
    pub(crate) created_time: i64,
    pub(crate) password: Option<String>,
    /// RFC 6238 secret (raw bytes).
    pub(crate) totp_secret: Option<Vec<u8>>,
    /// Has completed a login before (drives `firstSeen`).
    pub(crate) seen: bool,
    /// Extra session claims (seed `claims`, `Emulator::set_user_claims`).
    pub(crate) custom_claims: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Seed `sso = true` or `enforceSSO`: an SSO tenant without settings
    /// (the emulator's IdP page serves it).
    pub(crate) sso: bool,
    /// Self-provisioning domains.
    pub(crate) domains: Vec<String>,
    pub(crate) custom_attributes: Map<String, Value>,
    /// SSO settings configured through the management API.
    pub(crate) sso_config: Option<SsoConfig>,
}

impl Tenant {
    /// Whether `sso/authorize` serves this tenant.
    pub(crate) fn is_sso(&self) -> bool {
        self.sso || self.sso_config.is_some()
    }

    /// Whether an email domain (or a bare domain) belongs to this tenant:
    /// its self-provisioning domains or its SSO domains.
    pub(crate) fn has_domain(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .chain(self.sso_config.iter().flat_map(|c| c.domains.iter()))
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Which protocol a tenant's SSO settings configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SsoKind {
    Saml,
    Oidc,
}

/// A tenant's SSO settings (management `sso/saml`, `sso/saml/metadata`,
/// `sso/oidc`): the stored settings object as the SDK sent it, plus the
/// parts the emulator acts on.
#[derive(Debug, Clone)]
pub(crate) struct SsoConfig {
    pub(crate) kind: SsoKind,
    /// The `settings` object of the configure call.
    pub(crate) settings: Map<String, Value>,
    /// Where `sso/authorize` sends the browser back when the start names no
    /// `redirectURL`.
    pub(crate) redirect_url: String,
    /// Email domains that select this tenant in `sso/authorize?tenant=<email>`.
    pub(crate) domains: Vec<String>,
    /// Tenant roles given to users the SSO login provisions.
    pub(crate) default_roles: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Role {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) permissions: Vec<String>,
    pub(crate) tenant_id: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Permission {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// One issued refresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    pub(crate) sub: String,
    pub(crate) revoked: bool,
    /// The `jti` of the sign-in's first refresh token: every token rotated
    /// from it shares it.
    pub(crate) family: String,
    /// Revoked because a refresh rotated it (not by a logout).
    pub(crate) rotated: bool,
}

/// A login waiting for its second half (link click, code entry, consent).
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub(crate) user_id: String,
    /// `amr` factor of the completed login.
    pub(crate) amr: &'static str,
    pub(crate) expires_at: i64,
    /// Extra claims (embedded links' `customClaims`, access-key tenants ...).
    pub(crate) custom_claims: Map<String, Value>,
    /// Tenant to select (`dct`) when the login completes (SSO).
    pub(crate) tenant: Option<String>,
    /// Whether the user was created by this login (sign-up): `firstSeen`.
    pub(crate) first_seen: bool,
    /// Step-up / MFA: the session this login adds a factor to.
    pub(crate) step_up: Option<StepUp>,
}

/// The current session of a step-up or MFA login (`loginOptions.stepup` /
/// `mfa` with the refresh token in the Authorization header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepUp {
    pub(crate) sub: String,
    /// Factors already in the session (`amr`).
    pub(crate) amr: Vec<String>,
}

/// An enchanted-link session waiting for its link to be clicked.
#[derive(Debug, Clone)]
pub(crate) struct PendingSession {
    pub(crate) login: PendingLogin,
    pub(crate) verified: bool,
}

/// Issued session and refresh tokens for one login.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) session: String,
    pub(crate) session_exp: i64,
    pub(crate) refresh: String,
    pub(crate) refresh_exp: i64,
}

pub(crate) struct State {
    pub(crate) keys: KeyRing,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) permissions: BTreeMap<String, Permission>,
    pub(crate) refresh_tokens: HashMap<String, RefreshRecord>,
    /// Magic-link / embedded-link tokens, OAuth/SSO codes: one use each.
    pub(crate) tokens: HashMap<String, PendingLogin>,
    /// Enchanted-link token → pending ref.
    pub(crate) enchanted_tokens: HashMap<String, String>,
    /// Enchanted-link pending ref → session.
    pub(crate) pending_sessions: HashMap<String, PendingSession>,
    /// OTP codes by login id.
    pub(crate) otp_codes: HashMap<String, OtpCode>,
    /// Access keys by id.
    pub(crate) access_keys: BTreeMap<String, AccessKey>,
    /// OAuth/SSO authorize requests waiting on the hosted page, by state id.
    pub(crate) authorizations: HashMap<String, Authorization>,
    /// Running Descope Flow executions, by execution id.
    pub(crate) flow_executions: HashMap<String, FlowExecution>,
    pub(crate) outbox: Vec<OutboxEntry>,
    pub(crate) calls: HashMap<String, u64>,
    pub(crate) faults: HashMap<String, Fault>,
    pub(crate) cookie_mode: bool,
    pub(crate) refresh_rotation: bool,
    /// With rotation: reusing an already-rotated refresh token revokes its
    /// whole family (every token descended from the same sign-in).
    pub(crate) refresh_family_revocation: bool,
    /// How many times a reused token revoked its family.
    pub(crate) family_revocations: u64,
    pub(crate) session_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
}

/// An OTP code sent to a login id.
#[derive(Debug, Clone)]
pub(crate) struct OtpCode {
    pub(crate) code: String,
    pub(crate) expires_at: i64,
    pub(crate) attempts: u32,
    pub(crate) first_seen: bool,
    pub(crate) step_up: Option<StepUp>,
}

/// An access key (machine credential) and what its sessions carry.
#[derive(Debug, Clone)]
pub(crate) struct AccessKey {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    /// The cleartext clients send (kept: this is an emulator).
    pub(crate) secret: String,
    /// `false` after `deactivate`: the exchange refuses it until `activate`.
    pub(crate) active: bool,
    pub(crate) created_time: i64,
    /// Epoch seconds; 0: never expires.
    pub(crate) expire_time: i64,
    pub(crate) roles: Vec<String>,
    pub(crate) tenants: Vec<TenantMembership>,
    pub(crate) custom_claims: Map<String, Value>,
    /// As given (IPs or CIDRs); parsed into `permitted_nets`.
    pub(crate) permitted_ips: Vec<String>,
    pub(crate) permitted_nets: Vec<ipnet::IpNet>,
    /// Bound user (`userId`): sessions carry the user's roles and tenants.
    pub(crate) user_id: String,
    pub(crate) created_by: String,
    pub(crate) custom_attributes: Map<String, Value>,
}

impl AccessKey {
    /// Whether the exchange may come from `ip` (any IP when none are listed).
    pub(crate) fn permits(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 @ std::net::IpAddr::V4(_) => v4,
        };
        self.permitted_nets.is_empty() || self.permitted_nets.iter().any(|n| n.contains(&ip))
    }
}

/// Parses permitted IPs: `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
pub(crate) fn parse_permitted_ips(ips: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    ips.iter()
        .map(|raw| {
            let s = raw.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{raw:?} is not an IP address or CIDR range"))
        })
        .collect()
}

/// An OAuth or SSO authorize call waiting for the hosted page.
#[derive(Debug, Clone)]
pub(crate) struct Authorization {
    /// `oauth` or `sso`.
    pub(crate) kind: &'static str,
    /// Provider name (OAuth) or tenant id (SSO).
    pub(crate) provider: String,
    pub(crate) redirect_url: String,
    /// Sign-up allowed: pick-or-create; sign-in only otherwise.
    pub(crate) allow_signup: bool,
    pub(crate) expires_at: i64,
    pub(crate) step_up: Option<StepUp>,
}

/// The screens of the emulator's Flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowScreen {
    /// Email, "send a code", "send a link", OAuth buttons.
    Welcome,
    /// The one-time code entry.
    OtpCode,
    /// "Check your email": polls until the link is opened.
    LinkSent,
}

/// One run of a Descope Flow (`/v1/flow/start` … `/v1/flow/next`).
#[derive(Debug, Clone)]
pub(crate) struct FlowExecution {
    /// `sign-up-or-in`: unknown emails become users.
    pub(crate) signup: bool,
    /// The current step (its `stepId` is the number as a string).
    pub(crate) step: u32,
    pub(crate) screen: FlowScreen,
    /// The email the user gave.
    pub(crate) login_id: String,
    /// The URL the flow runs on (`options.redirectUrl`, else
    /// `options.location`): magic links and OAuth return there.
    pub(crate) location: String,
    /// The magic-link token this execution sent.
    pub(crate) link_token: Option<String>,
    /// Set when the link was opened (in any tab): the waiting tab's next
    /// poll completes with a session of its own.
    pub(crate) link_login: Option<PendingLogin>,
    pub(crate) expires_at: i64,
}

/// Lifetime of a flow execution without progress.
pub(crate) const FLOW_TTL_SECS: i64 = 30 * 60;

/// OTP lifetime.
pub(crate) const OTP_TTL_SECS: i64 = 5 * 60;
/// Lifetime of magic links, codes and pending authorizations.
pub(crate) const LINK_TTL_SECS: i64 = 10 * 60;

impl State {
    pub(crate) fn new(key_type: KeyType, opts: &EmulatorOptions) -> Result<Self, KeyError> {
        Ok(Self {
            keys: KeyRing::new(key_type)?,
            users: BTreeMap::new(),
            tenants: BTreeMap::new(),
            roles: BTreeMap::new(),
            permissions: BTreeMap::new(),
            refresh_tokens: HashMap::new(),
            tokens: HashMap::new(),
            enchanted_tokens: HashMap::new(),
            pending_sessions: HashMap::new(),
            otp_codes: HashMap::new(),
            access_keys: BTreeMap::new(),
            authorizations: HashMap::new(),
            flow_executions: HashMap::new(),
            outbox: Vec::new(),
            calls: HashMap::new(),
            faults: HashMap::new(),
            cookie_mode: opts.cookie_mode,
            refresh_rotation: opts.refresh_rotation,
            refresh_family_revocation: false,
            family_revocations: 0,
            session_ttl: opts.session_ttl,
            refresh_ttl: opts.refresh_ttl,
        })
    }

    /// Loads a seed file (module docs of `emulator` give the format).
    pub(crate) fn apply_seed(&mut self, text: &str) -> Result<(), SeedError> {
        let seed: Seed = toml::from_str(text)?;
        for p in seed.permissions {
            self.permissions.insert(
                p.name.clone(),
                Permission {
                    name: p.name,
                    description: p.description,
                },
            );
        }
        for r in seed.roles {
            self.roles.insert(
                r.name.clone(),
                Role {
                    name: r.name,
                    description: r.description,
                    permissions: r.permissions,
                    tenant_id: String::new(),
                },
            );
        }
        for t in seed.tenants {
            let id = t.id.unwrap_or_else(|| random_id("T"));
            self.tenants.insert(
                id.clone(),
                Tenant {
                    id,
                    name: t.name,
                    sso: t.sso,
                    domains: t.domains,
                    custom_attributes: Map::new(),
                    sso_config: None,
                },
            );
        }
        for u in seed.users {
            self.upsert_user(u);
        }
        for k in seed.access_keys {
            let id = k.id.clone().unwrap_or_default();
            self.create_access_key(k, "seed")
                .map_err(|reason| SeedError::AccessKey { id, reason })?;
        }
        Ok(())
    }

    // === access keys ===

    /// Creates an access key; returns `(id, cleartext)`. A given secret must be
    /// non-empty and colon-free (the SDKs send `Bearer pid:key`, split on `:`).
    pub(crate) fn create_access_key(
        &mut self,
        spec: AccessKeySpec,
        created_by: &str,
    ) -> Result<(String, String), String> {
        let id = spec.id.unwrap_or_else(|| random_id("K"));
        if self.access_keys.contains_key(&id) {
            return Err("an access key with this id already exists".to_owned());
        }
        // Colon-free: `Bearer pid:key` is split on `:`.
        let secret = spec
            .key
            .unwrap_or_else(|| format!("{id}{}", random_hex(24)));
        if secret.is_empty() || secret.contains(':') {
            return Err("a key must be non-empty and contain no ':'".to_owned());
        }
        if self.access_keys.values().any(|k| k.secret == secret) {
            return Err("another access key has this secret".to_owned());
        }
        let permitted_nets = parse_permitted_ips(&spec.permitted_ips)?;
        let user_id = spec.user_id.unwrap_or_default();
        if !user_id.is_empty() && !self.users.contains_key(&user_id) {
            return Err(format!("no user {user_id:?} to bind the key to"));
        }
        self.access_keys.insert(
            id.clone(),
            AccessKey {
                id: id.clone(),
                name: spec.name.unwrap_or_else(|| id.clone()),
                description: spec.description.unwrap_or_default(),
                secret: secret.clone(),
                active: true,
                created_time: now_secs(),
                expire_time: spec.expire_time.max(0),
                roles: spec.roles,
                tenants: spec.tenants,
                custom_claims: spec.claims,
                permitted_ips: spec.permitted_ips,
                permitted_nets,
                user_id,
                created_by: created_by.to_owned(),
                custom_attributes: spec.custom_attributes,
            },
        );
        Ok((id, secret))
    }

    /// The access key whose cleartext is `secret` (constant-time compare).
    pub(crate) fn access_key_by_secret(&self, secret: &str) -> Option<&AccessKey> {
        self.access_keys.values().find(|k| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                k.secret.as_bytes(),
                secret.as_bytes(),
            )
            .is_ok()
        })
    }

    // === users ===

    pub(crate) fn user_by_login(&self, login_id: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.login_ids.iter().any(|l| l.eq_ignore_ascii_case(login_id)))
    }

    pub(crate) fn user_id_by_login(&self, login_id: &str) -> Option<String> {
        self.user_by_login(login_id).map(|u| u.user_id.clone())
    }

    /// Creates a user, or replaces the fields given for an existing login id.
    pub(crate) fn upsert_user(&mut self, spec: UserSpec) -> String {
        let existing = self.user_id_by_login(&spec.login_id);
        let user_id = existing
            .or(spec.user_id.clone())
            .unwrap_or_else(|| random_id("U"));
        let email = spec.email.clone().unwrap_or_else(|| {
            if spec.login_id.contains('@') {
                spec.login_id.clone()
            } else {
                String::new()
            }
        });
        let user = self.users.entry(user_id.clone()).or_insert_with(|| User {
            user_id: user_id.clone(),
            login_ids: vec![spec.login_id.clone()],
            status: "enabled".to_owned(),
            created_time: now_secs(),
            ..User::default()
        });
        if let Some(name) = spec.name {
            user.name = name;
        }
        user.verified_email = !email.is_empty();
        user.email = email;
        if let Some(phone) = spec.phone {
            user.verified_phone = !phone.is_empty();
            user.phone = phone;
        }
        user.roles = spec.roles;
        user.tenants = spec.tenants;
        if spec.password.is_some() {
            user.password = spec.password;
        }
        user.test = spec.test;
        user.custom_claims = spec.claims;
        user_id
    }

    pub(crate) fn set_user_roles(&mut self, login_id: &str, roles: Vec<String>) -> bool {
        let Some(id) = self.user_id_by_login(login_id) else {
            return false;
        };
        if let Some(user) = self.users.get_mut(&id) {
            user.roles = roles;
        }
        true
    }

    pub(crate) fn set_user_claims(&mut self, login_id: &str, claims: Map<String, Value>) -> bool {
        let Some(id) = self.user_id_by_login(login_id) else {
            return false;
        };
        if let Some(user) = self.users.get_mut(&id) {
            user.custom_claims = claims;
        }
        true
    }

    pub(crate) fn set_user_tenants(
        &mut self,
        login_id: &str,
        tenants: Vec<TenantMembership>,
    ) -> bool {
        let Some(id) = self.user_id_by_login(login_id) else {
            return false;
        };
        if let Some(user) = self.users.get_mut(&id) {
            user.tenants = tenants;
        }
        true
    }

    /// Revokes every refresh token issued to `user_id`.
    pub(crate) fn revoke_user(&mut self, user_id: &str) {
        for record in self.refresh_tokens.values_mut() {
            if record.sub == user_id {
                record.revoked = true;
            }
        }
    }

    /// The wire form of a user.
    pub(crate) fn user_response(&self, user: &User) -> UserResponse {
        UserResponse {
            user_id: user.user_id.clone(),
            login_ids: user.login_ids.clone(),
            name: user.name.clone(),
            given_name: user.given_name.clone(),
            middle_name: user.middle_name.clone(),
            family_name: user.family_name.clone(),
            email: user.email.clone(),
            phone: user.phone.clone(),
            verified_email: user.verified_email,
            verified_phone: user.verified_phone,
            role_names: user.roles.clone(),
            user_tenants: user
                .tenants
                .iter()
                .map(|t| UserTenant {
                    tenant_id: t.id.clone(),
                    role_names: t.roles.clone(),
                    tenant_name: self
                        .tenants
                        .get(&t.id)
                        .map(|x| x.name.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            status: user.status.clone(),
            picture: user.picture.clone(),
            test: user.test,
            custom_attributes: user.custom_attributes.clone(),
            created_time: user.created_time,
            totp: user.totp_secret.is_some(),
            password: user.password.is_some(),
            ..UserResponse::default()
        }
    }

    // === claims and tokens ===

    /// Permissions granted by `roles` (deduplicated, in role order).
    pub(crate) fn permissions_of(&self, roles: &[String]) -> Vec<String> {
        let mut seen = HashSet::new();
        roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter())
            .filter(|p| seen.insert(p.as_str()))
            .cloned()
            .collect()
    }

    /// The identity claims of a user as they are now.
    pub(crate) fn user_claims(&self, user: &User) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("roles".into(), json!(user.roles));
        claims.insert(
            "permissions".into(),
            json!(self.permissions_of(&user.roles)),
        );
        let tenants: Map<String, Value> = user
            .tenants
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    json!({"roles": t.roles, "permissions": self.permissions_of(&t.roles)}),
                )
            })
            .collect();
        claims.insert("tenants".into(), Value::Object(tenants));
        if !user.email.is_empty() {
            claims.insert("email".into(), json!(user.email));
        }
        if !user.name.is_empty() {
            claims.insert("name".into(), json!(user.name));
        }
        for (k, v) in &user.custom_claims {
            claims.insert(k.clone(), v.clone());
        }
        claims
    }

    /// Signs a token with the standard claims, `extra` merged over them.
    fn sign(
        &mut self,
        issuer: &str,
        sub: &str,
        refresh: bool,
        ttl_secs: i64,
        extra: Map<String, Value>,
    ) -> Result<(String, i64), KeyError> {
        let now = now_secs();
        let mut claims = Map::new();
        claims.insert("drn".into(), json!(if refresh { "DSR" } else { "DS" }));
        claims.insert("iss".into(), json!(issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(ttl_secs)));
        claims.insert("jti".into(), json!(random_hex(16)));
        for (k, v) in extra {
            claims.insert(k, v);
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let token = self.keys.current().sign(&claims)?;
        if refresh && let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or(sub)
                .to_owned();
            self.refresh_tokens.insert(
                jti.to_owned(),
                RefreshRecord {
                    sub,
                    revoked: false,
                    family: jti.to_owned(),
                    rotated: false,
                },
            );
        }
        Ok((token, exp))
    }

    /// `Emulator::mint`.
    pub(crate) fn mint(&mut self, issuer: &str, spec: &MintSpec) -> Result<String, KeyError> {
        let mut extra = Map::new();
        extra.insert("amr".into(), json!(["email"]));
        for (k, v) in &spec.claims {
            extra.insert(k.clone(), v.clone());
        }
        self.sign(issuer, &spec.sub, spec.refresh, spec.ttl_secs, extra)
            .map(|(t, _)| t)
    }

    /// Signs a session token for `sub`: the user's current identity claims
    /// (or, for a subject the emulator does not know, those in `fallback`),
    /// then `amr`, `dct` and `custom` over them.
    pub(crate) fn issue_session(
        &mut self,
        issuer: &str,
        sub: &str,
        amr: &Value,
        dct: Option<&str>,
        fallback: &Map<String, Value>,
        custom: &Map<String, Value>,
    ) -> Result<(String, i64), KeyError> {
        let mut identity = match self.users.get(sub) {
            Some(user) => self.user_claims(user),
            None => fallback.clone(),
        };
        identity.insert("amr".into(), amr.clone());
        if let Some(t) = dct {
            identity.insert("dct".into(), json!(t));
        }
        for (k, v) in custom {
            identity.insert(k.clone(), v.clone());
        }
        let ttl = secs(self.session_ttl);
        self.sign(issuer, sub, false, ttl, identity)
    }

    /// Signs and registers a refresh token for `sub`; it carries `amr`, `dct`
    /// and the custom claims so a refresh can carry them forward.
    pub(crate) fn issue_refresh(
        &mut self,
        issuer: &str,
        sub: &str,
        amr: &Value,
        dct: Option<&str>,
        custom: &Map<String, Value>,
    ) -> Result<(String, i64), KeyError> {
        let mut claims = custom.clone();
        claims.insert("amr".into(), amr.clone());
        if let Some(t) = dct {
            claims.insert("dct".into(), json!(t));
        }
        let ttl = secs(self.refresh_ttl);
        self.sign(issuer, sub, true, ttl, claims)
    }

    /// A fresh session + refresh pair for a completed login.
    pub(crate) fn issue(
        &mut self,
        issuer: &str,
        sub: &str,
        amr: &Value,
        dct: Option<&str>,
        custom: &Map<String, Value>,
    ) -> Result<Issued, KeyError> {
        let (session, session_exp) =
            self.issue_session(issuer, sub, amr, dct, &Map::new(), custom)?;
        let (refresh, refresh_exp) = self.issue_refresh(issuer, sub, amr, dct, custom)?;
        Ok(Issued {
            session,
            session_exp,
            refresh,
            refresh_exp,
        })
    }

    /// Checks a presented refresh token: signed by us, not expired, `drn` DSR,
    /// not revoked. Returns its claims.
    pub(crate) fn check_refresh(&self, token: &str) -> Result<Map<String, Value>, RefreshRefusal> {
        let claims = self.keys.verify(token).map_err(RefreshRefusal::Verify)?;
        if claims.get("drn").and_then(Value::as_str) != Some("DSR") {
            return Err(RefreshRefusal::NotRefresh);
        }
        if let Some(jti) = claims.get("jti").and_then(Value::as_str)
            && self.refresh_tokens.get(jti).is_some_and(|r| r.revoked)
        {
            return Err(RefreshRefusal::Revoked);
        }
        Ok(claims)
    }

    /// Revokes one refresh token by its claims.
    pub(crate) fn revoke_token(&mut self, claims: &Map<String, Value>) {
        if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            self.refresh_tokens
                .entry(jti.to_owned())
                .or_insert(RefreshRecord {
                    sub,
                    revoked: true,
                    family: jti.to_owned(),
                    rotated: false,
                })
                .revoked = true;
        }
    }

    /// A rotation: the old token (by its claims) is revoked as rotated and
    /// `new_token` joins its family.
    pub(crate) fn rotate_token(&mut self, old: &Map<String, Value>, new_token: &str) {
        self.revoke_token(old);
        let Some(old_jti) = old.get("jti").and_then(Value::as_str) else {
            return;
        };
        let family = match self.refresh_tokens.get_mut(old_jti) {
            Some(r) => {
                r.rotated = true;
                r.family.clone()
            }
            None => return,
        };
        if let Ok(new) = self.keys.verify(new_token)
            && let Some(jti) = new.get("jti").and_then(Value::as_str)
            && let Some(r) = self.refresh_tokens.get_mut(jti)
        {
            r.family = family;
        }
    }

    /// Family revocation: when `token` is a refresh token that a refresh
    /// already rotated, revokes every token of its family. Returns whether
    /// it did.
    pub(crate) fn revoke_family_on_reuse(&mut self, token: &str) -> bool {
        if !(self.refresh_rotation && self.refresh_family_revocation) {
            return false;
        }
        let Ok(claims) = self.keys.verify(token) else {
            return false;
        };
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return false;
        };
        let Some(family) = self
            .refresh_tokens
            .get(jti)
            .filter(|r| r.rotated)
            .map(|r| r.family.clone())
        else {
            return false;
        };
        for r in self.refresh_tokens.values_mut() {
            if r.family == family {
                r.revoked = true;
            }
        }
        true
    }

    /// Forgets expired single-use tokens, codes and pending logins, so that a
    /// long-running emulator does not grow without bound.
    pub(crate) fn sweep(&mut self) {
        let now = now_secs();
        self.tokens.retain(|_, l| l.expires_at >= now);
        self.pending_sessions
            .retain(|_, s| s.login.expires_at >= now);
        let live: HashSet<String> = self.pending_sessions.keys().cloned().collect();
        self.enchanted_tokens.retain(|_, r| live.contains(r));
        self.otp_codes.retain(|_, c| c.expires_at >= now);
        self.authorizations.retain(|_, a| a.expires_at >= now);
        self.flow_executions.retain(|_, e| e.expires_at >= now);
    }

    /// Stores a single-use login token (magic link, embedded link, OAuth/SSO code).
    pub(crate) fn new_token(&mut self, login: PendingLogin) -> String {
        self.sweep();
        let token = random_hex(24);
        self.tokens.insert(token.clone(), login);
        token
    }

    /// Stores an enchanted-link token and its pending session; returns `(token, pendingRef)`.
    pub(crate) fn new_enchanted(&mut self, login: PendingLogin) -> (String, String) {
        self.sweep();
        let token = random_hex(24);
        let pending_ref = random_hex(16);
        self.enchanted_tokens
            .insert(token.clone(), pending_ref.clone());
        self.pending_sessions.insert(
            pending_ref.clone(),
            PendingSession {
                login,
                verified: false,
            },
        );
        (token, pending_ref)
    }

    /// A fresh six-digit OTP for `login_id` (replacing any earlier one).
    pub(crate) fn new_otp(
        &mut self,
        login_id: &str,
        first_seen: bool,
        step_up: Option<StepUp>,
    ) -> String {
        use rand::Rng as _;
        self.sweep();
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        self.otp_codes.insert(
            login_id.to_lowercase(),
            OtpCode {
                code: code.clone(),
                expires_at: now_secs().saturating_add(OTP_TTL_SECS),
                attempts: 0,
                first_seen,
                step_up,
            },
        );
        code
    }

    /// Appends to the outbox and returns the entry.
    pub(crate) fn send(&mut self, mut entry: OutboxEntry) -> OutboxEntry {
        entry.id = u64::try_from(self.outbox.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        entry.sent_at = now_secs();
        self.outbox.push(entry.clone());
        entry
    }
}

/// Why a refresh token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RefreshRefusal {
    #[error(transparent)]
    Verify(VerifyError),
    #[error("the token is not a refresh token")]
    NotRefresh,
    #[error("the refresh token was revoked")]
    Revoked,
}

/// Whole seconds of a duration, saturating.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

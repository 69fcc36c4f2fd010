//! The Descope-API emulator (docs/emulator.md): a local, faithful stand-in for the
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
//!     3. routes::dispatch ─► cors         (preflight; loopback origins with credentials)
//!                         ├► session      (keys, refresh, logout, me, tenant select)
//!                         ├► auth         (magic/enchanted link, OTP, TOTP, password,
//!                         │                OAuth, SSO/SAML authorize + exchange)
//!                         ├► access_keys  (/v1/auth/accesskey/exchange, /v1/mgmt/accesskey*)
//!                         ├► mgmt         (/v1/mgmt/*, /v2/mgmt/*: users, tenants, roles,
//!                         │                permissions, test-user helpers)
//!                         │   ├► access_keys
//!                         │   └► sso_settings (SAML / OIDC settings of a tenant)
//!                         ├► flow         (/v1/flow/start, /v1/flow/next: Descope Flows)
//!                         ├► flow_pages   (/pages/{pid}/v2-beta/: config.json, theme.json, screens)
//!                         ├► npm          (/npm/{package}@{version}/{path} from --web-components)
//!                         ├► pages        (hosted OAuth consent + SSO IdP pages, outbox)
//!                         └► control      (/emulator/*: mint, rotate keys, faults, calls,
//!                                          revoke, cookie mode, rotation, users, outbox)
//! ```
//!
//! Modules depend on each other in one direction only (checked by
//! `tests/module_graph.rs`): `routes` and `server` on top; the endpoint
//! modules in the middle; `tokens`, `state`, `shared`, `keys` below them and
//! `http`, `options`, `util` as leaves. Nothing names the crate root.
//!
//! # Descope Flows
//!
//! The real `<descope-wc>` (npm `@descope/web-component`) runs against the
//! emulator with no internet: with `base-url` set to the emulator it reads
//! the flow files from `/pages/{projectId}/v2-beta/`, and with
//! `base-cdn-url` set to it, it loads `@descope/web-components-ui` from
//! `/npm/...` (served from the `--web-components` folder). The flows
//! `sign-in` and `sign-up-or-in` offer a one-time code, a magic link (with a
//! waiting screen that completes when the link is opened anywhere) and OAuth
//! through the hosted consent page; codes and links land in the outbox.
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
//! key = "K-ci-secret"                    # optional (generated); sent as Bearer <projectId>:<key>; no ':'
//! id = "K-ci"                            # optional; the session's `sub`
//! name = "CI"                            # optional
//! roles = ["admin"]
//! tenants = [{ id = "T-acme", roles = ["member"] }]
//! expire_time = 0                        # optional epoch seconds; 0: never
//! permitted_ips = ["127.0.0.1", "10.0.0.0/8"]   # optional; empty: any caller
//! claims = { service = "ci" }            # optional extra session-token claims
//! user_id = "U-alice"                    # optional: sessions carry this user's roles/tenants
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

mod access_keys;
mod auth;
pub mod cli;
mod control;
mod cors;
pub mod demo;
mod flow;
mod flow_pages;
mod handle;
mod http;
mod keys;
mod mgmt;
mod npm;
mod options;
mod pages;
mod routes;
mod server;
mod session;
mod shared;
mod sso_settings;
mod state;
mod tokens;
mod util;

pub use self::handle::Emulator;
pub use self::npm::{WebComponents, WebComponentsError};
pub use self::options::{
    DEFAULT_COMPONENTS_VERSION, DEFAULT_PROJECT_ID, DEFAULT_REFRESH_TTL, DEFAULT_SESSION_TTL,
    EmulatorOptions, Fault, FaultKind, IssuerMode, KeyType, MintSpec, OutboxEntry,
};
pub use self::state::{AccessKeySpec, TenantMembership, UserSpec};

#[cfg(test)]
mod tests;

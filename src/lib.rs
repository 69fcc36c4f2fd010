//! Portcullis: an authentication gateway in front of applications that know
//! nothing about login.
//!
//! ```text
//! client ──► server (accept, TLS, limits)
//!              └─► pipeline::handle
//!                    1. canon::CanonicalPath::parse   (once; decide and forward on it)
//!                    2. {auth_prefix}/*  ──► callbacks (login, logout, verify, me)
//!                    3. policy::Policy::find          (first match; 405 / deny / public)
//!                    4. session::SessionValidator     (Bearer or DS cookie; cached by hash)
//!                    5. refresh (single-flight per DSR) on a missing/expired session
//!                    6. 302 login / 401 JSON when unauthenticated
//!                    7. Route::authorize              (roles, permissions, tenant, claims, mfa)
//!                    8. identity::apply + proxy::forward (strip, inject, stream)
//! ```
//!
//! Pure modules (`canon`, `policy`, `claims`, `identity`) take parsed input and
//! return values; only `server`, `proxy`, `descope`, `session::jwks`, `admin`
//! and `emulator` do I/O. Production code never imports `emulator`; only the
//! CLI (`dev`, `emulator`) and the tests do.

pub mod access_keys;
pub mod admin;
pub mod answer;
pub mod app;
pub mod assertion;
pub mod cli;
pub mod config;
pub mod decide;
pub mod descope;
pub mod favicon;
pub mod hosted;
pub mod http_util;
pub mod listen;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod pipeline;
pub mod proxy;
pub mod refresh;
pub mod reload;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;

pub use portcullis_core::{
    canon, claims, cookies, host, identity, inbound, login_state, method_override, policy,
    ratelimit, redirect, single_flight, time,
};

//! The one integration-test binary: every test spawns a Descope emulator, a
//! recording upstream and a gateway on `127.0.0.1:0` and talks HTTP to them.

mod support;

/// Config file parsing, errors, the example config, `check-config`.
mod config;
/// Route rules end to end: every rule type allowed and denied, 405, optional, default policy.
mod policy;
/// Canonical paths: what reaches the upstream for 40+ spellings.
mod paths;
/// Identity headers: presets, spoofing in every spelling, token forwarding.
mod identity;
/// Token attacks and JWKS behaviour.
mod tokens;
/// Proxying: hop-by-hop, X-Forwarded-*, 502/504, streaming, WebSocket, strip_prefix.
mod proxy;
/// Forward-auth decisions (`/verify`) in nginx, Traefik and Envoy shapes.
mod forward_auth;
/// Admin listener, readiness, metrics, reload, shutdown.
mod ops;

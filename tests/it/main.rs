//! The one integration-test binary: every test spawns a Descope emulator, a
//! recording upstream and a gateway on `127.0.0.1:0` and talks HTTP to them.

mod support;

/// Descope access keys for machine clients: one exchange, rules on its claims, limits.
mod access_keys;

/// The answer table: pages for browsers, JSON for APIs, for every error.
mod answers;
/// The binary itself: `run`, signals, exit codes.
mod binary;
/// The bypass classes (paths, letter case, Host grammar, header spellings,
/// method overrides, Windows path forms) in proxy and every forward-auth mode.
mod bypass;
/// Config file parsing, errors, the example config, `check-config`.
mod config;
/// Route decisions against models of Tomcat, Spring, Express, Werkzeug, Go
/// and IIS reading the same bytes (pure; no sockets).
mod differential;
/// Forward-auth decisions (`/verify`) in nginx, Traefik and Envoy shapes.
mod forward_auth;
/// Real frameworks as upstreams (Express, Flask/Werkzeug, wsgiref,
/// http.server): what they route, and their keep-alive habits.
mod frameworks;
/// Identity headers: presets, spoofing in every spelling, token forwarding.
mod identity;
/// Size-based limits: many headers either way, client body framing errors, CONNECT.
mod limits;
/// Hosted login: every flow against the emulator, state-cookie CSRF, open
/// redirects, sign-in only, e-mail domains, rate limits.
mod login;
/// A real nginx with `auth_request` in front of an app, asking `/verify`.
mod nginx;
/// The OpenID Connect mode against a real OpenID Provider (oidc-provider):
/// sign-in, sealed sessions, refresh under rotation, bearer tokens, logout.
mod oidc;
/// Admin listener, readiness, metrics, reload, shutdown.
mod ops;
/// Canonical paths: what reaches the upstream for 40+ spellings.
mod paths;
/// Route rules end to end: every rule type allowed and denied, 405, optional, default policy.
mod policy;
/// Proxying: hop-by-hop, X-Forwarded-*, 502/504, streaming, WebSocket, strip_prefix.
mod proxy;
/// Transparent refresh, session cookies (chunks), logout, Descope outages.
mod refresh;
/// The reload contract: restart-only keys refused by name, pools kept.
mod reload;
/// Ways around the gateway: smuggling, host and header desync, hosted-prefix tricks.
mod security;
/// Several replicas sharing state on a real Redis: refresh, rate limits,
/// logout, outages.
mod store;
/// TLS (rustls, ALPN, certificate reload) and h2c.
mod tls;
/// Token attacks and JWKS behaviour.
mod tokens;
/// 101 only for a WebSocket handshake the client asked for and the upstream accepted.
mod upgrade;
/// Upstream connections: bodies never precede a pooled request, stale
/// keep-alive retries, HEAD answered with a body.
mod upstream_conn;

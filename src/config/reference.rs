//! The configuration reference: every key `portcullis.toml` accepts, with its
//! type, default, whether a reload applies it, and what it does.
//!
//! [`KEYS`] is the single source of `docs/configuration.md` (its table is
//! rendered by [`render_markdown`]) and of the "expected form" in TOML type
//! errors. Tests keep it honest against the serde types in [`super::raw`]:
//! the set of keys serde accepts (read from its own "unknown field …,
//! expected one of …" answers, table by table) must equal the set listed
//! here, every listed type must parse while a value of another type must not,
//! and the generated table in the docs must be up to date. A new key that is
//! not listed here therefore fails the tests.

/// The shape of a key's value, as written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    /// A string such as `"500ms"`, `"30s"`, `"10m"`, `"12h"`.
    Duration,
    /// A string of this form.
    Text(&'static str),
    /// `"env:NAME"` or a literal (a literal draws a lint).
    Secret,
    /// A list of strings of this form.
    List(&'static str),
    /// A table of named keys (each a row of its own).
    Table,
    /// `[[routes]]`: an array of tables.
    TableArray,
    /// A table of free-form keys: `name → this`.
    Map(&'static str),
    /// Anything (only refused keys).
    Any,
}

impl Kind {
    /// The type column of the reference.
    pub fn describe(self) -> String {
        match self {
            Kind::Bool => "bool".into(),
            Kind::Int => "integer".into(),
            Kind::Duration => {
                "duration string (`\"500ms\"`, `\"30s\"`, `\"10m\"`, `\"12h\"`)".into()
            }
            Kind::Text(form) => format!("string: {form}"),
            Kind::Secret => "secret string: `\"env:NAME\"` or a literal".into(),
            Kind::List(form) => format!("list of strings: {form}"),
            Kind::Table => "table".into(),
            Kind::TableArray => "array of tables (`[[routes]]`)".into(),
            Kind::Map(form) => format!("table: {form}"),
            Kind::Any => "—".into(),
        }
    }

    /// How to write a value of this kind, for error messages.
    pub fn how_to_write(self, key: &str) -> String {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        match self {
            Kind::Bool => format!("write {leaf} = true or {leaf} = false (no quotes)"),
            Kind::Int => format!("write a whole number without quotes, e.g. {leaf} = 1000"),
            Kind::Duration => format!(
                "write a quoted duration with a unit, e.g. {leaf} = \"60s\" (also \"500ms\", \"10m\", \"12h\")"
            ),
            Kind::Text(form) => format!("write a quoted string ({form})"),
            Kind::Secret => {
                format!(
                    "write a quoted string, e.g. {leaf} = \"env:NAME\" to read it from the environment"
                )
            }
            Kind::List(form) => {
                format!("write a list of quoted strings ({form}), e.g. {leaf} = [\"a\", \"b\"]")
            }
            Kind::Table => format!("write a table: [{key}] on its own line, then its keys"),
            Kind::TableArray => format!("write each entry as a [[{key}]] table"),
            Kind::Map(form) => format!("write a table ({form})"),
            Kind::Any => "remove the key".into(),
        }
    }
}

/// One row of the reference.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// Dotted path; `<name>` stands for any table name, `routes[]` for every route.
    pub key: &'static str,
    pub kind: Kind,
    /// As written in TOML, or a sentence.
    pub default: &'static str,
    /// A change needs a restart (a reload keeps the old value or is refused).
    pub restart: bool,
    pub about: &'static str,
}

const fn k(
    key: &'static str,
    kind: Kind,
    default: &'static str,
    restart: bool,
    about: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        kind,
        default,
        restart,
        about,
    }
}

const R: bool = true; // restart only
const L: bool = false; // applied by a reload

use Kind::{Any, Bool, Duration, Int, List, Map, Secret, Table, TableArray, Text};

/// Every key, in the order of `docs/configuration.md`.
pub const KEYS: &[KeyDoc] = &[
    // [server]
    k(
        "server",
        Table,
        "",
        L,
        "The traffic listener and request limits.",
    ),
    k(
        "server.listen",
        Text("IP:port"),
        "`\"0.0.0.0:8080\"`",
        R,
        "Address of the traffic listener.",
    ),
    k(
        "server.public_url",
        Text("http(s) origin, no path"),
        "`http://localhost:<listen port>` (with a lint)",
        L,
        "The one public origin: cookies, callbacks and same-origin checks use it.",
    ),
    k(
        "server.auth_prefix",
        Text("path"),
        "`\"/_auth\"`",
        L,
        "Where the hosted endpoints (login, logout, verify, me) live.",
    ),
    k(
        "server.trusted_proxies",
        List("CIDRs"),
        "`[]`",
        L,
        "Peers whose `X-Forwarded-*`, `Forwarded`, `X-Real-IP` are believed. An IPv4 network also matches its peers seen as `::ffff:a.b.c.d` on a dual-stack `[::]` listener. Their `Forwarded` goes on to the app, unless it names a `host=` (then it is dropped: the app's host is the one judged, in `X-Forwarded-Host`).",
    ),
    k(
        "server.case_insensitive_paths",
        Bool,
        "`false`",
        L,
        "Match routes case-insensitively (IIS-style upstreams).",
    ),
    k(
        "server.tls",
        Table,
        "off",
        R,
        "Serve HTTPS (HTTP/1.1 and HTTP/2 via ALPN). The certificate files are re-read when they change.",
    ),
    k(
        "server.tls.cert_file",
        Text("path to a PEM certificate chain"),
        "—",
        R,
        "Certificate chain; relative paths are relative to the config file.",
    ),
    k(
        "server.tls.key_file",
        Text("path to a PEM private key"),
        "—",
        R,
        "Private key of the certificate.",
    ),
    k(
        "server.header_read_timeout",
        Duration,
        "`\"10s\"`",
        L,
        "The whole request head must arrive within this (slowloris guard).",
    ),
    k(
        "server.idle_timeout",
        Duration,
        "`\"60s\"`",
        L,
        "Idle keep-alive connections are closed after this.",
    ),
    k(
        "server.max_header_bytes",
        Int,
        "`32768`",
        L,
        "Larger request heads get 431.",
    ),
    k(
        "server.max_connections",
        Int,
        "`10000`",
        R,
        "Concurrent downstream connections.",
    ),
    k(
        "server.max_body_bytes",
        Int,
        "off",
        L,
        "Request bodies larger than this get 413.",
    ),
    k(
        "server.shutdown_grace",
        Duration,
        "`\"30s\"`",
        L,
        "On SIGTERM, in-flight requests may finish for at most this long.",
    ),
    // [admin]
    k(
        "admin",
        Table,
        "",
        L,
        "The admin listener: `/healthz`, `/readyz`, `/metrics`.",
    ),
    k(
        "admin.listen",
        Text("IP:port, or \"\" for off"),
        "`\"127.0.0.1:9090\"`",
        R,
        "Address of the admin listener; in Kubernetes `\"0.0.0.0:9090\"` so kubelet probes reach it.",
    ),
    // [descope]
    k(
        "descope",
        Table,
        "",
        R,
        "The Descope project. A reload refuses changes here: restart to apply them.",
    ),
    k(
        "descope.project_id",
        Secret,
        "`DESCOPE_PROJECT_ID`",
        R,
        "The Descope project id (Project settings in the console).",
    ),
    k(
        "descope.base_url",
        Text("https URL (http only for loopback)"),
        "`DESCOPE_BASE_URI`, else `https://api.descope.com` (regional host for 32+ character project ids)",
        R,
        "Descope API origin.",
    ),
    k(
        "descope.auth_management_key",
        Secret,
        "`DESCOPE_AUTH_MANAGEMENT_KEY`",
        R,
        "Only for projects that disable the public auth APIs.",
    ),
    k(
        "descope.auth_management_key_file",
        Text("path"),
        "—",
        R,
        "The same, read from a file.",
    ),
    k(
        "descope.management_key",
        Any,
        "—",
        R,
        "Refused: the gateway never needs the full management key.",
    ),
    k(
        "descope.audience",
        Text("string"),
        "the project id",
        R,
        "A token that carries `aud` must contain this.",
    ),
    k(
        "descope.timeout",
        Duration,
        "`\"5s\"`",
        R,
        "Per Descope call; at most one retry (after 200 ms) for 502/503/504 and connect errors.",
    ),
    k(
        "descope.jwks_file",
        Text("path to a JWKS or one JWK"),
        "`DESCOPE_PUBLIC_KEY`",
        R,
        "Seed keys, so the gateway can validate sessions during a Descope outage at start.",
    ),
    k(
        "descope.jwks_min_refetch",
        Duration,
        "`\"10s\"`",
        R,
        "Unknown `kid`: at most one key fetch per this interval.",
    ),
    k(
        "descope.jwks_refresh",
        Duration,
        "`\"5m\"`",
        R,
        "Periodic key refresh (while no key is loaded: retries from 0.5 s, backing off to 30 s).",
    ),
    k(
        "descope.ca_file",
        Text("path to PEM CA certificates"),
        "—",
        R,
        "Extra CA trusted for `base_url` besides the webpki roots. A bundle replaced at the same path is a change too: a reload then refuses it, naming the key, until a restart.",
    ),
    // [oidc]
    k(
        "oidc",
        Table,
        "",
        R,
        "An OpenID Provider (Authing/GenAuth, Keycloak, Auth0, Okta, Descope's OIDC) instead of `[descope]`; exactly one of the two.",
    ),
    k(
        "oidc.issuer",
        Text("https URL"),
        "— (required)",
        R,
        "The provider's issuer, exactly as its discovery document names it; `iss` must equal it. Plain http only on loopback.",
    ),
    k(
        "oidc.client_id",
        Secret,
        "— (required)",
        R,
        "The gateway's client id at the provider (`env:NAME` or a literal).",
    ),
    k(
        "oidc.client_secret",
        Secret,
        "none (a public client: PKCE, auth method `none`)",
        R,
        "The client secret; also keys HS256 ID tokens when `id_token_algs` lists HS256.",
    ),
    k(
        "oidc.client_secret_file",
        Text("path"),
        "—",
        R,
        "File holding `client_secret`.",
    ),
    k(
        "oidc.token_endpoint_auth_method",
        Text("\"client_secret_basic\", \"client_secret_post\" or \"none\""),
        "basic when the provider advertises it, else post; `none` without a secret",
        R,
        "How the gateway authenticates to the token, introspection and revocation endpoints.",
    ),
    k(
        "oidc.scopes",
        List("scopes"),
        "`[\"openid\", \"profile\", \"email\", \"offline_access\"]`",
        R,
        "Requested scopes; must include `openid`.",
    ),
    k(
        "oidc.auth_params",
        Map("string"),
        "none",
        R,
        "Extra authorization-request parameters, e.g. `{ prompt = \"consent\" }` (Authing issues refresh tokens only with it).",
    ),
    k(
        "oidc.pkce",
        Bool,
        "`true`",
        R,
        "PKCE S256 on the code flow (required for a public client).",
    ),
    k(
        "oidc.id_token_algs",
        List("JWS algorithms"),
        "`[\"RS256\", \"ES256\"]`",
        R,
        "Accepted ID token algorithms: RS256/384/512, ES256/384, and HS256/384/512 (keyed with the client secret) only when listed; never `none`; PS256/384/512 are refused with an error (the gateway does not verify RSASSA-PSS).",
    ),
    k(
        "oidc.roles_claim",
        Text("claim name or dotted path"),
        "`\"roles\"`",
        R,
        "Where the roles are, e.g. `\"realm_access.roles\"` (Keycloak) or `\"groups\"`.",
    ),
    k(
        "oidc.permissions_claim",
        Text("claim name or dotted path"),
        "`\"permissions\"`",
        R,
        "Where the permissions are.",
    ),
    k(
        "oidc.tenants_claim",
        Text("claim name or dotted path"),
        "none (tenant rules never pass)",
        R,
        "A claim with tenant ids (a list, or Descope's `{id: {...}}` shape), for tenant rules.",
    ),
    k(
        "oidc.userinfo",
        Bool,
        "`true`",
        R,
        "Merge the userinfo claims at sign-in and at every refresh.",
    ),
    k(
        "oidc.audiences",
        List("audiences"),
        "`[client_id]`",
        R,
        "Bearer access tokens must carry one of these in `aud`.",
    ),
    k(
        "oidc.bearer",
        Text("\"jwt\", \"introspect\" or \"off\""),
        "`\"jwt\"`",
        R,
        "How `Authorization: Bearer` access tokens are checked: as JWTs against the provider's keys, or by RFC 7662 introspection (cached ≤ 60 s).",
    ),
    k(
        "oidc.timeout",
        Duration,
        "`\"5s\"`",
        R,
        "Timeout of one call to the provider.",
    ),
    k(
        "oidc.ca_file",
        Text("path to PEM CA certificates"),
        "—",
        R,
        "Extra CA trusted for the provider's endpoints. A bundle replaced at the same path is a change too: a reload then refuses it, naming the key, until a restart.",
    ),
    // [store]
    k(
        "store",
        Table,
        "",
        R,
        "Shared state across replicas on Redis: refresh single-flight, login rate limits, logout memory. Absent: each replica keeps its own.",
    ),
    k(
        "store.redis_url",
        Secret,
        "— (required in `[store]`)",
        R,
        "`redis://` or `rediss://` (TLS with rustls) URL, with password and database when needed; e.g. `env:PORTCULLIS_REDIS_URL`.",
    ),
    k(
        "store.redis_url_file",
        Text("path"),
        "—",
        R,
        "The same, read from a file.",
    ),
    k(
        "store.key_prefix",
        Text("string"),
        "`portcullis:`",
        R,
        "Prefix of every Redis key (several gateways may share one Redis).",
    ),
    k(
        "store.timeout",
        Duration,
        "`250ms`",
        R,
        "Longest wait for one Redis call on the request path; beyond it the replica falls back to its local state.",
    ),
    k(
        "store.ca_file",
        Text("path to PEM CA certificates"),
        "—",
        R,
        "CA trusted for a `rediss://` server instead of the webpki roots. A bundle replaced at the same path is a change too: a reload then refuses it, naming the key, until a restart.",
    ),
    // [session]
    k(
        "session",
        Table,
        "",
        L,
        "Session cookies, refresh and the login-state secret.",
    ),
    k(
        "session.cookie_session",
        Text("cookie name"),
        "`\"DS\"`",
        L,
        "Session cookie (`__Host-` prefixed when `host_prefix` applies).",
    ),
    k(
        "session.cookie_refresh",
        Text("cookie name"),
        "`\"DSR\"`",
        L,
        "Refresh cookie.",
    ),
    k(
        "session.same_site",
        Text("\"lax\", \"strict\" or \"none\""),
        "`\"lax\"`",
        L,
        "`SameSite` of the cookies (`none` needs `secure`).",
    ),
    k(
        "session.cookie_domain",
        Text("domain"),
        "unset (host-only)",
        L,
        "Lint: hands the refresh token to every subdomain.",
    ),
    k(
        "session.secure",
        Bool,
        "`true` unless `public_url` is `http://`",
        L,
        "`Secure` attribute of the cookies.",
    ),
    k(
        "session.host_prefix",
        Bool,
        "`true`",
        L,
        "`__Host-` cookie names when `public_url` is https and no `cookie_domain`.",
    ),
    k(
        "session.secret",
        Secret,
        "required when a login method is on (generated in `dev`)",
        L,
        "At least 32 bytes; signs the login state.",
    ),
    k(
        "session.secret_file",
        Text("path"),
        "—",
        L,
        "The same, read from a file.",
    ),
    k(
        "session.previous_secrets",
        List("secrets"),
        "`[]`",
        L,
        "Still accepted for verification while rotating `secret`.",
    ),
    k(
        "session.refresh",
        Bool,
        "`true`",
        L,
        "Transparent refresh with the refresh cookie.",
    ),
    k(
        "session.refresh_reuse",
        Duration,
        "`\"10s\"`",
        R,
        "A refresh result (or refusal) is shared by requests with the same refresh token this long; a provider outage at most 1 s, so recovery is not delayed.",
    ),
    k(
        "session.refresh_before",
        Duration,
        "off",
        L,
        "Refresh a session that expires within this window.",
    ),
    k(
        "session.accept_bearer",
        Bool,
        "`true`",
        L,
        "Accept `Authorization: Bearer <session jwt>`.",
    ),
    k(
        "session.accept_access_keys",
        Bool,
        "`false`",
        L,
        "Descope mode: a Bearer credential that is not a JWT is exchanged as a Descope access key; the session JWT it yields is verified and kept until it expires (one exchange per key at a time; at most 30 exchanges of unknown keys per client and minute, an IPv6 client counted by its /64).",
    ),
    // [login]
    k(
        "login",
        Table,
        "",
        L,
        "The hosted login page and its methods.",
    ),
    k(
        "login.methods",
        List("\"flow\", \"magiclink\", \"enchantedlink\", \"otp\", \"sso\", \"oauth:<provider>\""),
        "`[]`",
        L,
        "Login methods offered; none: every login endpoint answers 404.",
    ),
    k(
        "login.allow_signup",
        Bool,
        "`false`",
        L,
        "`true`: sign-up-or-in; `false`: existing users only.",
    ),
    k(
        "login.flow_id",
        Text("Descope flow id"),
        "`\"sign-in\"`",
        L,
        "Flow run by the `flow` method.",
    ),
    k(
        "login.allowed_email_domains",
        List("domains"),
        "`[]` (all)",
        L,
        "Refuse login starts for other e-mail domains.",
    ),
    k(
        "login.start_rate_limit",
        Text("\"N/sec\", \"N/min\" or \"N/hour\""),
        "`\"10/min\"`",
        L,
        "Per e-mail address: login starts that send a message (magic link, enchanted link, one-time code).",
    ),
    k(
        "login.ip_rate_limit",
        Text("\"N/sec\", \"N/min\" or \"N/hour\""),
        "`\"300/min\"`",
        L,
        "Per client IP: every login start (generous, so an office behind one NAT fits).",
    ),
    k(
        "login.allowed_redirect_origins",
        List("origins"),
        "`[]`",
        L,
        "Absolute `return_to` targets allowed besides same-origin paths.",
    ),
    k(
        "login.after_logout",
        Text("path or allowed URL"),
        "`\"/\"`",
        L,
        "Where a browser lands after signing out.",
    ),
    k(
        "login.app_name",
        Text("string"),
        "`\"Portcullis\"`",
        L,
        "Shown on the hosted pages.",
    ),
    k(
        "login.logo_url",
        Text("URL or path"),
        "—",
        L,
        "Logo on the hosted pages.",
    ),
    k(
        "login.inbox_url",
        Text("URL"),
        "—",
        L,
        "A \"open your inbox\" link on the check-your-email pages (`dev` points it at the emulator's outbox).",
    ),
    k(
        "login.web_component_url",
        Text("URL"),
        "pinned `@descope/web-component` on jsDelivr",
        L,
        "Script of the `flow` method (self-host by overriding with its integrity).",
    ),
    k(
        "login.web_component_integrity",
        Text("SRI hash"),
        "the pinned script's hash",
        L,
        "Subresource Integrity of `web_component_url`.",
    ),
    k(
        "login.web_js_sdk_url",
        Text("URL"),
        "pinned `@descope/web-js-sdk` on jsDelivr",
        L,
        "Second script of the `flow` method.",
    ),
    k(
        "login.web_js_sdk_integrity",
        Text("SRI hash"),
        "the pinned script's hash",
        L,
        "Subresource Integrity of `web_js_sdk_url`.",
    ),
    k(
        "login.cdn_url",
        Text("origin"),
        "Descope's CDNs",
        L,
        "Passed to the web component as `base-cdn-url`: the origin its UI libraries load from (`https`, or `http` on loopback such as the emulator's `--web-components`).",
    ),
    k(
        "login.sso_legacy_saml",
        Bool,
        "`false`",
        L,
        "Use Descope's legacy `/v1/auth/saml/*` paths for SSO.",
    ),
    // [forward_auth]
    k(
        "forward_auth",
        Table,
        "",
        L,
        "The `{auth_prefix}/verify` decision endpoint.",
    ),
    k(
        "forward_auth.mode",
        Text("\"nginx\", \"traefik\" or \"envoy\""),
        "`\"traefik\"`",
        L,
        "Where `/verify` reads the original request from.",
    ),
    k(
        "forward_auth.trusted_callers",
        List("CIDRs"),
        "`[\"127.0.0.1/32\", \"::1/128\"]`",
        L,
        "Only these peers may call `/verify` (IPv4 networks match IPv4-mapped peers too).",
    ),
    // [upstreams.<name>]
    k(
        "upstreams",
        Map("one `[upstreams.<name>]` table per upstream"),
        "—",
        L,
        "The apps behind the gateway; routes pick one by name (`default` unless set). None at all (a lint) suits a forward-auth-only gateway: proxied requests then get 502.",
    ),
    k("upstreams.<name>", Table, "", L, "One upstream."),
    k(
        "upstreams.<name>.url",
        Text("http(s) URL, optional base path"),
        "required",
        L,
        "Where requests go.",
    ),
    k(
        "upstreams.<name>.preserve_host",
        Bool,
        "`false`",
        L,
        "Send the client's `Host` upstream (`X-Forwarded-Host` is always set).",
    ),
    k(
        "upstreams.<name>.connect_timeout",
        Duration,
        "`\"5s\"`",
        L,
        "TCP (and TLS) connect timeout.",
    ),
    k(
        "upstreams.<name>.response_header_timeout",
        Duration,
        "`\"30s\"`",
        L,
        "504 when the response head takes longer, counted from the end of the request body (a long upload is no timeout; a stalled one ends by `server.idle_timeout`).",
    ),
    k(
        "upstreams.<name>.body_idle_timeout",
        Duration,
        "`\"60s\"`",
        L,
        "No body byte either way for this long ends the stream.",
    ),
    k(
        "upstreams.<name>.ca_file",
        Text("path to PEM CA certificates"),
        "—",
        L,
        "Extra CA for an https upstream, read again on every reload (a bundle replaced in place is applied; that upstream's pooled connections are then renewed).",
    ),
    // [identity]
    k(
        "identity",
        Table,
        "",
        L,
        "What the app receives about the user.",
    ),
    k(
        "identity.preset",
        Text("\"portcullis\", \"oauth2-proxy\" or \"authelia\""),
        "`\"portcullis\"`",
        L,
        "Header names of the identity.",
    ),
    k(
        "identity.forward_token",
        Text("\"none\", \"authorization\" or \"header:NAME\""),
        "`\"none\"`",
        L,
        "Pass the session JWT on.",
    ),
    k(
        "identity.strip_headers",
        List("header names"),
        "`[]`",
        L,
        "More inbound headers to remove, beyond the built-in list.",
    ),
    k(
        "identity.headers",
        Map("header name → claim name"),
        "`{}`",
        L,
        "Extra claim → header pairs.",
    ),
    k(
        "identity.assertion",
        Table,
        "off",
        L,
        "A short-lived JWT signed by the gateway for the app (JWKS at `{auth_prefix}/jwks.json`).",
    ),
    k(
        "identity.assertion.enabled",
        Bool,
        "`false`",
        L,
        "Send the assertion.",
    ),
    k(
        "identity.assertion.header",
        Text("header name"),
        "`\"X-Portcullis-Assertion\"`",
        L,
        "Header carrying it.",
    ),
    k(
        "identity.assertion.ttl",
        Duration,
        "`\"60s\"`",
        L,
        "Its lifetime.",
    ),
    // [policy]
    k(
        "policy",
        Table,
        "",
        L,
        "What requests that match no route get.",
    ),
    k(
        "policy.default",
        Text("\"deny\" or \"authenticated\""),
        "`\"deny\"`",
        L,
        "`deny`: 403; `authenticated`: any valid session.",
    ),
    // [[routes]]
    k(
        "routes",
        TableArray,
        "`[]`",
        L,
        "Ordered route rules; the first path (and host) match decides.",
    ),
    k(
        "routes[].name",
        Text("string"),
        "the path pattern",
        L,
        "Shown in logs and metrics.",
    ),
    k(
        "routes[].path",
        Text("glob: `*`, `{name}`, `**`"),
        "— (or `path_regex`)",
        L,
        "Canonical path pattern.",
    ),
    k(
        "routes[].path_regex",
        Text("regular expression"),
        "—",
        L,
        "Instead of `path`: implicitly anchored, on the canonical path.",
    ),
    k(
        "routes[].methods",
        List("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT, or \"EXT:NAME\""),
        "all",
        L,
        "Other methods get 405; HEAD counts as GET; extension methods as `\"EXT:PROPFIND\"`.",
    ),
    k(
        "routes[].host",
        Text("host or \"*.example.com\""),
        "any",
        L,
        "Request host to match.",
    ),
    k(
        "routes[].access",
        Text("\"public\", \"optional\", \"authenticated\" or \"deny\""),
        "`\"authenticated\"`",
        L,
        "Whether a session is needed.",
    ),
    k(
        "routes[].roles",
        List("role names"),
        "—",
        L,
        "All required.",
    ),
    k(
        "routes[].any_roles",
        List("role names"),
        "—",
        L,
        "At least one required.",
    ),
    k(
        "routes[].permissions",
        List("permission names"),
        "—",
        L,
        "All required.",
    ),
    k(
        "routes[].any_permissions",
        List("permission names"),
        "—",
        L,
        "At least one required.",
    ),
    k(
        "routes[].tenant",
        Text("\"{capture}\", \"header:NAME\", \"dct\" or a tenant id"),
        "—",
        L,
        "Tenant the user must belong to.",
    ),
    k(
        "routes[].tenant_roles",
        List("role names"),
        "—",
        L,
        "All required in that tenant.",
    ),
    k(
        "routes[].any_tenant_roles",
        List("role names"),
        "—",
        L,
        "At least one required in that tenant.",
    ),
    k(
        "routes[].tenant_permissions",
        List("permission names"),
        "—",
        L,
        "All required in that tenant.",
    ),
    k(
        "routes[].any_tenant_permissions",
        List("permission names"),
        "—",
        L,
        "At least one required in that tenant.",
    ),
    k(
        "routes[].claims",
        Map("claim → value, or list of accepted values"),
        "—",
        L,
        "Claims that must hold.",
    ),
    k(
        "routes[].require_mfa",
        Bool,
        "`false`",
        L,
        "The session must come from a multi-factor login.",
    ),
    k(
        "routes[].unauthenticated",
        Text("\"redirect\" or \"401\""),
        "redirect browser navigations, 401 otherwise",
        L,
        "What a request without a session gets.",
    ),
    k(
        "routes[].allow_preflight",
        Bool,
        "`false`",
        L,
        "Unauthenticated CORS preflight `OPTIONS` goes upstream.",
    ),
    k(
        "routes[].upstream",
        Text("an `[upstreams.<name>]` name"),
        "`\"default\"`",
        L,
        "Where the route forwards.",
    ),
    k(
        "routes[].strip_prefix",
        Text("path"),
        "—",
        L,
        "Canonical prefix removed before forwarding.",
    ),
    k(
        "routes[].allow_encoded_slash",
        Bool,
        "`false`",
        L,
        "Accept `%2F` in the path (refused with 400 otherwise).",
    ),
];

/// The row for a key path as serde reports it (`routes[3].methods`,
/// `upstreams.billing.url`); for a path below a free-form table, the row of
/// that table.
pub fn lookup(path: &str) -> Option<&'static KeyDoc> {
    let mut segments: Vec<String> = split(path);
    while !segments.is_empty() {
        if let Some(row) = KEYS.iter().find(|r| matches(&split(r.key), &segments)) {
            return Some(row);
        }
        segments.pop();
    }
    None
}

/// `routes[3].methods` → `["routes[]", "methods"]`.
fn split(path: &str) -> Vec<String> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| match s.find('[') {
            Some(i) => format!("{}[]", &s[..i]),
            None => s.to_owned(),
        })
        .collect()
}

fn matches(pattern: &[String], path: &[String]) -> bool {
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(p, s)| p == s || (p.starts_with('<') && p.ends_with('>')))
}

/// The reference table as Markdown, one table per top-level section.
pub fn render_markdown() -> String {
    let mut out = String::new();
    for row in KEYS {
        if !row.key.contains('.') && !row.key.contains('[') {
            let heading = match row.kind {
                TableArray => format!("[[{}]]", row.key),
                Table => format!("[{}]", row.key),
                _ => format!("[{}.<name>]", row.key),
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("### `{heading}`\n\n{}\n\n", row.about));
            out.push_str("| key | type | default | on reload | what it does |\n");
            out.push_str("|---|---|---|---|---|\n");
            if row.kind == Table {
                continue;
            }
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            row.key,
            row.kind.describe(),
            if row.default.is_empty() {
                "—"
            } else {
                row.default
            },
            if row.restart { "restart" } else { "applied" },
            row.about,
        ));
    }
    out
}

#[cfg(test)]
mod tests;

//! `RawConfig` → `Config`: resolve env/file values, parse, cross-check, lint.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use super::raw::{RawConfig, RawDescope, RawIdentity, RawLogin, RawOidc, RawServer, RawSession};
use super::*;
use crate::cookies::{CookieSettings, SameSite};
use crate::policy::{CompileContext, Policy};
use crate::ratelimit::RateSpec;

/// Where `env:NAME` values and the `DESCOPE_*` fallbacks come from.
pub trait EnvLookup {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub(super) struct ProcessEnv;

impl EnvLookup for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl EnvLookup for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvLookup for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Parses TOML into the serde mirror; a syntax or type error names the key
/// (dotted path, with indexes), the line, the value as written and the
/// expected form from the configuration reference.
pub(super) fn parse_raw(text: &str) -> Result<RawConfig, Box<ConfigIssue>> {
    let de = toml::Deserializer::parse(text).map_err(|e| Box::new(toml_error(text, &e, None)))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then_some(path);
        Box::new(toml_error(text, e.inner(), path.as_deref()))
    })
}

/// A TOML syntax or schema error: the key, its line, and the fix.
pub(super) fn toml_error(text: &str, e: &toml::de::Error, path: Option<&str>) -> ConfigIssue {
    let span = e.span().filter(|s| s.start <= s.end && s.end <= text.len());
    let line = span
        .as_ref()
        .map(|s| text[..s.start].matches('\n').count() + 1);
    let msg = e.message().trim().to_string();
    let at_line = line.map_or_else(String::new, |l| format!("line {l}: "));
    if let Some(field) = unknown_field(&msg) {
        let key = match path {
            Some(p) if !p.ends_with(field.as_str()) => format!("{p}.{field}"),
            Some(p) => p.to_owned(),
            None => field.clone(),
        };
        let suggestion = closest_field(&msg, &field)
            .map_or_else(String::new, |s| format!("did you mean `{s}`? "));
        return ConfigIssue::new(
            key,
            format!("{at_line}unknown key"),
            format!(
                "{suggestion}remove or correct the key; docs/configuration.md lists every valid key \
                 (unknown keys are errors so a typo can never weaken a rule)"
            ),
        );
    }
    let Some(key) = path else {
        let location = line.map_or_else(|| "(file)".to_owned(), |l| format!("line {l}"));
        return ConfigIssue::new(
            location,
            msg,
            "correct the TOML at that line; see docs/configuration.md",
        );
    };
    let value = span
        .map(|s| text[s.start..s.end].trim())
        .filter(|v| !v.is_empty() && v.len() <= 80 && !v.contains('\n'));
    let fix = match super::reference::lookup(key) {
        Some(row) => format!(
            "{} (see {} in docs/configuration.md)",
            row.kind.how_to_write(key),
            row.key
        ),
        None => "correct the value; see docs/configuration.md".to_owned(),
    };
    let issue = ConfigIssue::new(key, format!("{at_line}{msg}"), fix);
    match value {
        Some(v) => issue.with_value(v),
        None => issue,
    }
}

/// `unknown field `x`, expected ...` → `x`.
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_owned)
}

/// The accepted field (from serde's "expected one of" list) nearest to
/// `field`, when it is a likely typo (edit distance ≤ 2).
fn closest_field(msg: &str, field: &str) -> Option<String> {
    let expected = msg.split("expected").nth(1)?;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|c| (edit_distance(c, field), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Ctx<'a> {
    issues: Vec<ConfigIssue>,
    lints: Vec<ConfigIssue>,
    env: &'a dyn EnvLookup,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    fn error(&mut self, issue: ConfigIssue) {
        self.issues.push(issue);
    }

    /// Whether an error was already reported for `key` or one of its
    /// sub-keys (`key[0]`, `key.x`), so a follow-up error is not stacked on it.
    fn reported(&self, key: &str) -> bool {
        self.issues.iter().any(|i| i.key.starts_with(key))
    }

    fn lint(&mut self, issue: ConfigIssue) {
        self.lints.push(issue);
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) => match parse_duration(v) {
                Ok(d) => d,
                Err(why) => {
                    self.error(
                        ConfigIssue::new(
                            key,
                            format!("not a duration ({why})"),
                            "write a duration such as \"500ms\", \"30s\", \"10m\" or \"12h\"",
                        )
                        .with_value(format!("{v:?}")),
                    );
                    default
                }
            },
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn read_file(&mut self, key: &str, p: &str) -> Option<String> {
        let path = self.path(p);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(
                    ConfigIssue::new(
                        key,
                        format!("cannot read {}: {e}", path.display()),
                        "point it at an existing, readable file (relative paths are relative to the config file)",
                    )
                    .with_value(format!("{p:?}")),
                );
                None
            }
        }
    }

    /// `env:NAME`, a literal, or the `*_file` twin. Literals draw a lint.
    fn secret(&mut self, key: &str, value: Option<&str>, file: Option<&str>) -> Option<Secret> {
        match (value, file) {
            (Some(_), Some(_)) => {
                self.error(ConfigIssue::new(
                    key,
                    format!("both {key} and {key}_file are set"),
                    format!("keep only one of {key} and {key}_file"),
                ));
                None
            }
            (Some(v), None) => self.env_or_literal(key, v, true),
            (None, Some(f)) => self
                .read_file(&format!("{key}_file"), f)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n']).to_string())),
            (None, None) => None,
        }
    }

    fn env_or_literal(&mut self, key: &str, v: &str, is_secret: bool) -> Option<Secret> {
        if let Some(name) = v.strip_prefix("env:") {
            match self.env.var(name) {
                Some(val) => Some(Secret::new(val)),
                None => {
                    self.error(
                        ConfigIssue::new(
                            key,
                            format!("environment variable {name} is not set (or empty)"),
                            format!("export {name}, or set {key} another way"),
                        )
                        .with_value(format!("{v:?}")),
                    );
                    None
                }
            }
        } else {
            if is_secret {
                self.lint(ConfigIssue::new(
                    key,
                    "a secret is written literally in the config file",
                    format!("use {key} = \"env:NAME\" or {key}_file = \"/path\" so the file can be shared safely"),
                ));
            }
            Some(Secret::new(v.to_string()))
        }
    }
}

/// `"500ms"`, `"30s"`, `"10m"`, `"12h"` (and anything humantime accepts).
pub fn parse_duration(v: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(v.trim())
}

fn parse_cidr(v: &str) -> Option<IpNet> {
    v.parse::<IpNet>()
        .ok()
        .or_else(|| v.parse::<IpAddr>().ok().map(IpNet::from))
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `scheme://host[:port]` of a URL (default ports omitted).
pub fn origin_of(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// The SDKs' regional rule (descope-api.md §1): project ids of 32+ characters
/// carry a region in characters 1..5.
pub fn default_base_url(project_id: &str) -> String {
    if project_id.len() >= 32 && project_id.is_char_boundary(1) && project_id.is_char_boundary(5) {
        format!("https://api.{}.descope.com", &project_id[1..5])
    } else {
        DEFAULT_DESCOPE_BASE_URL.to_string()
    }
}

pub(super) fn validate(
    raw: RawConfig,
    base_dir: &Path,
    env: &dyn EnvLookup,
    opts: LoadOptions,
) -> Result<Config, ConfigErrors> {
    let mut cx = Ctx {
        issues: Vec::new(),
        lints: Vec::new(),
        env,
        base_dir,
    };

    let server = server(&mut cx, &raw.server);
    let admin = admin(&mut cx, raw.admin.listen.as_deref());
    let idp = match (&raw.descope, &raw.oidc) {
        (Some(_), Some(_)) => {
            cx.error(ConfigIssue::new(
                "oidc",
                "both [descope] and [oidc] are configured; a gateway has exactly one identity provider",
                "remove the [descope] table to front an OpenID Provider, or the [oidc] table to use Descope",
            ));
            IdpConfig::Descope(descope(
                &mut cx,
                raw.descope.as_ref().unwrap_or(&RawDescope::default()),
            ))
        }
        (_, Some(o)) => IdpConfig::Oidc(oidc(&mut cx, o, &server)),
        (Some(d), None) => IdpConfig::Descope(descope(&mut cx, d)),
        (None, None) => {
            cx.error(ConfigIssue::new(
                "descope",
                "neither [descope] nor [oidc] is configured; a gateway needs exactly one identity provider",
                "add a [descope] table (project_id, or DESCOPE_PROJECT_ID to fill it) or an [oidc] table",
            ));
            IdpConfig::Descope(descope(&mut cx, &RawDescope::default()))
        }
    };
    let login = login(&mut cx, &raw.login, &server);
    let oidc_mode = matches!(idp, IdpConfig::Oidc(_));
    let session = session(&mut cx, &raw.session, &server, &login, opts, oidc_mode);
    let store = raw.store.as_ref().and_then(|s| store(&mut cx, s));
    let forward_auth = forward_auth(&mut cx, &raw.forward_auth);
    let upstreams = upstreams(&mut cx, &raw.upstreams);
    let identity = identity(&mut cx, &raw.identity);

    let mut names: Vec<String> = upstreams.keys().cloned().collect();
    names.sort();
    let policy = match Policy::compile(
        &raw.routes,
        &raw.policy,
        &CompileContext {
            case_insensitive_paths: server.case_insensitive_paths,
            upstreams: &names,
        },
    ) {
        Ok(p) => Some(p),
        Err(errs) => {
            cx.issues.extend(errs);
            None
        }
    };

    if let Some(p) = &policy {
        cx.lints.extend(p.lints());
        if forward_auth.mode == ForwardAuthMode::Nginx && p.has_host_routes() {
            cx.lint(ConfigIssue::new(
                "forward_auth.mode",
                "routes with `host` in nginx forward-auth: ingress-nginx sends the auth request with the auth service's own Host, so those routes never match there and a later route decides instead",
                "with ingress-nginx, write the rules without `host` (one gateway config per app host); with plain nginx, pass the client's Host to the auth location (proxy_set_header Host $host)",
            ));
        }
        let catch_all_authenticated = p
            .routes()
            .iter()
            .any(|r| r.access == crate::policy::Access::Authenticated && r.is_catch_all());
        if login.allow_signup && catch_all_authenticated {
            cx.lint(ConfigIssue::new(
                "login.allow_signup",
                "sign-up is allowed and the catch-all route only requires authentication: anyone who signs up can reach it",
                "add role/permission rules to the catch-all route, or set allow_signup = false",
            ));
        }
    }
    if session.cookies.domain.is_some() {
        cx.lint(ConfigIssue::new(
            "session.cookie_domain",
            "the refresh token cookie is sent to every subdomain",
            "remove cookie_domain unless every subdomain is trusted with sessions",
        ));
    }
    if let Some(admin_addr) = admin.listen {
        let in_container =
            env.var("KUBERNETES_SERVICE_HOST").is_some() || Path::new("/.dockerenv").exists();
        if in_container && admin_addr.ip().is_loopback() {
            cx.lint(ConfigIssue::new(
                "admin.listen",
                "the admin listener is on loopback inside a container, so kubelet probes cannot reach it",
                "set admin.listen = \"0.0.0.0:9090\" in Kubernetes",
            ).with_value(admin_addr));
        }
    }

    match (cx.issues.is_empty(), policy) {
        (true, Some(policy)) => Ok(Config {
            server,
            admin,
            idp,
            session,
            store,
            login,
            forward_auth,
            upstreams,
            identity,
            policy,
            lints: cx.lints,
        }),
        _ => Err(ConfigErrors(cx.issues)),
    }
}

/// `[store]`: a Redis URL (secret), a key prefix, a per-call timeout.
fn store(cx: &mut Ctx<'_>, s: &super::raw::RawStore) -> Option<super::StoreConfig> {
    let url = cx.secret(
        "store.redis_url",
        s.redis_url.as_deref(),
        s.redis_url_file.as_deref(),
    );
    let timeout = cx.duration(
        "store.timeout",
        s.timeout.as_deref(),
        super::DEFAULT_STORE_TIMEOUT,
    );
    if timeout.is_zero() || timeout > Duration::from_secs(5) {
        cx.error(ConfigIssue::new(
            "store.timeout",
            "must be more than 0 and at most 5s (it is added to requests while Redis is slow)",
            "write a duration such as \"250ms\"",
        ));
    }
    let ca_file = s.ca_file.as_deref().map(|p| cx.path(p));
    if let Some(p) = &ca_file
        && !p.is_file()
    {
        cx.error(
            ConfigIssue::new(
                "store.ca_file",
                format!("{} is not a readable file", p.display()),
                "point it at a PEM file with the CA that signed the Redis server's certificate",
            )
            .with_value(format!("{:?}", p.display().to_string())),
        );
    }
    let key_prefix = s
        .key_prefix
        .clone()
        .unwrap_or_else(|| super::DEFAULT_STORE_KEY_PREFIX.to_owned());
    let Some(url) = url else {
        if s.redis_url.is_none() && s.redis_url_file.is_none() {
            cx.error(ConfigIssue::new(
                "store.redis_url",
                "[store] needs a Redis URL",
                "set redis_url = \"env:PORTCULLIS_REDIS_URL\" (or redis_url_file), or remove the [store] table",
            ));
        }
        return None;
    };
    match url::Url::parse(url.expose()) {
        Ok(u) if u.scheme() == "redis" || u.scheme() == "rediss" => {
            if ca_file.is_some() && u.scheme() != "rediss" {
                cx.error(ConfigIssue::new(
                    "store.ca_file",
                    "a CA file only applies to rediss:// (TLS)",
                    "use a rediss:// URL, or remove ca_file",
                ));
            }
        }
        // The value is secret: never echoed.
        _ => cx.error(ConfigIssue::new(
            "store.redis_url",
            "not a redis:// or rediss:// URL",
            "write redis://[:password@]host:6379[/db] or rediss://… for TLS",
        )),
    }
    Some(super::StoreConfig {
        redis_url: url,
        key_prefix,
        timeout,
        ca_digest: ca_file.as_deref().and_then(file_digest),
        ca_file,
    })
}

/// `server.public_url`: an http(s) origin, no path or query.
fn server_public_url(cx: &mut Ctx<'_>, s: &RawServer, listen: SocketAddr) -> url::Url {
    match s.public_url.as_deref() {
        Some(v) => match url::Url::parse(v) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && (u.path() == "/" || u.path().is_empty())
                    && u.query().is_none() =>
            {
                u
            }
            _ => {
                cx.error(
                    ConfigIssue::new(
                        "server.public_url",
                        "must be an http(s) origin with no path or query",
                        "write the public origin users type, e.g. \"https://app.example.com\"",
                    )
                    .with_value(format!("{v:?}")),
                );
                fallback_public_url(listen)
            }
        },
        None => {
            cx.lint(ConfigIssue::new(
                "server.public_url",
                "not set; using http://localhost with the listen port (cookies without Secure, same-origin checks against it)",
                "set public_url to the origin users reach the gateway at",
            ));
            fallback_public_url(listen)
        }
    }
}

/// `server.tls`: both files, each existing.
fn server_tls(cx: &mut Ctx<'_>, s: &RawServer) -> Option<TlsConfig> {
    let tls = s
        .tls
        .as_ref()
        .and_then(|t| match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => Some(TlsConfig {
                cert_file: cx.path(c),
                key_file: cx.path(k),
            }),
            _ => {
                cx.error(ConfigIssue::new(
                "server.tls",
                "needs both cert_file and key_file",
                "write tls = { cert_file = \"/etc/tls/tls.crt\", key_file = \"/etc/tls/tls.key\" }",
            ));
                None
            }
        });
    if let Some(t) = &tls {
        for (k, p) in [
            ("server.tls.cert_file", &t.cert_file),
            ("server.tls.key_file", &t.key_file),
        ] {
            if !p.is_file() {
                cx.error(
                    ConfigIssue::new(
                        k,
                        "file does not exist",
                        "point it at a PEM file (relative paths are relative to the config file)",
                    )
                    .with_value(p.display()),
                );
            }
        }
    }
    tls
}

fn server(cx: &mut Ctx<'_>, s: &RawServer) -> ServerConfig {
    let listen_s = s.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_s.parse::<SocketAddr>().unwrap_or_else(|_| {
        cx.error(
            ConfigIssue::new(
                "server.listen",
                "not an IP:port address",
                "write e.g. \"0.0.0.0:8080\" or \"127.0.0.1:8080\"",
            )
            .with_value(format!("{listen_s:?}")),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_url = server_public_url(cx, s, listen);
    let auth_prefix = s
        .auth_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_AUTH_PREFIX.to_string());
    let prefix_ok = auth_prefix.starts_with('/')
        && auth_prefix.len() > 1
        && !auth_prefix.ends_with('/')
        && crate::canon::CanonicalPath::parse(&auth_prefix)
            .map(|c| c.match_path() == auth_prefix && !c.has_encoded_slash())
            .unwrap_or(false);
    if !prefix_ok {
        cx.error(
            ConfigIssue::new(
                "server.auth_prefix",
                "must be a canonical path below / without a trailing slash",
                "use e.g. \"/_auth\"",
            )
            .with_value(format!("{auth_prefix:?}")),
        );
    }
    let mut trusted = Vec::new();
    for (i, v) in s.trusted_proxies.iter().flatten().enumerate() {
        match parse_cidr(v) {
            Some(n) => trusted.push(n),
            None => cx.error(
                ConfigIssue::new(
                    format!("server.trusted_proxies[{i}]"),
                    "not a CIDR or IP address",
                    "write e.g. \"10.0.0.0/8\" or \"192.0.2.7\"",
                )
                .with_value(format!("{v:?}")),
            ),
        }
    }
    let tls = server_tls(cx, s);
    let max_header_bytes = match s.max_header_bytes {
        None => DEFAULT_MAX_HEADER_BYTES,
        Some(n) if (1024..=1024 * 1024).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                ConfigIssue::new(
                    "server.max_header_bytes",
                    "out of range",
                    "use a value between 1024 and 1048576",
                )
                .with_value(n),
            );
            DEFAULT_MAX_HEADER_BYTES
        }
    };
    let max_connections = match s.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(0) => {
            cx.error(
                ConfigIssue::new(
                    "server.max_connections",
                    "must be at least 1",
                    "use e.g. 10000",
                )
                .with_value(0),
            );
            DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => n as usize,
    };
    ServerConfig {
        listen,
        public_origin: origin_of(&public_url),
        public_url,
        auth_prefix,
        trusted_proxies: trusted,
        case_insensitive_paths: s.case_insensitive_paths.unwrap_or(false),
        tls,
        header_read_timeout: cx.duration(
            "server.header_read_timeout",
            s.header_read_timeout.as_deref(),
            DEFAULT_HEADER_READ_TIMEOUT,
        ),
        idle_timeout: cx.duration(
            "server.idle_timeout",
            s.idle_timeout.as_deref(),
            DEFAULT_IDLE_TIMEOUT,
        ),
        max_header_bytes,
        max_connections,
        max_body_bytes: s.max_body_bytes,
        shutdown_grace: cx.duration(
            "server.shutdown_grace",
            s.shutdown_grace.as_deref(),
            DEFAULT_SHUTDOWN_GRACE,
        ),
    }
}

fn fallback_public_url(listen: SocketAddr) -> url::Url {
    url::Url::parse(&format!("http://localhost:{}", listen.port()))
        .expect("a localhost URL with a numeric port always parses")
}

fn admin(cx: &mut Ctx<'_>, listen: Option<&str>) -> AdminConfig {
    match listen {
        Some("") => AdminConfig { listen: None },
        other => {
            let v = other.unwrap_or(DEFAULT_ADMIN_LISTEN);
            match v.parse::<SocketAddr>() {
                Ok(a) => AdminConfig { listen: Some(a) },
                Err(_) => {
                    cx.error(
                        ConfigIssue::new("admin.listen", "not an IP:port address", "write e.g. \"127.0.0.1:9090\" (or \"0.0.0.0:9090\" in Kubernetes), or \"\" to turn it off")
                            .with_value(format!("{v:?}")),
                    );
                    AdminConfig { listen: None }
                }
            }
        }
    }
}

fn descope(cx: &mut Ctx<'_>, d: &RawDescope) -> DescopeConfig {
    if d.management_key.is_some() {
        cx.error(ConfigIssue::new(
            "descope.management_key",
            "the gateway never uses the full management key and refuses to hold it",
            "remove it; use auth_management_key only if the project disables public auth APIs",
        ));
    }
    let project_id = match d.project_id.as_deref() {
        Some(v) => cx
            .env_or_literal("descope.project_id", v, false)
            .map(|s| s.expose().trim().to_string()),
        None => cx
            .env
            .var("DESCOPE_PROJECT_ID")
            .map(|s| s.trim().to_string()),
    }
    .unwrap_or_default();
    let pid_ok = !project_id.is_empty()
        && project_id.len() <= 128
        && project_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !pid_ok && !cx.issues.iter().any(|i| i.key == "descope.project_id") {
        cx.error(
            ConfigIssue::new(
                "descope.project_id",
                if project_id.is_empty() { "not set" } else { "not a Descope project id (letters, digits, - and _ only)" },
                "set project_id = \"env:DESCOPE_PROJECT_ID\" and export DESCOPE_PROJECT_ID, or write the id (or configure [oidc] instead of [descope] to front an OpenID Provider)",
            )
            .with_value(format!("{project_id:?}")),
        );
    }
    let base_s = d
        .base_url
        .clone()
        .or_else(|| cx.env.var("DESCOPE_BASE_URI"))
        .unwrap_or_else(|| default_base_url(&project_id));
    let base_url = match url::Url::parse(base_s.trim_end_matches('/')) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => u,
        Ok(u) if u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host) => u,
        Ok(u) if u.scheme() == "http" => {
            cx.error(
                ConfigIssue::new(
                    "descope.base_url",
                    "plain http is only allowed for loopback hosts (tokens and refresh tokens travel on it)",
                    "use an https:// URL (add ca_file for a private CA)",
                )
                .with_value(format!("{base_s:?}")),
            );
            u
        }
        _ => {
            cx.error(
                ConfigIssue::new(
                    "descope.base_url",
                    "not an http(s) URL",
                    "write e.g. \"https://api.descope.com\"",
                )
                .with_value(format!("{base_s:?}")),
            );
            url::Url::parse(DEFAULT_DESCOPE_BASE_URL).expect("constant URL parses")
        }
    };
    let auth_management_key = match (&d.auth_management_key, &d.auth_management_key_file) {
        (None, None) => cx.env.var("DESCOPE_AUTH_MANAGEMENT_KEY").map(Secret::new),
        (v, f) => cx.secret("descope.auth_management_key", v.as_deref(), f.as_deref()),
    };
    let seed_keys = match &d.jwks_file {
        Some(f) => cx.read_file("descope.jwks_file", f),
        None => cx.env.var("DESCOPE_PUBLIC_KEY"),
    };
    let ca_file = d.ca_file.as_deref().map(|p| cx.path(p));
    if let Some(p) = &ca_file
        && !p.is_file()
    {
        cx.error(
            ConfigIssue::new(
                "descope.ca_file",
                "file does not exist",
                "point it at a PEM bundle",
            )
            .with_value(p.display()),
        );
    }
    let audience = d.audience.clone().unwrap_or_else(|| project_id.clone());
    DescopeConfig {
        timeout: cx.duration(
            "descope.timeout",
            d.timeout.as_deref(),
            DEFAULT_DESCOPE_TIMEOUT,
        ),
        jwks_min_refetch: cx.duration(
            "descope.jwks_min_refetch",
            d.jwks_min_refetch.as_deref(),
            DEFAULT_JWKS_MIN_REFETCH,
        ),
        jwks_refresh: cx.duration(
            "descope.jwks_refresh",
            d.jwks_refresh.as_deref(),
            DEFAULT_JWKS_REFRESH,
        ),
        project_id,
        base_url,
        auth_management_key,
        audience,
        seed_keys,
        ca_digest: ca_file.as_deref().and_then(file_digest),
        ca_file,
    }
}

fn oidc(cx: &mut Ctx<'_>, o: &RawOidc, server: &ServerConfig) -> crate::oidc::OidcConfig {
    let _ = server;
    let issuer = oidc_issuer(cx, o);
    let (client_id, client_secret, auth_method, pkce) = oidc_client(cx, o);
    let public = client_secret.is_none();
    let scopes: Vec<String> = o.scopes.clone().unwrap_or_else(|| {
        crate::oidc::DEFAULT_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    });
    if !scopes.iter().any(|s| s == "openid") {
        cx.error(
            ConfigIssue::new(
                "oidc.scopes",
                "must include \"openid\"",
                "add \"openid\" to scopes",
            )
            .with_value(format!("{scopes:?}")),
        );
    }
    let id_token_algs = oidc_algs(cx, o, public);
    let bearer = oidc_bearer(cx, o, public);
    let (roles_claim, permissions_claim, tenants_claim) = oidc_claim_paths(cx, o);
    let auth_params = oidc_auth_params(cx, o);
    let ca_file = o.ca_file.as_deref().map(|p| cx.path(p));
    if let Some(p) = &ca_file
        && !p.is_file()
    {
        cx.error(
            ConfigIssue::new(
                "oidc.ca_file",
                "file does not exist",
                "point it at a PEM bundle",
            )
            .with_value(p.display()),
        );
    }
    let audiences = o
        .audiences
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![client_id.clone()]);
    crate::oidc::OidcConfig {
        issuer,
        client_id,
        client_secret,
        auth_method,
        scopes,
        auth_params,
        pkce,
        id_token_algs,
        roles_claim,
        permissions_claim,
        tenants_claim,
        userinfo: o.userinfo.unwrap_or(true),
        audiences,
        bearer,
        timeout: cx.duration(
            "oidc.timeout",
            o.timeout.as_deref(),
            crate::oidc::DEFAULT_TIMEOUT,
        ),
        ca_digest: ca_file.as_deref().and_then(file_digest),
        ca_file,
    }
}

/// SHA-256 of a file's contents (`None` when it cannot be read; that is
/// reported where the file is checked).
fn file_digest(path: &Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    d.as_ref().try_into().ok()
}

/// `oidc.issuer`: https (plain http on loopback only), no query or fragment.
fn oidc_issuer(cx: &mut Ctx<'_>, o: &RawOidc) -> String {
    let issuer = o.issuer.clone().unwrap_or_default();
    match url::Url::parse(&issuer) {
        Ok(u) if crate::oidc::is_secure(&u) && u.query().is_none() && u.fragment().is_none() => {}
        Ok(u) if u.scheme() == "http" => cx.error(
            ConfigIssue::new(
                "oidc.issuer",
                "plain http is only allowed for loopback hosts (codes and tokens travel on it)",
                "use the provider's https issuer URL",
            )
            .with_value(format!("{issuer:?}")),
        ),
        _ => cx.error(
            ConfigIssue::new(
                "oidc.issuer",
                if issuer.is_empty() { "not set" } else { "not an https URL without query or fragment" },
                "set issuer to the provider's issuer URL exactly as its discovery document names it, e.g. \"https://example.authing.cn/oidc\"",
            )
            .with_value(format!("{issuer:?}")),
        ),
    }
    issuer
}

/// The client: id, secret, token endpoint auth method and PKCE, checked together.
fn oidc_client(
    cx: &mut Ctx<'_>,
    o: &RawOidc,
) -> (
    String,
    Option<Secret>,
    Option<crate::oidc::ClientAuth>,
    bool,
) {
    use crate::oidc::ClientAuth;
    let client_id = match o.client_id.as_deref() {
        Some(v) => cx
            .env_or_literal("oidc.client_id", v, false)
            .map(|s| s.expose().trim().to_owned())
            .unwrap_or_default(),
        None => String::new(),
    };
    if client_id.is_empty() && !cx.issues.iter().any(|i| i.key == "oidc.client_id") {
        cx.error(ConfigIssue::new(
            "oidc.client_id",
            "not set",
            "set client_id = \"env:OIDC_CLIENT_ID\" (the application's client id at the provider)",
        ));
    }
    let client_secret = cx.secret(
        "oidc.client_secret",
        o.client_secret.as_deref(),
        o.client_secret_file.as_deref(),
    );
    let auth_method = match o.token_endpoint_auth_method.as_deref() {
        None => None,
        Some("client_secret_basic") => Some(ClientAuth::Basic),
        Some("client_secret_post") => Some(ClientAuth::Post),
        Some("none") => Some(ClientAuth::None),
        Some(other) => {
            cx.error(
                ConfigIssue::new(
                    "oidc.token_endpoint_auth_method",
                    "unknown method",
                    "write \"client_secret_basic\", \"client_secret_post\" or \"none\"",
                )
                .with_value(format!("{other:?}")),
            );
            None
        }
    };
    match (auth_method, &client_secret) {
        (Some(ClientAuth::Basic | ClientAuth::Post), None) => cx.error(ConfigIssue::new(
            "oidc.token_endpoint_auth_method",
            "a client secret method without oidc.client_secret",
            "set client_secret (or client_secret_file), or use \"none\" for a public client with PKCE",
        )),
        (Some(ClientAuth::None), Some(_)) => cx.error(ConfigIssue::new(
            "oidc.client_secret",
            "a client secret with token_endpoint_auth_method = \"none\"",
            "remove client_secret for a public client, or choose client_secret_basic / client_secret_post",
        )),
        _ => {}
    }
    let public = client_secret.is_none();
    let pkce = o.pkce.unwrap_or(true);
    if public && !pkce {
        cx.error(ConfigIssue::new(
            "oidc.pkce",
            "a public client (no client secret) without PKCE: a stolen code could be redeemed",
            "remove pkce = false, or configure a client secret",
        ));
    }
    (client_id, client_secret, auth_method, pkce)
}

/// `oidc.id_token_algs`: known algorithms only; HMAC only with a secret.
fn oidc_algs(cx: &mut Ctx<'_>, o: &RawOidc, public: bool) -> Vec<jsonwebtoken::Algorithm> {
    use crate::oidc::DEFAULT_ID_TOKEN_ALGS;
    use jsonwebtoken::Algorithm;
    let mut id_token_algs = Vec::new();
    for (i, a) in o.id_token_algs.iter().flatten().enumerate() {
        let alg = match a.as_str() {
            "RS256" => Some(Algorithm::RS256),
            "RS384" => Some(Algorithm::RS384),
            "RS512" => Some(Algorithm::RS512),
            "ES256" => Some(Algorithm::ES256),
            "ES384" => Some(Algorithm::ES384),
            // RSASSA-PSS is refused here, by name, rather than accepted
            // and then never verified: the key set reads RS*/ES* keys only.
            "PS256" | "PS384" | "PS512" => {
                cx.error(
                    ConfigIssue::new(
                        format!("oidc.id_token_algs[{i}]"),
                        "RSASSA-PSS (PS256/384/512) ID tokens are not verified by this gateway",
                        "have the provider sign ID tokens with RS256 or ES256 and list that",
                    )
                    .with_value(format!("{a:?}")),
                );
                continue;
            }
            "HS256" => Some(Algorithm::HS256),
            "HS384" => Some(Algorithm::HS384),
            "HS512" => Some(Algorithm::HS512),
            _ => None,
        };
        match alg {
            Some(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) if public => cx.error(
                ConfigIssue::new(
                    format!("oidc.id_token_algs[{i}]"),
                    "an HMAC algorithm is keyed with the client secret, and there is none",
                    "set client_secret, or remove the HMAC algorithm",
                )
                .with_value(format!("{a:?}")),
            ),
            Some(alg) => id_token_algs.push(alg),
            None => cx.error(
                ConfigIssue::new(
                    format!("oidc.id_token_algs[{i}]"),
                    "not an accepted algorithm (never \"none\")",
                    "use RS256/384/512, ES256/384, or HS256/384/512 keyed with the client secret",
                )
                .with_value(format!("{a:?}")),
            ),
        }
    }
    if o.id_token_algs.is_none() {
        id_token_algs = DEFAULT_ID_TOKEN_ALGS.to_vec();
    } else if id_token_algs.is_empty() && !cx.reported("oidc.id_token_algs") {
        cx.error(ConfigIssue::new(
            "oidc.id_token_algs",
            "empty",
            "list the algorithms the provider signs ID tokens with, e.g. [\"RS256\"]",
        ));
    }
    id_token_algs
}

/// `oidc.bearer`: how Bearer access tokens are checked.
fn oidc_bearer(cx: &mut Ctx<'_>, o: &RawOidc, public: bool) -> crate::oidc::BearerMode {
    use crate::oidc::BearerMode;
    match o.bearer.as_deref() {
        None | Some("jwt") => BearerMode::Jwt,
        Some("introspect") => {
            if public {
                cx.error(ConfigIssue::new(
                    "oidc.bearer",
                    "introspection needs the client to authenticate, and this client has no secret",
                    "set client_secret, or use bearer = \"jwt\"",
                ));
            }
            BearerMode::Introspect
        }
        Some("off") => BearerMode::Off,
        Some(other) => {
            cx.error(
                ConfigIssue::new(
                    "oidc.bearer",
                    "unknown mode",
                    "write \"jwt\", \"introspect\" or \"off\"",
                )
                .with_value(format!("{other:?}")),
            );
            BearerMode::Jwt
        }
    }
}

/// `oidc.roles_claim`, `permissions_claim`, `tenants_claim`: dotted paths.
fn oidc_claim_paths(cx: &mut Ctx<'_>, o: &RawOidc) -> (String, String, Option<String>) {
    let claim_path = |cx: &mut Ctx<'_>, key: &str, v: Option<&String>, default: &str| -> String {
        let p = v.cloned().unwrap_or_else(|| default.to_owned());
        if p.is_empty() || p.starts_with('.') || p.ends_with('.') || p.contains("..") {
            cx.error(
                ConfigIssue::new(
                    key,
                    "not a claim path",
                    "write a claim name or a dotted path such as \"realm_access.roles\"",
                )
                .with_value(format!("{p:?}")),
            );
        }
        p
    };
    let roles_claim = claim_path(cx, "oidc.roles_claim", o.roles_claim.as_ref(), "roles");
    let permissions_claim = claim_path(
        cx,
        "oidc.permissions_claim",
        o.permissions_claim.as_ref(),
        "permissions",
    );
    let tenants_claim = match o.tenants_claim.as_deref() {
        None | Some("") => None,
        Some(_) => Some(claim_path(
            cx,
            "oidc.tenants_claim",
            o.tenants_claim.as_ref(),
            "",
        )),
    };
    (roles_claim, permissions_claim, tenants_claim)
}

/// `oidc.auth_params`: never a parameter the gateway sets itself.
fn oidc_auth_params(cx: &mut Ctx<'_>, o: &RawOidc) -> Vec<(String, String)> {
    o.auth_params
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            let reserved = matches!(
                k.as_str(),
                "response_type"
                    | "client_id"
                    | "redirect_uri"
                    | "scope"
                    | "state"
                    | "nonce"
                    | "code_challenge"
                    | "code_challenge_method"
            );
            if reserved {
                cx.error(
                    ConfigIssue::new(
                        format!("oidc.auth_params.{k}"),
                        "the gateway sets this parameter itself",
                        "remove it (scopes go in oidc.scopes)",
                    )
                    .with_value(format!("{v:?}")),
                );
                None
            } else {
                Some((k.clone(), v.clone()))
            }
        })
        .collect()
}

/// `login.methods`: known methods, each once.
fn login_methods(cx: &mut Ctx<'_>, l: &RawLogin) -> Vec<LoginMethod> {
    let mut methods = Vec::new();
    for (i, m) in l.methods.iter().flatten().enumerate() {
        let parsed = match m.as_str() {
            "flow" => Some(LoginMethod::Flow),
            "magiclink" => Some(LoginMethod::MagicLink),
            "enchantedlink" => Some(LoginMethod::EnchantedLink),
            "otp" => Some(LoginMethod::Otp),
            "sso" => Some(LoginMethod::Sso),
            other => other
                .strip_prefix("oauth:")
                .filter(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
                .map(|p| LoginMethod::OAuth(p.to_string())),
        };
        match parsed {
            Some(p) if !methods.contains(&p) => methods.push(p),
            Some(_) => {}
            None => cx.error(
                ConfigIssue::new(
                    format!("login.methods[{i}]"),
                    "unknown login method",
                    "use \"flow\", \"magiclink\", \"enchantedlink\", \"otp\", \"sso\" or \"oauth:<provider>\" (e.g. \"oauth:google\")",
                )
                .with_value(format!("{m:?}")),
            ),
        }
    }
    methods
}

fn login(cx: &mut Ctx<'_>, l: &RawLogin, server: &ServerConfig) -> LoginConfig {
    let methods = login_methods(cx, l);
    let start_rate_limit = parse_rate(
        cx,
        "login.start_rate_limit",
        l.start_rate_limit
            .as_deref()
            .unwrap_or(DEFAULT_START_RATE_LIMIT),
    );
    let ip_rate_limit = parse_rate(
        cx,
        "login.ip_rate_limit",
        l.ip_rate_limit.as_deref().unwrap_or(DEFAULT_IP_RATE_LIMIT),
    );
    let mut origins = Vec::new();
    for (i, o) in l.allowed_redirect_origins.iter().flatten().enumerate() {
        match url::Url::parse(o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && (u.path() == "/" || u.path().is_empty())
                    && u.query().is_none()
                    && u.username().is_empty() =>
            {
                origins.push(origin_of(&u));
            }
            _ => cx.error(
                ConfigIssue::new(
                    format!("login.allowed_redirect_origins[{i}]"),
                    "must be an exact origin (scheme, host, optional port) with no path",
                    "write e.g. \"https://docs.example.com\"",
                )
                .with_value(format!("{o:?}")),
            ),
        }
    }
    let after_logout = l.after_logout.clone().unwrap_or_else(|| "/".to_string());
    // The same validator as every `return_to`; the gateway's own origin counts too.
    let after_ok = crate::redirect::RedirectPolicy::new(&origins)
        .is_ok_and(|p| p.check(&after_logout).is_some())
        || url::Url::parse(&after_logout).is_ok_and(|u| origin_of(&u) == server.public_origin);
    if !after_ok {
        cx.error(
            ConfigIssue::new(
                "login.after_logout",
                "not a same-origin path nor a URL on an allowed origin",
                "use a path such as \"/\" or add the URL's origin to allowed_redirect_origins",
            )
            .with_value(format!("{after_logout:?}")),
        );
    }
    let inbox_url = l.inbox_url.clone().filter(|u| {
        let ok = url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
        if !ok {
            cx.error(
                ConfigIssue::new(
                    "login.inbox_url",
                    "not an absolute http(s) URL",
                    "write e.g. \"https://mail.example.com/\", or remove the key",
                )
                .with_value(format!("{u:?}")),
            );
        }
        ok
    });
    LoginConfig {
        methods,
        allow_signup: l.allow_signup.unwrap_or(false),
        flow_id: l
            .flow_id
            .clone()
            .unwrap_or_else(|| DEFAULT_FLOW_ID.to_string()),
        allowed_email_domains: l
            .allowed_email_domains
            .iter()
            .flatten()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect(),
        start_rate_limit,
        ip_rate_limit,
        allowed_redirect_origins: origins,
        after_logout,
        app_name: l
            .app_name
            .clone()
            .unwrap_or_else(|| "Portcullis".to_string()),
        logo_url: l.logo_url.clone(),
        inbox_url,
        web_component_url: l
            .web_component_url
            .clone()
            .unwrap_or_else(|| DEFAULT_WEB_COMPONENT_URL.to_string()),
        // The pinned default carries its SRI hash; a self-hosted URL carries
        // whatever the operator configures.
        web_component_integrity: l.web_component_integrity.clone().or_else(|| {
            l.web_component_url
                .is_none()
                .then(|| DEFAULT_WEB_COMPONENT_INTEGRITY.to_string())
        }),
        web_js_sdk_url: l
            .web_js_sdk_url
            .clone()
            .unwrap_or_else(|| DEFAULT_WEB_JS_SDK_URL.to_string()),
        web_js_sdk_integrity: l.web_js_sdk_integrity.clone().or_else(|| {
            l.web_js_sdk_url
                .is_none()
                .then(|| DEFAULT_WEB_JS_SDK_INTEGRITY.to_string())
        }),
        cdn_url: l.cdn_url.as_deref().and_then(|u| cdn_origin(cx, u)),
        sso_legacy_saml: l.sso_legacy_saml.unwrap_or(false),
    }
}

/// `[login] cdn_url`: an origin (no path) over https, or http on loopback
/// (the emulator's `--web-components`). The web component appends
/// `/npm/{package}@{version}/{path}` to an origin, but uses a URL with a
/// path as is for every library, which cannot work.
fn cdn_origin(cx: &mut Ctx<'_>, raw: &str) -> Option<String> {
    let issue = |problem: &str| {
        ConfigIssue::new(
            "login.cdn_url",
            problem,
            "write an origin such as \"https://cdn.example.com\" (the component appends \
             /npm/{package}@{version}/{path}), or \"http://127.0.0.1:4080\" for the emulator",
        )
        .with_value(format!("{raw:?}"))
    };
    match url::Url::parse(raw) {
        Ok(u)
            if (u.path() == "/" || u.path().is_empty())
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none()
                && (u.scheme() == "https"
                    || (u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host))) =>
        {
            Some(origin_of(&u))
        }
        Ok(u) if u.scheme() == "http" => {
            cx.error(issue("plain http is only allowed for loopback hosts"));
            None
        }
        Ok(_) => {
            cx.error(issue(
                "must be an https origin with no path, query or credentials",
            ));
            None
        }
        Err(_) => {
            cx.error(issue("not a URL"));
            None
        }
    }
}

fn parse_rate(cx: &mut Ctx<'_>, key: &str, v: &str) -> RateSpec {
    RateSpec::parse(v).unwrap_or_else(|e| {
        cx.error(
            ConfigIssue::new(
                key,
                format!("not a rate: {e}"),
                "write COUNT/UNIT, e.g. \"10/min\", \"2/sec\" or \"100/hour\"",
            )
            .with_value(format!("{v:?}")),
        );
        RateSpec::parse(DEFAULT_START_RATE_LIMIT).expect("the default rate parses")
    })
}

/// `session.secret` (required when login methods or [oidc] use it; random
/// in `dev`) and `previous_secrets`.
fn session_secrets(
    cx: &mut Ctx<'_>,
    s: &RawSession,
    login: &LoginConfig,
    opts: LoadOptions,
    oidc_mode: bool,
) -> (Option<Secret>, Vec<Secret>) {
    let mut secret = cx.secret(
        "session.secret",
        s.secret.as_deref(),
        s.secret_file.as_deref(),
    );
    if let Some(sec) = &secret {
        if sec.expose().len() < MIN_SECRET_BYTES {
            cx.error(ConfigIssue::new(
                "session.secret",
                format!(
                    "is {} bytes; at least {MIN_SECRET_BYTES} are required",
                    sec.expose().len()
                ),
                "generate one with: openssl rand -base64 48",
            ));
        }
    } else if opts.dev {
        secret = Some(Secret::new(random_secret()));
    } else if !cx.reported("session.secret") {
        let needed_by = if oidc_mode {
            Some("not set, and [oidc] is configured (it seals the session cookie)")
        } else if !login.methods.is_empty() {
            Some("not set, and login methods are on (it signs the login state)")
        } else {
            None
        };
        if let Some(problem) = needed_by {
            cx.error(ConfigIssue::new(
                "session.secret",
                problem,
                "set secret = \"env:PORTCULLIS_SECRET\" with at least 32 random bytes, or secret_file",
            ));
        }
    }
    let mut previous = Vec::new();
    for (i, p) in s.previous_secrets.iter().flatten().enumerate() {
        if let Some(sec) = cx.env_or_literal(&format!("session.previous_secrets[{i}]"), p, true) {
            previous.push(sec);
        }
    }
    (secret, previous)
}

fn session(
    cx: &mut Ctx<'_>,
    s: &RawSession,
    server: &ServerConfig,
    login: &LoginConfig,
    opts: LoadOptions,
    oidc_mode: bool,
) -> SessionConfig {
    let https = server.public_url.scheme() == "https";
    let secure = s.secure.unwrap_or(https);
    let same_site = match s
        .same_site
        .as_deref()
        .unwrap_or("lax")
        .to_ascii_lowercase()
        .as_str()
    {
        "lax" => SameSite::Lax,
        "strict" => SameSite::Strict,
        "none" => {
            if !secure {
                cx.error(ConfigIssue::new(
                    "session.same_site",
                    "SameSite=None cookies must be Secure, and secure is off",
                    "use \"lax\", or serve public_url over https",
                ));
            }
            SameSite::None
        }
        other => {
            cx.error(
                ConfigIssue::new(
                    "session.same_site",
                    "unknown SameSite value",
                    "use \"lax\", \"strict\" or \"none\"",
                )
                .with_value(format!("{other:?}")),
            );
            SameSite::Lax
        }
    };
    let domain = s.cookie_domain.clone().filter(|d| !d.is_empty());
    let host_prefix = s.host_prefix.unwrap_or(true) && https && secure && domain.is_none();
    let cookie_name = |cx: &mut Ctx<'_>, key: &str, v: Option<&String>, default: &str| -> String {
        let name = v.cloned().unwrap_or_else(|| default.to_string());
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.starts_with("__");
        if !ok {
            cx.error(
                ConfigIssue::new(key, "not a valid cookie name", "use letters, digits, '-', '_' or '.', not starting with __ (the prefix is added for you)")
                    .with_value(format!("{name:?}")),
            );
        }
        name
    };
    let session_name = cookie_name(
        cx,
        "session.cookie_session",
        s.cookie_session.as_ref(),
        "DS",
    );
    let refresh_name = cookie_name(
        cx,
        "session.cookie_refresh",
        s.cookie_refresh.as_ref(),
        "DSR",
    );
    if session_name == refresh_name {
        cx.error(ConfigIssue::new(
            "session.cookie_refresh",
            "same name as cookie_session",
            "give the two cookies different names",
        ));
    }
    let (secret, previous) = session_secrets(cx, s, login, opts, oidc_mode);
    let refresh_before = s
        .refresh_before
        .as_deref()
        .map(|v| cx.duration("session.refresh_before", Some(v), Duration::ZERO))
        .filter(|d| !d.is_zero());
    SessionConfig {
        cookies: CookieSettings {
            session_name,
            refresh_name,
            secure,
            same_site,
            domain,
            host_prefix,
        },
        secret,
        previous_secrets: previous,
        refresh: s.refresh.unwrap_or(true),
        refresh_reuse: cx.duration(
            "session.refresh_reuse",
            s.refresh_reuse.as_deref(),
            DEFAULT_REFRESH_REUSE,
        ),
        refresh_before,
        accept_bearer: s.accept_bearer.unwrap_or(true),
        accept_access_keys: s.accept_access_keys.unwrap_or(false),
    }
}

fn random_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 48] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn forward_auth(cx: &mut Ctx<'_>, f: &super::raw::RawForwardAuth) -> ForwardAuthConfig {
    let mode = match f.mode.as_deref().unwrap_or("traefik") {
        "nginx" => ForwardAuthMode::Nginx,
        "traefik" => ForwardAuthMode::Traefik,
        "envoy" => ForwardAuthMode::Envoy,
        other => {
            cx.error(
                ConfigIssue::new(
                    "forward_auth.mode",
                    "unknown mode",
                    "use \"nginx\", \"traefik\" or \"envoy\"",
                )
                .with_value(format!("{other:?}")),
            );
            ForwardAuthMode::Traefik
        }
    };
    let defaults = ["127.0.0.1/32".to_string(), "::1/128".to_string()];
    let list: Vec<String> = f
        .trusted_callers
        .clone()
        .unwrap_or_else(|| defaults.to_vec());
    let mut callers = Vec::new();
    for (i, v) in list.iter().enumerate() {
        match parse_cidr(v) {
            Some(n) => callers.push(n),
            None => cx.error(
                ConfigIssue::new(
                    format!("forward_auth.trusted_callers[{i}]"),
                    "not a CIDR or IP address",
                    "write e.g. \"10.0.0.0/8\"",
                )
                .with_value(format!("{v:?}")),
            ),
        }
    }
    ForwardAuthConfig {
        mode,
        trusted_callers: callers,
    }
}

fn upstreams(
    cx: &mut Ctx<'_>,
    raw: &BTreeMap<String, super::raw::RawUpstream>,
) -> HashMap<String, UpstreamConfig> {
    let mut out = HashMap::new();
    // A forward-auth-only gateway needs none: it answers /verify and its own
    // endpoints; a request it would proxy gets 502.
    if raw.is_empty() {
        cx.lint(ConfigIssue::new(
            "upstreams",
            "no upstream is configured: only forward-auth (/verify) and the gateway's own endpoints work; proxied requests get 502",
            "add [upstreams.default] with url = \"http://127.0.0.1:3000\" to proxy",
        ));
    }
    for (name, u) in raw {
        let key = format!("upstreams.{name}.url");
        let Some(v) = u.url.as_deref() else {
            cx.error(ConfigIssue::new(
                &key,
                "missing",
                "write url = \"http://host:port\"",
            ));
            continue;
        };
        let url = match url::Url::parse(v) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.username().is_empty() =>
            {
                url
            }
            _ => {
                cx.error(
                    ConfigIssue::new(
                        &key,
                        "not an http(s) URL with a host (no query, fragment or credentials)",
                        "write e.g. \"http://127.0.0.1:3000\"",
                    )
                    .with_value(format!("{v:?}")),
                );
                continue;
            }
        };
        let ca_file = u.ca_file.as_deref().map(|p| cx.path(p));
        if let Some(p) = &ca_file
            && !p.is_file()
        {
            cx.error(
                ConfigIssue::new(
                    format!("upstreams.{name}.ca_file"),
                    "file does not exist",
                    "point it at a PEM bundle",
                )
                .with_value(p.display()),
            );
        }
        let t = |cx: &mut Ctx<'_>, field: &str, v: Option<&str>, d: Duration| {
            cx.duration(&format!("upstreams.{name}.{field}"), v, d)
        };
        out.insert(
            name.clone(),
            UpstreamConfig {
                name: name.clone(),
                url,
                preserve_host: u.preserve_host.unwrap_or(false),
                connect_timeout: t(
                    cx,
                    "connect_timeout",
                    u.connect_timeout.as_deref(),
                    DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
                ),
                response_header_timeout: t(
                    cx,
                    "response_header_timeout",
                    u.response_header_timeout.as_deref(),
                    DEFAULT_RESPONSE_HEADER_TIMEOUT,
                ),
                body_idle_timeout: t(
                    cx,
                    "body_idle_timeout",
                    u.body_idle_timeout.as_deref(),
                    DEFAULT_BODY_IDLE_TIMEOUT,
                ),
                ca_file,
            },
        );
    }
    out
}

fn header_name(cx: &mut Ctx<'_>, key: &str, v: &str) -> Option<HeaderName> {
    match HeaderName::from_bytes(v.trim().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            cx.error(
                ConfigIssue::new(
                    key,
                    "not a valid HTTP header name",
                    "use letters, digits and '-', e.g. \"X-Employee-Id\"",
                )
                .with_value(format!("{v:?}")),
            );
            None
        }
    }
}

fn identity(cx: &mut Ctx<'_>, i: &RawIdentity) -> IdentityConfig {
    let preset = match i.preset.as_deref().unwrap_or("portcullis") {
        "portcullis" => Preset::Portcullis,
        "oauth2-proxy" => Preset::OAuth2Proxy,
        "authelia" => Preset::Authelia,
        other => {
            cx.error(
                ConfigIssue::new(
                    "identity.preset",
                    "unknown preset",
                    "use \"portcullis\", \"oauth2-proxy\" or \"authelia\"",
                )
                .with_value(format!("{other:?}")),
            );
            Preset::Portcullis
        }
    };
    let forward_token = match i.forward_token.as_deref().unwrap_or("none") {
        "none" => ForwardToken::None,
        "authorization" => ForwardToken::Authorization,
        other => match other.strip_prefix("header:") {
            Some(h) => header_name(cx, "identity.forward_token", h)
                .map_or(ForwardToken::None, ForwardToken::Header),
            None => {
                cx.error(
                    ConfigIssue::new(
                        "identity.forward_token",
                        "unknown value",
                        "use \"none\", \"authorization\" or \"header:X-Session-Jwt\"",
                    )
                    .with_value(format!("{other:?}")),
                );
                ForwardToken::None
            }
        },
    };
    let mut strip = Vec::new();
    for (n, h) in i.strip_headers.iter().flatten().enumerate() {
        if let Some(h) = header_name(cx, &format!("identity.strip_headers[{n}]"), h) {
            strip.push(crate::identity::normalize_name(h.as_str()));
        }
    }
    let mut extra = Vec::new();
    for (h, claim) in i.headers.iter().flatten() {
        let key = format!("identity.headers.\"{h}\"");
        if claim.trim().is_empty() {
            cx.error(ConfigIssue::new(
                &key,
                "empty claim name",
                "map the header to a claim, e.g. \"X-Employee-Id\" = \"employee_id\"",
            ));
            continue;
        }
        if let Some(name) = header_name(cx, &key, h) {
            extra.push((name, claim.clone()));
        }
    }
    let assertion = i
        .assertion
        .as_ref()
        .filter(|a| a.enabled.unwrap_or(false))
        .and_then(|a| {
            let header = header_name(
                cx,
                "identity.assertion.header",
                a.header.as_deref().unwrap_or("X-Portcullis-Assertion"),
            )?;
            let ttl = cx.duration(
                "identity.assertion.ttl",
                a.ttl.as_deref(),
                Duration::from_secs(60),
            );
            Some(AssertionConfig { header, ttl })
        });
    IdentityConfig {
        preset,
        forward_token,
        strip_headers: strip,
        extra_headers: extra,
        assertion,
    }
}

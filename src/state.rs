//! Shared state: what every request reads. A leaf of the module graph —
//! it holds values built by `config` and the domain modules and imports no
//! module that serves traffic.
//!
//! State that may change on reload (routes, identity rules, upstreams, the
//! login endpoints) lives in a [`Generation`] behind an `ArcSwap`: each
//! request loads one generation and finishes under it, so a reload never
//! changes the rules mid-request. The Descope client, session validator,
//! refresher and assertion signer live for the whole process; the settings
//! they were built from only change with a restart (see
//! `config::RestartOnly`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::descope::DescopeClient;
use crate::identity::IdentityHeaders;
use crate::login::{LoginCore, LoginSettings, LoginSetupError};
use crate::login_state::StateCodec;
use crate::metrics::Metrics;
use crate::pages::PageSettings;
use crate::proxy::Upstreams;
use crate::redirect::RedirectPolicy;
use crate::refresh::Refresher;
use crate::session::SessionValidator;

/// Everything a request needs that a reload may replace.
pub struct Generation {
    pub config: Arc<Config>,
    pub identity: IdentityHeaders,
    pub upstreams: Upstreams,
    /// The hosted login endpoints; `None` when no login method is on.
    pub login: Option<Arc<LoginCore>>,
    /// Seals the OIDC mode's session cookies (`[session] secret`).
    pub sealer: Option<crate::oidc::Sealer>,
    /// The OIDC mode's login state.
    pub oidc_login: Option<crate::oidc::LoginSetup>,
}

impl Generation {
    /// Builds a generation. `previous` (on reload) lends its upstream
    /// connection pools to upstreams whose settings did not change. Fails
    /// when a part cannot be built: a reload then keeps the running
    /// generation instead of serving with that part turned off.
    pub fn new(config: Config, previous: Option<&Generation>) -> Result<Self, LoginSetupError> {
        let identity = IdentityHeaders::new(&config.identity);
        let upstreams = Upstreams::reusing(&config.upstreams, previous.map(|g| &g.upstreams));
        let login = build_login(&config)?.map(Arc::new);
        let (sealer, oidc_login) = match (config.oidc(), &config.session.secret) {
            (Some(_), Some(secret)) => {
                let previous: Vec<&[u8]> = config
                    .session
                    .previous_secrets
                    .iter()
                    .map(|s| s.expose().as_bytes())
                    .collect();
                let sealer = crate::oidc::Sealer::new(secret.expose().as_bytes(), &previous)
                    .ok_or(LoginSetupError::Sealer)?;
                let prefix = config.server.auth_prefix.trim_end_matches('/');
                let login = crate::oidc::LoginSetup {
                    codec: StateCodec::new(secret.expose().as_bytes(), &previous)?,
                    state_cookie: crate::login_state::StateCookieSettings::new(
                        config.session.cookies.secure,
                        config.session.cookies.host_prefix,
                        prefix,
                    ),
                    redirect: RedirectPolicy::new(&config.login.allowed_redirect_origins)?
                        .avoiding_prefix(prefix),
                    redirect_uri: format!("{}{prefix}/oidc/callback", config.server.public_origin),
                    limiter: crate::ratelimit::RateLimiter::new(
                        config.login.ip_rate_limit,
                        crate::ratelimit::DEFAULT_MAX_KEYS,
                    ),
                };
                (Some(sealer), Some(login))
            }
            _ => (None, None),
        };
        Ok(Self {
            config: Arc::new(config),
            identity,
            upstreams,
            login,
            sealer,
            oidc_login,
        })
    }

    /// The login page look for pages the gateway answers itself (403, 503,
    /// errors), when login pages are configured.
    pub fn pages(&self) -> Option<&PageSettings> {
        self.login.as_deref().map(LoginCore::page_settings)
    }
}

/// The identity provider's clients, built once at start.
pub enum Idp {
    Descope {
        client: DescopeClient,
        validator: Arc<SessionValidator>,
        /// Exchanged access keys (`[session] accept_access_keys`).
        access_keys: Arc<crate::access_keys::AccessKeys>,
    },
    Oidc(Arc<crate::oidc::Oidc>),
}

/// Process-wide state shared by every connection.
pub struct AppState {
    pub generation: ArcSwap<Generation>,
    pub idp: Idp,
    /// Session refresh for the provider (single-flight per refresh token).
    pub refresher: Arc<Refresher>,
    pub metrics: Arc<Metrics>,
    /// Logout memory, shared rate limits and refresh leases (`[store]`, or local only).
    pub store: Arc<crate::store::Store>,
    pub draining: AtomicBool,
    /// Signs identity assertions when `[identity.assertion]` is enabled.
    pub assertion: crate::assertion::AssertionSigner,
}

impl AppState {
    pub fn current(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    /// Ready: config loaded, the provider's keys (and, for OIDC, its
    /// discovery document) available, not draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && match &self.idp {
                Idp::Descope { validator, .. } => validator.keys_ready(),
                Idp::Oidc(o) => o.is_ready(),
            }
    }

    /// Descope's session validator, in Descope mode.
    pub fn validator(&self) -> Option<&Arc<SessionValidator>> {
        match &self.idp {
            Idp::Descope { validator, .. } => Some(validator),
            Idp::Oidc(_) => None,
        }
    }

    /// Descope's API client, in Descope mode.
    pub fn descope(&self) -> Option<&DescopeClient> {
        match &self.idp {
            Idp::Descope { client, .. } => Some(client),
            Idp::Oidc(_) => None,
        }
    }

    /// The OpenID Provider, in the OIDC mode.
    pub fn oidc(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        match &self.idp {
            Idp::Oidc(o) => Some(o),
            Idp::Descope { .. } => None,
        }
    }

    /// Swaps in a generation built from a new, fully validated config;
    /// in-flight requests keep theirs. On error nothing changes.
    pub fn install(&self, config: Config) -> Result<(), LoginSetupError> {
        let next = Generation::new(config, Some(&self.current()))?;
        self.generation.store(Arc::new(next));
        match &self.idp {
            Idp::Descope { validator, .. } => validator.flush_cache(),
            Idp::Oidc(o) => o.flush_cache(),
        }
        Ok(())
    }
}

/// The login endpoints from the validated configuration; `None` when no
/// login method is on or no `[session] secret` is set (every login endpoint
/// then answers 404).
pub fn build_login(cfg: &Config) -> Result<Option<LoginCore>, LoginSetupError> {
    let l = &cfg.login;
    // The hosted login methods are Descope's; an OpenID Provider hosts its own.
    let Some(descope) = cfg.descope() else {
        return Ok(None);
    };
    let Some(secret) = cfg.session.secret.as_ref() else {
        return Ok(None);
    };
    if l.methods.is_empty() {
        return Ok(None);
    }
    let previous: Vec<&[u8]> = cfg
        .session
        .previous_secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .collect();
    let codec = StateCodec::new(secret.expose().as_bytes(), &previous)?;
    let auth_prefix = cfg.server.auth_prefix.trim_end_matches('/').to_owned();
    let redirect = RedirectPolicy::new(&l.allowed_redirect_origins)?.avoiding_prefix(&auth_prefix);
    let pages = PageSettings {
        app_name: l.app_name.clone(),
        logo_url: l.logo_url.clone(),
        auth_prefix: auth_prefix.clone(),
        methods: l.methods.clone(),
        project_id: descope.project_id.clone(),
        flow_id: l.flow_id.clone(),
        descope_base_url: Some(descope.base_url.as_str().trim_end_matches('/').to_owned()),
        web_component: crate::pages::ScriptRef {
            url: l.web_component_url.clone(),
            integrity: l.web_component_integrity.clone(),
        },
        web_js_sdk: crate::pages::ScriptRef {
            url: l.web_js_sdk_url.clone(),
            integrity: l.web_js_sdk_integrity.clone(),
        },
        cdn_url: l.cdn_url.clone(),
        redirect_origins: l.allowed_redirect_origins.clone(),
        inbox_url: l.inbox_url.clone(),
    };
    let settings = LoginSettings {
        public_url: cfg.server.public_url.clone(),
        auth_prefix,
        allow_signup: l.allow_signup,
        allowed_email_domains: l.allowed_email_domains.clone(),
        start_rate_limit: l.start_rate_limit,
        ip_rate_limit: l.ip_rate_limit,
        sso_legacy_saml: l.sso_legacy_saml,
        redirect,
        pages,
    };
    Ok(Some(LoginCore::new(
        settings,
        codec,
        cfg.session.cookies.clone(),
    )))
}

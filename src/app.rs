//! The gateway's lifecycle: build the shared state from a validated config,
//! bind listeners, start the background loops (key refresh, config watch),
//! graceful shutdown. The state itself is in `state`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::state::{AppState, Generation, Idp};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigErrors, IdpConfig};
use crate::descope::{DescopeClient, DescopeSettings};
use crate::metrics::Metrics;
use crate::refresh::Refresher;
use crate::session::{SessionValidator, ValidatorSettings};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// One line naming the address, the key and the fix (the I/O error is
    /// part of the message, not a separate source, so it prints once).
    #[error("{}", crate::listen::bind_error(*addr, crate::listen::Setting::Key(key), error))]
    Bind {
        addr: SocketAddr,
        /// `server.listen` or `admin.listen`.
        key: &'static str,
        error: std::io::Error,
    },
    #[error("descope client: {0}")]
    Descope(#[from] crate::descope::DescopeError),
    #[error("session validator: {0}")]
    Session(#[from] crate::session::SessionError),
    #[error("tls: {0}")]
    Tls(crate::server::TlsError),
    #[error("oidc: {0}")]
    Oidc(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("login endpoints: {0}")]
    Login(#[from] crate::login::LoginSetupError),
}

/// A running gateway.
pub struct GatewayHandle {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    /// Listener tasks: they end on the shutdown signal after draining.
    tasks: Vec<JoinHandle<()>>,
    /// Background loops (JWKS refresh, config watch): aborted on shutdown.
    background: Vec<JoinHandle<()>>,
}

/// How to start.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Watch this file (and its directory) for changes and reload on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Install signal handlers (SIGTERM/SIGINT drain, SIGHUP reload).
    pub signals: bool,
}

/// The identity provider, its refresher (cluster-wide with a shared store)
/// and its background task (key or discovery refresh).
fn build_idp(
    config: &Config,
    metrics: &Arc<Metrics>,
    store: &Arc<crate::store::Store>,
) -> Result<(Idp, Arc<Refresher>, tokio::task::JoinHandle<()>), StartError> {
    let built = match &config.idp {
        IdpConfig::Descope(d) => {
            let descope = DescopeClient::new(DescopeSettings {
                base_url: d.base_url.clone(),
                project_id: d.project_id.clone(),
                auth_management_key: d
                    .auth_management_key
                    .as_ref()
                    .map(|s| s.expose().to_string()),
                timeout: d.timeout,
                ca_file: d.ca_file.clone(),
            })?;
            let validator = SessionValidator::new(ValidatorSettings {
                project_id: d.project_id.clone(),
                audience: d.audience.clone(),
                jwks_url: descope.jwks_url(),
                http: descope.http().clone(),
                jwks_min_refetch: d.jwks_min_refetch,
                jwks_refresh: d.jwks_refresh,
                seed_keys: d.seed_keys.clone(),
                cache_capacity: crate::config::DEFAULT_CLAIMS_CACHE_CAPACITY,
                metrics: metrics.clone(),
            })?;
            let refresher = Refresher::cluster_wide(
                Arc::new(crate::refresh::DescopeRefresh {
                    client: descope.clone(),
                    verifier: validator.clone(),
                }),
                config.session.refresh_reuse,
                metrics.clone(),
                store.clone(),
                d.timeout + Duration::from_secs(1),
            );
            let task = validator.spawn_refresher();
            (
                Idp::Descope {
                    client: descope,
                    validator,
                    access_keys: Arc::new(crate::access_keys::AccessKeys::new()),
                },
                refresher,
                task,
            )
        }
        IdpConfig::Oidc(o) => {
            let oidc = crate::oidc::Oidc::new(o.clone(), metrics.clone())
                .map_err(|e| StartError::Oidc(e.to_string()))?;
            let refresher = Refresher::cluster_wide(
                Arc::new(crate::oidc::OidcRefresh(oidc.clone())),
                config.session.refresh_reuse,
                metrics.clone(),
                store.clone(),
                o.timeout + Duration::from_secs(1),
            );
            let task = oidc.spawn();
            (Idp::Oidc(oidc), refresher, task)
        }
    };
    Ok(built)
}

pub async fn start(config: Config, opts: StartOptions) -> Result<GatewayHandle, StartError> {
    let metrics = Arc::new(Metrics::new());
    let store = match &config.store {
        Some(s) => crate::store::Store::connect(s, metrics.clone()).await?,
        None => crate::store::Store::local(metrics.clone()),
    };
    let (idp, refresher, idp_task) = build_idp(&config, &metrics, &store)?;
    let assertion = crate::assertion::AssertionSigner::new();
    let listen = config.server.listen;
    let admin_listen = config.admin.listen;
    let tls = match &config.server.tls {
        Some(t) => Some(crate::server::TlsReloader::load(t).map_err(StartError::Tls)?),
        None => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| StartError::Bind {
            addr: listen,
            key: "server.listen",
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| StartError::Bind {
        addr: listen,
        key: "server.listen",
        error,
    })?;
    let admin_listener = match admin_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|error| StartError::Bind {
                    addr: a,
                    key: "admin.listen",
                    error,
                })?,
        ),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let state = Arc::new(AppState {
        generation: ArcSwap::from_pointee(Generation::new(config, None)?),
        idp,
        refresher,
        metrics,
        store,
        draining: AtomicBool::new(false),
        assertion,
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut background = vec![idp_task];
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(crate::server::serve(
        listener,
        state.clone(),
        tls.clone(),
        shutdown_rx.clone(),
    )));
    if let Some(l) = admin_listener {
        tasks.push(tokio::spawn(crate::admin::serve(
            l,
            state.clone(),
            shutdown_rx.clone(),
        )));
    }
    if let Some(path) = opts.config_path.clone() {
        background.push(tokio::spawn(crate::reload::watch(
            path,
            state.clone(),
            tls,
            opts.signals,
            shutdown_rx.clone(),
        )));
    }
    Ok(GatewayHandle {
        addr,
        admin_addr,
        state,
        shutdown: shutdown_tx,
        tasks,
        background,
    })
}

impl GatewayHandle {
    /// Drains: readiness goes 503, listeners close, in-flight requests finish
    /// (bounded by `server.shutdown_grace`), then every task ends.
    pub async fn shutdown(self) {
        self.state.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        for b in &self.background {
            b.abort();
        }
        let grace = self.state.current().config.server.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace + std::time::Duration::from_secs(1);
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Waits for SIGTERM/SIGINT, then drains.
    pub async fn run_until_signal(self) {
        crate::server::wait_for_termination().await;
        tracing::info!("shutdown signal received; draining");
        self.shutdown().await;
    }
}

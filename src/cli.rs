//! Command line (DESIGN §2): `run`, `check-config`, `dev`, `emulator`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LoadOptions};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Authentication gateway for Descope sessions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        #[arg(short = 'c', long = "config", env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the compiled route table and lints; binds nothing.
    CheckConfig {
        #[arg(short = 'c', long = "config", env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// Exit 1 on lints too.
        #[arg(long)]
        strict: bool,
    },
    /// Gateway + Descope emulator + demo app on loopback, no account needed.
    Dev(DevArgs),
    /// The Descope-API emulator alone.
    Emulator(crate::emulator::cli::EmulatorArgs),
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Emulator address.
    #[arg(long, default_value = "127.0.0.1:4080")]
    pub emulator_listen: SocketAddr,
    /// Demo app address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub demo_listen: SocketAddr,
    /// Admin address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Session lifetime of the emulator's tokens (short, so refresh is visible).
    #[arg(long, default_value = "2m")]
    pub session_ttl: String,
}

/// The async runtime sized to the CPUs this process may use (cgroup quota and
/// affinity included): on one CPU a current-thread runtime, which measures
/// ~20 % faster there than a one-worker multi-thread runtime (a sidecar
/// usually gets one core or less); otherwise one worker per CPU.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus)
            .enable_all()
            .build()
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Command::CheckConfig { config, strict } = &cli.command {
        return check_config(config, *strict);
    }
    crate::telemetry::init();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Emulator(args) => crate::emulator::cli::run(args).await,
            Command::Run { config } => run(&config).await,
            Command::Dev(args) => dev(args).await,
            Command::CheckConfig { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for lint in &config.lints {
        tracing::warn!(lint = %lint, "configuration lint");
    }
    let handle = crate::app::start(
        config,
        crate::app::StartOptions {
            config_path: Some(path.to_path_buf()),
            signals: true,
        },
    )
    .await?;
    tracing::info!(addr = %handle.addr, admin = ?handle.admin_addr, "portcullis listening");
    handle.run_until_signal().await;
    Ok(())
}

#[allow(clippy::print_stdout)]
fn check_config(path: &Path, strict: bool) -> ExitCode {
    match Config::load(path) {
        Err(e) => {
            eprint!("{e}");
            ExitCode::FAILURE
        }
        Ok(cfg) => {
            println!("{}: configuration is valid", path.display());
            println!();
            println!("Routes (first match wins):");
            println!("{}", cfg.policy.describe());
            if cfg.lints.is_empty() {
                println!("No lints.");
                ExitCode::SUCCESS
            } else {
                println!(
                    "{} lint{}:",
                    cfg.lints.len(),
                    if cfg.lints.len() == 1 { "" } else { "s" }
                );
                for l in &cfg.lints {
                    println!("  - {l}");
                }
                if strict {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
        }
    }
}

#[allow(clippy::print_stdout)]
async fn dev(args: DevArgs) -> anyhow::Result<()> {
    use crate::emulator::{Emulator, EmulatorOptions};
    eprintln!();
    eprintln!("  !!! portcullis dev: the Descope emulator below is NOT Descope.              !!!");
    eprintln!("  !!! Demo users, demo keys, everything in memory: never use it in production. !!!");
    eprintln!();
    let session_ttl = crate::config::parse_duration(&args.session_ttl)
        .map_err(|e| anyhow::anyhow!("--session-ttl {:?}: {e}", args.session_ttl))?;
    let project_id = "Pdev0000000000000000000000000".to_string();
    let emulator = Emulator::spawn(
        args.emulator_listen,
        EmulatorOptions {
            project_id: project_id.clone(),
            seed: Some(include_str!("../config/dev-seed.toml").to_string()),
            session_ttl,
            ..EmulatorOptions::default()
        },
    )
    .await?;
    let demo = crate::demo::spawn(args.demo_listen, "/_auth".into()).await?;
    let public = format!("http://{}", args.listen);
    let toml = include_str!("../config/dev.toml")
        .replace("{LISTEN}", &args.listen.to_string())
        .replace("{PUBLIC}", &public)
        .replace("{ADMIN}", &args.admin_listen.to_string())
        .replace("{PROJECT}", &project_id)
        .replace("{EMULATOR}", &emulator.base_url())
        .replace("{DEMO}", &format!("http://{demo}"));
    let config = Config::from_toml(
        &toml,
        Path::new("."),
        &std::collections::HashMap::new(),
        LoadOptions { dev: true },
    )
    .map_err(|e| anyhow::anyhow!("embedded dev config: {e}"))?;
    let handle = crate::app::start(config, crate::app::StartOptions::default()).await?;
    let gw = handle.addr;
    println!(
        "Portcullis dev is running (sessions last {}, so refresh is visible):",
        args.session_ttl
    );
    println!("  open      http://{gw}/            (you will be sent to the login page)");
    println!("  login     http://{gw}/_auth/login");
    println!(
        "  outbox    {}/emulator/outbox   (magic links, enchanted links and codes \"sent\" by the emulator)",
        emulator.base_url()
    );
    println!("  emulator  {}   (NOT Descope)", emulator.base_url());
    println!("  demo app  http://{demo}/   (behind the gateway; shows the headers it receives)");
    if let Some(a) = handle.admin_addr {
        println!("  admin     http://{a}/healthz  /readyz  /metrics");
    }
    println!();
    println!(
        "Demo logins (magic link / one-time code by email, or pick the user on the OAuth / SSO pages):"
    );
    println!("  admin@example.com   role admin             → /admin works");
    println!("  user@example.com    no roles               → /admin is forbidden (403)");
    println!("  multi@example.com   tenants T-acme (owner), T-globex (member) → /t/T-acme/");
    println!("  SSO tenants: T-acme (acme.test), T-globex (globex.test)");
    println!();
    println!("Press Ctrl-C to stop.");
    handle.run_until_signal().await;
    emulator.shutdown().await;
    Ok(())
}

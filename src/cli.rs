//! Command line: `run`, `check-config`, `dev`, `emulator`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "emulator")]
mod dev;

use crate::config::Config;

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
    #[cfg(feature = "emulator")]
    Dev(dev::DevArgs),
    /// The Descope-API emulator alone.
    #[cfg(feature = "emulator")]
    Emulator(portcullis_emulator::cli::EmulatorArgs),
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
    let _log = crate::telemetry::init();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            #[cfg(feature = "emulator")]
            Command::Emulator(args) => {
                let listen = args.listen;
                portcullis_emulator::cli::run(args).await.map_err(|e| {
                    let bind = e
                        .chain()
                        .find_map(|c| c.downcast_ref::<std::io::Error>())
                        .filter(|io| {
                            matches!(
                                io.kind(),
                                std::io::ErrorKind::AddrInUse
                                    | std::io::ErrorKind::AddrNotAvailable
                                    | std::io::ErrorKind::PermissionDenied
                            )
                        });
                    match bind {
                        Some(io) => anyhow::anyhow!(
                            "{}",
                            crate::listen::bind_error(
                                listen,
                                crate::listen::Setting::Flag {
                                    command: "portcullis emulator",
                                    flag: "--listen",
                                },
                                io,
                            )
                        ),
                        None => e,
                    }
                })
            }
            Command::Run { config } => run(&config).await,
            #[cfg(feature = "emulator")]
            Command::Dev(args) => dev::dev(args).await,
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
    let admin = handle
        .admin_addr
        .map_or_else(|| "off".to_owned(), |a| a.to_string());
    tracing::info!(addr = %handle.addr, admin = %admin, "portcullis listening");
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

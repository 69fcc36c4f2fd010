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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Command::CheckConfig { config, strict } = &cli.command {
        return check_config(config, *strict);
    }
    crate::telemetry::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
    use crate::emulator::{Emulator, EmulatorOptions, MintSpec};
    eprintln!();
    eprintln!(
        "  !!! portcullis dev: the Descope emulator below is NOT Descope. Demo users, demo keys, no security. !!!"
    );
    eprintln!();
    let project_id = "Pdev0000000000000000000000000".to_string();
    let emulator = Emulator::spawn(
        args.emulator_listen,
        EmulatorOptions {
            project_id: project_id.clone(),
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
    let token = emulator.mint(&MintSpec {
        sub: "U-demo-admin".into(),
        refresh: false,
        ttl_secs: 3600,
        claims: serde_json::json!({"email": "admin@example.com", "name": "Ada Admin", "roles": ["admin"]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    });
    println!("Portcullis dev is running:");
    println!(
        "  gateway   http://{}/   (login at http://{}/_auth/login)",
        handle.addr, handle.addr
    );
    println!(
        "  emulator  {}   (outbox: {}/emulator/outbox)",
        emulator.base_url(),
        emulator.base_url()
    );
    println!("  demo app  http://{demo}/   (behind the gateway)");
    if let Some(a) = handle.admin_addr {
        println!("  admin     http://{a}/metrics");
    }
    println!();
    println!("A demo admin session token (1 hour):");
    println!(
        "  curl -H 'Authorization: Bearer {token}' http://{}/admin",
        handle.addr
    );
    handle.run_until_signal().await;
    Ok(())
}

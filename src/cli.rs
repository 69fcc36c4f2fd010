//! Command line (DESIGN §2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Dev,
    /// The Descope-API emulator alone.
    Emulator(crate::emulator::cli::EmulatorArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Run { .. } | Command::CheckConfig { .. } | Command::Dev => {
                anyhow::bail!("not implemented yet")
            }
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

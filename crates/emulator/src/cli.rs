//! `portcullis emulator`: the Descope-API emulator alone, for users' own
//! integration tests.
//!
//! The first line on stdout is `Descope emulator listening on
//! http://HOST:PORT (PROJECT_ID)` with the real bound port (so `--listen
//! 127.0.0.1:0` works for scripts); a warning that this is not Descope goes to
//! stderr. Runs until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::handle::Emulator;
use crate::options::{EmulatorOptions, IssuerMode, KeyType};

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback unless --allow-remote); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:4080")]
    pub listen: SocketAddr,
    #[arg(long, env = "DESCOPE_PROJECT_ID")]
    pub project_id: String,
    #[arg(long, value_enum, default_value_t = KeyType::Ec)]
    pub key_type: KeyType,
    /// Management key the management API requires (when unset: the control
    /// token if given, else any non-empty key).
    #[arg(long, env = "DESCOPE_MANAGEMENT_KEY", hide_env_values = true)]
    pub management_key: Option<String>,
    /// Seed file (TOML: permissions, roles, tenants, users).
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Token the control API (`/emulator/*`) requires as `Authorization: Bearer`.
    #[arg(long, env = "EMULATOR_CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,
    /// Allow a non-loopback listen address (requires --control-token).
    #[arg(long)]
    pub allow_remote: bool,
    /// Put the bare project id in `iss` instead of `{base_url}/{project_id}`.
    #[arg(long)]
    pub issuer_project_id: bool,
    /// Deliver refresh tokens in `Set-Cookie` instead of the body.
    #[arg(long)]
    pub cookie_mode: bool,
    /// Issue a new refresh token on every refresh and revoke the old one.
    #[arg(long)]
    pub refresh_rotation: bool,
    /// A node_modules folder holding @descope/web-component and
    /// @descope/web-components-ui, served at /npm/{package}@{version}/{path}
    /// so that the real web component runs with no internet.
    #[arg(long, value_name = "DIR")]
    pub web_components: Option<PathBuf>,
}

/// Why the emulator refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error(
        "refusing to listen on {0}: the emulator is for loopback use; pass --allow-remote (with --control-token) to expose it"
    )]
    NotLoopback(SocketAddr),
    #[error("--allow-remote requires --control-token so that strangers cannot mint tokens")]
    RemoteWithoutToken,
    #[error("--project-id must not be empty")]
    EmptyProjectId,
}

/// Checks the listen address and remote-access flags.
pub fn check_args(args: &EmulatorArgs) -> Result<(), CliError> {
    if args.project_id.trim().is_empty() {
        return Err(CliError::EmptyProjectId);
    }
    if args.allow_remote {
        if args.control_token.as_deref().is_none_or(str::is_empty) {
            return Err(CliError::RemoteWithoutToken);
        }
    } else if !args.listen.ip().is_loopback() {
        return Err(CliError::NotLoopback(args.listen));
    }
    Ok(())
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let seed =
        match &args.seed {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the seed file {}: {e}", path.display())
            })?),
            None => None,
        };
    let opts = EmulatorOptions {
        project_id: args.project_id.clone(),
        key_type: args.key_type,
        management_key: args.management_key.clone(),
        control_token: args.control_token.clone(),
        seed,
        issuer: if args.issuer_project_id {
            IssuerMode::ProjectId
        } else {
            IssuerMode::Url
        },
        cookie_mode: args.cookie_mode,
        refresh_rotation: args.refresh_rotation,
        web_components: args.web_components.clone(),
        ..EmulatorOptions::default()
    };
    let emulator = Emulator::spawn(args.listen, opts).await?;
    eprintln!();
    eprintln!("  !!! WARNING: this is the Portcullis Descope-API EMULATOR, NOT DESCOPE. !!!");
    eprintln!("  !!! Tokens are signed with throw-away keys; all state is in memory.     !!!");
    eprintln!("  !!! Never point production at it.                                       !!!");
    eprintln!();
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Descope emulator listening on {} ({})",
            emulator.base_url(),
            emulator.project_id()
        )?;
        out.flush()?;
    }
    wait_for_signal().await?;
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

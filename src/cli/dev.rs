//! `portcullis dev`: the embedded default — emulator, demo app and gateway on
//! loopback (only with the `emulator` feature).

use std::net::SocketAddr;
use std::path::Path;

use crate::config::{Config, LoadOptions};

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

/// A bind failure of one of `dev`'s listeners, naming its flag.
fn bind_failed(addr: SocketAddr, flag: &'static str, err: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{}",
        crate::listen::bind_error(
            addr,
            crate::listen::Setting::Flag {
                command: "portcullis dev",
                flag,
            },
            err,
        )
    )
}

/// The I/O error inside an `anyhow` error, if that is what it is.
fn io_error(e: &anyhow::Error) -> Option<&std::io::Error> {
    e.chain().find_map(|c| c.downcast_ref::<std::io::Error>())
}

#[allow(clippy::print_stdout)]
pub(super) async fn dev(args: DevArgs) -> anyhow::Result<()> {
    use portcullis_emulator::{Emulator, EmulatorOptions};
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
            seed: Some(include_str!("../../config/dev-seed.toml").to_string()),
            session_ttl,
            ..EmulatorOptions::default()
        },
    )
    .await
    .map_err(|e| match io_error(&e) {
        Some(io) => bind_failed(args.emulator_listen, "--emulator-listen", io),
        None => e,
    })?;
    let demo = portcullis_emulator::demo::spawn(args.demo_listen, "/_auth".into())
        .await
        .map_err(|e| bind_failed(args.demo_listen, "--demo-listen", &e))?;
    let public = format!("http://{}", args.listen);
    let toml = include_str!("../../config/dev.toml")
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
    let handle = crate::app::start(config, crate::app::StartOptions::default())
        .await
        .map_err(|e| match e {
            crate::app::StartError::Bind { addr, key, error } => {
                let flag = if key == "admin.listen" {
                    "--admin-listen"
                } else {
                    "--listen"
                };
                bind_failed(addr, flag, &error)
            }
            other => other.into(),
        })?;
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

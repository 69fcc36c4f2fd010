//! `portcullis emulator`. STUB: the emulator work replaces this file.

use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:4080")]
    pub listen: SocketAddr,
    #[arg(long, env = "DESCOPE_PROJECT_ID")]
    pub project_id: String,
    #[arg(long, value_enum, default_value_t = super::KeyType::Ec)]
    pub key_type: super::KeyType,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("the emulator is not built yet")
}

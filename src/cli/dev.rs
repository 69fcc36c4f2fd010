//! `portcullis dev`: the embedded default — emulator, demo app and gateway on
//! loopback (only with the `emulator` feature).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_emulator::WebComponents;

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
    /// A node_modules folder holding @descope/web-component and
    /// @descope/web-components-ui: the login page then offers the real
    /// Descope Flow, whose scripts the emulator serves (no internet needed).
    /// Without it the `flow` method is left off.
    #[arg(long, value_name = "DIR")]
    pub web_components: Option<PathBuf>,
}

/// What the login page's `flow` method loads when `--web-components` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FlowScripts {
    /// `{emulator}/npm/@descope/web-component@{version}/dist/index.js`.
    web_component_url: String,
    /// SRI hash of that file.
    integrity: String,
}

impl FlowScripts {
    /// The script of the installed `@descope/web-component`, as the emulator
    /// at `emulator_base` serves it.
    fn new(web_components: &WebComponents, emulator_base: &str) -> anyhow::Result<Self> {
        const PACKAGE: &str = "@descope/web-component";
        const FILE: &str = "dist/index.js";
        let version = web_components
            .version(PACKAGE)
            .ok_or_else(|| anyhow::anyhow!("--web-components: {PACKAGE} is not installed"))?;
        let path = web_components.file(PACKAGE, FILE).ok_or_else(|| {
            anyhow::anyhow!("--web-components: {PACKAGE}@{version} has no {FILE}")
        })?;
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("--web-components: {}: {e}", path.display()))?;
        Ok(Self {
            web_component_url: format!("{emulator_base}/npm/{PACKAGE}@{version}/{FILE}"),
            integrity: sri_sha384(&bytes),
        })
    }
}

/// `sha384-<base64>` (Subresource Integrity).
fn sri_sha384(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// The embedded dev configuration with its placeholders filled in.
fn dev_toml(
    listen: &str,
    admin: &str,
    project_id: &str,
    emulator_base: &str,
    demo: &str,
    flow: Option<&FlowScripts>,
) -> String {
    let (method, login) = match flow {
        // The web component bundles the JS SDK: no second script.
        Some(f) => (
            "\"flow\", ",
            format!(
                "cdn_url = \"{emulator_base}\"\nweb_component_url = \"{}\"\n\
                 web_component_integrity = \"{}\"\nweb_js_sdk_url = \"\"",
                f.web_component_url, f.integrity
            ),
        ),
        None => ("", String::new()),
    };
    include_str!("../../config/dev.toml")
        .replace("{LISTEN}", listen)
        .replace("{PUBLIC}", &format!("http://{listen}"))
        .replace("{ADMIN}", admin)
        .replace("{PROJECT}", project_id)
        .replace("{EMULATOR}", emulator_base)
        .replace("{DEMO}", demo)
        .replace("{FLOW_METHOD}", method)
        .replace("{FLOW_LOGIN}", &login)
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
    let web_components = args
        .web_components
        .as_deref()
        .map(WebComponents::load)
        .transpose()?;
    let emulator = Emulator::spawn(
        args.emulator_listen,
        EmulatorOptions {
            project_id: project_id.clone(),
            seed: Some(include_str!("../../config/dev-seed.toml").to_string()),
            session_ttl,
            web_components: args.web_components.clone(),
            ..EmulatorOptions::default()
        },
    )
    .await
    .map_err(|e| match io_error(&e) {
        Some(io) => bind_failed(args.emulator_listen, "--emulator-listen", io),
        None => e,
    })?;
    let flow = web_components
        .as_ref()
        .map(|w| FlowScripts::new(w, &emulator.base_url()))
        .transpose()?;
    let demo = portcullis_emulator::demo::spawn(args.demo_listen, "/_auth".into())
        .await
        .map_err(|e| bind_failed(args.demo_listen, "--demo-listen", &e))?;
    let toml = dev_toml(
        &args.listen.to_string(),
        &args.admin_listen.to_string(),
        &project_id,
        &emulator.base_url(),
        &format!("http://{demo}"),
        flow.as_ref(),
    );
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
    match (&flow, &web_components) {
        (Some(_), Some(w)) => println!(
            "  flow      Descope Flow on the login page (@descope/web-component {}, served by the emulator)",
            w.version("@descope/web-component").unwrap_or("?")
        ),
        _ => println!(
            "  flow      off (pass --web-components DIR, a node_modules folder with @descope/web-component\n            and @descope/web-components-ui, to try the Descope Flow offline)"
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoginMethod;

    fn config(flow: Option<&FlowScripts>) -> Config {
        let toml = dev_toml(
            "127.0.0.1:8080",
            "127.0.0.1:9090",
            "Pdev0000000000000000000000000",
            "http://127.0.0.1:4080",
            "http://127.0.0.1:3000",
            flow,
        );
        Config::from_toml(
            &toml,
            Path::new("."),
            &std::collections::HashMap::new(),
            LoadOptions { dev: true },
        )
        .unwrap_or_else(|e| panic!("dev config is valid: {e}\n{toml}"))
    }

    fn login_page(cfg: &Config) -> crate::pages::Page {
        let core = crate::state::build_login(cfg)
            .expect("login settings")
            .expect("login methods on");
        let view = crate::pages::LoginView {
            return_to: "/",
            flow_nonce: Some("N"),
            notice: None,
            ..crate::pages::LoginView::default()
        };
        crate::pages::login(core.page_settings(), &view)
    }

    #[test]
    fn without_web_components_dev_offers_no_flow_and_loads_nothing_from_a_cdn() {
        let cfg = config(None);
        assert!(!cfg.login.methods.contains(&LoginMethod::Flow));
        assert_eq!(cfg.login.cdn_url, None);
        let page = login_page(&cfg);
        assert!(!page.html.contains("descope-wc"), "no flow section");
        assert!(!page.html.contains("<script"), "no scripts at all");
        assert!(!page.html.contains("jsdelivr") && !page.html.contains("descope.com"));
        // One divider between two sections, never two in a row.
        assert!(!page.html.contains("or</div><div class=\"or\""));
        assert!(page.html.matches(r#"class="or""#).count() >= 1);
        assert!(page.csp.starts_with("default-src 'none'"), "{}", page.csp);
    }

    #[test]
    fn with_web_components_the_flow_loads_from_the_emulator_only() {
        let flow = FlowScripts {
            web_component_url:
                "http://127.0.0.1:4080/npm/@descope/web-component@4.3.2/dist/index.js".into(),
            integrity: sri_sha384(b"bundle"),
        };
        let cfg = config(Some(&flow));
        assert!(cfg.login.methods.contains(&LoginMethod::Flow));
        assert_eq!(cfg.login.cdn_url.as_deref(), Some("http://127.0.0.1:4080"));
        let page = login_page(&cfg);
        assert!(
            page.html.contains(
                r#"base-url="http://127.0.0.1:4080" base-cdn-url="http://127.0.0.1:4080""#
            )
        );
        assert!(page.html.contains(&format!(
            r#"src="{}" integrity="{}" crossorigin="anonymous""#,
            flow.web_component_url, flow.integrity
        )));
        // The web component bundles the JS SDK: one script only.
        assert_eq!(page.html.matches(" src=").count(), 1, "{}", page.html);
        for host in ["jsdelivr", "descope.com", "https:"] {
            assert!(!page.csp.contains(host), "{host} in {}", page.csp);
        }
        assert!(
            page.csp
                .contains("connect-src 'self' http://127.0.0.1:4080")
        );
    }

    #[test]
    fn sri_matches_a_known_digest() {
        // sha384("") from FIPS 180-2 test vectors, base64.
        assert_eq!(
            sri_sha384(b""),
            "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
        );
    }
}

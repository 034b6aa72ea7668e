//! The glance-api daemon: command line, configuration, logging, state, serve. The binary
//! is a one-line call to [`main`], so tests can run the very same daemon as a process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::registry_client::RegistryClient;
use crate::{ApiConfig, AppState, recovery, serve};
use anyhow::Context as _;
use clap::Parser;
use glance_config::IniSet;
use glance_store::Stores;

/// Command line of `glance-api`.
#[derive(Debug, Parser)]
#[command(name = "glance-api", about = "OpenStack Image service API v2")]
pub struct Cli {
    /// Config file (repeatable; later files win).
    #[arg(long = "config-file", default_value = "/etc/glance/glance-api.conf")]
    config_file: Vec<PathBuf>,
    /// Address to bind, overriding `bind_host`.
    #[arg(long, env = "GLANCE_API_BIND_HOST")]
    bind_host: Option<String>,
    /// Port to bind, overriding `bind_port`.
    #[arg(long, env = "GLANCE_API_BIND_PORT")]
    bind_port: Option<u16>,
    /// glance-registry's base URL, overriding `registry_host`/`registry_port`.
    #[arg(long, env = "GLANCE_REGISTRY_URL")]
    registry_url: Option<String>,
}

/// Parses the command line and runs the daemon until it stops.
pub fn main() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run(Cli::parse()))
}

/// Runs the daemon with an already-parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let default = PathBuf::from("/etc/glance/glance-api.conf");
    let files: Vec<PathBuf> = cli
        .config_file
        .into_iter()
        .filter(|p| p.exists() || p != &default)
        .collect();
    let ini = IniSet::load(&files)?;
    let mut config = ApiConfig::from_ini(&ini)?;
    let level = if config.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    if files.is_empty() {
        log::warn!(
            "no config file found at {}; using defaults",
            default.display()
        );
    }
    if !config.ignored_options.is_empty() {
        log::warn!(
            "glance-api ignores these options it does not implement: {}",
            config.ignored_options.join(", ")
        );
    }
    config.bind_host = cli.bind_host.unwrap_or(config.bind_host);
    config.bind_port = cli.bind_port.unwrap_or(config.bind_port);
    if let Some(url) = cli.registry_url {
        config.registry_url = url;
    }
    if config.auth == crate::config::AuthMode::None {
        log::warn!(
            "no [paste_deploy] flavor is set: every request runs as an unauthenticated ADMIN, as in Glance; \
             bound to {} — set flavor = keystone or trusted-auth before exposing this service",
            config.bind_host
        );
    }
    let stores = Stores::from_config(&config.stores)?;
    let registry = RegistryClient::new(&config.registry_url)?;
    let addr = format!("{}:{}", config.bind_host, config.bind_port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("cannot bind {addr}"))?;
    log::info!(
        "glance-api listening on {addr}, registry {}",
        config.registry_url
    );
    let sweep_every = Duration::from_secs(u64::from(config.upload_lease_ttl_secs).max(2) / 2);
    let state = AppState {
        config: Arc::new(config),
        registry,
        stores: Arc::new(stores),
    };
    recovery::spawn(state.clone(), sweep_every);
    serve(listener, state)?.await?;
    Ok(())
}

//! The glance-api daemon: command line, configuration, logging, state, serve. The binary
//! is a one-line call to [`main`], so tests can run the very same daemon as a process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::{ApiConfig, AppState, recovery, serve};
use anyhow::Context as _;
use clap::Parser;
use glance_config::IniSet;
use glance_config::daemon::{config_files, init_logging, reopen_log_on_sighup};

/// Command line of `glance-api`.
#[derive(Debug, Parser)]
#[command(name = "glance-api", about = "OpenStack Image service API v2")]
pub struct Cli {
    /// Config file (repeatable; later files win). Default: /etc/glance/glance-api.conf when
    /// it exists.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the config files, in name order.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Option<PathBuf>,
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
    let files = config_files(
        &cli.config_file,
        cli.config_dir.as_deref(),
        &["/etc/glance/glance-api.conf"],
    )?;
    let ini = IniSet::load(&files)?;
    let mut config = ApiConfig::from_ini(&ini)?;
    let log = init_logging("glance-api", &config.log)?;
    reopen_log_on_sighup(log)?;
    if files.is_empty() {
        log::warn!("no config file found at /etc/glance/glance-api.conf; using defaults");
    }
    for feature in &config.unimplemented {
        log::warn!("glance-api: {feature}");
    }
    for method in &config.import.unimplemented_methods {
        log::warn!(
            "glance-api: import method {method} (enabled_import_methods) is not implemented; it is not offered"
        );
    }
    if !config.ignored_options.is_empty() {
        log::warn!(
            "glance-api ignores these options it does not implement: {}",
            config.ignored_options.join(", ")
        );
    }
    if let Some(k) = &config.keystone
        && !k.ignored.is_empty()
    {
        log::warn!(
            "glance-api accepts but does not use these keystonemiddleware options: {}",
            k.ignored.join(", ")
        );
    }
    if !config.enforce_scope {
        log::warn!(
            "[oslo_policy] enforce_scope = false is ignored: as in Glance 33 (oslo.policy 6), image \
             calls with a system- or domain-scoped token are always refused"
        );
    }
    if !config.enforce_new_defaults {
        log::warn!(
            "[oslo_policy] enforce_new_defaults = false: image rules the policy file does not set \
             also allow their deprecated defaults (\"\", anyone); only the ownership rules still hold"
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
    let addr = format!("{}:{}", config.bind_host, config.bind_port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("cannot bind {addr}"))?;
    log::info!(
        "glance-api listening on {addr}, registry {}",
        config.registry_url
    );
    let sweep_every = Duration::from_secs(u64::from(config.upload_lease_ttl_secs).max(2) / 2);
    let state = AppState::from_config(config)?;
    recovery::spawn(state.clone(), sweep_every);
    crate::startup::spawn(state.clone());
    serve(listener, state)?.await?;
    log::info!("glance-api stopped");
    Ok(())
}

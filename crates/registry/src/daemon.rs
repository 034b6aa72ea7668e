//! glance-registry daemon: command line, configuration, logging, serve. The binary is a
//! one-line call to [`main`], so tests can run the very same daemon as a process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::IniSet;
use crate::db::{Database, DbUrl, PoolOptions, migrate};
use crate::{AppState, RegistryConfig, serve};
use anyhow::Context as _;
use clap::Parser;
use glance_config::daemon::{config_files, init_logging, reopen_log_on_sighup};

/// Command line of `glance-registry`.
#[derive(Debug, Parser)]
#[command(name = "glance-registry", about = "Image metadata registry")]
pub struct Cli {
    /// Config file (repeatable; later files win). Default: /etc/glance/glance-registry.conf
    /// when it exists.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the config files, in name order.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Address to bind, overriding `bind_host`.
    #[arg(long, env = "GLANCE_REGISTRY_BIND_HOST")]
    bind_host: Option<String>,
    /// Port to bind, overriding `bind_port`.
    #[arg(long, env = "GLANCE_REGISTRY_BIND_PORT")]
    bind_port: Option<u16>,
    /// Database URL, overriding `[database] connection`.
    #[arg(long, env = "GLANCE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
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
        &["/etc/glance/glance-registry.conf"],
    )?;
    let ini = IniSet::load(&files)?;
    let mut config = RegistryConfig::from_ini(&ini)?;
    let log = init_logging("glance-registry", &config.log)?;
    reopen_log_on_sighup(log)?;
    if !config.ignored_options.is_empty() {
        log::warn!(
            "glance-registry ignores these options it does not implement: {}",
            config.ignored_options.join(", ")
        );
    }
    if files.is_empty() {
        log::warn!("no config file found at /etc/glance/glance-registry.conf; using defaults");
    }
    config.bind_host = cli.bind_host.unwrap_or(config.bind_host);
    config.bind_port = cli.bind_port.unwrap_or(config.bind_port);
    if let Some(url) = cli.database_url {
        config.database_connection = url;
    }
    let keystone = match &config.keystone {
        Some(k) => {
            if !k.ignored.is_empty() {
                log::warn!(
                    "glance-registry accepts but does not use: {}",
                    k.ignored.join(", ")
                );
            }
            Some(Arc::new(glance_auth::Keystone::new(k.clone())?))
        }
        None => {
            if config.flavor == glance_auth::Flavor::None {
                log::warn!(
                    "no [paste_deploy] flavor: glance-registry serves loopback callers only, \
                     trusting their identity headers"
                );
            }
            None
        }
    };
    let url = DbUrl::parse(&config.database_connection)?;
    let pool = PoolOptions {
        max_size: config.max_pool_size,
        timeout: std::time::Duration::from_secs(u64::from(config.pool_timeout_secs)),
        statement_timeout: config.statement_timeout(),
    };
    let db = Database::connect(&url, pool)?;
    migrate::ensure_current(&mut *db.get()?)?;
    let addr = format!("{}:{}", config.bind_host, config.bind_port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("cannot bind {addr}"))?;
    log::info!("glance-registry listening on {addr}, database {url}");
    let state = AppState::new(config, db, keystone);
    serve(listener, state)?.await?;
    log::info!("glance-registry stopped");
    Ok(())
}

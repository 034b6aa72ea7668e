//! `glance-registry`: serves image metadata to glance-api on port 9191.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use glance_registry::config::IniSet;
use glance_registry::db::{Database, DbUrl, PoolOptions, migrate};
use glance_registry::{AppState, RegistryConfig, serve};

/// Command line of `glance-registry`.
#[derive(Debug, Parser)]
#[command(name = "glance-registry", about = "Image metadata registry")]
struct Cli {
    /// Config file (repeatable; later files win).
    #[arg(
        long = "config-file",
        default_value = "/etc/glance/glance-registry.conf"
    )]
    config_file: Vec<PathBuf>,
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

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let files: Vec<PathBuf> = cli
        .config_file
        .into_iter()
        .filter(|p| p.exists() || p != &PathBuf::from("/etc/glance/glance-registry.conf"))
        .collect();
    let ini = IniSet::load(&files)?;
    let mut config = RegistryConfig::from_ini(&ini)?;
    let level = if config.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
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
    let url = DbUrl::parse(&config.database_connection)?;
    let pool = PoolOptions {
        max_size: config.max_pool_size,
        timeout: std::time::Duration::from_secs(u64::from(config.pool_timeout_secs)),
    };
    let db = Database::connect(&url, pool)?;
    migrate::ensure_current(&mut *db.get()?)?;
    let addr = format!("{}:{}", config.bind_host, config.bind_port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("cannot bind {addr}"))?;
    log::info!("glance-registry listening on {addr}, database {url}");
    let state = AppState {
        config: Arc::new(config),
        db,
        default_lease_secs: 60,
    };
    serve(listener, state)?.await?;
    Ok(())
}

//! `glance-manage`: schema sync and version, and purging soft-deleted rows. Every command
//! prints what it did in words an operator can act on and fails with the reason.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{IniSet, RegistryConfig};
use crate::db::{Database, DbUrl, PoolOptions, glance_releases, migrate, purge};
use crate::error::RegistryError;
use crate::manage_metadefs::{self, ExportArgs, LoadArgs};

/// Command line of `glance-manage`.
#[derive(Debug, Parser)]
#[command(name = "glance-manage", about = "Manage the image service database")]
pub struct ManageCli {
    /// Config file (repeatable; later files win). Default: /etc/glance/glance-registry.conf
    /// then /etc/glance/glance-api.conf, whichever exists.
    #[arg(long = "config-file", global = true, value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// Directory whose `*.conf` files are read after the config files, in name order.
    #[arg(long = "config-dir", global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Database URL, overriding `[database] connection`.
    #[arg(
        long = "database-url",
        env = "GLANCE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands, including Glance's legacy `db_*` aliases.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Database commands.
    Db {
        /// The database command.
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Same as `db sync`.
    #[command(name = "db_sync")]
    DbSync,
    /// Same as `db version`.
    #[command(name = "db_version")]
    DbVersion,
    /// Same as `db purge`.
    #[command(name = "db_purge")]
    DbPurge(PurgeArgs),
    /// Load the metadata-definitions catalogue (see `manage_metadefs`).
    #[command(name = "db_load_metadefs")]
    DbLoadMetadefs(LoadArgs),
    /// Delete every metadata definition.
    #[command(name = "db_unload_metadefs")]
    DbUnloadMetadefs,
    /// Export the metadata definitions as catalogue files.
    #[command(name = "db_export_metadefs")]
    DbExportMetadefs(ExportArgs),
}

/// `glance-manage db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or upgrade the schema (adopts a database Glance created).
    Sync,
    /// Print the schema version.
    Version,
    /// Hard-delete soft-deleted rows older than N days, except from the images table.
    Purge(PurgeArgs),
    /// Hard-delete soft-deleted image rows (their ids may then be reused: OSSN-0075).
    #[command(name = "purge_images_table")]
    PurgeImagesTable(PurgeArgs),
    /// Load the metadata-definitions catalogue.
    #[command(name = "load_metadefs")]
    LoadMetadefs(LoadArgs),
    /// Delete every metadata definition.
    #[command(name = "unload_metadefs")]
    UnloadMetadefs,
    /// Export the metadata definitions as catalogue files.
    #[command(name = "export_metadefs")]
    ExportMetadefs(ExportArgs),
}

/// Options of the purge commands.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Only rows deleted more than this many days ago.
    #[arg(long = "age_in_days", alias = "age-in-days", default_value_t = 30)]
    pub age_in_days: u32,
    /// At most this many rows per table; -1 for all.
    #[arg(
        long = "max_rows",
        alias = "max-rows",
        default_value_t = 100,
        allow_hyphen_values = true
    )]
    pub max_rows: i64,
}

/// Runs a parsed command, returning the text to print.
pub fn run(cli: ManageCli) -> Result<String, RegistryError> {
    let files = glance_config::daemon::config_files(
        &cli.config_file,
        cli.config_dir.as_deref(),
        &[
            "/etc/glance/glance-registry.conf",
            "/etc/glance/glance-api.conf",
        ],
    )?;
    let ini = IniSet::load(&files)?;
    let mut config = RegistryConfig::from_ini(&ini)?;
    if let Some(url) = cli.database_url {
        config.database_connection = url;
    }
    let url = DbUrl::parse(&config.database_connection)?;
    let db = Database::connect(
        &url,
        PoolOptions {
            max_size: 1,
            // Migrations and purges may rightly run long.
            statement_timeout: None,
            ..PoolOptions::default()
        },
    )?;
    let mut conn = db.get()?;
    match cli.command {
        Command::DbSync
        | Command::Db {
            command: DbCommand::Sync,
        } => {
            let report = migrate::sync(&mut conn)?;
            Ok(describe_sync(&url, &report))
        }
        Command::DbVersion
        | Command::Db {
            command: DbCommand::Version,
        } => {
            let st = migrate::state(&mut conn)?;
            Ok(describe_version(&st))
        }
        Command::DbPurge(args)
        | Command::Db {
            command: DbCommand::Purge(args),
        } => {
            migrate::ensure_current(&mut conn)?;
            let (before, max) = purge_window(&args)?;
            let report = purge::purge(&mut conn, before, max)?;
            Ok(describe_purge(&args, &report))
        }
        Command::Db {
            command: DbCommand::PurgeImagesTable(args),
        } => {
            migrate::ensure_current(&mut conn)?;
            let (before, max) = purge_window(&args)?;
            let report = purge::purge_images(&mut conn, before, max)?;
            Ok(describe_purge(&args, &report))
        }
        Command::DbLoadMetadefs(args)
        | Command::Db {
            command: DbCommand::LoadMetadefs(args),
        } => {
            migrate::ensure_current(&mut conn)?;
            manage_metadefs::load(&mut conn, &args)
        }
        Command::DbUnloadMetadefs
        | Command::Db {
            command: DbCommand::UnloadMetadefs,
        } => {
            migrate::ensure_current(&mut conn)?;
            manage_metadefs::unload(&mut conn)
        }
        Command::DbExportMetadefs(args)
        | Command::Db {
            command: DbCommand::ExportMetadefs(args),
        } => {
            migrate::ensure_current(&mut conn)?;
            manage_metadefs::export(&mut conn, &args)
        }
    }
}

fn purge_window(args: &PurgeArgs) -> Result<(chrono::NaiveDateTime, Option<i64>), RegistryError> {
    let max = match args.max_rows {
        -1 => None,
        n if n >= 1 => Some(n),
        n => {
            return Err(RegistryError::Startup(format!(
                "--max_rows must be -1 (all) or at least 1, got {n}"
            )));
        }
    };
    let before = glance_model::time::now() - chrono::Duration::days(i64::from(args.age_in_days));
    Ok((before, max))
}

fn describe_sync(url: &DbUrl, r: &migrate::SyncReport) -> String {
    let mut out = String::new();
    if let Some(alembic) = &r.adopted_alembic {
        out.push_str(&format!(
            "Adopted a database created by OpenStack Glance (alembic revision {}); every row kept.\n",
            alembic.join(", ")
        ));
        if !r.glance_changes.is_empty() {
            out.push_str(&format!(
                "Applied Glance's schema changes since then: {}\n",
                r.glance_changes.join(", ")
            ));
        }
    }
    if r.applied.is_empty() {
        out.push_str(&format!("Database {url} is up to date.\n"));
    } else {
        out.push_str(&format!(
            "Applied {} migration(s) to {url}: {}\n",
            r.applied.len(),
            r.applied.join(", ")
        ));
    }
    out.push_str(&describe_version(&r.state));
    out
}

/// Glance's `db_version` prints the alembic revision alone on its line; tools that parse it
/// still find it first, with ours beside it.
fn describe_version(st: &migrate::SchemaState) -> String {
    let ours = st
        .applied
        .last()
        .map_or("none (run `glance-manage db_sync`)", String::as_str);
    let glance = if !st.alembic.is_empty() {
        st.alembic.join(", ")
    } else if st.applied.is_empty() {
        "none".to_string()
    } else {
        // A database we created has Glance's 2024.1 schema (our first migration) and no
        // alembic_version table of its own.
        glance_releases::TARGET_REVISION.to_string()
    };
    let mut out = format!("{glance} (this project's schema: {ours})\n");
    if !st.pending.is_empty() {
        out.push_str(&format!(
            "Pending migrations: {} (run `glance-manage db_sync`)\n",
            st.pending.join(", ")
        ));
    }
    out
}

fn describe_purge(args: &PurgeArgs, report: &purge::PurgeReport) -> String {
    let total: usize = report.iter().map(|(_, n)| n).sum();
    let mut out = format!(
        "Purged {total} row(s) deleted more than {} day(s) ago (at most {} per table):\n",
        args.age_in_days,
        if args.max_rows == -1 {
            "all".to_string()
        } else {
            args.max_rows.to_string()
        }
    );
    for (table, n) in report {
        out.push_str(&format!("  {table}: {n}\n"));
    }
    out
}

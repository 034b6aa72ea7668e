//! `glance-manage db_load_metadefs / db_unload_metadefs / db_export_metadefs` (and their
//! `db load_metadefs` spellings): the metadata-definitions catalogue in Glance's JSON file
//! format, one namespace per file, by default in `/etc/glance/metadefs/`. Kept apart from
//! `manage.rs` (schema commands); each command is one transaction.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::db::metadefs::{self, LoadMode, Loaded};
use crate::db::{DbConnection, transaction};
use crate::error::RegistryError;

/// Where distributions put the catalogue files.
pub const DEFAULT_PATH: &str = "/etc/glance/metadefs/";

/// Arguments of `db_load_metadefs`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Directory of `*.json` catalogue files (also as `--path`).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Directory of catalogue files.
    #[arg(long = "path", id = "path_flag", value_name = "PATH")]
    pub path_flag: Option<PathBuf>,
    /// Merge into namespaces that exist (default: leave them alone).
    #[arg(long)]
    pub merge: bool,
    /// With `--merge`: the file's definitions replace the database's.
    #[arg(long = "prefer_new", alias = "prefer-new")]
    pub prefer_new: bool,
    /// Replace namespaces that exist with the file's.
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `db_export_metadefs`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Directory to write to (also as `--path`).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Directory to write to.
    #[arg(long = "path", id = "path_flag", value_name = "PATH")]
    pub path_flag: Option<PathBuf>,
}

fn dir(positional: &Option<PathBuf>, flag: &Option<PathBuf>) -> PathBuf {
    positional
        .clone()
        .or_else(|| flag.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

fn io(path: &Path, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Startup(format!("{}: {e}", path.display()))
}

/// Loads every `*.json` file of the directory, in name order, in one transaction.
pub fn load(conn: &mut DbConnection, args: &LoadArgs) -> Result<String, RegistryError> {
    let dir = dir(&args.path, &args.path_flag);
    let mode = match (args.merge, args.prefer_new, args.overwrite) {
        (_, true, true) => {
            return Err(RegistryError::Startup(
                "--prefer_new and --overwrite cannot be used together".to_string(),
            ));
        }
        (_, _, true) => LoadMode::Overwrite,
        (true, prefer_new, false) => LoadMode::Merge { prefer_new },
        (false, true, false) => {
            return Err(RegistryError::Startup(
                "--prefer_new needs --merge".to_string(),
            ));
        }
        (false, false, false) => LoadMode::Skip,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut docs = Vec::with_capacity(files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| io(f, e))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| io(f, e))?;
        docs.push((f.clone(), doc));
    }
    let started = Instant::now();
    let counts = transaction(conn, |conn| {
        let mut counts = [0usize; 3];
        for (f, doc) in &docs {
            let done =
                metadefs::load_namespace(conn, doc, mode).map_err(|e| io(f, e.public_message()))?;
            counts[match done {
                Loaded::Created => 0,
                Loaded::Updated => 1,
                Loaded::Skipped => 2,
            }] += 1;
        }
        Ok(counts)
    })?;
    Ok(format!(
        "Loaded {} metadata definition files from {} in {:.2} s: {} namespaces created, {} updated, {} skipped (already present; use --merge or --overwrite).\n",
        docs.len(),
        dir.display(),
        started.elapsed().as_secs_f64(),
        counts[0],
        counts[1],
        counts[2]
    ))
}

/// Deletes every namespace and resource type.
pub fn unload(conn: &mut DbConnection) -> Result<String, RegistryError> {
    transaction(conn, metadefs::unload_all)?;
    Ok("Deleted every metadata definition namespace and resource type.\n".to_string())
}

/// The file name Glance gives a namespace's export: its name without the characters that are
/// not letters or digits.
pub fn file_name(namespace: &str) -> String {
    let stem: String = namespace.chars().filter(|c| c.is_alphanumeric()).collect();
    format!("{stem}.json")
}

/// Writes one file per namespace into the directory.
pub fn export(conn: &mut DbConnection, args: &ExportArgs) -> Result<String, RegistryError> {
    let dir = dir(&args.path, &args.path_flag);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let names = metadefs::all_names(conn)?;
    for name in &names {
        let doc = metadefs::export_namespace(conn, name)?;
        let path = dir.join(file_name(name));
        let text = serde_json::to_string_pretty(&doc).map_err(|e| io(&path, e))?;
        std::fs::write(&path, text + "\n").map_err(|e| io(&path, e))?;
    }
    Ok(format!(
        "Exported {} metadata definition namespaces to {}.\n",
        names.len(),
        dir.display()
    ))
}

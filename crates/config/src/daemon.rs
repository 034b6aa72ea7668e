//! What glance-api, glance-registry and glance-manage share as processes: which config files
//! they read (`--config-file`, repeatable, and `--config-dir`, as oslo.config), and where their
//! log goes (`debug`, `log_file`, `log_dir`, else stderr — the journal under systemd), with the
//! log file reopened on SIGHUP so logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{ConfigError, IniSet, parse_bool};

/// The config files to read, in order (later files win): every `--config-file` given (each must
/// exist), else the first of `defaults` that exists; then `--config-dir`'s `*.conf` files in
/// name order.
pub fn config_files(
    given: &[PathBuf],
    config_dir: Option<&Path>,
    defaults: &[&str],
) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    if given.is_empty() {
        files.extend(defaults.iter().map(PathBuf::from).find(|p| p.is_file()));
    } else {
        for f in given {
            if !f.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    f.display()
                )));
            }
            files.push(f.clone());
        }
    }
    if let Some(dir) = config_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ConfigError(format!(
                "cannot read config directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut in_dir: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    Ok(files)
}

/// The logging options every daemon reads.
pub const LOG_OPTIONS: &[(&str, &str)] = &[
    ("DEFAULT", "debug"),
    ("DEFAULT", "log_file"),
    ("DEFAULT", "log_dir"),
    ("DEFAULT", "use_stderr"),
];

/// Where and how much to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `debug`: log at debug level.
    pub debug: bool,
    /// `log_file` (relative to `log_dir` when both are set).
    pub log_file: Option<PathBuf>,
    /// `log_dir`: `<log_dir>/<program>.log` unless `log_file` names the file.
    pub log_dir: Option<PathBuf>,
    /// `use_stderr`: also log to stderr when logging to a file.
    pub use_stderr: bool,
}

impl LogSettings {
    /// Reads `[DEFAULT] debug`, `log_file`, `log_dir`, `use_stderr`.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        let path = |o: &str| {
            ini.get("DEFAULT", o)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(Self {
            debug: ini.parse("DEFAULT", "debug", parse_bool)?.unwrap_or(false),
            log_file: path("log_file"),
            log_dir: path("log_dir"),
            use_stderr: ini
                .parse("DEFAULT", "use_stderr", parse_bool)?
                .unwrap_or(false),
        })
    }

    /// The log file of `program`, if logging goes to a file.
    pub fn path(&self, program: &str) -> Option<PathBuf> {
        match (&self.log_dir, &self.log_file) {
            (Some(dir), Some(file)) => Some(dir.join(file)),
            (None, Some(file)) => Some(file.clone()),
            (Some(dir), None) => Some(dir.join(format!("{program}.log"))),
            (None, None) => None,
        }
    }
}

/// The open log file, shared by the logger and the SIGHUP handler.
#[derive(Debug, Clone)]
pub struct LogHandle {
    file: Option<(PathBuf, Arc<Mutex<File>>)>,
}

impl LogHandle {
    /// Where the log goes, for messages.
    pub fn describe(&self) -> String {
        self.file
            .as_ref()
            .map_or_else(|| "stderr".to_string(), |(p, _)| p.display().to_string())
    }

    /// Reopens the log file at its path (after logrotate moved it). Without a log file there is
    /// nothing to do.
    pub fn reopen(&self) -> Result<(), ConfigError> {
        let Some((path, shared)) = &self.file else {
            return Ok(());
        };
        let fresh = open_log(path)?;
        *shared.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

fn open_log(path: &Path) -> Result<File, ConfigError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ConfigError(format!("cannot open log file {}: {e}", path.display())))
}

/// Writes log records to the current log file (and stderr when asked).
struct FileSink {
    file: Arc<Mutex<File>>,
    also_stderr: bool,
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.also_stderr {
            // A lost stderr line must not lose the file line.
            let _ = std::io::stderr().write_all(buf);
        }
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// Starts logging for `program` (RUST_LOG, when set, overrides the level). Fails, naming the
/// path, when the log file cannot be opened, so a daemon does not start logging nowhere.
pub fn init_logging(program: &str, settings: &LogSettings) -> Result<LogHandle, ConfigError> {
    let level = if settings.debug { "debug" } else { "info" };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    let handle = match settings.path(program) {
        Some(path) => {
            let file = Arc::new(Mutex::new(open_log(&path)?));
            builder.target(env_logger::Target::Pipe(Box::new(FileSink {
                file: Arc::clone(&file),
                also_stderr: settings.use_stderr,
            })));
            LogHandle {
                file: Some((path, file)),
            }
        }
        None => LogHandle { file: None },
    };
    // A second init (tests running a daemon in-process twice) keeps the first logger.
    let _ = builder.try_init();
    Ok(handle)
}

/// Installs the SIGHUP handler on the current tokio runtime: reopen the log file. The handler
/// is installed even without a log file, since SIGHUP's default action would kill the daemon.
pub fn reopen_log_on_sighup(handle: LogHandle) -> Result<(), ConfigError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| ConfigError(format!("cannot install the SIGHUP handler: {e}")))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match handle.reopen() {
                Ok(()) => log::info!("SIGHUP: log reopened ({})", handle.describe()),
                Err(e) => log::error!("SIGHUP: {e}"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> IniSet {
        let mut set = IniSet::default();
        set.merge(Path::new("test.conf"), text).expect("parses");
        set
    }

    #[test]
    fn explicit_files_must_exist() {
        let err = config_files(&[PathBuf::from("/nonexistent/glance-api.conf")], None, &[])
            .expect_err("missing file");
        assert!(err.0.contains("/nonexistent/glance-api.conf"), "{err}");
    }

    #[test]
    fn default_file_used_only_when_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let present = dir.path().join("b.conf");
        std::fs::write(&present, "").expect("write");
        let missing = dir.path().join("a.conf");
        let files = config_files(
            &[],
            None,
            &[
                missing.to_str().expect("utf8"),
                present.to_str().expect("utf8"),
            ],
        )
        .expect("resolves");
        assert_eq!(files, vec![present]);
        assert!(
            config_files(&[], None, &[missing.to_str().expect("utf8")])
                .expect("resolves")
                .is_empty()
        );
    }

    #[test]
    fn config_dir_adds_conf_files_in_name_order_after_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("glance-api.conf");
        std::fs::write(&main, "[DEFAULT]\nbind_port = 1\n").expect("write");
        let d = dir.path().join("glance-api.conf.d");
        std::fs::create_dir(&d).expect("mkdir");
        for (name, port) in [("20-b.conf", "3"), ("10-a.conf", "2"), ("notes.txt", "9")] {
            std::fs::write(d.join(name), format!("[DEFAULT]\nbind_port = {port}\n"))
                .expect("write");
        }
        let files = config_files(std::slice::from_ref(&main), Some(&d), &[]).expect("resolves");
        assert_eq!(
            files,
            vec![main, d.join("10-a.conf"), d.join("20-b.conf")],
            "txt files are not config"
        );
        let set = IniSet::load(&files).expect("loads");
        assert_eq!(set.get("DEFAULT", "bind_port"), Some("3"), "last file wins");
        let err = config_files(&[], Some(&dir.path().join("nope")), &[]).expect_err("no dir");
        assert!(err.0.contains("nope"), "{err}");
    }

    #[test]
    fn log_path_follows_oslo_log() {
        let s = LogSettings::from_ini(&ini("[DEFAULT]\nlog_dir = /var/log/glance\n")).expect("ok");
        assert_eq!(
            s.path("glance-api"),
            Some(PathBuf::from("/var/log/glance/glance-api.log"))
        );
        let s = LogSettings::from_ini(&ini(
            "[DEFAULT]\nlog_dir = /var/log/glance\nlog_file = api.log\n",
        ))
        .expect("ok");
        assert_eq!(
            s.path("glance-api"),
            Some(PathBuf::from("/var/log/glance/api.log"))
        );
        let s = LogSettings::from_ini(&ini("[DEFAULT]\nlog_file = /tmp/x.log\n")).expect("ok");
        assert_eq!(s.path("glance-api"), Some(PathBuf::from("/tmp/x.log")));
        let s = LogSettings::from_ini(&ini("[DEFAULT]\ndebug = true\n")).expect("ok");
        assert!(s.debug);
        assert_eq!(s.path("glance-api"), None);
        let err = LogSettings::from_ini(&ini("[DEFAULT]\ndebug = maybe\n")).expect_err("bad");
        assert!(err.0.contains("[DEFAULT] debug"), "{err}");
    }

    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("glance-api.log");
        let file = Arc::new(Mutex::new(open_log(&path).expect("open")));
        let handle = LogHandle {
            file: Some((path.clone(), Arc::clone(&file))),
        };
        let mut sink = FileSink {
            file,
            also_stderr: false,
        };
        sink.write_all(b"before\n").expect("write");
        std::fs::rename(&path, dir.path().join("glance-api.log.1")).expect("rotate");
        handle.reopen().expect("reopen");
        sink.write_all(b"after\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "after\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("glance-api.log.1")).expect("read"),
            "before\n"
        );
    }

    #[test]
    fn unwritable_log_file_is_named() {
        let s = LogSettings {
            log_file: Some(PathBuf::from("/nonexistent-dir/glance.log")),
            ..LogSettings::default()
        };
        let err = init_logging("glance-api", &s).expect_err("cannot open");
        assert!(err.0.contains("/nonexistent-dir/glance.log"), "{err}");
    }
}

//! glance-registry's configuration: oslo-style INI files with Glance's section and option
//! names (`glance-registry.conf`), then environment, then command line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::RegistryError;

/// One parsed oslo INI file set: `section → option → values` (repeated keys keep every value;
/// later files override earlier ones option by option). Section names are kept as written,
/// except `DEFAULT`.
#[derive(Debug, Default, Clone)]
pub struct IniSet {
    values: BTreeMap<(String, String), (Vec<String>, PathBuf)>,
}

impl IniSet {
    /// Reads files in order; a later file's value for an option replaces an earlier one's.
    pub fn load(paths: &[PathBuf]) -> Result<Self, RegistryError> {
        let mut set = Self::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|e| {
                RegistryError::Startup(format!("cannot read config file {}: {e}", path.display()))
            })?;
            set.merge(path, &text)?;
        }
        Ok(set)
    }

    /// Parses one file's text: `[section]`, `key = value`, `#`/`;` comments, indented
    /// continuation lines, repeated keys (oslo MultiStrOpt).
    pub fn merge(&mut self, path: &Path, text: &str) -> Result<(), RegistryError> {
        let mut section: Option<String> = None;
        let mut file_values: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut last: Option<(String, String)> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with([' ', '\t'])
                && let Some(v) = last
                    .as_ref()
                    .and_then(|key| file_values.get_mut(key))
                    .and_then(|v| v.last_mut())
            {
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = Some(name.trim().to_string());
                last = None;
                continue;
            }
            let bad =
                |why: &str| RegistryError::Startup(format!("{}:{}: {why}", path.display(), n + 1));
            let Some(sec) = &section else {
                return Err(bad("option outside any [section]"));
            };
            let Some((k, v)) = trimmed.split_once(['=', ':']) else {
                return Err(bad("expected 'option = value'"));
            };
            let key = (sec.clone(), k.trim().to_string());
            file_values
                .entry(key.clone())
                .or_default()
                .push(v.trim().to_string());
            last = Some(key);
        }
        for (k, v) in file_values {
            self.values.insert(k, (v, path.to_path_buf()));
        }
        Ok(())
    }

    /// The last value of an option, if set.
    pub fn get(&self, section: &str, option: &str) -> Option<&str> {
        self.values
            .get(&(section.to_string(), option.to_string()))
            .and_then(|(v, _)| v.last())
            .map(String::as_str)
    }

    /// Parses an option with `parse`, naming file, section and option on failure.
    pub fn parse<T>(
        &self,
        section: &str,
        option: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, RegistryError> {
        let Some((values, file)) = self.values.get(&(section.to_string(), option.to_string()))
        else {
            return Ok(None);
        };
        let Some(raw) = values.last() else {
            return Ok(None);
        };
        parse(raw).map(Some).map_err(|why| {
            RegistryError::Startup(format!(
                "{}: [{section}] {option} = {raw:?} is invalid: {why}",
                file.display()
            ))
        })
    }

    /// Options present in the files but not in `known`, as `[section] option`.
    pub fn unknown(&self, known: &[(&str, &str)], known_sections: &[&str]) -> Vec<String> {
        let known: BTreeSet<(&str, &str)> = known.iter().copied().collect();
        self.values
            .keys()
            .filter(|(s, o)| {
                !known.contains(&(s.as_str(), o.as_str())) && !known_sections.contains(&s.as_str())
            })
            .map(|(s, o)| format!("[{s}] {o}"))
            .collect()
    }
}

/// Parses an oslo boolean.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// Parses an unsigned integer within bounds.
pub fn parse_u32_in(min: u32, max: u32) -> impl Fn(&str) -> Result<u32, String> {
    move |s| {
        s.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("expected an integer from {min} to {max}"))
    }
}

/// The registry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Address to listen on; loopback unless set, since the registry has no auth by default.
    pub bind_host: String,
    /// Port (Glance's registry default 9191).
    pub bind_port: u16,
    /// HTTP worker threads.
    pub workers: usize,
    /// `[database] connection`, SQLAlchemy style.
    pub database_connection: String,
    /// `[database] max_pool_size`.
    pub max_pool_size: u32,
    /// `[database] pool_timeout` in seconds.
    pub pool_timeout_secs: u32,
    /// `limit_param_default`.
    pub limit_param_default: u32,
    /// `api_limit_max`.
    pub api_limit_max: u32,
    /// `debug`: log at debug level.
    pub debug: bool,
    /// Options found in the files that this daemon does not implement (warned about once).
    pub ignored_options: Vec<String>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            bind_host: "127.0.0.1".to_string(),
            bind_port: 9191,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
            database_connection: "sqlite:////var/lib/glance/glance.sqlite".to_string(),
            max_pool_size: 10,
            pool_timeout_secs: 30,
            limit_param_default: 25,
            api_limit_max: 1000,
            debug: false,
            ignored_options: Vec::new(),
        }
    }
}

/// Options this daemon reads.
pub const KNOWN_OPTIONS: &[(&str, &str)] = &[
    ("DEFAULT", "bind_host"),
    ("DEFAULT", "bind_port"),
    ("DEFAULT", "workers"),
    ("DEFAULT", "debug"),
    ("DEFAULT", "limit_param_default"),
    ("DEFAULT", "api_limit_max"),
    ("database", "connection"),
    ("database", "max_pool_size"),
    ("database", "pool_timeout"),
];

impl RegistryConfig {
    /// Builds the config from files (defaults for anything unset), listing the options this
    /// daemon does not use in `ignored_options` for the caller to warn about once logging is up.
    pub fn from_ini(ini: &IniSet) -> Result<Self, RegistryError> {
        let d = Self::default();
        let cfg = Self {
            bind_host: ini
                .get("DEFAULT", "bind_host")
                .map_or(d.bind_host, str::to_string),
            bind_port: ini
                .parse("DEFAULT", "bind_port", |s| {
                    s.parse::<u16>()
                        .map_err(|_| "expected a port number 0-65535".to_string())
                })?
                .unwrap_or(d.bind_port),
            workers: ini
                .parse("DEFAULT", "workers", parse_u32_in(1, 256))?
                .map_or(d.workers, |w| w as usize),
            database_connection: ini
                .get("database", "connection")
                .map_or(d.database_connection, str::to_string),
            max_pool_size: ini
                .parse("database", "max_pool_size", parse_u32_in(1, 1000))?
                .unwrap_or(d.max_pool_size),
            pool_timeout_secs: ini
                .parse("database", "pool_timeout", parse_u32_in(1, 3600))?
                .unwrap_or(d.pool_timeout_secs),
            limit_param_default: ini
                .parse("DEFAULT", "limit_param_default", parse_u32_in(1, 100_000))?
                .unwrap_or(d.limit_param_default),
            api_limit_max: ini
                .parse("DEFAULT", "api_limit_max", parse_u32_in(1, 100_000))?
                .unwrap_or(d.api_limit_max),
            debug: ini
                .parse("DEFAULT", "debug", parse_bool)?
                .unwrap_or(d.debug),
            ignored_options: ini.unknown(
                KNOWN_OPTIONS,
                &[
                    "keystone_authtoken",
                    "paste_deploy",
                    "oslo_policy",
                    "profiler",
                    "oslo_messaging_notifications",
                ],
            ),
        };
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "[DEFAULT]\n# comment\nbind_port = 9292\n\n[database]\nconnection = mysql+pymysql://glance:GLANCE_DBPASS@controller/glance\n\n[keystone_authtoken]\nauth_uri = http://controller:5000\nmemcached_servers = controller:11211\n\n[paste_deploy]\nflavor = keystone\n";

    #[test]
    fn reads_the_install_guide_block() {
        let mut ini = IniSet::default();
        ini.merge(Path::new("glance-registry.conf"), GUIDE).unwrap();
        let cfg = RegistryConfig::from_ini(&ini).unwrap();
        assert_eq!(cfg.bind_port, 9292);
        assert_eq!(
            cfg.database_connection,
            "mysql+pymysql://glance:GLANCE_DBPASS@controller/glance"
        );
        assert_eq!(cfg.bind_host, "127.0.0.1");
    }

    #[test]
    fn later_files_win_and_continuations_join() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("a.conf"),
            "[DEFAULT]\nbind_port = 1\nworkers = 2\n",
        )
        .unwrap();
        ini.merge(
            Path::new("b.conf"),
            "[DEFAULT]\nbind_port = 3\nx = a\n  b\n",
        )
        .unwrap();
        assert_eq!(ini.get("DEFAULT", "bind_port"), Some("3"));
        assert_eq!(ini.get("DEFAULT", "workers"), Some("2"));
        assert_eq!(ini.get("DEFAULT", "x"), Some("a\nb"));
    }

    #[test]
    fn bad_values_name_file_section_and_option() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("/etc/glance/glance-registry.conf"),
            "[DEFAULT]\nbind_port = ninety\n",
        )
        .unwrap();
        let err = RegistryConfig::from_ini(&ini).unwrap_err().to_string();
        assert!(err.contains("/etc/glance/glance-registry.conf"), "{err}");
        assert!(err.contains("[DEFAULT] bind_port"), "{err}");
        let mut ini = IniSet::default();
        ini.merge(Path::new("r.conf"), "[database]\nmax_pool_size = 0\n")
            .unwrap();
        assert!(RegistryConfig::from_ini(&ini).is_err());
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let mut ini = IniSet::default();
        let err = ini
            .merge(Path::new("x.conf"), "bind_port = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.conf:1"), "{err}");
        let err = ini
            .merge(Path::new("y.conf"), "[DEFAULT]\njunk\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("y.conf:2"), "{err}");
    }

    #[test]
    fn unknown_options_are_listed_not_fatal() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("r.conf"),
            "[DEFAULT]\nfrobnicate = 1\n[keystone_authtoken]\nauth_url = x\n",
        )
        .unwrap();
        assert_eq!(
            ini.unknown(KNOWN_OPTIONS, &["keystone_authtoken"]),
            vec!["[DEFAULT] frobnicate"]
        );
        assert!(RegistryConfig::from_ini(&ini).is_ok());
    }
}

//! glance-registry's configuration: oslo-style INI files with Glance's section and option
//! names (`glance-registry.conf`), then environment, then command line.

use glance_auth::{Flavor, KeystoneConfig};
use glance_config::ConfigError;
use glance_config::daemon::{LOG_OPTIONS, LogSettings};
pub use glance_config::{IniSet, parse_bool, parse_u32_in};
#[cfg(test)]
use std::path::Path;

use crate::cache::CacheOptions;
use crate::error::RegistryError;

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
    /// `[database] statement_timeout` (ours), in seconds: the longest a statement may run
    /// before the database stops it and the request gets a 503; 0 sets no limit.
    pub statement_timeout_secs: u32,
    /// `limit_param_default`.
    pub limit_param_default: u32,
    /// `api_limit_max`.
    pub api_limit_max: u32,
    /// `debug`, `log_file`, `log_dir`, `use_stderr`.
    pub log: LogSettings,
    /// `graceful_shutdown_timeout`: on SIGTERM, how long in-flight requests may take to finish.
    pub graceful_shutdown_timeout_secs: u32,
    /// `[paste_deploy] flavor`: none (loopback callers only), keystone, trusted-auth.
    pub flavor: Flavor,
    /// `[keystone_authtoken]`, with `flavor = keystone`.
    pub keystone: Option<KeystoneConfig>,
    /// `registry_shared_secret` (ours): what glance-api must send in `trusted-auth` mode.
    pub shared_secret: Option<String>,
    /// `record_cache_size` (MiB) and `record_cache_max_age` (s), ours: the record cache.
    pub record_cache: CacheOptions,
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
            statement_timeout_secs: 30,
            limit_param_default: 25,
            api_limit_max: 1000,
            log: LogSettings::default(),
            graceful_shutdown_timeout_secs: 30,
            flavor: Flavor::None,
            keystone: None,
            shared_secret: None,
            record_cache: CacheOptions {
                max_bytes: 16 << 20,
                max_age: std::time::Duration::from_secs(60),
            },
            ignored_options: Vec::new(),
        }
    }
}

/// Options this daemon reads.
pub const KNOWN_OPTIONS: &[(&str, &str)] = &[
    ("DEFAULT", "bind_host"),
    ("DEFAULT", "bind_port"),
    ("DEFAULT", "workers"),
    ("DEFAULT", "graceful_shutdown_timeout"),
    ("DEFAULT", "registry_shared_secret"),
    ("DEFAULT", "limit_param_default"),
    ("DEFAULT", "api_limit_max"),
    ("DEFAULT", "record_cache_size"),
    ("DEFAULT", "record_cache_max_age"),
    ("database", "connection"),
    ("database", "max_pool_size"),
    ("database", "pool_timeout"),
    ("database", "statement_timeout"),
];

impl RegistryConfig {
    /// `[database] statement_timeout` as the database layer takes it: `None` for 0 (no limit).
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        (self.statement_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.statement_timeout_secs)))
    }

    /// Builds the config from files (defaults for anything unset), listing the options this
    /// daemon does not use in `ignored_options` for the caller to warn about once logging is up.
    pub fn from_ini(ini: &IniSet) -> Result<Self, RegistryError> {
        let d = Self::default();
        let flavor = Flavor::from_ini(ini)?;
        let keystone = if flavor == Flavor::Keystone {
            Some(KeystoneConfig::from_ini(ini)?)
        } else {
            None
        };
        let shared_secret = ini
            .get("DEFAULT", "registry_shared_secret")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if flavor == Flavor::TrustedAuth && shared_secret.is_none() {
            return Err(ConfigError(
                "[paste_deploy] flavor = trusted-auth needs [DEFAULT] registry_shared_secret \
                 (the same value in glance-api.conf)"
                    .to_string(),
            )
            .into());
        }
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
            statement_timeout_secs: ini
                .parse("database", "statement_timeout", parse_u32_in(0, 86_400))?
                .unwrap_or(d.statement_timeout_secs),
            limit_param_default: ini
                .parse("DEFAULT", "limit_param_default", parse_u32_in(1, 100_000))?
                .unwrap_or(d.limit_param_default),
            api_limit_max: ini
                .parse("DEFAULT", "api_limit_max", parse_u32_in(1, 100_000))?
                .unwrap_or(d.api_limit_max),
            record_cache: CacheOptions {
                max_bytes: ini
                    .parse("DEFAULT", "record_cache_size", parse_u32_in(0, 65_536))?
                    .map_or(d.record_cache.max_bytes, |mib| (mib as usize) << 20),
                max_age: ini
                    .parse("DEFAULT", "record_cache_max_age", parse_u32_in(0, 86_400))?
                    .map_or(d.record_cache.max_age, |s| {
                        std::time::Duration::from_secs(u64::from(s))
                    }),
            },
            log: LogSettings::from_ini(ini)?,
            flavor,
            keystone,
            shared_secret,
            graceful_shutdown_timeout_secs: ini
                .parse(
                    "DEFAULT",
                    "graceful_shutdown_timeout",
                    parse_u32_in(0, 86_400),
                )?
                .unwrap_or(d.graceful_shutdown_timeout_secs),
            ignored_options: ini.unknown(
                &KNOWN_OPTIONS
                    .iter()
                    .chain(LOG_OPTIONS)
                    .copied()
                    .collect::<Vec<_>>(),
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

    const GUIDE: &str = "[DEFAULT]\n# comment\nbind_port = 9292\n\n[database]\nconnection = mysql+pymysql://glance:GLANCE_DBPASS@controller/glance\n\n[keystone_authtoken]\nauth_uri = http://controller:5000\nauth_url = http://controller:5000\nmemcached_servers = controller:11211\nauth_type = password\nproject_domain_name = Default\nuser_domain_name = Default\nproject_name = service\nusername = glance\npassword = GLANCE_PASS\n\n[paste_deploy]\nflavor = keystone\n";

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
        assert_eq!(cfg.flavor, Flavor::Keystone);
        let k = cfg.keystone.expect("keystone settings");
        assert_eq!(
            (k.username.as_str(), k.project_name.as_str()),
            ("glance", "service")
        );
        assert_eq!(k.ignored, vec!["[keystone_authtoken] memcached_servers"]);
    }

    #[test]
    fn trusted_auth_needs_the_shared_secret() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("r.conf"),
            "[paste_deploy]\nflavor = trusted-auth\n",
        )
        .unwrap();
        let err = RegistryConfig::from_ini(&ini).unwrap_err().to_string();
        assert!(err.contains("registry_shared_secret"), "{err}");
        ini.merge(
            Path::new("s.conf"),
            "[DEFAULT]\nregistry_shared_secret = s3cret\n",
        )
        .unwrap();
        let cfg = RegistryConfig::from_ini(&ini).unwrap();
        assert_eq!(cfg.shared_secret.as_deref(), Some("s3cret"));
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
    fn statement_timeout_option() {
        let d = RegistryConfig::from_ini(&IniSet::default()).unwrap();
        assert_eq!(
            d.statement_timeout(),
            Some(std::time::Duration::from_secs(30))
        );
        let parse = |text: &str| {
            let mut ini = IniSet::default();
            ini.merge(Path::new("r.conf"), text).unwrap();
            RegistryConfig::from_ini(&ini)
        };
        let cfg = parse("[database]\nstatement_timeout = 5\n").unwrap();
        assert_eq!(
            cfg.statement_timeout(),
            Some(std::time::Duration::from_secs(5))
        );
        assert!(cfg.ignored_options.is_empty(), "{:?}", cfg.ignored_options);
        let off = parse("[database]\nstatement_timeout = 0\n").unwrap();
        assert_eq!(off.statement_timeout(), None);
        let err = parse("[database]\nstatement_timeout = soon\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[database] statement_timeout"), "{err}");
    }

    #[test]
    fn record_cache_options() {
        let d = RegistryConfig::from_ini(&IniSet::default()).unwrap();
        assert_eq!(
            (d.record_cache.max_bytes, d.record_cache.max_age.as_secs()),
            (16 << 20, 60)
        );
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("r.conf"),
            "[DEFAULT]\nrecord_cache_size = 0\nrecord_cache_max_age = 5\n",
        )
        .unwrap();
        let cfg = RegistryConfig::from_ini(&ini).unwrap();
        assert_eq!(cfg.record_cache.max_bytes, 0);
        assert_eq!(cfg.record_cache.max_age.as_secs(), 5);
        assert!(cfg.ignored_options.is_empty(), "{:?}", cfg.ignored_options);
        let mut ini = IniSet::default();
        ini.merge(Path::new("r.conf"), "[DEFAULT]\nrecord_cache_size = lots\n")
            .unwrap();
        let err = RegistryConfig::from_ini(&ini).unwrap_err().to_string();
        assert!(err.contains("[DEFAULT] record_cache_size"), "{err}");
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

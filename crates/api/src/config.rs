//! glance-api's configuration: `glance-api.conf` with Glance's section and option names.

use std::path::PathBuf;
use std::time::Duration;

use glance_auth::{Flavor, KeystoneConfig};
use glance_config::daemon::{LOG_OPTIONS, LogSettings};
use glance_config::{ConfigError, IniSet, parse_bool, parse_list, parse_u32_in};
use glance_model::format::{DEFAULT_CONTAINER_FORMATS, DEFAULT_DISK_FORMATS};
use glance_model::quota::{self, DEFAULT_IMAGE_QUOTA, ImageQuotas};
use glance_store::{HashAlgo, StoresConfig};

use crate::cors::{CORS_OPTIONS, CorsConfig};
use crate::http1::KeepAlive;
use crate::protections::RuleFormat;

/// How callers are identified (`[paste_deploy] flavor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No flavor: every request is an unauthenticated admin, exactly as Glance.
    None,
    /// `keystone`: `X-Auth-Token` validated against Keystone (`[keystone_authtoken]`).
    Keystone,
    /// `trusted-auth`: identity from `X-User-Id`, `X-Project-Id`/`X-Tenant-Id` and `X-Roles`
    /// headers set by a trusted front end (Glance's trusted-auth pipeline).
    TrustedHeaders,
}

/// glance-api's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address to listen on.
    pub bind_host: String,
    /// Port (9292).
    pub bind_port: u16,
    /// HTTP worker threads.
    pub workers: usize,
    /// Base URL of glance-registry (from `registry_host`, `registry_port`).
    pub registry_url: String,
    /// `[paste_deploy] flavor`.
    pub auth: AuthMode,
    /// `image_size_cap` in bytes (Glance: 1 TiB).
    pub image_size_cap: u64,
    /// `user_storage_quota` in bytes; 0 = unlimited.
    pub user_storage_quota: u64,
    /// `[DEFAULT] use_keystone_limits` with `[oslo_limit]`: Keystone's unified limits.
    pub keystone_limits: Option<crate::limits::LimitsConfig>,
    /// `image_member_quota`, `image_property_quota`, `image_tag_quota` (Glance: 128 each,
    /// negative unlimited): sent to glance-registry, which enforces them.
    pub image_quotas: ImageQuotas,
    /// `hashing_algorithm`.
    pub hashing_algorithm: HashAlgo,
    /// `show_image_direct_url`.
    pub show_image_direct_url: bool,
    /// `show_multiple_locations` (default false; deprecated in Glance, kept for Nova and
    /// Cinder): images show `locations` and PATCH may edit them.
    pub show_multiple_locations: bool,
    /// `image_location_quota` (default 10): most locations one image may have (413 past it).
    pub image_location_quota: u32,
    /// `do_secure_hash` (default true): a location added by `POST /v2/images/{id}/locations`
    /// has its data read and hashed before the image becomes active.
    pub do_secure_hash: bool,
    /// `limit_param_default`.
    pub limit_param_default: u32,
    /// `api_limit_max`.
    pub api_limit_max: u32,
    /// `[image_format] disk_formats`.
    pub disk_formats: Vec<String>,
    /// `[image_format] container_formats`.
    pub container_formats: Vec<String>,
    /// `[image_format] require_image_format_match` (default true), `vmdk_allowed_types`
    /// (default streamOptimized, monolithicSparse; empty refuses every VMDK) and
    /// `gpt_safety_checks_nonfatal` (default empty: every partition-table check is fatal):
    /// how uploaded bytes are judged against their `disk_format` (glance-inspect).
    pub image_format_rules: glance_inspect::Rules,
    /// `public_endpoint`: base URL in links and the versions document.
    pub public_endpoint: Option<String>,
    /// `upload_lease_ttl` (ours, seconds): how long an upload's lease lives without a
    /// heartbeat; after that another node may return the image to `queued`.
    pub upload_lease_ttl_secs: u32,
    /// `node_id` (ours): this node's name in upload leases (default host:port).
    pub node_id: String,
    /// `debug`, `log_file`, `log_dir`, `use_stderr`.
    pub log: LogSettings,
    /// `graceful_shutdown_timeout`: on SIGTERM, how long in-flight requests may take to finish.
    pub graceful_shutdown_timeout_secs: u32,
    /// `http_keepalive` and `client_socket_timeout` (Glance: true, 900 s; 0 waits for ever):
    /// whether a client's connection stays open after a response, and how long a connection
    /// waits for a request.
    pub client_keep_alive: KeepAlive,
    /// `[healthcheck] disable_by_file_path`: while this file exists `/healthcheck` answers
    /// 503 `DISABLED BY FILE`, so a load balancer drains the node.
    pub healthcheck_disable_file: Option<PathBuf>,
    /// `[healthcheck] detailed`: JSON health answers carry each check.
    pub healthcheck_detailed: bool,
    /// `[keystone_authtoken]`, with `flavor = keystone`.
    pub keystone: Option<KeystoneConfig>,
    /// `[oslo_policy] policy_file`, when it exists (Glance's defaults otherwise).
    pub policy_file: Option<PathBuf>,
    /// `[oslo_policy] enforce_new_defaults` (default true). False, as in Glance 33, each image
    /// rule the policy file does not set becomes its secure-RBAC default *or* its deprecated
    /// one (`rule:default`, which is `""`): the rules open up, and only the ownership rules
    /// (`glance_model::ownership`) still hold.
    pub enforce_new_defaults: bool,
    /// `[oslo_policy] enforce_scope` (default true), read only to warn when it is false: Glance 33
    /// (oslo.policy 6) no longer has the option and always refuses tokens that are not
    /// project-scoped on image calls; so does this daemon.
    pub enforce_scope: bool,
    /// `registry_shared_secret` (ours): sent to glance-registry, whose `trusted-auth` mode
    /// requires it.
    pub registry_secret: Option<String>,
    /// Stores.
    pub stores: StoresConfig,
    /// `property_protection_file`, resolved as `policy_file` is; unset, no property is
    /// protected (see [`crate::protections`]).
    pub property_protection_file: Option<PathBuf>,
    /// `property_protection_rule_format` (default `roles`).
    pub property_protection_rule_format: RuleFormat,
    /// `[cors]`, when it allows an origin (see [`crate::cors`]).
    pub cors: Option<CorsConfig>,
    /// Interoperable import's options (issue 30): see [`ImportOptions`].
    pub import: ImportOptions,
    /// Options found in the files that this daemon does not implement.
    pub ignored_options: Vec<String>,
    /// Configured features of Glance's that this daemon does not implement yet (a section or
    /// a paste flavor), one sentence each; warned about once at start-up.
    pub unimplemented: Vec<String>,
}

/// Sections whose options are read without error but that nothing implements yet.
const UNIMPLEMENTED_SECTIONS: &[(&str, &str)] = &[
    ("oslo_messaging_notifications", "no notifications are sent"),
    ("profiler", "no requests are profiled"),
];

/// The configured features that are accepted and ignored: sections of
/// [`UNIMPLEMENTED_SECTIONS`] that hold an option, and the `+caching` / `+cachemanagement`
/// paste flavors (there is no image cache yet, so nothing is cached).
pub fn unimplemented_features(ini: &IniSet) -> Vec<String> {
    let mut found: Vec<String> = UNIMPLEMENTED_SECTIONS
        .iter()
        .filter(|(section, _)| !ini.options(section).is_empty())
        .map(|(section, effect)| format!("[{section}] is not implemented: {effect}"))
        .collect();
    if let Some(flavor) = ini.get("paste_deploy", "flavor") {
        for part in ["caching", "cachemanagement"] {
            if flavor.split('+').skip(1).any(|p| p.trim() == part) {
                found.push(format!(
                    "[paste_deploy] flavor {flavor:?}: +{part} is not implemented (there is no \
                     image cache yet), so nothing is cached"
                ));
            }
        }
    }
    found
}

/// Options this daemon reads outside the store sections.
pub const KNOWN_OPTIONS: &[(&str, &str)] = &[
    ("DEFAULT", "bind_host"),
    ("DEFAULT", "bind_port"),
    ("DEFAULT", "workers"),
    ("DEFAULT", "registry_host"),
    ("DEFAULT", "graceful_shutdown_timeout"),
    ("DEFAULT", "http_keepalive"),
    ("DEFAULT", "client_socket_timeout"),
    ("healthcheck", "disable_by_file_path"),
    ("healthcheck", "backends"),
    ("healthcheck", "detailed"),
    ("healthcheck", "path"),
    ("DEFAULT", "registry_shared_secret"),
    ("oslo_policy", "policy_file"),
    ("oslo_policy", "enforce_new_defaults"),
    ("oslo_policy", "enforce_scope"),
    ("DEFAULT", "registry_port"),
    ("DEFAULT", "image_size_cap"),
    ("DEFAULT", "user_storage_quota"),
    ("DEFAULT", "image_member_quota"),
    ("DEFAULT", "image_property_quota"),
    ("DEFAULT", "image_tag_quota"),
    ("DEFAULT", "use_keystone_limits"),
    ("DEFAULT", "hashing_algorithm"),
    ("DEFAULT", "show_image_direct_url"),
    ("DEFAULT", "show_multiple_locations"),
    ("DEFAULT", "image_location_quota"),
    ("DEFAULT", "do_secure_hash"),
    ("DEFAULT", "limit_param_default"),
    ("DEFAULT", "api_limit_max"),
    ("DEFAULT", "public_endpoint"),
    ("DEFAULT", "upload_lease_ttl"),
    ("DEFAULT", "node_id"),
    ("DEFAULT", "enabled_backends"),
    ("DEFAULT", "property_protection_file"),
    ("DEFAULT", "property_protection_rule_format"),
    ("paste_deploy", "flavor"),
    ("image_format", "disk_formats"),
    ("image_format", "container_formats"),
    ("image_format", "require_image_format_match"),
    ("image_format", "vmdk_allowed_types"),
    ("image_format", "gpt_safety_checks_nonfatal"),
    // Interoperable import (issue 30): `ImportOptions`.
    ("DEFAULT", "node_staging_uri"),
    ("DEFAULT", "enabled_import_methods"),
    ("DEFAULT", "worker_self_reference_url"),
    ("wsgi", "task_pool_threads"),
    ("import_filtering_opts", "allowed_schemes"),
    ("import_filtering_opts", "disallowed_schemes"),
    ("import_filtering_opts", "allowed_hosts"),
    ("import_filtering_opts", "disallowed_hosts"),
    ("import_filtering_opts", "allowed_ports"),
    ("import_filtering_opts", "disallowed_ports"),
];

/// `[oslo_policy] policy_file`: as given (relative names are looked up in /etc/glance/), which
/// must exist; unset, /etc/glance/policy.yaml or policy.json when present.
pub fn policy_file(ini: &IniSet) -> Result<Option<PathBuf>, ConfigError> {
    let resolve = |name: &str| {
        let p = PathBuf::from(name);
        if p.is_absolute() {
            p
        } else {
            ini.source("oslo_policy", "policy_file")
                .and_then(|f| f.parent())
                .map(|d| d.join(&p))
                .filter(|c| c.exists())
                .unwrap_or_else(|| PathBuf::from("/etc/glance").join(p))
        }
    };
    match ini.get("oslo_policy", "policy_file").map(str::trim) {
        Some(name) if !name.is_empty() => {
            let path = resolve(name);
            if path.is_file() {
                Ok(Some(path))
            } else if name == "policy.yaml" || name == "policy.json" {
                // Glance's default name: a missing file means the defaults.
                Ok(None)
            } else {
                Err(ConfigError(format!(
                    "[oslo_policy] policy_file = {name}: {} does not exist",
                    path.display()
                )))
            }
        }
        _ => Ok(["/etc/glance/policy.yaml", "/etc/glance/policy.json"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())),
    }
}

/// `property_protection_file`: an absolute path, or a name looked up beside the file that
/// sets it, then in /etc/glance/ (as Glance finds it among its config directories). It must
/// exist: protections an operator asked for are never silently dropped.
pub fn property_protection_file(ini: &IniSet) -> Result<Option<PathBuf>, ConfigError> {
    let Some(name) = ini
        .get("DEFAULT", "property_protection_file")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    let given = PathBuf::from(name);
    let candidates: Vec<PathBuf> = if given.is_absolute() {
        vec![given]
    } else {
        ini.source("DEFAULT", "property_protection_file")
            .and_then(|f| f.parent())
            .map(|d| d.join(&given))
            .into_iter()
            .chain([PathBuf::from("/etc/glance").join(&given)])
            .collect()
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            ConfigError(format!(
                "[DEFAULT] property_protection_file = {name}: no such file (looked at {})",
                tried.join(", ")
            ))
        })
}

/// The `[image_format]` options of the upload rule; a partition-table check other than `mbr`
/// or `gpt` in `gpt_safety_checks_nonfatal` stops start-up.
fn image_format_rules(ini: &IniSet) -> Result<glance_inspect::Rules, ConfigError> {
    let mut rules = glance_inspect::Rules::default();
    if let Some(v) = ini.parse("image_format", "require_image_format_match", parse_bool)? {
        rules.require_image_format_match = v;
    }
    if let Some(v) = ini.get("image_format", "vmdk_allowed_types") {
        rules.vmdk_allowed_types = parse_list(v);
    }
    if let Some(v) = ini.parse("image_format", "gpt_safety_checks_nonfatal", |s| {
        let list = parse_list(s);
        match list.iter().find(|c| !matches!(c.as_str(), "mbr" | "gpt")) {
            Some(bad) => Err(format!("unknown check {bad:?}; the checks are mbr and gpt")),
            None => Ok(list),
        }
    })? {
        rules.gpt_safety_checks_nonfatal = v;
    }
    Ok(rules)
}

/// `image_member_quota`, `image_property_quota` and `image_tag_quota`: whole numbers, a
/// negative one unlimited (as in Glance), each 128 when unset.
fn image_quotas(ini: &IniSet) -> Result<ImageQuotas, ConfigError> {
    let one = |option: &str| -> Result<Option<u64>, ConfigError> {
        let n = ini
            .parse("DEFAULT", option, |s| {
                s.trim().parse::<i64>().map_err(|_| {
                    "expected a whole number of items per image (negative: unlimited)".to_string()
                })
            })?
            .unwrap_or(DEFAULT_IMAGE_QUOTA);
        Ok(quota::limit(n))
    };
    Ok(ImageQuotas {
        members: one("image_member_quota")?,
        properties: one("image_property_quota")?,
        tags: one("image_tag_quota")?,
    })
}

fn known_options() -> Vec<(&'static str, &'static str)> {
    KNOWN_OPTIONS
        .iter()
        .chain(LOG_OPTIONS)
        .chain(CORS_OPTIONS)
        .copied()
        .collect()
}

/// Parses a size as Glance writes it: bytes, or a number with B, KB, MB, GB or TB (powers of 1024).
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let s = raw.trim().to_ascii_uppercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a size such as 1073741824, 10GB or 500MB".to_string())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KB, MB, GB or TB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| "size is too large".to_string())
}

impl ApiConfig {
    /// Builds the config from files, with Glance's defaults for anything unset.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        let auth = match Flavor::from_ini(ini)? {
            Flavor::None => AuthMode::None,
            Flavor::Keystone => AuthMode::Keystone,
            Flavor::TrustedAuth => AuthMode::TrustedHeaders,
        };
        let keystone = if auth == AuthMode::Keystone {
            Some(KeystoneConfig::from_ini(ini)?)
        } else {
            None
        };
        let bind_host = ini.get("DEFAULT", "bind_host").map_or_else(
            // Without authentication every caller is admin: stay on loopback unless told.
            || {
                if auth == AuthMode::None {
                    "127.0.0.1".to_string()
                } else {
                    "0.0.0.0".to_string()
                }
            },
            str::to_string,
        );
        let bind_port = ini
            .parse("DEFAULT", "bind_port", |s| {
                s.parse::<u16>()
                    .map_err(|_| "expected a port number 0-65535".to_string())
            })?
            .unwrap_or(9292);
        let registry_host = ini.get("DEFAULT", "registry_host").unwrap_or("127.0.0.1");
        let registry_host = if registry_host == "0.0.0.0" {
            "127.0.0.1"
        } else {
            registry_host
        };
        let registry_port = ini
            .parse("DEFAULT", "registry_port", |s| {
                s.parse::<u16>()
                    .map_err(|_| "expected a port number 0-65535".to_string())
            })?
            .unwrap_or(9191);
        let formats = |opt: &str, default: &[&str]| -> Vec<String> {
            ini.get("image_format", opt).map_or_else(
                || default.iter().map(|s| (*s).to_string()).collect(),
                parse_list,
            )
        };
        let stores = StoresConfig::from_ini(ini)?;
        let mut sections: Vec<String> = stores.sections();
        sections.extend(
            [
                "keystone_authtoken",
                "oslo_policy",
                "profiler",
                "oslo_messaging_notifications",
                "taskflow_executor",
                "oslo_middleware",
                "wsgi",
                "import_filtering_opts",
                "oslo_limit",
            ]
            .map(String::from),
        );
        let section_refs: Vec<&str> = sections.iter().map(String::as_str).collect();
        Ok(Self {
            bind_host,
            bind_port,
            workers: ini
                .parse("DEFAULT", "workers", parse_u32_in(1, 256))?
                .map_or_else(
                    || std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
                    |w| w as usize,
                ),
            registry_url: format!("http://{registry_host}:{registry_port}"),
            auth,
            image_size_cap: ini
                .parse("DEFAULT", "image_size_cap", parse_size)?
                .unwrap_or(1 << 40),
            user_storage_quota: ini
                .parse("DEFAULT", "user_storage_quota", parse_size)?
                .unwrap_or(0),
            image_quotas: image_quotas(ini)?,
            keystone_limits: crate::limits::LimitsConfig::from_ini(ini)?,
            hashing_algorithm: ini
                .parse("DEFAULT", "hashing_algorithm", HashAlgo::parse)?
                .unwrap_or_default(),
            show_image_direct_url: ini
                .parse("DEFAULT", "show_image_direct_url", parse_bool)?
                .unwrap_or(false),
            show_multiple_locations: ini
                .parse("DEFAULT", "show_multiple_locations", parse_bool)?
                .unwrap_or(false),
            image_location_quota: ini
                .parse(
                    "DEFAULT",
                    "image_location_quota",
                    parse_u32_in(0, 1_000_000),
                )?
                .unwrap_or(10),
            do_secure_hash: ini
                .parse("DEFAULT", "do_secure_hash", parse_bool)?
                .unwrap_or(true),
            limit_param_default: ini
                .parse("DEFAULT", "limit_param_default", parse_u32_in(1, 100_000))?
                .unwrap_or(25),
            api_limit_max: ini
                .parse("DEFAULT", "api_limit_max", parse_u32_in(1, 100_000))?
                .unwrap_or(1000),
            disk_formats: formats("disk_formats", DEFAULT_DISK_FORMATS),
            container_formats: formats("container_formats", DEFAULT_CONTAINER_FORMATS),
            image_format_rules: image_format_rules(ini)?,
            public_endpoint: ini
                .get("DEFAULT", "public_endpoint")
                .map(|s| s.trim_end_matches('/').to_string()),
            upload_lease_ttl_secs: ini
                .parse("DEFAULT", "upload_lease_ttl", parse_u32_in(2, 86_400))?
                .unwrap_or(60),
            node_id: ini
                .get("DEFAULT", "node_id")
                .map_or_else(|| default_node_id(bind_port), str::to_string),
            log: LogSettings::from_ini(ini)?,
            graceful_shutdown_timeout_secs: ini
                .parse(
                    "DEFAULT",
                    "graceful_shutdown_timeout",
                    parse_u32_in(0, 86_400),
                )?
                .unwrap_or(30),
            client_keep_alive: KeepAlive {
                enabled: ini
                    .parse("DEFAULT", "http_keepalive", parse_bool)?
                    .unwrap_or(true),
                idle: match ini
                    .parse(
                        "DEFAULT",
                        "client_socket_timeout",
                        parse_u32_in(0, u32::MAX),
                    )?
                    .unwrap_or(900)
                {
                    0 => None,
                    secs => Some(Duration::from_secs(secs.into())),
                },
            },
            healthcheck_disable_file: match ini.get("healthcheck", "disable_by_file_path") {
                Some("") => None,
                Some(p) => Some(PathBuf::from(p)),
                // Glance's paste pipeline: backends = disable_by_file at this path.
                None => Some(PathBuf::from("/etc/glance/healthcheck_disable")),
            },
            healthcheck_detailed: ini
                .parse("healthcheck", "detailed", parse_bool)?
                .unwrap_or(false),
            ignored_options: {
                let mut unknown = ini.unknown(&known_options(), &section_refs);
                unknown.extend(
                    ini.options("oslo_limit")
                        .into_iter()
                        .filter(|o| !crate::limits::OSLO_LIMIT_OPTIONS.contains(&o.as_str()))
                        .map(|o| format!("[oslo_limit] {o}")),
                );
                unknown
            },
            import: ImportOptions::from_ini(ini)?,
            unimplemented: unimplemented_features(ini),
            cors: CorsConfig::from_ini(ini)?,
            property_protection_file: property_protection_file(ini)?,
            property_protection_rule_format: ini
                .parse(
                    "DEFAULT",
                    "property_protection_rule_format",
                    RuleFormat::parse,
                )?
                .unwrap_or_default(),
            keystone,
            policy_file: policy_file(ini)?,
            enforce_new_defaults: ini
                .parse("oslo_policy", "enforce_new_defaults", parse_bool)?
                .unwrap_or(true),
            enforce_scope: ini
                .parse("oslo_policy", "enforce_scope", parse_bool)?
                .unwrap_or(true),
            registry_secret: ini
                .get("DEFAULT", "registry_shared_secret")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            stores,
        })
    }
}

fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "glance-api".to_string());
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Result<ApiConfig, ConfigError> {
        let mut ini = IniSet::default();
        ini.merge(Path::new("glance-api.conf"), text)?;
        ApiConfig::from_ini(&ini)
    }

    #[test]
    fn image_format_options() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.image_format_rules, glance_inspect::Rules::default());
        assert!(c.image_format_rules.require_image_format_match);
        let c = cfg("[image_format]\nrequire_image_format_match = false\nvmdk_allowed_types =\ngpt_safety_checks_nonfatal = mbr, gpt\n").unwrap();
        assert!(!c.image_format_rules.require_image_format_match);
        assert!(c.image_format_rules.vmdk_allowed_types.is_empty());
        assert_eq!(
            c.image_format_rules.gpt_safety_checks_nonfatal,
            ["mbr", "gpt"]
        );
        let e = cfg("[image_format]\ngpt_safety_checks_nonfatal = mbr,bogus\n").unwrap_err();
        assert!(e.to_string().contains("gpt_safety_checks_nonfatal"), "{e}");
        assert!(cfg("[image_format]\nrequire_image_format_match = maybe\n").is_err());
    }

    #[test]
    fn defaults_are_glances() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.bind_port, 9292);
        assert_eq!(c.bind_host, "127.0.0.1");
        assert_eq!(c.registry_url, "http://127.0.0.1:9191");
        assert_eq!(c.image_size_cap, 1 << 40);
        assert_eq!(c.user_storage_quota, 0);
        assert_eq!(c.limit_param_default, 25);
        assert_eq!(c.hashing_algorithm, HashAlgo::Sha512);
        assert!(c.disk_formats.contains(&"qcow2".to_string()));
        assert_eq!(
            c.client_keep_alive,
            KeepAlive {
                enabled: true,
                idle: Some(Duration::from_secs(900))
            }
        );
    }

    #[test]
    fn client_connections_follow_glances_keepalive_options() {
        let c = cfg("[DEFAULT]\nclient_socket_timeout = 30\n").unwrap();
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(
            c.client_keep_alive,
            KeepAlive {
                enabled: true,
                idle: thirty
            }
        );
        let c = cfg("[DEFAULT]\nclient_socket_timeout = 0\n").unwrap();
        assert_eq!(
            c.client_keep_alive,
            KeepAlive {
                enabled: true,
                idle: None
            }
        );
        let c = cfg("[DEFAULT]\nhttp_keepalive = False\nclient_socket_timeout = 30\n").unwrap();
        assert_eq!(
            c.client_keep_alive,
            KeepAlive {
                enabled: false,
                idle: thirty
            }
        );
        assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
        let err = cfg("[DEFAULT]\nclient_socket_timeout = -1\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[DEFAULT] client_socket_timeout"), "{err}");
        let err = cfg("[DEFAULT]\nhttp_keepalive = sometimes\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[DEFAULT] http_keepalive"), "{err}");
    }

    #[test]
    fn oslo_policy_switches_default_on_and_bad_values_stop_start_up() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert!(c.enforce_new_defaults && c.enforce_scope);
        let c =
            cfg("[oslo_policy]\nenforce_new_defaults = False\nenforce_scope = false\n").unwrap();
        assert!(!c.enforce_new_defaults && !c.enforce_scope);
        assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
        let err = cfg("[oslo_policy]\nenforce_new_defaults = maybe\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[oslo_policy] enforce_new_defaults"), "{err}");
    }

    #[test]
    fn location_options_have_glance_defaults_and_are_read() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert!(!c.show_multiple_locations && c.do_secure_hash);
        assert_eq!(c.image_location_quota, 10);
        let c = cfg(
            "[DEFAULT]\nshow_multiple_locations = true\nimage_location_quota = 3\ndo_secure_hash = false\n",
        )
        .unwrap();
        assert!(c.show_multiple_locations && !c.do_secure_hash);
        assert_eq!(c.image_location_quota, 3);
        assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
        let err = cfg("[DEFAULT]\nimage_location_quota = many\n")
            .unwrap_err()
            .0;
        assert!(err.contains("image_location_quota"), "{err}");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_size("5 mb").unwrap(), 5 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3PB").is_err());
    }

    #[test]
    fn unimplemented_features_are_named() {
        let c = cfg(
            "[cors]\nallowed_origin = https://a.example\n[profiler]\nenabled = true\n\
             [oslo_messaging_notifications]\ndriver = messagingv2\n\
             [paste_deploy]\nflavor = keystone+caching\n\
             [keystone_authtoken]\nauth_url = http://k:5000/v3\nusername = glance\npassword = p\nproject_name = service\n",
        )
        .unwrap();
        let names = c.unimplemented.join("\n");
        for needle in ["[profiler]", "[oslo_messaging_notifications]", "+caching"] {
            assert!(names.contains(needle), "{needle} missing from {names}");
        }
        assert_eq!(c.unimplemented.len(), 3, "{names}");
        // [cors] is implemented now: read, not warned about, and its typos are named.
        assert!(!names.contains("[cors]"), "{names}");
        assert!(c.cors.is_some());
        let c = cfg("[cors]\nallowed_origin = *\nallowed_origins = *\n").unwrap();
        assert_eq!(c.ignored_options, ["[cors] allowed_origins"]);
        let c = cfg("[paste_deploy]\nflavor = trusted-auth+cachemanagement\n").unwrap();
        assert_eq!(c.unimplemented.len(), 1, "{:?}", c.unimplemented);
        assert!(c.unimplemented[0].contains("+cachemanagement"));
        assert!(cfg("").unwrap().unimplemented.is_empty());
    }

    #[test]
    fn property_protection_options() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.property_protection_file, None);
        assert_eq!(c.property_protection_rule_format, RuleFormat::Roles);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pp.conf");
        std::fs::write(&file, "").unwrap();
        let c = cfg(&format!(
            "[DEFAULT]\nproperty_protection_file = {}\nproperty_protection_rule_format = Policies\n",
            file.display()
        ))
        .unwrap();
        assert_eq!(c.property_protection_file.as_deref(), Some(file.as_path()));
        assert_eq!(c.property_protection_rule_format, RuleFormat::Policies);
        assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
        // Relative: beside the config file that names it.
        let mut ini = IniSet::default();
        ini.merge(
            &dir.path().join("glance-api.conf"),
            "[DEFAULT]\nproperty_protection_file = pp.conf\n",
        )
        .unwrap();
        let c = ApiConfig::from_ini(&ini).unwrap();
        assert_eq!(c.property_protection_file.as_deref(), Some(file.as_path()));
        let err = cfg("[DEFAULT]\nproperty_protection_file = /nonexistent/pp.conf\n")
            .unwrap_err()
            .0;
        assert!(err.contains("[DEFAULT] property_protection_file"), "{err}");
        let err = cfg("[DEFAULT]\nproperty_protection_rule_format = groups\n")
            .unwrap_err()
            .0;
        assert!(err.contains("property_protection_rule_format"), "{err}");
    }

    #[test]
    fn bad_values_name_the_option() {
        let err = cfg("[DEFAULT]\nimage_size_cap = huge\n").unwrap_err().0;
        assert!(err.contains("[DEFAULT] image_size_cap"), "{err}");
        let err = cfg("[DEFAULT]\nhashing_algorithm = crc32\n").unwrap_err().0;
        assert!(err.contains("hashing_algorithm"), "{err}");
        let err = cfg("[paste_deploy]\nflavor = saml\n").unwrap_err().0;
        assert!(err.contains("flavor"), "{err}");
    }

    #[test]
    fn image_quotas_default_to_glances_and_negative_is_unlimited() {
        let c = cfg("[DEFAULT]\n").unwrap();
        assert_eq!(c.image_quotas, ImageQuotas::glance_defaults());
        let c = cfg(
            "[DEFAULT]\nimage_member_quota = 1\nimage_property_quota = -1\nimage_tag_quota = 0\n",
        )
        .unwrap();
        assert_eq!(
            c.image_quotas,
            ImageQuotas {
                members: Some(1),
                properties: None,
                tags: Some(0),
            }
        );
        assert!(c.ignored_options.is_empty(), "{:?}", c.ignored_options);
        let err = cfg("[DEFAULT]\nimage_tag_quota = many\n").unwrap_err().0;
        assert!(err.contains("[DEFAULT] image_tag_quota"), "{err}");
    }

    #[test]
    fn trusted_auth_binds_everywhere_and_registry_options_are_read() {
        let c = cfg("[DEFAULT]\nregistry_host = 10.0.0.5\nregistry_port = 9999\n[paste_deploy]\nflavor = trusted-auth\n").unwrap();
        assert_eq!(c.auth, AuthMode::TrustedHeaders);
        assert_eq!(c.bind_host, "0.0.0.0");
        assert_eq!(c.registry_url, "http://10.0.0.5:9999");
    }
}

// ---- Interoperable import (issue 30) ----

/// The import methods this daemon carries out; others named in `enabled_import_methods` are
/// warned about and left out.
pub const IMPLEMENTED_IMPORT_METHODS: &[&str] = &["glance-direct", "web-download"];

/// `[import_filtering_opts]`: which URLs a `web-download` import may fetch. An allow-list,
/// when not empty, wins over its deny-list, as in Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFilters {
    /// `allowed_schemes` (default http, https).
    pub allowed_schemes: Vec<String>,
    /// `disallowed_schemes`.
    pub disallowed_schemes: Vec<String>,
    /// `allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// `disallowed_hosts`.
    pub disallowed_hosts: Vec<String>,
    /// `allowed_ports` (default 80, 443).
    pub allowed_ports: Vec<u16>,
    /// `disallowed_ports`.
    pub disallowed_ports: Vec<u16>,
}

impl Default for ImportFilters {
    fn default() -> Self {
        Self {
            allowed_schemes: vec!["http".into(), "https".into()],
            disallowed_schemes: Vec::new(),
            allowed_hosts: Vec::new(),
            disallowed_hosts: Vec::new(),
            allowed_ports: vec![80, 443],
            disallowed_ports: Vec::new(),
        }
    }
}

/// Interoperable import's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// `[DEFAULT] node_staging_uri` (default `file:///tmp/staging/`): the directory staged
    /// data is kept in until it is imported (single-store mode).
    pub staging_dir: PathBuf,
    /// `[DEFAULT] enabled_import_methods`, keeping those this daemon implements (default
    /// glance-direct, web-download).
    pub methods: Vec<String>,
    /// Methods named in `enabled_import_methods` that are not implemented (warned about).
    pub unimplemented_methods: Vec<String>,
    /// `[DEFAULT] worker_self_reference_url`: this node's URL, recorded as
    /// `os_glance_stage_host` on the images it stages (else `public_endpoint`).
    pub self_reference_url: Option<String>,
    /// `[wsgi] task_pool_threads` (default 16): how many imports run at once on this node;
    /// more wait their turn.
    pub task_pool_threads: u32,
    /// `[import_filtering_opts]`.
    pub filters: ImportFilters,
}

impl ImportOptions {
    /// Reads the options; a bad value names its option.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        let staging_dir = match ini.get("DEFAULT", "node_staging_uri") {
            None => PathBuf::from("/tmp/staging"),
            Some(uri) => match uri.trim().strip_prefix("file://") {
                Some(path) if path.starts_with('/') => PathBuf::from(path),
                _ => {
                    return Err(ConfigError(format!(
                        "[DEFAULT] node_staging_uri = {uri}: expected a file:///absolute/path URI"
                    )));
                }
            },
        };
        let named = ini.get("DEFAULT", "enabled_import_methods").map_or_else(
            || {
                IMPLEMENTED_IMPORT_METHODS
                    .iter()
                    .map(|m| (*m).to_string())
                    .collect()
            },
            |v| {
                parse_list(v.trim().trim_start_matches('[').trim_end_matches(']'))
                    .into_iter()
                    .map(|m| m.trim_matches(|c| c == '\'' || c == '"').to_string())
                    .filter(|m| !m.is_empty())
                    .collect::<Vec<_>>()
            },
        );
        if let Some(bad) = named
            .iter()
            .find(|m| !glance_model::wire::IMPORT_METHODS.contains(&m.as_str()))
        {
            return Err(ConfigError(format!(
                "[DEFAULT] enabled_import_methods: unknown method {bad:?}; the methods are {}",
                glance_model::wire::IMPORT_METHODS.join(", ")
            )));
        }
        let (methods, unimplemented_methods) = named
            .into_iter()
            .partition(|m| IMPLEMENTED_IMPORT_METHODS.contains(&m.as_str()));
        let ports = |opt: &str, default: Vec<u16>| -> Result<Vec<u16>, ConfigError> {
            Ok(ini
                .parse("import_filtering_opts", opt, |v| {
                    parse_list(v)
                        .iter()
                        .map(|p| {
                            p.parse::<u16>()
                                .map_err(|_| format!("{p:?} is not a port number"))
                        })
                        .collect::<Result<Vec<u16>, String>>()
                })?
                .unwrap_or(default))
        };
        let list = |opt: &str, default: &[&str]| -> Vec<String> {
            ini.get("import_filtering_opts", opt).map_or_else(
                || default.iter().map(|s| (*s).to_string()).collect(),
                |v| {
                    parse_list(v)
                        .into_iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect()
                },
            )
        };
        Ok(Self {
            staging_dir,
            methods,
            unimplemented_methods,
            self_reference_url: ini
                .get("DEFAULT", "worker_self_reference_url")
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().trim_end_matches('/').to_string()),
            task_pool_threads: ini
                .parse("wsgi", "task_pool_threads", parse_u32_in(1, 1024))?
                .unwrap_or(16),
            filters: ImportFilters {
                allowed_schemes: list("allowed_schemes", &["http", "https"]),
                disallowed_schemes: list("disallowed_schemes", &[]),
                allowed_hosts: list("allowed_hosts", &[]),
                disallowed_hosts: list("disallowed_hosts", &[]),
                allowed_ports: ports("allowed_ports", vec![80, 443])?,
                disallowed_ports: ports("disallowed_ports", Vec::new())?,
            },
        })
    }
}

#[cfg(test)]
mod import_tests {
    use super::*;

    fn opts(text: &str) -> Result<ImportOptions, ConfigError> {
        let mut ini = IniSet::default();
        ini.merge(&PathBuf::from("glance-api.conf"), text)?;
        ImportOptions::from_ini(&ini)
    }

    #[test]
    fn import_options_have_glances_defaults() {
        let o = opts("").unwrap();
        assert_eq!(o.staging_dir, PathBuf::from("/tmp/staging"));
        assert_eq!(o.methods, ["glance-direct", "web-download"]);
        assert_eq!(o.task_pool_threads, 16);
        assert_eq!(o.filters, ImportFilters::default());
    }

    #[test]
    fn import_options_are_read_and_checked() {
        let o = opts(
            "[DEFAULT]\nnode_staging_uri = file:///srv/staging\n\
             enabled_import_methods = [glance-direct,copy-image]\n\
             [wsgi]\ntask_pool_threads = 2\n\
             [import_filtering_opts]\nallowed_ports = 8080\ndisallowed_hosts = Evil.example\n",
        )
        .unwrap();
        assert_eq!(o.staging_dir, PathBuf::from("/srv/staging"));
        assert_eq!(o.methods, ["glance-direct"]);
        assert_eq!(o.unimplemented_methods, ["copy-image"]);
        assert_eq!(o.task_pool_threads, 2);
        assert_eq!(o.filters.allowed_ports, [8080]);
        assert_eq!(o.filters.disallowed_hosts, ["evil.example"]);
        for bad in [
            "[DEFAULT]\nnode_staging_uri = /tmp/x\n",
            "[DEFAULT]\nenabled_import_methods = bogus\n",
            "[wsgi]\ntask_pool_threads = 0\n",
            "[import_filtering_opts]\nallowed_ports = http\n",
        ] {
            assert!(opts(bad).is_err(), "{bad}");
        }
    }
}

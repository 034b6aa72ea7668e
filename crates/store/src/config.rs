//! Store configuration with glance_store's option names, in both forms operators have:
//! multi-store (`[DEFAULT] enabled_backends = id:type, ...`, `[glance_store] default_backend`,
//! one section per store, `[backend_defaults]`) and legacy single-store (`[glance_store]
//! stores = file,http`, `default_store = file`, options in `[glance_store]`).

use std::path::PathBuf;

use glance_config::{ConfigError, IniSet, parse_bool, parse_list, parse_u64};

/// One datadir and its priority (`filesystem_store_datadirs = path:priority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Higher is preferred.
    pub priority: i64,
}

/// A file store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// `filesystem_store_datadir`, or `filesystem_store_datadirs` sorted by priority, highest first.
    pub datadirs: Vec<DataDir>,
    /// `filesystem_store_file_perm` (octal as written, e.g. 640); unset or 0 leaves the umask.
    pub file_perm: Option<u32>,
    /// `filesystem_store_chunk_size`: read chunk in bytes (default 65536).
    pub chunk_size: usize,
    /// `filesystem_store_require_mount` (ours): refuse writes unless each datadir is a mount
    /// point, so an unmounted NFS share never silently fills the local disk.
    pub require_mount: bool,
    /// `filesystem_store_partial_max_age` (ours, seconds): temporary files of dead writers older
    /// than this are removed.
    pub partial_max_age_secs: u64,
    /// `filesystem_store_direct_io` (ours, default true): write image data with `O_DIRECT`,
    /// past the page cache (falls back to buffered writes where the file system refuses it).
    pub direct_io: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            datadirs: vec![DataDir {
                path: PathBuf::from("/var/lib/glance/images"),
                priority: 0,
            }],
            file_perm: None,
            chunk_size: 65536,
            require_mount: false,
            partial_max_age_secs: 3600,
            direct_io: true,
        }
    }
}

/// An http store's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `https_insecure`: skip TLS verification (glance_store's default is true).
    pub insecure: bool,
    /// `https_ca_certificates_file`.
    pub ca_file: Option<PathBuf>,
    /// `http_store_allow_private_addresses` (ours): allow locations on loopback, link-local and
    /// private networks. Off by default (SSRF guard).
    pub allow_private: bool,
    /// `http_store_timeout` (ours, seconds) for connecting and for each read.
    pub timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            insecure: true,
            ca_file: None,
            allow_private: false,
            timeout_secs: 60,
        }
    }
}

/// An rbd (Ceph RADOS block device) store's settings, with glance_store's option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdConfig {
    /// `rbd_store_pool`: the pool images are created in (default `images`).
    pub pool: String,
    /// `rbd_store_user`: the cephx user, without `client.` (default: librados's, `admin`).
    pub user: Option<String>,
    /// `rbd_store_ceph_conf`: the Ceph config file, always handed to librados (without one it
    /// would look the monitors up in DNS). Default `/etc/ceph/ceph.conf`.
    pub ceph_conf: PathBuf,
    /// `rbd_store_chunk_size` (MiB, a power of two, default 8): the RBD object size, the step
    /// an image of unknown size grows by, and the read chunk.
    pub chunk_size_mib: u64,
    /// `rados_connect_timeout` (seconds; 0: librados's own, 5 minutes): how long connecting
    /// may take, and each monitor and OSD operation afterwards, so that a cluster that goes
    /// away fails an upload instead of hanging it.
    pub connect_timeout_secs: u64,
    /// `rbd_thin_provisioning` (default false): chunks that are all zeros are not written.
    pub thin_provisioning: bool,
}

impl Default for RbdConfig {
    fn default() -> Self {
        Self {
            pool: "images".to_string(),
            user: None,
            ceph_conf: PathBuf::from("/etc/ceph/ceph.conf"),
            chunk_size_mib: 8,
            connect_timeout_secs: 0,
            thin_provisioning: false,
        }
    }
}

/// What kind of store a backend is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// Files in a directory (local or NFS).
    File(FileConfig),
    /// Read-only http(s) locations.
    Http(HttpConfig),
    /// Ceph RBD images.
    Rbd(RbdConfig),
}

/// One configured store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Its id (`fast`, or `file`/`http` in single-store mode).
    pub id: String,
    /// `store_description`.
    pub description: Option<String>,
    /// `weight`: higher sorts first among an image's locations.
    pub weight: i64,
    /// Type and settings.
    pub kind: BackendKind,
}

/// All stores of a glance-api.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoresConfig {
    /// Configured stores, in `enabled_backends` (or `stores`) order.
    pub backends: Vec<BackendConfig>,
    /// The store uploads go to when none is asked for.
    pub default_id: String,
    /// Whether `enabled_backends` was used (multi-store: `/v2/info/stores` exists).
    pub multi_store: bool,
}

/// Options a file store reads from its section.
pub const FILE_OPTIONS: &[&str] = &[
    "filesystem_store_datadir",
    "filesystem_store_datadirs",
    "filesystem_store_file_perm",
    "filesystem_store_chunk_size",
    "filesystem_store_require_mount",
    "filesystem_store_partial_max_age",
    "filesystem_store_direct_io",
];

/// Options an http store reads from its section.
pub const HTTP_OPTIONS: &[&str] = &[
    "https_insecure",
    "https_ca_certificates_file",
    "http_store_allow_private_addresses",
    "http_store_timeout",
];

/// Options an rbd store reads from its section.
pub const RBD_OPTIONS: &[&str] = &[
    "rbd_store_pool",
    "rbd_store_user",
    "rbd_store_ceph_conf",
    "rbd_store_chunk_size",
    "rados_connect_timeout",
    "rbd_thin_provisioning",
];

/// Options every store section may carry.
pub const COMMON_OPTIONS: &[&str] = &["store_description", "weight"];

/// Store types glance_store knows but this build does not provide.
const UNSUPPORTED_TYPES: &[&str] = &["swift", "cinder", "vmware", "s3", "sheepdog"];

impl StoresConfig {
    /// Reads the store configuration from glance-api's files.
    pub fn from_ini(ini: &IniSet) -> Result<Self, ConfigError> {
        match ini.get("DEFAULT", "enabled_backends") {
            Some(list) => Self::multi(ini, list),
            None => Self::legacy(ini),
        }
    }

    /// The sections this configuration reads (for unknown-option warnings).
    pub fn sections(&self) -> Vec<String> {
        let mut s = vec!["glance_store".to_string(), "backend_defaults".to_string()];
        s.extend(self.backends.iter().map(|b| b.id.clone()));
        s
    }

    fn multi(ini: &IniSet, list: &str) -> Result<Self, ConfigError> {
        let bad = |why: String| {
            let file = ini
                .source("DEFAULT", "enabled_backends")
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            ConfigError(format!(
                "{file}: [DEFAULT] enabled_backends is invalid: {why}"
            ))
        };
        let mut backends = Vec::new();
        for item in parse_list(list) {
            let Some((id, kind)) = item.split_once(':') else {
                return Err(bad(format!("{item:?} is not id:type")));
            };
            let (id, kind) = (id.trim(), kind.trim());
            if id.is_empty() {
                return Err(bad(format!("{item:?} has an empty id")));
            }
            if id.starts_with("os_glance_") {
                return Err(bad(format!(
                    "store id {id:?} uses the reserved prefix os_glance_"
                )));
            }
            if backends.iter().any(|b: &BackendConfig| b.id == id) {
                return Err(bad(format!("store id {id:?} is listed twice")));
            }
            backends.push(
                Self::backend(ini, id, kind, &[id, "backend_defaults"])
                    .map_err(|e| if e.0.contains(": [") { e } else { bad(e.0) })?,
            );
        }
        if backends.is_empty() {
            return Err(bad("no store listed".to_string()));
        }
        let default_id = ini.get("glance_store", "default_backend").ok_or_else(|| {
            ConfigError(
                "[glance_store] default_backend must name one of enabled_backends".to_string(),
            )
        })?;
        if !backends.iter().any(|b| b.id == default_id) {
            return Err(ConfigError(format!(
                "[glance_store] default_backend = {default_id} is not one of enabled_backends"
            )));
        }
        Ok(Self {
            default_id: default_id.to_string(),
            backends,
            multi_store: true,
        })
    }

    fn legacy(ini: &IniSet) -> Result<Self, ConfigError> {
        let stores = ini
            .get("glance_store", "stores")
            .map_or_else(|| vec!["file".to_string(), "http".to_string()], parse_list);
        let mut backends = Vec::new();
        for s in stores {
            // Glance also accepts the driver paths' short names here.
            let kind = match s.as_str() {
                "file" | "filesystem" => "file",
                "http" | "https" => "http",
                other => other,
            };
            if backends.iter().any(|b: &BackendConfig| b.id == kind) {
                continue;
            }
            backends.push(Self::backend(ini, kind, kind, &["glance_store"])?);
        }
        let default_id = ini
            .get("glance_store", "default_store")
            .unwrap_or("file")
            .replace("filesystem", "file");
        if !backends.iter().any(|b| b.id == default_id) {
            return Err(ConfigError(format!(
                "[glance_store] default_store = {default_id} is not one of stores"
            )));
        }
        Ok(Self {
            backends,
            default_id,
            multi_store: false,
        })
    }

    /// Builds one backend from the first of `sections` that sets each option.
    fn backend(
        ini: &IniSet,
        id: &str,
        kind: &str,
        sections: &[&str],
    ) -> Result<BackendConfig, ConfigError> {
        let raw = |opt: &str| {
            sections
                .iter()
                .find_map(|s| ini.get(s, opt).map(|v| (*s, v)))
        };
        let parsed = |opt: &str,
                      f: &dyn Fn(&str) -> Result<u64, String>|
         -> Result<Option<u64>, ConfigError> {
            match sections.iter().find(|s| ini.get(s, opt).is_some()) {
                Some(s) => ini.parse(s, opt, f),
                None => Ok(None),
            }
        };
        let flag = |opt: &str| -> Result<Option<bool>, ConfigError> {
            match sections.iter().find(|s| ini.get(s, opt).is_some()) {
                Some(s) => ini.parse(s, opt, parse_bool),
                None => Ok(None),
            }
        };
        let kind = match kind {
            "file" => {
                let d = FileConfig::default();
                let datadirs = match sections
                    .iter()
                    .find(|s| !ini.get_all(s, "filesystem_store_datadirs").is_empty())
                {
                    Some(s) => {
                        if ini.get(s, "filesystem_store_datadir").is_some() {
                            return Err(ConfigError(format!(
                                "[{s}] filesystem_store_datadir and filesystem_store_datadirs cannot both be set"
                            )));
                        }
                        parse_datadirs(s, &ini.get_all(s, "filesystem_store_datadirs"))?
                    }
                    None => raw("filesystem_store_datadir").map_or(d.datadirs, |(_, v)| {
                        vec![DataDir {
                            path: PathBuf::from(v),
                            priority: 0,
                        }]
                    }),
                };
                let file_perm = parsed("filesystem_store_file_perm", &|v| {
                    let perm = u32::from_str_radix(v.trim(), 8)
                        .map_err(|_| "expected an octal mode such as 640".to_string())?;
                    if perm > 0o777 {
                        return Err("expected an octal mode no larger than 777".to_string());
                    }
                    if perm != 0 && perm & 0o400 == 0 {
                        return Err(
                            "the mode must let the owner read the file (e.g. 640)".to_string()
                        );
                    }
                    Ok(u64::from(perm))
                })?
                .filter(|p| *p != 0)
                .and_then(|p| u32::try_from(p).ok());
                let chunk_size = parsed("filesystem_store_chunk_size", &|v| {
                    parse_u64(v).and_then(|n| {
                        if (1024..=64 * 1024 * 1024).contains(&n) {
                            Ok(n)
                        } else {
                            Err("expected a size from 1024 to 67108864 bytes".to_string())
                        }
                    })
                })?
                .map_or(d.chunk_size, |n| usize::try_from(n).unwrap_or(d.chunk_size));
                BackendKind::File(FileConfig {
                    datadirs,
                    file_perm,
                    chunk_size,
                    require_mount: flag("filesystem_store_require_mount")?.unwrap_or(false),
                    partial_max_age_secs: parsed("filesystem_store_partial_max_age", &parse_u64)?
                        .unwrap_or(d.partial_max_age_secs),
                    direct_io: flag("filesystem_store_direct_io")?.unwrap_or(d.direct_io),
                })
            }
            "http" => {
                let d = HttpConfig::default();
                BackendKind::Http(HttpConfig {
                    insecure: flag("https_insecure")?.unwrap_or(d.insecure),
                    ca_file: raw("https_ca_certificates_file").map(|(_, v)| PathBuf::from(v)),
                    allow_private: flag("http_store_allow_private_addresses")?
                        .unwrap_or(d.allow_private),
                    timeout_secs: parsed("http_store_timeout", &parse_u64)?
                        .unwrap_or(d.timeout_secs),
                })
            }
            "rbd" => {
                let d = RbdConfig::default();
                let chunk_size_mib = parsed("rbd_store_chunk_size", &|v| {
                    parse_u64(v).and_then(|n| {
                        if n.is_power_of_two() && n <= 32 {
                            Ok(n)
                        } else {
                            Err("expected a power of two from 1 to 32 (MiB)".to_string())
                        }
                    })
                })?
                .unwrap_or(d.chunk_size_mib);
                BackendKind::Rbd(RbdConfig {
                    pool: raw("rbd_store_pool").map_or(d.pool, |(_, v)| v.trim().to_string()),
                    user: raw("rbd_store_user")
                        .map(|(_, v)| v.trim().to_string())
                        .filter(|v| !v.is_empty()),
                    ceph_conf: raw("rbd_store_ceph_conf")
                        .map(|(_, v)| v.trim())
                        .filter(|v| !v.is_empty())
                        .map_or(d.ceph_conf, PathBuf::from),
                    chunk_size_mib,
                    connect_timeout_secs: parsed("rados_connect_timeout", &parse_u64)?
                        .unwrap_or(d.connect_timeout_secs),
                    thin_provisioning: flag("rbd_thin_provisioning")?
                        .unwrap_or(d.thin_provisioning),
                })
            }
            other if UNSUPPORTED_TYPES.contains(&other) => {
                return Err(ConfigError(format!(
                    "store {id}: type {other} is not supported by this glance-api; supported types are file, http and rbd"
                )));
            }
            other => {
                return Err(ConfigError(format!(
                    "store {id}: unknown store type {other:?}; supported types are file, http and rbd"
                )));
            }
        };
        let weight = match sections.iter().find(|s| ini.get(s, "weight").is_some()) {
            Some(s) => ini
                .parse(s, "weight", |v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| "expected an integer".to_string())
                })?
                .unwrap_or(0),
            None => 0,
        };
        Ok(BackendConfig {
            id: id.to_string(),
            description: raw("store_description").map(|(_, v)| v.to_string()),
            weight,
            kind,
        })
    }
}

/// Parses `path:priority` entries; a directory listed twice is an error.
fn parse_datadirs(section: &str, values: &[&str]) -> Result<Vec<DataDir>, ConfigError> {
    let mut dirs: Vec<DataDir> = Vec::new();
    for v in values {
        let (path, priority) = match v.rsplit_once(':') {
            Some((p, prio)) if !prio.trim().is_empty() => {
                let priority = prio.trim().parse::<i64>().map_err(|_| {
                    ConfigError(format!(
                        "[{section}] filesystem_store_datadirs = {v:?}: priority {prio:?} is not an integer"
                    ))
                })?;
                (p.trim(), priority)
            }
            _ => (v.trim_end_matches(':').trim(), 0),
        };
        if path.is_empty() {
            return Err(ConfigError(format!(
                "[{section}] filesystem_store_datadirs = {v:?}: empty directory"
            )));
        }
        let path = PathBuf::from(path);
        if dirs.iter().any(|d| d.path == path) {
            return Err(ConfigError(format!(
                "[{section}] filesystem_store_datadirs lists {} more than once",
                path.display()
            )));
        }
        dirs.push(DataDir { path, priority });
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.priority));
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ini(text: &str) -> IniSet {
        let mut ini = IniSet::default();
        ini.merge(Path::new("glance-api.conf"), text).unwrap();
        ini
    }

    #[test]
    fn the_install_guide_single_store_block_loads() {
        let cfg = StoresConfig::from_ini(&ini(
            "[glance_store]\nstores = file,http\ndefault_store = file\nfilesystem_store_datadir = /var/lib/glance/images/\n",
        ))
        .unwrap();
        assert!(!cfg.multi_store);
        assert_eq!(cfg.default_id, "file");
        assert_eq!(cfg.backends.len(), 2);
        let BackendKind::File(f) = &cfg.backends[0].kind else {
            panic!("first store should be file")
        };
        assert_eq!(f.datadirs[0].path, Path::new("/var/lib/glance/images/"));
        assert!(matches!(cfg.backends[1].kind, BackendKind::Http(_)));
    }

    #[test]
    fn no_store_options_give_glance_defaults() {
        let cfg = StoresConfig::from_ini(&ini("[DEFAULT]\n")).unwrap();
        assert_eq!(cfg.default_id, "file");
        let BackendKind::File(f) = &cfg.backends[0].kind else {
            panic!("file expected")
        };
        assert_eq!(f, &FileConfig::default());
    }

    #[test]
    fn multi_store_reads_each_section_and_backend_defaults() {
        let cfg = StoresConfig::from_ini(&ini(
            "[DEFAULT]\nenabled_backends = fast:file, shared:file, web:http\n\
             [glance_store]\ndefault_backend = fast\n\
             [backend_defaults]\nfilesystem_store_chunk_size = 131072\n\
             [fast]\nfilesystem_store_datadir = /srv/fast\nstore_description = Local SSD\nweight = 100\n\
             [shared]\nfilesystem_store_datadir = /mnt/nfs\nfilesystem_store_require_mount = true\n\
             [web]\nhttps_insecure = false\n",
        ))
        .unwrap();
        assert!(cfg.multi_store);
        assert_eq!(cfg.default_id, "fast");
        let ids: Vec<_> = cfg.backends.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["fast", "shared", "web"]);
        assert_eq!(cfg.backends[0].weight, 100);
        assert_eq!(cfg.backends[0].description.as_deref(), Some("Local SSD"));
        let BackendKind::File(shared) = &cfg.backends[1].kind else {
            panic!("file expected")
        };
        assert!(shared.require_mount);
        assert_eq!(shared.chunk_size, 131072);
        let BackendKind::Http(web) = &cfg.backends[2].kind else {
            panic!("http expected")
        };
        assert!(!web.insecure);
    }

    #[test]
    fn multi_store_mistakes_stop_start_up() {
        let cases = [
            (
                "[DEFAULT]\nenabled_backends = fast:file\n",
                "default_backend",
            ),
            (
                "[DEFAULT]\nenabled_backends = fast:file\n[glance_store]\ndefault_backend = slow\n",
                "slow",
            ),
            (
                "[DEFAULT]\nenabled_backends = os_glance_x:file\n[glance_store]\ndefault_backend = os_glance_x\n",
                "reserved",
            ),
            (
                "[DEFAULT]\nenabled_backends = ceph:swift\n[glance_store]\ndefault_backend = ceph\n",
                "not supported",
            ),
            (
                "[DEFAULT]\nenabled_backends = ceph:rbd\n[glance_store]\ndefault_backend = ceph\n[ceph]\nrbd_store_chunk_size = 3\n",
                "power of two",
            ),
            (
                "[DEFAULT]\nenabled_backends = fast\n[glance_store]\ndefault_backend = fast\n",
                "id:type",
            ),
            (
                "[DEFAULT]\nenabled_backends = a:file,a:file\n[glance_store]\ndefault_backend = a\n",
                "twice",
            ),
            ("[glance_store]\nfilesystem_store_file_perm = 9\n", "octal"),
            (
                "[glance_store]\nfilesystem_store_file_perm = 040\n",
                "owner read",
            ),
            ("[glance_store]\nfilesystem_store_chunk_size = 1\n", "1024"),
        ];
        for (text, needle) in cases {
            let err = StoresConfig::from_ini(&ini(text)).unwrap_err().0;
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn rbd_options_and_defaults() {
        let cfg = StoresConfig::from_ini(&ini(
            "[DEFAULT]\nenabled_backends = fast:rbd, slow:rbd\n[glance_store]\ndefault_backend = fast\n\
             [fast]\nrbd_store_pool = vms\nrbd_store_user = glance\nrbd_store_ceph_conf = /srv/ceph.conf\n\
             rbd_store_chunk_size = 4\nrados_connect_timeout = 7\nrbd_thin_provisioning = true\n",
        ))
        .unwrap();
        let BackendKind::Rbd(fast) = &cfg.backends[0].kind else {
            panic!("rbd expected")
        };
        assert_eq!(
            fast,
            &RbdConfig {
                pool: "vms".to_string(),
                user: Some("glance".to_string()),
                ceph_conf: PathBuf::from("/srv/ceph.conf"),
                chunk_size_mib: 4,
                connect_timeout_secs: 7,
                thin_provisioning: true,
            }
        );
        let BackendKind::Rbd(slow) = &cfg.backends[1].kind else {
            panic!("rbd expected")
        };
        assert_eq!(slow, &RbdConfig::default());
    }

    #[test]
    fn datadirs_sort_by_priority_and_refuse_duplicates() {
        let cfg = StoresConfig::from_ini(&ini(
            "[glance_store]\nfilesystem_store_datadirs = /a:100\nfilesystem_store_datadirs = /b:200\nfilesystem_store_datadirs = /c\nfilesystem_store_file_perm = 640\n",
        ))
        .unwrap();
        let BackendKind::File(f) = &cfg.backends[0].kind else {
            panic!("file expected")
        };
        let order: Vec<_> = f
            .datadirs
            .iter()
            .map(|d| (d.path.to_str().unwrap(), d.priority))
            .collect();
        assert_eq!(order, [("/b", 200), ("/a", 100), ("/c", 0)]);
        assert_eq!(f.file_perm, Some(0o640));
        let err = StoresConfig::from_ini(&ini(
            "[glance_store]\nfilesystem_store_datadirs = /a:1\nfilesystem_store_datadirs = /a:2\n",
        ))
        .unwrap_err();
        assert!(err.0.contains("more than once"), "{err}");
        let err = StoresConfig::from_ini(&ini(
            "[glance_store]\nfilesystem_store_datadirs = /a:1\nfilesystem_store_datadir = /b\n",
        ))
        .unwrap_err();
        assert!(err.0.contains("cannot both"), "{err}");
    }
}

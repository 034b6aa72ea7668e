//! The stores a glance-api is configured with, and the choice among them: which store takes an
//! upload (the default, or the one `X-Image-Meta-Store` names), which one reads a location
//! (its `store` metadata, else its scheme), and what `/v2/info/stores` shows.

use std::path::Path;

use bytes::Bytes;
use futures_util::Stream;

use crate::config::{BackendKind, StoresConfig};
use crate::file::FileStore;
use crate::hashing::HashAlgo;
use crate::http::HttpStore;
use crate::integrity;
use crate::pipeline::{WriteLimits, Written};
#[cfg(feature = "rbd")]
use crate::rbd::RbdStore;
use crate::{ByteRange, Fetched, StoreError};

/// One store backend. Enum dispatch: every operation's `match` shows every backend.
#[derive(Debug)]
pub enum Store {
    /// Files in a directory (local disk or NFS).
    File(FileStore),
    /// Read-only http(s).
    Http(HttpStore),
    /// Ceph RBD images.
    #[cfg(feature = "rbd")]
    Rbd(std::sync::Arc<RbdStore>),
}

/// The store an upload goes to.
#[derive(Debug, Clone, Copy)]
pub enum UploadTarget<'a> {
    /// A file store.
    File(&'a FileStore),
    /// An rbd store.
    #[cfg(feature = "rbd")]
    Rbd(&'a std::sync::Arc<RbdStore>),
}

/// A configured store with its id and display settings.
#[derive(Debug)]
pub struct StoreEntry {
    /// Store id.
    pub id: String,
    /// `store_description`.
    pub description: Option<String>,
    /// `weight`.
    pub weight: i64,
    /// The backend.
    pub store: Store,
}

/// What `/v2/info/stores` shows for one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// Store id.
    pub id: String,
    /// Description (the id when none is configured).
    pub description: String,
    /// Whether uploads go here by default.
    pub is_default: bool,
    /// Whether the store refuses writes.
    pub read_only: bool,
    /// Weight.
    pub weight: i64,
}

/// What `/v2/info/stores/detail` adds for one store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreDetail {
    /// What `/v2/info/stores` shows.
    pub info: StoreInfo,
    /// The store type as `enabled_backends` names it (`file`, `http`, `rbd`).
    pub kind: &'static str,
    /// The type's settings as Glance shows them (rbd: `chunk_size` in bytes, `pool`,
    /// `thin_provisioning`, `fsid`; file: `data_dir`, `chunk_size`, `thin_provisioning`).
    pub properties: serde_json::Value,
}

/// A finished upload and the store that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The store's id (recorded as the location's `{"store": id}` metadata).
    pub store_id: String,
    /// Location, size and digests.
    pub written: Written,
}

/// All stores of one glance-api.
#[derive(Debug)]
pub struct Stores {
    entries: Vec<StoreEntry>,
    default_id: String,
    multi_store: bool,
}

impl Stores {
    /// Builds every configured store (file stores prepare their directories; problems are
    /// logged and reported by [`Stores::health`], not fatal).
    pub fn from_config(cfg: &StoresConfig) -> Result<Self, StoreError> {
        let mut entries = Vec::with_capacity(cfg.backends.len());
        for b in &cfg.backends {
            let store = match &b.kind {
                BackendKind::File(f) => Store::File(FileStore::new(&b.id, f.clone())),
                BackendKind::Http(h) => Store::Http(HttpStore::new(&b.id, h)?),
                #[cfg(feature = "rbd")]
                BackendKind::Rbd(r) => {
                    Store::Rbd(std::sync::Arc::new(RbdStore::new(&b.id, r.clone())))
                }
                #[cfg(not(feature = "rbd"))]
                BackendKind::Rbd(_) => {
                    return Err(StoreError::Config(glance_config::ConfigError(format!(
                        "store {}: this glance-api was built without rbd support (cargo feature rbd)",
                        b.id
                    ))));
                }
            };
            entries.push(StoreEntry {
                id: b.id.clone(),
                description: b.description.clone(),
                weight: b.weight,
                store,
            });
        }
        Ok(Self {
            entries,
            default_id: cfg.default_id.clone(),
            multi_store: cfg.multi_store,
        })
    }

    /// Whether multi-store (`enabled_backends`) is configured.
    pub fn multi_store(&self) -> bool {
        self.multi_store
    }

    /// The default store's id.
    pub fn default_id(&self) -> &str {
        &self.default_id
    }

    /// The store with this id.
    pub fn entry(&self, id: &str) -> Option<&StoreEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// A store's weight (0 for unknown ids), for ordering an image's locations.
    pub fn weight(&self, id: Option<&str>) -> i64 {
        id.and_then(|id| self.entry(id)).map_or(0, |e| e.weight)
    }

    /// Every store, as `/v2/info/stores` lists them.
    pub fn describe(&self) -> Vec<StoreInfo> {
        self.entries
            .iter()
            .map(|e| StoreInfo {
                id: e.id.clone(),
                description: e.description.clone().unwrap_or_else(|| e.id.clone()),
                is_default: e.id == self.default_id,
                read_only: matches!(e.store, Store::Http(_)),
                weight: e.weight,
            })
            .collect()
    }

    /// Every store with its type and settings, as `/v2/info/stores/detail` lists them. An rbd
    /// store not yet connected is connected now for its fsid (`null` if Ceph does not answer
    /// within `rados_connect_timeout`).
    pub async fn describe_detail(&self) -> Vec<StoreDetail> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (e, info) in self.entries.iter().zip(self.describe()) {
            let (kind, properties) = match &e.store {
                Store::File(f) => {
                    let cfg = f.config();
                    let dir = cfg
                        .datadirs
                        .first()
                        .map(|d| d.path.display().to_string())
                        .unwrap_or_default();
                    (
                        "file",
                        serde_json::json!({
                            "data_dir": dir,
                            "chunk_size": cfg.chunk_size,
                            "thin_provisioning": false,
                        }),
                    )
                }
                Store::Http(_) => ("http", serde_json::json!({})),
                #[cfg(feature = "rbd")]
                Store::Rbd(r) => {
                    let fsid = match r.fsid() {
                        Some(f) => Some(f),
                        None => r.check().await.ok(),
                    };
                    (
                        "rbd",
                        serde_json::json!({
                            "chunk_size": r.chunk_size_bytes(),
                            "pool": r.config().pool,
                            "thin_provisioning": r.config().thin_provisioning,
                            "fsid": fsid,
                        }),
                    )
                }
            };
            out.push(StoreDetail {
                info,
                kind,
                properties,
            });
        }
        out
    }

    /// Each store's start-up/health check: `Err` says what an operator must fix.
    pub fn health(&self) -> Vec<(String, Result<(), String>)> {
        self.entries
            .iter()
            .map(|e| {
                let status = match &e.store {
                    Store::File(f) => f.check(),
                    Store::Http(_) => Ok(()),
                    // Connected at first use (see `RbdStore`); its failures answer 503 then.
                    #[cfg(feature = "rbd")]
                    Store::Rbd(_) => Ok(()),
                };
                (e.id.clone(), status)
            })
            .collect()
    }

    /// Removes dead writers' temporary files in every file store; returns how many.
    pub fn clean_stale_partials(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match &e.store {
                Store::File(f) => f.clean_stale_partials(),
                Store::Http(_) => 0,
                #[cfg(feature = "rbd")]
                Store::Rbd(_) => 0,
            })
            .sum()
    }

    /// Removes the partial files of uploads of `image_id` in every file store (after its
    /// upload lease expired, so no live writer owns them); returns how many.
    pub fn remove_partials_of(&self, image_id: &str) -> usize {
        self.entries
            .iter()
            .map(|e| match &e.store {
                Store::File(f) => f.remove_partials_of(image_id),
                Store::Http(_) => 0,
                #[cfg(feature = "rbd")]
                Store::Rbd(_) => 0,
            })
            .sum()
    }

    /// The store an upload goes to: `requested` (from `X-Image-Meta-Store`) or the default.
    pub fn for_upload(
        &self,
        requested: Option<&str>,
    ) -> Result<(&str, UploadTarget<'_>), StoreError> {
        let id = requested.unwrap_or(&self.default_id);
        let entry = self
            .entry(id)
            .ok_or_else(|| StoreError::UnknownStore(id.to_string()))?;
        match &entry.store {
            Store::File(f) => Ok((entry.id.as_str(), UploadTarget::File(f))),
            Store::Http(_) => Err(StoreError::ReadOnly(entry.id.clone())),
            #[cfg(feature = "rbd")]
            Store::Rbd(r) => Ok((entry.id.as_str(), UploadTarget::Rbd(r))),
        }
    }

    /// Streams an upload into the chosen store (see [`FileStore::add`]).
    pub async fn add<S>(
        &self,
        requested: Option<&str>,
        image_id: &str,
        data: S,
        limits: &WriteLimits,
        algo: HashAlgo,
    ) -> Result<Added, StoreError>
    where
        S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
    {
        let (id, store) = self.for_upload(requested)?;
        let written = match store {
            UploadTarget::File(f) => f.add(image_id, data, limits, algo).await?,
            #[cfg(feature = "rbd")]
            UploadTarget::Rbd(r) => r.add(image_id, data, limits, algo).await?,
        };
        Ok(Added {
            store_id: id.to_string(),
            written,
        })
    }

    /// The store that reads `url`: the one its `store` metadata names, else the first whose
    /// scheme (and, for files, datadir) matches.
    pub fn reader_for(
        &self,
        url: &str,
        store_hint: Option<&str>,
    ) -> Result<&StoreEntry, StoreError> {
        if let Some(id) = store_hint
            && let Some(e) = self.entry(id)
        {
            return Ok(e);
        }
        if let Some(path) = file_path(url) {
            return self
                .entries
                .iter()
                .find(|e| matches!(&e.store, Store::File(f) if f.contains(path)))
                .ok_or_else(|| {
                    StoreError::BadLocation(format!(
                        "location {url} is not inside any configured file store's datadir"
                    ))
                });
        }
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        #[cfg(feature = "rbd")]
        if scheme == "rbd" {
            // The store whose cluster and pool the location names; else the first rbd store.
            let loc = crate::rbd::RbdLocation::parse(url)?;
            let rbd = || {
                self.entries.iter().filter_map(|e| match &e.store {
                    Store::Rbd(r) => Some((e, r)),
                    _ => None,
                })
            };
            return rbd()
                .find(|(_, r)| {
                    loc.pool.as_deref().is_none_or(|p| p == r.config().pool)
                        && loc
                            .fsid
                            .as_deref()
                            .is_none_or(|f| r.fsid().is_none_or(|g| g == f))
                })
                .or_else(|| rbd().next())
                .map(|(e, _)| e)
                .ok_or_else(|| {
                    StoreError::BadLocation(
                        "no rbd store is enabled to read rbd locations".to_string(),
                    )
                });
        }
        if matches!(scheme, "http" | "https") {
            return self
                .entries
                .iter()
                .find(|e| matches!(e.store, Store::Http(_)))
                .ok_or_else(|| {
                    StoreError::BadLocation(
                        "no http store is enabled to read http(s) locations; add http to stores or enabled_backends"
                            .to_string(),
                    )
                });
        }
        Err(StoreError::BadLocation(format!(
            "no enabled store reads locations with scheme {scheme:?}"
        )))
    }

    /// Streams the data at `url` (or the part `range` names). With `recorded` (the image's
    /// recorded size), every store is held to it here, in one place: data of another size is
    /// refused with [`StoreError::SizeChanged`] before any byte is read, the range is resolved
    /// against the recorded size, and a stream that ends early or runs long during the
    /// transfer ends with an error.
    pub async fn get(
        &self,
        url: &str,
        store_hint: Option<&str>,
        range: Option<ByteRange>,
        recorded: Option<u64>,
    ) -> Result<Fetched, StoreError> {
        let fetched = match &self.reader_for(url, store_hint)?.store {
            Store::File(f) => f.get(file_path(url).unwrap_or(Path::new(url)), range).await,
            Store::Http(h) => h.get(url, range).await,
            #[cfg(feature = "rbd")]
            Store::Rbd(r) => r.get(url, range).await,
        };
        let Some(recorded) = recorded else {
            return fetched;
        };
        match fetched {
            Ok(f) => integrity::hold_to_record(f, url, recorded, range),
            Err(e) => Err(integrity::range_refusal(e, url, recorded)),
        }
    }

    /// The size of the data at `url`.
    pub async fn size(&self, url: &str, store_hint: Option<&str>) -> Result<u64, StoreError> {
        match &self.reader_for(url, store_hint)?.store {
            Store::File(f) => f.size(file_path(url).unwrap_or(Path::new(url))).await,
            Store::Http(h) => h.size(url).await,
            #[cfg(feature = "rbd")]
            Store::Rbd(r) => r.size(url).await,
        }
    }

    /// Removes the data at `url` (http locations are only forgotten, never deleted remotely).
    pub async fn delete(&self, url: &str, store_hint: Option<&str>) -> Result<(), StoreError> {
        match &self.reader_for(url, store_hint)?.store {
            Store::File(f) => f.delete(file_path(url).unwrap_or(Path::new(url))).await,
            Store::Http(_) => Ok(()),
            #[cfg(feature = "rbd")]
            Store::Rbd(r) => r.delete(url).await,
        }
    }

    /// Whether the store of `url` may refuse to delete it while something outside Glance uses
    /// it (rbd: clones of its snapshot). Such data is removed before the record of it, so
    /// that an "in use" refusal leaves the image as it was, as Glance does.
    pub fn may_be_in_use(&self, url: &str, store_hint: Option<&str>) -> bool {
        match self.reader_for(url, store_hint).map(|e| &e.store) {
            #[cfg(feature = "rbd")]
            Ok(Store::Rbd(_)) => true,
            _ => false,
        }
    }

    /// Checks a location a user wants to add to an image: only http(s) URLs an enabled http
    /// store may contact; `file://` and other local schemes are never accepted from users.
    pub fn check_user_location(&self, url: &str) -> Result<(), StoreError> {
        let scheme = url
            .split_once("://")
            .map_or("", |(s, _)| s)
            .to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(StoreError::BadLocation(format!(
                "locations with scheme {scheme:?} cannot be added; only http and https locations are accepted"
            )));
        }
        match &self.reader_for(url, None)?.store {
            Store::Http(h) => h.check_url(url).map(|_| ()),
            Store::File(_) => Err(StoreError::BadLocation(
                "file locations cannot be added".to_string(),
            )),
            #[cfg(feature = "rbd")]
            Store::Rbd(_) => Err(StoreError::BadLocation(
                "rbd locations cannot be added".to_string(),
            )),
        }
    }
}

/// The path of a `file://` or `filesystem://` location.
fn file_path(url: &str) -> Option<&Path> {
    url.strip_prefix("file://")
        .or_else(|| url.strip_prefix("filesystem://"))
        .filter(|p| p.starts_with('/'))
        .map(Path::new)
}

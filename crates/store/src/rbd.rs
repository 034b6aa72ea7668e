//! The rbd store: images as Ceph RBD images, laid out as glance_store lays them out, so that
//! Nova and Cinder can clone them copy-on-write.
//!
//! - An image is the RBD image named by the image id in `rbd_store_pool`, with objects of
//!   `rbd_store_chunk_size` MiB. When the size is unknown it is created empty and grown as the
//!   data comes (by a chunk at a time), then trimmed to the exact size.
//! - Once written it gets a snapshot `snap`, protected; the location is
//!   `rbd://<fsid>/<pool>/<image>/snap`, and reads come from that snapshot.
//! - Delete unprotects the snapshot, removes it and removes the image. While clones of the
//!   snapshot exist the unprotect fails (EBUSY) and the delete answers "in use": nothing is
//!   removed.
//!
//! - A partial image (an upload that failed) is removed at once; when Ceph does not answer
//!   then (it stopped mid-upload), its name is kept and the removal retried in the background
//!   until Ceph answers, and an upload of the same image first finishes it. The retry removes
//!   only names still kept, and an upload takes its name out before creating the image, so a
//!   retry never removes a new upload's image (of this glance-api; two nodes uploading the
//!   same image at once are kept apart by the registry's upload lease).
//!
//! librbd calls block, so they run on tokio's blocking threads. The cluster is connected at
//! first use (not at start-up, so a Ceph that is down does not hold glance-api back) and the
//! connection is kept; a failed connection is an unavailable store, retried by the next request.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use glance_ceph::{CephError, Cluster, ErrorClass, Image, Pool};

use crate::config::RbdConfig;
use crate::hashing::HashAlgo;
use crate::pipeline::{self, BlockWriter, WriteLimits, Written};
use crate::{ByteRange, Fetched, StoreError};

/// The snapshot every image gets (Glance's name; Nova and Cinder look for it).
pub const SNAPSHOT: &str = "snap";

/// Partial images whose removal failed, by name (see the module doc).
type Pending = Arc<Mutex<HashSet<String>>>;

/// How often, and how many times, the removal of a partial image is retried (10 minutes).
const RETRY_EVERY: Duration = Duration::from_secs(2);
const RETRIES: u32 = 300;

/// Removes the image `name` with its snapshot (unprotected first), if they exist.
fn remove_with_snapshot(pool: &Arc<Pool>, name: &str) -> Result<(), CephError> {
    let gone = |e: &CephError| e.class() == ErrorClass::NotFound;
    match pool.open(name) {
        Ok(mut image) => {
            if let Ok(true) = image.snap_is_protected(SNAPSHOT) {
                image.snap_unprotect(SNAPSHOT)?;
            }
            match image.snap_remove(SNAPSHOT) {
                Err(e) if !gone(&e) => return Err(e),
                _ => {}
            }
        }
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    match pool.remove_image(name) {
        Err(e) if !gone(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Keeps `name` as a partial image to remove and retries its removal in the background.
fn retry_removal(store: String, pool: Arc<Pool>, pending: Pending, name: String) {
    if let Ok(mut set) = pending.lock() {
        set.insert(name.clone());
    }
    let spawned = std::thread::Builder::new()
        .name("rbd-cleanup".to_string())
        .spawn(move || {
            for _ in 0..RETRIES {
                std::thread::sleep(RETRY_EVERY);
                let Ok(mut set) = pending.lock() else { return };
                if !set.contains(&name) {
                    return;
                }
                match remove_with_snapshot(&pool, &name) {
                    Ok(()) => {
                        set.remove(&name);
                        log::info!("store {store}: partial RBD image {name} removed on retry");
                        return;
                    }
                    Err(e) => log::debug!("store {store}: partial RBD image {name}: {e}"),
                }
            }
            log::error!(
                "store {store}: partial RBD image {name} still not removed after {} s; remove it with rbd rm",
                RETRY_EVERY.as_secs() * u64::from(RETRIES)
            );
        });
    if let Err(e) = spawned {
        log::error!("cannot start the removal of a partial RBD image: {e}");
    }
}

/// A connected pool and what the locations need.
#[derive(Debug)]
struct Connected {
    pool: Arc<Pool>,
    fsid: String,
}

/// An rbd store.
#[derive(Debug)]
pub struct RbdStore {
    id: String,
    cfg: RbdConfig,
    conn: Mutex<Option<Arc<Connected>>>,
    pending: Pending,
}

/// The parts of an `rbd://` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdLocation {
    /// The cluster's fsid (absent in the old one-part form `rbd://<image>`).
    pub fsid: Option<String>,
    /// Pool (absent in the old form: the store's pool).
    pub pool: Option<String>,
    /// RBD image name.
    pub image: String,
    /// Snapshot (absent in the old form).
    pub snapshot: Option<String>,
}

impl RbdLocation {
    /// Parses `rbd://fsid/pool/image/snap` (or the old `rbd://image`).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = || {
            StoreError::BadLocation(format!(
                "{url} is not an rbd location (rbd://<fsid>/<pool>/<image>/<snapshot>)"
            ))
        };
        let rest = url.strip_prefix("rbd://").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [image] => Ok(Self {
                fsid: None,
                pool: None,
                image: (*image).to_string(),
                snapshot: None,
            }),
            [fsid, pool, image, snap] => Ok(Self {
                fsid: Some((*fsid).to_string()),
                pool: Some((*pool).to_string()),
                image: (*image).to_string(),
                snapshot: Some((*snap).to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl RbdStore {
    /// An rbd store; nothing is contacted until first use.
    pub fn new(id: &str, cfg: RbdConfig) -> Self {
        Self {
            id: id.to_string(),
            cfg,
            conn: Mutex::new(None),
            pending: Pending::default(),
        }
    }

    /// The store's settings.
    pub fn config(&self) -> &RbdConfig {
        &self.cfg
    }

    /// The chunk (object) size in bytes.
    pub fn chunk_size_bytes(&self) -> u64 {
        self.cfg.chunk_size_mib << 20
    }

    fn unavailable(&self, why: String) -> StoreError {
        StoreError::StoreUnavailable {
            store: self.id.clone(),
            reason: why,
        }
    }

    /// Maps a librados/librbd failure on `what` to the store's error.
    fn error(&self, what: &str, e: CephError) -> StoreError {
        match e.class() {
            ErrorClass::NotFound => StoreError::NotFound(what.to_string()),
            ErrorClass::Exists => StoreError::Duplicate(what.to_string()),
            ErrorClass::Busy => StoreError::InUse(format!(
                "image data {what} is in use (clones of its snapshot exist): {e}"
            )),
            ErrorClass::Full => StoreError::StorageFull {
                store: self.id.clone(),
                path: format!("pool {}", self.cfg.pool),
            },
            ErrorClass::Denied => StoreError::WriteDenied {
                store: self.id.clone(),
                path: format!("pool {}", self.cfg.pool),
                reason: format!("{e}; check the caps of the cephx user"),
            },
            ErrorClass::Unreachable => {
                self.unavailable(format!("the Ceph cluster does not answer ({e})"))
            }
            ErrorClass::Invalid | ErrorClass::Other => {
                self.unavailable(format!("Ceph refused an operation on {what}: {e}"))
            }
        }
    }

    /// The connection, made now if there is none (blocking: call from a blocking thread).
    fn connected(&self) -> Result<Arc<Connected>, StoreError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Worker("rbd connection lock poisoned".to_string()))?;
        if let Some(c) = guard.as_ref() {
            return Ok(Arc::clone(c));
        }
        let timeout = self.cfg.connect_timeout_secs.to_string();
        let mut options: Vec<(&str, &str)> = Vec::new();
        if self.cfg.connect_timeout_secs > 0 {
            options.extend([
                ("client_mount_timeout", timeout.as_str()),
                ("rados_mon_op_timeout", timeout.as_str()),
                ("rados_osd_op_timeout", timeout.as_str()),
            ]);
        }
        let user = self.cfg.user.as_deref().unwrap_or("admin");
        let cluster = Cluster::connect(&self.cfg.ceph_conf, user, &options).map_err(|e| {
            self.unavailable(format!(
                "cannot connect to Ceph as client.{user} with {}: {e}",
                self.cfg.ceph_conf.display()
            ))
        })?;
        let fsid = cluster
            .fsid()
            .map_err(|e| self.unavailable(format!("cannot read the cluster's fsid: {e}")))?;
        let pool = cluster
            .pool(&self.cfg.pool)
            .map_err(|e| self.unavailable(format!("cannot open pool {}: {e}", self.cfg.pool)))?;
        let c = Arc::new(Connected { pool, fsid });
        *guard = Some(Arc::clone(&c));
        log::info!(
            "store {}: connected to Ceph {} (pool {})",
            self.id,
            c.fsid,
            self.cfg.pool
        );
        Ok(c)
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&RbdStore, Arc<Connected>) -> Result<T, StoreError> + Send + 'static,
    {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let c = me.connected()?;
            f(&me, c)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Connects if needed; `Err` says what an operator must fix.
    pub async fn check(self: &Arc<Self>) -> Result<String, String> {
        self.blocking(|_, c| Ok(c.fsid.clone()))
            .await
            .map_err(|e| e.to_string())
    }

    /// The cluster's fsid, if connected (for `/v2/info/stores/detail`).
    pub fn fsid(&self) -> Option<String> {
        self.conn
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|c| c.fsid.clone()))
    }

    /// Streams `data` into a new RBD image named `image_id` (see the module doc); on any
    /// failure the image is removed.
    pub async fn add<S>(
        self: &Arc<Self>,
        image_id: &str,
        data: S,
        limits: &WriteLimits,
        algo: HashAlgo,
    ) -> Result<Written, StoreError>
    where
        S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
    {
        let name = image_id.to_string();
        let size = limits.declared_size.unwrap_or(0);
        let writer = self
            .blocking(move |me, c| {
                me.finish_pending(&c.pool, &name)?;
                RbdWriter::create(me, &c, &name, size)
            })
            .await?;
        let location = writer.location.clone();
        let mut written = pipeline::pump(data, writer, limits, algo).await?;
        written.location = location;
        log::info!(
            "store {}: image {image_id} written: {} bytes at {}",
            self.id,
            written.size_bytes,
            written.location
        );
        Ok(written)
    }

    /// Removes the partial image of an earlier failed upload of `name`, if one is kept.
    fn finish_pending(&self, pool: &Arc<Pool>, name: &str) -> Result<(), StoreError> {
        let mut set = self
            .pending
            .lock()
            .map_err(|_| StoreError::Worker("rbd cleanup lock poisoned".to_string()))?;
        if set.contains(name) {
            remove_with_snapshot(pool, name).map_err(|e| {
                self.unavailable(format!(
                    "the partial RBD image {name} of an earlier upload cannot be removed: {e}"
                ))
            })?;
            set.remove(name);
        }
        Ok(())
    }

    /// Whether a partial image named `name` waits for its removal (for tests and logs).
    pub fn removal_pending(&self, name: &str) -> bool {
        self.pending.lock().is_ok_and(|s| s.contains(name))
    }

    /// The image name and snapshot a location names, checked against this store's pool.
    fn resolve(&self, url: &str) -> Result<(String, Option<String>), StoreError> {
        let loc = RbdLocation::parse(url)?;
        if let Some(pool) = &loc.pool
            && *pool != self.cfg.pool
        {
            return Err(StoreError::BadLocation(format!(
                "{url} is in pool {pool}, but store {} uses pool {}",
                self.id, self.cfg.pool
            )));
        }
        Ok((loc.image, loc.snapshot))
    }

    /// Streams the data at `url` (from its snapshot), or the part `range` names.
    pub async fn get(
        self: &Arc<Self>,
        url: &str,
        range: Option<ByteRange>,
    ) -> Result<Fetched, StoreError> {
        let (name, snap) = self.resolve(url)?;
        let shown = url.to_string();
        let image = self
            .blocking(move |me, c| {
                c.pool
                    .open_read_only(&name, snap.as_deref())
                    .map_err(|e| me.error(&shown, e))
            })
            .await?;
        let size = image.size().map_err(|e| self.error(url, e))?;
        let (offset, length) = crate::resolve_range(range, size)?;
        let chunk = usize::try_from(self.chunk_size_bytes()).unwrap_or(8 << 20);
        Ok(Fetched {
            total_size: Some(size),
            offset,
            length: Some(length),
            stream: read_stream(
                Arc::clone(self),
                url.to_string(),
                image,
                offset,
                length,
                chunk,
            ),
            file: None,
        })
    }

    /// The size of the data at `url`.
    pub async fn size(self: &Arc<Self>, url: &str) -> Result<u64, StoreError> {
        let (name, snap) = self.resolve(url)?;
        let shown = url.to_string();
        self.blocking(move |me, c| {
            let image = c
                .pool
                .open_read_only(&name, snap.as_deref())
                .map_err(|e| me.error(&shown, e))?;
            image.size().map_err(|e| me.error(&shown, e))
        })
        .await
    }

    /// Unprotects and removes the snapshot, then removes the image. While clones of the
    /// snapshot exist: [`StoreError::InUse`], and everything stays.
    pub async fn delete(self: &Arc<Self>, url: &str) -> Result<(), StoreError> {
        let (name, snap) = self.resolve(url)?;
        let shown = url.to_string();
        self.blocking(move |me, c| {
            {
                let mut image = c.pool.open(&name).map_err(|e| me.error(&shown, e))?;
                if let Some(snap) = snap.as_deref() {
                    match image.snap_is_protected(snap) {
                        Ok(true) => image
                            .snap_unprotect(snap)
                            .map_err(|e| me.error(&shown, e))?,
                        Ok(false) => {}
                        Err(e) if e.class() == ErrorClass::NotFound => {}
                        Err(e) => return Err(me.error(&shown, e)),
                    }
                    match image.snap_remove(snap) {
                        Ok(()) => {}
                        Err(e) if e.class() == ErrorClass::NotFound => {}
                        Err(e) => return Err(me.error(&shown, e)),
                    }
                }
            }
            c.pool.remove_image(&name).map_err(|e| me.error(&shown, e))
        })
        .await
    }
}

/// Reads `length` bytes from `offset` in chunks on a blocking thread, two chunks ahead.
fn read_stream(
    store: Arc<RbdStore>,
    shown: String,
    image: Image,
    offset: u64,
    length: u64,
    chunk: usize,
) -> crate::ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(2);
    tokio::task::spawn_blocking(move || {
        let mut at = offset;
        let end = offset + length;
        while at < end {
            let want = usize::try_from((end - at).min(chunk as u64)).unwrap_or(chunk);
            let mut buf = vec![0u8; want];
            let item = match image.read_at(at, &mut buf) {
                Ok(0) => Err(StoreError::Truncated {
                    expected: length,
                    delivered: at - offset,
                }),
                Ok(n) => {
                    buf.truncate(n);
                    at += n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(store.error(&shown, e)),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Writes one upload into a new RBD image; removes it when dropped before `commit`.
struct RbdWriter {
    store: String,
    pool: Arc<Pool>,
    pending: Pending,
    name: String,
    image: Option<Image>,
    location: String,
    /// Bytes written so far (the next write's offset).
    written: u64,
    /// The image's current size.
    size: u64,
    chunk: u64,
    thin: bool,
    committed: bool,
}

impl RbdWriter {
    fn create(store: &RbdStore, c: &Connected, name: &str, size: u64) -> Result<Self, StoreError> {
        let order = store.chunk_size_bytes().trailing_zeros();
        c.pool
            .create_image(name, size, order)
            .map_err(|e| store.error(name, e))?;
        // From here the writer owns the image: dropping it removes the image.
        let mut w = Self {
            store: store.id.clone(),
            pool: Arc::clone(&c.pool),
            pending: Arc::clone(&store.pending),
            name: name.to_string(),
            image: None,
            location: format!("rbd://{}/{}/{name}/{SNAPSHOT}", c.fsid, store.cfg.pool),
            written: 0,
            size,
            chunk: store.chunk_size_bytes(),
            thin: store.cfg.thin_provisioning,
            committed: false,
        };
        w.image = Some(c.pool.open(name).map_err(|e| store.error(name, e))?);
        Ok(w)
    }

    fn failed(&self, what: &str, e: CephError) -> StoreError {
        let reason = format!("{what} of RBD image {} failed: {e}", self.name);
        match e.class() {
            ErrorClass::Full => StoreError::StorageFull {
                store: self.store.clone(),
                path: format!("pool of {}", self.location),
            },
            _ => StoreError::StoreUnavailable {
                store: self.store.clone(),
                reason,
            },
        }
    }

    fn image(&mut self) -> Result<&mut Image, StoreError> {
        self.image
            .as_mut()
            .ok_or_else(|| StoreError::Worker("rbd write after close".to_string()))
    }
}

impl BlockWriter for RbdWriter {
    fn write(&mut self, block: &[u8]) -> Result<(), StoreError> {
        let end = self.written + block.len() as u64;
        if end > self.size {
            // Grow by whole chunks, as Glance does; trimmed to the exact size at commit.
            let new_size = end.div_ceil(self.chunk) * self.chunk;
            let r = self.image()?.resize(new_size);
            r.map_err(|e| self.failed("resize", e))?;
            self.size = new_size;
        }
        let skip = self.thin && block.iter().all(|&b| b == 0);
        if !skip {
            let at = self.written;
            let r = self.image()?.write_all_at(at, block);
            r.map_err(|e| self.failed("write", e))?;
        }
        self.written = end;
        Ok(())
    }

    fn commit(mut self) -> Result<PathBuf, StoreError> {
        let written = self.written;
        if self.size != written {
            let r = self.image()?.resize(written);
            r.map_err(|e| self.failed("resize", e))?;
            self.size = written;
        }
        let r = self.image()?.flush();
        r.map_err(|e| self.failed("flush", e))?;
        let r = self.image()?.snap_create(SNAPSHOT);
        r.map_err(|e| self.failed("snapshot", e))?;
        let r = self.image()?.snap_protect(SNAPSHOT);
        r.map_err(|e| self.failed("snapshot protect", e))?;
        self.committed = true;
        Ok(PathBuf::new())
    }
}

impl Drop for RbdWriter {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Close the image before removing it (with its snapshot, if made).
        drop(self.image.take());
        if let Err(e) = remove_with_snapshot(&self.pool, &self.name) {
            log::warn!(
                "store {}: cannot remove partial RBD image {} now ({e}); retrying in the background",
                self.store,
                self.name
            );
            retry_removal(
                self.store.clone(),
                Arc::clone(&self.pool),
                Arc::clone(&self.pending),
                self.name.clone(),
            );
        }
    }
}

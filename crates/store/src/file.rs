//! The file store: image data as files in `filesystem_store_datadir` (or one of
//! `filesystem_store_datadirs`), which may be a local disk or an NFS share mounted by several
//! glance-api nodes. Writes go to a temporary file beside the final name, are fsync'd and then
//! linked into place, so no reader ever sees a partial image under its final name; anything that
//! goes wrong removes the temporary file.

use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use crate::config::FileConfig;
use crate::hashing::HashAlgo;
use crate::pipeline::{self, WriteLimits, Written};
use crate::{ByteRange, Fetched, FileRegion, StoreError};

/// Suffix of temporary files; the cleaner only ever looks at names ending in it.
const PARTIAL_SUFFIX: &str = ".partial";

/// Smallest read chunk of a download, whatever `filesystem_store_chunk_size` says.
const MIN_READ_CHUNK: usize = 1 << 20;

/// Reads a byte range of an image file as a stream of chunks, one chunk ahead: while one
/// chunk is being sent, the next is read on tokio's blocking pool. Each chunk is read with
/// one `pread` straight into the buffer that is sent (tokio's `File` reads into a buffer of
/// its own and copies out of it), and no thread is held between chunks, however slow the
/// client. Memory per download: at most [`SPARE_BUFFERS`] + 2 chunks, reused.
struct ChunkReader {
    file: std::sync::Arc<std::fs::File>,
    shown: String,
    chunk: usize,
    buffers: crate::buffers::Pool,
}

type ChunkRead = tokio::task::JoinHandle<std::io::Result<Bytes>>;

/// Chunk buffers kept for reuse per download (see [`crate::buffers`]).
const SPARE_BUFFERS: usize = 2;

impl ChunkReader {
    /// Starts reading `[from, to)` at `from`; `None` once there is nothing left.
    fn read(&self, from: u64, to: u64) -> Option<ChunkRead> {
        if from >= to {
            return None;
        }
        let len = usize::try_from(to - from).map_or(self.chunk, |n| n.min(self.chunk));
        let file = self.file.clone();
        let buffers = self.buffers.clone();
        Some(tokio::task::spawn_blocking(move || {
            let buf = read_exact_at(&file, from, len, buffers.take())?;
            Ok(buffers.share(buf))
        }))
    }

    /// The chunks of `[from, to)`; the first read starts when the stream is first polled, so
    /// a stream that is never polled reads nothing.
    fn stream(self, from: u64, to: u64) -> crate::ByteStream {
        Box::pin(futures_util::stream::try_unfold(
            (self, from, None),
            move |(reader, at, pending): (Self, u64, Option<ChunkRead>)| async move {
                let Some(pending) = pending.or_else(|| reader.read(at, to)) else {
                    return Ok(None);
                };
                let io = |e| StoreError::Io {
                    path: reader.shown.clone(),
                    source: e,
                };
                let bytes = pending
                    .await
                    .map_err(|e| io(std::io::Error::other(e)))?
                    .map_err(io)?;
                let next_at = at + bytes.len() as u64;
                let next = reader.read(next_at, to);
                Ok(Some((bytes, (reader, next_at, next))))
            },
        ))
    }
}

/// Reads exactly `len` bytes at `offset` into `buf` (emptied first); a file that ends first is
/// an error (an image file is never shorter than its recorded size unless something damaged
/// it).
fn read_exact_at(
    file: &std::fs::File,
    offset: u64,
    len: usize,
    mut buf: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    buf.clear();
    buf.reserve(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        // Appends to the buffer's unfilled capacity without initializing it first.
        let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)?;
        if n == 0 {
            return Err(std::io::Error::new(
                IoKind::UnexpectedEof,
                format!("the file ends at byte {at}, before the {len} bytes asked for at {offset}"),
            ));
        }
    }
    // The allocation may be larger than asked, and a read may have filled past `len`.
    buf.truncate(len);
    Ok(buf)
}

/// A file store instance (one per configured file backend).
#[derive(Debug)]
pub struct FileStore {
    id: String,
    cfg: FileConfig,
}

impl FileStore {
    /// Creates the store and prepares its directories (created if missing; g+x/o+x added when
    /// `filesystem_store_file_perm` grants group or other access, as Glance does). Problems are
    /// not fatal here: they are reported by [`FileStore::check`] (health) and by every write.
    pub fn new(id: &str, cfg: FileConfig) -> Self {
        let store = Self {
            id: id.to_string(),
            cfg,
        };
        for dir in store.dirs() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                log::error!(
                    "store {id}: cannot create datadir {}: {e}; uploads to this store will fail",
                    dir.display()
                );
                continue;
            }
            if let Some(perm) = store.cfg.file_perm {
                let extra = (if perm & 0o070 != 0 { 0o010 } else { 0 })
                    | (if perm & 0o007 != 0 { 0o001 } else { 0 });
                if extra != 0
                    && let Ok(meta) = std::fs::metadata(dir)
                {
                    let mode = meta.permissions().mode() | extra;
                    if let Err(e) =
                        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                    {
                        log::warn!("store {id}: cannot chmod {}: {e}", dir.display());
                    }
                }
            }
        }
        if let Err(why) = store.check() {
            log::error!("store {id}: {why}");
        }
        store
    }

    /// The store's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store's settings.
    pub fn config(&self) -> &FileConfig {
        &self.cfg
    }

    /// The configured directories, highest priority first.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.cfg.datadirs.iter().map(|d| d.path.as_path())
    }

    /// Checks every datadir: exists, is a directory, is writable (a probe file is created and
    /// removed), and is a mount point when `filesystem_store_require_mount` is set.
    pub fn check(&self) -> Result<(), String> {
        for dir in self.dirs() {
            self.check_dir(dir)?;
        }
        Ok(())
    }

    fn check_dir(&self, dir: &Path) -> Result<(), String> {
        let meta = std::fs::metadata(dir)
            .map_err(|e| format!("datadir {} cannot be used: {e}", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("datadir {} is not a directory", dir.display()));
        }
        if self.cfg.require_mount && !is_mount_point(dir) {
            return Err(format!(
                "datadir {} is not a mount point and filesystem_store_require_mount is set; \
                 mount the shared (NFS) file system there before uploading",
                dir.display()
            ));
        }
        let probe = dir.join(format!(".probe.{}{PARTIAL_SUFFIX}", uuid::Uuid::new_v4()));
        std::fs::File::create(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| format!("datadir {} is not writable: {e}", dir.display()))
    }

    /// Streams `data` into the store as image `image_id`: one pass computes size, MD5 and
    /// `algo`, enforces `limits` chunk by chunk, and writes; on success the file is fsync'd and
    /// appears under its final name. On any failure nothing is left behind.
    pub async fn add<S>(
        &self,
        image_id: &str,
        data: S,
        limits: &WriteLimits,
        algo: HashAlgo,
    ) -> Result<Written, StoreError>
    where
        S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
    {
        let dir = self.choose_dir(limits.declared_size.unwrap_or(0))?;
        if self.cfg.require_mount && !is_mount_point(&dir) {
            return Err(StoreError::StoreUnavailable {
                store: self.id.clone(),
                reason: format!(
                    "datadir {} is not a mount point (filesystem_store_require_mount is set); \
                     is the NFS share mounted?",
                    dir.display()
                ),
            });
        }
        let final_path = dir.join(image_id);
        if final_path.exists() {
            return Err(StoreError::Duplicate(image_id.to_string()));
        }
        let writer = FileWriter::create(
            &self.id,
            &dir,
            image_id,
            self.cfg.file_perm,
            self.cfg.direct_io,
        )?;
        let mut written = pipeline::pump(data, writer, limits, algo).await?;
        written.location = file_uri(&written.path);
        log::info!(
            "store {}: image {image_id} written: {} bytes at {}",
            self.id,
            written.size_bytes,
            written.path.display()
        );
        Ok(written)
    }

    /// Picks the directory for a new image: highest priority first; within a priority the one
    /// with the most free space, if `size_bytes` fits there (Glance's rule).
    fn choose_dir(&self, size_bytes: u64) -> Result<PathBuf, StoreError> {
        let dirs = &self.cfg.datadirs;
        if dirs.len() == 1 {
            return Ok(dirs[0].path.clone());
        }
        let mut priorities: Vec<i64> = dirs.iter().map(|d| d.priority).collect();
        priorities.sort_unstable_by(|a, b| b.cmp(a));
        priorities.dedup();
        for p in priorities {
            let best = dirs
                .iter()
                .filter(|d| d.priority == p)
                .filter_map(|d| free_bytes(&d.path).map(|free| (free, &d.path)))
                .max_by_key(|(free, _)| *free);
            if let Some((free, path)) = best
                && free >= size_bytes
            {
                return Ok(path.clone());
            }
        }
        Err(StoreError::StorageFull {
            store: self.id.clone(),
            path: dirs
                .iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Whether `path` lies inside one of this store's datadirs.
    pub fn contains(&self, path: &Path) -> bool {
        !path.components().any(|c| matches!(c, Component::ParentDir))
            && self.dirs().any(|d| path.starts_with(d))
    }

    fn local_path(&self, path: &Path) -> Result<PathBuf, StoreError> {
        if self.contains(path) {
            Ok(path.to_path_buf())
        } else {
            Err(StoreError::BadLocation(format!(
                "location {} is outside every datadir of store {}",
                path.display(),
                self.id
            )))
        }
    }

    /// Size of the image file.
    pub async fn size(&self, path: &Path) -> Result<u64, StoreError> {
        let path = self.local_path(path)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == IoKind::NotFound => Err(StoreError::NotFound(file_uri(&path))),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Streams the image file, or the part of it `range` names.
    pub async fn get(&self, path: &Path, range: Option<ByteRange>) -> Result<Fetched, StoreError> {
        let path = self.local_path(path)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => {
                return Err(StoreError::NotFound(file_uri(&path)));
            }
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| StoreError::io(&path, e))?
            .len();
        let (offset, length) = crate::resolve_range(range, size)?;
        let file = std::sync::Arc::new(file.into_std().await);
        let region = FileRegion {
            file: file.clone(),
            offset,
            length,
        };
        let reader = ChunkReader {
            file,
            shown: path.display().to_string(),
            chunk: self.cfg.chunk_size.max(MIN_READ_CHUNK),
            buffers: crate::buffers::Pool::new(SPARE_BUFFERS),
        };
        Ok(Fetched {
            total_size: Some(size),
            offset,
            length: Some(length),
            stream: reader.stream(offset, offset + length),
            file: Some(region),
        })
    }

    /// Removes the image file.
    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        let path = self.local_path(path)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Err(StoreError::NotFound(file_uri(&path))),
            Err(e) => Err(write_error(&self.id, &path, e)),
        }
    }

    /// Removes the temporary files of uploads of `image_id` (whose upload is known dead).
    pub fn remove_partials_of(&self, image_id: &str) -> usize {
        let prefix = format!(".{image_id}.");
        let mut removed = 0;
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&prefix)
                    && name.ends_with(PARTIAL_SUFFIX)
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Removes temporary files older than `filesystem_store_partial_max_age` (left by a writer
    /// that died, possibly on another node sharing the directory). A live writer modifies its
    /// file with every chunk, so its file is never old enough. Returns how many were removed.
    pub fn clean_stale_partials(&self) -> usize {
        let max_age = Duration::from_secs(self.cfg.partial_max_age_secs);
        let now = SystemTime::now();
        let mut removed = 0;
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX)) {
                    continue;
                }
                let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                    continue;
                };
                if now.duration_since(modified).unwrap_or_default() > max_age {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => {
                            removed += 1;
                            log::warn!(
                                "store {}: removed stale partial upload {}",
                                self.id,
                                entry.path().display()
                            );
                        }
                        Err(e) if e.kind() == IoKind::NotFound => {}
                        Err(e) => log::warn!(
                            "store {}: cannot remove stale {}: {e}",
                            self.id,
                            entry.path().display()
                        ),
                    }
                }
            }
        }
        removed
    }
}

/// The `file://` URI Glance records for a path.
pub fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether `dir` is a mount point: a different device from its parent, or the root.
pub fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Ok(parent)) = (std::fs::metadata(dir), std::fs::metadata(dir.join(".."))) else {
        return false;
    };
    me.dev() != parent.dev() || me.ino() == parent.ino()
}

/// Maps a write-side I/O error to the store error an operator can act on.
fn write_error(store: &str, path: &Path, e: std::io::Error) -> StoreError {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    let is = |errno: Errno| code == Some(errno.raw_os_error());
    if is(Errno::NOSPC) || is(Errno::FBIG) || is(Errno::DQUOT) {
        StoreError::StorageFull {
            store: store.to_string(),
            path: path.parent().unwrap_or(path).display().to_string(),
        }
    } else if e.kind() == IoKind::PermissionDenied || is(Errno::ROFS) || is(Errno::PERM) {
        StoreError::WriteDenied {
            store: store.to_string(),
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    } else {
        StoreError::io(path, e)
    }
}

/// Alignment of direct (`O_DIRECT`) writes: buffer address, length and file offset. 4 KiB
/// covers every common logical block size.
const DIRECT_ALIGN: usize = 4096;

/// Bytes gathered before one direct write.
const DIRECT_STAGE: usize = 1 << 20;

/// The direct-write stages of every upload in the process. Kept between uploads (at most
/// four idle, 4 MiB), so the next upload writes through memory already in use instead of
/// the allocator handing out, and the kernel faulting in, a fresh MiB each time; that
/// churn showed as glance-api's RSS moving by several MiB around a 4 GiB upload.
fn direct_stages() -> crate::buffers::Pool {
    static STAGES: std::sync::LazyLock<crate::buffers::Pool> =
        std::sync::LazyLock::new(|| crate::buffers::Pool::new(4));
    STAGES.clone()
}

/// Turns `O_DIRECT` on or off for an open file.
fn set_direct(file: &std::fs::File, on: bool) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let direct = rustix::fs::OFlags::DIRECT;
    rustix::fs::fcntl_setfl(file, if on { flags | direct } else { flags - direct })
}

/// A temporary file being written; removed on drop unless committed.
///
/// With `filesystem_store_direct_io` (the default) the data is written with `O_DIRECT`,
/// gathered into an aligned 1 MiB buffer: the disk reads it from there, and no copy goes
/// through the page cache. On this project's benchmark machine a buffered write cost 1.1–2.7
/// s of kernel CPU per GB (copying into newly allocated page-cache pages), as much as SHA-512
/// itself, while a direct write cost 0.2 s; an upload is CPU-bound, so that time went
/// straight off its rate. A file system that refuses direct I/O (at open or on a write) is
/// written through the page cache instead, and the unaligned tail of every image is.
#[derive(Debug)]
pub(crate) struct FileWriter {
    store: String,
    dir: PathBuf,
    temp: PathBuf,
    final_path: PathBuf,
    file: Option<std::fs::File>,
    perm: Option<u32>,
    committed: bool,
    /// Whether the file is open with `O_DIRECT`.
    direct: bool,
    /// Holds an aligned window of [`DIRECT_STAGE`] bytes at `stage_at` (direct mode only).
    stage: Option<crate::buffers::Lent>,
    stage_at: usize,
    /// Bytes gathered in the window.
    staged: usize,
}

impl FileWriter {
    fn create(
        store: &str,
        dir: &Path,
        image_id: &str,
        perm: Option<u32>,
        direct_io: bool,
    ) -> Result<Self, StoreError> {
        let temp = dir.join(format!(
            ".{image_id}.{}{PARTIAL_SUFFIX}",
            uuid::Uuid::new_v4()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| write_error(store, &temp, e))?;
        // Turned on after opening: an open with O_DIRECT that the file system refuses may
        // still have created the file.
        let direct = direct_io && set_direct(&file, true).is_ok();
        let (stage, stage_at) = if direct {
            let stage = direct_stages().lend_zeroed(DIRECT_STAGE + DIRECT_ALIGN);
            let at = stage.as_ptr().align_offset(DIRECT_ALIGN);
            (Some(stage), at)
        } else {
            (None, 0)
        };
        Ok(Self {
            store: store.to_string(),
            dir: dir.to_path_buf(),
            final_path: dir.join(image_id),
            temp,
            file: Some(file),
            perm,
            committed: false,
            direct,
            stage,
            stage_at,
            staged: 0,
        })
    }

    /// Appends a chunk.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        if !self.direct {
            let Some(file) = self.file.as_mut() else {
                return Err(StoreError::Worker("write after close".to_string()));
            };
            return file
                .write_all(data)
                .map_err(|e| write_error(&self.store, &self.temp, e));
        }
        while !data.is_empty() {
            let n = (DIRECT_STAGE - self.staged).min(data.len());
            let at = self.stage_at + self.staged;
            let Some(stage) = self.stage.as_deref_mut() else {
                return Err(StoreError::Worker(
                    "direct write without a stage".to_string(),
                ));
            };
            stage[at..at + n].copy_from_slice(&data[..n]);
            self.staged += n;
            data = &data[n..];
            if self.staged == DIRECT_STAGE {
                self.flush_stage()?;
            }
        }
        Ok(())
    }

    /// Writes out what the stage holds (direct mode). A write the file system refuses
    /// (`EINVAL`) turns direct I/O off for the rest of the file and is made again buffered,
    /// from where the file's offset stands.
    fn flush_stage(&mut self) -> Result<(), StoreError> {
        let Some(file) = self.file.as_ref() else {
            return Err(StoreError::Worker("write after close".to_string()));
        };
        let Some(stage) = self.stage.as_deref() else {
            return Err(StoreError::Worker(
                "direct write without a stage".to_string(),
            ));
        };
        let fail = |e: std::io::Error| write_error(&self.store, &self.temp, e);
        let (from, to) = (self.stage_at, self.stage_at + self.staged);
        let mut done = from;
        while done < to {
            match rustix::io::write(file, &stage[done..to]) {
                Ok(0) => return Err(fail(IoKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::INVAL) if self.direct => {
                    set_direct(file, false).map_err(|e| fail(e.into()))?;
                    self.direct = false;
                }
                Err(e) => return Err(fail(e.into())),
            }
        }
        self.staged = 0;
        Ok(())
    }

    /// Writes out the stage's last bytes (direct mode), through the page cache if they do
    /// not fill whole blocks.
    fn flush_tail(&mut self) -> Result<(), StoreError> {
        if self.staged == 0 {
            return Ok(());
        }
        if !self.staged.is_multiple_of(DIRECT_ALIGN)
            && let Some(file) = self.file.as_ref()
        {
            set_direct(file, false).map_err(|e| write_error(&self.store, &self.temp, e.into()))?;
            self.direct = false;
        }
        self.flush_stage()
    }

    /// Makes the data durable and visible under its final name.
    pub(crate) fn commit(mut self) -> Result<PathBuf, StoreError> {
        self.flush_tail()?;
        let file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Worker("commit after close".to_string()))?;
        // NFS reports a full disk at fsync/close time, so map errors here the same way.
        file.sync_all()
            .map_err(|e| write_error(&self.store, &self.temp, e))?;
        drop(file);
        if let Some(perm) = self.perm {
            std::fs::set_permissions(&self.temp, std::fs::Permissions::from_mode(perm))
                .map_err(|e| write_error(&self.store, &self.temp, e))?;
        }
        // A hard link never replaces an existing file, so two writers of one id cannot both win.
        match std::fs::hard_link(&self.temp, &self.final_path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.temp);
            }
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                return Err(StoreError::Duplicate(self.final_path.display().to_string()));
            }
            Err(_) if !self.final_path.exists() => {
                // File systems without hard links: rename (atomic, may replace).
                std::fs::rename(&self.temp, &self.final_path)
                    .map_err(|e| write_error(&self.store, &self.final_path, e))?;
            }
            Err(e) => return Err(write_error(&self.store, &self.final_path, e)),
        }
        self.committed = true;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            if let Err(e) = std::fs::remove_file(&self.temp)
                && e.kind() != IoKind::NotFound
            {
                log::error!(
                    "store {}: cannot remove partial upload {}: {e}",
                    self.store,
                    self.temp.display()
                );
            }
        }
    }
}

impl pipeline::BlockWriter for FileWriter {
    fn write(&mut self, block: &[u8]) -> Result<(), StoreError> {
        FileWriter::write(self, block)
    }

    fn commit(self) -> Result<PathBuf, StoreError> {
        FileWriter::commit(self)
    }
}

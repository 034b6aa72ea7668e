//! The upload pipeline: incoming chunks are checked against the caps and gathered into 256 KiB
//! blocks, which are handed to three workers running side by side — the file writer, the MD5
//! hasher and the `os_hash_algo` hasher — through small bounded channels, so memory stays flat
//! whatever the image size and the hashes cost no extra pass. If the caller goes away (its future dropped), the channels
//! close and the writer's drop guard removes the temporary file.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::StoreError;
use crate::hashing::{HashAlgo, Hasher};

/// Where the pipeline's blocks go: a store's writer. It runs on a blocking thread; dropped
/// without `commit` (any failure, or the caller gone) it removes what it wrote.
pub(crate) trait BlockWriter: Send + 'static {
    /// Appends a block.
    fn write(&mut self, block: &[u8]) -> Result<(), StoreError>;
    /// Makes the data durable and visible under its final name; returns its final path
    /// (empty for stores that keep no local file).
    fn commit(self) -> Result<PathBuf, StoreError>;
}

/// Blocks in flight per worker.
const DEPTH: usize = 4;

/// Bytes per block handed to the workers. The HTTP server delivers a body in chunks of a few
/// KiB to tens of KiB; passing each on cost three thread wake-ups per chunk, and each chunk
/// held on to a piece of the server's read buffer until the slowest worker was done with
/// it, so the server kept reading into newly allocated memory. Copied into a block at once
/// (a copy within the cache), a chunk is dropped straight away and the server's buffer is
/// reused; the blocks come from a pool and are reused too (see [`crate::buffers`]).
const BLOCK: usize = 256 << 10;

/// Caps checked on every chunk.
#[derive(Debug, Clone, Default)]
pub struct WriteLimits {
    /// The most bytes accepted, with the reason shown when exceeded (e.g. "image_size_cap of
    /// 1099511627776 bytes" or "user_storage_quota"); over it → a 413-kind error.
    pub cap: Option<(u64, String)>,
    /// The size the image declared; any other size → a 400-kind error.
    pub declared_size: Option<u64>,
}

/// What a finished write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The location URI to record (`file:///...`).
    pub location: String,
    /// Final path on disk (file stores; empty for stores that keep no local file).
    pub path: PathBuf,
    /// Bytes written.
    pub size_bytes: u64,
    /// MD5 hex (`checksum`).
    pub checksum: String,
    /// `os_hash_algo`.
    pub os_hash_algo: String,
    /// `os_hash_value`.
    pub os_hash_value: String,
}

fn hash_worker(algo: HashAlgo, mut rx: mpsc::Receiver<Bytes>) -> Result<String, StoreError> {
    let mut h: Hasher = algo.hasher();
    while let Some(chunk) = rx.blocking_recv() {
        h.update(&chunk);
    }
    h.finish_hex()
        .map_err(|e| StoreError::Worker(e.to_string()))
}

/// The blocks of every upload in the process, kept between uploads (at most four uploads'
/// worth idle, 6 MiB) so that the next upload reuses memory already touched instead of the
/// allocator handing out fresh pages that the kernel must fault in.
fn upload_blocks() -> crate::buffers::Pool {
    static BLOCKS: std::sync::LazyLock<crate::buffers::Pool> =
        std::sync::LazyLock::new(|| crate::buffers::Pool::new(4 * (DEPTH + 2)));
    BLOCKS.clone()
}

/// An empty block with room for [`BLOCK`] bytes.
fn take_block(buffers: &crate::buffers::Pool) -> Vec<u8> {
    let mut b = buffers.take();
    b.reserve_exact(BLOCK);
    b
}

/// Runs the pipeline to the end and commits the file, or removes it on any failure.
pub(crate) async fn pump<S, W>(
    mut data: S,
    writer: W,
    limits: &WriteLimits,
    algo: HashAlgo,
) -> Result<Written, StoreError>
where
    S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
    W: BlockWriter,
{
    let (wtx, mut wrx) = mpsc::channel::<Bytes>(DEPTH);
    let (mtx, mrx) = mpsc::channel::<Bytes>(DEPTH);
    let (htx, hrx) = mpsc::channel::<Bytes>(DEPTH);
    let writer_task = tokio::task::spawn_blocking(move || {
        let mut w = writer;
        while let Some(chunk) = wrx.blocking_recv() {
            w.write(&chunk)?;
        }
        Ok::<_, StoreError>(w)
    });
    let md5_task = tokio::task::spawn_blocking(move || hash_worker(HashAlgo::Md5, mrx));
    let hash_task = tokio::task::spawn_blocking(move || hash_worker(algo, hrx));

    let buffers = upload_blocks();
    let mut block = take_block(&buffers);
    // Hands a block to the three workers; false when the writer stopped (on an error, which
    // its result says).
    let send = |b: Bytes| {
        let (wtx, mtx, htx) = (&wtx, &mtx, &htx);
        async move {
            if wtx.send(b.clone()).await.is_err() {
                return false;
            }
            let _ = mtx.send(b.clone()).await;
            let _ = htx.send(b).await;
            true
        }
    };
    let mut total: u64 = 0;
    let fed: Result<(), StoreError> = async {
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            if chunk.is_empty() {
                continue;
            }
            total = total.saturating_add(chunk.len() as u64);
            if let Some((cap, why)) = &limits.cap
                && total > *cap
            {
                return Err(StoreError::TooLarge(format!(
                    "image data exceeds {why}: more than {cap} bytes"
                )));
            }
            if let Some(declared) = limits.declared_size
                && total > declared
            {
                return Err(StoreError::SizeMismatch(format!(
                    "image data is larger than the image's declared size of {declared} bytes"
                )));
            }
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = (BLOCK - block.len()).min(rest.len());
                block.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if block.len() == BLOCK {
                    let full = std::mem::replace(&mut block, take_block(&buffers));
                    if !send(buffers.share(full)).await {
                        return Ok(());
                    }
                }
            }
        }
        if !block.is_empty() {
            let last = std::mem::take(&mut block);
            if !send(buffers.share(last)).await {
                return Ok(());
            }
        }
        if let Some(declared) = limits.declared_size
            && total != declared
        {
            return Err(StoreError::SizeMismatch(format!(
                "image data has {total} bytes but the image declared {declared}"
            )));
        }
        Ok(())
    }
    .await;
    drop((wtx, mtx, htx));
    let writer = writer_task
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
    let checksum = md5_task
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
    let os_hash_value = hash_task
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
    // On a feed error the writer is dropped here, which removes the temporary file.
    fed?;
    let (checksum, os_hash_value) = (checksum?, os_hash_value?);
    let path = tokio::task::spawn_blocking(move || writer.commit())
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
    Ok(Written {
        location: String::new(),
        path,
        size_bytes: total,
        checksum,
        os_hash_algo: algo.name().to_string(),
        os_hash_value,
    })
}

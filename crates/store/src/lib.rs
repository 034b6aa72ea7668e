//! Image bytes: the file store (local disk or an NFS share several glance-api nodes mount),
//! the read-only http store, and the set of stores a glance-api is configured with
//! (single-store `stores = file,http` or multi-store `enabled_backends`).
//!
//! Writes stream through one pass that enforces the byte caps and computes size, MD5 and the
//! configured `os_hash_algo`; reads stream with an optional byte range. This crate never
//! touches SQL and never speaks HTTP to clients; glance-api is its only user.

mod buffers;
pub mod config;
mod error;
pub mod file;
pub mod hashing;
pub mod http;
mod integrity;
mod pipeline;
#[cfg(feature = "rbd")]
pub mod rbd;
mod stores;

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use config::{BackendConfig, BackendKind, FileConfig, HttpConfig, RbdConfig, StoresConfig};
pub use error::StoreError;
pub use file::FileStore;
pub use hashing::HashAlgo;
pub use http::HttpStore;
pub use pipeline::{WriteLimits, Written};
pub use stores::{Added, Store, StoreDetail, StoreEntry, StoreInfo, Stores, UploadTarget};

/// The one byte-stream type of this crate (not `Send`: actix bodies need not be).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>>>>;

/// A byte range to read: `length` bytes from `offset`, or to the end when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// How many bytes; `None` reads to the end.
    pub length: Option<u64>,
}

/// Data being read from a store.
pub struct Fetched {
    /// The whole image's size, when the store knows it.
    pub total_size: Option<u64>,
    /// Where the stream starts.
    pub offset: u64,
    /// How many bytes the stream carries, when known.
    pub length: Option<u64>,
    /// The bytes. Nothing is read until it is first polled.
    pub stream: ByteStream,
    /// Where the same bytes lie in a local file, for a caller that can send them from there
    /// without reading them (`sendfile`); `None` for remote stores.
    pub file: Option<FileRegion>,
}

/// The bytes of a [`Fetched`] as a region of an open file.
#[derive(Clone, Debug)]
pub struct FileRegion {
    /// The image file, open for reading.
    pub file: std::sync::Arc<std::fs::File>,
    /// Where the bytes start in it.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("total_size", &self.total_size)
            .field("offset", &self.offset)
            .field("length", &self.length)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Turns an optional range into `(offset, length)` within `size` bytes; a range starting past
/// the end is unsatisfiable (an empty image has no satisfiable range but a whole read).
pub fn resolve_range(range: Option<ByteRange>, size: u64) -> Result<(u64, u64), StoreError> {
    match range {
        None => Ok((0, size)),
        Some(r) if r.offset >= size && !(r.offset == 0 && r.length.is_none()) => {
            Err(StoreError::RangeNotSatisfiable {
                offset: r.offset,
                size,
            })
        }
        Some(r) => {
            let left = size - r.offset.min(size);
            Ok((r.offset, r.length.map_or(left, |l| l.min(left))))
        }
    }
}

/// Skips `offset` bytes of `stream` and passes on at most `length` after them.
pub fn slice_stream(stream: ByteStream, offset: u64, length: u64) -> ByteStream {
    Box::pin(
        stream
            .scan((offset, length), |(skip, left), item| {
                // Returning None ends the stream as soon as the range is complete.
                let out = match item {
                    _ if *left == 0 => None,
                    Err(e) => Some(Some(Err(e))),
                    Ok(chunk) => {
                        let n = chunk.len() as u64;
                        if *skip >= n {
                            *skip -= n;
                            Some(None)
                        } else {
                            let start = usize::try_from(*skip).unwrap_or(0);
                            *skip = 0;
                            let take = (*left).min(n - start as u64);
                            *left -= take;
                            let end = start + usize::try_from(take).unwrap_or(0);
                            Some(Some(Ok(chunk.slice(start..end))))
                        }
                    }
                };
                std::future::ready(out)
            })
            .filter_map(std::future::ready),
    )
}

/// The cause chain of an error, joined for one message.
pub(crate) use glance_model::error::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_within_the_size() {
        let r = |offset, length| Some(ByteRange { offset, length });
        assert_eq!(resolve_range(None, 10).unwrap(), (0, 10));
        assert_eq!(resolve_range(r(5, None), 10).unwrap(), (5, 5));
        assert_eq!(resolve_range(r(2, Some(3)), 10).unwrap(), (2, 3));
        assert_eq!(resolve_range(r(8, Some(30)), 10).unwrap(), (8, 2));
        assert!(resolve_range(r(10, None), 10).is_err());
        assert_eq!(resolve_range(r(0, None), 0).unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn slices_cut_across_chunks() {
        let chunks: Vec<Result<Bytes, StoreError>> = vec![
            Ok(Bytes::from_static(b"0123")),
            Ok(Bytes::from_static(b"4567")),
            Ok(Bytes::from_static(b"89")),
        ];
        let s: ByteStream = Box::pin(futures_util::stream::iter(chunks));
        let out: Vec<u8> = slice_stream(s, 3, 4)
            .map(|c| c.unwrap().to_vec())
            .collect::<Vec<_>>()
            .await
            .concat();
        assert_eq!(out, b"3456");
    }
}

//! Reusable data buffers. A chunk handed on as `Bytes` (to the HTTP server, or to the upload's
//! writer and hashers) comes back to its pool when the last `Bytes` pointing into it is
//! dropped, whatever thread drops it, and the next chunk is filled into it again. A fresh
//! buffer per chunk instead cost a page fault per 4 KiB of every chunk, and the allocator,
//! seeing each chunk freed on another thread than the one that allocated it, held on to the
//! freed memory: glance-api grew by up to 7 MiB over a 4 GiB download.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// A pool of buffers, shared by one transfer's reader and the chunks it handed on.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    keep: usize,
}

impl Pool {
    /// A pool keeping at most `keep` buffers for reuse.
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            spare: Arc::default(),
            keep,
        }
    }

    /// An empty buffer: a returned one if any (its capacity kept), else a new one.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut buf = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf
    }

    /// `buf` as `Bytes` that give the buffer back to this pool when the last of them goes.
    pub(crate) fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Lent {
            buf,
            pool: self.clone(),
        })
    }

    /// A buffer of exactly `len` zero bytes, lent until the [`Lent`] is dropped.
    pub(crate) fn lend_zeroed(&self, len: usize) -> Lent {
        let mut buf = self.take();
        buf.resize(len, 0);
        Lent {
            buf,
            pool: self.clone(),
        }
    }
}

/// A buffer out of its [`Pool`] (written through `DerefMut`, or owned by shared `Bytes`); it
/// goes back to the pool, if the pool has room, when dropped.
#[derive(Debug)]
pub(crate) struct Lent {
    buf: Vec<u8>,
    pool: Pool,
}

impl std::ops::Deref for Lent {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl std::ops::DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut spare = self
            .pool
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if spare.len() < self.pool.keep {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_bytes_is_dropped() {
        let pool = Pool::new(1);
        let mut buf = pool.take();
        buf.extend_from_slice(b"abc");
        let ptr = buf.as_ptr();
        let shared = pool.share(buf);
        let copy = shared.slice(1..);
        drop(shared);
        assert!(
            pool.spare.lock().unwrap().is_empty(),
            "returned while still in use"
        );
        assert_eq!(&copy[..], b"bc");
        drop(copy);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr, "the same buffer is handed out again");
        assert!(again.is_empty() && again.capacity() >= 3);
    }

    #[test]
    fn a_lent_buffer_is_zeroed_and_comes_back() {
        let pool = Pool::new(1);
        let mut lent = pool.lend_zeroed(16);
        lent[3] = 7;
        let ptr = lent.as_ptr();
        drop(lent);
        let again = pool.lend_zeroed(8);
        assert_eq!(again.as_ptr(), ptr, "the same buffer is lent again");
        assert_eq!(&again[..], &[0u8; 8], "zeroed again, at the new length");
    }

    #[test]
    fn the_pool_keeps_at_most_its_limit() {
        let pool = Pool::new(1);
        let (a, b) = (pool.share(vec![1; 8]), pool.share(vec![2; 8]));
        drop((a, b));
        assert_eq!(pool.spare.lock().unwrap().len(), 1);
    }
}

//! The safe wrapper over `ffi`: owned handles, checked return codes, C strings made here.
#![expect(unsafe_code, reason = "calls into librados and librbd through ffi")]

use std::ffi::{CString, c_char, c_int};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use crate::{CephError, Result, errno, ffi};

fn check(call: &'static str, rc: c_int) -> Result<()> {
    if rc < 0 {
        Err(CephError { call, errno: -rc })
    } else {
        Ok(())
    }
}

fn cstr(call: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| CephError {
        call,
        errno: errno::EINVAL,
    })
}

/// A connected cluster handle (`rados_t`). librados handles may be shared between threads.
#[derive(Debug)]
pub struct Cluster {
    handle: ffi::RadosT,
}

// SAFETY: librados documents its cluster handle as thread-safe; it is only freed in Drop.
unsafe impl Send for Cluster {}
// SAFETY: as above; every method takes &self and librados locks internally.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// Connects as cephx user `user` (`glance` or `client.glance`), reading the config file
    /// `conf` (which must name the monitors: without one librados would ask DNS), then setting
    /// each `(option, value)` of `options` (e.g. `client_mount_timeout`).
    pub fn connect(conf: &Path, user: &str, options: &[(&str, &str)]) -> Result<Arc<Self>> {
        let name = if user.starts_with("client.") {
            user.to_owned()
        } else {
            format!("client.{user}")
        };
        let name = cstr("rados_create2", &name)?;
        let cluster_name = cstr("rados_create2", "ceph")?;
        let conf = cstr("rados_conf_read_file", &conf.to_string_lossy())?;
        let mut handle: ffi::RadosT = ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated strings that outlive the call.
        check("rados_create2", unsafe {
            ffi::rados_create2(&mut handle, cluster_name.as_ptr(), name.as_ptr(), 0)
        })?;
        // From here the handle is owned: Drop shuts it down on every error path.
        let cluster = Cluster { handle };
        // SAFETY: live handle, NUL-terminated path.
        check("rados_conf_read_file", unsafe {
            ffi::rados_conf_read_file(cluster.handle, conf.as_ptr())
        })?;
        for (option, value) in options {
            let o = cstr("rados_conf_set", option)?;
            let v = cstr("rados_conf_set", value)?;
            // SAFETY: live handle, NUL-terminated strings.
            check("rados_conf_set", unsafe {
                ffi::rados_conf_set(cluster.handle, o.as_ptr(), v.as_ptr())
            })?;
        }
        // SAFETY: live, configured handle.
        check("rados_connect", unsafe {
            ffi::rados_connect(cluster.handle)
        })?;
        Ok(Arc::new(cluster))
    }

    /// The cluster's fsid (a UUID), as in `rbd://<fsid>/...` locations.
    pub fn fsid(&self) -> Result<String> {
        let mut buf = [0u8; 64];
        // SAFETY: the buffer is writable for its whole length.
        let rc = unsafe {
            ffi::rados_cluster_fsid(self.handle, buf.as_mut_ptr().cast::<c_char>(), buf.len())
        };
        check("rados_cluster_fsid", rc)?;
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Opens pool `name` for I/O.
    pub fn pool(self: &Arc<Self>, name: &str) -> Result<Arc<Pool>> {
        let c = cstr("rados_ioctx_create", name)?;
        let mut handle: ffi::IoCtxT = ptr::null_mut();
        // SAFETY: live cluster handle, valid out-pointer.
        check("rados_ioctx_create", unsafe {
            ffi::rados_ioctx_create(self.handle, c.as_ptr(), &mut handle)
        })?;
        Ok(Arc::new(Pool {
            handle,
            _cluster: Arc::clone(self),
        }))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle came from rados_create2 and nothing uses it after this (every pool
        // holds an Arc of the cluster, so none is left).
        unsafe { ffi::rados_shutdown(self.handle) }
    }
}

/// An open pool (`rados_ioctx_t`).
#[derive(Debug)]
pub struct Pool {
    handle: ffi::IoCtxT,
    _cluster: Arc<Cluster>,
}

// SAFETY: librados I/O contexts may be used from several threads for the calls made here
// (image create/open/remove); the handle is only destroyed in Drop.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    /// Creates a format 2 image `name` of `size` bytes with objects of `2^order` bytes and the
    /// layering feature (what clones need).
    pub fn create_image(&self, name: &str, size: u64, order: u32) -> Result<()> {
        let c = cstr("rbd_create2", name)?;
        let mut order = c_int::try_from(order).map_err(|_| CephError {
            call: "rbd_create2",
            errno: errno::EINVAL,
        })?;
        // SAFETY: live ioctx, NUL-terminated name, valid pointer to order.
        check("rbd_create2", unsafe {
            ffi::rbd_create2(
                self.handle,
                c.as_ptr(),
                size,
                ffi::FEATURE_LAYERING,
                &mut order,
            )
        })
    }

    /// Removes image `name` (it must have no snapshots).
    pub fn remove_image(&self, name: &str) -> Result<()> {
        let c = cstr("rbd_remove", name)?;
        // SAFETY: live ioctx, NUL-terminated name.
        check("rbd_remove", unsafe {
            ffi::rbd_remove(self.handle, c.as_ptr())
        })
    }

    /// Opens image `name` for writing (at its head).
    pub fn open(self: &Arc<Self>, name: &str) -> Result<Image> {
        self.open_image("rbd_open", name, None)
    }

    /// Opens image `name` read-only, at snapshot `snap` if given.
    pub fn open_read_only(self: &Arc<Self>, name: &str, snap: Option<&str>) -> Result<Image> {
        self.open_image("rbd_open_read_only", name, snap)
    }

    fn open_image(
        self: &Arc<Self>,
        call: &'static str,
        name: &str,
        snap: Option<&str>,
    ) -> Result<Image> {
        let c = cstr(call, name)?;
        let s = snap.map(|s| cstr(call, s)).transpose()?;
        let snap_ptr = s.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        let mut handle: ffi::ImageT = ptr::null_mut();
        // SAFETY: live ioctx, NUL-terminated strings (or null snap), valid out-pointer.
        let rc = unsafe {
            if snap.is_none() && call == "rbd_open" {
                ffi::rbd_open(self.handle, c.as_ptr(), &mut handle, snap_ptr)
            } else {
                ffi::rbd_open_read_only(self.handle, c.as_ptr(), &mut handle, snap_ptr)
            }
        };
        check(call, rc)?;
        Ok(Image {
            handle,
            _pool: Arc::clone(self),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the handle came from rados_ioctx_create; every image holds an Arc of its pool.
        unsafe { ffi::rados_ioctx_destroy(self.handle) }
    }
}

/// An open RBD image (`rbd_image_t`), at its head or at a snapshot.
#[derive(Debug)]
pub struct Image {
    handle: ffi::ImageT,
    _pool: Arc<Pool>,
}

// SAFETY: an image handle may move between threads; it is not Sync, so one thread at a time
// uses it.
unsafe impl Send for Image {}

impl Image {
    /// The image's size in bytes.
    pub fn size(&self) -> Result<u64> {
        let mut size = 0u64;
        // SAFETY: live image, valid out-pointer.
        check("rbd_get_size", unsafe {
            ffi::rbd_get_size(self.handle, &mut size)
        })?;
        Ok(size)
    }

    /// Grows or shrinks the image to `size` bytes.
    pub fn resize(&mut self, size: u64) -> Result<()> {
        // SAFETY: live image.
        check("rbd_resize", unsafe { ffi::rbd_resize(self.handle, size) })
    }

    /// Writes all of `data` at `offset` (which must lie within the image's size).
    pub fn write_all_at(&mut self, mut offset: u64, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            // SAFETY: live image; the buffer is readable for data.len() bytes.
            let n = unsafe {
                ffi::rbd_write2(
                    self.handle,
                    offset,
                    data.len(),
                    data.as_ptr().cast::<c_char>(),
                    0,
                )
            };
            if n < 0 {
                return Err(CephError {
                    call: "rbd_write2",
                    errno: errno_of(n),
                });
            }
            if n == 0 {
                return Err(CephError {
                    call: "rbd_write2",
                    errno: errno::ENOSPC,
                });
            }
            let n = n.unsigned_abs();
            data = &data[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at or past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: live image; the buffer is writable for buf.len() bytes.
        let n = unsafe {
            ffi::rbd_read2(
                self.handle,
                offset,
                buf.len(),
                buf.as_mut_ptr().cast::<c_char>(),
                0,
            )
        };
        if n < 0 {
            // librbd refuses a read that starts at or past the end (EINVAL); that is the end.
            if errno_of(n) == errno::EINVAL && self.size().is_ok_and(|size| offset >= size) {
                return Ok(0);
            }
            return Err(CephError {
                call: "rbd_read2",
                errno: errno_of(n),
            });
        }
        Ok(n.unsigned_abs())
    }

    /// Waits until every write so far is on the OSDs.
    pub fn flush(&mut self) -> Result<()> {
        // SAFETY: live image.
        check("rbd_flush", unsafe { ffi::rbd_flush(self.handle) })
    }

    /// Creates snapshot `snap` of the image's current content.
    pub fn snap_create(&mut self, snap: &str) -> Result<()> {
        self.snap_call("rbd_snap_create", snap, ffi::rbd_snap_create)
    }

    /// Removes snapshot `snap` (it must not be protected).
    pub fn snap_remove(&mut self, snap: &str) -> Result<()> {
        self.snap_call("rbd_snap_remove", snap, ffi::rbd_snap_remove)
    }

    /// Protects snapshot `snap`, so it can be cloned and not removed.
    pub fn snap_protect(&mut self, snap: &str) -> Result<()> {
        self.snap_call("rbd_snap_protect", snap, ffi::rbd_snap_protect)
    }

    /// Unprotects snapshot `snap`; fails with EBUSY while clones of it exist.
    pub fn snap_unprotect(&mut self, snap: &str) -> Result<()> {
        self.snap_call("rbd_snap_unprotect", snap, ffi::rbd_snap_unprotect)
    }

    /// Whether snapshot `snap` is protected.
    pub fn snap_is_protected(&self, snap: &str) -> Result<bool> {
        let c = cstr("rbd_snap_is_protected", snap)?;
        let mut protected: c_int = 0;
        // SAFETY: live image, NUL-terminated name, valid out-pointer.
        check("rbd_snap_is_protected", unsafe {
            ffi::rbd_snap_is_protected(self.handle, c.as_ptr(), &mut protected)
        })?;
        Ok(protected != 0)
    }

    fn snap_call(
        &mut self,
        call: &'static str,
        snap: &str,
        f: unsafe extern "C" fn(ffi::ImageT, *const c_char) -> c_int,
    ) -> Result<()> {
        let c = cstr(call, snap)?;
        // SAFETY: live image, NUL-terminated snapshot name; f is one of the snapshot calls.
        check(call, unsafe { f(self.handle, c.as_ptr()) })
    }
}

fn errno_of(n: isize) -> i32 {
    i32::try_from(n.unsigned_abs()).unwrap_or(errno::EINVAL)
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: the handle came from rbd_open*; nothing uses it after this. A close error
        // (rare: a failed flush) has nowhere to go; writers flush before dropping.
        unsafe {
            ffi::rbd_close(self.handle);
        }
    }
}

/// See [`crate::end_with_exit_status`].
pub(crate) fn end_with_exit_status() {
    extern "C" fn quick(status: c_int, _: *mut std::ffi::c_void) {
        // SAFETY: `_exit` ends the process at once; nothing runs after it.
        unsafe { ffi::_exit(status) }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a handler that calls only `_exit`; its argument is unused.
    ONCE.call_once(|| unsafe {
        ffi::on_exit(quick, ptr::null_mut());
    });
}

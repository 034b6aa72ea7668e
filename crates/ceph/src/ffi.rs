//! The C functions of librados and librbd this crate calls, declared by hand from Debian's
//! `rados/librados.h` and `rbd/librbd.h` (Ceph 16). Handles are opaque pointers. Nothing here
//! is called from outside this crate; `lib.rs` wraps every call and checks its return code.
#![expect(
    unsafe_code,
    reason = "the declarations of the C functions of librados and librbd"
)]

use std::ffi::{c_char, c_int, c_void};

pub(crate) type RadosT = *mut c_void;
pub(crate) type IoCtxT = *mut c_void;
pub(crate) type ImageT = *mut c_void;

/// `RBD_FEATURE_LAYERING`: the one feature clones need.
pub(crate) const FEATURE_LAYERING: u64 = 1;

unsafe extern "C" {
    // glibc, for `crate::end_with_exit_status`.
    pub(crate) fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
    pub(crate) fn _exit(status: c_int) -> !;
    pub(crate) fn rados_create2(
        cluster: *mut RadosT,
        cluster_name: *const c_char,
        name: *const c_char,
        flags: u64,
    ) -> c_int;
    pub(crate) fn rados_conf_read_file(cluster: RadosT, path: *const c_char) -> c_int;
    pub(crate) fn rados_conf_set(
        cluster: RadosT,
        option: *const c_char,
        value: *const c_char,
    ) -> c_int;
    pub(crate) fn rados_connect(cluster: RadosT) -> c_int;
    pub(crate) fn rados_shutdown(cluster: RadosT);
    pub(crate) fn rados_cluster_fsid(cluster: RadosT, buf: *mut c_char, len: usize) -> c_int;
    pub(crate) fn rados_ioctx_create(
        cluster: RadosT,
        pool: *const c_char,
        ioctx: *mut IoCtxT,
    ) -> c_int;
    pub(crate) fn rados_ioctx_destroy(ioctx: IoCtxT);

    pub(crate) fn rbd_create2(
        ioctx: IoCtxT,
        name: *const c_char,
        size: u64,
        features: u64,
        order: *mut c_int,
    ) -> c_int;
    pub(crate) fn rbd_remove(ioctx: IoCtxT, name: *const c_char) -> c_int;
    pub(crate) fn rbd_open(
        ioctx: IoCtxT,
        name: *const c_char,
        image: *mut ImageT,
        snap: *const c_char,
    ) -> c_int;
    pub(crate) fn rbd_open_read_only(
        ioctx: IoCtxT,
        name: *const c_char,
        image: *mut ImageT,
        snap: *const c_char,
    ) -> c_int;
    pub(crate) fn rbd_close(image: ImageT) -> c_int;
    pub(crate) fn rbd_resize(image: ImageT, size: u64) -> c_int;
    pub(crate) fn rbd_get_size(image: ImageT, size: *mut u64) -> c_int;
    pub(crate) fn rbd_write2(
        image: ImageT,
        offset: u64,
        len: usize,
        buf: *const c_char,
        op_flags: c_int,
    ) -> isize;
    pub(crate) fn rbd_read2(
        image: ImageT,
        offset: u64,
        len: usize,
        buf: *mut c_char,
        op_flags: c_int,
    ) -> isize;
    pub(crate) fn rbd_flush(image: ImageT) -> c_int;
    pub(crate) fn rbd_snap_create(image: ImageT, snap: *const c_char) -> c_int;
    pub(crate) fn rbd_snap_remove(image: ImageT, snap: *const c_char) -> c_int;
    pub(crate) fn rbd_snap_protect(image: ImageT, snap: *const c_char) -> c_int;
    pub(crate) fn rbd_snap_unprotect(image: ImageT, snap: *const c_char) -> c_int;
    pub(crate) fn rbd_snap_is_protected(
        image: ImageT,
        snap: *const c_char,
        is_protected: *mut c_int,
    ) -> c_int;
}

//! A small safe binding to librados and librbd: connect to a cluster with an explicit config
//! file, open a pool, and create, write, read, resize, snapshot, protect and remove RBD images:
//! what Glance's rbd store does, nothing more.
//!
//! Every call is blocking (librados waits on the network); async callers run them on a blocking
//! thread. Every negative return code becomes a [`CephError`] naming the C function and the
//! errno. Handles are closed on drop, an image before its pool and a pool before its cluster
//! (each holds an `Arc` of its parent).

mod binding;
mod ffi;

pub use binding::{Cluster, Image, Pool};

/// Makes the process end with `_exit(status)` when it calls `exit(status)`, before
/// librados's own exit-time destructors run. For a process that cannot close its clients
/// before it exits (a test binary whose in-process servers outlive their tests): librados's
/// static destructors then throw a C++ exception inside a thread still in a librados call,
/// which aborts the process ("Rust cannot catch foreign exceptions") after its work is done.
/// glibc runs `on_exit` handlers in the reverse order of registration, and librados's were
/// registered when it was loaded, before `main`, so this one runs first. Rust flushes stdout
/// before it calls `exit`. A daemon closes its clients first and has no need of it.
pub fn end_with_exit_status() {
    binding::end_with_exit_status();
}

/// A librados or librbd call that failed: which one, and the errno it returned.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {}", std::io::Error::from_raw_os_error(*.errno))]
pub struct CephError {
    /// The C function (or the argument check before it).
    pub call: &'static str,
    /// The positive errno (librados and librbd return it negated).
    pub errno: i32,
}

/// errno values Ceph's clients return (Linux).
mod errno {
    pub(crate) const ENOENT: i32 = 2;
    pub(crate) const EEXIST: i32 = 17;
    pub(crate) const EBUSY: i32 = 16;
    pub(crate) const EINVAL: i32 = 22;
    pub(crate) const ENOSPC: i32 = 28;
    pub(crate) const EDQUOT: i32 = 122;
    pub(crate) const EPERM: i32 = 1;
    pub(crate) const EACCES: i32 = 13;
    pub(crate) const ENOTCONN: i32 = 107;
    pub(crate) const ESHUTDOWN: i32 = 108;
    pub(crate) const ETIMEDOUT: i32 = 110;
    pub(crate) const ECONNREFUSED: i32 = 111;
    pub(crate) const EHOSTUNREACH: i32 = 113;
}

/// What a caller does about a [`CephError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The image, snapshot or pool does not exist.
    NotFound,
    /// It exists already.
    Exists,
    /// It is in use: a protected snapshot with clones, an image with snapshots or watchers.
    Busy,
    /// The cluster is full or the pool's quota is reached.
    Full,
    /// The cephx user may not do this.
    Denied,
    /// The cluster cannot be reached or did not answer in time.
    Unreachable,
    /// A bad argument (a name with a NUL byte, a bad option value).
    Invalid,
    /// Anything else.
    Other,
}

impl CephError {
    /// Classifies the errno.
    pub fn class(&self) -> ErrorClass {
        use errno::*;
        match self.errno {
            ENOENT => ErrorClass::NotFound,
            EEXIST => ErrorClass::Exists,
            EBUSY => ErrorClass::Busy,
            ENOSPC | EDQUOT => ErrorClass::Full,
            EPERM | EACCES => ErrorClass::Denied,
            ENOTCONN | ESHUTDOWN | ETIMEDOUT | ECONNREFUSED | EHOSTUNREACH => {
                ErrorClass::Unreachable
            }
            EINVAL => ErrorClass::Invalid,
            _ => ErrorClass::Other,
        }
    }
}

/// Result of this crate's calls.
pub type Result<T> = std::result::Result<T, CephError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_the_errno() {
        let e = CephError {
            call: "rbd_snap_unprotect",
            errno: 16,
        };
        assert_eq!(e.class(), ErrorClass::Busy);
        let text = e.to_string();
        assert!(text.starts_with("rbd_snap_unprotect failed: "), "{text}");
        assert!(text.contains("busy"), "{text}");
        assert_eq!(
            CephError {
                call: "x",
                errno: 2
            }
            .class(),
            ErrorClass::NotFound
        );
        assert_eq!(
            CephError {
                call: "x",
                errno: 110
            }
            .class(),
            ErrorClass::Unreachable
        );
        assert_eq!(
            CephError {
                call: "x",
                errno: 5
            }
            .class(),
            ErrorClass::Other
        );
    }
}

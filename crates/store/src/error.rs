//! The store's error type. Each variant says what failed; `kind()` gives the protocol-neutral
//! kind the daemons map to a status (no HTTP codes here).

use glance_model::ErrorKind;

/// Everything that can go wrong moving image bytes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data is larger than a cap (image_size_cap, quota); the message names the cap.
    #[error("{0}")]
    TooLarge(String),
    /// The data's size differs from the size the image declared.
    #[error("{0}")]
    SizeMismatch(String),
    /// The store's disk is full.
    #[error("store {store}: not enough space in {path} for this image")]
    StorageFull {
        /// Store id.
        store: String,
        /// The directory that filled up.
        path: String,
    },
    /// The store may not be written (permissions, read-only file system).
    #[error(
        "store {store}: cannot write to {path}: {reason}; check the directory's owner, mode and mount"
    )]
    WriteDenied {
        /// Store id.
        store: String,
        /// The directory or file concerned.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The store failed its start-up check or its guard (e.g. an unmounted NFS datadir).
    #[error("store {store} is unavailable: {reason}")]
    StoreUnavailable {
        /// Store id.
        store: String,
        /// What an operator must fix.
        reason: String,
    },
    /// The store does not accept writes (http).
    #[error("store {0} is read-only")]
    ReadOnly(String),
    /// No store has this id.
    #[error("unknown store {0:?}; the enabled stores are listed at /v2/info/stores")]
    UnknownStore(String),
    /// The image data (or the location's target) does not exist.
    #[error("image data not found at {0}")]
    NotFound(String),
    /// The data is in use and cannot be removed (an RBD snapshot with clones).
    #[error("{0}")]
    InUse(String),
    /// Data for this image id already exists in the store.
    #[error("image data for {0} already exists in this store")]
    Duplicate(String),
    /// A location URL is malformed, refused or answered with an error.
    #[error("{0}")]
    BadLocation(String),
    /// A remote server (http store) cannot be reached.
    #[error("{0}")]
    RemoteUnavailable(String),
    /// The requested byte range lies outside the data.
    #[error("range starting at byte {offset} is outside the image's {size} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        offset: u64,
        /// The data's size.
        size: u64,
    },
    /// The stored data is not the size recorded for the image (changed or damaged outside
    /// Glance): it is not served. The location is left out of the message (clients may not
    /// see locations); the caller logs it.
    #[error(
        "the stored image data is {found} bytes but the image's recorded size is {recorded} \
         bytes; it is not served until an operator restores the image's data"
    )]
    SizeChanged {
        /// Where the data is.
        location: String,
        /// The size the image's record holds.
        recorded: u64,
        /// The size the store holds.
        found: u64,
    },
    /// The stored data ended before its recorded length during a transfer.
    #[error("the image data ended after {delivered} of its {expected} bytes")]
    Truncated {
        /// Bytes the transfer should have carried.
        expected: u64,
        /// Bytes there were.
        delivered: u64,
    },
    /// Reading the incoming data failed (client went away, bad body).
    #[error("reading the image data failed: {0}")]
    Source(String),
    /// The store configuration is invalid.
    #[error("{0}")]
    Config(#[from] glance_config::ConfigError),
    /// Any other I/O failure.
    #[error("store i/o failed on {path}")]
    Io {
        /// The file concerned.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A worker task went away.
    #[error("store worker failed: {0}")]
    Worker(String),
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge(_) | Self::StorageFull { .. } => ErrorKind::TooLarge,
            Self::SizeMismatch(_)
            | Self::ReadOnly(_)
            | Self::UnknownStore(_)
            | Self::BadLocation(_)
            | Self::Source(_) => ErrorKind::BadRequest,
            Self::WriteDenied { .. }
            | Self::StoreUnavailable { .. }
            | Self::RemoteUnavailable(_)
            | Self::SizeChanged { .. }
            | Self::Truncated { .. } => ErrorKind::Unavailable,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Duplicate(_) | Self::InUse(_) => ErrorKind::Conflict,
            Self::RangeNotSatisfiable { .. } => ErrorKind::RangeNotSatisfiable,
            Self::Config(_) | Self::Io { .. } | Self::Worker(_) => ErrorKind::Internal,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

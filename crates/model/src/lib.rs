//! Domain types and rules of the image service, shared by glance-api and glance-registry.
//!
//! This crate owns the meaning of an image: its fields, its status machine, visibility,
//! membership, formats, list filters and the caller's context. It does no I/O and knows
//! nothing about HTTP status codes, SQL or stores.

pub mod context;
pub mod error;
pub mod filter;
pub mod format;
pub mod image;
pub mod member;
pub mod metadef;
pub mod ownership;
pub mod patch;
pub mod quota;
pub mod replay;
pub mod status;
pub mod time;
pub mod visibility;
pub mod wire;

pub use context::{AuthToken, Context};
pub use error::{ErrorKind, ModelError};
pub use image::{Image, ImageId, Location};
pub use member::{Member, MemberStatus};
pub use status::ImageStatus;
pub use visibility::Visibility;

//! glance-registry and glance-manage: the only processes that talk SQL.
//!
//! The registry serves image metadata to glance-api over a versioned JSON/HTTP protocol
//! (`/v1/...`). It never touches image bytes.

pub mod app;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod daemon;
pub mod db;
pub mod error;
pub mod manage;
pub mod manage_metadefs;
pub mod metadefs;
pub mod routes;

pub use app::{AppState, configure, serve};
pub use config::RegistryConfig;
pub use error::RegistryError;

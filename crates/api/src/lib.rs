#![recursion_limit = "512"]
//! glance-api: the public Images API v2 (port 9292). It authenticates, applies policy, forwards
//! every metadata call to glance-registry over HTTP and moves image bytes between clients and
//! the stores. It never talks SQL.

pub mod app;
pub mod auth;
pub mod config;
pub mod cors;
pub mod daemon;
pub mod error;
pub mod http1;
pub mod import;
pub mod limits;
pub mod metadef_schemas;
pub mod metadef_view;
pub mod policy;
pub mod policy_engine;
pub mod protections;
pub mod recovery;
pub mod registry_client;
pub mod routes;
pub mod schemas;
pub mod startup;
pub mod view;

pub use app::{AppState, configure, serve};
pub use config::ApiConfig;
pub use error::ApiError;

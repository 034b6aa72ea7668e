//! Handlers of the public Images API v2. Thin: extract, check policy, call the registry or
//! the stores, render.

pub mod data;
pub mod health;
pub mod images;
pub mod info;
pub mod members;
pub mod openapi;
pub mod versions;

use glance_model::ImageId;

use crate::error::ApiError;

/// Parses an image id from a path segment; a malformed id is simply not found, as Glance.
pub fn image_id(raw: &str) -> Result<ImageId, ApiError> {
    raw.parse::<ImageId>()
        .map_err(|_| ApiError::not_found(format!("No image found with ID {raw}")))
}

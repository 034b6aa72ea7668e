//! Glance's static per-image quotas (`image_member_quota`, `image_property_quota`,
//! `image_tag_quota` in glance-api.conf) and the header that carries them to the registry.
//!
//! glance-api owns the options; glance-registry enforces them, inside the image's locked write,
//! so two concurrent additions at one below the limit cannot both pass. glance-api sends the
//! limits it is configured with on every write in [`HEADER_IMAGE_QUOTAS`] (`members=128,
//! properties=128, tags=128`): a limit left out is unlimited, so a registry that never sees the
//! header (an older glance-api) enforces nothing, and an older registry ignores it. This module
//! knows nothing of HTTP beyond the header's name and text.

use crate::error::{ErrorKind, ModelError};
use crate::image::ImageId;

/// Header glance-api sends on registry writes with its per-image limits.
pub const HEADER_IMAGE_QUOTAS: &str = "x-glance-image-quotas";

/// Glance's default of each per-image limit.
pub const DEFAULT_IMAGE_QUOTA: i64 = 128;

/// Per-image limits; `None` is unlimited (Glance: a negative value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageQuotas {
    /// `image_member_quota`: live members of one image.
    pub members: Option<u64>,
    /// `image_property_quota`: custom properties of one image.
    pub properties: Option<u64>,
    /// `image_tag_quota`: tags of one image.
    pub tags: Option<u64>,
}

/// A limit as glance-api.conf gives it: negative means unlimited.
pub fn limit(configured: i64) -> Option<u64> {
    u64::try_from(configured).ok()
}

impl ImageQuotas {
    /// Glance's defaults: 128 of each.
    pub fn glance_defaults() -> Self {
        let d = limit(DEFAULT_IMAGE_QUOTA);
        Self {
            members: d,
            properties: d,
            tags: d,
        }
    }

    /// The header's value, `None` when every limit is unlimited (nothing to send).
    pub fn to_header(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("members", self.members),
            ("properties", self.properties),
            ("tags", self.tags),
        ]
        .into_iter()
        .filter_map(|(name, max)| max.map(|m| format!("{name}={m}")))
        .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// Reads the header's value. A name this release does not know is skipped (a newer
    /// glance-api may send more limits than this registry enforces); a malformed pair is a
    /// 400-kind error.
    pub fn from_header(value: &str) -> Result<Self, ModelError> {
        let mut q = Self::default();
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                ModelError::bad_request(format!(
                    "{HEADER_IMAGE_QUOTAS}: {pair:?} is not name=count (count a whole number \
                     of at least 0)"
                ))
            };
            let (name, n) = pair
                .split_once('=')
                .filter(|(name, _)| !name.trim().is_empty())
                .ok_or_else(bad)?;
            let n: u64 = n.trim().parse().map_err(|_| bad())?;
            match name.trim() {
                "members" => q.members = Some(n),
                "properties" => q.properties = Some(n),
                "tags" => q.tags = Some(n),
                _ => {}
            }
        }
        Ok(q)
    }

    /// Refuses `attempted` members on image `id` when over `image_member_quota`.
    pub fn check_members(&self, id: &ImageId, attempted: u64) -> Result<(), ModelError> {
        over(
            self.members,
            attempted,
            Some(id),
            "members",
            "image_member_quota",
        )
    }

    /// Refuses `attempted` custom properties on image `id` (`None`: one being created) when
    /// over `image_property_quota`.
    pub fn check_properties(&self, id: Option<&ImageId>, attempted: u64) -> Result<(), ModelError> {
        over(
            self.properties,
            attempted,
            id,
            "properties",
            "image_property_quota",
        )
    }

    /// Refuses `attempted` tags on image `id` (`None`: one being created) when over
    /// `image_tag_quota`.
    pub fn check_tags(&self, id: Option<&ImageId>, attempted: u64) -> Result<(), ModelError> {
        over(self.tags, attempted, id, "tags", "image_tag_quota")
    }
}

/// The 413 of a count over its limit. The message ends as Glance's do (`Attempted: N,
/// Maximum: M`), so whoever reads Glance's answers reads these the same way.
fn over(
    max: Option<u64>,
    attempted: u64,
    id: Option<&ImageId>,
    what: &str,
    option: &str,
) -> Result<(), ModelError> {
    match max {
        Some(max) if attempted > max => {
            let image = id.map_or_else(|| "An image".to_string(), |id| format!("Image {id}"));
            Err(ModelError::new(
                ErrorKind::TooLarge,
                format!(
                    "{image} cannot have {attempted} {what}: {option} allows {max}; remove \
                     some first or ask the operator to raise it. Attempted: {attempted}, \
                     Maximum: {max}"
                ),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_leaves_unlimited_out() {
        let q = ImageQuotas {
            members: Some(1),
            properties: None,
            tags: Some(128),
        };
        let h = q.to_header().unwrap();
        assert_eq!(h, "members=1,tags=128");
        assert_eq!(ImageQuotas::from_header(&h).unwrap(), q);
        assert_eq!(ImageQuotas::default().to_header(), None);
        assert_eq!(
            ImageQuotas::from_header("").unwrap(),
            ImageQuotas::default()
        );
    }

    #[test]
    fn unknown_names_are_skipped_and_bad_pairs_refused() {
        let q = ImageQuotas::from_header(" tags = 3 , locations=10").unwrap();
        assert_eq!(q.tags, Some(3));
        assert_eq!(q.members, None);
        for bad in ["tags", "tags=-1", "tags=x", "=3"] {
            let e = ImageQuotas::from_header(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{bad}");
        }
    }

    #[test]
    fn negative_config_is_unlimited() {
        assert_eq!(limit(-1), None);
        assert_eq!(limit(0), Some(0));
        assert_eq!(ImageQuotas::glance_defaults().tags, Some(128));
    }

    #[test]
    fn checks_refuse_only_above_the_limit() {
        let id = ImageId::new();
        let q = ImageQuotas {
            members: Some(1),
            properties: Some(128),
            tags: Some(128),
        };
        assert!(q.check_tags(Some(&id), 128).is_ok());
        let e = q.check_tags(Some(&id), 129).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.message().contains("image_tag_quota"), "{}", e.message());
        assert!(
            e.message().ends_with("Attempted: 129, Maximum: 128"),
            "{}",
            e.message()
        );
        assert!(q.check_members(&id, 2).is_err());
        let e = q.check_properties(None, 129).unwrap_err();
        assert!(
            e.message().starts_with("An image cannot"),
            "{}",
            e.message()
        );
        assert!(ImageQuotas::default().check_tags(None, u64::MAX).is_ok());
    }
}

//! The image record: every Images v2 field, custom string properties, tags and locations,
//! and the rules on names and keys that every write must respect.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ErrorKind, ModelError};
use crate::status::ImageStatus;
use crate::visibility::Visibility;

/// Longest name, tag, property key, owner or member id Glance stores (`VARCHAR(255)`).
pub const MAX_STRING_LEN: usize = 255;

/// Longest custom property value, in bytes: Glance's `image_properties.value` is a `TEXT`
/// column, which holds at most 65,535 bytes on MySQL/MariaDB. SQLite and PostgreSQL would
/// store more, so the limit is checked here, before any database sees the value, and every
/// backend answers the same.
pub const MAX_PROPERTY_VALUE_BYTES: usize = 65_535;

/// Glance's reserved namespace for service-managed properties.
pub const RESERVED_PREFIX: &str = "os_glance";

/// Attributes a client may never write (Glance answers 403 "read-only").
pub const READ_ONLY_ATTRS: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
];

/// Names reserved as attributes, never usable as custom properties (Glance answers 403).
pub const RESERVED_ATTRS: &[&str] = &["location", "deleted", "deleted_at"];

/// Base attributes that are not custom properties.
pub const BASE_ATTRS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
    "min_ram",
    "min_disk",
    "direct_url",
    "locations",
    "self",
    "file",
    "schema",
    "stores",
];

/// An image id: a UUID, written lower-case with hyphens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub Uuid);

impl ImageId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for ImageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = ModelError;

    /// Accepts only the hyphenated 8-4-4-4-12 form, as Glance's image schema does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shaped = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        match Uuid::parse_str(s) {
            Ok(u) if shaped => Ok(Self(u)),
            _ => Err(ModelError::bad_request(format!(
                "'{}' is not a valid image id: expected a UUID like 8-4-4-4-12 hex digits",
                truncate(s, 64)
            ))),
        }
    }
}

/// Where an image's bytes live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Row id in `image_locations`.
    pub id: i64,
    /// The store URL (`file:///…`, `http://…`).
    pub url: String,
    /// Store metadata, e.g. `{"store": "fast"}` in multi-store.
    pub metadata: serde_json::Value,
    /// `active`, `pending_delete` or `deleted`.
    pub status: String,
}

/// An image as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The id.
    pub id: ImageId,
    /// Optional name, at most 255 characters.
    pub name: Option<String>,
    /// Lifecycle status.
    pub status: ImageStatus,
    /// Who may see it.
    pub visibility: Visibility,
    /// Protected images cannot be deleted.
    pub protected: bool,
    /// Hidden from default lists.
    pub os_hidden: bool,
    /// MD5 hex of the data.
    pub checksum: Option<String>,
    /// Algorithm of `os_hash_value` (default `sha512`).
    pub os_hash_algo: Option<String>,
    /// Hex digest of the data.
    pub os_hash_value: Option<String>,
    /// Owning project.
    pub owner: Option<String>,
    /// Data size in bytes.
    pub size: Option<i64>,
    /// Virtual disk size in bytes.
    pub virtual_size: Option<i64>,
    /// Container format.
    pub container_format: Option<String>,
    /// Disk format.
    pub disk_format: Option<String>,
    /// Minimum disk in GB.
    pub min_disk: i32,
    /// Minimum RAM in MB.
    pub min_ram: i32,
    /// Creation time (UTC).
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    #[serde(with = "crate::time::iso_opt")]
    pub updated_at: Option<NaiveDateTime>,
    /// Deletion time (UTC), for soft-deleted rows.
    #[serde(with = "crate::time::iso_opt", default)]
    pub deleted_at: Option<NaiveDateTime>,
    /// Soft-delete flag.
    #[serde(default)]
    pub deleted: bool,
    /// Tags, sorted, no duplicates.
    pub tags: Vec<String>,
    /// Custom string properties.
    pub properties: BTreeMap<String, String>,
    /// Data locations, in row order.
    pub locations: Vec<Location>,
}

/// Cuts a string to at most `max` characters for use in messages.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Checks a string attribute's length (`name`, `owner`, formats).
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), ModelError> {
    if value.chars().count() > max {
        Err(ModelError::bad_request(format!(
            "{field} is too long: {} characters, at most {max} allowed",
            value.chars().count()
        )))
    } else {
        Ok(())
    }
}

/// Checks a tag: non-empty, at most 255 characters.
pub fn check_tag(tag: &str) -> Result<(), ModelError> {
    if tag.is_empty() {
        return Err(ModelError::bad_request("A tag must not be empty"));
    }
    check_len("Tag", tag, MAX_STRING_LEN)
}

/// Checks a custom property key: not a base attribute, not reserved, not in the `os_glance`
/// namespace, at most 255 characters.
pub fn check_property_key(key: &str) -> Result<(), ModelError> {
    if key.is_empty() {
        return Err(ModelError::bad_request("A property name must not be empty"));
    }
    check_len("Property name", key, MAX_STRING_LEN)?;
    if READ_ONLY_ATTRS.contains(&key) {
        return Err(ModelError::new(
            ErrorKind::Forbidden,
            format!("Attribute '{key}' is read-only"),
        ));
    }
    if RESERVED_ATTRS.contains(&key) || key == "owner" || key == "locations" {
        return Err(ModelError::new(
            ErrorKind::Forbidden,
            format!("Attribute '{key}' is reserved"),
        ));
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(ModelError::new(
            ErrorKind::Forbidden,
            format!("Attribute '{key}' is in the reserved '{RESERVED_PREFIX}' namespace"),
        ));
    }
    Ok(())
}

/// Custom properties whose value Glance's image schema (`schema-image.json`, as shipped)
/// restricts to an image UUID or `null`: the kernel and ramdisk of an AMI-style image.
pub const UUID_PROPERTIES: &[&str] = &["kernel_id", "ramdisk_id"];

/// Whether `key` is one of [`UUID_PROPERTIES`], for which `null` is allowed and means "not
/// set".
pub fn is_uuid_property(key: &str) -> bool {
    UUID_PROPERTIES.contains(&key)
}

/// Checks a custom property's (string) value, whatever the backend (400 otherwise): at most
/// [`MAX_PROPERTY_VALUE_BYTES`], and for the properties Glance's image schema restricts,
/// `kernel_id` and `ramdisk_id`, a hyphenated UUID.
pub fn check_property_value(key: &str, value: &str) -> Result<(), ModelError> {
    if value.len() > MAX_PROPERTY_VALUE_BYTES {
        return Err(ModelError::bad_request(format!(
            "The value of property '{}' is too long: {} bytes, at most {MAX_PROPERTY_VALUE_BYTES} allowed",
            truncate(key, 64),
            value.len()
        )));
    }
    if is_uuid_property(key) && value.parse::<ImageId>().is_err() {
        return Err(ModelError::bad_request(format!(
            "Provided object does not match schema 'image': {:?} is not a UUID \
             (property '{key}' must be the id of an image, like \
             6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86, or null)",
            truncate(value, 64)
        )));
    }
    Ok(())
}

/// Checks `min_disk` / `min_ram`: Glance's schema requires a non-negative integer.
pub fn check_min(field: &str, value: i64) -> Result<i32, ModelError> {
    i32::try_from(value)
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| {
            ModelError::bad_request(format!(
                "{field} must be a non-negative integer no larger than {}, got {value}",
                i32::MAX
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_ramdisk_ids_must_be_uuids() {
        for key in ["kernel_id", "ramdisk_id"] {
            assert!(check_property_value(key, "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86").is_ok());
            assert!(check_property_value(key, "6BBE7CC2-EAE7-4C0F-B50D-A7160B0C6A86").is_ok());
            for bad in [
                "",
                "abc",
                "6bbe7cc2eae74c0fb50da7160b0c6a86",
                "6bbe7cc2-eae7-4c0f-b50d",
            ] {
                let err = check_property_value(key, bad).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::BadRequest, "{key}={bad}");
                assert!(err.message().contains(key), "{}", err.message());
            }
            assert!(is_uuid_property(key));
        }
        assert!(check_property_value("os_distro", "abc").is_ok());
        assert!(!is_uuid_property("kernel"));
    }

    #[test]
    fn image_id_accepts_only_hyphenated_uuids() {
        let id: ImageId = "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86".parse().unwrap();
        assert_eq!(id.to_string(), "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86");
        assert!(
            "6bbe7cc2eae74c0fb50da7160b0c6a86"
                .parse::<ImageId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<ImageId>().is_err());
        assert!(
            "{6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86}"
                .parse::<ImageId>()
                .is_err()
        );
        assert_eq!(
            "zz".parse::<ImageId>().unwrap_err().kind(),
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn property_keys_follow_glance_reservations() {
        assert!(check_property_key("os_distro").is_ok());
        assert!(check_property_key("hw_disk_bus").is_ok());
        for bad in [
            "status",
            "checksum",
            "size",
            "self",
            "file",
            "schema",
            "direct_url",
        ] {
            assert_eq!(
                check_property_key(bad).unwrap_err().kind(),
                ErrorKind::Forbidden,
                "{bad}"
            );
        }
        for bad in ["location", "deleted", "deleted_at", "owner", "locations"] {
            assert_eq!(
                check_property_key(bad).unwrap_err().kind(),
                ErrorKind::Forbidden
            );
        }
        assert_eq!(
            check_property_key("os_glance_import_task")
                .unwrap_err()
                .kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(
            check_property_key(&"k".repeat(256)).unwrap_err().kind(),
            ErrorKind::BadRequest
        );
        assert!(check_property_key(&"k".repeat(255)).is_ok());
        assert!(check_property_key("").is_err());
        assert!(check_property_value("k", &"v".repeat(MAX_PROPERTY_VALUE_BYTES)).is_ok());
        let e = check_property_value("k", &"v".repeat(MAX_PROPERTY_VALUE_BYTES + 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.message().contains("65535"), "{}", e.message());
        // Bytes, not characters: MySQL's TEXT limit is in bytes.
        assert!(check_property_value("k", &"é".repeat(MAX_PROPERTY_VALUE_BYTES / 2 + 1)).is_err());
    }

    #[test]
    fn tags_and_lengths() {
        assert!(check_tag("ubuntu").is_ok());
        assert!(check_tag("").is_err());
        assert!(check_tag(&"t".repeat(256)).is_err());
        assert!(check_len("name", &"é".repeat(255), 255).is_ok());
        assert!(check_len("name", &"é".repeat(256), 255).is_err());
    }

    #[test]
    fn min_values_are_non_negative_i32() {
        assert_eq!(check_min("min_ram", 512).unwrap(), 512);
        assert!(check_min("min_ram", -1).is_err());
        assert!(check_min("min_disk", i64::from(i32::MAX) + 1).is_err());
    }

    #[test]
    fn truncate_marks_cut_strings() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }
}

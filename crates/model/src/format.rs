//! Disk and container formats. Glance makes both lists configurable
//! (`[image_format] disk_formats / container_formats`); these are its defaults.

use crate::error::ModelError;

/// Glance's default `[image_format] disk_formats`.
pub const DEFAULT_DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// Glance's default `[image_format] container_formats`.
pub const DEFAULT_CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// The formats an operator allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    /// Allowed `disk_format` values.
    pub disk: Vec<String>,
    /// Allowed `container_format` values.
    pub container: Vec<String>,
}

impl Default for Formats {
    fn default() -> Self {
        Self {
            disk: DEFAULT_DISK_FORMATS.iter().map(|s| s.to_string()).collect(),
            container: DEFAULT_CONTAINER_FORMATS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Formats {
    /// Checks a `disk_format` value.
    pub fn check_disk(&self, value: &str) -> Result<(), ModelError> {
        check(value, &self.disk, "disk_format")
    }

    /// Checks a `container_format` value.
    pub fn check_container(&self, value: &str) -> Result<(), ModelError> {
        check(value, &self.container, "container_format")
    }
}

fn check(value: &str, allowed: &[String], field: &str) -> Result<(), ModelError> {
    if allowed.iter().any(|a| a == value) {
        Ok(())
    } else {
        Err(ModelError::bad_request(format!(
            "Invalid value '{value}' for {field}: expected one of {}",
            allowed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_glance() {
        let f = Formats::default();
        assert!(f.check_disk("qcow2").is_ok());
        assert!(f.check_disk("raw").is_ok());
        assert!(f.check_disk("ploop").is_ok());
        assert!(f.check_container("bare").is_ok());
        assert!(f.check_container("compressed").is_ok());
        assert!(f.check_disk("bare").is_err());
        assert!(f.check_container("qcow2").is_err());
        assert!(f.check_disk("QCOW2").is_err());
    }

    #[test]
    fn operator_lists_replace_defaults() {
        let f = Formats {
            disk: vec!["raw".into()],
            container: vec!["bare".into()],
        };
        assert!(f.check_disk("qcow2").is_err());
        let err = f.check_disk("qcow2").unwrap_err();
        assert!(err.message().contains("disk_format"));
    }
}

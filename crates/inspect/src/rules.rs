//! Glance 33's rule for what an inspected image may be.

use crate::{Format, Inspection};

/// `[image_format]` options that shape the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `require_image_format_match`: refuse an image whose bytes are not its `disk_format`.
    pub require_image_format_match: bool,
    /// `vmdk_allowed_types`: the VMDK `createType`s accepted; empty refuses every VMDK.
    pub vmdk_allowed_types: Vec<String>,
    /// `gpt_safety_checks_nonfatal`: the partition-table checks (`mbr`, `gpt`) whose failure
    /// is only logged.
    pub gpt_safety_checks_nonfatal: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            require_image_format_match: true,
            vmdk_allowed_types: vec!["streamOptimized".into(), "monolithicSparse".into()],
            gpt_safety_checks_nonfatal: Vec::new(),
        }
    }
}

/// An image the rule lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `virtual_size` to record (`None` when not inspected or not known).
    pub virtual_size: Option<u64>,
    /// Safety findings downgraded to warnings (`gpt_safety_checks_nonfatal`).
    pub warnings: Vec<String>,
}

/// Why an image is refused (answered 415, image back to `queued`, its bytes deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The bytes are not the `disk_format`.
    FormatMismatch {
        /// `disk_format`.
        declared: String,
        /// What the bytes are.
        found: Format,
    },
    /// A safety check failed.
    Unsafe {
        /// What the checks found.
        reasons: Vec<String>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FormatMismatch { declared, found } => write!(
                f,
                "Image content does not match disk_format: disk_format is {declared} but the data is {found}"
            ),
            Self::Unsafe { .. } => f.write_str("Image failed safety checks"),
        }
    }
}

impl std::error::Error for Refusal {}

/// disk_formats whose content cannot be inspected: raw-looking bytes pass.
const NOT_INSPECTABLE: &[&str] = &["ami", "ari", "aki", "ploop"];

impl Rules {
    /// Glance 33's upload rule for one inspected image. Only `container_format=bare` is
    /// judged; anything else is accepted without a virtual size.
    pub fn judge(
        &self,
        inspection: &Inspection,
        disk_format: Option<&str>,
        container_format: Option<&str>,
    ) -> Result<Accepted, Refusal> {
        let none = Accepted {
            virtual_size: None,
            warnings: Vec::new(),
        };
        if container_format != Some("bare") {
            return Ok(none);
        }
        let Some(disk) = disk_format else {
            return Ok(none);
        };
        let found = inspection.format;
        let raw_like = matches!(found, Format::Raw | Format::Gpt);
        let matches = match disk {
            "raw" => raw_like,
            "vhd" => found == Format::Vhd,
            "iso" => found == Format::Iso,
            d => found.name() == d,
        };
        if !matches {
            if NOT_INSPECTABLE.contains(&disk) && raw_like {
                // ami/ari/aki/ploop hold bytes the inspector cannot tell apart from raw.
                return self.safety(inspection, None);
            }
            if disk == "raw" {
                // As Glance: a warning, and the plain size as virtual size. A hypervisor
                // told "raw" reads the bytes as they are, so nothing inside is followed.
                return Ok(Accepted {
                    virtual_size: Some(inspection.size),
                    warnings: vec![format!(
                        "image declared raw holds {found} data; it is kept and used as raw"
                    )],
                });
            }
            if self.require_image_format_match {
                return Err(Refusal::FormatMismatch {
                    declared: disk.to_string(),
                    found,
                });
            }
            return Ok(none);
        }
        self.safety(inspection, inspection.virtual_size)
    }

    fn safety(
        &self,
        inspection: &Inspection,
        virtual_size: Option<u64>,
    ) -> Result<Accepted, Refusal> {
        let mut reasons = Vec::new();
        let mut warnings = Vec::new();
        for i in &inspection.issues {
            if matches!(i.check, "mbr" | "gpt")
                && self.gpt_safety_checks_nonfatal.iter().any(|c| c == i.check)
            {
                warnings.push(i.reason.clone());
            } else {
                reasons.push(i.reason.clone());
            }
        }
        if inspection.format == Format::Vmdk {
            let t = inspection.vmdk_create_type.as_deref().unwrap_or("");
            if !self.vmdk_allowed_types.iter().any(|a| a == t) {
                reasons.push(format!("vmdk createType {t:?} is not allowed"));
            }
        }
        if reasons.is_empty() {
            Ok(Accepted {
                virtual_size,
                warnings,
            })
        } else {
            Err(Refusal::Unsafe { reasons })
        }
    }
}

//! Image members: projects an image owner shares a `shared` image with.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::image::ImageId;

/// A member's answer to a share. New members start `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Not yet answered; the member can see the image but it is not in their default list.
    #[default]
    Pending,
    /// Accepted; the image shows up in the member's default list.
    Accepted,
    /// Rejected; still readable by id, never listed by default.
    Rejected,
}

impl MemberStatus {
    /// A project's standing on an image: not a member, or a member with each status.
    pub const OR_NONE: [Option<MemberStatus>; 4] = [
        None,
        Some(Self::Pending),
        Some(Self::Accepted),
        Some(Self::Rejected),
    ];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberStatus {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "accepted" => Ok(Self::Accepted),
            "rejected" => Ok(Self::Rejected),
            other => Err(ModelError::bad_request(format!(
                "Invalid status value: {other}. Expected one of pending, accepted, rejected"
            ))),
        }
    }
}

/// One membership of a project in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The shared image.
    pub image_id: ImageId,
    /// The project the image is shared with.
    pub member_id: String,
    /// The member's answer.
    pub status: MemberStatus,
    /// When the share was made (UTC).
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// When it last changed (UTC).
    #[serde(with = "crate::time::iso")]
    pub updated_at: NaiveDateTime,
}

/// Checks a member id as given in `{"member": "<project>"}`.
pub fn validate_member_id(member: &str) -> Result<(), ModelError> {
    if member.trim().is_empty() {
        return Err(ModelError::bad_request("Member id must not be empty"));
    }
    if member.chars().count() > 255 {
        return Err(ModelError::bad_request(
            "Member id is too long: at most 255 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_pending_and_three_statuses_parse() {
        assert_eq!(MemberStatus::default(), MemberStatus::Pending);
        for s in ["pending", "accepted", "rejected"] {
            assert_eq!(s.parse::<MemberStatus>().unwrap().as_str(), s);
        }
        assert!("all".parse::<MemberStatus>().is_err());
    }

    #[test]
    fn member_id_rules() {
        assert!(validate_member_id("proj-a").is_ok());
        assert!(validate_member_id("").is_err());
        assert!(validate_member_id("  ").is_err());
        assert!(validate_member_id(&"x".repeat(256)).is_err());
    }
}

//! The image status machine: every status Glance knows and the one table of legal moves.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ModelError};

/// The lifecycle status of an image, spelled as Glance spells it on the wire and in the DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    /// Record exists, no data yet.
    Queued,
    /// Data is being uploaded through `PUT /file`.
    Saving,
    /// Data is stored; the image is usable.
    Active,
    /// Legacy failure state (v1 uploads); v2 never sets it.
    Killed,
    /// Soft-deleted.
    Deleted,
    /// Data is being staged for import.
    Uploading,
    /// An import task is moving data into a store.
    Importing,
    /// Deleted with `delayed_delete`; the scrubber removes the data later.
    PendingDelete,
    /// Data download is blocked for non-admins.
    Deactivated,
}

/// Every status, in Glance's schema enum order.
pub const ALL_STATUSES: [ImageStatus; 9] = [
    ImageStatus::Queued,
    ImageStatus::Saving,
    ImageStatus::Active,
    ImageStatus::Killed,
    ImageStatus::Deleted,
    ImageStatus::Uploading,
    ImageStatus::Importing,
    ImageStatus::PendingDelete,
    ImageStatus::Deactivated,
];

impl ImageStatus {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Saving => "saving",
            Self::Active => "active",
            Self::Killed => "killed",
            Self::Deleted => "deleted",
            Self::Uploading => "uploading",
            Self::Importing => "importing",
            Self::PendingDelete => "pending_delete",
            Self::Deactivated => "deactivated",
        }
    }

    /// The statuses this one may move to (Glance's `valid_state_targets`, plus the scrubber's
    /// `pending_delete → active` restore).
    pub fn targets(self) -> &'static [ImageStatus] {
        use ImageStatus::*;
        match self {
            Queued => &[Saving, Uploading, Importing, Active, Deleted],
            Saving => &[Active, Killed, Deleted, Queued],
            Uploading => &[Importing, Queued, Deleted],
            Importing => &[Active, Deleted, Queued],
            Active => &[PendingDelete, Deleted, Deactivated],
            Killed => &[Deleted],
            PendingDelete => &[Deleted, Active],
            Deleted => &[],
            Deactivated => &[Active, Deleted],
        }
    }

    /// Whether moving from `self` to `to` is allowed. Staying in the same status is a no-op
    /// and always allowed, as in Glance's domain setter.
    pub fn can_become(self, to: ImageStatus) -> bool {
        self == to || self.targets().contains(&to)
    }

    /// Checks a move, naming both ends when it is refused.
    pub fn check_transition(self, to: ImageStatus) -> Result<(), ModelError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(ModelError::new(
                ErrorKind::Conflict,
                format!("Image status transition from {self} to {to} is not allowed"),
            ))
        }
    }

    /// Moving into these statuses requires disk and container formats to be set (see
    /// [`require_formats`]).
    pub fn needs_formats(self) -> bool {
        matches!(self, Self::Saving | Self::Active | Self::Importing)
    }

    /// Statuses whose rows carry `deleted = true`.
    pub fn is_deleted(self) -> bool {
        matches!(self, Self::Deleted | Self::PendingDelete)
    }
}

/// What a client is told when data is brought to an image without both formats. The wording
/// clients of this service have always seen (Glance 33 lists the two names with a comma:
/// "Properties disk_format, container_format must be set prior to saving data.").
pub const FORMATS_REQUIRED: &str =
    "Properties disk_format and container_format must be set prior to saving data.";

/// The rule "disk_format and container_format must be set before data", in its one home:
/// refused (400, [`FORMATS_REQUIRED`]) unless both are set. Every path that brings data to an
/// image asks it: glance-api before an upload stores its first byte, glance-registry when it
/// takes the upload lease and when a status update moves an image into a status that
/// [needs formats](ImageStatus::needs_formats); stage and import will too.
pub fn require_formats(
    disk_format: Option<&str>,
    container_format: Option<&str>,
) -> Result<(), ModelError> {
    if disk_format.is_some() && container_format.is_some() {
        Ok(())
    } else {
        Err(ModelError::bad_request(FORMATS_REQUIRED))
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageStatus {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATUSES
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ModelError::bad_request(format!("Invalid image status '{s}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImageStatus::*;

    #[test]
    fn glance_transition_table_is_exact() {
        let allowed: &[(ImageStatus, ImageStatus)] = &[
            (Queued, Saving),
            (Queued, Uploading),
            (Queued, Importing),
            (Queued, Active),
            (Queued, Deleted),
            (Saving, Active),
            (Saving, Queued),
            (Saving, Killed),
            (Saving, Deleted),
            (Uploading, Importing),
            (Uploading, Queued),
            (Uploading, Deleted),
            (Importing, Active),
            (Importing, Queued),
            (Importing, Deleted),
            (Active, Deactivated),
            (Active, PendingDelete),
            (Active, Deleted),
            (Deactivated, Active),
            (Deactivated, Deleted),
            (PendingDelete, Deleted),
            (PendingDelete, Active),
            (Killed, Deleted),
        ];
        for from in ALL_STATUSES {
            for to in ALL_STATUSES {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn deleted_is_terminal() {
        for to in ALL_STATUSES {
            if to != Deleted {
                assert!(Deleted.check_transition(to).is_err());
            }
        }
    }

    #[test]
    fn refused_transition_is_conflict_naming_both_ends() {
        let err = Active.check_transition(Saving).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.message().contains("active") && err.message().contains("saving"));
    }

    #[test]
    fn status_round_trips_and_rejects_unknown() {
        for st in ALL_STATUSES {
            assert_eq!(st.as_str().parse::<ImageStatus>().unwrap(), st);
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
        assert!("frozen".parse::<ImageStatus>().is_err());
    }

    #[test]
    fn data_needs_both_formats() {
        assert!(require_formats(Some("qcow2"), Some("bare")).is_ok());
        // An empty string is a value the format lists refuse elsewhere; here only absence counts.
        assert!(require_formats(Some(""), Some("")).is_ok());
        for (disk, container) in [(None, Some("bare")), (Some("raw"), None), (None, None)] {
            let err = require_formats(disk, container).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{disk:?} {container:?}");
            assert_eq!(err.message(), FORMATS_REQUIRED);
        }
        // What clients have always been told, to the final period.
        assert_eq!(
            FORMATS_REQUIRED,
            "Properties disk_format and container_format must be set prior to saving data."
        );
    }

    #[test]
    fn formats_required_and_deleted_flags() {
        assert!(Saving.needs_formats() && Active.needs_formats() && Importing.needs_formats());
        assert!(!Queued.needs_formats() && !Uploading.needs_formats());
        assert!(Deleted.is_deleted() && PendingDelete.is_deleted() && !Active.is_deleted());
    }
}

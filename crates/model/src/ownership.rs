//! Who may change an image: a caller whose project owns it, or an admin; and who may answer a
//! share: the member project itself (or an admin). Glance keeps these rules below its policy
//! layer (its database API refuses writes to an image the caller does not own, and its member
//! controller refuses an owner who answers for a member), so no policy file can lift them: with
//! the policy files Queens shipped (most rules `""`) they are the only thing between one
//! project and another's images.
//!
//! glance-api calls [`may_change`] for every change through one function of its policy
//! enforcer; this module owns the rules and knows nothing of policies or HTTP.

use crate::{Context, ErrorKind, Image, ModelError};

/// A change to an image or to its children: each mutating route is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// `PATCH /v2/images/{id}`.
    Modify,
    /// `DELETE /v2/images/{id}`.
    Delete,
    /// `PUT /v2/images/{id}/file`.
    Upload,
    /// `PUT /v2/images/{id}/stage` (issue 30 adds the route).
    Stage,
    /// `POST /v2/images/{id}/import` (issue 30 adds the route).
    Import,
    /// `PUT /v2/images/{id}/tags/{tag}`.
    AddTag,
    /// `DELETE /v2/images/{id}/tags/{tag}`.
    DeleteTag,
    /// `POST /v2/images/{id}/actions/deactivate`.
    Deactivate,
    /// `POST /v2/images/{id}/actions/reactivate`.
    Reactivate,
    /// `POST /v2/images/{id}/members`.
    AddMember,
    /// `DELETE /v2/images/{id}/members/{member}`.
    DeleteMember,
}

impl Change {
    /// Every change, for tests that walk them all.
    pub const ALL: [Change; 11] = [
        Change::Modify,
        Change::Delete,
        Change::Upload,
        Change::Stage,
        Change::Import,
        Change::AddTag,
        Change::DeleteTag,
        Change::Deactivate,
        Change::Reactivate,
        Change::AddMember,
        Change::DeleteMember,
    ];

    /// What the change does, as a verb phrase for messages ("delete", "upload data to").
    pub fn verb(self) -> &'static str {
        match self {
            Change::Modify => "modify",
            Change::Delete => "delete",
            Change::Upload => "upload data to",
            Change::Stage => "stage data for",
            Change::Import => "import data into",
            Change::AddTag => "tag",
            Change::DeleteTag => "remove a tag from",
            Change::Deactivate => "deactivate",
            Change::Reactivate => "reactivate",
            Change::AddMember => "add members to",
            Change::DeleteMember => "remove members from",
        }
    }
}

/// Whether the caller may make `change` to `image`: an admin may change any image; anyone else
/// only an image their project owns (an image without an owner is an admin's alone).
pub fn may_change(ctx: &Context, image: &Image, change: Change) -> Result<(), ModelError> {
    if ctx.is_admin || ctx.owns(image.owner.as_deref()) {
        return Ok(());
    }
    Err(ModelError::new(
        ErrorKind::Forbidden,
        format!(
            "You do not own image {}: only its owner's project (or an admin) may {} it",
            image.id,
            change.verb()
        ),
    ))
}

/// Whether the caller may create an image owned by `owner` (`None`: the caller's own project).
pub fn may_create_for(ctx: &Context, owner: Option<&str>) -> Result<(), ModelError> {
    match owner {
        Some(o) if !ctx.is_admin && ctx.project_id.as_deref() != Some(o) => Err(ModelError::new(
            ErrorKind::Forbidden,
            format!(
                "You are not permitted to create images owned by project {o}: only an admin \
                     may set another project as the owner"
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether the caller may accept or reject the share of an image with project `member`: only
/// that project itself (or an admin); the image's owner may not answer for it.
pub fn may_set_member_status(ctx: &Context, member: &str) -> Result<(), ModelError> {
    if ctx.is_admin || ctx.project_id.as_deref() == Some(member) {
        return Ok(());
    }
    Err(ModelError::new(
        ErrorKind::Forbidden,
        format!(
            "Only project {member} itself may accept or reject this shared image; \
             its owner and other projects may not"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ImageId, ImageStatus, Visibility};

    fn image(owner: Option<&str>) -> Image {
        Image {
            id: ImageId::new(),
            name: None,
            status: ImageStatus::Active,
            visibility: Visibility::Community,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: owner.map(str::to_string),
            size: None,
            virtual_size: None,
            container_format: None,
            disk_format: None,
            min_disk: 0,
            min_ram: 0,
            created_at: crate::time::now(),
            updated_at: None,
            deleted_at: None,
            deleted: false,
            tags: vec![],
            properties: Default::default(),
            locations: vec![],
        }
    }

    #[test]
    fn only_the_owner_or_an_admin_changes_an_image() {
        let img = image(Some("a"));
        let orphan = image(None);
        for change in Change::ALL {
            assert!(may_change(&Context::project("a", &["member"]), &img, change).is_ok());
            assert!(may_change(&Context::project("z", &["admin"]), &img, change).is_ok());
            assert!(may_change(&Context::unauthenticated_admin("r"), &orphan, change).is_ok());
            let err = may_change(&Context::project("b", &["member"]), &img, change)
                .expect_err("another project");
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            assert!(err.message().contains(change.verb()), "{err}");
            assert!(err.message().contains(&img.id.to_string()), "{err}");
            // Neither a project-less caller nor anyone but an admin changes an ownerless image.
            assert!(may_change(&Context::default(), &img, change).is_err());
            assert!(may_change(&Context::project("a", &["member"]), &orphan, change).is_err());
        }
    }

    #[test]
    fn only_admins_create_for_another_project() {
        let member = Context::project("a", &["member"]);
        assert!(may_create_for(&member, None).is_ok());
        assert!(may_create_for(&member, Some("a")).is_ok());
        let err = may_create_for(&member, Some("b")).expect_err("foreign owner");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert!(may_create_for(&Context::project("a", &["admin"]), Some("b")).is_ok());
    }

    #[test]
    fn only_the_member_answers_a_share() {
        assert!(may_set_member_status(&Context::project("b", &["member"]), "b").is_ok());
        assert!(may_set_member_status(&Context::project("z", &["admin"]), "b").is_ok());
        for who in ["a", "c"] {
            let err = may_set_member_status(&Context::project(who, &["member"]), "b")
                .expect_err("not the member");
            assert_eq!(err.kind(), ErrorKind::Forbidden);
        }
        assert!(may_set_member_status(&Context::default(), "b").is_err());
    }
}

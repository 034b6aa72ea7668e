//! Glance's default policy (secure RBAC) for the Images API: who may do what to an image.
//! "member" means the `member` role (admin implies it) acting for the image's owning project;
//! `reader` is implied by `member`. A caller who may not see an image never gets here: the
//! registry already answered 404.

use glance_model::{Context, Image, Visibility};

use crate::error::ApiError;

/// Whether the caller has a role or a role that implies it (admin > member > reader).
pub fn has(ctx: &Context, role: &str) -> bool {
    ctx.is_admin
        || ctx.has_role(role)
        || (role == "reader" && ctx.has_role("member"))
        || (role != "admin" && ctx.has_role("admin"))
}

fn owner_member(ctx: &Context, image: &Image) -> bool {
    ctx.is_admin || (has(ctx, "member") && ctx.owns(image.owner.as_deref()))
}

/// `get_images` / `get_image`: admin or a reader.
pub fn read(ctx: &Context) -> Result<(), ApiError> {
    if has(ctx, "reader") {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "You are not authorized to read images (the reader role is required)",
        ))
    }
}

/// `add_image`: admin or a member creating for their own project.
pub fn add_image(ctx: &Context, owner: Option<&str>) -> Result<(), ApiError> {
    if ctx.is_admin {
        return Ok(());
    }
    if !has(ctx, "member") {
        return Err(ApiError::forbidden(
            "You are not authorized to create images (the member role is required)",
        ));
    }
    match owner {
        Some(o) if Some(o) != ctx.project_id.as_deref() => Err(ApiError::forbidden(
            "You are not permitted to create images owned by another project",
        )),
        _ => Ok(()),
    }
}

/// `modify_image`, `delete_image`, `upload_image`, `deactivate`, `reactivate`, tags: admin or
/// a member of the owning project.
pub fn modify(ctx: &Context, image: &Image, what: &str) -> Result<(), ApiError> {
    if owner_member(ctx, image) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "You are not permitted to {what} image {}",
            image.id
        )))
    }
}

/// `publicize_image` (admin) and `communitize_image` (admin or owner member).
pub fn set_visibility(ctx: &Context, image: &Image, to: Visibility) -> Result<(), ApiError> {
    match to {
        Visibility::Public if !ctx.is_admin => Err(ApiError::forbidden(
            "Only an administrator may make an image public",
        )),
        _ => modify(ctx, image, "change the visibility of"),
    }
}

/// `download_image`: admin, or a member of any project that can see the image.
pub fn download(ctx: &Context, image: &Image) -> Result<(), ApiError> {
    if has(ctx, "member") {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "You are not permitted to download image {} (the member role is required)",
            image.id
        )))
    }
}

/// `add_member` / `delete_member`: admin or owner member.
pub fn manage_members(ctx: &Context, image: &Image) -> Result<(), ApiError> {
    modify(ctx, image, "change the members of")
}

/// `modify_member`: admin, or a member of the project the membership is for.
pub fn modify_member(ctx: &Context, member: &str) -> Result<(), ApiError> {
    if ctx.is_admin || (has(ctx, "member") && ctx.project_id.as_deref() == Some(member)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Only the member project itself may accept or reject a shared image",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_model::{ImageId, ImageStatus};

    fn image(owner: &str) -> Image {
        Image {
            id: ImageId::new(),
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: Some(owner.to_string()),
            size: None,
            virtual_size: None,
            container_format: None,
            disk_format: None,
            min_disk: 0,
            min_ram: 0,
            created_at: glance_model::time::now(),
            updated_at: None,
            deleted_at: None,
            deleted: false,
            tags: vec![],
            properties: Default::default(),
            locations: vec![],
        }
    }

    #[test]
    fn owners_members_modify_readers_and_others_do_not() {
        let img = image("p1");
        assert!(modify(&Context::project("p1", &["member"]), &img, "x").is_ok());
        assert!(modify(&Context::project("p1", &["reader"]), &img, "x").is_err());
        assert!(modify(&Context::project("p2", &["member"]), &img, "x").is_err());
        assert!(modify(&Context::project("p2", &["admin"]), &img, "x").is_ok());
        assert!(modify(&Context::unauthenticated_admin("r"), &img, "x").is_ok());
    }

    #[test]
    fn publicize_is_admin_only_and_members_answer_for_themselves() {
        let img = image("p1");
        let owner = Context::project("p1", &["member"]);
        assert!(set_visibility(&owner, &img, Visibility::Public).is_err());
        assert!(set_visibility(&owner, &img, Visibility::Community).is_ok());
        assert!(modify_member(&owner, "p2").is_err());
        assert!(modify_member(&Context::project("p2", &["member"]), "p2").is_ok());
        assert!(read(&Context::project("p3", &["reader"])).is_ok());
        assert!(read(&Context::project("p3", &[])).is_err());
        assert!(download(&Context::project("p3", &["reader"]), &img).is_err());
        assert!(add_image(&owner, Some("p2")).is_err());
        assert!(add_image(&owner, None).is_ok());
    }
}

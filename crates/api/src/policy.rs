//! Who may do what to an image: each route asks [`Enforcer`] for one of Glance's policy actions
//! (`get_image`, `modify_image`, ...). The rules are Glance's secure-RBAC defaults, overridden
//! rule by rule by `[oslo_policy] policy_file` (see [`crate::policy_engine`]).
//!
//! Visibility is decided first, by the registry: a caller who may not see an image gets 404
//! from it. A caller who may see it but whose `get_image` rule says no also gets 404, as in
//! Glance; any other refusal is 403.

use std::sync::Arc;

use glance_model::{Context, Image, Visibility};

use crate::error::ApiError;
use crate::policy_engine::{Credentials, Policy, Target};

/// The policy in force.
#[derive(Debug, Clone)]
pub struct Enforcer {
    policy: Arc<Policy>,
}

impl Default for Enforcer {
    fn default() -> Self {
        Self::new(Policy::defaults())
    }
}

fn creds(ctx: &Context) -> Credentials {
    let mut c = Credentials::from(ctx);
    // Glance's no-auth context is an admin without roles; the rules speak of role:admin.
    if ctx.is_admin && !c.has_role("admin") {
        c.roles.push("admin".to_string());
    }
    c.with_implied_roles()
}

/// The target of an image action: Glance's image target (owner as `project_id` and `owner`,
/// visibility, id, the caller's membership as `member_id`, and the other attributes).
fn image_target(ctx: &Context, image: &Image) -> Target {
    let owner = image.owner.clone().unwrap_or_default();
    let mut t = Target::new()
        .with("id", image.id.to_string())
        .with("visibility", image.visibility.as_str())
        .with("status", image.status.as_str())
        .with("protected", if image.protected { "True" } else { "False" });
    for (k, v) in &image.properties {
        t.insert(k.clone(), v.clone());
    }
    t.insert("project_id", owner.clone());
    t.insert("owner", owner);
    // The registry shows a shared image of another project to a non-admin only when the
    // caller's project is one of its members.
    if image.visibility == Visibility::Shared
        && let Some(p) = &ctx.project_id
        && !ctx.owns(image.owner.as_deref())
    {
        t.insert("member_id", p.clone());
    }
    t
}

impl Enforcer {
    /// Enforces `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    fn allowed(&self, action: &str, ctx: &Context, target: &Target) -> bool {
        self.policy.enforce(action, &creds(ctx), target)
    }

    /// `get_images`: listing at all.
    pub fn list(&self, ctx: &Context) -> Result<(), ApiError> {
        let target = Target::new().with("project_id", ctx.project_id.clone().unwrap_or_default());
        if self.allowed("get_images", ctx, &target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "You are not authorized to list images (policy get_images)",
            ))
        }
    }

    /// `get_image` on an image the registry showed: 404 when refused, as Glance.
    pub fn show(&self, ctx: &Context, image: &Image) -> Result<(), ApiError> {
        if self.allowed("get_image", ctx, &image_target(ctx, image)) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "No image found with ID {}",
                image.id
            )))
        }
    }

    /// Whether `get_image` allows the caller to see `image` (list results are filtered).
    pub fn can_show(&self, ctx: &Context, image: &Image) -> bool {
        self.allowed("get_image", ctx, &image_target(ctx, image))
    }

    /// `add_image` for an image that `owner` (default: the caller's project) will own.
    pub fn add_image(&self, ctx: &Context, owner: Option<&str>) -> Result<(), ApiError> {
        let owner = owner
            .map(str::to_string)
            .or_else(|| ctx.project_id.clone())
            .unwrap_or_default();
        let target = Target::new()
            .with("project_id", owner.clone())
            .with("owner", owner.clone());
        if self.allowed("add_image", ctx, &target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                if owner != ctx.project_id.clone().unwrap_or_default() {
                    "You are not permitted to create images owned by another project \
                     (policy add_image)"
                } else {
                    "You are not authorized to create images (policy add_image: the member role \
                     is required)"
                },
            ))
        }
    }

    /// An action on an image (`modify_image`, `delete_image`, `upload_image`, `deactivate`,
    /// `reactivate`, `download_image`, `add_member`, `delete_member`, `get_members`,
    /// `publicize_image`, `communitize_image`): 404 when the caller may not even see the
    /// image, 403 otherwise.
    pub fn image(&self, action: &str, ctx: &Context, image: &Image) -> Result<(), ApiError> {
        let target = image_target(ctx, image);
        if self.allowed(action, ctx, &target) {
            return Ok(());
        }
        if !self.allowed("get_image", ctx, &target) {
            return Err(ApiError::not_found(format!(
                "No image found with ID {}",
                image.id
            )));
        }
        Err(ApiError::forbidden(format!(
            "You are not authorized to {} image {} (policy {action})",
            describe(action),
            image.id
        )))
    }

    /// Changing the visibility to `to`: `publicize_image` or `communitize_image`.
    pub fn set_visibility(
        &self,
        ctx: &Context,
        image: &Image,
        to: Visibility,
    ) -> Result<(), ApiError> {
        match to {
            Visibility::Public => self.image("publicize_image", ctx, image),
            Visibility::Community => self.image("communitize_image", ctx, image),
            _ => Ok(()),
        }
    }

    /// `publicize_image` / `communitize_image` for an image being created with that visibility.
    pub fn new_visibility(
        &self,
        ctx: &Context,
        owner: Option<&str>,
        to: Visibility,
    ) -> Result<(), ApiError> {
        let owner = owner
            .map(str::to_string)
            .or_else(|| ctx.project_id.clone())
            .unwrap_or_default();
        let action = if to == Visibility::Public {
            "publicize_image"
        } else {
            "communitize_image"
        };
        let target = Target::new()
            .with("project_id", owner.clone())
            .with("owner", owner)
            .with("visibility", to.as_str());
        if self.allowed(action, ctx, &target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You are not authorized to create an image with visibility {} (policy {action})",
                to.as_str()
            )))
        }
    }

    /// A membership action (`get_member`, `modify_member`) with `member_id` the membership's
    /// project: by default the owner may see it, and only the member project may accept or
    /// reject the share.
    pub fn member(
        &self,
        action: &str,
        ctx: &Context,
        image: &Image,
        member: &str,
    ) -> Result<(), ApiError> {
        let target = image_target(ctx, image).with("member_id", member);
        if self.allowed(action, ctx, &target) {
            return Ok(());
        }
        if action == "get_member" {
            return Err(ApiError::not_found(format!(
                "Project {member} is not a member of image {}",
                image.id
            )));
        }
        Err(ApiError::forbidden(
            "Only the member project itself may accept or reject a shared image \
             (policy modify_member)",
        ))
    }
}

fn describe(action: &str) -> &'static str {
    match action {
        "modify_image" => "modify",
        "delete_image" => "delete",
        "upload_image" => "upload data to",
        "download_image" => "download",
        "deactivate" => "deactivate",
        "reactivate" => "reactivate",
        "add_member" | "delete_member" => "change the members of",
        "get_members" | "get_member" => "list the members of",
        "publicize_image" => "make public",
        "communitize_image" => "make community",
        _ => "act on",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_model::{ImageId, ImageStatus};

    fn image(owner: &str, visibility: Visibility) -> Image {
        Image {
            id: ImageId::new(),
            name: None,
            status: ImageStatus::Queued,
            visibility,
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
        let e = Enforcer::default();
        let img = image("p1", Visibility::Shared);
        let ok = |ctx: &Context| e.image("modify_image", ctx, &img).is_ok();
        assert!(ok(&Context::project("p1", &["member"])));
        assert!(!ok(&Context::project("p1", &["reader"])));
        assert!(!ok(&Context::project("p2", &["member"])));
        assert!(ok(&Context::project("p2", &["admin"])));
        assert!(ok(&Context::unauthenticated_admin("r")));
    }

    #[test]
    fn publicize_is_admin_only_and_members_answer_for_themselves() {
        let e = Enforcer::default();
        let img = image("p1", Visibility::Shared);
        let owner = Context::project("p1", &["member"]);
        assert!(e.set_visibility(&owner, &img, Visibility::Public).is_err());
        assert!(
            e.set_visibility(&owner, &img, Visibility::Community)
                .is_ok()
        );
        assert!(e.member("modify_member", &owner, &img, "p2").is_err());
        assert!(
            e.member(
                "modify_member",
                &Context::project("p2", &["member"]),
                &img,
                "p2"
            )
            .is_ok()
        );
        assert!(e.list(&Context::project("p3", &["reader"])).is_ok());
        assert!(e.list(&Context::project("p3", &[])).is_err());
        assert!(
            e.image("download_image", &Context::project("p2", &["reader"]), &img)
                .is_err()
        );
        assert!(e.add_image(&owner, Some("p2")).is_err());
        assert!(e.add_image(&owner, None).is_ok());
    }

    #[test]
    fn refusals_of_invisible_images_are_404_and_others_403() {
        let mut p = Policy::defaults();
        p.set_rule("get_image", "role:admin or project_id:%(project_id)s")
            .expect("rule");
        let e = Enforcer::new(p);
        let img = image("p1", Visibility::Public);
        let other = Context::project("p2", &["member"]);
        let err = e.show(&other, &img).expect_err("hidden by policy");
        assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 404);
        let err = e
            .image("delete_image", &other, &img)
            .expect_err("not visible");
        assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 404);
        let err = Enforcer::default()
            .image("delete_image", &other, &img)
            .expect_err("visible, not the owner");
        assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 403);
    }

    #[test]
    fn the_shipped_policy_file_loads_and_its_example_overrides() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../etc/policy.yaml");
        let shipped = Policy::load(path).expect("etc/policy.yaml loads");
        assert_eq!(
            shipped,
            Policy::defaults(),
            "everything in it is commented out"
        );
        let text = std::fs::read_to_string(path).expect("read");
        let example: String = text
            .lines()
            .filter(|l| l.starts_with("#\"deactivate\": \"role:admin\""))
            .map(|l| l.trim_start_matches('#'))
            .collect();
        let e = Enforcer::new(Policy::from_str(&example, "example").expect("example parses"));
        let img = image("p1", Visibility::Private);
        let owner = Context::project("p1", &["member"]);
        assert!(
            Enforcer::default()
                .image("deactivate", &owner, &img)
                .is_ok()
        );
        assert_eq!(
            actix_web::ResponseError::status_code(
                &e.image("deactivate", &owner, &img)
                    .expect_err("admins only")
            )
            .as_u16(),
            403
        );
    }
}

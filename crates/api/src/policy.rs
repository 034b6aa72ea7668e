//! Who may do what to an image: each route asks [`Enforcer`] for one of Glance's policy actions
//! (`get_image`, `modify_image`, ...). The rules are Glance's secure-RBAC defaults, overridden
//! rule by rule by `[oslo_policy] policy_file` (see [`crate::policy_engine`]).
//!
//! Visibility is decided first, by the registry: a caller who may not see an image gets 404
//! from it. A caller who may see it but whose `get_image` rule says no also gets 404, as in
//! Glance; any other refusal is 403.
//!
//! Two rules hold whatever the policy file says, as in Glance 33:
//! - scope: every image rule is project-scoped, so a token scoped to the system or a domain is
//!   refused (404 for an existing image, 403 to list or create), even an admin's;
//! - ownership: every change to an image goes through [`Enforcer::change`], which after the
//!   policy applies [`glance_model::ownership`] (owner's project or admin; a share is
//!   answered by the member alone). There is no other way for a route to authorize a change:
//!   [`Enforcer::read`] takes only read actions.

use std::sync::Arc;

use glance_model::ownership::{self, Change};
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

/// An action that reads an image without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `download_image`: `GET /v2/images/{id}/file`.
    Download,
    /// `get_members`: `GET /v2/images/{id}/members`.
    GetMembers,
}

impl Read {
    fn action(self) -> &'static str {
        match self {
            Read::Download => "download_image",
            Read::GetMembers => "get_members",
        }
    }
}

/// The policy action Glance checks for a change.
fn change_action(change: Change) -> &'static str {
    match change {
        // Glance checks modify_image for staging, importing and tags.
        Change::Modify | Change::Stage | Change::Import | Change::AddTag | Change::DeleteTag => {
            "modify_image"
        }
        Change::Delete => "delete_image",
        Change::Upload => "upload_image",
        Change::Deactivate => "deactivate",
        Change::Reactivate => "reactivate",
        Change::AddMember => "add_member",
        Change::DeleteMember => "delete_member",
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

/// The 403 for a token that is not project-scoped, naming what to do instead.
fn wrong_scope(ctx: &Context, what: &str) -> ApiError {
    let scope = if ctx.system_scope.is_some() {
        "the system"
    } else {
        "a domain"
    };
    ApiError::forbidden(format!(
        "You are not authorized to {what}: image calls need a project-scoped token, and this \
         token is scoped to {scope}; request a token scoped to a project"
    ))
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
        // oslo.policy's scope check comes before the rule; Glance 33 cannot turn it off.
        if !ctx.is_project_scoped() && Policy::is_project_scoped(action) {
            log::debug!("policy {action}: denied, the token is not project-scoped");
            return false;
        }
        self.policy.enforce(action, &creds(ctx), target)
    }

    /// `get_images`: listing at all.
    pub fn list(&self, ctx: &Context) -> Result<(), ApiError> {
        if !ctx.is_project_scoped() {
            return Err(wrong_scope(ctx, "list images"));
        }
        let target = Target::new().with("project_id", ctx.project_id.clone().unwrap_or_default());
        if self.allowed("get_images", ctx, &target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "You are not authorized to list images (policy get_images)",
            ))
        }
    }

    /// The check before fetching one image: `get_images` for a project-scoped caller. A token
    /// scoped elsewhere passes here and gets 404 from [`Enforcer::show`], as in Glance 33.
    pub fn before_show(&self, ctx: &Context) -> Result<(), ApiError> {
        if ctx.is_project_scoped() {
            self.list(ctx)
        } else {
            Ok(())
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

    /// `add_image` for an image that `owner` (default: the caller's project) will own; only an
    /// admin may name another project, whatever the policy says.
    pub fn add_image(&self, ctx: &Context, owner: Option<&str>) -> Result<(), ApiError> {
        if !ctx.is_project_scoped() {
            return Err(wrong_scope(ctx, "create images"));
        }
        let owner_or_caller = owner
            .map(str::to_string)
            .or_else(|| ctx.project_id.clone())
            .unwrap_or_default();
        let target = Target::new()
            .with("project_id", owner_or_caller.clone())
            .with("owner", owner_or_caller.clone());
        if !self.allowed("add_image", ctx, &target) {
            return Err(ApiError::forbidden(
                if owner_or_caller != ctx.project_id.clone().unwrap_or_default() {
                    "You are not permitted to create images owned by another project \
                     (policy add_image)"
                } else {
                    "You are not authorized to create images (policy add_image: the member role \
                     is required)"
                },
            ));
        }
        Ok(ownership::may_create_for(ctx, owner)?)
    }

    /// A policy action on an existing image: 404 when the caller may not even `get_image` it,
    /// 403 otherwise.
    fn check_image(&self, action: &str, ctx: &Context, image: &Image) -> Result<(), ApiError> {
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

    /// A read of an existing image (`download_image`, `get_members`).
    pub fn read(&self, action: Read, ctx: &Context, image: &Image) -> Result<(), ApiError> {
        self.check_image(action.action(), ctx, image)
    }

    /// A change to an existing image: its policy action (`modify_image`, `delete_image`, ...),
    /// then the ownership rule, which no policy file lifts. Every mutating route calls this.
    pub fn change(&self, change: Change, ctx: &Context, image: &Image) -> Result<(), ApiError> {
        self.check_image(change_action(change), ctx, image)?;
        Ok(ownership::may_change(ctx, image, change)?)
    }

    /// Changing the visibility to `to`: `publicize_image` or `communitize_image` (after
    /// [`Enforcer::change`] with [`Change::Modify`]).
    pub fn set_visibility(
        &self,
        ctx: &Context,
        image: &Image,
        to: Visibility,
    ) -> Result<(), ApiError> {
        match to {
            Visibility::Public => self.check_image("publicize_image", ctx, image),
            Visibility::Community => self.check_image("communitize_image", ctx, image),
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

    /// `get_member` on the membership of project `member`: 404 when refused.
    pub fn show_member(&self, ctx: &Context, image: &Image, member: &str) -> Result<(), ApiError> {
        let target = image_target(ctx, image).with("member_id", member);
        if self.allowed("get_member", ctx, &target) {
            return Ok(());
        }
        Err(ApiError::not_found(format!(
            "Project {member} is not a member of image {}",
            image.id
        )))
    }

    /// Accepting or rejecting the share with project `member`: `modify_member`, then the rule
    /// no policy file lifts: only the member project itself (or an admin) answers.
    pub fn set_member_status(
        &self,
        ctx: &Context,
        image: &Image,
        member: &str,
    ) -> Result<(), ApiError> {
        let target = image_target(ctx, image).with("member_id", member);
        if !self.allowed("modify_member", ctx, &target) {
            if !self.allowed("get_image", ctx, &image_target(ctx, image)) {
                return Err(ApiError::not_found(format!(
                    "No image found with ID {}",
                    image.id
                )));
            }
            return Err(ApiError::forbidden(
                "Only the member project itself may accept or reject a shared image \
                 (policy modify_member)",
            ));
        }
        Ok(ownership::may_set_member_status(ctx, member)?)
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
        let ok = |ctx: &Context| e.change(Change::Modify, ctx, &img).is_ok();
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
        assert!(e.set_member_status(&owner, &img, "p2").is_err());
        assert!(
            e.set_member_status(&Context::project("p2", &["member"]), &img, "p2")
                .is_ok()
        );
        assert!(e.list(&Context::project("p3", &["reader"])).is_ok());
        assert!(e.list(&Context::project("p3", &[])).is_err());
        assert!(
            e.read(Read::Download, &Context::project("p2", &["reader"]), &img)
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
            .change(Change::Delete, &other, &img)
            .expect_err("not visible");
        assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 404);
        let err = Enforcer::default()
            .change(Change::Delete, &other, &img)
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
                .change(Change::Deactivate, &owner, &img)
                .is_ok()
        );
        assert_eq!(
            actix_web::ResponseError::status_code(
                &e.change(Change::Deactivate, &owner, &img)
                    .expect_err("admins only")
            )
            .as_u16(),
            403
        );
    }

    fn status(err: &ApiError) -> u16 {
        actix_web::ResponseError::status_code(err).as_u16()
    }

    /// Queens' policy.json style: every image rule open.
    fn open_policy() -> Enforcer {
        let mut p = Policy::defaults();
        for action in [
            "add_image",
            "get_image",
            "get_images",
            "modify_image",
            "delete_image",
            "upload_image",
            "deactivate",
            "reactivate",
            "add_member",
            "delete_member",
            "modify_member",
            "communitize_image",
        ] {
            p.set_rule(action, "").expect("rule");
        }
        Enforcer::new(p)
    }

    #[test]
    fn an_open_policy_still_leaves_changes_to_the_owner() {
        let e = open_policy();
        let img = image("p1", Visibility::Community);
        let other = Context::project("p2", &["member"]);
        for change in Change::ALL {
            let err = e.change(change, &other, &img).expect_err("not the owner");
            assert_eq!(status(&err), 403, "{change:?}");
            assert!(
                e.change(change, &Context::project("p1", &["member"]), &img)
                    .is_ok()
            );
            assert!(
                e.change(change, &Context::project("p3", &["admin"]), &img)
                    .is_ok()
            );
        }
        assert_eq!(
            status(&e.add_image(&other, Some("p1")).expect_err("owner")),
            403
        );
        let shared = image("p1", Visibility::Shared);
        for who in ["p1", "p3"] {
            let err = e
                .set_member_status(&Context::project(who, &["member"]), &shared, "p2")
                .expect_err("not the member");
            assert_eq!(status(&err), 403);
        }
        assert!(e.set_member_status(&other, &shared, "p2").is_ok());
    }

    #[test]
    fn tokens_not_scoped_to_a_project_are_refused_even_for_admins() {
        let img = image("p1", Visibility::Public);
        for e in [Enforcer::default(), open_policy()] {
            for scoped in [
                Context {
                    system_scope: Some("all".to_string()),
                    ..Context::authenticated(None, None, vec!["admin".into()], String::new())
                },
                Context {
                    domain_id: Some("default".to_string()),
                    ..Context::authenticated(None, None, vec!["admin".into()], String::new())
                },
            ] {
                assert_eq!(status(&e.list(&scoped).expect_err("list")), 403);
                let err = e.add_image(&scoped, None).expect_err("create");
                assert_eq!(status(&err), 403);
                assert!(err.to_string().contains("project-scoped"), "{err}");
                assert!(e.before_show(&scoped).is_ok());
                assert_eq!(status(&e.show(&scoped, &img).expect_err("show")), 404);
                assert!(!e.can_show(&scoped, &img));
                for change in Change::ALL {
                    let err = e.change(change, &scoped, &img).expect_err("change");
                    assert_eq!(status(&err), 404, "{change:?}");
                }
                let err = e.read(Read::Download, &scoped, &img).expect_err("download");
                assert_eq!(status(&err), 404);
            }
        }
        // Glance's no-auth admin has no project and no other scope: it is not refused.
        let noauth = Context::unauthenticated_admin("r");
        assert!(Enforcer::default().list(&noauth).is_ok());
        assert!(
            Enforcer::default()
                .change(Change::Delete, &noauth, &img)
                .is_ok()
        );
    }

    #[test]
    fn without_new_defaults_the_rules_open_up_but_ownership_holds() {
        let legacy = Enforcer::new(Policy::configured(None, false).expect("defaults"));
        let img = image("p1", Visibility::Private);
        let roleless = Context::project("p1", &[]);
        // The secure-RBAC default needs the member role; the deprecated one (rule:default, "")
        // does not.
        assert!(
            Enforcer::default()
                .change(Change::Modify, &roleless, &img)
                .is_err()
        );
        assert!(legacy.change(Change::Modify, &roleless, &img).is_ok());
        assert!(legacy.list(&Context::project("p2", &[])).is_ok());
        let err = legacy
            .change(Change::Modify, &Context::project("p2", &["member"]), &img)
            .expect_err("not the owner");
        assert_eq!(status(&err), 403);
        // publicize_image has no deprecated default: still admins only.
        let err = legacy
            .set_visibility(&roleless, &img, Visibility::Public)
            .expect_err("admins only");
        assert_eq!(status(&err), 403);
    }
}

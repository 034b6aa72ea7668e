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
    if glance_model::visibility::needs_membership(ctx, image.owner.as_deref(), image.visibility)
        && let Some(p) = &ctx.project_id
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

    /// Whether the policy defines a rule called `name` (property protections name rules).
    pub fn has_rule(&self, name: &str) -> bool {
        self.policy.rule(name).is_some()
    }

    /// Whether the rule `name` allows the caller, judged with no target, as Glance judges
    /// the rules a `policies` property protection file names.
    pub fn rule_allows(&self, name: &str, ctx: &Context) -> bool {
        self.policy.enforce(name, &creds(ctx), &Target::new())
    }

    fn allowed(&self, action: &str, ctx: &Context, target: &Target) -> bool {
        // oslo.policy's scope check comes before the rule; Glance 33 cannot turn it off.
        if !ctx.is_project_scoped() && Policy::is_project_scoped(action) {
            log::debug!("policy {action}: denied, the token is not project-scoped");
            return false;
        }
        self.policy.enforce(action, &creds(ctx), target)
    }

    /// A metadefs action (`get_metadef_namespace`, `add_metadef_property`, ...), with the
    /// namespace it concerns as the target (`project_id` its owner, `visibility`), or the
    /// caller's project when there is none (list, create). As in Glance, a refusal is a 404
    /// when the caller may not even read the namespace, else a 403.
    pub fn metadef(
        &self,
        action: &str,
        ctx: &Context,
        ns: Option<&glance_model::metadef::Namespace>,
    ) -> Result<(), ApiError> {
        let target = match ns {
            Some(n) => Target::new()
                .with("project_id", n.owner.clone())
                .with("owner", n.owner.clone())
                .with("visibility", n.visibility.clone())
                .with("namespace", n.namespace.clone()),
            None => Target::new().with("project_id", ctx.project_id.clone().unwrap_or_default()),
        };
        if self.allowed(action, ctx, &target) {
            return Ok(());
        }
        if let Some(n) = ns
            && !self.allowed("get_metadef_namespace", ctx, &target)
        {
            return Err(ApiError::not_found(format!(
                "Metadata definition namespace={} was not found.",
                n.namespace
            )));
        }
        Err(ApiError::forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    }

    /// Whether `get_metadef_namespace` lets the caller see this namespace (list filtering).
    pub fn can_see_namespace(&self, ctx: &Context, ns: &glance_model::metadef::Namespace) -> bool {
        self.metadef("get_metadef_namespace", ctx, Some(ns)).is_ok()
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

    /// An action that concerns no image (`stores_info_detail`), with the caller's project as
    /// the target: 403 when refused.
    pub fn global(&self, action: &str, ctx: &Context) -> Result<(), ApiError> {
        let target = Target::new().with("project_id", ctx.project_id.clone().unwrap_or_default());
        if self.allowed(action, ctx, &target) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You are not authorized to do this (policy {action})"
            )))
        }
    }

    /// A location action on an existing image (`get_image_location`, `set_image_location`,
    /// `delete_image_location`, `add_image_location`, `fetch_image_location`): 404 when the
    /// caller may not even `get_image` it, 403 otherwise.
    pub fn location(&self, action: &str, ctx: &Context, image: &Image) -> Result<(), ApiError> {
        self.check_image(action, ctx, image)
    }

    /// A location action that changes the image (`set_image_location`, `delete_image_location`,
    /// `add_image_location`): the policy, then the ownership rule no policy file lifts, as
    /// [`Enforcer::change`].
    pub fn change_location(
        &self,
        action: &str,
        ctx: &Context,
        image: &Image,
    ) -> Result<(), ApiError> {
        self.check_image(action, ctx, image)?;
        Ok(ownership::may_change(ctx, image, Change::Modify)?)
    }

    /// Whether the policy allows a location action, without an error (what a view shows).
    pub fn allows_location(&self, action: &str, ctx: &Context, image: &Image) -> bool {
        self.allowed(action, ctx, &image_target(ctx, image))
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
        "get_image_location" | "fetch_image_location" => "read the locations of",
        "set_image_location" | "add_image_location" => "add locations to",
        "delete_image_location" => "remove locations from",
        _ => "act on",
    }
}

#[cfg(test)]
mod tests;

// ---- Tasks (issue 30) ----

impl Enforcer {
    /// The tasks API (`GET /v2/tasks[/{id}]`): `tasks_api_access` (admin by default), then
    /// `action` (`get_tasks`, `get_task`), with the caller's project as the target.
    pub fn tasks(&self, action: &str, ctx: &Context) -> Result<(), ApiError> {
        let target = Target::new().with("project_id", ctx.project_id.clone().unwrap_or_default());
        for a in ["tasks_api_access", action] {
            if !self.allowed(a, ctx, &target) {
                return Err(ApiError::forbidden(format!(
                    "You are not authorized to complete {action} action (policy {a})."
                )));
            }
        }
        Ok(())
    }
}

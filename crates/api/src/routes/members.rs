//! `/v2/images/{id}/members[/{member}]`: sharing an image with other projects.

use actix_web::{HttpResponse, web};
use glance_model::ownership::Change;
use glance_model::wire::MemberUpdate;
use glance_model::{MemberStatus, Visibility};
use serde::Deserialize;
use serde_json::json;

use super::image_id;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::policy::Read;
use crate::view;

fn only_shared(visibility: Visibility) -> Result<(), ApiError> {
    if visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Only shared images have members; this image is {}",
            visibility.as_str()
        )))
    }
}

/// `GET /v2/images/{id}/members`
pub async fn list_members(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.read(Read::GetMembers, &ctx, &image)?;
    only_shared(image.visibility)?;
    let members = state.registry.list_members(&ctx, &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "members": members.iter().map(view::member).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })))
}

/// `POST /v2/images/{id}/members`: the body must be an object `{"member": "<project>"}`.
/// Glance 33 answers any other JSON (a list `["<project>"]` included) with 400; serde would
/// read a one-element list as the struct's fields in order, so the body is taken as a value.
pub async fn create_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let member = body
        .as_object()
        .and_then(|o| o.get("member"))
        .ok_or_else(|| {
            ApiError::bad_request(
                "The member to add is missing: send a JSON object {\"member\": \"<project id>\"}",
            )
        })?;
    super::reject_nul(member)?;
    let member = member
        .as_str()
        .ok_or_else(|| ApiError::bad_request("member must be a project id string"))?;
    glance_model::member::validate_member_id(member)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::AddMember, &ctx, &image)?;
    only_shared(image.visibility)?;
    let m = state.registry.add_member(&ctx, &id, member).await?;
    Ok(HttpResponse::Ok().json(view::member(&m)))
}

/// `GET /v2/images/{id}/members/{member}`
pub async fn show_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, member) = path.into_inner();
    let id = image_id(&raw)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.show_member(&ctx, &image, &member)?;
    // Glance 33: a membership of an image that is no longer shared is not found (404), while
    // listing or changing members of such an image is forbidden (403).
    if image.visibility != Visibility::Shared {
        return Err(ApiError::not_found(format!(
            "{member} is not a member of image {id}: the image is {}, not shared",
            image.visibility.as_str()
        )));
    }
    let m = state.registry.get_member(&ctx, &id, &member).await?;
    Ok(HttpResponse::Ok().json(view::member(&m)))
}

/// Body of `PUT /v2/images/{id}/members/{member}`.
#[derive(Debug, Deserialize)]
pub struct SetStatus {
    status: serde_json::Value,
}

/// `PUT /v2/images/{id}/members/{member}`: only the member itself answers.
pub async fn update_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<SetStatus>,
) -> Result<HttpResponse, ApiError> {
    let (raw, member) = path.into_inner();
    let id = image_id(&raw)?;
    let status: MemberStatus = body
        .status
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid status {}: use pending, accepted or rejected",
                body.status
            ))
        })?;
    let image = state.registry.get_image(&ctx, &id).await?;
    only_shared(image.visibility)?;
    // Make sure the membership exists (404) before saying who may change it (403).
    state.registry.get_member(&ctx, &id, &member).await?;
    state.policy.set_member_status(&ctx, &image, &member)?;
    let m = state
        .registry
        .update_member(&ctx, &id, &member, &MemberUpdate { status })
        .await?;
    Ok(HttpResponse::Ok().json(view::member(&m)))
}

/// `DELETE /v2/images/{id}/members/{member}`
pub async fn delete_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, member) = path.into_inner();
    let id = image_id(&raw)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::DeleteMember, &ctx, &image)?;
    only_shared(image.visibility)?;
    state.registry.delete_member(&ctx, &id, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

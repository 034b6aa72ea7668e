//! `/v1/images/{id}/members[/{member}]`.

use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::wire::{MemberList, MemberUpdate, NewMember};

use super::{Caller, RouteError, image_id, quotas, replayed};
use crate::app::AppState;

/// `GET /v1/images/{id}/members`
pub async fn list_members(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let list = state.catalog.members(ctx, id).await?;
    Ok(HttpResponse::Ok().json(MemberList { members: list }))
}

/// `POST /v1/images/{id}/members`; a resend ([`replayed`]) of an add that committed is
/// answered with the membership it made.
pub async fn create_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    body.validate()?;
    let member = body.into_inner().member;
    let m = state
        .catalog
        .add_member(ctx, id, member, replayed(&req), quotas(&req)?)
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `GET /v1/images/{id}/members/{member}`
pub async fn show_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RouteError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    let m = state.catalog.member(ctx, id, member).await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `PUT /v1/images/{id}/members/{member}`
pub async fn update_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<MemberUpdate>,
) -> Result<HttpResponse, RouteError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    let m = state
        .catalog
        .set_member_status(ctx, id, member, body.status)
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `DELETE /v1/images/{id}/members/{member}`; a resent removal ([`replayed`]) of a
/// membership that is gone is a success.
pub async fn delete_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RouteError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    state
        .catalog
        .remove_member(ctx, id, member, replayed(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

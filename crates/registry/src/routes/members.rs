//! `/v1/images/{id}/members[/{member}]`.

use actix_web::{HttpResponse, web};
use glance_model::wire::{MemberList, MemberUpdate, NewMember};

use super::{ApiError, Caller, image_id};
use crate::app::AppState;
use crate::db::members;

/// `GET /v1/images/{id}/members`
pub async fn list_members(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let list = state.db.run(move |c| members::list(c, &ctx, &id)).await?;
    Ok(HttpResponse::Ok().json(MemberList { members: list }))
}

/// `POST /v1/images/{id}/members`
pub async fn create_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    body.validate()?;
    let m = state
        .db
        .write(move |c| members::add(c, &ctx, &id, &body.member))
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `GET /v1/images/{id}/members/{member}`
pub async fn show_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    let m = state
        .db
        .run(move |c| members::find(c, &ctx, &id, &member))
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `PUT /v1/images/{id}/members/{member}`
pub async fn update_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<MemberUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    let status = body.status;
    let m = state
        .db
        .write(move |c| members::set_status(c, &ctx, &id, &member, status))
        .await?;
    Ok(HttpResponse::Ok().json(m))
}

/// `DELETE /v1/images/{id}/members/{member}`
pub async fn delete_member(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    state
        .db
        .write(move |c| members::remove(c, &ctx, &id, &member))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

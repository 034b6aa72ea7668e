//! `/v1/images/{id}/members[/{member}]`.

use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::ErrorKind;
use glance_model::wire::{MemberList, MemberUpdate, NewMember};

use super::{Caller, RouteError, image_id, replayed};
use crate::app::AppState;
use crate::db::members;

/// `GET /v1/images/{id}/members`
pub async fn list_members(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let list = state.db.run(move |c| members::list(c, &ctx, &id)).await?;
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
    // Kept only for a resend, so a first sending pays nothing for it.
    let replay = replayed(&req).then(|| (ctx.clone(), member.clone()));
    let added = state
        .db
        .write(move |c| members::add(c, &ctx, &id, &member))
        .await;
    let m = match (added, replay) {
        // A resent add finds the membership made: the first sending made it.
        (Err(e), Some((ctx, member))) if e.kind() == ErrorKind::Conflict => state
            .db
            .run(move |c| members::find(c, &ctx, &id, &member))
            .await
            .map_err(|_| e)?,
        (added, _) => added?,
    };
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
) -> Result<HttpResponse, RouteError> {
    let (id, member) = path.into_inner();
    let id = image_id(&id)?;
    let status = body.status;
    let m = state
        .db
        .write(move |c| members::set_status(c, &ctx, &id, &member, status))
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
    let ctx2 = ctx.clone();
    let removed = state
        .db
        .write(move |c| members::remove(c, &ctx, &id, &member))
        .await;
    match removed {
        // A resent removal finds the membership gone from an image the caller sees: the
        // first sending removed it.
        Err(e) if e.kind() == ErrorKind::NotFound && replayed(&req) => {
            state
                .db
                .run(move |c| crate::db::images::show(c, &ctx2, &id))
                .await
                .map_err(|_| e)?;
        }
        other => other?,
    }
    Ok(HttpResponse::NoContent().finish())
}

//! The upload lease: `/v1/images/{id}/upload[...]` and `/v1/leases/expired`.

use actix_web::{HttpResponse, web};
use glance_model::wire::{LeaseList, LeaseRequest, LeaseToken, UploadComplete};

use super::{Caller, RouteError, image_id};
use crate::app::AppState;

/// `POST /v1/images/{id}/upload`: `queued → saving` and a lease.
pub async fn start_upload(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<LeaseRequest>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let lease = state
        .catalog
        .start_upload(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(lease))
}

/// `PUT /v1/images/{id}/upload`: heartbeat.
pub async fn renew_upload(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<LeaseToken>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let body = body.into_inner();
    let ttl = body.ttl_secs.unwrap_or(state.default_lease_secs);
    let lease = state
        .catalog
        .renew_upload(id, body.token, ttl, body.message)
        .await?;
    Ok(HttpResponse::Ok().json(lease))
}

/// `POST /v1/images/{id}/upload/complete`: `saving → active` with size, checksums, location.
pub async fn complete_upload(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<UploadComplete>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state
        .catalog
        .complete_upload(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `POST /v1/images/{id}/upload/abort`: `saving → queued`.
pub async fn abort_upload(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<LeaseToken>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let body = body.into_inner();
    let image = state
        .catalog
        .abort_upload(ctx, id, body.token, body.message)
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `POST /v1/images/{id}/upload/recover`: `saving → queued` once the lease has expired.
pub async fn recover_upload(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state.catalog.recover_upload(ctx, id).await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `POST /v1/images/{id}/locations`: edits of the image's locations (add, remove, replace),
/// applied under its row lock with the location quota checked there.
pub async fn change_locations(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<glance_model::wire::LocationsChange>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state
        .catalog
        .change_locations(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `GET /v1/leases/expired`
pub async fn list_expired_leases(state: web::Data<AppState>) -> Result<HttpResponse, RouteError> {
    let list = state.catalog.expired_leases().await?;
    Ok(HttpResponse::Ok().json(LeaseList { leases: list }))
}

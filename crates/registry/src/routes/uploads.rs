//! The upload lease: `/v1/images/{id}/upload[...]` and `/v1/leases/expired`.

use actix_web::{HttpResponse, web};
use glance_model::wire::{LeaseList, LeaseRequest, LeaseToken, UploadComplete};

use super::{Caller, RouteError, image_id};
use crate::app::AppState;
use crate::db::leases;

/// `POST /v1/images/{id}/upload`: `queued → saving` and a lease.
pub async fn start_upload(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<LeaseRequest>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let lease = state
        .db
        .write(move |c| leases::acquire(c, &ctx, &id, &body))
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
    let ttl = body.ttl_secs.unwrap_or(state.default_lease_secs);
    let lease = state
        .db
        .write(move |c| leases::heartbeat(c, &id, &body.token, ttl))
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
        .db
        .write(move |c| leases::complete(c, &ctx, &id, &body))
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
    let image = state
        .db
        .write(move |c| leases::abort(c, &ctx, &id, &body.token))
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
    let image = state
        .db
        .write(move |c| leases::recover(c, &ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `GET /v1/leases/expired`
pub async fn list_expired_leases(state: web::Data<AppState>) -> Result<HttpResponse, RouteError> {
    let list = state
        .db
        .run(|c| leases::expired(c, glance_model::time::now()))
        .await?;
    Ok(HttpResponse::Ok().json(LeaseList { leases: list }))
}

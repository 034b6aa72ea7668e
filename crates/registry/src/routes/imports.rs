//! Interoperable import (issue 30): `/v1/images/{id}/stage[...]`, `/v1/images/{id}/import`,
//! and the task reads `/v1/tasks[/{id}]`, `/v1/images/{id}/tasks`. The import's progress,
//! end and recovery go through the lease routes of `uploads`.

use actix_web::{HttpResponse, web};
use glance_model::wire::{ImportStart, LeaseRequest, StageComplete, TaskList};
use serde::Deserialize;

use super::{Caller, RouteError, image_id};
use crate::app::AppState;
use crate::db::tasks::TaskFilter;

/// `POST /v1/images/{id}/stage`: `queued → uploading` and a lease.
pub async fn start_stage(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<LeaseRequest>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let lease = state
        .catalog
        .start_stage(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(lease))
}

/// `POST /v1/images/{id}/stage/complete`: the staged size recorded, the lease released.
pub async fn complete_stage(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<StageComplete>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state
        .catalog
        .complete_stage(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `POST /v1/images/{id}/import`: the import lock, `importing`, a lease and the task.
pub async fn start_import(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<ImportStart>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let started = state
        .catalog
        .start_import(ctx, id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(started))
}

/// The query of `GET /v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    limit: Option<i64>,
    sort_dir: Option<String>,
}

/// `GET /v1/tasks`
pub async fn list_tasks(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    q: web::Query<TaskQuery>,
) -> Result<HttpResponse, RouteError> {
    let q = q.into_inner();
    let filter = TaskFilter {
        image_id: None,
        status: q.status,
        task_type: q.task_type,
        limit: q.limit,
        ascending: q.sort_dir.as_deref() == Some("asc"),
    };
    let tasks = state.catalog.tasks(ctx, filter).await?;
    Ok(HttpResponse::Ok().json(TaskList { tasks }))
}

/// `GET /v1/tasks/{id}`
pub async fn show_task(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let task = state.catalog.task(ctx, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(task))
}

/// `GET /v1/images/{id}/tasks`
pub async fn list_image_tasks(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let tasks = state.catalog.image_tasks(ctx, id).await?;
    Ok(HttpResponse::Ok().json(TaskList { tasks }))
}

//! Interoperable import (issue 30): `PUT /v2/images/{id}/stage`, `POST
//! /v2/images/{id}/import`, and the tasks it leaves: `GET /v2/tasks`, `GET /v2/tasks/{id}`,
//! `GET /v2/images/{id}/tasks`.
//!
//! A stage is an upload into the staging area: the same checks, caps, hashing pass, format
//! inspection and lease as `PUT /file` (`data`), with the image `uploading` while the bytes
//! flow and after. An import is checked here (body, method, policy, filters), started in the
//! registry (which checks the image's status and takes the import lock atomically), and run
//! in the background by [`crate::import`]; the answer is 202 at once.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use glance_inspect::Inspector;
use glance_model::ErrorKind;
use glance_model::ownership::Change;
use glance_model::wire::{IMPORT_METHODS, ImportStart, LeaseRequest, StageComplete, Task};
use glance_store::{StoreError, WriteLimits};
use serde_json::{Value, json};

use super::data::{Preflight, Purpose, UploadGuard, header, judge, lease_context, preflight};
use super::image_id;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http1::{self, Drain};
use crate::import::{Job, Source, check_uri};
use crate::limits::{self, Resource};

/// `PUT /v2/images/{id}/stage`
pub async fn stage_image_data(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let pre = match preflight(&req, &state, &ctx, &id, Purpose::Stage).await {
        Ok(p) => p,
        Err(e) => {
            http1::discard(&mut payload, Drain::REFUSED_UPLOAD).await;
            return Err(e);
        }
    };
    let Preflight {
        id,
        cap,
        declared,
        disk_format,
        container_format,
        ..
    } = pre;
    // As Glance: the project's staged data alone must not be over `image_stage_total` (delta 0).
    if let Err(e) = limits::enforce(&state, &ctx, &[(Resource::ImageStageTotal, 0)]).await {
        http1::discard(&mut payload, Drain::REFUSED_UPLOAD).await;
        return Err(e);
    }
    let lease = state
        .registry
        .start_stage(
            &ctx,
            &id,
            &LeaseRequest {
                node: state.config.node_id.clone(),
                ttl_secs: state.config.upload_lease_ttl_secs,
            },
        )
        .await?;
    let lease_ctx = lease_context(&state, &ctx).await?;
    let mut guard = UploadGuard::hold(&state, lease_ctx.clone(), id, lease.token.clone());
    let mut inspector = (container_format.as_deref() == Some("bare")).then(Inspector::new);
    let stream = payload.map(|r| {
        let chunk = r.map_err(|e| StoreError::Source(e.to_string()))?;
        if let Some(i) = inspector.as_mut() {
            i.feed(&chunk);
        }
        Ok(chunk)
    });
    let limits = WriteLimits {
        cap: Some(cap),
        declared_size: declared,
    };
    let staged = match state
        .importer
        .staging
        .add(
            &id.to_string(),
            stream,
            &limits,
            state.config.hashing_algorithm,
        )
        .await
    {
        Ok(w) => w,
        Err(e) => {
            guard.abort().await;
            return Err(match e {
                StoreError::Duplicate(_) => ApiError::conflict(format!(
                    "Image {id} already has staged data; delete the image to stage again"
                )),
                e => e.into(),
            });
        }
    };
    if let Err(e) = judge(&state, inspector, &disk_format, &container_format) {
        state.importer.unstage(&id).await;
        guard.abort().await;
        return Err(e);
    }
    let done = StageComplete {
        token: lease.token.clone(),
        size: i64::try_from(staged.size_bytes).unwrap_or(i64::MAX),
        stage_host: state
            .config
            .import
            .self_reference_url
            .clone()
            .or_else(|| state.config.public_endpoint.clone()),
    };
    match state.registry.complete_stage(&lease_ctx, &id, &done).await {
        Ok(_) => {
            guard.settled = true;
            Ok(HttpResponse::NoContent().finish())
        }
        Err(e) => {
            state.importer.unstage(&id).await;
            if matches!(e.kind(), ErrorKind::Gone | ErrorKind::NotFound) {
                guard.settled = true;
                return Err(ApiError::rule(
                    ErrorKind::Gone,
                    format!("Image {id} was deleted during the stage; the staged data was removed"),
                ));
            }
            guard.abort().await;
            Err(e)
        }
    }
}

/// The parts of an import request Glance reads, checked as Glance checks them.
struct ImportRequest {
    method: String,
    uri: Option<url::Url>,
    store: Option<String>,
}

fn parse_import(
    state: &AppState,
    req: &HttpRequest,
    body: &Value,
) -> Result<ImportRequest, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(
            "The import request body must be a JSON object",
        ));
    };
    let name = obj
        .get("method")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "The import request needs a method: {\"method\": {\"name\": \"glance-direct\"}}",
            )
        })?;
    if !IMPORT_METHODS.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "Unknown import method name '{name}'."
        )));
    }
    if !state.config.import.methods.iter().any(|m| m == name) {
        return Err(ApiError::bad_request(format!(
            "Import method {name} is not enabled here; the enabled methods are: {}",
            state.config.import.methods.join(", ")
        )));
    }
    for flag in ["all_stores", "all_stores_must_succeed"] {
        if obj
            .get(flag)
            .is_some_and(|v| !v.is_boolean() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "{flag} must be true or false"
            )));
        }
    }
    let stores = match obj.get("stores") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_request("stores must be a list of store ids"))?,
        Some(_) => return Err(ApiError::bad_request("stores must be a list of store ids")),
    };
    let all_stores = obj.get("all_stores").and_then(Value::as_bool) == Some(true);
    let must_succeed = obj.get("all_stores_must_succeed").and_then(Value::as_bool);
    let header_store = header(req, "x-image-meta-store").map(str::to_string);
    let store = if state.stores.multi_store() {
        if header_store.is_some() && (!stores.is_empty() || all_stores) {
            return Err(ApiError::bad_request(
                "Name the stores either in the X-Image-Meta-Store header or in the body, not both",
            ));
        }
        let mut wanted = stores;
        if let Some(h) = header_store {
            wanted.push(h);
        }
        if all_stores || wanted.len() > 1 {
            return Err(ApiError::bad_request(
                "Importing to more than one store is not implemented yet; name one store",
            ));
        }
        if let Some(s) = wanted.first()
            && state.stores.entry(s).is_none()
        {
            return Err(ApiError::conflict(format!("Unknown store {s}")));
        }
        wanted.into_iter().next()
    } else {
        // As Glance: without multi-store the stores are not read, but asking that not all
        // of them must succeed makes no sense.
        if must_succeed == Some(false) {
            return Err(ApiError::bad_request(
                "all_stores_must_succeed can only be false when multiple stores are enabled",
            ));
        }
        None
    };
    let uri = if name == "web-download" {
        let raw = obj
            .get("method")
            .and_then(|m| m.get("uri"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad_request("The web-download method needs a uri to download from")
            })?;
        let url = url::Url::parse(raw)
            .map_err(|e| ApiError::bad_request(format!("The uri {raw:?} is not a URL: {e}")))?;
        check_uri(&state.config.import.filters, &url).map_err(|why| {
            ApiError::bad_request(format!(
                "URI for web-download does not pass filtering: {raw} ({why})"
            ))
        })?;
        Some(url)
    } else {
        None
    };
    Ok(ImportRequest {
        method: name.to_string(),
        uri,
        store,
    })
}

/// `POST /v2/images/{id}/import`
pub async fn import_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    super::reject_nul(&body)?;
    let parsed = parse_import(&state, &req, &body)?;
    // As Glance, before anything else: the project's image data alone must not be over
    // `image_size_total` (delta 0).
    limits::enforce(&state, &ctx, &[(Resource::ImageSizeTotal, 0)]).await?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::Import, &ctx, &image)?;
    if parsed.method == "glance-direct"
        && image.status == glance_model::ImageStatus::Uploading
        && image.size.is_some()
        && !state.importer.is_staged(&id)
    {
        return Err(ApiError::conflict(format!(
            "Image {id}'s staged data is not on this node; send the import to the node that staged it"
        )));
    }
    let store_ids = vec![
        parsed
            .store
            .clone()
            .unwrap_or_else(|| state.stores.default_id().to_string()),
    ];
    let backend: Value = if state.stores.multi_store() {
        json!(store_ids)
    } else {
        json!([null])
    };
    let start = ImportStart {
        lease: LeaseRequest {
            node: state.config.node_id.clone(),
            ttl_secs: state.config.upload_lease_ttl_secs,
        },
        method: parsed.method.clone(),
        stores: if state.stores.multi_store() {
            store_ids
        } else {
            Vec::new()
        },
        input: json!({"image_id": id.to_string(), "import_req": body.into_inner(),
                      "backend": backend}),
    };
    let started = state.registry.start_import(&ctx, &id, &start).await?;
    let job = Job {
        id,
        ctx: lease_context(&state, &ctx).await?,
        started,
        source: parsed.uri.map_or(Source::Staged, Source::Web),
        store: parsed.store,
        disk_format: image.disk_format.clone(),
        container_format: image.container_format.clone(),
    };
    crate::import::spawn(state.get_ref().clone(), job);
    Ok(HttpResponse::Accepted().finish())
}

fn isotime(t: &chrono::NaiveDateTime) -> String {
    glance_model::time::isotime(t)
}

/// A task as `GET /v2/tasks/{id}` shows it; `stub` (the list) leaves out input, result and
/// message, as Glance.
fn task_view(t: &Task, stub: bool) -> Value {
    let mut v = json!({
        "id": t.id, "type": t.task_type, "status": t.status, "owner": t.owner,
        "expires_at": t.expires_at.as_ref().map(isotime),
        "created_at": isotime(&t.created_at),
        "updated_at": t.updated_at.as_ref().map(isotime),
        "self": format!("/v2/tasks/{}", t.id), "schema": "/v2/schemas/task",
    });
    if !stub {
        v["input"] = t.input.clone();
        v["result"] = t.result.clone().unwrap_or(Value::Null);
        v["message"] = json!(t.message);
    }
    for (k, val) in [
        ("image_id", &t.image_id),
        ("request_id", &t.request_id),
        ("user_id", &t.user_id),
    ] {
        if let Some(s) = val {
            v[k] = json!(s);
        }
    }
    v
}

/// `GET /v2/tasks`
pub async fn list_tasks(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    q: web::Query<std::collections::BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    state.policy.tasks("get_tasks", &ctx)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in q.iter() {
        match k.as_str() {
            "status" if matches!(v.as_str(), "pending" | "processing" | "success" | "failure") => {
                query.push(("status", v.clone()));
            }
            "type"
                if matches!(
                    v.as_str(),
                    "import" | "api_image_import" | "location_import"
                ) =>
            {
                query.push(("type", v.clone()));
            }
            "sort_dir" if matches!(v.as_str(), "asc" | "desc") => {
                query.push(("sort_dir", v.clone()))
            }
            "limit" => {
                let n: u32 = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("limit must be a positive number, not {v:?}"))
                })?;
                query.push(("limit", n.min(state.config.api_limit_max).to_string()));
            }
            "sort_key"
                if matches!(
                    v.as_str(),
                    "created_at" | "updated_at" | "id" | "status" | "type"
                ) => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid task filter or value: {other}={v}"
                )));
            }
        }
    }
    let tasks = state.registry.list_tasks(&ctx, &query).await?;
    let tasks: Vec<Value> = tasks.iter().map(|t| task_view(t, true)).collect();
    Ok(HttpResponse::Ok().json(json!({
        "tasks": tasks, "first": "/v2/tasks", "schema": "/v2/schemas/tasks",
    })))
}

/// `GET /v2/tasks/{id}`
pub async fn show_task(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.policy.tasks("get_task", &ctx)?;
    let task = state.registry.get_task(&ctx, &id).await?;
    Ok(HttpResponse::Ok().json(task_view(&task, false)))
}

/// `GET /v2/images/{id}/tasks` (2.12): the image's tasks, whole, as Glance lists them.
pub async fn list_image_tasks(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.show(&ctx, &image)?;
    let tasks = state.registry.image_tasks(&ctx, &id).await?;
    let fine = |t: &chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "type": t.task_type, "status": t.status, "owner": t.owner,
                "expires_at": t.expires_at.as_ref().map(fine),
                "created_at": fine(&t.created_at),
                "updated_at": t.updated_at.as_ref().map(fine),
                "deleted_at": null, "deleted": false,
                "image_id": t.image_id, "request_id": t.request_id, "user_id": t.user_id,
                "input": t.input, "result": t.result, "message": t.message,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "tasks": tasks })))
}

//! Discovery: `/v2/schemas/{name}`, `/v2/info/import`, `/v2/info/stores`, `/v2/info/usage`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// `GET /v2/schemas/{name}`
pub async fn show_schema(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let disk: Vec<&str> = state
        .config
        .disk_formats
        .iter()
        .map(String::as_str)
        .collect();
    let container: Vec<&str> = state
        .config
        .container_formats
        .iter()
        .map(String::as_str)
        .collect();
    crate::schemas::by_name(&name, &disk, &container)
        .map(|s| HttpResponse::Ok().json(s))
        .ok_or_else(|| ApiError::not_found(format!("No schema named {name}")))
}

/// `GET /v2/info/import`: the enabled import methods (`enabled_import_methods`).
pub async fn import_info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "import-methods": {
            "description": "Import methods this service offers.",
            "type": "array",
            "value": state.config.import.methods,
        }
    }))
}

/// `GET /v2/info/stores`: the stores (multi-store only, 404 otherwise, as Glance).
pub async fn stores_info(
    state: web::Data<AppState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    if !state.stores.multi_store() {
        return Err(ApiError::not_found(
            "Multi backend is not supported at this site.",
        ));
    }
    let stores: Vec<serde_json::Value> = state
        .stores
        .describe()
        .into_iter()
        .map(|s| {
            let mut v = json!({"id": s.id, "description": s.description});
            if s.is_default {
                v["default"] = json!("true");
            }
            if s.read_only {
                v["read-only"] = json!("true");
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "stores": stores })))
}

/// `GET /v2/info/stores/detail`: each store with its type, weight and settings (policy
/// `stores_info_detail`: admin or service); 404 without multi-store, as Glance.
pub async fn stores_info_detail(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, ApiError> {
    if !state.stores.multi_store() {
        return Err(ApiError::not_found(
            "Multi backend is not supported at this site.",
        ));
    }
    state.policy.global("stores_info_detail", &ctx)?;
    let stores: Vec<serde_json::Value> = state
        .stores
        .describe_detail()
        .await
        .into_iter()
        .map(|d| {
            let s = d.info;
            let mut v = json!({"id": s.id, "description": s.description});
            if s.is_default {
                v["default"] = json!("true");
            }
            if s.read_only {
                v["read-only"] = json!("true");
            }
            v["type"] = json!(d.kind);
            v["properties"] = d.properties;
            v["weight"] = json!(s.weight);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "stores": stores })))
}

/// `GET /v2/info/usage`: each unified limit and the caller's project's usage of it;
/// `{"usage": {}}` without `use_keystone_limits`, as Glance.
pub async fn usage_info(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, ApiError> {
    let mut usage = serde_json::Map::new();
    for (r, limit, used) in crate::limits::usage(&state, &ctx)
        .await?
        .unwrap_or_default()
    {
        usage.insert(r.name().to_string(), json!({"limit": limit, "usage": used}));
    }
    Ok(HttpResponse::Ok().json(json!({ "usage": usage })))
}

/// `GET /v2/schemas/metadefs/{name}`
pub async fn show_metadef_schema(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    crate::metadef_schemas::by_name(&name)
        .map(|s| HttpResponse::Ok().json(s))
        .ok_or_else(|| ApiError::not_found(format!("No metadefs schema named {name}")))
}

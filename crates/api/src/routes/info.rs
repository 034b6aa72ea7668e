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

/// `GET /v2/info/usage`: Glance answers `{"usage": {}}` without Keystone limits.
pub async fn usage_info(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "usage": {} }))
}

/// `GET /v2/schemas/metadefs/{name}`
pub async fn show_metadef_schema(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    crate::metadef_schemas::by_name(&name)
        .map(|s| HttpResponse::Ok().json(s))
        .ok_or_else(|| ApiError::not_found(format!("No metadefs schema named {name}")))
}

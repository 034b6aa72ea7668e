//! `GET/HEAD /healthcheck`: 200 `OK` (204 for HEAD) while the registry and every store
//! answer; 503 naming what is wrong otherwise. `?detailed` or `Accept: application/json`
//! gets JSON with each check.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::AppState;

/// `GET/HEAD /healthcheck`
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let registry = state.registry.healthy().await;
    let stores = state.stores.health();
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = &registry {
        problems.push(e.clone());
    }
    for (id, s) in &stores {
        if let Err(e) = s {
            problems.push(format!("store {id}: {e}"));
        }
    }
    let ok = problems.is_empty();
    let wants_json = req.query_string().contains("detailed")
        || req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    let mut res = if ok {
        if req.method() == Method::HEAD {
            HttpResponse::NoContent()
        } else {
            HttpResponse::Ok()
        }
    } else {
        HttpResponse::ServiceUnavailable()
    };
    if req.method() == Method::HEAD {
        return res.finish();
    }
    if wants_json {
        let detail: serde_json::Map<String, serde_json::Value> = stores
            .iter()
            .map(|(id, s)| {
                (
                    format!("store:{id}"),
                    json!(s.as_ref().map_or_else(|e| e.clone(), |()| "OK".to_string())),
                )
            })
            .collect();
        return res.json(json!({
            "status": if ok { "OK" } else { "FAILED" },
            "registry": registry.as_ref().map_or_else(|e| e.clone(), |()| "OK".to_string()),
            "stores": detail,
            "reasons": problems,
        }));
    }
    res.content_type("text/plain; charset=UTF-8").body(if ok {
        "OK".to_string()
    } else {
        problems.join("\n")
    })
}

//! `GET/HEAD /healthcheck`, as oslo.middleware's healthcheck answers it: 200 `OK` (204 for
//! HEAD) while the registry and every store answer; 503 naming what is wrong otherwise; 503
//! `DISABLED BY FILE` while `[healthcheck] disable_by_file_path` exists, which is how an
//! operator drains a node behind a load balancer. `Accept: application/json` gets
//! `{"detailed": false, "reasons": [...]}`; `?detailed` or `[healthcheck] detailed = true`
//! adds each check (database through the registry, registry, stores).

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::json;

use crate::app::AppState;

/// The body oslo.middleware sends while the disable file exists.
pub const DISABLED_BY_FILE: &str = "DISABLED BY FILE";

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

fn answer(
    req: &HttpRequest,
    mut res: HttpResponseBuilder,
    json: serde_json::Value,
    text: String,
) -> HttpResponse {
    // Glance's healthcheck middleware answers before any request id is made.
    res.extensions_mut().insert(crate::app::NoRequestId);
    if req.method() == Method::HEAD {
        return res.finish();
    }
    if wants_json(req) || req.query_string().contains("detailed") {
        return res.json(json);
    }
    res.content_type("text/plain; charset=UTF-8").body(text)
}

fn status_of(check: &Result<(), String>) -> serde_json::Value {
    json!(
        check
            .as_ref()
            .map_or_else(Clone::clone, |()| "OK".to_string())
    )
}

/// `GET/HEAD /healthcheck`
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let detailed = state.config.healthcheck_detailed || req.query_string().contains("detailed");
    if let Some(file) = &state.config.healthcheck_disable_file
        && file.exists()
    {
        return answer(
            &req,
            HttpResponse::ServiceUnavailable(),
            json!({"detailed": detailed, "reasons": [DISABLED_BY_FILE]}),
            DISABLED_BY_FILE.to_string(),
        );
    }
    let health = state.registry.healthy().await;
    let stores = state.stores.health();
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = &health.registry {
        problems.push(e.clone());
    } else if let Err(e) = &health.database {
        problems.push(e.clone());
    }
    for (id, s) in &stores {
        if let Err(e) = s {
            problems.push(format!("store {id}: {e}"));
        }
    }
    let ok = problems.is_empty();
    let res = match (ok, req.method() == Method::HEAD) {
        (true, true) => HttpResponse::NoContent(),
        (true, false) => HttpResponse::Ok(),
        (false, _) => HttpResponse::ServiceUnavailable(),
    };
    let reasons = if ok {
        vec!["OK".to_string()]
    } else {
        problems.clone()
    };
    let body = if detailed {
        let checks: serde_json::Map<String, serde_json::Value> = stores
            .iter()
            .map(|(id, s)| (format!("store:{id}"), status_of(s)))
            .chain([
                ("registry".to_string(), status_of(&health.registry)),
                ("database".to_string(), status_of(&health.database)),
            ])
            .collect();
        json!({
            "detailed": true,
            "status": if ok { "OK" } else { "FAILED" },
            "reasons": reasons,
            "checks": checks,
        })
    } else {
        json!({"detailed": false, "reasons": reasons})
    };
    answer(&req, res, body, reasons.join("\n"))
}

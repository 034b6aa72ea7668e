//! `GET/HEAD /healthcheck`: 200 `OK` when the database answers, 503 otherwise, always within
//! [`HEALTH_WITHIN`]: a load balancer's check (HAProxy's `timeout check`) must get an answer
//! even while the database hangs or every connection is taken.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::Method, web};

use crate::app::AppState;

/// Longest a health check waits for the database before answering 503. glance-api's own
/// check waits a little longer for this answer, and both stay under a second.
pub const HEALTH_WITHIN: Duration = Duration::from_millis(700);

/// Checks the database with a trivial query.
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = state.catalog.ping();
    let db = match tokio::time::timeout(HEALTH_WITHIN, query).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the database did not answer within {} ms",
            HEALTH_WITHIN.as_millis()
        )),
    };
    let json = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let (status, reason) = match db {
        Ok(()) => (actix_web::http::StatusCode::OK, "OK".to_string()),
        Err(e) => (
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        ),
    };
    if req.method() == Method::HEAD {
        let code = if status.is_success() {
            actix_web::http::StatusCode::NO_CONTENT
        } else {
            status
        };
        return HttpResponse::build(code).finish();
    }
    if json {
        HttpResponse::build(status)
            .json(serde_json::json!({"detailed": false, "reasons": [reason]}))
    } else {
        HttpResponse::build(status)
            .content_type("text/plain")
            .body(reason)
    }
}

//! The versions document: `GET /` (300), `GET /versions` (200), and any unknown prefix (300).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::AppState;

/// Minor versions of v2 this service answers, newest first, with whether multi-store is
/// needed (2.8 and 2.10–2.13 exist only with `enabled_backends`, as in Glance).
const MINORS: &[(u32, bool)] = &[
    (17, false),
    (15, false),
    (13, true),
    (12, true),
    (11, true),
    (10, true),
    (9, false),
    (8, true),
    (7, false),
    (6, false),
    (5, false),
    (4, false),
    (3, false),
    (2, false),
    (1, false),
    (0, false),
];

/// Whether `/v2.<minor>` is served.
pub fn minor_supported(minor: &str, multi_store: bool) -> bool {
    minor.parse::<u32>().ok().is_some_and(|m| {
        MINORS
            .iter()
            .any(|(n, multi)| *n == m && (multi_store || !multi))
    })
}

fn document(req: &HttpRequest, state: &AppState) -> serde_json::Value {
    let base = state.config.public_endpoint.clone().unwrap_or_else(|| {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    let multi = state.stores.multi_store();
    let versions: Vec<serde_json::Value> = MINORS
        .iter()
        .filter(|(_, needs_multi)| multi || !needs_multi)
        .enumerate()
        .map(|(i, (m, _))| {
            json!({
                "id": format!("v2.{m}"),
                "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": format!("{base}/v2/")}],
            })
        })
        .collect();
    json!({ "versions": versions })
}

/// `GET /` and unknown versions: 300 Multiple Choices.
pub async fn versions_multiple_choices(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let mut res = HttpResponse::MultipleChoices().json(document(&req, &state));
    res.extensions_mut().insert(crate::app::NoRequestId);
    res
}

/// `GET /versions`: 200.
pub async fn list_versions(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut res = HttpResponse::Ok().json(document(&req, &state));
    res.extensions_mut().insert(crate::app::NoRequestId);
    res
}

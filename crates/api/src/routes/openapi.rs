//! `GET /v2/openapi.json`: the OpenAPI 3 description of every route glance-api serves, a
//! static document compiled into the binary (`crates/api/openapi.json`). Served without
//! authentication, like the versions document; it says nothing about any image.
//! The tests below keep it and the route table in `app.rs` in step: a route added without a
//! description (or a description of a route that does not exist) fails them.

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /v2/openapi.json`
pub async fn show_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;

    /// `/v2/images/{id}` → `/v2/images/{}`: parameter names may differ between the two.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                _ if in_param => {}
                _ => out.push(c),
            }
        }
        out
    }

    /// The next `"..."` literal in `text` after `marker`, and the rest after it.
    fn literal_after<'a>(text: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let end = rest.find('"')?;
        Some((&rest[..end], &rest[end..]))
    }

    /// Every (method, path shape) that `configure` in app.rs registers, read from its source:
    /// resources before `web::scope("…")` are at the root, the ones after it under the scope.
    fn routes_in_app() -> BTreeSet<(String, String)> {
        let source = include_str!("../app.rs");
        let body = &source[source
            .find("pub fn configure(")
            .expect("app.rs has configure")..];
        let body = &body[..body.find("\npub fn serve(").unwrap_or(body.len())];
        let (scope, _) = literal_after(body, "web::scope(\"").expect("app.rs has a scope");
        let scope_at = body.find("web::scope(\"").expect("scope position");
        let mut routes = BTreeSet::new();
        let mut rest = body;
        let mut offset = 0;
        while let Some(at) = rest.find("web::resource(\"") {
            let (path, tail) = literal_after(rest, "web::resource(\"").expect("resource path");
            let prefix = if offset + at > scope_at { scope } else { "" };
            let full = shape(&format!("{prefix}{path}"));
            let block = &tail[..tail.find("web::resource(\"").unwrap_or(tail.len())];
            let block = &block[..block.find(".default_service").unwrap_or(block.len())];
            let mut methods = block;
            while let Some(m) = methods.find(".route(web::") {
                let name = &methods[m + ".route(web::".len()..];
                let name = &name[..name.find('(').expect("method call")];
                routes.insert((name.to_string(), full.clone()));
                methods = &methods[m + 1..];
            }
            let consumed = rest.len() - tail.len();
            offset += consumed;
            rest = tail;
        }
        routes
    }

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    fn routes_in_document(doc: &Value) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("paths is an object");
        let mut out = BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if method != "parameters" {
                    out.insert((method.clone(), shape(path)));
                }
            }
        }
        out
    }

    #[test]
    fn the_app_rs_reader_finds_the_routes() {
        let routes = routes_in_app();
        // A reader that found nothing would make the next test pass vacuously.
        for expected in [
            ("get", "/"),
            ("head", "/healthcheck"),
            ("patch", "/v2/images/{}"),
            ("put", "/v2/images/{}/file"),
            ("delete", "/v2/images/{}/members/{}"),
            ("get", "/v2/openapi.json"),
        ] {
            let expected = (expected.0.to_string(), expected.1.to_string());
            assert!(routes.contains(&expected), "{expected:?} not in {routes:?}");
        }
        assert!(routes.len() >= 24, "only {} routes read", routes.len());
    }

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let in_app = routes_in_app();
        let in_doc = routes_in_document(&document());
        let undocumented: Vec<_> = in_app.difference(&in_doc).collect();
        assert!(
            undocumented.is_empty(),
            "routes in app.rs without a description in crates/api/openapi.json: {undocumented:?}"
        );
        let unserved: Vec<_> = in_doc.difference(&in_app).collect();
        assert!(
            unserved.is_empty(),
            "operations in crates/api/openapi.json that app.rs does not serve: {unserved:?}"
        );
    }

    #[test]
    fn the_document_is_complete_openapi_3() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let shared = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_string()), "operationId {id} used twice");
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{id}"
                );
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{id}"
                );
                // Each `{name}` in the path is declared as a path parameter, and nothing more.
                let params: Vec<Value> = shared
                    .iter()
                    .chain(op["parameters"].as_array().into_iter().flatten())
                    .map(|p| resolve(&doc, p))
                    .collect();
                let declared: BTreeSet<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let in_path: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}");
            }
        }
        // Links name real operations.
        for link in DOCUMENT.split("\"operationId\": \"").skip(1) {
            let id = &link[..link.find('"').expect("closing quote")];
            assert!(
                ids.contains(id),
                "a link names operation {id}, which does not exist"
            );
        }
    }

    #[test]
    fn the_format_lists_are_glances_defaults() {
        use glance_model::format::{DEFAULT_CONTAINER_FORMATS, DEFAULT_DISK_FORMATS};
        let doc = document();
        let create = &doc["components"]["schemas"]["ImageCreate"]["properties"];
        for (field, defaults) in [
            ("disk_format", DEFAULT_DISK_FORMATS),
            ("container_format", DEFAULT_CONTAINER_FORMATS),
        ] {
            let listed: Vec<&str> = create[field]["enum"]
                .as_array()
                .expect("an enum")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(listed, defaults, "{field}");
        }
    }

    fn resolve(doc: &Value, p: &Value) -> Value {
        match p["$ref"].as_str() {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                doc.pointer(pointer).cloned().expect("the $ref resolves")
            }
            None => p.clone(),
        }
    }

    #[actix_web::test]
    async fn the_document_is_served_as_json() {
        let res = super::show_openapi().await;
        assert_eq!(res.status(), actix_web::http::StatusCode::OK);
        assert_eq!(
            res.headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body = actix_web::body::to_bytes(res.into_body())
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v, document());
    }
}

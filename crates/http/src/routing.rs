//! Route plumbing: the 405 answer of a resource and the extractor error handlers, so a bad
//! method, body, path or query string gets the same JSON error shape as any other error.

use std::future::{Ready, ready};

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpResponse, error, web};

use crate::Daemon;
use crate::errors::error_response;

/// The default service of a resource that allows only the methods in `allow`
/// (`"GET, POST"`): 405 with that `Allow` header and [`Daemon::method_not_allowed`]'s message.
pub fn not_allowed<D: Daemon>(
    allow: &'static str,
) -> impl Fn() -> Ready<HttpResponse> + Clone + 'static {
    move || {
        let mut res = error_response(StatusCode::METHOD_NOT_ALLOWED, D::method_not_allowed(allow));
        if let Ok(v) = HeaderValue::from_str(allow) {
            res.headers_mut().insert(ALLOW, v);
        }
        ready(res)
    }
}

/// JSON bodies up to 1 MiB; over it 413, malformed 400 (`<Daemon::MALFORMED_JSON>: <why>`).
pub fn json_config<D: Daemon>() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1 << 20)
        .content_type_required(D::JSON_NEEDS_CONTENT_TYPE)
        .error_handler(|err, _| {
            // A body over the limit is too large, not malformed.
            let status = match err {
                error::JsonPayloadError::Overflow { .. }
                | error::JsonPayloadError::OverflowKnownLength { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("The request body is too large: {err}")
            } else {
                format!("{}: {err}", D::MALFORMED_JSON)
            };
            error::InternalError::from_response(err, error_response(status, msg)).into()
        })
}

/// A path segment that does not parse is a resource that does not exist: 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        let msg = format!("Invalid path: {err}");
        error::InternalError::from_response(err, error_response(StatusCode::NOT_FOUND, msg)).into()
    })
}

/// A query string that does not parse: 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let msg = format!("Invalid query parameters: {err}");
        error::InternalError::from_response(err, error_response(StatusCode::BAD_REQUEST, msg))
            .into()
    })
}

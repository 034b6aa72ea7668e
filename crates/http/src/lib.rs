//! The HTTP plumbing glance-api and glance-registry share, written once: the request id
//! (`x-openstack-request-id`), Glance's JSON error body and the kind → status mapping, 405
//! answers (`Allow` and a JSON body), the extractor error handlers, the middleware that gives
//! actix's own plain-text errors the same shape, and the access log.
//!
//! Where the two daemons answer differently today (the wording of a 405, glance-api's HTML
//! error pages for clients that do not ask for JSON), the difference is one item of its
//! [`Daemon`] description, not a second copy of the code. Each daemon's `app.rs` wires these in
//! one order, outermost first: [`access_log::log`], [`request_id`], (glance-api's version
//! prefix), [`errors::shape`], routes.

pub mod access_log;
pub mod errors;
pub mod routing;

use std::cell::Cell;
use std::rc::Rc;

use actix_web::HttpRequest;
use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

pub use errors::{chain, error_body, error_response, status_of};
pub use routing::{json_config, not_allowed, path_config, query_config};

/// What differs between the daemons' HTTP answers. Each daemon describes itself once (a unit
/// struct in its `app.rs`); the plumbing in this crate is generic over it.
pub trait Daemon: 'static {
    /// Log target of the access lines (`glance_api::access`, `glance_registry::access`).
    const ACCESS_LOG_TARGET: &'static str;

    /// Whether error bodies are negotiated as Glance's webob does: JSON when the request
    /// accepts `application/json`, otherwise an HTML page. When false, every error is JSON.
    const NEGOTIATES_ERROR_FORMAT: bool;

    /// Whether an error answer to a request that carried a body closes the connection, so a
    /// client still sending a rejected upload is not left blocked.
    const CLOSES_AFTER_UNREAD_BODY: bool;

    /// Whether a JSON body must come with a JSON `Content-Type` (actix's check).
    const JSON_NEEDS_CONTENT_TYPE: bool;

    /// What a malformed JSON body's 400 message starts with (`<this>: <parser's reason>`).
    const MALFORMED_JSON: &'static str;

    /// The message of a 405 on a resource that allows `allow` (e.g. `"GET, POST"`).
    fn method_not_allowed(allow: &str) -> String;

    /// The message of an error response actix wrote as plain text (`text`, trimmed).
    fn plain_error_message(status: StatusCode, text: &str) -> String {
        errors::plain_message(status, text)
    }

    /// Body bytes a response sends outside its body stream (glance-api's `sendfile`), as
    /// found in the response's extensions; the access log adds them to the bytes it counted.
    fn sent_outside_body(_extensions: &Extensions) -> Option<Rc<Cell<u64>>> {
        None
    }
}

/// Longest request id accepted from a caller (Glance: `max_request_id_length` = 64).
pub const MAX_REQUEST_ID: usize = 64;

/// The request id middleware: keeps the caller's `x-openstack-request-id` when it is usable
/// (non-empty, at most [`MAX_REQUEST_ID`] bytes), otherwise makes `req-<uuid>`; sets it on the
/// request (so handlers and the registry client see it) and on the response.
pub async fn request_id(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let header = HeaderName::from_static(glance_model::wire::HEADER_REQUEST_ID);
    let id = req
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    let value = HeaderValue::from_str(&id).map_err(actix_web::error::ErrorBadRequest)?;
    req.headers_mut().insert(header.clone(), value.clone());
    let mut res = next.call(req).await?;
    res.headers_mut().insert(header, value);
    Ok(res)
}

/// A request header's value, trimmed; `None` when absent, empty or not visible ASCII.
pub fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests;

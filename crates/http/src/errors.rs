//! Error answers: the kind → status mapping, Glance's JSON error body, the HTML page glance-api
//! sends clients that do not accept JSON, and the middleware that gives every error response
//! (also those actix writes itself as plain text) its daemon's shape.

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::middleware::Next;
use glance_model::ErrorKind;
use glance_model::wire::ErrorBody;

use crate::Daemon;

/// The HTTP status of an error kind: the one mapping both daemons use.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// Glance's JSON error body for a status: `{"message", "code": "<status> <reason>", "title"}`.
pub fn error_body(status: StatusCode, message: impl Into<String>) -> ErrorBody {
    let title = reason(status).to_string();
    ErrorBody {
        message: message.into(),
        code: format!("{} {title}", status.as_u16()),
        title,
    }
}

/// A JSON error response in Glance's JSON error shape.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(error_body(status, message))
}

/// The cause chain of an error, joined for one log line (5xx answers log it).
pub use glance_model::error::chain;

/// The message of an error actix wrote as plain text: its text, or the status's reason when
/// it has none ([`Daemon::plain_error_message`]'s default).
pub fn plain_message(status: StatusCode, text: &str) -> String {
    if text.is_empty() {
        reason(status).to_string()
    } else {
        text.to_string()
    }
}

/// The HTML error page Glance's webob sends a client that does not accept JSON.
pub fn html_page(status: StatusCode, message: &str) -> String {
    let title = format!("{} {}", status.as_u16(), reason(status));
    format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  \
         {}<br /><br />\n\n\n\n </body>\n</html>",
        html_escape(message)
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The error-shape middleware (`from_fn(errors::shape::<D>)`): an error response that is not
/// already in the shape the client gets is rewritten into it, keeping its status and other
/// headers (request id, `Allow`). With [`Daemon::NEGOTIATES_ERROR_FORMAT`], a client that does
/// not accept `application/json` gets [`html_page`]; otherwise every error is JSON. A HEAD
/// answer keeps its empty body.
pub async fn shape<D: Daemon>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static, String>>, actix_web::Error> {
    // Read per request, so without allocating.
    let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let wants_json = !D::NEGOTIATES_ERROR_FORMAT
        || header(&ACCEPT).is_some_and(|a| a.contains("application/json"));
    let has_body = D::CLOSES_AFTER_UNREAD_BODY
        && (header(&TRANSFER_ENCODING).is_some()
            || header(&CONTENT_LENGTH).is_some_and(|n| n.trim() != "0"));
    let mut res = next.call(req).await?;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res.map_into_left_body());
    }
    if has_body {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    // JSON to a JSON client stays; other errors to other clients keep their own body.
    if res.request().method() == Method::HEAD || wants_json == is_json {
        return Ok(res.map_into_left_body());
    }
    let (http_req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let message = if is_json {
        serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_default()
    } else {
        // actix's own errors (an oversized body, a malformed header) are plain text: they
        // get the same shape as every other error.
        D::plain_error_message(status, String::from_utf8_lossy(&bytes).trim())
    };
    let (body, content_type) = if wants_json {
        let json = serde_json::to_string(&error_body(status, message)).unwrap_or_default();
        (json, "application/json")
    } else {
        (html_page(status, &message), "text/html; charset=UTF-8")
    };
    let mut res = res.set_body(body);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(ServiceResponse::new(http_req, res).map_into_right_body())
}

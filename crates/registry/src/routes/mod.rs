//! HTTP handlers of the registry protocol (`/v1/...`) and `/healthcheck`. Handlers are thin:
//! extract, call one `db` function through `Database::run`, respond.

pub mod health;
pub mod images;
pub mod members;
pub mod uploads;

use std::future::{Ready, ready};

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload};
use glance_model::wire::{
    ErrorBody, HEADER_IS_ADMIN, HEADER_PROJECT_ID, HEADER_REQUEST_ID, HEADER_ROLES, HEADER_USER_ID,
};
use glance_model::{Context, ErrorKind, ImageId};

use crate::error::{RegistryError, chain};

/// The one error type of the registry's HTTP layer.
#[derive(Debug)]
pub struct ApiError(pub RegistryError);

impl<E: Into<RegistryError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The HTTP status of an error kind.
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

/// A JSON error response in Glance's shape.
pub fn error_response(status: StatusCode, message: String) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error").to_string();
    HttpResponse::build(status).json(ErrorBody {
        message,
        code: format!("{} {title}", status.as_u16()),
        title,
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.0.kind())
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            log::error!("registry request failed: {}", chain(&self.0));
        } else {
            log::debug!("registry request refused: {}", self.0);
        }
        error_response(status, self.0.public_message())
    }
}

/// The caller's context, read from the headers glance-api forwards.
pub struct Caller(pub Context);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let h = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let roles: Vec<String> = h(HEADER_ROLES)
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let is_admin = h(HEADER_IS_ADMIN).is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || roles.iter().any(|r| r == "admin");
        ready(Ok(Caller(Context {
            user_id: h(HEADER_USER_ID),
            project_id: h(HEADER_PROJECT_ID),
            roles,
            is_admin,
            request_id: h(HEADER_REQUEST_ID).unwrap_or_default(),
        })))
    }
}

/// Parses an image id from a path segment.
pub fn image_id(raw: &str) -> Result<ImageId, ApiError> {
    raw.parse::<ImageId>().map_err(ApiError::from)
}

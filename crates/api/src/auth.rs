//! Who is calling: the `Caller` extractor builds the request's [`Context`] according to the
//! configured `[paste_deploy] flavor`.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use glance_model::wire::HEADER_REQUEST_ID;
use glance_model::{Context, ErrorKind};

use crate::app::AppState;
use crate::config::AuthMode;
use crate::error::ApiError;

/// The caller's context.
#[derive(Debug, Clone)]
pub struct Caller(pub Context);

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Builds the context of a request.
pub fn context_of(req: &HttpRequest, mode: AuthMode) -> Result<Context, ApiError> {
    let request_id = header(req, HEADER_REQUEST_ID).unwrap_or_default();
    match mode {
        AuthMode::None => Ok(Context::unauthenticated_admin(request_id)),
        AuthMode::TrustedHeaders => {
            if header(req, "x-identity-status").as_deref() != Some("Confirmed") {
                return Err(ApiError::rule(
                    ErrorKind::Unauthorized,
                    "This server requires an authenticated identity (X-Identity-Status: Confirmed)",
                ));
            }
            let roles: Vec<String> = header(req, "x-roles")
                .map(|r| {
                    r.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            Ok(Context {
                user_id: header(req, "x-user-id"),
                project_id: header(req, "x-project-id").or_else(|| header(req, "x-tenant-id")),
                is_admin: roles.iter().any(|r| r == "admin"),
                roles,
                request_id,
            })
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mode = req
            .app_data::<web::Data<AppState>>()
            .map_or(AuthMode::None, |s| s.config.auth);
        ready(context_of(req, mode).map(Caller))
    }
}

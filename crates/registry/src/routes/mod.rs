//! HTTP handlers of the registry protocol (`/v1/...`) and `/healthcheck`. Handlers are thin:
//! extract, call one `crate::catalog::Catalog` method, respond. They never reach the
//! database or the record cache themselves.

pub mod health;
pub mod images;
pub mod imports;
pub mod members;
pub mod metadefs;
pub mod uploads;

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload};
use glance_http::header;
use glance_model::context::parse_roles;
use glance_model::quota::{HEADER_IMAGE_QUOTAS, ImageQuotas};
use glance_model::wire::{
    HEADER_IS_ADMIN, HEADER_PROJECT_ID, HEADER_REQUEST_ID, HEADER_ROLES, HEADER_USER_ID,
};
use glance_model::{Context, ErrorKind, ImageId};

use glance_auth::{AuthError, Flavor};

use crate::app::AppState;
use crate::error::{RegistryError, chain};

/// The one error type of the registry's HTTP layer: a [`RegistryError`] as a route answers it
/// (status from its kind, body from its public message). Not glance-api's `RouteError`.
#[derive(Debug)]
pub struct RouteError(pub RegistryError);

impl<E: Into<RegistryError>> From<E> for RouteError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether this request is glance-api sending a write again after losing the answer to the
/// first sending (see [`glance_model::replay`]).
pub fn replayed(req: &HttpRequest) -> bool {
    req.headers()
        .contains_key(glance_model::wire::HEADER_REPLAY)
}

// The status mapping and the JSON error body are the shared plumbing's.
pub use glance_http::{error_response, status_of};

impl ResponseError for RouteError {
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

/// The caller's context. How it is established follows `[paste_deploy] flavor`:
/// - `keystone`: the `X-Auth-Token` glance-api forwards is validated with Keystone and the
///   identity comes from it (headers cannot raise privileges);
/// - `trusted-auth`: the `X-Glance-Registry-Secret` header must equal `registry_shared_secret`,
///   then the identity headers glance-api forwards are trusted;
/// - none: only callers on loopback are served, and their identity headers trusted.
pub struct Caller(pub Context);

/// Header carrying `registry_shared_secret`.
pub const HEADER_REGISTRY_SECRET: &str = "x-glance-registry-secret";

/// The identity glance-api forwards in headers.
fn forwarded(req: &HttpRequest) -> Context {
    let mut ctx = Context::authenticated(
        header(req, HEADER_USER_ID),
        header(req, HEADER_PROJECT_ID),
        header(req, HEADER_ROLES)
            .map(|r| parse_roles(&r))
            .unwrap_or_default(),
        header(req, HEADER_REQUEST_ID).unwrap_or_default(),
    );
    ctx.is_admin |= header(req, HEADER_IS_ADMIN).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    ctx
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn refused(kind: ErrorKind, message: &str) -> RouteError {
    RouteError(RegistryError::Rule(glance_model::ModelError::new(
        kind, message,
    )))
}

async fn authenticate(req: HttpRequest) -> Result<Context, RouteError> {
    let state = req
        .app_data::<actix_web::web::Data<AppState>>()
        .ok_or_else(|| refused(ErrorKind::Internal, "no application state"))?;
    match state.config.flavor {
        Flavor::None => {
            let local = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
            if local {
                Ok(forwarded(&req))
            } else {
                Err(refused(
                    ErrorKind::Forbidden,
                    "glance-registry without authentication serves loopback callers only; \
                     configure [paste_deploy] flavor = keystone or trusted-auth",
                ))
            }
        }
        Flavor::TrustedAuth => {
            let expected = state.config.shared_secret.as_deref().unwrap_or_default();
            match header(&req, HEADER_REGISTRY_SECRET) {
                Some(given) if !expected.is_empty() && same_secret(&given, expected) => {
                    Ok(forwarded(&req))
                }
                _ => Err(refused(
                    ErrorKind::Unauthorized,
                    "glance-registry requires the shared secret (registry_shared_secret)",
                )),
            }
        }
        Flavor::Keystone => {
            let keystone = state
                .keystone
                .as_ref()
                .ok_or_else(|| refused(ErrorKind::Internal, "no Keystone client"))?;
            let Some(token) = header(&req, "x-auth-token") else {
                return Err(refused(
                    ErrorKind::Unauthorized,
                    "glance-registry requires a Keystone token in X-Auth-Token",
                ));
            };
            match keystone.validate(&token).await {
                Ok(id) => Ok(Context::authenticated(
                    Some(id.user_id),
                    id.project_id,
                    id.roles,
                    header(&req, HEADER_REQUEST_ID).unwrap_or_default(),
                )),
                Err(AuthError::Invalid(why)) => Err(refused(ErrorKind::Unauthorized, &why)),
                Err(AuthError::Unavailable(why)) => {
                    log::warn!("token validation failed: {why}");
                    Err(refused(
                        ErrorKind::Unavailable,
                        "the identity service is unavailable",
                    ))
                }
            }
        }
    }
}

impl FromRequest for Caller {
    type Error = RouteError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, RouteError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(Caller) })
    }
}

/// The per-image limits glance-api sent with a write (see [`glance_model::quota`]); none
/// (unlimited) when it sent none, as an older glance-api does.
pub fn quotas(req: &HttpRequest) -> Result<ImageQuotas, RouteError> {
    match header(req, HEADER_IMAGE_QUOTAS) {
        Some(v) => Ok(ImageQuotas::from_header(&v)?),
        None => Ok(ImageQuotas::default()),
    }
}

/// Parses an image id from a path segment.
pub fn image_id(raw: &str) -> Result<ImageId, RouteError> {
    raw.parse::<ImageId>().map_err(RouteError::from)
}

//! Who is calling: the `Caller` extractor builds the request's [`Context`] according to the
//! configured `[paste_deploy] flavor`: none (every caller an unauthenticated admin, as Glance),
//! `keystone` (`X-Auth-Token` validated against Keystone), or `trusted-auth` (identity headers
//! set by a trusted front end).

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use glance_auth::AuthError;
use glance_http::header;
use glance_model::context::parse_roles;
use glance_model::wire::HEADER_REQUEST_ID;
use glance_model::{AuthToken, Context, ErrorKind};

use crate::app::AppState;
use crate::config::AuthMode;
use crate::error::ApiError;

/// The caller's context.
#[derive(Debug, Clone)]
pub struct Caller(pub Context);

/// Builds the context of a request in the modes that need no network call.
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
            // keystonemiddleware's headers for a token scoped to the system or a domain.
            Ok(Context {
                system_scope: header(req, "openstack-system-scope"),
                domain_id: header(req, "x-domain-id"),
                ..Context::authenticated(
                    header(req, "x-user-id"),
                    header(req, "x-project-id").or_else(|| header(req, "x-tenant-id")),
                    header(req, "x-roles")
                        .map(|r| parse_roles(&r))
                        .unwrap_or_default(),
                    request_id,
                )
            })
        }
        AuthMode::Keystone => Err(ApiError::Startup(
            "keystone contexts are built asynchronously".to_string(),
        )),
    }
}

/// Validates the request's `X-Auth-Token` with Keystone.
async fn keystone_context(state: &AppState, req: &HttpRequest) -> Result<Context, ApiError> {
    let keystone = state
        .keystone
        .as_ref()
        .ok_or_else(|| ApiError::Startup("flavor = keystone without a Keystone client".into()))?;
    let request_id = header(req, HEADER_REQUEST_ID).unwrap_or_default();
    let unauthenticated = |message: String| ApiError::Unauthenticated {
        message,
        challenge: keystone.challenge(),
    };
    let Some(token) = header(req, "x-auth-token") else {
        return Err(unauthenticated(
            "This server requires authentication: send a Keystone token in X-Auth-Token"
                .to_string(),
        ));
    };
    match keystone.validate(&token).await {
        Ok(id) => Ok(Context {
            auth_token: Some(AuthToken(token)),
            system_scope: id.system_scope,
            domain_id: id.domain_id,
            ..Context::authenticated(Some(id.user_id), id.project_id, id.roles, request_id)
        }),
        Err(AuthError::Invalid(why)) => Err(unauthenticated(why)),
        Err(AuthError::Unavailable(why)) => {
            log::warn!("token validation failed: {why}");
            Err(ApiError::IdentityUnavailable(
                "The identity service is unavailable; try again later".to_string(),
            ))
        }
    }
}

/// The context for this node's own calls to the registry (recovery sweeps, finishing an
/// upload whose user token may have expired meanwhile): an admin, carrying the service token
/// in keystone mode.
pub async fn service_context(state: &AppState, request_id: String) -> Result<Context, ApiError> {
    let mut ctx = Context::unauthenticated_admin(request_id);
    if let Some(k) = &state.keystone {
        let token = k.service_token().await.map_err(|e| {
            log::warn!("service token: {e}");
            ApiError::IdentityUnavailable(e.to_string())
        })?;
        ctx.roles = vec!["admin".to_string()];
        ctx.auth_token = Some(AuthToken(token));
    }
    Ok(ctx)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::Startup("no application state".to_string()))?;
            match state.config.auth {
                AuthMode::Keystone => keystone_context(state, &req).await.map(Caller),
                mode => context_of(&req, mode).map(Caller),
            }
        })
    }
}

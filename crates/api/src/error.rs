//! glance-api's one error type: every failure, its kind, and the JSON body clients get.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use glance_model::{ErrorKind, ModelError};
use glance_store::StoreError;

/// Everything that can go wrong in glance-api.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A rule of the model or of the API was broken.
    #[error(transparent)]
    Rule(#[from] ModelError),
    /// A store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// glance-registry refused the call (its kind and message are relayed).
    #[error("{message}")]
    Registry {
        /// The kind the registry's status maps to.
        kind: ErrorKind,
        /// A message for the client.
        message: String,
    },
    /// glance-registry could not be reached or answered nonsense.
    #[error("the image registry is unavailable: {0}")]
    RegistryUnavailable(String),
    /// Start-up failed (config, bind).
    #[error("{0}")]
    Startup(String),
    /// No valid token: 401 with `WWW-Authenticate: <challenge>`.
    #[error("{message}")]
    Unauthenticated {
        /// Why.
        message: String,
        /// The `WWW-Authenticate` value (`Keystone uri="..."`).
        challenge: String,
    },
    /// The identity service could not be asked: 503, never a pass.
    #[error("{0}")]
    IdentityUnavailable(String),
    /// A configuration file holds a bad value.
    #[error(transparent)]
    Config(#[from] glance_config::ConfigError),
}

glance_model::rule_constructors!(ApiError);

impl ApiError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rule(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Registry { kind, .. } => *kind,
            Self::RegistryUnavailable(_) | Self::IdentityUnavailable(_) => ErrorKind::Unavailable,
            Self::Unauthenticated { .. } => ErrorKind::Unauthorized,
            Self::Startup(_) | Self::Config(_) => ErrorKind::Internal,
        }
    }
}

// The status mapping, the JSON error body and the cause chain are the shared plumbing's.
pub use glance_http::{chain, error_response, status_of};

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.kind())
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            log::error!("request failed: {}", chain(self));
            "glance-api hit an internal error; see its log".to_string()
        } else {
            if status.is_server_error() {
                log::warn!("request failed: {}", chain(self));
            } else {
                log::debug!("request refused: {self}");
            }
            self.to_string()
        };
        let mut res = error_response(status, message);
        if let Self::Unauthenticated { challenge, .. } = self
            && let Ok(v) = actix_web::http::header::HeaderValue::from_str(challenge)
        {
            res.headers_mut()
                .insert(actix_web::http::header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

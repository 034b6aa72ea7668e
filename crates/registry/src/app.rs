//! Wiring: the app state, the one `configure` used by `main` and by tests, and `serve`.
//! Middleware order: request id, access log, JSON errors, routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Logger, Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, error, web};

use crate::cache::RecordCache;
use crate::catalog::Catalog;
use crate::config::RegistryConfig;
use crate::db::Database;
use crate::routes::{self, error_response, health, images, members, uploads};

/// Everything a handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Settings.
    pub config: Arc<RegistryConfig>,
    /// The database and the record cache: all handlers reach them through it.
    pub catalog: Catalog,
    /// Lease TTL used when a heartbeat names none.
    pub default_lease_secs: u32,
    /// Keystone, with `flavor = keystone`.
    pub keystone: Option<Arc<glance_auth::Keystone>>,
}

impl AppState {
    /// The state of a registry with these settings, database and Keystone.
    pub fn new(
        config: RegistryConfig,
        db: Database,
        keystone: Option<Arc<glance_auth::Keystone>>,
    ) -> Self {
        let cache = RecordCache::new(config.record_cache).map(Arc::new);
        Self {
            config: Arc::new(config),
            catalog: Catalog::new(db, cache),
            default_lease_secs: 60,
            keystone,
        }
    }
}

/// Longest request id accepted from a caller (Glance: `max_request_id_length` = 64).
const MAX_REQUEST_ID: usize = 64;

async fn request_id(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, error::Error> {
    let header = HeaderName::from_static(glance_model::wire::HEADER_REQUEST_ID);
    let id = req
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    let value = HeaderValue::from_str(&id).map_err(error::ErrorBadRequest)?;
    req.headers_mut().insert(header.clone(), value.clone());
    let mut res = next.call(req).await?;
    res.headers_mut().insert(header, value);
    Ok(res)
}

/// Gives every error response the JSON shape, also those actix writes itself as plain text
/// (a body over an extractor's limit, a bad header).
async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody + 'static>>, error::Error>
{
    let res = next.call(req).await?;
    let status = res.status();
    let is_json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || res.request().method() == actix_web::http::Method::HEAD
    {
        return Ok(res.map_into_left_body());
    }
    let (http_req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let text = actix_web::body::to_bytes(body)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("Error").to_string();
    let json = serde_json::to_string(&glance_model::wire::ErrorBody {
        message: if text.is_empty() {
            reason.clone()
        } else {
            text
        },
        code: format!("{} {reason}", status.as_u16()),
        title: reason,
    })
    .unwrap_or_default();
    // The response keeps its other headers (request id, Allow).
    let mut res = res.set_body(json);
    res.headers_mut().insert(
        actix_web::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ServiceResponse::new(http_req, res.map_into_boxed_body()).map_into_right_body())
}

fn not_allowed(allow: &'static str) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("This resource allows only {allow}"),
        );
        if let Ok(v) = HeaderValue::from_str(allow) {
            res.headers_mut().insert(actix_web::http::header::ALLOW, v);
        }
        std::future::ready(res)
    }
}

/// Registers every route and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    let json = web::JsonConfig::default()
        .limit(1 << 20)
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
                format!("Malformed request body: {err}")
            };
            error::InternalError::from_response(err, error_response(status, msg)).into()
        });
    let query = web::QueryConfig::default().error_handler(|err, _| {
        let msg = format!("Invalid query parameters: {err}");
        error::InternalError::from_response(err, error_response(StatusCode::BAD_REQUEST, msg))
            .into()
    });
    let path = web::PathConfig::default().error_handler(|err, _| {
        let msg = format!("Invalid path: {err}");
        error::InternalError::from_response(err, error_response(StatusCode::NOT_FOUND, msg)).into()
    });
    cfg.app_data(web::Data::new(state))
        .app_data(json)
        .app_data(query)
        .app_data(path)
        .service(
            web::resource("/healthcheck")
                .route(web::get().to(health::healthcheck))
                .route(web::head().to(health::healthcheck))
                .default_service(web::to(not_allowed("GET, HEAD"))),
        )
        .service(
            web::resource("/v1/images")
                .route(web::get().to(images::list_images))
                .route(web::post().to(images::create_image))
                .default_service(web::to(not_allowed("GET, POST"))),
        )
        .service(
            web::resource("/v1/images/{id}")
                .route(web::get().to(images::show_image))
                .route(web::patch().to(images::update_image))
                .route(web::delete().to(images::delete_image))
                .default_service(web::to(not_allowed("GET, PATCH, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/tags/{tag}")
                .route(web::put().to(images::add_tag))
                .route(web::delete().to(images::delete_tag))
                .default_service(web::to(not_allowed("PUT, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/members")
                .route(web::get().to(members::list_members))
                .route(web::post().to(members::create_member))
                .default_service(web::to(not_allowed("GET, POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/members/{member}")
                .route(web::get().to(members::show_member))
                .route(web::put().to(members::update_member))
                .route(web::delete().to(members::delete_member))
                .default_service(web::to(not_allowed("GET, PUT, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload")
                .route(web::post().to(uploads::start_upload))
                .route(web::put().to(uploads::renew_upload))
                .default_service(web::to(not_allowed("POST, PUT"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/complete")
                .route(web::post().to(uploads::complete_upload))
                .default_service(web::to(not_allowed("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/abort")
                .route(web::post().to(uploads::abort_upload))
                .default_service(web::to(not_allowed("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/recover")
                .route(web::post().to(uploads::recover_upload))
                .default_service(web::to(not_allowed("POST"))),
        )
        .service(
            web::resource("/v1/usage")
                .route(web::get().to(images::show_usage))
                .default_service(web::to(not_allowed("GET"))),
        )
        .service(
            web::resource("/v1/leases/expired")
                .route(web::get().to(uploads::list_expired_leases))
                .default_service(web::to(not_allowed("GET"))),
        )
        .default_service(web::to(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "No such registry resource".to_string(),
            )
        }));
}

/// Serves the registry on an already-bound listener until it is stopped.
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let workers = state.config.workers;
    let drain = u64::from(state.config.graceful_shutdown_timeout_secs);
    // Database closures are the only blocking work, and at most `slots` run at once; a
    // worker keeps no more threads than that (each thread keeps its own allocator heap).
    let blocking = state.catalog.slots().max(1);
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .wrap(from_fn(json_errors))
            // Access log: request id, client, request line, status, bytes, duration.
            .wrap(
                Logger::new("%{x-openstack-request-id}i %a \"%r\" %s %b %Dms")
                    .log_target("glance_registry::access"),
            )
            .wrap(from_fn(request_id))
            .configure(move |cfg| configure(cfg, state))
    })
    .workers(workers)
    .worker_max_blocking_threads(blocking)
    // Longer than glance-api keeps an idle connection (see the constants' docs).
    .keep_alive(std::time::Duration::from_secs(
        glance_model::wire::REGISTRY_KEEP_ALIVE_SECS,
    ))
    // SIGTERM: stop accepting, let in-flight requests finish for up to this long, exit 0.
    .shutdown_timeout(drain)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Re-exported so tests can map kinds to statuses the same way.
pub use routes::status_of;

//! Wiring: the app state, the one `configure` used by `main` and by tests, and `serve`.
//! Middleware order: request id, version prefix normalisation, access log, routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, error, web};
use glance_store::Stores;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::error::error_response;
use crate::policy::Enforcer;
use crate::policy_engine::Policy;
use crate::registry_client::RegistryClient;
use crate::routes::{data, health, images, info, members, openapi, versions};
use glance_auth::Keystone;

/// Everything a handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// The registry client (keep-alive pool).
    pub registry: RegistryClient,
    /// The image stores.
    pub stores: Arc<Stores>,
    /// The policy in force.
    pub policy: Enforcer,
    /// Keystone, with `flavor = keystone`.
    pub keystone: Option<Arc<Keystone>>,
}

impl AppState {
    /// Everything the config asks for: registry client, stores, policy (defaults, then
    /// `[oslo_policy] policy_file`), Keystone client.
    pub fn from_config(config: ApiConfig) -> Result<Self, ApiError> {
        let stores = Stores::from_config(&config.stores)?;
        let registry = RegistryClient::new(&config.registry_url, config.registry_secret.clone())?;
        let policy = Policy::configured(config.policy_file.as_deref(), config.enforce_new_defaults)
            .map_err(|e| ApiError::Startup(format!("[oslo_policy] policy_file: {e}")))?;
        if let Some(path) = &config.policy_file {
            log::info!("policy: Glance's defaults overridden by {}", path.display());
        }
        let keystone = match &config.keystone {
            Some(k) => Some(Arc::new(
                Keystone::new(k.clone()).map_err(|e| ApiError::Startup(e.to_string()))?,
            )),
            None => None,
        };
        Ok(Self {
            registry,
            stores: Arc::new(stores),
            policy: Enforcer::new(policy),
            keystone,
            config: Arc::new(config),
        })
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

/// Error bodies as Glance (webob) negotiates them: JSON when the request accepts
/// `application/json`, otherwise an HTML page (what glanceclient expects from `Accept: */*`).
/// An error answer to a request whose body was not read closes the connection, as Glance does,
/// so a client still sending a rejected upload is not left blocked.
async fn error_format(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static, String>>, error::Error> {
    // Read per request, so without allocating.
    let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let wants_json = header(&ACCEPT).is_some_and(|a| a.contains("application/json"));
    let has_body = header(&TRANSFER_ENCODING).is_some()
        || header(&CONTENT_LENGTH).is_some_and(|n| n.trim() != "0");
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
    if res.request().method() == actix_web::http::Method::HEAD || wants_json == is_json {
        return Ok(res.map_into_left_body());
    }
    let (http_req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let message = if is_json {
        serde_json::from_slice::<glance_model::wire::ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_default()
    } else {
        // actix's own errors (an oversized body, a malformed header) are plain text: they
        // get the same shape as every other error.
        plain_error_message(status, &bytes)
    };
    if wants_json {
        let reason = status.canonical_reason().unwrap_or("Error").to_string();
        let json = serde_json::to_string(&glance_model::wire::ErrorBody {
            code: format!("{} {reason}", status.as_u16()),
            title: reason,
            message,
        })
        .unwrap_or_default();
        let mut res = res.set_body(json);
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(ServiceResponse::new(http_req, res).map_into_right_body());
    }
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  \
         {}<br /><br />\n\n\n\n </body>\n</html>",
        html_escape(&message)
    );
    let mut res = res.set_body(page);
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    Ok(ServiceResponse::new(http_req, res).map_into_right_body())
}

/// The message of an error response actix wrote as plain text, made to say what to do.
fn plain_error_message(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).trim().to_string();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "The request body is too large for this request; send a smaller one ({})",
            if text.is_empty() {
                "size limit reached"
            } else {
                &text
            }
        ),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("Error").to_string(),
        _ => text,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether `raw` (a path or query string as sent, still percent-encoded) holds an encoded NUL.
/// PostgreSQL cannot store U+0000 in text and no name, tag, member or filter has a use for it,
/// so such a request is refused before routing (JSON bodies: [`crate::routes::reject_nul`]).
pub fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Rewrites `/v2.N/...` to `/v2/...` for the versions Glance serves, so one route table
/// answers every prefix; other prefixes fall through to the versions document.
/// Refuses (400) a request whose path or query string holds `%00`.
async fn version_prefix(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, error::Error> {
    if has_encoded_nul(req.path()) || has_encoded_nul(req.query_string()) {
        let msg = "The request URI holds an encoded NUL character (%00), which no image \
                   attribute, tag, member or filter may contain";
        return Err(error::InternalError::from_response(
            "encoded NUL in the request URI",
            error_response(StatusCode::BAD_REQUEST, msg),
        )
        .into());
    }
    let path = req.path();
    if let Some(rest) = path.strip_prefix("/v2.") {
        let (minor, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let multi = req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.stores.multi_store());
        if versions::minor_supported(minor, multi) {
            let query = req.query_string();
            let new = if query.is_empty() {
                format!("/v2{tail}")
            } else {
                format!("/v2{tail}?{query}")
            };
            if let Ok(uri) = new.parse::<actix_web::http::Uri>() {
                req.head_mut().uri = uri.clone();
                req.match_info_mut().get_mut().update(&uri);
            }
        }
    }
    next.call(req).await
}

fn not_allowed(allow: &'static str) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("The method is not allowed for this resource; allowed: {allow}"),
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
        .content_type_required(false)
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
                format!("Malformed JSON in request body: {err}")
            };
            error::InternalError::from_response(err, error_response(status, msg)).into()
        });
    let path = web::PathConfig::default().error_handler(|err, _| {
        let msg = format!("Invalid path: {err}");
        error::InternalError::from_response(err, error_response(StatusCode::NOT_FOUND, msg)).into()
    });
    cfg.app_data(web::Data::new(state))
        .app_data(json)
        .app_data(path)
        .service(
            web::resource("/")
                .route(web::get().to(versions::versions_multiple_choices))
                .default_service(web::to(not_allowed("GET"))),
        )
        .service(
            web::resource("/versions")
                .route(web::get().to(versions::list_versions))
                .default_service(web::to(not_allowed("GET"))),
        )
        .service(
            web::resource("/healthcheck")
                .route(web::get().to(health::healthcheck))
                .route(web::head().to(health::healthcheck))
                .default_service(web::to(not_allowed("GET, HEAD"))),
        )
        .service(
            web::scope("/v2")
                .service(
                    web::resource("/images")
                        .route(web::get().to(images::list_images))
                        .route(web::post().to(images::create_image))
                        .default_service(web::to(not_allowed("GET, POST"))),
                )
                .service(
                    web::resource("/images/{id}")
                        .route(web::get().to(images::show_image))
                        .route(web::patch().to(images::update_image))
                        .route(web::delete().to(images::delete_image))
                        .default_service(web::to(not_allowed("GET, PATCH, DELETE"))),
                )
                .service(
                    web::resource("/images/{id}/file")
                        .route(web::put().to(data::upload_image_data))
                        .route(web::get().to(data::download_image_data))
                        .default_service(web::to(not_allowed("GET, PUT"))),
                )
                .service(
                    web::resource("/images/{id}/actions/{action}")
                        .route(web::post().to(images::image_action))
                        .default_service(web::to(not_allowed("POST"))),
                )
                .service(
                    web::resource("/images/{id}/tags/{tag}")
                        .route(web::put().to(images::add_tag))
                        .route(web::delete().to(images::delete_tag))
                        .default_service(web::to(not_allowed("PUT, DELETE"))),
                )
                .service(
                    web::resource("/images/{id}/members")
                        .route(web::get().to(members::list_members))
                        .route(web::post().to(members::create_member))
                        .default_service(web::to(not_allowed("GET, POST"))),
                )
                .service(
                    web::resource("/images/{id}/members/{member}")
                        .route(web::get().to(members::show_member))
                        .route(web::put().to(members::update_member))
                        .route(web::delete().to(members::delete_member))
                        .default_service(web::to(not_allowed("GET, PUT, DELETE"))),
                )
                .service(
                    web::resource("/schemas/{name}")
                        .route(web::get().to(info::show_schema))
                        .default_service(web::to(not_allowed("GET"))),
                )
                .service(
                    web::resource("/info/import")
                        .route(web::get().to(info::import_info))
                        .default_service(web::to(not_allowed("GET"))),
                )
                .service(
                    web::resource("/info/stores")
                        .route(web::get().to(info::stores_info))
                        .default_service(web::to(not_allowed("GET"))),
                )
                .service(
                    web::resource("/info/usage")
                        .route(web::get().to(info::usage_info))
                        .default_service(web::to(not_allowed("GET"))),
                )
                // Last in the scope: the image routes are matched first.
                .service(
                    web::resource("/openapi.json")
                        .route(web::get().to(openapi::show_openapi))
                        .default_service(web::to(not_allowed("GET"))),
                )
                .default_service(web::to(|| async {
                    error_response(StatusCode::NOT_FOUND, "The resource could not be found.")
                })),
        )
        // Any other version prefix or path: Glance answers with the versions document.
        .default_service(web::to(versions::versions_multiple_choices));
}

/// Serves glance-api on an already-bound listener until it is stopped. Connections are driven
/// by [`crate::http1`], which sends file-store downloads with `sendfile(2)`.
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let workers = state.config.workers;
    // SIGTERM: stop accepting, let in-flight requests finish for up to this long, exit 0.
    let drain = u64::from(state.config.graceful_shutdown_timeout_secs);
    let keep_alive = state.config.client_keep_alive;
    crate::http1::serve(
        listener,
        "glance-api",
        workers,
        drain,
        keep_alive,
        move || {
            let state = state.clone();
            App::new()
                .wrap(from_fn(error_format))
                .wrap(from_fn(version_prefix))
                .wrap(from_fn(request_id))
                // Access log (outermost, so it sees the request id the response carries).
                .wrap(from_fn(crate::access_log::log))
                .configure(move |cfg| configure(cfg, state))
        },
    )
}

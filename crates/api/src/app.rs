//! Wiring: the app state, the one `configure` used by `main` and by tests, and `serve`.
//! Middleware order, outermost first: access log, CORS, Glance's request id rules (431, none on
//! `/`, `/versions`, `/healthcheck`), request id, version prefix normalisation, error shape,
//! body refusal (`body_reject`), routes. The plumbing is `glance_http`'s; [`ApiHttp`] says how glance-api's
//! answers differ from the registry's.

use std::cell::Cell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, Server, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, error, web};
use glance_http::{Daemon, not_allowed};
use glance_store::Stores;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::error::error_response;
use crate::http1::SendFile;
use crate::policy::Enforcer;
use crate::policy_engine::Policy;
use crate::protections::PropertyProtections;
use crate::registry_client::RegistryClient;
use crate::routes::{
    data, health, images, import, info, locations, members, metadef_items as mi, metadefs as md,
    openapi, versions,
};
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
    /// Property protections, with `property_protection_file`.
    pub protections: Option<Arc<PropertyProtections>>,
    /// Keystone's unified limits, with `use_keystone_limits`.
    pub limits: Option<Arc<crate::limits::KeystoneLimits>>,
    /// The staging area and the import pool (issue 30).
    pub importer: Arc<crate::import::Importer>,
}

impl AppState {
    /// Everything the config asks for: registry client, stores, policy (defaults, then
    /// `[oslo_policy] policy_file`), Keystone client.
    pub fn from_config(config: ApiConfig) -> Result<Self, ApiError> {
        let stores = Stores::from_config(&config.stores)?;
        let registry = RegistryClient::new(&config.registry_url, config.registry_secret.clone())?
            .with_image_quotas(&config.image_quotas);
        let policy = Policy::configured(config.policy_file.as_deref(), config.enforce_new_defaults)
            .map_err(|e| ApiError::Startup(format!("[oslo_policy] policy_file: {e}")))?;
        if let Some(path) = &config.policy_file {
            log::info!("policy: Glance's defaults overridden by {}", path.display());
        }
        let policy = Enforcer::new(policy);
        let protections = match &config.property_protection_file {
            Some(path) => {
                let p = PropertyProtections::load(
                    path,
                    config.property_protection_rule_format,
                    &|rule| policy.has_rule(rule),
                )
                .map_err(ApiError::Startup)?;
                log::info!(
                    "property protections: {} sections from {}",
                    p.len(),
                    path.display()
                );
                Some(Arc::new(p))
            }
            None => None,
        };
        let keystone = match &config.keystone {
            Some(k) => Some(Arc::new(
                Keystone::new(k.clone()).map_err(|e| ApiError::Startup(e.to_string()))?,
            )),
            None => None,
        };
        let limits = match &config.keystone_limits {
            Some(l) => Some(Arc::new(crate::limits::KeystoneLimits::new(l.clone())?)),
            None => None,
        };
        let importer = Arc::new(crate::import::Importer::new(&config.import)?);
        Ok(Self {
            limits,
            importer,
            registry,
            stores: Arc::new(stores),
            policy,
            keystone,
            protections,
            config: Arc::new(config),
        })
    }
}

/// How glance-api's HTTP answers differ from glance-registry's (see [`glance_http::Daemon`]).
#[derive(Debug)]
pub struct ApiHttp;

impl Daemon for ApiHttp {
    const ACCESS_LOG_TARGET: &'static str = "glance_api::access";
    /// Error bodies as Glance (webob) negotiates them: JSON when the request accepts
    /// `application/json`, otherwise an HTML page (what glanceclient expects from `Accept: */*`).
    const NEGOTIATES_ERROR_FORMAT: bool = true;
    /// As Glance does, so a client still sending a rejected upload is not left blocked.
    const CLOSES_AFTER_UNREAD_BODY: bool = true;
    const JSON_NEEDS_CONTENT_TYPE: bool = false;
    const MALFORMED_JSON: &'static str = "Malformed JSON in request body";

    fn method_not_allowed(allow: &str) -> String {
        format!("The method is not allowed for this resource; allowed: {allow}")
    }

    /// An oversized body is told to send a smaller one.
    fn plain_error_message(status: StatusCode, text: &str) -> String {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => format!(
                "The request body is too large for this request; send a smaller one ({})",
                if text.is_empty() {
                    "size limit reached"
                } else {
                    text
                }
            ),
            _ => glance_http::errors::plain_message(status, text),
        }
    }

    /// A download sent by `sendfile` (see [`crate::http1`]) never passes through the body.
    fn sent_outside_body(extensions: &Extensions) -> Option<Rc<Cell<u64>>> {
        extensions.get::<SendFile>().map(|s| s.sent.clone())
    }
}

/// Whether `raw` (a path or query string as sent, still percent-encoded) holds an encoded NUL.
/// PostgreSQL cannot store U+0000 in text and no name, tag, member or filter has a use for it,
/// so such a request is refused before routing (JSON bodies: [`crate::routes::reject_nul`]).
pub fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Marks a response that carries no `x-openstack-request-id`: Glance 33 answers `/`,
/// `/versions` and `/healthcheck` from middleware in front of the one that makes request ids.
#[derive(Clone, Copy, Debug)]
pub struct NoRequestId;

/// Glance's request id rules around [`glance_http::request_id`] (which it wraps): a caller's
/// `x-openstack-request-id` longer than [`glance_http::MAX_REQUEST_ID`] is refused with 431
/// (Glance's context middleware), and responses marked [`NoRequestId`] lose the header.
async fn request_id_rules(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, error::Error> {
    let too_long = req
        .headers()
        .get(glance_model::wire::HEADER_REQUEST_ID)
        .is_some_and(|v| v.len() > glance_http::MAX_REQUEST_ID);
    if too_long {
        let msg = format!(
            "The x-openstack-request-id header is too long: at most {} characters are accepted",
            glance_http::MAX_REQUEST_ID
        );
        let res = error_response(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, msg);
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if res.response().extensions().get::<NoRequestId>().is_some() {
        res.headers_mut()
            .remove(glance_model::wire::HEADER_REQUEST_ID);
    }
    Ok(res.map_into_left_body())
}

/// Whether the request declares a body (`Content-Length` above 0). As in Glance 33, an empty
/// chunked body is no body; a chunked one is not looked into.
fn has_body(req: &ServiceRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Whether Glance 33 refuses a body on this request (its routes marked `body_reject`): every
/// GET, HEAD and DELETE under `/v2` except the image list and `/v2/info/usage` (which ignore
/// one), a tag's PUT and the image actions' POST.
fn rejects_body(method: &actix_web::http::Method, path: &str) -> bool {
    use actix_web::http::Method;
    let Some(rest) = path.strip_prefix("/v2/") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    match *method {
        Method::GET | Method::HEAD => !matches!(rest, "images" | "info/usage"),
        Method::DELETE => true,
        Method::PUT => rest.starts_with("images/") && rest.contains("/tags/"),
        Method::POST => rest.starts_with("images/") && rest.contains("/actions/"),
        _ => false,
    }
}

/// Glance's `body_reject`: a body sent with a request that takes none is 400 before anything
/// else happens (see [`rejects_body`]).
async fn reject_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, error::Error> {
    if has_body(&req) && rejects_body(req.method(), req.path()) {
        let res = error_response(
            StatusCode::BAD_REQUEST,
            "This request takes no body; send it without one",
        );
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The default service of a resource that allows only `allow`: 405, except that a body which
/// is not JSON is 400 first, as in Glance 33 (its method-refusing resource reads the body as
/// JSON before it refuses the method). Bodies over actix's 256 KiB default are 413.
fn refuse_method(
    allow: &'static str,
) -> impl Fn(web::Bytes) -> std::future::Ready<actix_web::HttpResponse> + Clone + 'static {
    let refuse = not_allowed::<ApiHttp>(allow);
    move |body: web::Bytes| {
        if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            return std::future::ready(error_response(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: the body is not JSON",
                    <ApiHttp as Daemon>::MALFORMED_JSON
                ),
            ));
        }
        refuse()
    }
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

/// Registers every route and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .app_data(glance_http::json_config::<ApiHttp>())
        .app_data(glance_http::path_config())
        .service(
            web::resource("/")
                .route(web::get().to(versions::versions_multiple_choices))
                .default_service(web::to(refuse_method("GET"))),
        )
        .service(
            web::resource("/versions")
                .route(web::get().to(versions::list_versions))
                .default_service(web::to(refuse_method("GET"))),
        )
        .service(
            web::resource("/healthcheck")
                .route(web::get().to(health::healthcheck))
                .route(web::head().to(health::healthcheck))
                .default_service(web::to(refuse_method("GET, HEAD"))),
        )
        .service(
            web::scope("/v2")
                .service(
                    web::resource("/images")
                        .route(web::get().to(images::list_images))
                        .route(web::post().to(images::create_image))
                        .default_service(web::to(refuse_method("GET, POST"))),
                )
                .service(
                    web::resource("/images/{id}")
                        .route(web::get().to(images::show_image))
                        .route(web::patch().to(images::update_image))
                        .route(web::delete().to(images::delete_image))
                        .default_service(web::to(refuse_method("GET, PATCH, DELETE"))),
                )
                .service(
                    web::resource("/images/{id}/file")
                        .route(web::put().to(data::upload_image_data))
                        .route(web::get().to(data::download_image_data))
                        .default_service(web::to(refuse_method("GET, PUT"))),
                )
                // Interoperable import (issue 30).
                .service(
                    web::resource("/images/{id}/stage")
                        .route(web::put().to(import::stage_image_data))
                        .default_service(web::to(refuse_method("PUT"))),
                )
                .service(
                    web::resource("/images/{id}/import")
                        .route(web::post().to(import::import_image))
                        .default_service(web::to(refuse_method("POST"))),
                )
                .service(
                    web::resource("/images/{id}/tasks")
                        .route(web::get().to(import::list_image_tasks))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/tasks")
                        .route(web::get().to(import::list_tasks))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/tasks/{id}")
                        .route(web::get().to(import::show_task))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/images/{id}/actions/{action}")
                        .route(web::post().to(images::image_action))
                        .default_service(web::to(refuse_method("POST"))),
                )
                .service(
                    web::resource("/images/{id}/tags/{tag}")
                        .route(web::put().to(images::add_tag))
                        .route(web::delete().to(images::delete_tag))
                        .default_service(web::to(refuse_method("PUT, DELETE"))),
                )
                .service(
                    web::resource("/images/{id}/members")
                        .route(web::get().to(members::list_members))
                        .route(web::post().to(members::create_member))
                        .default_service(web::to(refuse_method("GET, POST"))),
                )
                .service(
                    web::resource("/images/{id}/members/{member}")
                        .route(web::get().to(members::show_member))
                        .route(web::put().to(members::update_member))
                        .route(web::delete().to(members::delete_member))
                        .default_service(web::to(refuse_method("GET, PUT, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/resource_types")
                        .route(web::get().to(md::list_resource_types))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET"))),
                )
                .service(
                    web::resource("/metadefs/namespaces")
                        .route(web::get().to(md::list_namespaces))
                        .route(web::post().to(md::create_namespace))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}")
                        .route(web::get().to(md::show_namespace))
                        .route(web::put().to(md::update_namespace))
                        .route(web::delete().to(md::delete_namespace))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, PUT, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/resource_types")
                        .route(web::get().to(md::list_associations))
                        .route(web::post().to(md::create_association))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/resource_types/{rt}")
                        .route(web::delete().to(md::delete_association))
                        .default_service(web::to(not_allowed::<ApiHttp>("DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/properties")
                        .route(web::get().to(mi::list_properties))
                        .route(web::post().to(mi::create_property))
                        .route(web::delete().to(mi::delete_properties))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/properties/{name}")
                        .route(web::get().to(mi::show_property))
                        .route(web::put().to(mi::update_property))
                        .route(web::delete().to(mi::delete_property))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, PUT, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/objects")
                        .route(web::get().to(mi::list_objects))
                        .route(web::post().to(mi::create_object))
                        .route(web::delete().to(mi::delete_objects))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/objects/{name}")
                        .route(web::get().to(mi::show_object))
                        .route(web::put().to(mi::update_object))
                        .route(web::delete().to(mi::delete_object))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, PUT, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/tags")
                        .route(web::get().to(mi::list_tags))
                        .route(web::post().to(mi::set_tags))
                        .route(web::delete().to(mi::delete_tags))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST, DELETE"))),
                )
                .service(
                    web::resource("/metadefs/namespaces/{ns}/tags/{name}")
                        .route(web::get().to(mi::show_tag))
                        .route(web::post().to(mi::create_tag))
                        .route(web::put().to(mi::update_tag))
                        .route(web::delete().to(mi::delete_tag))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST, PUT, DELETE"))),
                )
                .service(
                    web::resource("/schemas/metadefs/{name}")
                        .route(web::get().to(info::show_metadef_schema))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET"))),
                )
                .service(
                    web::resource("/schemas/{name}")
                        .route(web::get().to(info::show_schema))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/info/import")
                        .route(web::get().to(info::import_info))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/info/stores")
                        .route(web::get().to(info::stores_info))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/images/{id}/locations")
                        .route(web::get().to(locations::list_locations))
                        .route(web::post().to(locations::add_location))
                        .default_service(web::to(not_allowed::<ApiHttp>("GET, POST"))),
                )
                .service(
                    web::resource("/stores/{store_id}/{image_id}")
                        .route(web::delete().to(locations::delete_from_store))
                        .default_service(web::to(not_allowed::<ApiHttp>("DELETE"))),
                )
                .service(
                    web::resource("/info/stores/detail")
                        .route(web::get().to(info::stores_info_detail))
                        .default_service(web::to(refuse_method("GET"))),
                )
                .service(
                    web::resource("/info/usage")
                        .route(web::get().to(info::usage_info))
                        .default_service(web::to(refuse_method("GET"))),
                )
                // Last in the scope: the image routes are matched first.
                .service(
                    web::resource("/openapi.json")
                        .route(web::get().to(openapi::show_openapi))
                        .default_service(web::to(refuse_method("GET"))),
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
                .wrap(from_fn(reject_body))
                .wrap(from_fn(glance_http::errors::shape::<ApiHttp>))
                .wrap(from_fn(version_prefix))
                .wrap(from_fn(glance_http::request_id))
                .wrap(from_fn(request_id_rules))
                // CORS, outermost as in Glance's pipeline (but inside the access log, which
                // then logs a preflight's 200).
                .wrap(from_fn(crate::cors::cors))
                // Access log (outermost, so it sees the request id the response carries).
                .wrap(from_fn(glance_http::access_log::log::<ApiHttp>))
                .configure(move |cfg| configure(cfg, state))
        },
    )
}

//! Wiring: the app state, the one `configure` used by `main` and by tests, and `serve`.
//! Middleware order, outermost first: access log, request id, JSON errors, routes. The
//! plumbing is `glance_http`'s; [`RegistryHttp`] says how the registry's answers differ from
//! glance-api's.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use glance_http::{Daemon, not_allowed};

use crate::cache::RecordCache;
use crate::catalog::Catalog;
use crate::config::RegistryConfig;
use crate::db::Database;
use crate::metadefs::Metadefs;
use crate::routes::{
    self, error_response, health, images, imports, members, metadefs as md, uploads,
};

/// Everything a handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Settings.
    pub config: Arc<RegistryConfig>,
    /// The database and the record cache: all handlers reach them through it.
    pub catalog: Catalog,
    /// The metadata definitions (`metadef_*` tables).
    pub metadefs: Metadefs,
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
            metadefs: Metadefs::new(db.clone()),
            catalog: Catalog::new(db, cache),
            default_lease_secs: 60,
            keystone,
        }
    }
}

/// How glance-registry's HTTP answers differ from glance-api's (see [`glance_http::Daemon`]):
/// every error is JSON, whatever the request accepts (its one client is glance-api).
#[derive(Debug)]
pub struct RegistryHttp;

impl Daemon for RegistryHttp {
    const ACCESS_LOG_TARGET: &'static str = "glance_registry::access";
    const NEGOTIATES_ERROR_FORMAT: bool = false;
    const CLOSES_AFTER_UNREAD_BODY: bool = false;
    const JSON_NEEDS_CONTENT_TYPE: bool = true;
    const MALFORMED_JSON: &'static str = "Malformed request body";

    fn method_not_allowed(allow: &str) -> String {
        format!("This resource allows only {allow}")
    }
}

/// Registers every route and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .app_data(glance_http::json_config::<RegistryHttp>())
        .app_data(glance_http::query_config())
        .app_data(glance_http::path_config())
        .service(
            web::resource("/healthcheck")
                .route(web::get().to(health::healthcheck))
                .route(web::head().to(health::healthcheck))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET, HEAD"))),
        )
        .service(
            web::resource("/v1/images")
                .route(web::get().to(images::list_images))
                .route(web::post().to(images::create_image))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET, POST"))),
        )
        .service(
            web::resource("/v1/images/{id}")
                .route(web::get().to(images::show_image))
                .route(web::patch().to(images::update_image))
                .route(web::delete().to(images::delete_image))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET, PATCH, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/tags/{tag}")
                .route(web::put().to(images::add_tag))
                .route(web::delete().to(images::delete_tag))
                .default_service(web::to(not_allowed::<RegistryHttp>("PUT, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/members")
                .route(web::get().to(members::list_members))
                .route(web::post().to(members::create_member))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET, POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/members/{member}")
                .route(web::get().to(members::show_member))
                .route(web::put().to(members::update_member))
                .route(web::delete().to(members::delete_member))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET, PUT, DELETE"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload")
                .route(web::post().to(uploads::start_upload))
                .route(web::put().to(uploads::renew_upload))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST, PUT"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/complete")
                .route(web::post().to(uploads::complete_upload))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/abort")
                .route(web::post().to(uploads::abort_upload))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/upload/recover")
                .route(web::post().to(uploads::recover_upload))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        // Interoperable import (issue 30).
        .service(
            web::resource("/v1/images/{id}/stage")
                .route(web::post().to(imports::start_stage))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/stage/complete")
                .route(web::post().to(imports::complete_stage))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/import")
                .route(web::post().to(imports::start_import))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/images/{id}/tasks")
                .route(web::get().to(imports::list_image_tasks))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET"))),
        )
        .service(
            web::resource("/v1/tasks")
                .route(web::get().to(imports::list_tasks))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET"))),
        )
        .service(
            web::resource("/v1/tasks/{id}")
                .route(web::get().to(imports::show_task))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET"))),
        )
        .service(
            web::resource("/v1/images/{id}/locations")
                .route(web::post().to(uploads::change_locations))
                .default_service(web::to(not_allowed::<RegistryHttp>("POST"))),
        )
        .service(
            web::resource("/v1/usage")
                .route(web::get().to(images::show_usage))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET"))),
        )
        .service(
            web::resource("/v1/leases/expired")
                .route(web::get().to(uploads::list_expired_leases))
                .default_service(web::to(not_allowed::<RegistryHttp>("GET"))),
        )
        .configure(metadef_routes)
        .default_service(web::to(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "No such registry resource".to_string(),
            )
        }));
}

/// The `/v1/metadefs/...` routes.
fn metadef_routes(cfg: &mut web::ServiceConfig) {
    let na = |allow: &'static str| web::to(not_allowed::<RegistryHttp>(allow));
    cfg.service(
        web::resource("/v1/metadefs/resource_types")
            .route(web::get().to(md::list_resource_types))
            .default_service(na("GET")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces")
            .route(web::get().to(md::list_namespaces))
            .route(web::post().to(md::create_namespace))
            .default_service(na("GET, POST")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}")
            .route(web::get().to(md::show_namespace))
            .route(web::put().to(md::update_namespace))
            .route(web::delete().to(md::delete_namespace))
            .default_service(na("GET, PUT, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/properties")
            .route(web::get().to(md::list_properties))
            .route(web::post().to(md::create_property))
            .route(web::delete().to(md::delete_properties))
            .default_service(na("GET, POST, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/properties/{name}")
            .route(web::get().to(md::show_property))
            .route(web::put().to(md::update_property))
            .route(web::delete().to(md::delete_property))
            .default_service(na("GET, PUT, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/objects")
            .route(web::get().to(md::list_objects))
            .route(web::post().to(md::create_object))
            .route(web::delete().to(md::delete_objects))
            .default_service(na("GET, POST, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/objects/{name}")
            .route(web::get().to(md::show_object))
            .route(web::put().to(md::update_object))
            .route(web::delete().to(md::delete_object))
            .default_service(na("GET, PUT, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/tags")
            .route(web::get().to(md::list_tags))
            .route(web::post().to(md::set_tags))
            .route(web::delete().to(md::delete_tags))
            .default_service(na("GET, POST, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/tags/{name}")
            .route(web::get().to(md::show_tag))
            .route(web::post().to(md::create_tag))
            .route(web::put().to(md::update_tag))
            .route(web::delete().to(md::delete_tag))
            .default_service(na("GET, POST, PUT, DELETE")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/resource_types")
            .route(web::get().to(md::list_associations))
            .route(web::post().to(md::create_association))
            .default_service(na("GET, POST")),
    )
    .service(
        web::resource("/v1/metadefs/namespaces/{ns}/resource_types/{rt}")
            .route(web::delete().to(md::delete_association))
            .default_service(na("DELETE")),
    );
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
            .wrap(from_fn(glance_http::errors::shape::<RegistryHttp>))
            .wrap(from_fn(glance_http::request_id))
            // Access log (outermost, so it sees the request id the response carries): request
            // id, client, request line, status, bytes, duration.
            .wrap(from_fn(glance_http::access_log::log::<RegistryHttp>))
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

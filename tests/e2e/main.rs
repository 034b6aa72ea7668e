//! End-to-end tests: glance-registry in-process on 127.0.0.1:0, driven over HTTP as
//! glance-api drives it, on SQLite always and on MariaDB/PostgreSQL when
//! `GLANCE_TEST_MYSQL_URL` / `GLANCE_TEST_POSTGRES_URL` are set.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on malformed responses"
)]

mod adoption;
mod adoption_releases;
mod api_ceph;
mod api_cors;
mod api_data;
mod api_download_integrity;
mod api_glance_answers;
mod api_images;
mod api_import;
mod api_import_crash;
mod api_inspect;
mod api_limits;
mod api_locations;
mod api_logs;
mod api_members;
mod api_metadefs;
mod api_nul;
mod api_openapi;
mod api_ownership;
mod api_property_protections;
mod api_quotas;
mod api_recovery;
mod api_startup;
mod cloud;
mod daemons;
mod db_connections;
mod db_refused;
mod ha;
mod harness;
mod http_plumbing;
mod keystone;
mod keystone_scope;
mod manage_metadefs;
mod manage_purge;
mod migrations;
mod procs;
mod registry_bad_input;
mod registry_cache;
mod registry_cas;
mod registry_connections;
mod registry_hardening;
mod registry_images;
mod registry_imports;
mod registry_list;
mod registry_metadefs;
mod registry_uploads;
mod registry_visibility;
mod registry_write_path;
mod registry_writes;
mod replay;
mod store_shared;

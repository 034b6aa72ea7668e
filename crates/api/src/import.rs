//! Interoperable import's work in glance-api (issue 30): the staging area (`[DEFAULT]
//! node_staging_uri`, a file store of its own), the bounded pool that runs imports in the
//! background (`[wsgi] task_pool_threads`), and the runs themselves: `web-download` fetches
//! its URL into the staging area (every redirect checked against `[import_filtering_opts]`),
//! then both it and `glance-direct` stream the staged file through the store's one-pass
//! pipeline (caps, hashes, format inspection) into the store.
//!
//! The registry holds all the state (the import lock, the lease, the task): a run renews its
//! lease with its progress, and ends it with the outcome (`active`, or back to `queued` with
//! the task's failure). A node that dies mid-run leaves a lease that expires; the recovery
//! sweep then returns the image to `queued`, and this node's sweep removes staged files no
//! image needs any more. Data is never held in memory: it streams, chunk by chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use glance_inspect::Inspector;
use glance_model::wire::{ImportStarted, LeaseToken, NewLocation, UploadComplete};
use glance_model::{Context, ErrorKind, ImageId, ImageStatus};
use glance_store::config::{DataDir, FileConfig};
use glance_store::file::FileStore;
use glance_store::{StoreError, WriteLimits};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::app::AppState;
use crate::config::{ImportFilters, ImportOptions};
use crate::error::ApiError;
use crate::routes::data::{judge, remove_data, upload_cap};

/// The id of the staging area, as Glance names its reserved staging store.
pub const STAGING_STORE: &str = "os_glance_staging_store";

/// How many redirects a `web-download` follows.
const MAX_REDIRECTS: usize = 10;

/// The staging area and the import pool of one glance-api.
#[derive(Debug)]
pub struct Importer {
    /// The staging area.
    pub staging: FileStore,
    dir: PathBuf,
    pool: Arc<Semaphore>,
    http: reqwest::Client,
}

impl Importer {
    /// The staging area at `opts.staging_dir` (created if missing) and a pool of
    /// `task_pool_threads` imports.
    pub fn new(opts: &ImportOptions) -> Result<Self, ApiError> {
        let cfg = FileConfig {
            datadirs: vec![DataDir {
                path: opts.staging_dir.clone(),
                priority: 0,
            }],
            ..FileConfig::default()
        };
        let http = reqwest::Client::builder()
            // Redirects are followed by hand, each hop checked (see `fetch`).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::Startup(format!("web-download client: {e}")))?;
        Ok(Self {
            staging: FileStore::new(STAGING_STORE, cfg),
            dir: opts.staging_dir.clone(),
            pool: Arc::new(Semaphore::new(opts.task_pool_threads as usize)),
            http,
        })
    }

    /// Where the staged data of `id` is.
    pub fn staged_path(&self, id: &ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Whether `id` has staged data on this node.
    pub fn is_staged(&self, id: &ImageId) -> bool {
        self.staged_path(id).is_file()
    }

    /// Removes the staged data of `id`, if any.
    pub async fn unstage(&self, id: &ImageId) {
        let path = self.staged_path(id);
        match self.staging.delete(&path).await {
            Ok(()) => log::info!("image {id}: staged data removed"),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => log::warn!("image {id}: cannot remove staged data: {e}"),
        }
    }

    /// Removes staged files, whole or partial, no image needs any more: of images gone, or
    /// no longer `uploading` or `importing` (their stage or import ended, or a dead node's
    /// lease was recovered), so no writer on any node can still own them; and old partial
    /// files. Returns how many.
    pub async fn clean_orphans(&self, state: &AppState, ctx: &Context) -> usize {
        let mut removed = self.staging.clean_stale_partials();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return removed;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A partial file is `.<id>.<random>.partial` (`FileStore::add`).
            let (raw, partial) = match name.strip_prefix('.') {
                Some(rest) if name.ends_with(".partial") => {
                    (rest.split('.').next().unwrap_or_default(), true)
                }
                _ => (name.as_str(), false),
            };
            let Ok(id) = raw.parse::<ImageId>() else {
                continue;
            };
            let keep = match state.registry.get_image(ctx, &id).await {
                Ok(img) => matches!(img.status, ImageStatus::Uploading | ImageStatus::Importing),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Gone) => false,
                // The registry cannot say: keep it for the next sweep.
                Err(_) => true,
            };
            if keep {
                continue;
            }
            if partial {
                removed += self.staging.remove_partials_of(&id.to_string());
            } else {
                self.unstage(&id).await;
                removed += 1;
            }
        }
        removed
    }
}

/// Whether `url` passes `[import_filtering_opts]`: scheme, host and port each on the
/// allow-list when it is not empty, else not on the deny-list (Glance's rule). `Err` says
/// which part failed.
pub fn check_uri(filters: &ImportFilters, url: &url::Url) -> Result<(), String> {
    fn passes<T: PartialEq>(v: &T, allowed: &[T], denied: &[T]) -> bool {
        if allowed.is_empty() {
            !denied.contains(v)
        } else {
            allowed.contains(v)
        }
    }
    let scheme = url.scheme().to_ascii_lowercase();
    if !passes(
        &scheme,
        &filters.allowed_schemes,
        &filters.disallowed_schemes,
    ) {
        return Err(format!("its scheme {scheme} is not allowed"));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("it names no host".to_string());
    }
    if !passes(&host, &filters.allowed_hosts, &filters.disallowed_hosts) {
        return Err(format!("its host {host} is not allowed"));
    }
    let Some(port) = url.port_or_known_default() else {
        return Err("it names no port".to_string());
    };
    if !passes(&port, &filters.allowed_ports, &filters.disallowed_ports) {
        return Err(format!("its port {port} is not allowed"));
    }
    Ok(())
}

/// Where an import's data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `glance-direct`: the data staged on this node.
    Staged,
    /// `web-download`: this URL, fetched into the staging area first.
    Web(url::Url),
}

/// One import to run: what the registry's start gave, and what the run needs.
#[derive(Debug)]
pub struct Job {
    /// The image.
    pub id: ImageId,
    /// The context the run's registry calls go with (this node's own when Keystone is on).
    pub ctx: Context,
    /// The lease and task.
    pub started: ImportStarted,
    /// Where the data comes from.
    pub source: Source,
    /// The store the data goes to (`None`: the default).
    pub store: Option<String>,
    /// The image's formats, for the inspector.
    pub disk_format: Option<String>,
    /// The image's container format.
    pub container_format: Option<String>,
}

/// Runs `job` in the background once the pool has room; its lease is renewed (with the
/// progress as the task's message) from now until it ends. It runs on the calling worker's
/// thread (the store streams are not `Send`), beside that worker's requests.
pub fn spawn(state: AppState, job: Job) {
    actix_web::rt::spawn(async move {
        let copied = Arc::new(AtomicU64::new(0));
        let heartbeat = spawn_progress(&state, &job, copied.clone());
        let pool = state.importer.pool.clone();
        let outcome = match pool.acquire_owned().await {
            Ok(_permit) => run(&state, &job, &copied).await,
            Err(_) => Err("the import pool is closed; glance-api is stopping".to_string()),
        };
        heartbeat.abort();
        let token = job.started.lease.token.clone();
        match outcome {
            Ok(done) => {
                let url = done.location.url.clone();
                match state
                    .registry
                    .complete_upload(&job.ctx, &job.id, &done)
                    .await
                {
                    Ok(_) => {
                        log::info!("image {}: imported (task {})", job.id, job.started.task.id)
                    }
                    Err(e) => {
                        remove_data(&state, &url, job.store.as_deref()).await;
                        log::warn!("image {}: import could not be recorded: {e}", job.id);
                        fail(
                            &state,
                            &job,
                            token,
                            format!("the import could not be recorded: {e}"),
                        )
                        .await;
                    }
                }
            }
            Err(why) => {
                log::warn!("image {}: import failed: {why}", job.id);
                fail(&state, &job, token, why).await;
            }
        }
        state.importer.unstage(&job.id).await;
    });
}

async fn fail(state: &AppState, job: &Job, token: String, why: String) {
    let t = LeaseToken {
        token,
        ttl_secs: None,
        message: Some(why),
    };
    if let Err(e) = state.registry.abort_upload(&job.ctx, &job.id, &t).await {
        log::warn!(
            "image {}: could not return it to queued after a failed import: {e}",
            job.id
        );
    }
}

fn spawn_progress(
    state: &AppState,
    job: &Job,
    copied: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let ttl = state.config.upload_lease_ttl_secs;
    let every = std::time::Duration::from_millis(u64::from(ttl) * 1000 / 3);
    let (state, ctx, id, token) = (
        state.clone(),
        job.ctx.clone(),
        job.id,
        job.started.lease.token.clone(),
    );
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let t = LeaseToken {
                token: token.clone(),
                ttl_secs: Some(ttl),
                message: Some(format!(
                    "Copied {} MiB",
                    copied.load(Ordering::Relaxed) >> 20
                )),
            };
            if let Err(e) = state.registry.renew_upload(&ctx, &id, &t).await {
                log::warn!("image {id}: import lease renewal failed: {e}");
                if matches!(e.kind(), ErrorKind::Gone | ErrorKind::NotFound) {
                    return;
                }
            }
        }
    })
}

/// The run: the data into the staging area (web-download), then from there into the store.
async fn run(state: &AppState, job: &Job, copied: &AtomicU64) -> Result<UploadComplete, String> {
    let cap = upload_cap(state, &job.ctx)
        .await
        .map_err(|e| format!("the size limit could not be read: {e}"))?;
    if let Source::Web(url) = &job.source {
        fetch(state, job, url, &cap).await?;
    }
    let path = state.importer.staged_path(&job.id);
    store_staged(state, job, &path, cap, copied).await
}

/// Fetches `url` into the staging area as the image's staged data, each redirect checked.
async fn fetch(
    state: &AppState,
    job: &Job,
    url: &url::Url,
    cap: &(u64, String),
) -> Result<(), String> {
    let filters = &state.config.import.filters;
    let mut current = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        check_uri(filters, &current)
            .map_err(|why| format!("{current} does not pass the import filters: {why}"))?;
        let res = state
            .importer
            .http
            .get(current.clone())
            .send()
            .await
            .map_err(|e| format!("{current} cannot be fetched: {e}"))?;
        if res.status().is_redirection() {
            let next = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| current.join(l).ok())
                .ok_or_else(|| format!("{current} redirects without a usable Location"))?;
            current = next;
            continue;
        }
        if !res.status().is_success() {
            return Err(format!("{current} answered {}", res.status()));
        }
        let limits = WriteLimits {
            cap: Some(cap.clone()),
            declared_size: res.content_length(),
        };
        let stream = res
            .bytes_stream()
            .map(|r| r.map_err(|e| StoreError::Source(e.to_string())));
        state
            .importer
            .staging
            .add(
                &job.id.to_string(),
                stream,
                &limits,
                state.config.hashing_algorithm,
            )
            .await
            .map_err(|e| format!("{current} could not be staged: {e}"))?;
        return Ok(());
    }
    Err(format!("{url} redirects more than {MAX_REDIRECTS} times"))
}

/// Streams the staged file into the store through the one-pass pipeline and the inspector.
async fn store_staged(
    state: &AppState,
    job: &Job,
    path: &Path,
    cap: (u64, String),
    copied: &AtomicU64,
) -> Result<UploadComplete, String> {
    let fetched = state
        .importer
        .staging
        .get(path, None)
        .await
        .map_err(|e| format!("the staged data cannot be read: {e}"))?;
    let mut inspector = (job.container_format.as_deref() == Some("bare")).then(Inspector::new);
    let stream = fetched.stream.map(|r| {
        let chunk = r?;
        copied.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if let Some(i) = inspector.as_mut() {
            i.feed(&chunk);
        }
        Ok(chunk)
    });
    let limits = WriteLimits {
        cap: Some(cap),
        declared_size: fetched.total_size,
    };
    let added = state
        .stores
        .add(
            job.store.as_deref(),
            &job.id.to_string(),
            stream,
            &limits,
            state.config.hashing_algorithm,
        )
        .await
        .map_err(|e| format!("the data could not be stored: {e}"))?;
    let virtual_size = match judge(state, inspector, &job.disk_format, &job.container_format) {
        Ok(v) => v,
        Err(e) => {
            remove_data(state, &added.written.location, Some(&added.store_id)).await;
            return Err(e.to_string());
        }
    };
    let metadata = if state.stores.multi_store() {
        json!({"store": added.store_id})
    } else {
        json!({})
    };
    Ok(UploadComplete {
        token: job.started.lease.token.clone(),
        size: i64::try_from(added.written.size_bytes).unwrap_or(i64::MAX),
        checksum: added.written.checksum,
        os_hash_algo: added.written.os_hash_algo,
        os_hash_value: added.written.os_hash_value,
        virtual_size,
        location: NewLocation {
            url: added.written.location,
            metadata,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn uris_are_filtered_as_glance_does() {
        let f = ImportFilters::default();
        assert!(check_uri(&f, &u("http://example.com/x.img")).is_ok());
        assert!(check_uri(&f, &u("https://example.com:443/x.img")).is_ok());
        assert!(
            check_uri(&f, &u("http://127.0.0.1:19999/x.img"))
                .unwrap_err()
                .contains("port")
        );
        assert!(
            check_uri(&f, &u("ftp://example.com/x.img"))
                .unwrap_err()
                .contains("scheme")
        );
        let deny = ImportFilters {
            disallowed_hosts: vec!["evil.example".into()],
            ..ImportFilters::default()
        };
        assert!(
            check_uri(&deny, &u("http://EVIL.example/x"))
                .unwrap_err()
                .contains("host")
        );
        // An allow-list wins over the deny-list.
        let both = ImportFilters {
            allowed_hosts: vec!["good.example".into()],
            disallowed_hosts: vec!["good.example".into()],
            ..ImportFilters::default()
        };
        assert!(check_uri(&both, &u("http://good.example/x")).is_ok());
        assert!(check_uri(&both, &u("http://other.example/x")).is_err());
        let any_port = ImportFilters {
            allowed_ports: vec![],
            disallowed_ports: vec![22],
            ..ImportFilters::default()
        };
        assert!(check_uri(&any_port, &u("http://h:8080/x")).is_ok());
        assert!(check_uri(&any_port, &u("http://h:22/x")).is_err());
    }
}

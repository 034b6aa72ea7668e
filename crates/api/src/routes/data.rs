//! Image data: `PUT /v2/images/{id}/file` streams into a store, `GET` streams back out.
//!
//! Upload: checks first (media type, status, formats, caps), then `queued → saving` by
//! compare-and-swap with an upload lease that a background task renews, then the body streams
//! through the store's one-pass pipeline, then the registry records it and makes the image
//! `active`. Any failure — including the client hanging up, which drops this handler — removes
//! the partial data (the store's guard) and returns the image to `queued` (this module's guard).
//! An upload refused by those first checks has its body read and thrown away before the
//! answer ([`http1::discard`]), so a client that sends it all first still gets the answer.
//!
//! Download: metadata first (so 404/403/204 come before any byte), then the store's stream.
//! When the bytes are a region of a local file, the response also carries an
//! [`http1::SendFile`] extension and glance-api's connection sends that region with
//! `sendfile(2)` instead of reading the stream. Its contract, written on the type: the
//! response body is still set, to the same bytes and exactly the region's length.

use actix_web::body::SizedStream;
use actix_web::http::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use glance_inspect::{Inspector, Refusal};
use glance_model::ownership::Change;
use glance_model::wire::{LeaseRequest, LeaseToken, NewLocation, UploadComplete};
use glance_model::{Context, ErrorKind, ImageId, ImageStatus};
use glance_store::{ByteRange, StoreError, WriteLimits};
use serde_json::json;

use super::image_id;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http1::{self, Drain, SendFile};
use crate::limits::Resource;
use crate::policy::Read;
use crate::view;

/// Returns the image to `queued` unless the upload (or stage) finished (or the image went
/// away); runs on drop so a cancelled handler (client disconnect) still cleans up.
pub(crate) struct UploadGuard {
    pub(crate) state: AppState,
    pub(crate) ctx: Context,
    pub(crate) id: ImageId,
    pub(crate) token: String,
    pub(crate) settled: bool,
    pub(crate) heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl UploadGuard {
    /// Holds `lease` on `id`: renews it in the background until the guard settles or drops.
    pub(crate) fn hold(state: &AppState, ctx: Context, id: ImageId, token: String) -> Self {
        let ttl = state.config.upload_lease_ttl_secs;
        Self {
            state: state.clone(),
            ctx: ctx.clone(),
            id,
            token: token.clone(),
            settled: false,
            heartbeat: Some(spawn_heartbeat(state.clone(), ctx, id, token, ttl)),
        }
    }

    pub(crate) async fn abort(&mut self) {
        self.settled = true;
        let token = LeaseToken {
            token: self.token.clone(),
            ttl_secs: None,
            message: None,
        };
        if let Err(e) = self
            .state
            .registry
            .abort_upload(&self.ctx, &self.id, &token)
            .await
        {
            log::warn!(
                "image {}: could not return it to queued after a failed upload: {e}",
                self.id
            );
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if !self.settled {
            let state = self.state.clone();
            let ctx = self.ctx.clone();
            let id = self.id;
            let token = LeaseToken {
                token: self.token.clone(),
                ttl_secs: None,
                message: None,
            };
            log::warn!("image {id}: upload interrupted; returning the image to queued");
            actix_web::rt::spawn(async move {
                if let Err(e) = state.registry.abort_upload(&ctx, &id, &token).await {
                    log::warn!("image {id}: could not return it to queued: {e}");
                }
            });
        }
    }
}

pub(crate) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// What data is sent for: `PUT /file` (upload) or `PUT /stage` (stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Into a store, making the image active.
    Upload,
    /// Into the staging area, for an import.
    Stage,
}

/// Every check before any byte is stored: media type, image state and formats, policy, store,
/// size caps.
pub(crate) async fn preflight(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    ctx: &Context,
    id: &str,
    purpose: Purpose,
) -> Result<Preflight, ApiError> {
    let id = image_id(id)?;
    let ct = header(req, "content-type").unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/octet-stream") {
        return Err(ApiError::rule(
            ErrorKind::UnsupportedMediaType,
            format!("Image data must be sent as application/octet-stream, not {ct:?}"),
        ));
    }
    let image = state.registry.get_image(ctx, &id).await?;
    let (change, verb) = match purpose {
        Purpose::Upload => (Change::Upload, "uploaded to"),
        Purpose::Stage => (Change::Stage, "staged for"),
    };
    state.policy.change(change, ctx, &image)?;
    if image.status != ImageStatus::Queued {
        return Err(ApiError::conflict(format!(
            "Image {id} is {}; data can only be {verb} a queued image",
            image.status.as_str()
        )));
    }
    // A stage needs no formats yet; the import that follows does (409 there, as Glance).
    if purpose == Purpose::Upload {
        glance_model::status::require_formats(
            image.disk_format.as_deref(),
            image.container_format.as_deref(),
        )?;
    }
    let declared = match header(req, "x-openstack-image-size").or(header(req, "content-length")) {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid image size {v:?}: expected a number of bytes"
            ))
        })?),
    };
    let requested_store = if state.stores.multi_store() && purpose == Purpose::Upload {
        header(req, "x-image-meta-store").map(str::to_string)
    } else {
        None
    };
    if purpose == Purpose::Upload {
        state.stores.for_upload(requested_store.as_deref())?;
    }
    let cap = upload_cap(state, ctx).await?;
    if let Some(d) = declared
        && d > cap.0
    {
        return Err(ApiError::rule(
            ErrorKind::TooLarge,
            format!(
                "Image of {d} bytes exceeds {}: at most {} bytes",
                cap.1, cap.0
            ),
        ));
    }
    // A zero Content-Length on a chunked request means "unknown"; only trust a length header
    // when the client did not stream.
    let declared = declared.filter(|_| header(req, "transfer-encoding").is_none());
    // An upload: Keystone's image_size_total, with the declared size as the delta (Glance:
    // whole MiB, 0 when unknown). A stage checks image_stage_total instead (its route).
    if purpose == Purpose::Upload {
        let delta = declared.map_or(0, |d| i64::try_from(d >> 20).unwrap_or(i64::MAX));
        crate::limits::enforce(state, ctx, &[(Resource::ImageSizeTotal, delta)]).await?;
    }

    Ok(Preflight {
        id,
        requested_store,
        cap,
        declared,
        disk_format: image.disk_format.clone(),
        container_format: image.container_format.clone(),
    })
}

/// Who a lease's later calls (heartbeat, complete, abort) go as. An upload or stage may
/// outlive the user's token (Glance's 401-after-a-long-upload), so with Keystone they go with
/// this node's own identity, under the lease token only the uploading request holds.
pub(crate) async fn lease_context(state: &AppState, ctx: &Context) -> Result<Context, ApiError> {
    if state.keystone.is_some() {
        crate::auth::service_context(state, ctx.request_id.clone()).await
    } else {
        Ok(ctx.clone())
    }
}

/// What an upload may proceed with once every check passed.
pub(crate) struct Preflight {
    pub(crate) id: ImageId,
    pub(crate) requested_store: Option<String>,
    pub(crate) cap: (u64, String),
    pub(crate) declared: Option<u64>,
    pub(crate) disk_format: Option<String>,
    pub(crate) container_format: Option<String>,
}

/// `PUT /v2/images/{id}/file`
pub async fn upload_image_data(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let pre = match preflight(&req, &state, &ctx, &id, Purpose::Upload).await {
        Ok(p) => p,
        Err(e) => {
            // Read the body the client is sending before the answer, so that it gets the
            // answer (bounded; past the bound the connection closes).
            http1::discard(&mut payload, Drain::REFUSED_UPLOAD).await;
            return Err(e);
        }
    };
    let Preflight {
        id,
        requested_store,
        cap,
        declared,
        disk_format: pre_disk,
        container_format: pre_container,
    } = pre;
    let ttl = state.config.upload_lease_ttl_secs;
    let lease = state
        .registry
        .start_upload(
            &ctx,
            &id,
            &LeaseRequest {
                node: state.config.node_id.clone(),
                ttl_secs: ttl,
            },
        )
        .await?;
    let lease_ctx = lease_context(&state, &ctx).await?;
    let mut guard = UploadGuard::hold(&state, lease_ctx.clone(), id, lease.token.clone());
    // Keystone's image_count_uploading, counted with this image already `saving` (delta 0, as
    // Glance); a refusal drops the guard, which returns the image to `queued`.
    crate::limits::enforce(&state, &ctx, &[(Resource::ImageCountUploading, 0)]).await?;
    // The format inspector sees each chunk as it goes to the store (no second pass); it only
    // runs where Glance's rule looks, container_format=bare.
    let mut inspector = (pre_container.as_deref() == Some("bare")).then(Inspector::new);
    let stream = payload.map(|r| {
        let chunk = r.map_err(|e| StoreError::Source(e.to_string()))?;
        if let Some(i) = inspector.as_mut() {
            i.feed(&chunk);
        }
        Ok(chunk)
    });
    let limits = WriteLimits {
        cap: Some(cap),
        declared_size: declared,
    };
    let added = match state
        .stores
        .add(
            requested_store.as_deref(),
            &id.to_string(),
            stream,
            &limits,
            state.config.hashing_algorithm,
        )
        .await
    {
        Ok(a) => a,
        Err(e) => {
            guard.abort().await;
            return Err(e.into());
        }
    };
    let virtual_size = match judge(&state, inspector, &pre_disk, &pre_container) {
        Ok(v) => v,
        Err(e) => {
            // Nothing of a refused image is kept: its bytes go, the image goes back to queued.
            remove_data(&state, &added.written.location, Some(&added.store_id)).await;
            guard.abort().await;
            return Err(e);
        }
    };
    let metadata = if state.stores.multi_store() {
        json!({"store": added.store_id})
    } else {
        json!({})
    };
    let done = UploadComplete {
        token: lease.token.clone(),
        size: i64::try_from(added.written.size_bytes).unwrap_or(i64::MAX),
        checksum: added.written.checksum.clone(),
        os_hash_algo: added.written.os_hash_algo.clone(),
        os_hash_value: added.written.os_hash_value.clone(),
        virtual_size,
        location: NewLocation {
            url: added.written.location.clone(),
            metadata,
        },
    };
    match state.registry.complete_upload(&lease_ctx, &id, &done).await {
        Ok(_) => {
            guard.settled = true;
            Ok(HttpResponse::NoContent().finish())
        }
        Err(e) => {
            remove_data(&state, &added.written.location, Some(&added.store_id)).await;
            if matches!(e.kind(), ErrorKind::Gone | ErrorKind::NotFound) {
                guard.settled = true;
                return Err(ApiError::rule(
                    ErrorKind::Gone,
                    format!(
                        "Image {id} was deleted during the upload; the uploaded data was removed"
                    ),
                ));
            }
            guard.abort().await;
            Err(e)
        }
    }
}

/// Glance's upload rule on the inspected bytes: the `virtual_size` to record, or 415.
pub(crate) fn judge(
    state: &AppState,
    inspector: Option<Inspector>,
    disk_format: &Option<String>,
    container_format: &Option<String>,
) -> Result<Option<i64>, ApiError> {
    let Some(inspector) = inspector else {
        return Ok(None);
    };
    let inspection = inspector.finish();
    match state.config.image_format_rules.judge(
        &inspection,
        disk_format.as_deref(),
        container_format.as_deref(),
    ) {
        Ok(accepted) => {
            for w in &accepted.warnings {
                log::warn!("image upload: {w}");
            }
            Ok(accepted.virtual_size.and_then(|v| i64::try_from(v).ok()))
        }
        Err(refusal) => {
            if let Refusal::Unsafe { reasons } = &refusal {
                log::info!("image upload refused: {refusal}: {}", reasons.join("; "));
            }
            Err(ApiError::rule(
                ErrorKind::UnsupportedMediaType,
                refusal.to_string(),
            ))
        }
    }
}

pub(crate) async fn remove_data(state: &AppState, url: &str, store: Option<&str>) {
    if let Err(e) = state.stores.delete(url, store).await {
        log::warn!("could not remove data at {url}: {e}");
    }
}

/// The most bytes this upload may hold, and why: `image_size_cap`, or what is left of the
/// project's `user_storage_quota`.
pub(crate) async fn upload_cap(state: &AppState, ctx: &Context) -> Result<(u64, String), ApiError> {
    let mut cap = (
        state.config.image_size_cap,
        format!("image_size_cap of {} bytes", state.config.image_size_cap),
    );
    // Glance ignores user_storage_quota when Keystone's limits are on.
    let quota = if state.limits.is_some() {
        0
    } else {
        state.config.user_storage_quota
    };
    if quota > 0 {
        let used = state.registry.storage_used(ctx).await?;
        let left = quota.saturating_sub(used);
        if left < cap.0 {
            cap = (
                left,
                format!("user_storage_quota of {quota} bytes ({used} bytes already used)"),
            );
        }
    }
    Ok(cap)
}

fn spawn_heartbeat(
    state: AppState,
    ctx: Context,
    id: ImageId,
    token: String,
    ttl: u32,
) -> tokio::task::JoinHandle<()> {
    let every = std::time::Duration::from_millis(u64::from(ttl) * 1000 / 3);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let t = LeaseToken {
                token: token.clone(),
                ttl_secs: Some(ttl),
                message: None,
            };
            if let Err(e) = state.registry.renew_upload(&ctx, &id, &t).await {
                log::warn!("image {id}: upload lease renewal failed: {e}");
                if matches!(e.kind(), ErrorKind::Gone | ErrorKind::NotFound) {
                    return;
                }
            }
        }
    })
}

/// Parses a single `Range: bytes=...` against `size`: `Ok(None)` for no header, and also for
/// a header that is not a well-formed byte range (`bytes=abc`, `items=0-1`, empty, `bytes=10-5`):
/// RFC 9110 §14.2 lets a server ignore such a header, and the download is then answered 200
/// with the whole image (issue 26; the reference Glance 33 answers 416 there, a deliberate
/// difference listed in docs/api-compat.md). A well-formed range that starts past the end, or
/// a zero-length suffix, is 416; several ranges are 400.
pub fn parse_range(raw: Option<&str>, size: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Err(ApiError::bad_request(
            "Multiple ranges are not supported; ask for one range",
        ));
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let num = |s: &str| s.parse::<u64>().ok();
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        Err(ApiError::rule(
            ErrorKind::RangeNotSatisfiable,
            format!("Requested range {raw:?} cannot be satisfied for an image of {size} bytes"),
        ))
    };
    let (offset, end) = match (a.is_empty(), num(a), b.is_empty(), num(b)) {
        // `bytes=-N`: the last N bytes.
        (true, _, false, Some(n)) => {
            if n == 0 || size == 0 {
                return unsatisfiable();
            }
            (size.saturating_sub(n), size - 1)
        }
        // `bytes=A-`: from A to the end.
        (false, Some(a), true, _) => (a, size.saturating_sub(1)),
        (false, Some(a), false, Some(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
        _ => return Ok(None),
    };
    if offset >= size {
        return unsatisfiable();
    }
    Ok(Some(ByteRange {
        offset,
        length: Some(end - offset + 1),
    }))
}

/// Old python-glanceclient asks for a part of the data with a *request* header
/// `Content-Range: bytes A-B/*`, which Glance 33 still honours (206) when no `Range` is sent.
/// Turns it into the `Range` form `bytes=A-B`; anything else is `None` (the whole image).
pub fn legacy_content_range(raw: Option<&str>) -> Option<String> {
    let spec = raw?.trim().strip_prefix("bytes ")?;
    let (range, _total) = spec.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    Some(format!("bytes={a}-{b}"))
}

/// `GET /v2/images/{id}/file`
pub async fn download_image_data(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.read(Read::Download, &ctx, &image)?;
    if image.status == ImageStatus::Deactivated && !ctx.is_admin {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is prohibited.",
        ));
    }
    let locations = view::sorted_locations(&state, &image);
    if locations.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    // Content-Length and the range arithmetic come from the recorded size; the store refuses
    // data of any other size (`Stores::get`).
    let recorded = image.size.and_then(|s| u64::try_from(s).ok());
    let size = recorded.unwrap_or(0);
    let range = match header(&req, "range") {
        Some(raw) => parse_range(Some(raw), size)?,
        None => parse_range(
            legacy_content_range(header(&req, "content-range")).as_deref(),
            size,
        )?,
    };
    let mut last_err: Option<ApiError> = None;
    for (url, store) in locations {
        match state.stores.get(url, store, range, recorded).await {
            Ok(fetched) => {
                let total = fetched.total_size.unwrap_or(size);
                let len = fetched.length.unwrap_or(total - fetched.offset);
                let mut res = if range.is_some() {
                    HttpResponse::PartialContent()
                } else {
                    HttpResponse::Ok()
                };
                res.insert_header((CONTENT_TYPE, "application/octet-stream"));
                if range.is_some() {
                    let end = fetched.offset + len.saturating_sub(1);
                    res.insert_header((
                        CONTENT_RANGE,
                        format!("bytes {}-{end}/{total}", fetched.offset),
                    ));
                }
                if let Some(md5) = image
                    .checksum
                    .as_deref()
                    .and_then(|c| HeaderValue::from_str(c).ok())
                {
                    res.insert_header(("content-md5", md5));
                }
                // From a local file whose region is exactly the body, glance-api's connection
                // handler sends it with sendfile(2) instead of reading the stream. The body
                // below is the same bytes, exactly `len` of them, as `SendFile` requires.
                if let Some(region) = fetched.file.filter(|r| r.length == len) {
                    res.extensions_mut().insert(SendFile {
                        file: region.file,
                        offset: region.offset,
                        length: region.length,
                        sent: std::rc::Rc::default(),
                    });
                }
                return Ok(res.body(SizedStream::new(len, fetched.stream)));
            }
            Err(e @ StoreError::SizeChanged { .. }) => {
                // Someone must act: the data was changed or damaged outside Glance.
                log::error!(
                    "image {id}: location {} not served: {e}",
                    glance_store::http::strip_credentials(url)
                );
                last_err = Some(e.into());
            }
            Err(e) => {
                log::warn!(
                    "image {id}: cannot read location {}: {e}",
                    glance_store::http::strip_credentials(url)
                );
                last_err = Some(e.into());
            }
        }
    }
    match last_err {
        // Glance answers 204 when the store no longer has the data.
        Some(e) if e.kind() == ErrorKind::NotFound => Ok(HttpResponse::NoContent().finish()),
        Some(e) => Err(e),
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_content_range_becomes_a_range() {
        use super::legacy_content_range as l;
        assert_eq!(l(Some("bytes 0-9/*")).as_deref(), Some("bytes=0-9"));
        assert_eq!(l(Some("bytes 5-7/100")).as_deref(), Some("bytes=5-7"));
        for bad in [
            "bytes=0-9",
            "bytes 0-/*",
            "bytes a-b/*",
            "bytes 0-9",
            "items 0-1/*",
            "",
        ] {
            assert_eq!(l(Some(bad)), None, "{bad}");
        }
        assert_eq!(l(None), None);
    }

    #[test]
    fn ranges_parse_as_glance() {
        let r = |s: &str| parse_range(Some(s), 1000).map(|r| r.map(|r| (r.offset, r.length)));
        assert_eq!(r("bytes=0-99").unwrap(), Some((0, Some(100))));
        assert_eq!(r("bytes=990-").unwrap(), Some((990, Some(10))));
        assert_eq!(r("bytes=-16").unwrap(), Some((984, Some(16))));
        assert_eq!(r("bytes=-5000").unwrap(), Some((0, Some(1000))));
        assert_eq!(r("bytes=900-5000").unwrap(), Some((900, Some(100))));
        assert_eq!(
            r("bytes=0-1,5-6").unwrap_err().kind(),
            ErrorKind::BadRequest
        );
        for bad in ["bytes=1000-", "bytes=-0"] {
            assert_eq!(
                r(bad).unwrap_err().kind(),
                ErrorKind::RangeNotSatisfiable,
                "{bad}"
            );
        }
        for ignored in [
            "bytes=10-5",
            "bytes=x-y",
            "items=0-1",
            "bytes=-",
            "",
            "bytes=5-abc",
        ] {
            assert_eq!(r(ignored).unwrap(), None, "{ignored}");
        }
        assert_eq!(parse_range(None, 10).unwrap(), None);
    }
}

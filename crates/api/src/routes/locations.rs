//! An image's locations: `DELETE /v2/stores/{store_id}/{image_id}` (one store's copy),
//! `GET`/`POST /v2/images/{id}/locations` (2.17, for Nova and Cinder) and the `/locations`
//! edits of PATCH. The registry applies every edit under the image's row lock, where it also
//! checks `image_location_quota`; this module checks what only glance-api can (the URL's
//! store, the data's size, who may ask) and moves the bytes.

use actix_web::{HttpResponse, web};
use glance_model::patch::LocationEdit;
use glance_model::wire::{Activation, ImageUpdate, LocationOp, LocationsChange, NewLocation};
use glance_model::{Context, ErrorKind, Image, ImageStatus};
use serde_json::{Value, json};

use super::image_id;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// Removes the data at `url` and then the image's record of it, in the order that leaves the
/// image as it was when the store refuses because the data is in use (see
/// [`glance_store::Stores::may_be_in_use`]).
pub async fn remove_location(
    state: &AppState,
    ctx: &Context,
    image: &Image,
    url: &str,
    store: Option<&str>,
) -> Result<Image, ApiError> {
    let first = state.stores.may_be_in_use(url, store);
    if first {
        delete_data(state, image, url, store).await?;
    }
    let change = LocationsChange {
        ops: vec![LocationOp::Remove {
            url: url.to_string(),
        }],
        quota: None,
        activate: None,
    };
    let updated = state
        .registry
        .change_locations(ctx, &image.id, &change)
        .await?;
    if !first && let Err(e) = delete_data(state, image, url, store).await {
        log::warn!(
            "image {}: location {url} removed but its data was not: {e}",
            image.id
        );
    }
    Ok(updated)
}

/// Deletes the data at `url`: already gone is fine; in use is a 409 naming the image.
async fn delete_data(
    state: &AppState,
    image: &Image,
    url: &str,
    store: Option<&str>,
) -> Result<(), ApiError> {
    match state.stores.delete(url, store).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::Conflict => Err(ApiError::conflict(format!(
            "The data of image {} cannot be deleted: it is in use outside Glance ({e})",
            image.id
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /v2/stores/{store_id}/{image_id}` (2.10, multi-store): removes one store's copy of
/// an active image that has another.
pub async fn delete_from_store(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (store_id, raw) = path.into_inner();
    if !state.stores.multi_store() {
        return Err(ApiError::not_found(
            "Multi backend is not supported at this site.",
        ));
    }
    if state.stores.entry(&store_id).is_none() {
        return Err(ApiError::conflict(format!(
            "Store {store_id} is not enabled on this glance-api"
        )));
    }
    let id = image_id(&raw)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.location("get_image_location", &ctx, &image)?;
    state
        .policy
        .change_location("delete_image_location", &ctx, &image)?;
    if image.status != ImageStatus::Active {
        return Err(ApiError::conflict(format!(
            "Image {id} is {}: data can be removed from a store only while the image is active",
            image.status.as_str()
        )));
    }
    if image.locations.len() == 1 {
        return Err(ApiError::forbidden(format!(
            "Store {store_id} holds the only copy of image {id}'s data; delete the image instead"
        )));
    }
    let Some(loc) = image
        .locations
        .iter()
        .find(|l| l.metadata.get("store").and_then(|s| s.as_str()) == Some(store_id.as_str()))
    else {
        return Err(ApiError::not_found(format!(
            "Image {id} has no data in store {store_id}"
        )));
    };
    remove_location(&state, &ctx, &image, &loc.url, Some(&store_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A location a caller asks to add, checked: its URL, its metadata (with the store id filled
/// in under multi-store), the size of its data, and the digests it claims.
#[derive(Debug, Clone)]
pub struct CheckedLocation {
    /// The URL.
    pub url: String,
    /// The metadata to record.
    pub metadata: Value,
    /// The data's size in its store (more than 0).
    pub size: u64,
    /// `validation_data`, when given.
    pub validation: Option<Value>,
}

/// Reads a location object of a patch (`{"url", "metadata", "validation_data"?}`), 400 when
/// it is not one.
fn parse_location(value: &Value) -> Result<(String, Value, Option<Value>), ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "A location must be an object with a string url and an object metadata: {why}"
        ))
    };
    let obj = value.as_object().ok_or_else(|| bad("not an object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "url" | "metadata" | "validation_data"))
    {
        return Err(bad(&format!("unknown member {k:?}")));
    }
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("url is missing or not a string"))?;
    if url.chars().count() > 255 {
        return Err(bad("url is longer than 255 characters"));
    }
    let metadata = obj
        .get("metadata")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad("metadata is missing or not an object"))?;
    Ok((
        url.to_string(),
        metadata.clone(),
        obj.get("validation_data").cloned(),
    ))
}

/// Checks a location someone wants to add: its scheme must be a configured store's (never a
/// local file: `file`, `filesystem`; never `swift+config`), an http(s) URL must pass the http
/// store's guard against internal addresses, and the store must hold more than 0 bytes there.
pub async fn check_new_location(
    state: &AppState,
    url: &str,
    metadata: &Value,
) -> Result<(Value, u64), ApiError> {
    let invalid = |why: String| ApiError::bad_request(format!("Invalid location {url}: {why}"));
    let scheme = url
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    if matches!(scheme.as_str(), "file" | "filesystem" | "swift+config") {
        return Err(invalid(format!(
            "{scheme} locations cannot be added through the API"
        )));
    }
    if matches!(scheme.as_str(), "http" | "https") {
        state
            .stores
            .check_user_location(url)
            .map_err(|e| invalid(e.to_string()))?;
    }
    let entry = state
        .stores
        .reader_for(url, None)
        .map_err(|e| invalid(e.to_string()))?;
    let hint = metadata.get("store").and_then(Value::as_str);
    if let Some(h) = hint
        && h != entry.id
    {
        let same_kind = state.stores.entry(h).is_some_and(|e| {
            std::mem::discriminant(&e.store) == std::mem::discriminant(&entry.store)
        });
        if !same_kind {
            return Err(invalid(format!(
                "metadata names store {h:?}, which does not read {scheme} locations"
            )));
        }
    }
    let store_id = hint.unwrap_or(&entry.id).to_string();
    let size = state
        .stores
        .size(url, Some(&store_id))
        .await
        .map_err(|e| invalid(format!("its data cannot be read: {e}")))?;
    if size == 0 {
        return Err(invalid("its data is empty".to_string()));
    }
    let mut metadata = metadata.clone();
    if state.stores.multi_store()
        && hint.is_none()
        && let Some(m) = metadata.as_object_mut()
    {
        m.insert("store".to_string(), Value::String(store_id));
    }
    Ok((metadata, size))
}

/// The position a patch names: a number, or `-` (`None`) for the end when adding.
fn position(raw: Option<&str>, len: usize, adding: bool) -> Option<usize> {
    match raw {
        None if adding => Some(len),
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let n = p.parse::<usize>().ok()?;
            (adding || n < len).then_some(n.min(len))
        }
        Some(_) => None,
    }
}

/// Merges the `validation_data` of added locations and checks it as Glance does: values
/// already on the image must be repeated exactly; new values only while the image is queued;
/// `os_hash_algo` must be the configured `hashing_algorithm`; digests must be hex of their
/// algorithm's length. Returns the values to record (409 for every refusal, as Glance).
pub fn check_validation_data(
    state: &AppState,
    image: &Image,
    given: &[&Value],
) -> Result<Option<Activation>, ApiError> {
    let mut merged: serde_json::Map<String, Value> = serde_json::Map::new();
    for v in given {
        let obj = v.as_object().ok_or_else(|| {
            ApiError::bad_request("validation_data must be an object".to_string())
        })?;
        for (k, val) in obj {
            if !matches!(k.as_str(), "checksum" | "os_hash_algo" | "os_hash_value") {
                return Err(ApiError::bad_request(format!(
                    "validation_data has an unknown member {k:?}"
                )));
            }
            let s = val.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("validation_data {k} must be a string"))
            })?;
            if merged.get(k).is_some_and(|old| old != val) {
                return Err(ApiError::conflict(format!(
                    "The locations give different values for {k}"
                )));
            }
            merged.insert(k.clone(), Value::String(s.to_string()));
        }
        if !(obj.contains_key("os_hash_algo") && obj.contains_key("os_hash_value")) {
            return Err(ApiError::bad_request(
                "validation_data needs both os_hash_algo and os_hash_value".to_string(),
            ));
        }
    }
    if merged.is_empty() {
        return Ok(None);
    }
    let current = |k: &str| match k {
        "checksum" => image.checksum.clone(),
        "os_hash_algo" => image.os_hash_algo.clone(),
        _ => image.os_hash_value.clone(),
    };
    let mut new = serde_json::Map::new();
    for (k, v) in &merged {
        let v = v.as_str().unwrap_or_default();
        match current(k) {
            Some(c) if c == v => {}
            Some(c) => {
                return Err(ApiError::conflict(format!(
                    "Image {} already has {k} {c}; validation_data gives {v}",
                    image.id
                )));
            }
            None => {
                new.insert(k.clone(), Value::String(v.to_string()));
            }
        }
    }
    if new.is_empty() {
        return Ok(None);
    }
    if image.status != ImageStatus::Queued {
        return Err(ApiError::conflict(format!(
            "Image {} is {}: validation_data can set digests only on a queued image",
            image.id,
            image.status.as_str()
        )));
    }
    let get = |k: &str| new.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(c) = get("checksum")
        && (c.len() != 32 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::conflict(format!(
            "checksum {c:?} is not an MD5 digest (32 hexadecimal digits)"
        )));
    }
    let algo = get("os_hash_algo").unwrap_or_default();
    let want = state.config.hashing_algorithm.name();
    if algo != want {
        return Err(ApiError::conflict(format!(
            "os_hash_algo must be {want} (this service's hashing_algorithm), not {algo}"
        )));
    }
    let value = get("os_hash_value").unwrap_or_default();
    let hex_len = state.config.hashing_algorithm.hex_len();
    if value.len() != hex_len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::conflict(format!(
            "os_hash_value is not a {want} digest ({hex_len} hexadecimal digits)"
        )));
    }
    Ok(Some(Activation {
        size: 0,
        checksum: get("checksum"),
        os_hash_algo: Some(algo),
        os_hash_value: Some(value),
    }))
}

/// The `/locations` edits of a PATCH (with `show_multiple_locations`): checked here, applied
/// by the registry under the image's lock with `image_location_quota`, then the data of
/// removed locations deleted. Returns the image as it then is.
pub async fn patch_locations(
    state: &AppState,
    ctx: &Context,
    image: &Image,
    edits: &[LocationEdit],
) -> Result<Image, ApiError> {
    let id = image.id;
    let status = image.status;
    let mut list: Vec<(String, Value)> = image
        .locations
        .iter()
        .filter(|l| l.status == "active")
        .map(|l| (l.url.clone(), l.metadata.clone()))
        .collect();
    let mut ops = Vec::new();
    let mut removed: Vec<(String, Option<String>)> = Vec::new();
    let mut added_sizes: Vec<(String, u64)> = Vec::new();
    let mut validation: Vec<Value> = Vec::new();
    let writable = matches!(status, ImageStatus::Queued | ImageStatus::Active);
    let refuse_status = |what: &str| {
        ApiError::conflict(format!(
            "Locations can be {what} only while the image is queued or active; image {id} is {}",
            status.as_str()
        ))
    };
    for edit in edits {
        match edit {
            LocationEdit::Add {
                position: at,
                value,
            } => {
                state
                    .policy
                    .change_location("set_image_location", ctx, image)?;
                if !writable {
                    return Err(refuse_status("added"));
                }
                let pos = position(at.as_deref(), list.len(), true).ok_or_else(|| {
                    ApiError::bad_request("Invalid position for adding a location")
                })?;
                let (url, metadata, val) = parse_location(value)?;
                let (metadata, size) = check_new_location(state, &url, &metadata).await?;
                added_sizes.push((url.clone(), size));
                validation.extend(val);
                list.insert(pos, (url.clone(), metadata.clone()));
                ops.push(LocationOp::Add {
                    index: Some(pos),
                    location: NewLocation { url, metadata },
                });
            }
            LocationEdit::Remove { position: at } => {
                state
                    .policy
                    .change_location("delete_image_location", ctx, image)?;
                if status != ImageStatus::Active {
                    return Err(ApiError::conflict(format!(
                        "Locations can be removed only while the image is active; image {id} is {}",
                        status.as_str()
                    )));
                }
                if list.len() == 1 {
                    return Err(ApiError::forbidden(format!(
                        "The last location of image {id} cannot be removed; delete the image instead"
                    )));
                }
                let pos = position(Some(at), list.len(), false).ok_or_else(|| {
                    ApiError::bad_request("Invalid position for removing a location")
                })?;
                let (url, metadata) = list.remove(pos);
                let store = metadata
                    .get("store")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                removed.push((url.clone(), store));
                ops.push(LocationOp::Remove { url });
            }
            LocationEdit::Replace { value } => {
                state
                    .policy
                    .change_location("set_image_location", ctx, image)?;
                if !writable {
                    return Err(refuse_status("replaced"));
                }
                let items = value.as_array().ok_or_else(|| {
                    ApiError::bad_request("The value of replace /locations must be a list")
                })?;
                if items.is_empty() {
                    return Err(ApiError::forbidden("Cannot set locations to empty list."));
                }
                let mut new = Vec::with_capacity(items.len());
                for item in items {
                    let (url, metadata, val) = parse_location(item)?;
                    let metadata = match list.iter().find(|(u, _)| *u == url) {
                        // Only the metadata of a location already there may change.
                        Some(_) => metadata,
                        None => {
                            let (metadata, size) =
                                check_new_location(state, &url, &metadata).await?;
                            added_sizes.push((url.clone(), size));
                            metadata
                        }
                    };
                    validation.extend(val);
                    new.push((url, metadata));
                }
                let mut before: Vec<&str> = list.iter().map(|(u, _)| u.as_str()).collect();
                let mut after: Vec<&str> = new.iter().map(|(u, _)| u.as_str()).collect();
                before.sort_unstable();
                after.sort_unstable();
                if !list.is_empty() && before != after {
                    return Err(ApiError::bad_request(format!(
                        "Original locations is not empty: image {id} has locations, and a \
                         replace may only change their metadata; add or remove locations instead"
                    )));
                }
                ops.push(LocationOp::Replace {
                    expected: list.iter().map(|(u, _)| u.clone()).collect(),
                    locations: new
                        .iter()
                        .map(|(url, metadata)| NewLocation {
                            url: url.clone(),
                            metadata: metadata.clone(),
                        })
                        .collect(),
                });
                list = new;
            }
        }
    }
    // Every location of an image holds the same data: one of another size is refused.
    let recorded = image.size.and_then(|s| u64::try_from(s).ok());
    let expected = recorded.or_else(|| added_sizes.first().map(|(_, s)| *s));
    if let Some(want) = expected
        && let Some((url, got)) = added_sizes.iter().find(|(_, s)| *s != want)
    {
        return Err(ApiError::bad_request(format!(
            "Invalid location {url}: it holds {got} bytes, but image {id} has {want}"
        )));
    }
    let refs: Vec<&Value> = validation.iter().collect();
    let mut activate = check_validation_data(state, image, &refs)?;
    if status == ImageStatus::Queued && !list.is_empty() {
        let size = expected.unwrap_or(0);
        let a = activate.get_or_insert(Activation {
            size: 0,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
        });
        a.size = i64::try_from(size).unwrap_or(i64::MAX);
    }
    // Data a store may refuse to delete while in use goes before the record of it.
    for (url, store) in &removed {
        if state.stores.may_be_in_use(url, store.as_deref()) {
            delete_data(state, image, url, store.as_deref()).await?;
        }
    }
    let change = LocationsChange {
        ops,
        quota: Some(state.config.image_location_quota),
        activate,
    };
    let updated = state.registry.change_locations(ctx, &id, &change).await?;
    for (url, store) in &removed {
        if !state.stores.may_be_in_use(url, store.as_deref())
            && let Err(e) = delete_data(state, image, url, store.as_deref()).await
        {
            log::warn!("image {id}: location {url} removed but its data was not: {e}");
        }
    }
    Ok(updated)
}

/// `GET /v2/images/{id}/locations` (2.17): the image's locations as `[{"url", "metadata"}]`,
/// for the service role only (policy `fetch_image_location`).
pub async fn list_locations(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state
        .policy
        .location("fetch_image_location", &ctx, &image)?;
    let shown: Vec<Value> = crate::view::sorted_location_rows(&state, &image)
        .into_iter()
        .map(|l| json!({"url": l.url, "metadata": l.metadata}))
        .collect();
    Ok(HttpResponse::Ok().json(shown))
}

/// Whether the caller is a service (Nova, Cinder) as `rule:service_api` means it: the
/// `service` or the `admin` role.
fn is_service(ctx: &Context) -> bool {
    ctx.is_admin || ctx.roles.iter().any(|r| r == "service")
}

/// `POST /v2/images/{id}/locations` (2.17): gives a `queued` image its data by location, as
/// Nova and Cinder do; `{"url": ..., "validation_data": {"os_hash_algo", "os_hash_value"}}`.
/// Anyone but a service may add only http(s) locations. Answers 202; with `do_secure_hash`
/// the image is `importing` while its data is read and hashed in the background (and checked
/// against `validation_data`), then `active`, or `queued` again when that fails. Without it
/// the image is active at once with the digests it was given.
pub async fn add_location(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    super::reject_nul(&doc)?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ApiError::bad_request("The body must be an object with a url"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "url" | "validation_data"))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown member {k:?}: the body holds url and validation_data only"
        )));
    }
    let url = obj
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.chars().count() <= 255)
        .ok_or_else(|| ApiError::bad_request("url must be a string of 1 to 255 characters"))?
        .to_string();
    let image = state.registry.get_image(&ctx, &id).await?;
    state
        .policy
        .change_location("add_image_location", &ctx, &image)?;
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if !is_service(&ctx) && !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(ApiError::forbidden(format!(
            "Only a service (role service) may add {scheme:?} locations; others may add http(s) locations only"
        )));
    }
    if image.status != ImageStatus::Queued {
        return Err(ApiError::conflict(format!(
            "A location can be added this way only to a queued image; image {id} is {}",
            image.status.as_str()
        )));
    }
    let given: Vec<&Value> = obj.get("validation_data").into_iter().collect();
    let validation = check_validation_data(&state, &image, &given)?;
    let (metadata, size) = check_new_location(&state, &url, &json!({})).await?;
    let location = NewLocation { url, metadata };
    let size_i64 = i64::try_from(size).unwrap_or(i64::MAX);
    if !state.config.do_secure_hash {
        let mut activate = validation.unwrap_or(Activation {
            size: 0,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
        });
        activate.size = size_i64;
        let change = LocationsChange {
            ops: vec![LocationOp::Add {
                index: None,
                location,
            }],
            quota: Some(state.config.image_location_quota),
            activate: Some(activate),
        };
        state.registry.change_locations(&ctx, &id, &change).await?;
        return Ok(HttpResponse::Accepted().finish());
    }
    let importing = ImageUpdate {
        from_state: Some(ImageStatus::Queued),
        status: Some(ImageStatus::Importing),
        ..ImageUpdate::default()
    };
    state.registry.update_image(&ctx, &id, &importing).await?;
    // The hashing may outlive the caller's token: it goes on with this node's identity.
    let job_ctx = if state.keystone.is_some() {
        crate::auth::service_context(&state, ctx.request_id.clone()).await?
    } else {
        ctx.clone()
    };
    let state = state.get_ref().clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = hash_and_activate(&state, &job_ctx, &id, location, size, validation).await {
            log::warn!("image {id}: the location could not be added: {e}; back to queued");
            let back = ImageUpdate {
                from_state: Some(ImageStatus::Importing),
                status: Some(ImageStatus::Queued),
                ..ImageUpdate::default()
            };
            if let Err(e) = state.registry.update_image(&job_ctx, &id, &back).await {
                log::warn!("image {id}: could not return it to queued: {e}");
            }
        }
    });
    Ok(HttpResponse::Accepted().finish())
}

/// Reads the data at `location` once, computing MD5 and `hashing_algorithm`; checks them
/// against `validation`; records the location and makes the image active.
async fn hash_and_activate(
    state: &AppState,
    ctx: &Context,
    id: &glance_model::ImageId,
    location: NewLocation,
    size: u64,
    validation: Option<Activation>,
) -> Result<(), ApiError> {
    use futures_util::StreamExt;
    let store = location.metadata.get("store").and_then(Value::as_str);
    let mut fetched = state
        .stores
        .get(&location.url, store, None, Some(size))
        .await?;
    let algo = state.config.hashing_algorithm;
    let mut md5 = glance_store::HashAlgo::Md5.hasher();
    let mut multi = algo.hasher();
    while let Some(chunk) = fetched.stream.next().await {
        let chunk = chunk?;
        md5.update(&chunk);
        multi.update(&chunk);
    }
    let digest = |h: glance_store::hashing::Hasher| {
        h.finish_hex()
            .map_err(|e| ApiError::bad_request(format!("cannot hash the data: {e}")))
    };
    let checksum = digest(md5)?;
    let value = digest(multi)?;
    let differs = |want: &Option<String>, got: &str| {
        want.as_ref().is_some_and(|w| !w.eq_ignore_ascii_case(got))
    };
    if let Some(v) = &validation
        && (differs(&v.checksum, &checksum) || differs(&v.os_hash_value, &value))
    {
        return Err(ApiError::conflict(format!(
            "the data at {} does not match validation_data",
            location.url
        )));
    }
    let change = LocationsChange {
        ops: vec![LocationOp::Add {
            index: None,
            location,
        }],
        quota: Some(state.config.image_location_quota),
        activate: Some(Activation {
            size: i64::try_from(size).unwrap_or(i64::MAX),
            checksum: Some(checksum),
            os_hash_algo: Some(algo.name().to_string()),
            os_hash_value: Some(value),
        }),
    };
    state.registry.change_locations(ctx, id, &change).await?;
    log::info!("image {id}: location added and hashed; active");
    Ok(())
}

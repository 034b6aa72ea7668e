//! `/v2/images`, `/v2/images/{id}`, its actions and tags.

use actix_web::http::header::{HeaderValue, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::filter::{ListQuery, PageLimits, parse_query_string};
use glance_model::format::Formats;
use glance_model::image::{
    READ_ONLY_ATTRS, RESERVED_ATTRS, RESERVED_PREFIX, check_property_key, check_property_value,
    is_uuid_property,
};
use glance_model::ownership::Change;
use glance_model::patch::{PatchMediaType, apply_patch_with_locations, parse_patch};
use glance_model::wire::{ImageUpdate, NewImage};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus, Visibility};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::image_id;
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, error_response};
use crate::limits::Resource;
use crate::protections::Op;
use crate::view;

/// Python's `urlencode` keeps only these unescaped (besides letters and digits).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn urlencode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                utf8_percent_encode(s, QUERY)
                    .to_string()
                    .replace("%20", "+")
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether the caller may `op` the property `key`: always, without property protections.
fn may(state: &AppState, ctx: &Context, key: &str, op: Op) -> bool {
    state
        .protections
        .as_ref()
        .is_none_or(|p| p.allows(key, op, ctx, &|rule| state.policy.rule_allows(rule, ctx)))
}

/// The image as the caller may see it: without the properties it may not read (Glance shows
/// them to no one who may not read them, in show, list and the answers to create and update).
fn readable(state: &AppState, ctx: &Context, mut image: Image) -> Image {
    if state.protections.is_some() {
        image.properties.retain(|k, _| may(state, ctx, k, Op::Read));
    }
    image
}

/// Refuses (403) the first property of `keys` the caller may not `op`.
fn check_protected<'a>(
    state: &AppState,
    ctx: &Context,
    op: Op,
    keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    match keys.into_iter().find(|k| !may(state, ctx, k, op)) {
        Some(key) => Err(ApiError::forbidden(format!(
            "Property '{key}' is protected: the property protections do not let your roles {}              it",
            op.as_str()
        ))),
        None => Ok(()),
    }
}

fn formats(state: &AppState) -> Formats {
    Formats {
        disk: state.config.disk_formats.clone(),
        container: state.config.container_formats.clone(),
    }
}

/// `GET /v2/images`
pub async fn list_images(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, ApiError> {
    state.policy.list(&ctx)?;
    let pairs = parse_query_string(req.query_string())?;
    let limits = PageLimits {
        default: state.config.limit_param_default,
        max: state.config.api_limit_max,
    };
    let q = ListQuery::parse(&pairs, limits)?;
    let mut forward = pairs.clone();
    forward.retain(|(k, _)| k != "limit");
    forward.push(("limit".to_string(), q.limit.to_string()));
    let images = state
        .registry
        .list_images(&ctx, &urlencode(&forward))
        .await?;
    let without_marker: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "marker").collect();
    let first = if without_marker.is_empty() {
        "/v2/images".to_string()
    } else {
        format!("/v2/images?{}", urlencode(&without_marker))
    };
    let next = (q.limit > 0 && images.len() == q.limit as usize)
        .then(|| images.last())
        .flatten()
        .map(|last| {
            let mut next = without_marker;
            next.push(("marker".to_string(), last.id.to_string()));
            format!("/v2/images?{}", urlencode(&next))
        });
    let images: Vec<Image> = images
        .into_iter()
        .map(|i| readable(&state, &ctx, i))
        .collect();
    let body = view::ImageList {
        images: images
            .iter()
            .map(|i| view::image_for(&state, &ctx, i))
            .collect(),
        first,
        schema: "/v2/schemas/images",
        next,
    };
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /v2/images/{id}`
pub async fn show_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.policy.before_show(&ctx)?;
    let image = state.registry.get_image(&ctx, &image_id(&id)?).await?;
    state.policy.show(&ctx, &image)?;
    let image = readable(&state, &ctx, image);
    Ok(HttpResponse::Ok().json(view::image_for(&state, &ctx, &image)))
}

/// Turns a create request's JSON into a registry `NewImage`, with Glance's rules.
pub fn parse_create(body: &Value, formats: &Formats) -> Result<NewImage, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object",
        ));
    };
    let mut new = NewImage::default();
    let text = |key: &str, v: &Value| -> Result<Option<String>, ApiError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(ApiError::bad_request(format!(
                "Invalid value for {key}: {other} is not of type 'null' or 'string'"
            ))),
        }
    };
    let flag = |key: &str, v: &Value| -> Result<bool, ApiError> {
        v.as_bool().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid value for {key}: {v} is not of type 'boolean'"
            ))
        })
    };
    let min = |key: &str, v: &Value| -> Result<i32, ApiError> {
        let n = v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid value for {key}: {v} is not of type 'integer'"
            ))
        })?;
        Ok(glance_model::image::check_min(key, n)?)
    };
    for (key, v) in map {
        let k = key.as_str();
        if READ_ONLY_ATTRS.contains(&k) {
            return Err(ApiError::forbidden(format!(
                "Attribute '{k}' is read-only."
            )));
        }
        if RESERVED_ATTRS.contains(&k) || k == "locations" {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is reserved.")));
        }
        if k.starts_with(RESERVED_PREFIX) {
            return Err(ApiError::forbidden(format!(
                "Attribute '{k}' is reserved: the {RESERVED_PREFIX} namespace belongs to the service."
            )));
        }
        match k {
            "id" => {
                let raw = v.as_str().ok_or_else(|| {
                    ApiError::bad_request(format!("Invalid value for id: {v} is not a string"))
                })?;
                new.id = Some(raw.parse::<ImageId>().map_err(|_| {
                    ApiError::bad_request(format!("Invalid value for id: {raw:?} is not a UUID"))
                })?);
            }
            "name" => new.name = text(k, v)?,
            "owner" => new.owner = text(k, v)?,
            "visibility" => {
                let raw = v.as_str().unwrap_or_default();
                new.visibility = Some(raw.parse::<Visibility>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Invalid value for visibility: {v} is not one of 'community', 'public', 'private', 'shared'"
                    ))
                })?);
            }
            "protected" => new.protected = flag(k, v)?,
            "os_hidden" => new.os_hidden = flag(k, v)?,
            "min_disk" => new.min_disk = min(k, v)?,
            "min_ram" => new.min_ram = min(k, v)?,
            "disk_format" => {
                new.disk_format = text(k, v)?;
                if let Some(f) = &new.disk_format {
                    formats.check_disk(f)?;
                }
            }
            "container_format" => {
                new.container_format = text(k, v)?;
                if let Some(f) = &new.container_format {
                    formats.check_container(f)?;
                }
            }
            "tags" => {
                let Value::Array(items) = v else {
                    return Err(ApiError::bad_request(
                        "Invalid value for tags: expected an array of strings",
                    ));
                };
                for t in items {
                    let t = t.as_str().ok_or_else(|| {
                        ApiError::bad_request(format!("Invalid tag {t}: tags must be strings"))
                    })?;
                    if !new.tags.iter().any(|x| x == t) {
                        new.tags.push(t.to_string());
                    }
                }
            }
            _ => {
                check_property_key(k)?;
                // null is allowed where Glance's schema allows it, and leaves the property unset.
                if v.is_null() && is_uuid_property(k) {
                    continue;
                }
                let Value::String(s) = v else {
                    return Err(ApiError::bad_request(format!(
                        "Invalid value for property {k}: {v} is not of type 'string'"
                    )));
                };
                check_property_value(k, s)?;
                new.properties.insert(k.to_string(), s.clone());
            }
        }
    }
    new.validate()?;
    Ok(new)
}

/// `POST /v2/images`
pub async fn create_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    super::reject_nul(&body)?;
    let mut new = parse_create(&body, &formats(&state))?;
    // glance-api chooses the id (when the client did not), so that a create the registry
    // committed but whose answer was lost can be sent again and recognised by its id.
    new.id.get_or_insert_with(ImageId::new);
    state.policy.add_image(&ctx, new.owner.as_deref())?;
    if let Some(v @ (Visibility::Public | Visibility::Community)) = new.visibility {
        state.policy.new_visibility(&ctx, new.owner.as_deref(), v)?;
    }
    check_protected(&state, &ctx, Op::Create, new.properties.keys())?;
    crate::limits::enforce(&state, &ctx, &[(Resource::ImageCountTotal, 1)]).await?;
    let image = state.registry.create_image(&ctx, &new).await?;
    let image = readable(&state, &ctx, image);
    let mut res = HttpResponse::Created().json(view::image_for(&state, &ctx, &image));
    let base = state.config.public_endpoint.clone().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/v2/images/{}", image.id)) {
        res.headers_mut().insert(LOCATION, v);
    }
    // Interoperable import (issue 30): the methods a client may import this image with.
    if let Ok(v) = HeaderValue::from_str(&state.config.import.methods.join(",")) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("openstack-image-import-methods"),
            v,
        );
    }
    if state.stores.multi_store() {
        let ids: Vec<String> = state.stores.describe().into_iter().map(|s| s.id).collect();
        if let Ok(v) = HeaderValue::from_str(&ids.join(",")) {
            res.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("openstack-image-store-ids"),
                v,
            );
        }
    }
    Ok(res)
}

/// `PATCH /v2/images/{id}`
pub async fn update_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(media) = PatchMediaType::from_content_type(content_type) else {
        let mut res = error_response(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Unsupported Content-Type {content_type:?}; use {}",
                glance_model::patch::ACCEPT_PATCH
            ),
        );
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("accept-patch"),
            HeaderValue::from_static(glance_model::patch::ACCEPT_PATCH),
        );
        return Ok(res);
    };
    let id = image_id(&id)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    super::reject_nul(&doc)?;
    let changes = parse_patch(media, &doc)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::Modify, &ctx, &image)?;
    // The patch sees only what the caller may read (a hidden property is absent: replacing
    // or removing it is 409, adding it is a create). Unlike Glance 33, which then drops every
    // hidden property from the image, the registry keeps them: only the touched ones change.
    let image = readable(&state, &ctx, image);
    let (update, location_edits) = apply_patch_with_locations(
        &image,
        media,
        &changes,
        &ctx,
        &formats(&state),
        state.config.show_multiple_locations,
    )?;
    let (updated, created): (Vec<&String>, Vec<&String>) = update
        .set_properties
        .keys()
        .partition(|k| image.properties.contains_key(*k));
    check_protected(&state, &ctx, Op::Create, created)?;
    check_protected(&state, &ctx, Op::Update, updated)?;
    check_protected(&state, &ctx, Op::Delete, &update.remove_properties)?;
    if let Some(to) = update.visibility {
        state.policy.set_visibility(&ctx, &image, to)?;
    }
    if let Some(fmt) = update.disk_format.as_ref().and_then(Option::as_deref) {
        formats(&state).check_disk(fmt)?;
    }
    if let Some(fmt) = update.container_format.as_ref().and_then(Option::as_deref) {
        formats(&state).check_container(fmt)?;
    }
    // The location edits first (they check the stores and may be refused); then the rest.
    let image = if location_edits.is_empty() {
        image
    } else {
        let image =
            super::locations::patch_locations(&state, &ctx, &image, &location_edits).await?;
        readable(&state, &ctx, image)
    };
    let image = if update == ImageUpdate::default() {
        image
    } else {
        let image = state.registry.update_image(&ctx, &id, &update).await?;
        readable(&state, &ctx, image)
    };
    Ok(HttpResponse::Ok().json(view::image_for(&state, &ctx, &image)))
}

/// `DELETE /v2/images/{id}`: protected → 403; data removed from every store.
pub async fn delete_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = image_id(&id)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::Delete, &ctx, &image)?;
    if image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {id} is protected and cannot be deleted; set protected to false first"
        )));
    }
    // Data a store may refuse to delete while it is in use (rbd clones) goes first, as in
    // Glance: an "in use" refusal is a 409 and the image stays as it was.
    let locations = view::sorted_locations(&state, &image);
    for &(url, store) in &locations {
        if !state.stores.may_be_in_use(url, store) {
            continue;
        }
        match state.stores.delete(url, store).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {
                return Err(ApiError::conflict(format!(
                    "Image {id} cannot be deleted: its data is in use outside Glance ({e})"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    state.registry.delete_image(&ctx, &id).await?;
    // Staged data goes with its image (issue 30).
    if matches!(
        image.status,
        ImageStatus::Uploading | ImageStatus::Importing
    ) {
        state.importer.unstage(&id).await;
    }
    for (url, store) in locations {
        if state.stores.may_be_in_use(url, store) {
            continue;
        }
        match state.stores.delete(url, store).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => log::warn!("image {id} deleted but its data at {url} was not removed: {e}"),
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v2/images/{id}/actions/{deactivate|reactivate}`
pub async fn image_action(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, action) = path.into_inner();
    let id = image_id(&raw)?;
    let (change, from, to) = match action.as_str() {
        "deactivate" => (
            Change::Deactivate,
            ImageStatus::Active,
            ImageStatus::Deactivated,
        ),
        "reactivate" => (
            Change::Reactivate,
            ImageStatus::Deactivated,
            ImageStatus::Active,
        ),
        _ => return Err(ApiError::not_found(format!("No action named {action}"))),
    };
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(change, &ctx, &image)?;
    if image.status == to {
        // Glance treats repeating the action as a no-op.
        return Ok(HttpResponse::NoContent().finish());
    }
    if image.status != from {
        // Glance 33 answers 403 here (its domain refuses the move as forbidden), not 400.
        return Err(ApiError::forbidden(format!(
            "Not allowed to {action} an image in status '{}'",
            image.status.as_str()
        )));
    }
    let update = ImageUpdate {
        from_state: Some(from),
        status: Some(to),
        ..ImageUpdate::default()
    };
    state.registry.update_image(&ctx, &id, &update).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v2/images/{id}/tags/{tag}`
pub async fn add_tag(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, tag) = path.into_inner();
    let id = image_id(&raw)?;
    glance_model::image::check_tag(&tag)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::AddTag, &ctx, &image)?;
    state.registry.add_tag(&ctx, &id, &tag).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v2/images/{id}/tags/{tag}`
pub async fn delete_tag(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, tag) = path.into_inner();
    let id = image_id(&raw)?;
    let image = state.registry.get_image(&ctx, &id).await?;
    state.policy.change(Change::DeleteTag, &ctx, &image)?;
    state.registry.delete_tag(&ctx, &id, &tag).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/v1/images` and `/v1/images/{id}`, plus tags.

use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::filter::{ListQuery, PageLimits, parse_query_string};
use glance_model::wire::{ImageList, ImageUpdate, NewImage};

use super::{Caller, RouteError, image_id, replayed};
use crate::app::AppState;
use crate::db::{images, tags};

/// `GET /v1/images?<Glance's list parameters>`
pub async fn list_images(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, RouteError> {
    let pairs = parse_query_string(req.query_string())?;
    let limits = PageLimits {
        default: state.config.limit_param_default,
        max: state.config.api_limit_max,
    };
    let q = ListQuery::parse(&pairs, limits)?;
    if let Some(cache) = state.cache.clone()
        && let Some(generations) = cache.generations(&state.db).await
    {
        let page = state
            .db
            .run(move |c| images::list_page_cached(c, &ctx, &q, &cache, &generations))
            .await?;
        let mut body = Vec::with_capacity(16 + page.iter().map(|j| j.len() + 1).sum::<usize>());
        body.extend_from_slice(b"{\"images\":[");
        for (i, json) in page.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json);
        }
        body.extend_from_slice(b"]}");
        return Ok(json_body(body.into()));
    }
    let page = state
        .db
        .run(move |c| images::list_page(c, &ctx, &q))
        .await?;
    Ok(HttpResponse::Ok().json(ImageList { images: page }))
}

/// A 200 whose body is JSON already written.
fn json_body(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}

/// `POST /v1/images`. A resend by glance-api ([`replayed`]) of a create that committed is
/// answered with the image it made (see [`glance_model::replay`]).
pub async fn create_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Json<NewImage>,
) -> Result<HttpResponse, RouteError> {
    let new = body.into_inner();
    // Kept only for a resend, so a first sending pays nothing for it.
    let replay = replayed(&req).then(|| (new.clone(), ctx.clone()));
    let made = state.db.write(move |c| images::insert(c, &ctx, new)).await;
    let image = match (made, replay) {
        (Err(e), Some((new, ctx)))
            if e.kind() == glance_model::ErrorKind::Conflict && new.id.is_some() =>
        {
            let id = new.id.unwrap_or_default();
            let project = ctx.project_id.clone();
            let image = state.db.run(move |c| images::show(c, &ctx, &id)).await;
            match image {
                Ok(image)
                    if glance_model::replay::is_created_by(&image, &new, project.as_deref()) =>
                {
                    log::info!("image {id}: a resent create answered with the image it made");
                    // Answered from the database, and the record cache left as it is: the
                    // first sending's answer went through it already.
                    return Ok(HttpResponse::Created()
                        .insert_header(("location", format!("/v1/images/{id}")))
                        .json(image));
                }
                _ => return Err(e.into()),
            }
        }
        (made, _) => made?,
    };
    let location = ("location", format!("/v1/images/{}", image.id));
    match (&state.cache, serde_json::to_vec(&image)) {
        (Some(cache), Ok(json)) => {
            let json = bytes::Bytes::from(json);
            cache.keep_created(&image, json.clone());
            Ok(HttpResponse::Created()
                .insert_header(location)
                .content_type(actix_web::http::header::ContentType::json())
                .body(json))
        }
        _ => Ok(HttpResponse::Created().insert_header(location).json(image)),
    }
}

/// `GET /v1/images/{id}`
pub async fn show_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let cache = state.cache.clone();
    let generations = match &cache {
        Some(cache) => cache.generations(&state.db).await,
        None => None,
    };
    if let (Some(cache), Some(g)) = (&cache, &generations)
        && let Some(json) = cache.show(g, &ctx, &id)
    {
        return Ok(json_body(json));
    }
    let image = state
        .db
        .read_now(move |c| images::show(c, &ctx, &id))
        .await?;
    match (&cache, &generations, serde_json::to_vec(&image)) {
        (Some(cache), Some(g), Ok(json)) => {
            let json = bytes::Bytes::from(json);
            cache.keep(g, &image, json.clone());
            Ok(json_body(json))
        }
        _ => Ok(HttpResponse::Ok().json(image)),
    }
}

/// `PATCH /v1/images/{id}`
pub async fn update_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<ImageUpdate>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state
        .db
        .write(move |c| images::update(c, &ctx, &id, body.into_inner()))
        .await?;
    Ok(HttpResponse::Ok().json(image))
}

/// Query of `DELETE /v1/images/{id}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Keep the data for the scrubber (`pending_delete`).
    #[serde(default)]
    delayed: bool,
}

/// `DELETE /v1/images/{id}[?delayed=true]`: returns the deleted image.
pub async fn delete_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    q: web::Query<DeleteQuery>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let delayed = q.delayed;
    let cached = state
        .cache
        .as_ref()
        .and_then(|cache| cache.cached(&ctx, &id));
    let image = state
        .db
        .write(move |c| images::soft_delete(c, &ctx, &id, delayed, cached.as_ref()))
        .await?;
    if let Some(cache) = &state.cache {
        cache.forget(&id);
    }
    Ok(HttpResponse::Ok().json(image))
}

/// `PUT /v1/images/{id}/tags/{tag}`
pub async fn add_tag(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RouteError> {
    let (id, tag) = path.into_inner();
    let id = image_id(&id)?;
    state
        .db
        .write(move |c| tags::add(c, &ctx, &id, &tag))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /v1/images/{id}/tags/{tag}`; a resent removal ([`replayed`]) of a tag that is
/// gone is a success.
pub async fn delete_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RouteError> {
    let (id, tag) = path.into_inner();
    let id = image_id(&id)?;
    let (ctx2, id2) = (ctx.clone(), id);
    let removed = state
        .db
        .write(move |c| tags::remove(c, &ctx, &id, &tag))
        .await;
    match removed {
        // A resent removal finds the tag gone from an image the caller sees: the first
        // sending removed it.
        Err(e) if e.kind() == glance_model::ErrorKind::NotFound && replayed(&req) => {
            state
                .db
                .run(move |c| images::show(c, &ctx2, &id2))
                .await
                .map_err(|_| e)?;
        }
        other => other?,
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/usage`: bytes and images the caller's project owns.
pub async fn show_usage(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, RouteError> {
    let usage = state
        .db
        .run(move |c| images::usage(c, ctx.project_id.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(usage))
}

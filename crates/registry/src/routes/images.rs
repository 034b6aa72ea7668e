//! `/v1/images` and `/v1/images/{id}`, plus tags.

use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::filter::{ListQuery, PageLimits, parse_query_string};
use glance_model::wire::{ImageList, ImageUpdate, NewImage};

use super::{Caller, RouteError, image_id, quotas, replayed};
use crate::app::AppState;
use crate::catalog::Answer;

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
    Ok(match state.catalog.list(ctx, q).await? {
        Answer::Json(body) => json_body(HttpResponse::Ok(), body),
        Answer::Value(images) => HttpResponse::Ok().json(ImageList { images }),
    })
}

/// A response whose body is JSON already written.
fn json_body(mut res: actix_web::HttpResponseBuilder, body: bytes::Bytes) -> HttpResponse {
    res.content_type(actix_web::http::header::ContentType::json())
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
    let made = state
        .catalog
        .create(ctx, body.into_inner(), replayed(&req), quotas(&req)?)
        .await?;
    let mut res = HttpResponse::Created();
    res.insert_header(("location", format!("/v1/images/{}", made.id)));
    Ok(match made.body {
        Answer::Json(json) => json_body(res, json),
        Answer::Value(image) => res.json(image),
    })
}

/// `GET /v1/images/{id}`
pub async fn show_image(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    Ok(match state.catalog.show(ctx, id).await? {
        Answer::Json(json) => json_body(HttpResponse::Ok(), json),
        Answer::Value(image) => HttpResponse::Ok().json(image),
    })
}

/// `PATCH /v1/images/{id}`
pub async fn update_image(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    id: web::Path<String>,
    body: web::Json<ImageUpdate>,
) -> Result<HttpResponse, RouteError> {
    let id = image_id(&id)?;
    let image = state
        .catalog
        .update(ctx, id, body.into_inner(), quotas(&req)?)
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
    let image = state.catalog.delete(ctx, id, q.delayed).await?;
    Ok(HttpResponse::Ok().json(image))
}

/// `PUT /v1/images/{id}/tags/{tag}`
pub async fn add_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RouteError> {
    let (id, tag) = path.into_inner();
    let id = image_id(&id)?;
    state.catalog.add_tag(ctx, id, tag, quotas(&req)?).await?;
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
    state
        .catalog
        .remove_tag(ctx, id, tag, replayed(&req))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/usage`: bytes and images the caller's project owns.
pub async fn show_usage(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> Result<HttpResponse, RouteError> {
    let usage = state.catalog.usage(ctx).await?;
    Ok(HttpResponse::Ok().json(usage))
}

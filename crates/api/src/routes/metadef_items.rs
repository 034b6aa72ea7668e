//! `/v2/metadefs/namespaces/{ns}/{properties,objects,tags}[/{name}]`: what a namespace holds.
//! Each handler reads the namespace (404 when the caller may not see it), asks the policy
//! with it as target, then the registry.

use actix_web::{HttpRequest, HttpResponse, web};
use glance_model::metadef::{ObjectInput, TagInput, TagsInput};
use serde::Deserialize;
use serde_json::{Value, json};

use super::metadefs::{ShowParams, body};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::metadef_view as view;

type Res = Result<HttpResponse, ApiError>;
type Two = web::Path<(String, String)>;

/// Reads the namespace and checks `action` against it.
async fn allowed(
    s: &AppState,
    ctx: &glance_model::Context,
    ns: &str,
    action: &str,
) -> Result<(), ApiError> {
    let n = s.registry.get_namespace(ctx, ns).await?;
    s.policy.metadef(action, ctx, Some(&n.namespace))
}

/// `GET /v2/metadefs/namespaces/{ns}/properties`
pub async fn list_properties(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    allowed(&s, &ctx, &ns, "get_metadef_properties").await?;
    let props = s.registry.list_metadef_properties(&ctx, &ns).await?;
    let shown: serde_json::Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), view::property(k, v)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "properties": shown })))
}

/// The property definition in a body, checked: (name, definition).
fn property_body(raw: &web::Bytes) -> Result<(String, Value), ApiError> {
    let (doc, _): (Value, Value) = body(raw)?;
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("A property needs a 'name' string"))?
        .to_string();
    glance_model::metadef::check_property(&name, &doc)?;
    Ok((name, doc))
}

/// `POST /v2/metadefs/namespaces/{ns}/properties`
pub async fn create_property(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    raw: web::Bytes,
) -> Res {
    let (name, def) = property_body(&raw)?;
    allowed(&s, &ctx, &ns, "add_metadef_property").await?;
    let made = s.registry.create_metadef_property(&ctx, &ns, &def).await?;
    Ok(HttpResponse::Created().json(view::property(&name, &made)))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/properties`
pub async fn delete_properties(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    allowed(&s, &ctx, &ns, "delete_metadef_namespace").await?;
    s.registry
        .delete_in_namespace(&ctx, &ns, "/properties")
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/namespaces/{ns}/properties/{name}`; with `?resource_type=`, the name
/// carries that association's prefix, which is taken off to find the property.
pub async fn show_property(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    q: web::Query<ShowParams>,
) -> Res {
    let (ns, mut name) = p.into_inner();
    let n = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy
        .metadef("get_metadef_property", &ctx, Some(&n.namespace))?;
    let mut prefix = String::new();
    if let Some(rt) = &q.resource_type {
        prefix = n
            .resource_type_associations
            .iter()
            .find(|a| &a.name == rt)
            .and_then(|a| a.prefix.clone())
            .unwrap_or_default();
        name = name
            .strip_prefix(prefix.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Property {name} does not start with the prefix {prefix} of {rt}"
                ))
            })?;
    }
    let def = s.registry.get_metadef_property(&ctx, &ns, &name).await?;
    Ok(HttpResponse::Ok().json(view::property(&format!("{prefix}{name}"), &def)))
}

/// `PUT /v2/metadefs/namespaces/{ns}/properties/{name}`
pub async fn update_property(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    raw: web::Bytes,
) -> Res {
    let (ns, name) = p.into_inner();
    let (new_name, def) = property_body(&raw)?;
    allowed(&s, &ctx, &ns, "modify_metadef_property").await?;
    let made = s
        .registry
        .update_metadef_property(&ctx, &ns, &name, &def)
        .await?;
    Ok(HttpResponse::Ok().json(view::property(&new_name, &made)))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/properties/{name}`
pub async fn delete_property(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    allowed(&s, &ctx, &ns, "remove_metadef_property").await?;
    s.registry
        .delete_metadef_item(&ctx, &ns, "properties", &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/namespaces/{ns}/objects`
pub async fn list_objects(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    allowed(&s, &ctx, &ns, "get_metadef_objects").await?;
    let list = s.registry.list_metadef_objects(&ctx, &ns).await?;
    Ok(HttpResponse::Ok().json(json!({
        "objects": list.iter().map(|o| view::object(&ns, o, "")).collect::<Vec<_>>(),
        "schema": "v2/schemas/metadefs/objects",
    })))
}

/// An object in a body; the read-only fields a client sends back are ignored.
fn object_body(raw: &web::Bytes) -> Result<ObjectInput, ApiError> {
    let (mut doc, _): (Value, Value) = body(raw)?;
    if let Some(m) = doc.as_object_mut() {
        m.retain(|k, _| !matches!(k.as_str(), "created_at" | "updated_at" | "schema" | "self"));
    }
    let o: ObjectInput = serde_json::from_value(doc)
        .map_err(|e| ApiError::bad_request(format!("Invalid object: {e}")))?;
    o.validate()?;
    Ok(o)
}

/// `POST /v2/metadefs/namespaces/{ns}/objects`
pub async fn create_object(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    raw: web::Bytes,
) -> Res {
    let o = object_body(&raw)?;
    allowed(&s, &ctx, &ns, "add_metadef_object").await?;
    let made = s.registry.create_metadef_object(&ctx, &ns, &o).await?;
    Ok(HttpResponse::Created().json(view::object(&ns, &made, "")))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/objects`
pub async fn delete_objects(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    allowed(&s, &ctx, &ns, "delete_metadef_namespace").await?;
    s.registry
        .delete_in_namespace(&ctx, &ns, "/objects")
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/namespaces/{ns}/objects/{name}`
pub async fn show_object(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    allowed(&s, &ctx, &ns, "get_metadef_object").await?;
    let o = s.registry.get_metadef_object(&ctx, &ns, &name).await?;
    Ok(HttpResponse::Ok().json(view::object(&ns, &o, "")))
}

/// `PUT /v2/metadefs/namespaces/{ns}/objects/{name}`
pub async fn update_object(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    raw: web::Bytes,
) -> Res {
    let (ns, name) = p.into_inner();
    let o = object_body(&raw)?;
    allowed(&s, &ctx, &ns, "modify_metadef_object").await?;
    let made = s
        .registry
        .update_metadef_object(&ctx, &ns, &name, &o)
        .await?;
    Ok(HttpResponse::Ok().json(view::object(&ns, &made, "")))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/objects/{name}`
pub async fn delete_object(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    allowed(&s, &ctx, &ns, "delete_metadef_object").await?;
    s.registry
        .delete_metadef_item(&ctx, &ns, "objects", &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/namespaces/{ns}/tags`
pub async fn list_tags(s: web::Data<AppState>, Caller(ctx): Caller, ns: web::Path<String>) -> Res {
    allowed(&s, &ctx, &ns, "get_metadef_tags").await?;
    let list = s.registry.list_metadef_tags(&ctx, &ns).await?;
    Ok(HttpResponse::Ok().json(json!({ "tags": list.iter().map(view::tag).collect::<Vec<_>>() })))
}

/// Body of `POST /v2/metadefs/namespaces/{ns}/tags`.
#[derive(Debug, Deserialize)]
struct TagsBody {
    tags: Vec<TagInput>,
}

/// `POST /v2/metadefs/namespaces/{ns}/tags`: replaces the tags, or adds to them with
/// `X-Openstack-Append: true`.
pub async fn set_tags(
    req: HttpRequest,
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    raw: web::Bytes,
) -> Res {
    let (_, b): (_, TagsBody) = body(&raw)?;
    for t in &b.tags {
        glance_model::metadef::check_name("tag name", &t.name)?;
    }
    let append = req
        .headers()
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    allowed(&s, &ctx, &ns, "add_metadef_tags").await?;
    let input = TagsInput {
        tags: b.tags,
        append,
    };
    let made = s.registry.set_metadef_tags(&ctx, &ns, &input).await?;
    Ok(HttpResponse::Created()
        .json(json!({ "tags": made.iter().map(|t| json!({"name": t.name})).collect::<Vec<_>>() })))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/tags`
pub async fn delete_tags(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    allowed(&s, &ctx, &ns, "delete_metadef_tags").await?;
    s.registry.delete_in_namespace(&ctx, &ns, "/tags").await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/namespaces/{ns}/tags/{name}`
pub async fn show_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    allowed(&s, &ctx, &ns, "get_metadef_tag").await?;
    let t = s
        .registry
        .metadef_tag(&ctx, reqwest::Method::GET, &ns, &name)
        .await?;
    Ok(HttpResponse::Ok().json(view::tag(&t)))
}

/// `POST /v2/metadefs/namespaces/{ns}/tags/{name}` (no body)
pub async fn create_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    glance_model::metadef::check_name("tag name", &name)?;
    allowed(&s, &ctx, &ns, "add_metadef_tag").await?;
    let t = s
        .registry
        .metadef_tag(&ctx, reqwest::Method::POST, &ns, &name)
        .await?;
    Ok(HttpResponse::Created().json(view::tag(&t)))
}

/// Body of a tag rename.
#[derive(Debug, Deserialize)]
struct Rename {
    name: String,
}

/// `PUT /v2/metadefs/namespaces/{ns}/tags/{name}`: rename.
pub async fn update_tag(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    raw: web::Bytes,
) -> Res {
    let (ns, name) = p.into_inner();
    let (_, r): (_, Rename) = body(&raw)?;
    glance_model::metadef::check_name("tag name", &r.name)?;
    allowed(&s, &ctx, &ns, "modify_metadef_tag").await?;
    let t = s
        .registry
        .rename_metadef_tag(&ctx, &ns, &name, &r.name)
        .await?;
    Ok(HttpResponse::Ok().json(view::tag(&t)))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/tags/{name}`
pub async fn delete_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    allowed(&s, &ctx, &ns, "delete_metadef_tag").await?;
    s.registry
        .delete_metadef_item(&ctx, &ns, "tags", &name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

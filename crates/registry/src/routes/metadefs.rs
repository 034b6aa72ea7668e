//! `/v1/metadefs/...`: metadata definitions, one handler per registry route. Each calls one
//! [`crate::metadefs::Metadefs`] method (never the database).

use actix_web::{HttpResponse, web};
use glance_model::metadef::{
    AssociationInput, NamespaceInput, NamespaceQuery, NewNamespace, ObjectInput, TagsInput,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, RouteError};
use crate::app::AppState;
use crate::error::RegistryError;

type Res = Result<HttpResponse, RouteError>;
type Two = web::Path<(String, String)>;

/// `GET /v1/metadefs/namespaces`
pub async fn list_namespaces(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    q: web::Query<NamespaceQuery>,
) -> Res {
    let list = s.metadefs.list_namespaces(ctx, q.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "namespaces": list })))
}

/// `POST /v1/metadefs/namespaces`
pub async fn create_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Json<NewNamespace>,
) -> Res {
    let n = s.metadefs.create_namespace(ctx, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(n))
}

/// `GET /v1/metadefs/namespaces/{ns}`
pub async fn show_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let n = s.metadefs.show_namespace(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::Ok().json(n))
}

/// `PUT /v1/metadefs/namespaces/{ns}`
pub async fn update_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    body: web::Json<NamespaceInput>,
) -> Res {
    let n = s
        .metadefs
        .update_namespace(ctx, ns.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(n))
}

/// `DELETE /v1/metadefs/namespaces/{ns}`
pub async fn delete_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    s.metadefs.delete_namespace(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A property as sent: its definition with its `name`.
fn named(body: Value) -> Result<(String, Value), RouteError> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RegistryError::bad_request("a property needs a 'name' string"))?;
    Ok((name, body))
}

/// `GET /v1/metadefs/namespaces/{ns}/properties`
pub async fn list_properties(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let p = s.metadefs.properties(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "properties": p })))
}

/// `POST /v1/metadefs/namespaces/{ns}/properties`
pub async fn create_property(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    body: web::Json<Value>,
) -> Res {
    let (name, def) = named(body.into_inner())?;
    let p = s
        .metadefs
        .add_property(ctx, ns.into_inner(), name, def)
        .await?;
    Ok(HttpResponse::Created().json(p))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/properties`
pub async fn delete_properties(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    s.metadefs.delete_properties(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/namespaces/{ns}/properties/{name}`
pub async fn show_property(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    let def = s.metadefs.property(ctx, ns, name).await?;
    Ok(HttpResponse::Ok().json(def))
}

/// `PUT /v1/metadefs/namespaces/{ns}/properties/{name}` (the body's name renames it)
pub async fn update_property(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    body: web::Json<Value>,
) -> Res {
    let (ns, name) = p.into_inner();
    let (new_name, def) = named(body.into_inner())?;
    let def = s
        .metadefs
        .update_property(ctx, ns, name, new_name, def)
        .await?;
    Ok(HttpResponse::Ok().json(def))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/properties/{name}`
pub async fn delete_property(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    s.metadefs.delete_property(ctx, ns, name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/namespaces/{ns}/objects`
pub async fn list_objects(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let o = s.metadefs.objects(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "objects": o })))
}

/// `POST /v1/metadefs/namespaces/{ns}/objects`
pub async fn create_object(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    body: web::Json<ObjectInput>,
) -> Res {
    let o = s
        .metadefs
        .add_object(ctx, ns.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(o))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/objects`
pub async fn delete_objects(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    s.metadefs.delete_objects(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/namespaces/{ns}/objects/{name}`
pub async fn show_object(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    let o = s.metadefs.object(ctx, ns, name).await?;
    Ok(HttpResponse::Ok().json(o))
}

/// `PUT /v1/metadefs/namespaces/{ns}/objects/{name}`
pub async fn update_object(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    body: web::Json<ObjectInput>,
) -> Res {
    let (ns, name) = p.into_inner();
    let o = s
        .metadefs
        .update_object(ctx, ns, name, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(o))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/objects/{name}`
pub async fn delete_object(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    s.metadefs.delete_object(ctx, ns, name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/namespaces/{ns}/tags`
pub async fn list_tags(s: web::Data<AppState>, Caller(ctx): Caller, ns: web::Path<String>) -> Res {
    let t = s.metadefs.tags(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "tags": t })))
}

/// `POST /v1/metadefs/namespaces/{ns}/tags`: replace all, or add (`append`).
pub async fn set_tags(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    body: web::Json<TagsInput>,
) -> Res {
    let t = s
        .metadefs
        .set_tags(ctx, ns.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(json!({ "tags": t })))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/tags`
pub async fn delete_tags(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    s.metadefs.delete_tags(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/namespaces/{ns}/tags/{name}`
pub async fn show_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    let t = s.metadefs.tag(ctx, ns, name).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `POST /v1/metadefs/namespaces/{ns}/tags/{name}`
pub async fn create_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    let t = s.metadefs.add_tag(ctx, ns, name).await?;
    Ok(HttpResponse::Created().json(t))
}

/// Body of a tag rename.
#[derive(Debug, Deserialize)]
pub struct Rename {
    name: String,
}

/// `PUT /v1/metadefs/namespaces/{ns}/tags/{name}`: rename.
pub async fn update_tag(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: Two,
    body: web::Json<Rename>,
) -> Res {
    let (ns, name) = p.into_inner();
    let t = s
        .metadefs
        .rename_tag(ctx, ns, name, body.into_inner().name)
        .await?;
    Ok(HttpResponse::Ok().json(t))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/tags/{name}`
pub async fn delete_tag(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, name) = p.into_inner();
    s.metadefs.delete_tag(ctx, ns, name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/metadefs/resource_types`
pub async fn list_resource_types(s: web::Data<AppState>, Caller(_ctx): Caller) -> Res {
    let r = s.metadefs.resource_types().await?;
    Ok(HttpResponse::Ok().json(json!({ "resource_types": r })))
}

/// `GET /v1/metadefs/namespaces/{ns}/resource_types`
pub async fn list_associations(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let a = s.metadefs.associations(ctx, ns.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({ "resource_type_associations": a })))
}

/// `POST /v1/metadefs/namespaces/{ns}/resource_types`
pub async fn create_association(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    body: web::Json<AssociationInput>,
) -> Res {
    let a = s
        .metadefs
        .associate(ctx, ns.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(a))
}

/// `DELETE /v1/metadefs/namespaces/{ns}/resource_types/{rt}`
pub async fn delete_association(s: web::Data<AppState>, Caller(ctx): Caller, p: Two) -> Res {
    let (ns, rt) = p.into_inner();
    s.metadefs.dissociate(ctx, ns, rt).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! `/v2/metadefs/namespaces[/{ns}]` and `/v2/metadefs/resource_types`, and the namespace's
//! resource-type associations: metadata definitions as Glance serves them. Each handler asks
//! the policy (`*_metadef_*` rules, the namespace as target) and the registry; the item routes
//! (properties, objects, tags) are in [`super::metadef_items`], the wire shapes in
//! [`crate::metadef_view`].

use actix_web::{HttpResponse, web};
use glance_model::metadef::{AssociationInput, NamespaceInput, NamespaceQuery, NewNamespace};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::metadef_view as view;

type Res = Result<HttpResponse, ApiError>;

/// Parses a JSON body, refusing NUL characters (400 either way).
pub(crate) fn body<T: serde::de::DeserializeOwned>(
    raw: &web::Bytes,
) -> Result<(Value, T), ApiError> {
    let doc: Value = serde_json::from_slice(raw)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    super::reject_nul(&doc)?;
    let typed = serde_json::from_value(doc.clone())
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    Ok((doc, typed))
}

/// Query of `GET /v2/metadefs/namespaces`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    marker: Option<String>,
    sort_key: Option<String>,
    sort_dir: Option<String>,
    visibility: Option<String>,
    resource_types: Option<String>,
}

/// `GET /v2/metadefs/namespaces`
pub async fn list_namespaces(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: web::Query<ListParams>,
) -> Res {
    s.policy.metadef("get_metadef_namespaces", &ctx, None)?;
    let p = p.into_inner();
    let limit = match &p.limit {
        None => s.config.limit_param_default as usize,
        Some(l) => l.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request(format!("limit must be a positive integer, not {l}"))
        })?,
    }
    .min(s.config.api_limit_max as usize);
    let q = NamespaceQuery {
        limit: Some(limit + 1),
        marker: p.marker.clone(),
        sort_key: p.sort_key.clone(),
        sort_dir: p.sort_dir.clone(),
        visibility: p.visibility.clone(),
        resource_types: p.resource_types.clone(),
    };
    q.validate()?;
    let mut page = s.registry.list_namespaces(&ctx, &q).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let shown: Vec<Value> = page
        .iter()
        .filter(|n| s.policy.can_see_namespace(&ctx, &n.namespace))
        .map(|n| {
            let mut v = view::namespace(&n.namespace);
            if !n.resource_type_associations.is_empty() {
                v["resource_type_associations"] = n
                    .resource_type_associations
                    .iter()
                    .map(view::association)
                    .collect();
            }
            v
        })
        .collect();
    let mut out = json!({
        "namespaces": shown,
        "first": "/v2/metadefs/namespaces",
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if more && let Some(last) = page.last() {
        let mut next = vec![
            ("marker", last.namespace.namespace.clone()),
            ("limit", limit.to_string()),
        ];
        for (k, v) in [
            ("sort_key", &p.sort_key),
            ("sort_dir", &p.sort_dir),
            ("visibility", &p.visibility),
            ("resource_types", &p.resource_types),
        ] {
            if let Some(v) = v {
                next.push((k, v.clone()));
            }
        }
        let query = serde_urlencoded::to_string(&next).unwrap_or_default();
        out["next"] = json!(format!("/v2/metadefs/namespaces?{query}"));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// What the `Location` of a created namespace escapes beyond non-ASCII bytes.
const LOCATION_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `POST /v2/metadefs/namespaces`
pub async fn create_namespace(s: web::Data<AppState>, Caller(ctx): Caller, raw: web::Bytes) -> Res {
    let (_, new): (_, NewNamespace) = body(&raw)?;
    new.validate()?;
    s.policy.metadef("add_metadef_namespace", &ctx, None)?;
    let n = s.registry.create_namespace(&ctx, &new).await?;
    // A header value must be visible ASCII: the name is percent-encoded there (any byte
    // outside ASCII, controls and the characters a path cannot hold as they are).
    let location = percent_encoding::utf8_percent_encode(
        &view::namespace_href(&n.namespace.namespace),
        LOCATION_ESCAPED,
    )
    .to_string();
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(view::full_namespace(&n, None)))
}

/// Query of a namespace or property show.
#[derive(Debug, Deserialize)]
pub struct ShowParams {
    /// Show property names with this resource type's prefix.
    pub resource_type: Option<String>,
}

/// `GET /v2/metadefs/namespaces/{ns}`
pub async fn show_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    p: web::Query<ShowParams>,
) -> Res {
    let n = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy
        .metadef("get_metadef_namespace", &ctx, Some(&n.namespace))?;
    Ok(HttpResponse::Ok().json(view::full_namespace(&n, p.resource_type.as_deref())))
}

/// Fields a client may send back from a namespace it read; a replace ignores them.
const READ_ONLY: [&str; 8] = [
    "created_at",
    "updated_at",
    "schema",
    "self",
    "resource_type_associations",
    "properties",
    "objects",
    "tags",
];

/// `PUT /v2/metadefs/namespaces/{ns}`
pub async fn update_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    raw: web::Bytes,
) -> Res {
    let (mut doc, _): (Value, Value) = body(&raw)?;
    if let Some(map) = doc.as_object_mut() {
        map.retain(|k, _| !READ_ONLY.contains(&k.as_str()));
    }
    let input: NamespaceInput = serde_json::from_value(doc)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    input.validate()?;
    let old = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy
        .metadef("modify_metadef_namespace", &ctx, Some(&old.namespace))?;
    let n = s.registry.update_namespace(&ctx, &ns, &input).await?;
    Ok(HttpResponse::Ok().json(view::namespace(&n)))
}

/// `DELETE /v2/metadefs/namespaces/{ns}`
pub async fn delete_namespace(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let old = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy
        .metadef("delete_metadef_namespace", &ctx, Some(&old.namespace))?;
    s.registry.delete_in_namespace(&ctx, &ns, "").await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/metadefs/resource_types`
pub async fn list_resource_types(s: web::Data<AppState>, Caller(ctx): Caller) -> Res {
    s.policy
        .metadef("list_metadef_resource_types", &ctx, None)?;
    let list = s.registry.list_resource_types(&ctx).await?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_types": list.iter().map(view::resource_type).collect::<Vec<_>>(),
    })))
}

/// `GET /v2/metadefs/namespaces/{ns}/resource_types`
pub async fn list_associations(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
) -> Res {
    let n = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy
        .metadef("get_metadef_resource_type", &ctx, Some(&n.namespace))?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_type_associations":
            n.resource_type_associations.iter().map(view::association).collect::<Vec<_>>(),
    })))
}

/// `POST /v2/metadefs/namespaces/{ns}/resource_types`
pub async fn create_association(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    ns: web::Path<String>,
    raw: web::Bytes,
) -> Res {
    let (mut doc, _): (Value, Value) = body(&raw)?;
    if let Some(map) = doc.as_object_mut() {
        map.retain(|k, _| !matches!(k.as_str(), "created_at" | "updated_at"));
    }
    let a: AssociationInput = serde_json::from_value(doc)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
    a.validate()?;
    let n = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy.metadef(
        "add_metadef_resource_type_association",
        &ctx,
        Some(&n.namespace),
    )?;
    let made = s.registry.create_association(&ctx, &ns, &a).await?;
    Ok(HttpResponse::Created().json(view::association(&made)))
}

/// `DELETE /v2/metadefs/namespaces/{ns}/resource_types/{rt}`
pub async fn delete_association(
    s: web::Data<AppState>,
    Caller(ctx): Caller,
    p: web::Path<(String, String)>,
) -> Res {
    let (ns, rt) = p.into_inner();
    let n = s.registry.get_namespace(&ctx, &ns).await?;
    s.policy.metadef(
        "remove_metadef_resource_type_association",
        &ctx,
        Some(&n.namespace),
    )?;
    s.registry.delete_association(&ctx, &ns, &rt).await?;
    Ok(HttpResponse::NoContent().finish())
}

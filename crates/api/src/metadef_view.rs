//! How metadata definitions look on the wire of Images API v2: Glance's field sets, fields
//! without a value left out, `self`/`schema` links, ISO times.

use glance_model::metadef::{Association, FullNamespace, Namespace, Object, ResourceType, Tag};
use glance_model::time::isotime;
use serde_json::{Map, Value, json};

/// `/v2/metadefs/namespaces/{ns}`.
pub fn namespace_href(ns: &str) -> String {
    format!("/v2/metadefs/namespaces/{ns}")
}

fn times(
    m: &mut Map<String, Value>,
    created: &chrono::NaiveDateTime,
    updated: Option<&chrono::NaiveDateTime>,
) {
    m.insert("created_at".into(), json!(isotime(created)));
    if let Some(u) = updated {
        m.insert("updated_at".into(), json!(isotime(u)));
    }
}

/// A namespace's own attributes.
pub fn namespace(n: &Namespace) -> Value {
    let mut m = Map::new();
    m.insert("namespace".into(), json!(n.namespace));
    if let Some(d) = &n.display_name {
        m.insert("display_name".into(), json!(d));
    }
    if let Some(d) = &n.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("visibility".into(), json!(n.visibility));
    m.insert("protected".into(), json!(n.protected));
    m.insert("owner".into(), json!(n.owner));
    times(&mut m, &n.created_at, n.updated_at.as_ref());
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    m.insert("self".into(), json!(namespace_href(&n.namespace)));
    Value::Object(m)
}

/// An association.
pub fn association(a: &Association) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    if let Some(p) = &a.prefix {
        m.insert("prefix".into(), json!(p));
    }
    if let Some(t) = &a.properties_target {
        m.insert("properties_target".into(), json!(t));
    }
    times(&mut m, &a.created_at, a.updated_at.as_ref());
    Value::Object(m)
}

/// A resource type.
pub fn resource_type(r: &ResourceType) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    times(&mut m, &r.created_at, r.updated_at.as_ref());
    Value::Object(m)
}

/// A tag.
pub fn tag(t: &Tag) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(t.name));
    times(&mut m, &t.created_at, t.updated_at.as_ref());
    Value::Object(m)
}

/// A property: its definition with its name.
pub fn property(name: &str, def: &Value) -> Value {
    let mut m = def.as_object().cloned().unwrap_or_default();
    m.insert("name".into(), json!(name));
    Value::Object(m)
}

fn prefixed(props: &std::collections::BTreeMap<String, Value>, prefix: &str) -> Map<String, Value> {
    props
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect()
}

/// An object; `ns` gives its `self` link, `prefix` prefixes its property names.
pub fn object(ns: &str, o: &Object, prefix: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(o.name));
    if let Some(d) = &o.description {
        m.insert("description".into(), json!(d));
    }
    if !o.required.is_empty() {
        m.insert("required".into(), json!(o.required));
    }
    if !o.properties.is_empty() {
        m.insert(
            "properties".into(),
            Value::Object(prefixed(&o.properties, prefix)),
        );
    }
    times(&mut m, &o.created_at, o.updated_at.as_ref());
    m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    m.insert(
        "self".into(),
        json!(format!("{}/objects/{}", namespace_href(ns), o.name)),
    );
    Value::Object(m)
}

/// A namespace with everything in it; with a resource type, the property names carry that
/// association's prefix (none when the namespace is not associated with it).
pub fn full_namespace(n: &FullNamespace, resource_type: Option<&str>) -> Value {
    let prefix = resource_type
        .and_then(|rt| n.resource_type_associations.iter().find(|a| a.name == rt))
        .and_then(|a| a.prefix.clone())
        .unwrap_or_default();
    let mut v = namespace(&n.namespace);
    let ns = &n.namespace.namespace;
    if !n.resource_type_associations.is_empty() {
        v["resource_type_associations"] = n
            .resource_type_associations
            .iter()
            .map(association)
            .collect();
    }
    if !n.properties.is_empty() {
        v["properties"] = Value::Object(prefixed(&n.properties, &prefix));
    }
    if !n.objects.is_empty() {
        v["objects"] = n.objects.iter().map(|o| object(ns, o, &prefix)).collect();
    }
    if !n.tags.is_empty() {
        v["tags"] = n.tags.iter().map(|t| json!({ "name": t.name })).collect();
    }
    v
}

//! Metadata definitions (metadefs): namespaces and what they hold (properties, objects, tags,
//! resource-type associations), with the rules for a valid definition. Shared by glance-api
//! (validation of request bodies, views), glance-registry (storage) and glance-manage (the
//! catalogue files). No I/O, no HTTP.
//!
//! A property is kept as its JSON-schema fragment (everything but its name), as Glance keeps it
//! in `metadef_properties.json_schema`; an object keeps its properties the same way in
//! `metadef_objects.json_schema`.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::error::{ErrorKind, ModelError};

/// Longest namespace, property, object, tag, resource-type name, prefix or target (the
/// columns are `VARCHAR(80)`).
pub const MAX_NAME_LEN: usize = 80;
/// Longest namespace description Glance's schema accepts.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Longest owner (`VARCHAR(255)`).
pub const MAX_OWNER_LEN: usize = 255;
/// The property types a definition may name.
pub const PROPERTY_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

fn bad(message: impl Into<String>) -> ModelError {
    ModelError::new(ErrorKind::BadRequest, message)
}

/// Checks a name-like field: not empty, at most [`MAX_NAME_LEN`] characters, no NUL.
pub fn check_name(field: &str, value: &str) -> Result<(), ModelError> {
    if value.trim().is_empty() {
        return Err(bad(format!("{field} must not be empty")));
    }
    check_text(field, value, MAX_NAME_LEN)
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ModelError> {
    if value.chars().count() > max {
        return Err(bad(format!(
            "{field} is longer than {max} characters: '{}…'",
            value.chars().take(20).collect::<String>()
        )));
    }
    if value.contains('\0') {
        return Err(bad(format!("{field} must not contain a NUL character")));
    }
    Ok(())
}

/// Who may see a namespace: an admin, its owner's project, or anyone when it is public.
pub fn visible(ctx: &Context, owner: &str, visibility: &str) -> bool {
    ctx.is_admin || visibility == "public" || ctx.project_id.as_deref() == Some(owner)
}

/// A namespace's own attributes, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Unique name.
    pub namespace: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: String,
    /// A protected namespace cannot be deleted.
    pub protected: bool,
    /// Owning project.
    pub owner: String,
    /// Creation time.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(with = "crate::time::iso_opt", default)]
    pub updated_at: Option<NaiveDateTime>,
}

/// A namespace with its associations, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedNamespace {
    /// The namespace.
    #[serde(flatten)]
    pub namespace: Namespace,
    /// Its resource-type associations.
    #[serde(default)]
    pub resource_type_associations: Vec<Association>,
}

/// A namespace with everything it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullNamespace {
    /// The namespace.
    #[serde(flatten)]
    pub namespace: Namespace,
    /// Its resource-type associations.
    #[serde(default)]
    pub resource_type_associations: Vec<Association>,
    /// Its properties: name → schema fragment.
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    /// Its objects.
    #[serde(default)]
    pub objects: Vec<Object>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// An association of a namespace with a resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    /// The resource type's name (`OS::Glance::Image`, ...).
    pub name: String,
    /// Prefix of the namespace's property names on that resource.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Where on the resource the properties go (`image`, `snapshot`, ...).
    #[serde(default)]
    pub properties_target: Option<String>,
    /// Creation time.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(with = "crate::time::iso_opt", default)]
    pub updated_at: Option<NaiveDateTime>,
}

/// A resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// Its name.
    pub name: String,
    /// Creation time.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(with = "crate::time::iso_opt", default)]
    pub updated_at: Option<NaiveDateTime>,
}

/// An object: a named group of properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Name, unique in its namespace.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Names of the properties that must be set.
    #[serde(default)]
    pub required: Vec<String>,
    /// Its properties: name → schema fragment.
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    /// Creation time.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(with = "crate::time::iso_opt", default)]
    pub updated_at: Option<NaiveDateTime>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Name, unique in its namespace.
    pub name: String,
    /// Creation time.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last change.
    #[serde(with = "crate::time::iso_opt", default)]
    pub updated_at: Option<NaiveDateTime>,
}

/// A namespace's attributes as a caller gives them (create and full replace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceInput {
    /// Unique name.
    pub namespace: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `public` or `private` (default `private`).
    #[serde(default)]
    pub visibility: Option<String>,
    /// Protected flag (default false).
    #[serde(default)]
    pub protected: Option<bool>,
    /// Owning project (default: the caller's).
    #[serde(default)]
    pub owner: Option<String>,
}

impl NamespaceInput {
    /// Checks lengths and the visibility value.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_name("namespace", &self.namespace)?;
        if let Some(d) = &self.display_name {
            check_text("display_name", d, MAX_NAME_LEN)?;
        }
        if let Some(d) = &self.description {
            check_text("description", d, MAX_DESCRIPTION_LEN)?;
        }
        if let Some(v) = &self.visibility
            && v != "public"
            && v != "private"
        {
            return Err(bad(format!(
                "visibility must be 'public' or 'private', not '{v}'"
            )));
        }
        if let Some(o) = &self.owner {
            check_text("owner", o, MAX_OWNER_LEN)?;
        }
        Ok(())
    }
}

/// A namespace to create, with its initial contents. (No `deny_unknown_fields` here: serde
/// cannot combine it with `flatten`; the flattened [`NamespaceInput`] refuses the leftovers.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewNamespace {
    /// Its attributes.
    #[serde(flatten)]
    pub input: NamespaceInput,
    /// Associations to make.
    #[serde(default)]
    pub resource_type_associations: Vec<AssociationInput>,
    /// Properties: name → definition (without its name).
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    /// Objects.
    #[serde(default)]
    pub objects: Vec<ObjectInput>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

impl NewNamespace {
    /// Checks the namespace and everything in it.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.input.validate()?;
        for a in &self.resource_type_associations {
            a.validate()?;
        }
        for (name, def) in &self.properties {
            check_property(name, def)?;
        }
        for o in &self.objects {
            o.validate()?;
        }
        for t in &self.tags {
            check_name("tag name", &t.name)?;
        }
        Ok(())
    }
}

/// An association to make.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssociationInput {
    /// The resource type's name.
    pub name: String,
    /// Prefix of property names.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Where on the resource the properties go.
    #[serde(default)]
    pub properties_target: Option<String>,
}

impl AssociationInput {
    /// Checks lengths.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_name("resource type name", &self.name)?;
        if let Some(p) = &self.prefix {
            check_text("prefix", p, MAX_NAME_LEN)?;
        }
        if let Some(t) = &self.properties_target {
            check_text("properties_target", t, MAX_NAME_LEN)?;
        }
        Ok(())
    }
}

/// An object as a caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectInput {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Required property names.
    #[serde(default)]
    pub required: Vec<String>,
    /// Properties: name → definition.
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
}

impl ObjectInput {
    /// Checks the name and each property definition.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_name("object name", &self.name)?;
        if let Some(d) = &self.description {
            check_text("description", d, 65_535)?;
        }
        for (name, def) in &self.properties {
            check_property(name, def)?;
        }
        Ok(())
    }
}

/// A tag as a caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagInput {
    /// Name.
    pub name: String,
}

/// Keys a property definition may hold, besides `name`, and what each must be.
const PROPERTY_KEYS: &[(&str, Kind)] = &[
    ("title", Kind::Str),
    ("type", Kind::Str),
    ("description", Kind::Str),
    ("default", Kind::Any),
    ("enum", Kind::Array),
    ("minimum", Kind::Num),
    ("maximum", Kind::Num),
    ("minLength", Kind::Count),
    ("maxLength", Kind::Count),
    ("pattern", Kind::Str),
    ("items", Kind::Obj),
    ("minItems", Kind::Count),
    ("maxItems", Kind::Count),
    ("uniqueItems", Kind::Bool),
    ("additionalItems", Kind::Bool),
    ("readonly", Kind::Bool),
    ("operators", Kind::Array),
    ("confidential", Kind::Bool),
];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Num,
    Count,
    Bool,
    Array,
    Obj,
    Any,
}

impl Kind {
    fn fits(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Num => v.is_number(),
            Kind::Count => v.as_u64().is_some(),
            Kind::Bool => v.is_boolean(),
            Kind::Array => v.is_array(),
            Kind::Obj => v.is_object(),
            Kind::Any => true,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Num => "a number",
            Kind::Count => "a non-negative integer",
            Kind::Bool => "a boolean",
            Kind::Array => "an array",
            Kind::Obj => "an object",
            Kind::Any => "anything",
        }
    }
}

/// Checks a property definition against the JSON-schema subset metadefs accept: an object
/// with a `title` and a `type` among [`PROPERTY_TYPES`], only known keys, each of the right
/// JSON type, `minimum ≤ maximum`, `minLength ≤ maxLength`, `items` with a valid `type`, and
/// a `pattern` that is at least a non-empty string. A `name` key, when present, must equal
/// `name`.
pub fn check_property(name: &str, def: &Value) -> Result<(), ModelError> {
    check_name("property name", name)?;
    let Some(map) = def.as_object() else {
        return Err(bad(format!("property {name} must be a JSON object")));
    };
    for (key, value) in map {
        if key == "name" {
            if value.as_str() != Some(name) {
                return Err(bad(format!(
                    "property {name}: its 'name' field says otherwise"
                )));
            }
            continue;
        }
        let Some((_, kind)) = PROPERTY_KEYS.iter().find(|(k, _)| k == key) else {
            return Err(bad(format!(
                "property {name}: '{key}' is not a property attribute"
            )));
        };
        if !kind.fits(value) {
            return Err(bad(format!(
                "property {name}: '{key}' must be {}",
                kind.what()
            )));
        }
    }
    for required in ["title", "type"] {
        if !map.contains_key(required) {
            return Err(bad(format!("property {name}: '{required}' is required")));
        }
    }
    check_type(name, map.get("type"))?;
    if let Some(items) = map.get("items").and_then(Value::as_object) {
        if let Some(t) = items.get("type") {
            check_type(name, Some(t))?;
        }
        if let Some(e) = items.get("enum")
            && !e.is_array()
        {
            return Err(bad(format!(
                "property {name}: 'items.enum' must be an array"
            )));
        }
    }
    ordered(name, map, "minimum", "maximum")?;
    ordered(name, map, "minLength", "maxLength")?;
    ordered(name, map, "minItems", "maxItems")
}

fn check_type(name: &str, t: Option<&Value>) -> Result<(), ModelError> {
    match t.and_then(Value::as_str) {
        Some(t) if PROPERTY_TYPES.contains(&t) => Ok(()),
        _ => Err(bad(format!(
            "property {name}: 'type' must be one of {}",
            PROPERTY_TYPES.join(", ")
        ))),
    }
}

fn ordered(name: &str, map: &Map<String, Value>, lo: &str, hi: &str) -> Result<(), ModelError> {
    if let (Some(a), Some(b)) = (
        map.get(lo).and_then(Value::as_f64),
        map.get(hi).and_then(Value::as_f64),
    ) && a > b
    {
        return Err(bad(format!("property {name}: '{lo}' is above '{hi}'")));
    }
    Ok(())
}

/// A property's schema fragment as stored: its definition without `name`.
pub fn stored_schema(def: &Value) -> Value {
    let mut map = def.as_object().cloned().unwrap_or_default();
    map.remove("name");
    Value::Object(map)
}

/// Namespace list query, as the registry takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceQuery {
    /// Page size.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Last namespace of the previous page.
    #[serde(default)]
    pub marker: Option<String>,
    /// `created_at` (default), `updated_at`, `namespace` or `display_name`.
    #[serde(default)]
    pub sort_key: Option<String>,
    /// `asc` or `desc` (default).
    #[serde(default)]
    pub sort_dir: Option<String>,
    /// `public` or `private`.
    #[serde(default)]
    pub visibility: Option<String>,
    /// Comma-separated resource-type names: only namespaces associated with one of them.
    #[serde(default)]
    pub resource_types: Option<String>,
}

/// The sort keys a namespace list accepts.
pub const NAMESPACE_SORT_KEYS: [&str; 4] =
    ["created_at", "updated_at", "namespace", "display_name"];

impl NamespaceQuery {
    /// Checks the sort key, direction and visibility.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(k) = &self.sort_key
            && !NAMESPACE_SORT_KEYS.contains(&k.as_str())
        {
            return Err(bad(format!(
                "Invalid sort key: {k}. It must be one of: {}",
                NAMESPACE_SORT_KEYS.join(", ")
            )));
        }
        if let Some(d) = &self.sort_dir
            && d != "asc"
            && d != "desc"
        {
            return Err(bad(format!(
                "Invalid sort direction: {d}. It must be one of: asc, desc"
            )));
        }
        if let Some(v) = &self.visibility
            && v != "public"
            && v != "private"
        {
            return Err(bad(format!(
                "Invalid visibility value: {v}. It must be public or private"
            )));
        }
        if self.limit == Some(0) {
            return Err(bad("limit must be a positive integer"));
        }
        Ok(())
    }
}

/// Body of the registry's tag replacement: the new tags, and whether they add to the old.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsInput {
    /// Tags to set.
    pub tags: Vec<TagInput>,
    /// Keep the existing tags (`X-Openstack-Append: true`).
    #[serde(default)]
    pub append: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_property_needs_title_and_a_known_type() {
        assert!(check_property("p", &json!({"title": "P", "type": "string"})).is_ok());
        assert!(check_property("p", &json!({"type": "string"})).is_err());
        assert!(check_property("p", &json!({"title": "P"})).is_err());
        assert!(check_property("p", &json!({"title": "P", "type": "text"})).is_err());
        assert!(check_property("p", &json!("string")).is_err());
    }

    #[test]
    fn a_property_refuses_unknown_keys_and_wrong_value_types() {
        let ok = json!({"title": "P", "type": "integer", "minimum": 1, "maximum": 4});
        assert!(check_property("p", &ok).is_ok());
        for bad in [
            json!({"title": "P", "type": "integer", "colour": 1}),
            json!({"title": "P", "type": "integer", "minimum": "1"}),
            json!({"title": "P", "type": "integer", "minimum": 5, "maximum": 4}),
            json!({"title": "P", "type": "string", "maxLength": -1}),
            json!({"title": "P", "type": "array", "items": {"type": "colour"}}),
            json!({"title": "P", "type": "string", "enum": "a"}),
            json!({"title": "P", "type": "string", "name": "q"}),
        ] {
            assert!(check_property("p", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespace_input_checks_lengths_and_visibility() {
        let mut n = NamespaceInput {
            namespace: "OS::Test".into(),
            ..Default::default()
        };
        assert!(n.validate().is_ok());
        n.visibility = Some("shared".into());
        assert!(n.validate().is_err());
        n.visibility = Some("public".into());
        n.namespace = "x".repeat(81);
        assert!(n.validate().is_err());
        n.namespace = "ok".into();
        n.description = Some("d".repeat(501));
        assert!(n.validate().is_err());
    }

    #[test]
    fn visibility_of_a_namespace() {
        let reader =
            Context::authenticated(None, Some("p1".into()), vec!["reader".into()], "r".into());
        assert!(visible(&reader, "p1", "private"));
        assert!(visible(&reader, "p2", "public"));
        assert!(!visible(&reader, "p2", "private"));
    }

    #[test]
    fn list_query_checks_sort_and_visibility() {
        let q = NamespaceQuery {
            sort_key: Some("name".into()),
            ..Default::default()
        };
        assert!(q.validate().is_err());
        let q = NamespaceQuery {
            visibility: Some("shared".into()),
            ..Default::default()
        };
        assert!(q.validate().is_err());
    }
}

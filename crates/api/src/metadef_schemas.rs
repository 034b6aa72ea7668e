//! JSON-schema documents of metadata definitions, served at `/v2/schemas/metadefs/{name}`:
//! the same structure as Glance's (property names, types, limits, required lists) so clients
//! that model namespaces, properties, objects and tags from them keep working. The
//! descriptions are this project's own words.

use serde_json::{Value, json};

fn str_max(max: u64, description: &str) -> Value {
    json!({ "type": "string", "maxLength": max, "description": description })
}

fn time(description: &str) -> Value {
    json!({ "type": "string", "format": "date-time", "readOnly": true, "description": description })
}

fn list_of(name: &str, plural: &str, item: Value, extra_links: bool) -> Value {
    let mut links = vec![
        json!({"rel": "first", "href": "{first}"}),
        json!({"rel": "next", "href": "{next}"}),
    ];
    if !extra_links {
        links.clear();
    }
    links.push(json!({"rel": "describedby", "href": "{schema}"}));
    json!({
        "name": plural,
        "properties": {
            plural: { "type": "array", "items": item },
            "first": { "type": "string" },
            "next": { "type": "string" },
            "schema": { "type": "string" },
        },
        "links": links,
        "definitions": { name: {} },
    })
}

/// The schema of one property definition (also the shape of each property inside a
/// namespace or an object).
fn property_body() -> Value {
    json!({
        "type": "object",
        "required": ["title", "type"],
        "properties": {
            "name": str_max(80, "The property's key, unique in its namespace"),
            "title": { "type": "string", "description": "A short label people read" },
            "description": { "type": "string", "description": "What the property is for" },
            "operators": { "type": "array", "items": { "type": "string" } },
            "type": {
                "type": "string",
                "enum": ["array", "boolean", "integer", "number", "object", "string", null],
            },
            "required": { "type": "array", "items": { "type": "string" } },
            "minimum": { "type": "number" },
            "maximum": { "type": "number" },
            "maxLength": { "type": "integer", "minimum": 0 },
            "minLength": { "type": "integer", "minimum": 0 },
            "pattern": { "type": "string", "format": "regex" },
            "enum": { "type": "array" },
            "readonly": { "type": "boolean", "description": "Whether a value, once set, may change" },
            "default": {},
            "items": {
                "type": "object",
                "properties": {
                    "type": { "type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", null] },
                    "enum": { "type": "array" },
                },
            },
            "maxItems": { "type": "integer", "minimum": 0 },
            "minItems": { "type": "integer", "minimum": 0 },
            "uniqueItems": { "type": "boolean", "default": false },
            "additionalItems": { "type": "boolean" },
        },
    })
}

fn property() -> Value {
    let mut p = property_body();
    p["name"] = json!("property");
    p["required"] = json!(["type", "title", "name"]);
    p["additionalProperties"] = json!(false);
    p
}

fn object() -> Value {
    json!({
        "name": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": str_max(80, "The object's name, unique in its namespace"),
            "description": { "type": "string", "description": "What the object groups" },
            "required": { "type": "array", "items": { "type": "string" } },
            "properties": { "type": "object", "additionalProperties": property_body() },
            "schema": { "type": "string", "readOnly": true },
            "self": { "type": "string", "readOnly": true },
            "created_at": time("When the object was made"),
            "updated_at": time("When the object last changed"),
        },
    })
}

fn tag() -> Value {
    json!({
        "name": "tag",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": str_max(80, "The tag, unique in its namespace"),
            "created_at": time("When the tag was made"),
            "updated_at": time("When the tag last changed"),
        },
    })
}

fn association() -> Value {
    json!({
        "name": "resource_type_association",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": str_max(80, "The resource type, such as OS::Glance::Image or OS::Nova::Flavor"),
            "prefix": str_max(80, "Put before the namespace's property names when they are set on this resource type"),
            "properties_target": str_max(80, "Which part of the resource the properties go to, when it has several"),
            "created_at": time("When the association was made"),
            "updated_at": time("When the association last changed"),
        },
    })
}

fn namespace() -> Value {
    json!({
        "name": "namespace",
        "required": ["namespace"],
        "additionalProperties": false,
        "properties": {
            "namespace": str_max(80, "The namespace's unique name"),
            "display_name": str_max(80, "A name people read"),
            "description": str_max(500, "What the namespace defines"),
            "visibility": { "type": "string", "enum": ["public", "private"], "description": "Who may read the namespace: everyone, or its owner's project" },
            "protected": { "type": "boolean", "description": "A protected namespace cannot be deleted" },
            "owner": str_max(255, "The project that owns the namespace"),
            "created_at": time("When the namespace was made"),
            "updated_at": time("When the namespace last changed"),
            "schema": { "type": "string", "readOnly": true },
            "self": { "type": "string", "readOnly": true },
            "resource_type_associations": { "type": "array", "items": association() },
            "properties": { "type": "object", "additionalProperties": property_body() },
            "objects": { "type": "array", "items": object() },
            "tags": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" } } } },
        },
    })
}

/// The schema named by the path segment after `/v2/schemas/metadefs/`.
pub fn by_name(name: &str) -> Option<Value> {
    Some(match name {
        "namespace" => namespace(),
        "namespaces" => list_of("namespace", "namespaces", namespace(), true),
        "resource_type" => association(),
        "resource_types" => list_of(
            "resource_type_association",
            "resource_type_associations",
            association(),
            true,
        ),
        "property" => property(),
        "properties" => {
            let mut p = list_of("property", "properties", property(), true);
            p["properties"]["properties"] =
                json!({ "type": "object", "additionalProperties": property_body() });
            p
        }
        "object" => object(),
        "objects" => list_of("object", "objects", object(), true),
        "tag" => tag(),
        "tags" => list_of("tag", "tags", tag(), true),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metadef_schema_is_served_and_named() {
        for name in [
            "namespace",
            "namespaces",
            "resource_type",
            "resource_types",
            "property",
            "properties",
            "object",
            "objects",
            "tag",
            "tags",
        ] {
            let s = super::by_name(name).expect(name);
            assert!(s["name"].is_string(), "{name}");
            assert!(s["properties"].is_object(), "{name}");
        }
        assert!(super::by_name("image").is_none());
    }
}

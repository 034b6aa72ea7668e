//! JSON-schema documents served at `GET /v2/schemas/{name}`.
//!
//! Clients (python-glanceclient, openstacksdk) download these documents and
//! use them to validate requests and to model images, members and tasks, so
//! the structure (property names, types, enums, patterns, length limits,
//! `readOnly` flags, `links`, `additionalProperties`) mirrors the reference
//! service exactly. The human-readable descriptions are this project's own.

use serde_json::{Value, json};

/// Pattern every UUID-valued `id` property carries.
const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

/// Image `status` values, in the order the reference service lists them.
const IMAGE_STATUSES: &[&str] = &[
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "uploading",
    "importing",
    "pending_delete",
    "deactivated",
];

/// Image `visibility` values.
const IMAGE_VISIBILITIES: &[&str] = &["community", "public", "private", "shared"];

/// Member `status` values.
const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

/// Task `type` values.
const TASK_TYPES: &[&str] = &["import", "api_image_import", "location_import"];

/// Task `status` values.
const TASK_STATUSES: &[&str] = &["pending", "processing", "success", "failure"];

/// A nullable enum: `null` first, then the configured values.
fn nullable_enum(values: &[&str]) -> Value {
    let mut out = Vec::with_capacity(values.len() + 1);
    out.push(Value::Null);
    out.extend(values.iter().map(|v| Value::String((*v).to_owned())));
    Value::Array(out)
}

/// `/v2/schemas/image`. `disk_formats` / `container_formats` are the
/// configured `[image_format]` lists; each becomes the `enum` of the matching
/// property, preceded by `null` (an image may leave the format unset).
pub fn image_schema(disk_formats: &[&str], container_formats: &[&str]) -> Value {
    json!({
        "name": "image",
        "properties": {
            "id": {
                "type": "string",
                "description": "UUID of the image",
                "pattern": UUID_PATTERN,
            },
            "name": {
                "type": ["null", "string"],
                "description": "Human-friendly image name",
                "maxLength": 255,
            },
            "status": {
                "type": "string",
                "readOnly": true,
                "description": "Lifecycle state of the image",
                "enum": IMAGE_STATUSES,
            },
            "visibility": {
                "type": "string",
                "description": "Who may see and use the image",
                "enum": IMAGE_VISIBILITIES,
            },
            "protected": {
                "type": "boolean",
                "description": "When true, deleting the image is refused.",
            },
            "os_hidden": {
                "type": "boolean",
                "description": "When true, the image is left out of default listings.",
            },
            "checksum": {
                "type": ["null", "string"],
                "readOnly": true,
                "description": "MD5 digest of the image data.",
                "maxLength": 32,
            },
            "os_hash_algo": {
                "type": ["null", "string"],
                "readOnly": true,
                "description": "Name of the algorithm that produced os_hash_value",
                "maxLength": 64,
            },
            "os_hash_value": {
                "type": ["null", "string"],
                "readOnly": true,
                "description": "Hex digest of the image data computed with os_hash_algo",
                "maxLength": 128,
            },
            "owner": {
                "type": ["null", "string"],
                "description": "Project that owns the image",
                "maxLength": 255,
            },
            "size": {
                "type": ["null", "integer"],
                "readOnly": true,
                "description": "Number of bytes of stored image data",
            },
            "virtual_size": {
                "type": ["null", "integer"],
                "readOnly": true,
                "description": "Size in bytes of the virtual disk the data describes",
            },
            "container_format": {
                "type": ["null", "string"],
                "description": "Container format of the image data",
                "enum": nullable_enum(container_formats),
            },
            "disk_format": {
                "type": ["null", "string"],
                "description": "Disk format of the image data",
                "enum": nullable_enum(disk_formats),
            },
            "created_at": {
                "type": "string",
                "readOnly": true,
                "description": "When the image record was created",
            },
            "updated_at": {
                "type": "string",
                "readOnly": true,
                "description": "When the image record last changed",
            },
            "tags": {
                "type": "array",
                "description": "Free-form string labels attached to the image",
                "items": {
                    "type": "string",
                    "maxLength": 255,
                },
            },
            "direct_url": {
                "type": "string",
                "readOnly": true,
                "description": "Backend location of the image data",
            },
            "min_ram": {
                "type": "integer",
                "description": "Minimum RAM, in MB, needed to boot the image.",
            },
            "min_disk": {
                "type": "integer",
                "description": "Minimum disk, in GB, needed to boot the image.",
            },
            "self": {
                "type": "string",
                "readOnly": true,
                "description": "Link to this image",
            },
            "file": {
                "type": "string",
                "readOnly": true,
                "description": "Link to the image data",
            },
            "stores": {
                "type": "string",
                "readOnly": true,
                "description": "Comma-separated identifiers of the stores holding the data; shown only when multiple stores are configured.",
            },
            "schema": {
                "type": "string",
                "readOnly": true,
                "description": "Link to this schema",
            },
            "locations": {
                "type": "array",
                "description": "Backend locations of the image data",
                "items": {
                    "type": "object",
                    "properties": {
                        "url": {
                            "type": "string",
                            "maxLength": 255,
                        },
                        "metadata": {
                            "type": "object",
                        },
                        "validation_data": {
                            "description": "Hash values to record on the image; must equal the existing values unless the image is still queued.",
                            "type": "object",
                            "writeOnly": true,
                            "additionalProperties": false,
                            "properties": {
                                "checksum": {
                                    "type": "string",
                                    "minLength": 32,
                                    "maxLength": 32,
                                },
                                "os_hash_algo": {
                                    "type": "string",
                                    "maxLength": 64,
                                },
                                "os_hash_value": {
                                    "type": "string",
                                    "maxLength": 128,
                                },
                            },
                            "required": ["os_hash_algo", "os_hash_value"],
                        },
                    },
                    "required": ["url", "metadata"],
                },
            },
        },
        "additionalProperties": {
            "type": "string",
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

/// `/v2/schemas/images`: the list envelope, with the full image schema under
/// `properties.images.items` plus the pagination links.
pub fn images_schema(disk_formats: &[&str], container_formats: &[&str]) -> Value {
    json!({
        "name": "images",
        "properties": {
            "images": {
                "type": "array",
                "items": image_schema(disk_formats, container_formats),
            },
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

/// `/v2/schemas/member`. Unlike the image schema it has no `links` and no
/// `additionalProperties`.
pub fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {
                "type": "string",
                "description": "Project (tenant) the image is shared with",
            },
            "image_id": {
                "type": "string",
                "description": "UUID of the shared image",
                "pattern": UUID_PATTERN,
            },
            "created_at": {
                "type": "string",
                "description": "When the membership was created",
            },
            "updated_at": {
                "type": "string",
                "description": "When the membership last changed",
            },
            "status": {
                "type": "string",
                "description": "Whether the member has accepted the shared image",
                "enum": MEMBER_STATUSES,
            },
            "schema": {
                "readOnly": true,
                "type": "string",
            },
        },
    })
}

/// `/v2/schemas/members`: the list envelope around [`member_schema`].
pub fn members_schema() -> Value {
    json!({
        "name": "members",
        "properties": {
            "members": {
                "type": "array",
                "items": member_schema(),
            },
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

/// Task properties shared by the single-task schema and the list item schema.
/// `full` adds `input`, `result` and `message`, which the list omits.
fn task_properties(full: bool) -> Value {
    let mut props = json!({
        "id": {
            "description": "UUID of the task",
            "pattern": UUID_PATTERN,
            "type": "string",
        },
        "type": {
            "description": "Kind of work the task performs",
            "enum": TASK_TYPES,
            "type": "string",
        },
        "status": {
            "description": "Progress state of the task",
            "enum": TASK_STATUSES,
            "type": "string",
        },
        "owner": {
            "description": "Project that owns the task",
            "type": "string",
        },
        "image_id": {
            "description": "Image the task works on",
            "type": "string",
        },
        "request_id": {
            "description": "Request identifier that created the task",
            "type": "string",
        },
        "user_id": {
            "description": "User that created the task",
            "type": "string",
        },
        "expires_at": {
            "description": "When the task record becomes eligible for deletion",
            "type": ["null", "string"],
        },
        "created_at": {
            "description": "When the task was created",
            "type": "string",
        },
        "updated_at": {
            "description": "When the task last changed",
            "type": "string",
        },
        "self": {
            "readOnly": true,
            "type": "string",
        },
        "schema": {
            "readOnly": true,
            "type": "string",
        },
    });
    if !full {
        return props;
    }
    if let Some(map) = props.as_object_mut() {
        map.insert(
            "input".to_owned(),
            json!({
                "description": "Task parameters as a JSON object",
                "type": ["null", "object"],
            }),
        );
        map.insert(
            "result".to_owned(),
            json!({
                "description": "Task outcome as a JSON object",
                "type": ["null", "object"],
            }),
        );
        map.insert(
            "message".to_owned(),
            json!({
                "description": "Explanatory text, typically set when the task fails",
                "type": "string",
            }),
        );
    }
    props
}

/// `/v2/schemas/task`. Has neither `links` nor `additionalProperties`.
pub fn task_schema() -> Value {
    json!({
        "name": "task",
        "properties": task_properties(true),
    })
}

/// `/v2/schemas/tasks`: the list envelope. Its item schema is the task schema
/// without `input`, `result` and `message`.
pub fn tasks_schema() -> Value {
    json!({
        "name": "tasks",
        "properties": {
            "tasks": {
                "type": "array",
                "items": {
                    "name": "task",
                    "properties": task_properties(false),
                },
            },
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

/// Looks up a schema by the path segment after `/v2/schemas/` (`"image"`,
/// `"images"`, `"member"`, `"members"`, `"task"`, `"tasks"`); `None` if the
/// name is unknown.
pub fn by_name(name: &str, disk_formats: &[&str], container_formats: &[&str]) -> Option<Value> {
    match name {
        "image" => Some(image_schema(disk_formats, container_formats)),
        "images" => Some(images_schema(disk_formats, container_formats)),
        "member" => Some(member_schema()),
        "members" => Some(members_schema()),
        "task" => Some(task_schema()),
        "tasks" => Some(tasks_schema()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_model::format::{DEFAULT_CONTAINER_FORMATS, DEFAULT_DISK_FORMATS};
    use std::collections::BTreeSet;

    /// Expected facts for one property, as served by the reference Glance 33.
    struct Prop {
        name: &'static str,
        ty: Value,
        enum_: Option<Value>,
        read_only: bool,
        pattern: Option<&'static str>,
        max_length: Option<u64>,
    }

    fn p(name: &'static str, ty: Value) -> Prop {
        Prop {
            name,
            ty,
            enum_: None,
            read_only: false,
            pattern: None,
            max_length: None,
        }
    }

    impl Prop {
        fn ro(mut self) -> Self {
            self.read_only = true;
            self
        }
        fn en(mut self, e: Value) -> Self {
            self.enum_ = Some(e);
            self
        }
        fn pat(mut self, pattern: &'static str) -> Self {
            self.pattern = Some(pattern);
            self
        }
        fn max(mut self, n: u64) -> Self {
            self.max_length = Some(n);
            self
        }
    }

    const UUID_RE: &str =
        "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

    fn expected_image_props() -> Vec<Prop> {
        let ns = || json!(["null", "string"]);
        let ni = || json!(["null", "integer"]);
        let s = || json!("string");
        vec![
            p("id", s()).pat(UUID_RE),
            p("name", ns()).max(255),
            p("status", s()).ro().en(json!([
                "queued",
                "saving",
                "active",
                "killed",
                "deleted",
                "uploading",
                "importing",
                "pending_delete",
                "deactivated"
            ])),
            p("visibility", s()).en(json!(["community", "public", "private", "shared"])),
            p("protected", json!("boolean")),
            p("os_hidden", json!("boolean")),
            p("checksum", ns()).ro().max(32),
            p("os_hash_algo", ns()).ro().max(64),
            p("os_hash_value", ns()).ro().max(128),
            p("owner", ns()).max(255),
            p("size", ni()).ro(),
            p("virtual_size", ni()).ro(),
            p("container_format", ns()).en(json!([
                null,
                "ami",
                "ari",
                "aki",
                "bare",
                "ovf",
                "ova",
                "docker",
                "compressed"
            ])),
            p("disk_format", ns()).en(json!([
                null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop"
            ])),
            p("created_at", s()).ro(),
            p("updated_at", s()).ro(),
            p("tags", json!("array")),
            p("direct_url", s()).ro(),
            p("min_ram", json!("integer")),
            p("min_disk", json!("integer")),
            p("self", s()).ro(),
            p("file", s()).ro(),
            p("stores", s()).ro(),
            p("schema", s()).ro(),
            p("locations", json!("array")),
        ]
    }

    fn expected_member_props() -> Vec<Prop> {
        let s = || json!("string");
        vec![
            p("member_id", s()),
            p("image_id", s()).pat(UUID_RE),
            p("created_at", s()),
            p("updated_at", s()),
            p("status", s()).en(json!(["pending", "accepted", "rejected"])),
            p("schema", s()).ro(),
        ]
    }

    fn expected_task_props(full: bool) -> Vec<Prop> {
        let s = || json!("string");
        let mut v = vec![
            p("id", s()).pat(UUID_RE),
            p("type", s()).en(json!(["import", "api_image_import", "location_import"])),
            p("status", s()).en(json!(["pending", "processing", "success", "failure"])),
            p("owner", s()),
            p("image_id", s()),
            p("request_id", s()),
            p("user_id", s()),
            p("expires_at", json!(["null", "string"])),
            p("created_at", s()),
            p("updated_at", s()),
            p("self", s()).ro(),
            p("schema", s()).ro(),
        ];
        if full {
            v.push(p("input", json!(["null", "object"])));
            v.push(p("result", json!(["null", "object"])));
            v.push(p("message", s()));
        }
        v
    }

    /// Asserts `schema.properties` has exactly the expected names and, per
    /// property, the same type / enum / readOnly / pattern / maxLength.
    fn check_props(schema: &Value, expected: &[Prop]) {
        let props = schema["properties"]
            .as_object()
            .expect("properties is an object");
        let got: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = expected.iter().map(|e| e.name).collect();
        assert_eq!(got, want, "property names of {}", schema["name"]);
        for e in expected {
            let prop = &props[e.name];
            assert_eq!(prop["type"], e.ty, "type of {}", e.name);
            assert_eq!(prop.get("enum"), e.enum_.as_ref(), "enum of {}", e.name);
            let ro = prop.get("readOnly").cloned();
            if e.read_only {
                assert_eq!(ro, Some(json!(true)), "readOnly of {}", e.name);
            } else {
                assert_eq!(ro, None, "readOnly of {}", e.name);
            }
            assert_eq!(
                prop.get("pattern").and_then(Value::as_str),
                e.pattern,
                "pattern of {}",
                e.name
            );
            assert_eq!(
                prop.get("maxLength").and_then(Value::as_u64),
                e.max_length,
                "maxLength of {}",
                e.name
            );
        }
    }

    fn top_keys(v: &Value) -> BTreeSet<&str> {
        v.as_object()
            .expect("schema is an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn keys(list: &[&'static str]) -> BTreeSet<&'static str> {
        list.iter().copied().collect()
    }

    fn image() -> Value {
        image_schema(DEFAULT_DISK_FORMATS, DEFAULT_CONTAINER_FORMATS)
    }

    fn self_links() -> Value {
        json!([
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ])
    }

    #[test]
    fn image_schema_properties_match_reference() {
        let s = image();
        assert_eq!(s["name"], "image");
        check_props(&s, &expected_image_props());
        assert_eq!(
            top_keys(&s),
            keys(&["name", "properties", "additionalProperties", "links"])
        );
        assert_eq!(s["additionalProperties"], json!({"type": "string"}));
        assert_eq!(s["links"], self_links());
    }

    #[test]
    fn image_schema_nested_structures() {
        let s = image();
        let props = &s["properties"];
        assert_eq!(
            props["tags"]["items"],
            json!({"type": "string", "maxLength": 255})
        );
        let loc = &props["locations"]["items"];
        assert_eq!(loc["type"], "object");
        assert_eq!(loc["required"], json!(["url", "metadata"]));
        assert_eq!(
            loc["properties"]["url"],
            json!({"type": "string", "maxLength": 255})
        );
        assert_eq!(loc["properties"]["metadata"], json!({"type": "object"}));
        let vd = &loc["properties"]["validation_data"];
        assert_eq!(vd["type"], "object");
        assert_eq!(vd["writeOnly"], true);
        assert_eq!(vd["additionalProperties"], false);
        assert_eq!(vd["required"], json!(["os_hash_algo", "os_hash_value"]));
        assert_eq!(
            vd["properties"]["checksum"],
            json!({"type": "string", "minLength": 32, "maxLength": 32})
        );
        assert_eq!(
            vd["properties"]["os_hash_algo"],
            json!({"type": "string", "maxLength": 64})
        );
        assert_eq!(
            vd["properties"]["os_hash_value"],
            json!({"type": "string", "maxLength": 128})
        );
        // No `required` list on the image itself: every field is optional.
        assert!(s.get("required").is_none());
    }

    #[test]
    fn image_schema_uses_configured_formats() {
        let s = image_schema(&["raw", "qcow2"], &["bare"]);
        assert_eq!(
            s["properties"]["disk_format"]["enum"],
            json!([null, "raw", "qcow2"])
        );
        assert_eq!(
            s["properties"]["container_format"]["enum"],
            json!([null, "bare"])
        );
        let empty = image_schema(&[], &[]);
        assert_eq!(empty["properties"]["disk_format"]["enum"], json!([null]));
    }

    #[test]
    fn images_schema_wraps_image_schema() {
        let s = images_schema(DEFAULT_DISK_FORMATS, DEFAULT_CONTAINER_FORMATS);
        assert_eq!(s["name"], "images");
        assert_eq!(top_keys(&s), keys(&["name", "properties", "links"]));
        let props = s["properties"].as_object().expect("object");
        assert_eq!(
            props.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            keys(&["images", "first", "next", "schema"])
        );
        assert_eq!(props["images"]["type"], "array");
        assert_eq!(props["images"]["items"], image());
        for k in ["first", "next", "schema"] {
            assert_eq!(props[k], json!({"type": "string"}), "{k}");
        }
        assert_eq!(
            s["links"],
            json!([
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ])
        );
    }

    #[test]
    fn member_schema_matches_reference() {
        let s = member_schema();
        assert_eq!(s["name"], "member");
        assert_eq!(top_keys(&s), keys(&["name", "properties"]));
        check_props(&s, &expected_member_props());
    }

    #[test]
    fn members_schema_wraps_member_schema() {
        let s = members_schema();
        assert_eq!(s["name"], "members");
        assert_eq!(top_keys(&s), keys(&["name", "properties", "links"]));
        assert_eq!(s["properties"]["members"]["type"], "array");
        assert_eq!(s["properties"]["members"]["items"], member_schema());
        assert_eq!(s["properties"]["schema"], json!({"type": "string"}));
        assert_eq!(top_keys(&s["properties"]), keys(&["members", "schema"]));
        assert_eq!(
            s["links"],
            json!([{"rel": "describedby", "href": "{schema}"}])
        );
    }

    #[test]
    fn task_schema_matches_reference() {
        let s = task_schema();
        assert_eq!(s["name"], "task");
        assert_eq!(top_keys(&s), keys(&["name", "properties"]));
        check_props(&s, &expected_task_props(true));
    }

    #[test]
    fn tasks_schema_items_omit_input_result_message() {
        let s = tasks_schema();
        assert_eq!(s["name"], "tasks");
        assert_eq!(top_keys(&s), keys(&["name", "properties", "links"]));
        assert_eq!(top_keys(&s["properties"]), keys(&["tasks", "schema"]));
        assert_eq!(s["properties"]["tasks"]["type"], "array");
        let items = &s["properties"]["tasks"]["items"];
        assert_eq!(top_keys(items), keys(&["name", "properties"]));
        assert_eq!(items["name"], "task");
        check_props(items, &expected_task_props(false));
        assert_eq!(s["properties"]["schema"], json!({"type": "string"}));
        assert_eq!(
            s["links"],
            json!([{"rel": "describedby", "href": "{schema}"}])
        );
    }

    #[test]
    fn by_name_dispatches_and_rejects_unknown() {
        for name in ["image", "images", "member", "members", "task", "tasks"] {
            let s = by_name(name, DEFAULT_DISK_FORMATS, DEFAULT_CONTAINER_FORMATS)
                .expect("known schema");
            assert_eq!(s["name"], name);
        }
        for name in ["", "Image", "foo", "metadefs", "image/", "imagess"] {
            assert!(
                by_name(name, DEFAULT_DISK_FORMATS, DEFAULT_CONTAINER_FORMATS).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn every_described_property_has_our_own_wording() {
        // Every top-level property of image/member/task that carries a
        // description has a non-empty one.
        for s in [image(), member_schema(), task_schema()] {
            for (k, v) in s["properties"].as_object().expect("object") {
                if let Some(d) = v.get("description") {
                    assert!(d.as_str().is_some_and(|d| !d.is_empty()), "{k}");
                }
            }
        }
    }
}

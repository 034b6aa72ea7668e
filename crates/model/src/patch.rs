//! JSON-patch for images (`PATCH /v2/images/{id}`): parses Glance's two patch media types and
//! turns a change list into one registry [`ImageUpdate`], applying Glance's rules on read-only,
//! reserved, base and custom attributes.
//!
//! Pure logic: no I/O and no HTTP status codes; every refusal carries an [`ErrorKind`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::context::Context;
use crate::error::{ErrorKind, ModelError};
use crate::format::Formats;
use crate::image::{
    Image, MAX_STRING_LEN, READ_ONLY_ATTRS, RESERVED_ATTRS, RESERVED_PREFIX, check_len, check_min,
    check_property_key, check_property_value, check_tag, is_uuid_property, truncate,
};
use crate::status::ImageStatus;
use crate::visibility::Visibility;
use crate::wire::ImageUpdate;

/// The RFC-6902-like media type (`{"op": "add", "path": "/x", "value": …}`).
pub const MEDIA_TYPE_V21: &str = "application/openstack-images-v2.1-json-patch";

/// The deprecated draft-4 media type (`{"add": "/x", "value": …}`).
pub const MEDIA_TYPE_V20: &str = "application/openstack-images-v2.0-json-patch";

/// Value for the `Accept-Patch` header on a 415 answer to `PATCH`.
pub const ACCEPT_PATCH: &str =
    "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch";

/// Base attributes a patch may set (but never remove).
const WRITABLE_BASE_ATTRS: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "container_format",
    "disk_format",
    "min_disk",
    "min_ram",
    "tags",
];

/// The two JSON-patch media types Glance accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchMediaType {
    /// `application/openstack-images-v2.1-json-patch`.
    V21,
    /// `application/openstack-images-v2.0-json-patch` (draft-4 style, deprecated).
    V20,
}

impl PatchMediaType {
    /// From a `Content-Type` header value; parameters such as `; charset=utf-8` are ignored and
    /// the comparison is case-insensitive. `None` means the request deserves a 415.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(MEDIA_TYPE_V21) {
            Some(Self::V21)
        } else if essence.eq_ignore_ascii_case(MEDIA_TYPE_V20) {
            Some(Self::V20)
        } else {
            None
        }
    }

    /// The media type's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V21 => MEDIA_TYPE_V21,
            Self::V20 => MEDIA_TYPE_V20,
        }
    }
}

/// A patch operation Glance supports (`test`, `move` and `copy` are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOp {
    /// Set an attribute or add a custom property.
    Add,
    /// Set an attribute or an existing custom property.
    Replace,
    /// Remove an existing custom property.
    Remove,
}

impl PatchOp {
    /// The operation's spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Remove => "remove",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "add" => Some(Self::Add),
            "replace" => Some(Self::Replace),
            "remove" => Some(Self::Remove),
            _ => None,
        }
    }
}

impl fmt::Display for PatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed change.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchChange {
    /// The operation.
    pub op: PatchOp,
    /// The pointer's segments, unescaped (`~1` → `/`, `~0` → `~`) and trimmed.
    pub path: Vec<String>,
    /// The value; present for `add` and `replace`, `None` for `remove`.
    pub value: Option<Value>,
}

fn bad(message: impl Into<String>) -> ModelError {
    ModelError::bad_request(message)
}

/// Renders a JSON value for a message, cut short.
fn shown(v: &Value) -> String {
    truncate(&v.to_string(), 64)
}

/// Parses a patch body (already parsed as JSON) of the given media type.
///
/// The body must be an array of objects. Pointers must start with `/`, contain no empty
/// segment and no trailing `/`, and use only the `~0`/`~1` escapes. `locations` paths take
/// two segments for `add`/`remove` and one for `replace`; every other path exactly one.
pub fn parse_patch(media: PatchMediaType, body: &Value) -> Result<Vec<PatchChange>, ModelError> {
    let items = body
        .as_array()
        .ok_or_else(|| bad("Request body must be a JSON array of operation objects."))?;
    items.iter().map(|raw| parse_change(media, raw)).collect()
}

fn parse_change(media: PatchMediaType, raw: &Value) -> Result<PatchChange, ModelError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| bad("Operations must be JSON objects."))?;
    let (op, pointer) = match media {
        PatchMediaType::V21 => {
            let op_value = obj
                .get("op")
                .ok_or_else(|| bad("Unable to find 'op' in JSON Schema change"))?;
            let op = op_value.as_str().and_then(PatchOp::parse).ok_or_else(|| {
                let name = op_value
                    .as_str()
                    .map_or_else(|| shown(op_value), str::to_string);
                bad(format!(
                    "Invalid operation: `{}`. Expected one of add, replace, remove",
                    truncate(&name, 64)
                ))
            })?;
            let pointer = obj
                .get("path")
                .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            (op, pointer)
        }
        PatchMediaType::V20 => {
            let mut found = None;
            for op in [PatchOp::Add, PatchOp::Remove, PatchOp::Replace] {
                if let Some(pointer) = obj.get(op.as_str()) {
                    if found.is_some() {
                        return Err(bad(
                            "Operation objects must contain only one member named \"add\", \
                             \"remove\", or \"replace\".",
                        ));
                    }
                    found = Some((op, pointer));
                }
            }
            found.ok_or_else(|| {
                bad(
                    "Operation objects must contain exactly one member named \"add\", \
                     \"remove\", or \"replace\".",
                )
            })?
        }
    };
    let pointer = pointer.as_str().ok_or_else(|| {
        bad(format!(
            "Pointer must be a JSON string, got {}",
            shown(pointer)
        ))
    })?;
    let path = decode_pointer(pointer)?;
    check_depth(op, &path)?;
    let value = match op {
        // Glance ignores a "value" member on remove.
        PatchOp::Remove => None,
        PatchOp::Add | PatchOp::Replace => Some(obj.get("value").cloned().ok_or_else(|| {
            bad(format!(
                "Operation \"{op}\" requires a member named \"value\"."
            ))
        })?),
    };
    Ok(PatchChange { op, path, value })
}

/// Validates and decodes a JSON pointer the way Glance's `_decode_json_pointer` does, but
/// stricter on `~`: Glance accepts a stray `~` if any valid escape appears elsewhere.
fn decode_pointer(pointer: &str) -> Result<Vec<String>, ModelError> {
    let quoted = truncate(pointer, 255);
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(bad(format!(
            "Pointer `{quoted}` does not start with \"/\"."
        )));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len().saturating_sub(1);
    // Glance's regex `/\s*?/`: a slash followed by only whitespace and another slash.
    if segments[..last].iter().any(|s| s.trim().is_empty()) {
        return Err(bad(format!("Pointer `{quoted}` contains adjacent \"/\".")));
    }
    if last > 0 && segments[last].is_empty() {
        return Err(bad(format!("Pointer `{quoted}` end with \"/\".")));
    }
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(bad(format!(
                "Pointer `{quoted}` contains \"~\" not part of a recognized escape sequence."
            )));
        }
    }
    Ok(segments
        .iter()
        .map(|s| s.replace("~1", "/").replace("~0", "~").trim().to_string())
        .collect())
}

/// Glance's `_path_depth_limits`: only `locations` has a second segment (the list position).
fn check_depth(op: PatchOp, path: &[String]) -> Result<(), ModelError> {
    let expected = match (path.first().map(String::as_str), op) {
        (Some("locations"), PatchOp::Add | PatchOp::Remove) => 2,
        _ => 1,
    };
    if path.len() == expected {
        Ok(())
    } else {
        Err(bad(format!(
            "Invalid JSON pointer for this resource: '/{}'",
            truncate(&path.join("/"), 255)
        )))
    }
}

/// A base attribute's new value, already type-checked.
#[derive(Debug, Clone)]
enum BaseValue {
    Name(Option<String>),
    Visibility(Visibility),
    Protected(bool),
    OsHidden(bool),
    Owner(Option<String>),
    ContainerFormat(Option<String>),
    DiskFormat(Option<String>),
    MinDisk(i32),
    MinRam(i32),
    Tags(Vec<String>),
}

/// A change whose target and value passed the checks Glance's deserializer makes.
enum Checked<'a> {
    Locations {
        op: PatchOp,
        value: Option<&'a Value>,
    },
    Base {
        name: &'a str,
        value: Option<BaseValue>,
    },
    Custom {
        op: PatchOp,
        key: &'a str,
        value: Option<String>,
    },
}

/// Applies the changes in order to `image` and returns the update to send to the registry,
/// holding only the fields the patch touches. Formats are checked against Glance's defaults.
pub fn apply_patch(
    image: &Image,
    media: PatchMediaType,
    changes: &[PatchChange],
    ctx: &Context,
) -> Result<ImageUpdate, ModelError> {
    apply_patch_with_formats(image, media, changes, ctx, &Formats::default())
}

/// [`apply_patch`] with the operator's allowed disk and container formats.
pub fn apply_patch_with_formats(
    image: &Image,
    media: PatchMediaType,
    changes: &[PatchChange],
    ctx: &Context,
    formats: &Formats,
) -> Result<ImageUpdate, ModelError> {
    apply_patch_with_locations(image, media, changes, ctx, formats, false).map(|(u, _)| u)
}

/// An edit of `/locations` in a patch, in the order the patch gives it; what it means for the
/// image's locations (positions, stores, sizes) is glance-api's to check.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationEdit {
    /// `add /locations/N` or `/locations/-` (`position` is `None`).
    Add {
        /// The list position, as written.
        position: Option<String>,
        /// The location object (`url`, `metadata`, optional `validation_data`).
        value: Value,
    },
    /// `remove /locations/N`.
    Remove {
        /// The list position, as written.
        position: String,
    },
    /// `replace /locations` with a new list.
    Replace {
        /// The new list.
        value: Value,
    },
}

/// [`apply_patch_with_formats`], with `/locations` edits returned in order when
/// `locations_visible` (`show_multiple_locations`), and refused with Glance's 403 otherwise.
pub fn apply_patch_with_locations(
    image: &Image,
    media: PatchMediaType,
    changes: &[PatchChange],
    ctx: &Context,
    formats: &Formats,
    locations_visible: bool,
) -> Result<(ImageUpdate, Vec<LocationEdit>), ModelError> {
    // Glance's deserializer checks every change (403 read-only/reserved, 400 schema) before
    // the controller applies any of them, so a bad later change wins over an earlier 409.
    let checked = changes
        .iter()
        .map(|c| check_change(c, formats).map(|k| (k, c)))
        .collect::<Result<Vec<_>, _>>()?;

    let mut props = image.properties.clone();
    let mut touched = BTreeSet::new();
    let mut update = ImageUpdate::default();
    let mut edits = Vec::new();
    for (change, raw) in checked {
        match change {
            Checked::Locations { op, value } if !locations_visible => {
                return Err(refuse_locations(op, value));
            }
            Checked::Locations { op, value } => {
                let position = raw.path.get(1).cloned();
                let value = value.cloned().unwrap_or(Value::Null);
                edits.push(match op {
                    PatchOp::Add => LocationEdit::Add {
                        position: position.filter(|p| p != "-"),
                        value,
                    },
                    PatchOp::Remove => LocationEdit::Remove {
                        position: position.unwrap_or_default(),
                    },
                    PatchOp::Replace => LocationEdit::Replace { value },
                });
            }
            Checked::Base { name, value: None } => {
                return Err(ModelError::new(
                    ErrorKind::Forbidden,
                    format!("Property {name} may not be removed."),
                ));
            }
            Checked::Base {
                value: Some(value), ..
            } => set_base(&mut update, image, value, ctx)?,
            Checked::Custom { op, key, value } => {
                let exists = props.contains_key(key);
                match (op, value) {
                    // v2.0 (draft-4) `add` refuses to overwrite; v2.1 `add` overwrites
                    // (Glance `_do_add`).
                    (PatchOp::Add, _) if exists && media == PatchMediaType::V20 => {
                        return Err(ModelError::new(
                            ErrorKind::Conflict,
                            format!("Property {key} already present."),
                        ));
                    }
                    (PatchOp::Replace | PatchOp::Remove, _) if !exists => {
                        return Err(ModelError::new(
                            ErrorKind::Conflict,
                            format!("Property {key} does not exist."),
                        ));
                    }
                    (_, Some(v)) => {
                        props.insert(key.to_string(), v);
                    }
                    (_, None) => {
                        props.remove(key);
                    }
                }
                touched.insert(key);
            }
        }
    }
    finish(image, update, &props, &touched).map(|u| (u, edits))
}

fn finish(
    image: &Image,
    mut update: ImageUpdate,
    props: &BTreeMap<String, String>,
    touched: &BTreeSet<&str>,
) -> Result<ImageUpdate, ModelError> {
    for key in touched {
        if let Some(v) = props.get(*key) {
            update.set_properties.insert((*key).to_string(), v.clone());
        } else if image.properties.contains_key(*key) {
            update.remove_properties.push((*key).to_string());
        }
    }
    update.validate()?;
    Ok(update)
}

fn refuse_locations(op: PatchOp, value: Option<&Value>) -> ModelError {
    let message = match op {
        PatchOp::Replace if value.is_some_and(|v| v.as_array().is_some_and(Vec::is_empty)) => {
            "Cannot set locations to empty list."
        }
        PatchOp::Add => "It's not allowed to add locations if locations are invisible.",
        PatchOp::Replace => "It's not allowed to update locations if locations are invisible.",
        PatchOp::Remove => "It's not allowed to remove locations if locations are invisible.",
    };
    ModelError::new(ErrorKind::Forbidden, message)
}

fn set_base(
    update: &mut ImageUpdate,
    image: &Image,
    value: BaseValue,
    ctx: &Context,
) -> Result<(), ModelError> {
    let forbidden = |m: String| Err(ModelError::new(ErrorKind::Forbidden, m));
    match value {
        BaseValue::Name(v) => update.name = Some(v),
        BaseValue::Visibility(v) => {
            // Glance's `publicize_image` policy defaults to admin-only.
            if v == Visibility::Public && !ctx.is_admin {
                return forbidden(
                    "You are not authorized to complete publicize_image action.".into(),
                );
            }
            update.visibility = Some(v);
        }
        BaseValue::Protected(v) => update.protected = Some(v),
        BaseValue::OsHidden(v) => update.os_hidden = Some(v),
        BaseValue::Owner(v) => {
            if !ctx.is_admin {
                return forbidden("Owner can't be updated by non admin.".into());
            }
            update.owner = Some(v);
        }
        BaseValue::ContainerFormat(v) => {
            check_format_status(image, "container_format")?;
            update.container_format = Some(v);
        }
        BaseValue::DiskFormat(v) => {
            check_format_status(image, "disk_format")?;
            update.disk_format = Some(v);
        }
        BaseValue::MinDisk(v) => update.min_disk = Some(v),
        BaseValue::MinRam(v) => update.min_ram = Some(v),
        BaseValue::Tags(v) => update.tags = Some(v),
    }
    Ok(())
}

/// Glance's domain setters refuse format changes (even to the same value) once data exists.
fn check_format_status(image: &Image, field: &str) -> Result<(), ModelError> {
    if matches!(image.status, ImageStatus::Queued | ImageStatus::Importing) {
        Ok(())
    } else {
        Err(ModelError::new(
            ErrorKind::Forbidden,
            format!(
                "Attribute {field} can be only replaced for a queued image (image is {}).",
                image.status
            ),
        ))
    }
}

/// Glance's `_validate_change`: read-only and reserved names first (403), then a partial
/// schema check of the value (400).
fn check_change<'a>(change: &'a PatchChange, formats: &Formats) -> Result<Checked<'a>, ModelError> {
    check_depth(change.op, &change.path)?;
    let root = change.path.first().map(String::as_str).unwrap_or_default();
    if root == "id" || READ_ONLY_ATTRS.contains(&root) {
        return Err(ModelError::new(
            ErrorKind::Forbidden,
            format!("Attribute '{root}' is read-only."),
        ));
    }
    if RESERVED_ATTRS.contains(&root) || root.starts_with(RESERVED_PREFIX) {
        return Err(ModelError::new(
            ErrorKind::Forbidden,
            format!("Attribute '{}' is reserved.", truncate(root, 255)),
        ));
    }
    let value = match (change.op, &change.value) {
        (PatchOp::Remove, _) => None,
        (_, Some(v)) => Some(v),
        (op, None) => {
            return Err(bad(format!(
                "Operation \"{op}\" requires a member named \"value\"."
            )));
        }
    };
    if root == "locations" {
        return Ok(Checked::Locations {
            op: change.op,
            value,
        });
    }
    if let Some(name) = WRITABLE_BASE_ATTRS.iter().find(|a| **a == root) {
        let value = value.map(|v| base_value(name, v, formats)).transpose()?;
        return Ok(Checked::Base { name, value });
    }
    check_property_key(root)?;
    // `null` for a property whose schema allows it (kernel_id, ramdisk_id) leaves it unset:
    // the record holds string values only. `replace` still needs the property to exist.
    let value = value.filter(|v| !(v.is_null() && is_uuid_property(root)));
    let value = value
        .map(|v| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                bad(format!(
                    "Provided object does not match schema 'image': {} is not of type 'string' \
                     (property '{}')",
                    shown(v),
                    truncate(root, 64)
                ))
            })
        })
        .transpose()?;
    if let Some(v) = &value {
        check_property_value(root, v)?;
    }
    Ok(Checked::Custom {
        op: change.op,
        key: root,
        value,
    })
}

fn type_error(name: &str, v: &Value, expected: &str) -> ModelError {
    bad(format!(
        "Provided object does not match schema 'image': {} is not of type {expected} \
         (attribute '{name}')",
        shown(v)
    ))
}

fn nullable_string(name: &str, v: &Value) -> Result<Option<String>, ModelError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            check_len(name, s, MAX_STRING_LEN)?;
            Ok(Some(s.clone()))
        }
        _ => Err(type_error(name, v, "'null', 'string'")),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, ModelError> {
    v.as_bool().ok_or_else(|| type_error(name, v, "'boolean'"))
}

fn integer(name: &str, v: &Value) -> Result<i32, ModelError> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            check_min(name, n.as_i64().unwrap_or(i64::MAX))
        }
        _ => Err(type_error(name, v, "'integer'")),
    }
}

fn base_value(name: &str, v: &Value, formats: &Formats) -> Result<BaseValue, ModelError> {
    Ok(match name {
        "name" => BaseValue::Name(nullable_string(name, v)?),
        "owner" => BaseValue::Owner(nullable_string(name, v)?),
        "visibility" => match v {
            Value::String(s) => BaseValue::Visibility(s.parse()?),
            _ => return Err(type_error(name, v, "'string'")),
        },
        "protected" => BaseValue::Protected(boolean(name, v)?),
        "os_hidden" => BaseValue::OsHidden(boolean(name, v)?),
        "container_format" => {
            let f = nullable_string(name, v)?;
            if let Some(f) = &f {
                formats.check_container(f)?;
            }
            BaseValue::ContainerFormat(f)
        }
        "disk_format" => {
            let f = nullable_string(name, v)?;
            if let Some(f) = &f {
                formats.check_disk(f)?;
            }
            BaseValue::DiskFormat(f)
        }
        "min_disk" => BaseValue::MinDisk(integer(name, v)?),
        "min_ram" => BaseValue::MinRam(integer(name, v)?),
        "tags" => {
            let items = v.as_array().ok_or_else(|| type_error(name, v, "'array'"))?;
            // Tags are a set in Glance: keep the first occurrence of each.
            let mut tags: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let tag = item
                    .as_str()
                    .ok_or_else(|| type_error(name, item, "'string'"))?;
                check_tag(tag)?;
                if !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_string());
                }
            }
            BaseValue::Tags(tags)
        }
        other => {
            return Err(ModelError::new(
                ErrorKind::Internal,
                format!("unhandled base attribute {other}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::image::ImageId;

    fn image(status: ImageStatus) -> Image {
        Image {
            id: ImageId::new(),
            name: Some("cirros".into()),
            status,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner: Some("p1".into()),
            size: None,
            virtual_size: None,
            container_format: None,
            disk_format: None,
            min_disk: 0,
            min_ram: 0,
            created_at: crate::time::now(),
            updated_at: None,
            deleted_at: None,
            deleted: false,
            tags: vec![],
            properties: BTreeMap::from([("os_distro".to_string(), "cirros".to_string())]),
            locations: vec![],
        }
    }

    fn member() -> Context {
        Context::project("p1", &["member"])
    }

    fn admin() -> Context {
        Context::project("p1", &["admin"])
    }

    /// Parses a v2.1 body and applies it to a queued image as the owner.
    fn run(body: Value) -> Result<ImageUpdate, ModelError> {
        run_as(
            PatchMediaType::V21,
            &image(ImageStatus::Queued),
            body,
            &member(),
        )
    }

    fn run_as(
        media: PatchMediaType,
        img: &Image,
        body: Value,
        ctx: &Context,
    ) -> Result<ImageUpdate, ModelError> {
        let changes = parse_patch(media, &body)?;
        apply_patch(img, media, &changes, ctx)
    }

    fn kind(r: Result<impl fmt::Debug, ModelError>) -> ErrorKind {
        r.unwrap_err().kind()
    }

    #[test]
    fn both_media_types_parse() {
        let v21 = parse_patch(
            PatchMediaType::V21,
            &json!([{"op": "replace", "path": "/name", "value": "x"},
                    {"op": "remove", "path": "/a~1b~0c", "value": 1}]),
        )
        .unwrap();
        assert_eq!(v21[0].op, PatchOp::Replace);
        assert_eq!(v21[0].path, vec!["name"]);
        assert_eq!(v21[0].value, Some(json!("x")));
        assert_eq!(v21[1].path, vec!["a/b~c"]);
        assert_eq!(v21[1].value, None);

        let v20 = parse_patch(
            PatchMediaType::V20,
            &json!([{"add": "/ k ", "value": "v"}, {"remove": "/k"}]),
        )
        .unwrap();
        assert_eq!(v20[0].op, PatchOp::Add);
        assert_eq!(v20[0].path, vec!["k"]);
        assert_eq!(v20[1].op, PatchOp::Remove);

        let both = json!([{"add": "/k", "replace": "/k", "value": "v"}]);
        assert_eq!(
            kind(parse_patch(PatchMediaType::V20, &both)),
            ErrorKind::BadRequest
        );
        let none = json!([{"op": "add", "path": "/k", "value": "v"}]);
        assert_eq!(
            kind(parse_patch(PatchMediaType::V20, &none)),
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn body_must_be_array_of_objects_with_known_ops_and_values() {
        let v21 = PatchMediaType::V21;
        for body in [
            json!({"op": "add"}),
            json!(["add"]),
            json!([{"op": "test", "path": "/name", "value": "x"}]),
            json!([{"op": "move", "path": "/name", "from": "/x"}]),
            json!([{"op": "copy", "path": "/name", "from": "/x"}]),
            json!([{"op": "add", "path": "/name"}]),
            json!([{"op": "replace", "path": "/name"}]),
            json!([{"path": "/name", "value": "x"}]),
            json!([{"op": "add", "value": "x"}]),
            json!([{"op": "add", "path": 5, "value": "x"}]),
        ] {
            assert_eq!(
                kind(parse_patch(v21, &body)),
                ErrorKind::BadRequest,
                "{body}"
            );
        }
        let err = parse_patch(v21, &json!([{"op": "test", "path": "/a", "value": 1}]));
        assert!(err.unwrap_err().message().contains("Invalid operation"));
        assert!(parse_patch(v21, &json!([])).unwrap().is_empty());
    }

    #[test]
    fn content_type_detection() {
        assert_eq!(
            PatchMediaType::from_content_type("application/openstack-images-v2.1-json-patch"),
            Some(PatchMediaType::V21)
        );
        assert_eq!(
            PatchMediaType::from_content_type(
                "Application/OpenStack-Images-v2.0-JSON-Patch; charset=UTF-8"
            ),
            Some(PatchMediaType::V20)
        );
        assert_eq!(PatchMediaType::from_content_type("application/json"), None);
        assert_eq!(
            PatchMediaType::from_content_type("application/json-patch+json"),
            None
        );
        assert_eq!(PatchMediaType::from_content_type(""), None);
        assert!(ACCEPT_PATCH.contains(PatchMediaType::V20.as_str()));
        assert!(ACCEPT_PATCH.contains(PatchMediaType::V21.as_str()));
    }

    #[test]
    fn bad_pointers_are_rejected() {
        for path in [
            "name", "//name", "/a//b", "/a/ /b", "/name/", "/a~2b", "/a~", "~0",
        ] {
            let body = json!([{"op": "replace", "path": path, "value": "x"}]);
            assert_eq!(
                kind(parse_patch(PatchMediaType::V21, &body)),
                ErrorKind::BadRequest,
                "{path}"
            );
        }
    }

    #[test]
    fn path_depth_follows_glance_limits() {
        let v21 = PatchMediaType::V21;
        let ok = |op: &str, path: &str| {
            parse_patch(v21, &json!([{"op": op, "path": path, "value": []}])).is_ok()
        };
        assert!(ok("add", "/locations/-"));
        assert!(ok("add", "/locations/0"));
        assert!(ok("remove", "/locations/0"));
        assert!(ok("replace", "/locations"));
        assert!(!ok("add", "/locations"));
        assert!(!ok("remove", "/locations"));
        assert!(!ok("replace", "/locations/0"));
        assert!(!ok("add", "/tags/-"));
        assert!(!ok("replace", "/name/first"));
        let err = parse_patch(v21, &json!([{"op": "add", "path": "/a/b", "value": "x"}]));
        assert!(err.unwrap_err().message().contains("Invalid JSON pointer"));
    }

    #[test]
    fn read_only_attributes_are_forbidden() {
        for attr in [
            "status",
            "id",
            "checksum",
            "size",
            "created_at",
            "self",
            "os_hash_value",
        ] {
            for op in ["add", "replace", "remove"] {
                let path = format!("/{attr}");
                let err = run(json!([{"op": op, "path": path, "value": "x"}])).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Forbidden, "{op} {attr}");
                assert_eq!(err.message(), format!("Attribute '{attr}' is read-only."));
            }
        }
    }

    #[test]
    fn reserved_attributes_are_forbidden() {
        for attr in ["location", "deleted", "deleted_at"] {
            let err =
                run(json!([{"op": "add", "path": format!("/{attr}"), "value": "x"}])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            assert_eq!(err.message(), format!("Attribute '{attr}' is reserved."));
        }
    }

    #[test]
    fn os_glance_prefix_is_reserved() {
        for op in ["add", "replace", "remove"] {
            let body = json!([{"op": op, "path": "/os_glance_import_task", "value": "x"}]);
            let err = run(body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden);
            assert!(err.message().contains("reserved"));
        }
    }

    #[test]
    fn locations_are_refused_while_hidden() {
        for body in [
            json!([{"op": "add", "path": "/locations/-", "value": {"url": "http://x", "metadata": {}}}]),
            json!([{"op": "replace", "path": "/locations", "value": [{"url": "http://x", "metadata": {}}]}]),
            json!([{"op": "replace", "path": "/locations", "value": []}]),
            json!([{"op": "remove", "path": "/locations/0"}]),
        ] {
            assert_eq!(kind(run(body.clone())), ErrorKind::Forbidden, "{body}");
        }
        let err = run(json!([{"op": "remove", "path": "/locations/0"}])).unwrap_err();
        assert!(err.message().contains("locations are invisible"));
    }

    #[test]
    fn base_attributes_may_not_be_removed() {
        for attr in WRITABLE_BASE_ATTRS {
            let err = run(json!([{"op": "remove", "path": format!("/{attr}")}])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Forbidden, "{attr}");
            assert_eq!(
                err.message(),
                format!("Property {attr} may not be removed.")
            );
        }
    }

    #[test]
    fn base_attributes_are_set_by_add_and_replace() {
        let u = run(json!([
            {"op": "replace", "path": "/name", "value": null},
            {"op": "add", "path": "/protected", "value": true},
            {"op": "replace", "path": "/os_hidden", "value": true},
            {"op": "replace", "path": "/visibility", "value": "community"},
            {"op": "add", "path": "/min_disk", "value": 10},
            {"op": "replace", "path": "/disk_format", "value": "qcow2"},
            {"op": "replace", "path": "/container_format", "value": "bare"},
        ]))
        .unwrap();
        assert_eq!(u.name, Some(None));
        assert_eq!(u.protected, Some(true));
        assert_eq!(u.os_hidden, Some(true));
        assert_eq!(u.visibility, Some(Visibility::Community));
        assert_eq!(u.min_disk, Some(10));
        assert_eq!(u.min_ram, None);
        assert_eq!(u.disk_format, Some(Some("qcow2".into())));
        assert_eq!(u.container_format, Some(Some("bare".into())));
        assert_eq!(u.status, None);
        assert_eq!(u.from_state, None);
        assert!(u.set_properties.is_empty() && u.remove_properties.is_empty());
    }

    #[test]
    fn base_attribute_types_are_checked() {
        for (path, value) in [
            ("/name", json!(5)),
            ("/name", json!("n".repeat(256))),
            ("/visibility", json!("everyone")),
            ("/visibility", json!(true)),
            ("/protected", json!("true")),
            ("/os_hidden", json!(1)),
            ("/min_disk", json!(1.5)),
            ("/min_disk", json!("1")),
            ("/min_disk", json!(i64::from(i32::MAX) + 1)),
            ("/disk_format", json!("floppy")),
            ("/container_format", json!(1)),
            ("/tags", json!("a")),
            ("/tags", json!([1])),
            ("/tags", json!(["t".repeat(256)])),
        ] {
            let body = json!([{"op": "replace", "path": path, "value": value}]);
            assert_eq!(kind(run(body)), ErrorKind::BadRequest, "{path} {value}");
        }
    }

    #[test]
    fn negative_min_ram_is_bad_request() {
        let err = run(json!([{"op": "replace", "path": "/min_ram", "value": -1}])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert!(err.message().contains("min_ram"));
    }

    #[test]
    fn replace_missing_property_is_conflict() {
        let err = run(json!([{"op": "replace", "path": "/nope", "value": "x"}])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(err.message(), "Property nope does not exist.");
        let u = run(json!([{"op": "replace", "path": "/os_distro", "value": "ubuntu"}])).unwrap();
        assert_eq!(u.set_properties["os_distro"], "ubuntu");
        assert_eq!(
            kind(run(json!([{"op": "remove", "path": "/nope"}]))),
            ErrorKind::Conflict
        );
    }

    #[test]
    fn v20_add_of_existing_property_is_conflict() {
        let img = image(ImageStatus::Queued);
        let body = json!([{"add": "/os_distro", "value": "x"}]);
        let err = run_as(PatchMediaType::V20, &img, body, &member()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let body =
            json!([{"add": "/hw_disk_bus", "value": "scsi"}, {"replace": "/name", "value": "n"}]);
        let u = run_as(PatchMediaType::V20, &img, body, &member()).unwrap();
        assert_eq!(u.set_properties["hw_disk_bus"], "scsi");
        assert_eq!(u.name, Some(Some("n".into())));
    }

    #[test]
    fn v21_add_overwrites_property() {
        let u = run(json!([{"op": "add", "path": "/os_distro", "value": "ubuntu"}])).unwrap();
        assert_eq!(u.set_properties["os_distro"], "ubuntu");
        assert!(u.remove_properties.is_empty());
    }

    #[test]
    fn custom_values_must_be_strings() {
        for value in [
            json!(1),
            json!(null),
            json!(true),
            json!(["a"]),
            json!({"a": "b"}),
        ] {
            let err = run(json!([{"op": "add", "path": "/k", "value": value}])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest, "{value}");
            assert!(err.message().contains("is not of type 'string'"));
        }
        let long_key = format!("/{}", "k".repeat(256));
        assert_eq!(
            kind(run(json!([{"op": "add", "path": long_key, "value": "v"}]))),
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn kernel_and_ramdisk_ids_are_uuids_or_null() {
        let id = "6bbe7cc2-eae7-4c0f-b50d-a7160b0c6a86";
        for key in ["kernel_id", "ramdisk_id"] {
            for op in ["add", "replace"] {
                // The value is checked before whether the property exists (400, not 409).
                let body = json!([{"op": op, "path": format!("/{key}"), "value": "abc"}]);
                let err = run(body).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::BadRequest, "{op} {key}");
                assert!(err.message().contains(key), "{}", err.message());
            }
            let u = run(json!([{"op": "add", "path": format!("/{key}"), "value": id}])).unwrap();
            assert_eq!(u.set_properties[key], id);
            // null unsets: nothing to do on an image without it, removed from one with it.
            let u = run(json!([{"op": "add", "path": format!("/{key}"), "value": null}])).unwrap();
            assert!(u.set_properties.is_empty() && u.remove_properties.is_empty());
            let mut img = image(ImageStatus::Active);
            img.properties.insert(key.to_string(), id.to_string());
            let body = json!([{"op": "replace", "path": format!("/{key}"), "value": null}]);
            let u = run_as(PatchMediaType::V21, &img, body, &member()).unwrap();
            assert_eq!(u.remove_properties, vec![key.to_string()]);
        }
    }

    #[test]
    fn owner_change_needs_admin() {
        for op in ["add", "replace"] {
            let body = json!([{"op": op, "path": "/owner", "value": "p2"}]);
            assert_eq!(kind(run(body.clone())), ErrorKind::Forbidden);
            let img = image(ImageStatus::Active);
            let u = run_as(PatchMediaType::V21, &img, body, &admin()).unwrap();
            assert_eq!(u.owner, Some(Some("p2".into())));
        }
    }

    #[test]
    fn publicize_needs_admin() {
        let body = json!([{"op": "replace", "path": "/visibility", "value": "public"}]);
        let err = run(body.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert!(err.message().contains("publicize_image"));
        let img = image(ImageStatus::Active);
        let u = run_as(PatchMediaType::V21, &img, body, &admin()).unwrap();
        assert_eq!(u.visibility, Some(Visibility::Public));
        let private = json!([{"op": "replace", "path": "/visibility", "value": "private"}]);
        assert_eq!(run(private).unwrap().visibility, Some(Visibility::Private));
    }

    #[test]
    fn formats_change_only_while_queued_or_importing() {
        for field in ["disk_format", "container_format"] {
            let value = if field == "disk_format" {
                "raw"
            } else {
                "bare"
            };
            let body = json!([{"op": "replace", "path": format!("/{field}"), "value": value}]);
            for status in [ImageStatus::Queued, ImageStatus::Importing] {
                assert!(
                    run_as(PatchMediaType::V21, &image(status), body.clone(), &admin()).is_ok()
                );
            }
            for status in [
                ImageStatus::Active,
                ImageStatus::Saving,
                ImageStatus::Deactivated,
            ] {
                let r = run_as(PatchMediaType::V21, &image(status), body.clone(), &admin());
                assert_eq!(kind(r), ErrorKind::Forbidden, "{field} {status}");
            }
        }
    }

    #[test]
    fn tags_are_deduplicated_in_order() {
        let body = json!([{"op": "replace", "path": "/tags", "value": ["b", "a", "b", "c", "a"]}]);
        assert_eq!(
            run(body).unwrap().tags,
            Some(vec!["b".to_string(), "a".into(), "c".into()])
        );
        let empty = json!([{"op": "add", "path": "/tags", "value": []}]);
        assert_eq!(run(empty).unwrap().tags, Some(vec![]));
    }

    #[test]
    fn ops_apply_in_sequence() {
        // Added then removed in one patch: never reaches the registry.
        let u = run(json!([
            {"op": "add", "path": "/k", "value": "v"},
            {"op": "remove", "path": "/k"},
        ]))
        .unwrap();
        assert_eq!(u, ImageUpdate::default());
        // Existing property set then removed: only a removal.
        let u = run(json!([
            {"op": "replace", "path": "/os_distro", "value": "x"},
            {"op": "remove", "path": "/os_distro"},
        ]))
        .unwrap();
        assert!(u.set_properties.is_empty());
        assert_eq!(u.remove_properties, vec!["os_distro".to_string()]);
        // Removed then replaced: the property is gone by then.
        let r = run(json!([
            {"op": "remove", "path": "/os_distro"},
            {"op": "replace", "path": "/os_distro", "value": "x"},
        ]));
        assert_eq!(kind(r), ErrorKind::Conflict);
        // Added then replaced.
        let u = run(json!([
            {"op": "add", "path": "/k", "value": "1"},
            {"op": "replace", "path": "/k", "value": "2"},
        ]))
        .unwrap();
        assert_eq!(u.set_properties["k"], "2");
        // Removed then re-added: an overwrite.
        let u = run(json!([
            {"op": "remove", "path": "/os_distro"},
            {"op": "add", "path": "/os_distro", "value": "y"},
        ]))
        .unwrap();
        assert_eq!(u.set_properties["os_distro"], "y");
        assert!(u.remove_properties.is_empty());
    }

    #[test]
    fn every_change_is_checked_before_any_is_applied() {
        // Glance's deserializer rejects a read-only path before the controller's 409.
        let r = run(json!([
            {"op": "replace", "path": "/nope", "value": "x"},
            {"op": "replace", "path": "/status", "value": "active"},
        ]));
        assert_eq!(kind(r), ErrorKind::Forbidden);
    }
}

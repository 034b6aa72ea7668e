//! How images and members look on the wire of Images API v2: Glance's field set, custom
//! properties flattened beside the base fields, `self`/`file`/`schema` links, ISO times.

use glance_model::time::isotime;
use glance_model::{Image, Member};
use serde_json::{Map, Value, json};

use crate::app::AppState;

/// Properties Glance keeps for itself and never shows.
const HIDDEN_PROPERTIES: &[&str] = &["os_glance_stage_host", "os_glance_hash_op_host"];

/// The image as `GET /v2/images/{id}` shows it.
pub fn image(state: &AppState, img: &Image) -> Value {
    let mut m = Map::new();
    for (k, v) in &img.properties {
        if !HIDDEN_PROPERTIES.contains(&k.as_str()) {
            m.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let id = img.id.to_string();
    let base = json!({
        "name": img.name,
        "disk_format": img.disk_format,
        "container_format": img.container_format,
        "visibility": img.visibility.as_str(),
        "size": img.size,
        "virtual_size": img.virtual_size,
        "status": img.status.as_str(),
        "checksum": img.checksum,
        "protected": img.protected,
        "min_ram": img.min_ram,
        "min_disk": img.min_disk,
        "owner": img.owner,
        "os_hidden": img.os_hidden,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "id": id,
        "created_at": isotime(&img.created_at),
        "updated_at": isotime(img.updated_at.as_ref().unwrap_or(&img.created_at)),
        "tags": img.tags,
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(b) = base {
        m.extend(b);
    }
    let locations = sorted_locations(state, img);
    if state.stores.multi_store() && !locations.is_empty() {
        let ids: Vec<&str> = locations.iter().filter_map(|(_, s)| *s).collect();
        m.insert("stores".into(), Value::String(ids.join(",")));
    }
    if state.config.show_image_direct_url
        && let Some((url, _)) = locations.first()
    {
        m.insert("direct_url".into(), Value::String((*url).to_string()));
    }
    Value::Object(m)
}

/// The image's active locations with their store ids, highest store weight first.
pub fn sorted_locations<'a>(state: &AppState, img: &'a Image) -> Vec<(&'a str, Option<&'a str>)> {
    let mut locs: Vec<(&str, Option<&str>)> = img
        .locations
        .iter()
        .filter(|l| l.status == "active")
        .map(|l| {
            (
                l.url.as_str(),
                l.metadata.get("store").and_then(Value::as_str),
            )
        })
        .collect();
    locs.sort_by_key(|(_, store)| std::cmp::Reverse(state.stores.weight(*store)));
    locs
}

/// A membership as `GET /v2/images/{id}/members/{member}` shows it.
pub fn member(m: &Member) -> Value {
    json!({
        "image_id": m.image_id.to_string(),
        "member_id": m.member_id,
        "status": m.status.as_str(),
        "created_at": isotime(&m.created_at),
        "updated_at": isotime(&m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

//! How images and members look on the wire of Images API v2: Glance's field set, custom
//! properties flattened beside the base fields, `self`/`file`/`schema` links, ISO times.

use glance_model::time::isotime;
use glance_model::{Context, Image, Member};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::app::AppState;

/// Properties Glance keeps for itself and never shows.
const HIDDEN_PROPERTIES: &[&str] = &["os_glance_stage_host", "os_glance_hash_op_host"];

/// Whether a custom property is shown: not one Glance hides, and not named like a field the
/// view writes itself (the model refuses such names; an adopted database might hold one).
fn shown(key: &str) -> bool {
    !matches!(
        key,
        "name"
            | "disk_format"
            | "container_format"
            | "visibility"
            | "size"
            | "virtual_size"
            | "status"
            | "checksum"
            | "protected"
            | "min_ram"
            | "min_disk"
            | "owner"
            | "os_hidden"
            | "os_hash_algo"
            | "os_hash_value"
            | "id"
            | "created_at"
            | "updated_at"
            | "tags"
            | "self"
            | "file"
            | "schema"
            | "stores"
            | "direct_url"
    ) && !HIDDEN_PROPERTIES.contains(&key)
}

/// The image as `GET /v2/images/{id}` shows it: written straight to the response by its
/// `Serialize`, with no JSON tree built in between (building one per image, a sorted map of
/// about 35 keys, was a fifth of glance-api's CPU in a list of 25).
pub struct ImageView<'a> {
    img: &'a Image,
    stores: Option<String>,
    direct_url: Option<&'a str>,
    /// `locations` (with `show_multiple_locations`): `None` hides the field.
    locations: Option<Vec<&'a glance_model::image::Location>>,
}

/// The view of `img` without its locations (no `direct_url`, no `locations`): for a caller the
/// location policy was not asked about. [`image_for`] is the full view.
pub fn image<'a>(state: &AppState, img: &'a Image) -> ImageView<'a> {
    let locations = sorted_locations(state, img);
    let stores = (state.stores.multi_store() && !locations.is_empty()).then(|| {
        let ids: Vec<&str> = locations.iter().filter_map(|(_, s)| *s).collect();
        ids.join(",")
    });
    ImageView {
        img,
        stores,
        direct_url: None,
        locations: None,
    }
}

/// The view of `img` for `ctx`: with `show_image_direct_url` its best location as
/// `direct_url`, with `show_multiple_locations` every location as `locations`, both only when
/// the policy `get_image_location` lets the caller see them (an rbd:// URL lets Nova and
/// Cinder clone the data; OSSN-0065/0090). A caller it refuses gets `locations: []`, as from
/// Glance.
pub fn image_for<'a>(state: &AppState, ctx: &Context, img: &'a Image) -> ImageView<'a> {
    let mut view = image(state, img);
    let config = &state.config;
    if !config.show_image_direct_url && !config.show_multiple_locations {
        return view;
    }
    let allowed = state.policy.allows_location("get_image_location", ctx, img);
    let sorted = if allowed {
        sorted_location_rows(state, img)
    } else {
        Vec::new()
    };
    if config.show_image_direct_url {
        view.direct_url = sorted.first().map(|l| l.url.as_str());
    }
    if config.show_multiple_locations {
        view.locations = Some(sorted);
    }
    view
}

impl Serialize for ImageView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let img = self.img;
        let id = img.id;
        let mut m = s.serialize_map(None)?;
        for (k, v) in &img.properties {
            if shown(k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("name", &img.name)?;
        m.serialize_entry("disk_format", &img.disk_format)?;
        m.serialize_entry("container_format", &img.container_format)?;
        m.serialize_entry("visibility", img.visibility.as_str())?;
        m.serialize_entry("size", &img.size)?;
        m.serialize_entry("virtual_size", &img.virtual_size)?;
        m.serialize_entry("status", img.status.as_str())?;
        m.serialize_entry("checksum", &img.checksum)?;
        m.serialize_entry("protected", &img.protected)?;
        m.serialize_entry("min_ram", &img.min_ram)?;
        m.serialize_entry("min_disk", &img.min_disk)?;
        m.serialize_entry("owner", &img.owner)?;
        m.serialize_entry("os_hidden", &img.os_hidden)?;
        m.serialize_entry("os_hash_algo", &img.os_hash_algo)?;
        m.serialize_entry("os_hash_value", &img.os_hash_value)?;
        m.serialize_entry("id", &format_args!("{id}"))?;
        m.serialize_entry("created_at", &isotime(&img.created_at))?;
        m.serialize_entry(
            "updated_at",
            &isotime(img.updated_at.as_ref().unwrap_or(&img.created_at)),
        )?;
        m.serialize_entry("tags", &img.tags)?;
        m.serialize_entry("self", &format_args!("/v2/images/{id}"))?;
        m.serialize_entry("file", &format_args!("/v2/images/{id}/file"))?;
        m.serialize_entry("schema", "/v2/schemas/image")?;
        if let Some(stores) = &self.stores {
            m.serialize_entry("stores", stores)?;
        }
        if let Some(url) = self.direct_url {
            m.serialize_entry("direct_url", url)?;
        }
        if let Some(locations) = &self.locations {
            let shown: Vec<Value> = locations
                .iter()
                .map(|l| json!({"url": l.url, "metadata": l.metadata}))
                .collect();
            m.serialize_entry("locations", &shown)?;
        }
        m.end()
    }
}

/// The body of `GET /v2/images`.
#[derive(serde::Serialize)]
pub struct ImageList<'a> {
    /// The page.
    pub images: Vec<ImageView<'a>>,
    /// The first page's link.
    pub first: String,
    /// The schema's link.
    pub schema: &'static str,
    /// The next page's link, when this page is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The image's active locations, highest store weight first.
pub fn sorted_location_rows<'a>(
    state: &AppState,
    img: &'a Image,
) -> Vec<&'a glance_model::image::Location> {
    let mut locs: Vec<&glance_model::image::Location> = img
        .locations
        .iter()
        .filter(|l| l.status == "active")
        .collect();
    locs.sort_by_key(|l| {
        std::cmp::Reverse(
            state
                .stores
                .weight(l.metadata.get("store").and_then(Value::as_str)),
        )
    });
    locs
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

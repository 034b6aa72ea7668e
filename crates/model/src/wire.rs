//! The registry protocol's JSON bodies (version 1, under `/v1`), shared by glance-registry
//! and glance-api's registry client, plus the headers that carry the caller's context.
//!
//! Request bodies reject unknown fields so a typo never silently drops a change.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ModelError;
use crate::image::{
    Image, ImageId, MAX_STRING_LEN, check_len, check_min, check_property_key, check_property_value,
    check_tag,
};
use crate::member::{Member, MemberStatus, validate_member_id};
use crate::status::ImageStatus;
use crate::visibility::Visibility;

/// Header carrying the caller's user id.
pub const HEADER_USER_ID: &str = "x-user-id";
/// Header carrying the caller's project id.
pub const HEADER_PROJECT_ID: &str = "x-project-id";
/// Header carrying the caller's roles, comma-separated.
pub const HEADER_ROLES: &str = "x-roles";
/// Header saying the caller is an admin (`true`/`false`).
pub const HEADER_IS_ADMIN: &str = "x-glance-is-admin";
/// Header glance-api sets on a registry write it sends again because the first sending's
/// answer was lost (see [`crate::replay`]); its value is the attempt number.
pub const HEADER_REPLAY: &str = "x-glance-replay";
/// Header carrying the request id, shared with Glance's public API.
pub const HEADER_REQUEST_ID: &str = "x-openstack-request-id";

/// How long glance-registry keeps an idle keep-alive connection open, seconds.
pub const REGISTRY_KEEP_ALIVE_SECS: u64 = 75;
/// How long glance-api keeps an idle connection to the registry in its pool, seconds. Shorter
/// than [`REGISTRY_KEEP_ALIVE_SECS`], so the API gives a connection up before the registry
/// closes it: the other way round, a request sent on a connection just as the registry closed
/// it fails ("connection closed before message completed").
pub const REGISTRY_CLIENT_IDLE_SECS: u64 = 30;

const _: () = assert!(REGISTRY_CLIENT_IDLE_SECS < REGISTRY_KEEP_ALIVE_SECS);

/// Body of `POST /v1/images`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewImage {
    /// Client-chosen id; a fresh one when absent.
    #[serde(default)]
    pub id: Option<ImageId>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Visibility; `shared` when absent.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Protected flag.
    #[serde(default)]
    pub protected: bool,
    /// Hidden flag.
    #[serde(default)]
    pub os_hidden: bool,
    /// Owning project; the caller's project when absent.
    #[serde(default)]
    pub owner: Option<String>,
    /// Container format.
    #[serde(default)]
    pub container_format: Option<String>,
    /// Disk format.
    #[serde(default)]
    pub disk_format: Option<String>,
    /// Minimum disk (GB).
    #[serde(default)]
    pub min_disk: i32,
    /// Minimum RAM (MB).
    #[serde(default)]
    pub min_ram: i32,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Custom properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl NewImage {
    /// Checks lengths, keys and ranges; formats are checked by the API against its config.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(name) = &self.name {
            check_len("name", name, MAX_STRING_LEN)?;
        }
        if let Some(owner) = &self.owner {
            check_len("owner", owner, MAX_STRING_LEN)?;
        }
        check_formats(
            self.container_format.as_deref(),
            self.disk_format.as_deref(),
        )?;
        check_min("min_disk", i64::from(self.min_disk))?;
        check_min("min_ram", i64::from(self.min_ram))?;
        self.tags.iter().try_for_each(|t| check_tag(t))?;
        self.properties.iter().try_for_each(|(k, v)| {
            check_property_key(k)?;
            check_property_value(k, v)
        })
    }
}

fn check_formats(container: Option<&str>, disk: Option<&str>) -> Result<(), ModelError> {
    if let Some(c) = container {
        check_len("container_format", c, 20)?;
    }
    if let Some(d) = disk {
        check_len("disk_format", d, 20)?;
    }
    Ok(())
}

/// Body of `PATCH /v1/images/{id}`: only the fields present change.
/// `Some(None)` clears a nullable field; `from_state` makes the change a compare-and-swap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageUpdate {
    /// Apply only if the image is currently in this status (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_state: Option<ImageStatus>,
    /// New status; checked against the transition table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImageStatus>,
    /// New name (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<Option<String>>,
    /// New visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// New protected flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    /// New hidden flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_hidden: Option<bool>,
    /// New owner (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub owner: Option<Option<String>>,
    /// New container format (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_format: Option<Option<String>>,
    /// New disk format (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_format: Option<Option<String>>,
    /// New minimum disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<i32>,
    /// New minimum RAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<i32>,
    /// Data size (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<Option<i64>>,
    /// Virtual size (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_size: Option<Option<i64>>,
    /// MD5 (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub checksum: Option<Option<String>>,
    /// Hash algorithm (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_hash_algo: Option<Option<String>>,
    /// Hash value (`null` clears).
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_hash_value: Option<Option<String>>,
    /// Custom properties to add or overwrite.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_properties: BTreeMap<String, String>,
    /// Custom properties to remove; a missing one is a 409.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_properties: Vec<String>,
    /// Replaces the whole tag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// Deserializes a present field (even `null`) as `Some(..)`, so absent and `null` differ.
fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl ImageUpdate {
    /// Checks lengths, keys and ranges of the fields present.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(Some(name)) = &self.name {
            check_len("name", name, MAX_STRING_LEN)?;
        }
        if let Some(Some(owner)) = &self.owner {
            check_len("owner", owner, MAX_STRING_LEN)?;
        }
        check_formats(
            self.container_format.clone().flatten().as_deref(),
            self.disk_format.clone().flatten().as_deref(),
        )?;
        if let Some(v) = self.min_disk {
            check_min("min_disk", i64::from(v))?;
        }
        if let Some(v) = self.min_ram {
            check_min("min_ram", i64::from(v))?;
        }
        for v in [self.size, self.virtual_size]
            .into_iter()
            .flatten()
            .flatten()
        {
            if v < 0 {
                return Err(ModelError::bad_request(format!(
                    "size must not be negative, got {v}"
                )));
            }
        }
        if let Some(Some(c)) = &self.checksum {
            check_len("checksum", c, 32)?;
        }
        if let Some(Some(a)) = &self.os_hash_algo {
            check_len("os_hash_algo", a, 64)?;
        }
        if let Some(Some(h)) = &self.os_hash_value {
            check_len("os_hash_value", h, 128)?;
        }
        if let Some(tags) = &self.tags {
            tags.iter().try_for_each(|t| check_tag(t))?;
        }
        self.set_properties
            .iter()
            .try_for_each(|(k, v)| check_property_value(k, v))?;
        self.set_properties
            .keys()
            .chain(self.remove_properties.iter())
            .try_for_each(|k| check_property_key(k))
    }
}

/// Response of `GET /v1/images`. The registry writes it from its own list type (whose JSON
/// is an [`Image`]'s); glance-api reads it as images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageList<I = Image> {
    /// One page of images.
    pub images: Vec<I>,
}

/// Body of `POST /v1/images/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The project to share with.
    pub member: String,
}

impl NewMember {
    /// Checks the member id.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_member_id(&self.member)
    }
}

/// Body of `PUT /v1/images/{id}/members/{member}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    /// The member's new answer.
    pub status: MemberStatus,
}

/// Response of `GET /v1/images/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// The image's members.
    pub members: Vec<Member>,
}

/// Body of `POST /v1/images/{id}/locations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLocation {
    /// Store URL.
    pub url: String,
    /// Store metadata (a JSON object).
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl NewLocation {
    /// Checks the URL is present and the metadata is an object.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.url.is_empty() {
            return Err(ModelError::bad_request("Location url must not be empty"));
        }
        check_len("Location url", &self.url, 2048)?;
        if !self.metadata.is_object() {
            return Err(ModelError::bad_request(
                "Location metadata must be a JSON object",
            ));
        }
        Ok(())
    }
}

/// Body of `POST /v1/images/{id}/upload`: start an upload. The image moves `queued → saving`
/// by compare-and-swap and the caller's node holds a lease that it must renew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Who is uploading (e.g. `host:port` of a glance-api node); shown to operators.
    pub node: String,
    /// How long the lease lasts without a heartbeat.
    pub ttl_secs: u32,
}

impl LeaseRequest {
    /// Checks the node name and a sane TTL (1 s to 1 day).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.node.is_empty() {
            return Err(ModelError::bad_request("Lease node must not be empty"));
        }
        check_len("Lease node", &self.node, MAX_STRING_LEN)?;
        if !(1..=86_400).contains(&self.ttl_secs) {
            return Err(ModelError::bad_request(format!(
                "Lease ttl_secs must be between 1 and 86400, got {}",
                self.ttl_secs
            )));
        }
        Ok(())
    }
}

/// An upload lease as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The image being uploaded.
    pub image_id: ImageId,
    /// Who holds the lease.
    pub node: String,
    /// Opaque token the holder presents to renew or release.
    pub token: String,
    /// When the lease runs out unless renewed (UTC).
    #[serde(with = "crate::time::iso")]
    pub expires_at: NaiveDateTime,
    /// Last heartbeat (UTC).
    #[serde(with = "crate::time::iso")]
    pub heartbeat_at: NaiveDateTime,
}

/// Body of the heartbeat and release calls: the token the holder got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseToken {
    /// The lease token.
    pub token: String,
    /// New TTL for a heartbeat (keeps the old one when absent).
    #[serde(default)]
    pub ttl_secs: Option<u32>,
    /// For the lease of an import: the task's message to record with a heartbeat (progress)
    /// or a release (why it failed). Left out when none, so older registries take the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Body of `POST /v1/images/{id}/upload/complete`: the data is stored; record it and make
/// the image `active` (compare-and-swap from `saving`, lease released) in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadComplete {
    /// The lease token of the upload.
    pub token: String,
    /// Bytes stored.
    pub size: i64,
    /// MD5 hex.
    pub checksum: String,
    /// Multihash algorithm (e.g. `sha512`).
    pub os_hash_algo: String,
    /// Multihash hex digest.
    pub os_hash_value: String,
    /// The size the image has when attached, when the format inspector found it (left out
    /// when not, so a registry of the previous release still takes the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<i64>,
    /// Where the data now lives.
    pub location: NewLocation,
}

impl UploadComplete {
    /// Checks sizes and lengths.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.size < 0 {
            return Err(ModelError::bad_request("size must not be negative"));
        }
        if self.virtual_size.is_some_and(|v| v < 0) {
            return Err(ModelError::bad_request("virtual_size must not be negative"));
        }
        check_len("checksum", &self.checksum, 32)?;
        check_len("os_hash_algo", &self.os_hash_algo, 64)?;
        check_len("os_hash_value", &self.os_hash_value, 128)?;
        self.location.validate()
    }
}

/// Body of `POST /v1/images/{id}/locations`: edits of an image's locations, applied in order
/// to the locations the image has when its row lock is taken (not those the caller read), then
/// checked as a whole: the quota, no duplicate, no active image left without a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationsChange {
    /// The edits, in order.
    pub ops: Vec<LocationOp>,
    /// `image_location_quota`: more locations than this after the edits is a 413 and nothing
    /// changes. Checked under the row lock, so concurrent adds cannot pass it together.
    #[serde(default)]
    pub quota: Option<u32>,
    /// What a `queued` image that gets its first location becomes `active` with.
    #[serde(default)]
    pub activate: Option<Activation>,
}

/// One edit of an image's locations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LocationOp {
    /// Inserts `location` at `index` (`None` or past the end: appends).
    Add {
        /// Position in the list.
        #[serde(default)]
        index: Option<usize>,
        /// The new location.
        location: NewLocation,
    },
    /// Removes the location with this URL (409 if the image has none).
    Remove {
        /// Its URL.
        url: String,
    },
    /// Replaces the whole list, if it still holds exactly the URLs `expected` (409 otherwise).
    Replace {
        /// The URLs the caller read, in order.
        expected: Vec<String>,
        /// The new list.
        locations: Vec<NewLocation>,
    },
}

/// Size and digests recorded when a location makes a `queued` image `active`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    /// Bytes.
    pub size: i64,
    /// MD5 hex, when known.
    #[serde(default)]
    pub checksum: Option<String>,
    /// `os_hash_algo`, when known.
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    /// `os_hash_value`, when known.
    #[serde(default)]
    pub os_hash_value: Option<String>,
}

impl LocationsChange {
    /// Checks every location and the activation's values.
    pub fn validate(&self) -> Result<(), ModelError> {
        for op in &self.ops {
            match op {
                LocationOp::Add { location, .. } => location.validate()?,
                LocationOp::Remove { url } => {
                    if url.is_empty() {
                        return Err(ModelError::bad_request("Location url must not be empty"));
                    }
                }
                LocationOp::Replace { locations, .. } => {
                    for l in locations {
                        l.validate()?;
                    }
                }
            }
        }
        if let Some(a) = &self.activate {
            if a.size < 0 {
                return Err(ModelError::bad_request("size must not be negative"));
            }
            for (field, value, max) in [
                ("checksum", &a.checksum, 32),
                ("os_hash_algo", &a.os_hash_algo, 64),
                ("os_hash_value", &a.os_hash_value, 128),
            ] {
                if let Some(v) = value {
                    check_len(field, v, max)?;
                }
            }
        }
        Ok(())
    }
}

// ---- Interoperable import: staging, import leases and tasks (issue 30) ----

/// Body of `POST /v1/images/{id}/stage/complete`: the staged data is whole; record its size
/// (and where it was staged) and release the stage lease; the image stays `uploading`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageComplete {
    /// The lease token of the stage.
    pub token: String,
    /// Bytes staged.
    pub size: i64,
    /// `os_glance_stage_host`: the URL of the node holding the staged data, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_host: Option<String>,
}

impl StageComplete {
    /// Checks the size and the host's length.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.size < 0 {
            return Err(ModelError::bad_request("size must not be negative"));
        }
        if let Some(h) = &self.stage_host {
            check_len("stage_host", h, MAX_STRING_LEN)?;
        }
        Ok(())
    }
}

/// The import methods, as Glance names them.
pub const IMPORT_METHODS: [&str; 4] = [
    "glance-direct",
    "web-download",
    "copy-image",
    "glance-download",
];

/// Body of `POST /v1/images/{id}/import`: takes the import lock, moves the image to
/// `importing`, takes a lease for the importing node and records the task, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportStart {
    /// The importing node and how long its lease lasts without a heartbeat.
    pub lease: LeaseRequest,
    /// `glance-direct`, `web-download`, ...: decides which status the image must be in.
    pub method: String,
    /// The stores the data goes to (`os_glance_importing_to_stores`).
    #[serde(default)]
    pub stores: Vec<String>,
    /// The task's `input`, as the API shows it.
    pub input: serde_json::Value,
}

impl ImportStart {
    /// Checks the lease, the method name and the stores.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.lease.validate()?;
        if !IMPORT_METHODS.contains(&self.method.as_str()) {
            return Err(ModelError::bad_request(format!(
                "Unknown import method name '{}'",
                self.method
            )));
        }
        for s in &self.stores {
            check_len("store", s, MAX_STRING_LEN)?;
        }
        Ok(())
    }
}

/// A task (Glance's `tasks` and `task_info` rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task id.
    pub id: String,
    /// `api_image_import`, `import`, `location_import`.
    #[serde(rename = "type")]
    pub task_type: String,
    /// `pending`, `processing`, `success`, `failure`.
    pub status: String,
    /// The project that owns it.
    pub owner: String,
    /// When it expires (set once it ends).
    #[serde(with = "crate::time::iso_opt")]
    pub expires_at: Option<NaiveDateTime>,
    /// Created.
    #[serde(with = "crate::time::iso")]
    pub created_at: NaiveDateTime,
    /// Last changed.
    #[serde(with = "crate::time::iso_opt")]
    pub updated_at: Option<NaiveDateTime>,
    /// The image it works on.
    pub image_id: Option<String>,
    /// The request that made it.
    pub request_id: Option<String>,
    /// The user that made it.
    pub user_id: Option<String>,
    /// Its input.
    pub input: serde_json::Value,
    /// Its result, once it succeeded.
    pub result: Option<serde_json::Value>,
    /// Its progress or failure message.
    pub message: String,
}

/// The import lock, lease and task `POST /v1/images/{id}/import` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStarted {
    /// The importing node's lease (renew it; release it with the outcome).
    pub lease: Lease,
    /// The task, `processing`.
    pub task: Task,
}

/// Response of the task list routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// The tasks, newest first.
    pub tasks: Vec<Task>,
}

/// Response of `GET /v1/leases/expired`: uploads whose holder stopped renewing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    /// The expired leases.
    pub leases: Vec<Lease>,
}

/// Response of `GET /v1/usage`: what the caller's project stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of image data the project's images hold.
    pub size_bytes: u64,
    /// Images the project owns.
    pub image_count: u64,
    /// The project's images being uploaded or imported (`saving`, `uploading`, `importing`);
    /// 0 from a registry of the previous release.
    #[serde(default)]
    pub uploading_count: u64,
    /// Bytes of the project's staged data (images `uploading` or `importing`); 0 from a
    /// registry of the previous release.
    #[serde(default)]
    pub staging_bytes: u64,
}

/// The JSON error body both daemons send (Glance's JSON error shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A message a person can act on.
    pub message: String,
    /// `"<status> <reason>"`, e.g. `"404 Not Found"`.
    pub code: String,
    /// The reason phrase, e.g. `"Not Found"`.
    pub title: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_image_rejects_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<NewImage>(r#"{"nmae":"x"}"#).is_err());
        let ok: NewImage = serde_json::from_str(r#"{"name":"cirros"}"#).unwrap();
        assert!(ok.validate().is_ok());
        let long = NewImage {
            name: Some("n".repeat(256)),
            ..NewImage::default()
        };
        assert!(long.validate().is_err());
        let neg = NewImage {
            min_ram: -1,
            ..NewImage::default()
        };
        assert!(neg.validate().is_err());
        let mut reserved = NewImage::default();
        reserved.properties.insert("os_glance_x".into(), "v".into());
        assert!(reserved.validate().is_err());
    }

    #[test]
    fn update_distinguishes_absent_from_null() {
        let u: ImageUpdate = serde_json::from_str(r#"{"name":null}"#).unwrap();
        assert_eq!(u.name, Some(None));
        let u: ImageUpdate = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.name, None);
        let u: ImageUpdate = serde_json::from_str(r#"{"name":"a","from_state":"queued"}"#).unwrap();
        assert_eq!(u.name, Some(Some("a".into())));
        assert_eq!(u.from_state, Some(ImageStatus::Queued));
        let back = serde_json::to_string(&u).unwrap();
        assert_eq!(serde_json::from_str::<ImageUpdate>(&back).unwrap(), u);
    }

    #[test]
    fn update_validation() {
        let u = ImageUpdate {
            size: Some(Some(-5)),
            ..ImageUpdate::default()
        };
        assert!(u.validate().is_err());
        let u = ImageUpdate {
            checksum: Some(Some("x".repeat(33))),
            ..ImageUpdate::default()
        };
        assert!(u.validate().is_err());
        let u = ImageUpdate {
            remove_properties: vec!["status".into()],
            ..ImageUpdate::default()
        };
        assert!(u.validate().is_err());
        assert!(serde_json::from_str::<ImageUpdate>(r#"{"status":"frozen"}"#).is_err());
    }

    #[test]
    fn lease_and_location_validation() {
        assert!(
            LeaseRequest {
                node: "n1".into(),
                ttl_secs: 30
            }
            .validate()
            .is_ok()
        );
        assert!(
            LeaseRequest {
                node: "".into(),
                ttl_secs: 30
            }
            .validate()
            .is_err()
        );
        assert!(
            LeaseRequest {
                node: "n".into(),
                ttl_secs: 0
            }
            .validate()
            .is_err()
        );
        let loc: NewLocation = serde_json::from_str(r#"{"url":"file:///x"}"#).unwrap();
        assert!(loc.validate().is_ok() && loc.metadata.is_object());
        let bad = NewLocation {
            url: "u".into(),
            metadata: serde_json::json!([1]),
        };
        assert!(bad.validate().is_err());
        assert!(NewMember { member: "".into() }.validate().is_err());
    }
}

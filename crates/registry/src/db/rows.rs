//! Row types of Glance's image tables and their conversion to and from `model` types.
//! This is the only place that knows how a model value is spelled in a column.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use glance_model::{Image, ImageId, ImageStatus, Location, Member, MemberStatus, Visibility};

use super::schema::{image_locations, image_members, images};
use crate::error::RegistryError;

/// A row of `images`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = images)]
pub struct ImageRow {
    pub id: String,
    pub name: Option<String>,
    pub size: Option<i64>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub checksum: Option<String>,
    pub owner: Option<String>,
    pub min_disk: i32,
    pub min_ram: i32,
    pub protected: bool,
    pub virtual_size: Option<i64>,
    pub visibility: String,
    pub os_hidden: bool,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
}

impl ImageRow {
    /// Builds the model image from the row and its children (already filtered to live rows).
    pub fn into_image(
        self,
        tags: Vec<String>,
        properties: std::collections::BTreeMap<String, String>,
        locations: Vec<Location>,
    ) -> Result<Image, RegistryError> {
        Ok(Image {
            id: parse_id(&self.id)?,
            status: parse_col::<ImageStatus>("images.status", &self.status)?,
            visibility: parse_col::<Visibility>("images.visibility", &self.visibility)?,
            name: self.name,
            protected: self.protected,
            os_hidden: self.os_hidden,
            checksum: self.checksum,
            os_hash_algo: self.os_hash_algo,
            os_hash_value: self.os_hash_value,
            owner: self.owner,
            size: self.size,
            virtual_size: self.virtual_size,
            container_format: self.container_format,
            disk_format: self.disk_format,
            min_disk: self.min_disk,
            min_ram: self.min_ram,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            deleted: self.deleted,
            tags,
            properties,
            locations,
        })
    }
}

/// A row of `image_locations`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = image_locations)]
pub struct LocationRow {
    pub id: i32,
    pub image_id: String,
    pub value: String,
    pub meta_data: Option<String>,
    pub status: String,
}

impl LocationRow {
    /// The model location; unreadable metadata JSON (hand-edited rows) becomes `{}`.
    pub fn into_location(self) -> Location {
        let metadata = self
            .meta_data
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        Location {
            id: i64::from(self.id),
            url: self.value,
            metadata,
            status: self.status,
        }
    }
}

/// A row of `image_members`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = image_members)]
pub struct MemberRow {
    pub image_id: String,
    pub member: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

impl MemberRow {
    /// The model member.
    pub fn into_member(self) -> Result<Member, RegistryError> {
        Ok(Member {
            image_id: parse_id(&self.image_id)?,
            status: parse_col::<MemberStatus>("image_members.status", &self.status)?,
            member_id: self.member,
            updated_at: self.updated_at.unwrap_or(self.created_at),
            created_at: self.created_at,
        })
    }
}

/// Parses an id column. Glance's own rows always hold hyphenated UUIDs.
pub fn parse_id(raw: &str) -> Result<ImageId, RegistryError> {
    uuid::Uuid::parse_str(raw)
        .map(ImageId)
        .map_err(|_| RegistryError::Migration(format!("row with malformed image id '{raw}'")))
}

fn parse_col<T: std::str::FromStr>(column: &str, raw: &str) -> Result<T, RegistryError> {
    raw.parse::<T>()
        .map_err(|_| RegistryError::Migration(format!("unexpected value '{raw}' in {column}")))
}

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
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub updated_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
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
    /// The row's status.
    pub fn status(&self) -> Result<ImageStatus, RegistryError> {
        parse_col::<ImageStatus>("images.status", &self.status)
    }

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
        .map_err(|_| RegistryError::Corrupt(format!("row with malformed image id '{raw}'")))
}

pub(super) fn parse_col<T: std::str::FromStr>(column: &str, raw: &str) -> Result<T, RegistryError> {
    raw.parse::<T>()
        .map_err(|_| RegistryError::Corrupt(format!("unexpected value '{raw}' in {column}")))
}

/// A `Timestamp` column as read for [`ImageRow`]. On SQLite, where timestamps are text,
/// `YYYY-MM-DD hh:mm:ss[.f…]` (what Diesel and Glance write) is read digit by digit; any
/// other spelling goes to Diesel's own reader, which tries a list of chrono formats in turn
/// (its format parsing was 2–3% of glance-registry's CPU in a list). Other backends send
/// timestamps in binary and use Diesel's reader as they are.
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct DbTime(NaiveDateTime);

/// [`DbTime`] of a nullable column.
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct DbTimeOpt(Option<NaiveDateTime>);

impl From<DbTime> for NaiveDateTime {
    fn from(t: DbTime) -> Self {
        t.0
    }
}

impl From<DbTimeOpt> for Option<NaiveDateTime> {
    fn from(t: DbTimeOpt) -> Self {
        t.0
    }
}

mod time_from_sql {
    use chrono::NaiveDateTime;
    use diesel::deserialize::{self, FromSql};
    use diesel::sql_types::{Nullable, Timestamp};

    use glance_model::time::parse_sql_time;

    use super::{DbTime, DbTimeOpt};

    #[cfg(feature = "sqlite")]
    impl FromSql<Timestamp, diesel::sqlite::Sqlite> for DbTime {
        fn from_sql(
            mut value: diesel::sqlite::SqliteValue<'_, '_, '_>,
        ) -> deserialize::Result<Self> {
            if let Some(t) = parse_sql_time(value.read_text()) {
                return Ok(Self(t));
            }
            <NaiveDateTime as FromSql<Timestamp, diesel::sqlite::Sqlite>>::from_sql(value).map(Self)
        }
    }

    macro_rules! as_diesel_reads_it {
        ($backend:ty, $feature:literal) => {
            #[cfg(feature = $feature)]
            impl FromSql<Timestamp, $backend> for DbTime {
                fn from_sql(
                    value: <$backend as diesel::backend::Backend>::RawValue<'_>,
                ) -> deserialize::Result<Self> {
                    <NaiveDateTime as FromSql<Timestamp, $backend>>::from_sql(value).map(Self)
                }
            }
        };
    }
    as_diesel_reads_it!(diesel::mysql::Mysql, "mysql");
    as_diesel_reads_it!(diesel::pg::Pg, "postgres");

    impl<DB: diesel::backend::Backend> FromSql<Nullable<Timestamp>, DB> for DbTimeOpt
    where
        DbTime: FromSql<Timestamp, DB>,
    {
        fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
            DbTime::from_sql(value).map(|t| Self(Some(t.0)))
        }

        fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
            value.map_or(Ok(Self(None)), Self::from_sql)
        }
    }
}

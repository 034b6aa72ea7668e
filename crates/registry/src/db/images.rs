//! Queries on `images` and its children as one aggregate: find, insert, list, update with
//! compare-and-swap status, and soft delete that cascades in one transaction.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use glance_model::filter::ListQuery;
use glance_model::wire::{ImageUpdate, NewImage, Usage};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus, Location};

use super::rows::{ImageRow, LocationRow};
use super::schema::{image_locations, image_members, image_properties, image_tags, images};
use super::{ANY_OF_CHUNK, DbConnection, any_of, on_backend, tags};
use crate::error::RegistryError;

/// Loads a live image the caller may see, with its tags, properties and locations.
pub fn find(conn: &mut DbConnection, ctx: &Context, id: &ImageId) -> Result<Image, RegistryError> {
    let row = find_row(conn, ctx, id)?;
    let mut page = hydrate(conn, vec![row])?;
    page.pop()
        .ok_or_else(|| RegistryError::not_found(format!("No image found with ID {id}")))
}

/// [`find`] as one read (see [`read_together`]).
pub fn show(conn: &mut DbConnection, ctx: &Context, id: &ImageId) -> Result<Image, RegistryError> {
    read_together(conn, |conn| find(conn, ctx, id))
}

/// Runs the statements of one read. On SQLite and PostgreSQL in one read transaction: on
/// SQLite they then share one read lock and one look at the WAL instead of taking and
/// releasing them each, and see one snapshot. On MariaDB/MySQL without one: the registry's
/// sessions run READ COMMITTED (set at connect), where InnoDB gives every statement its own
/// snapshot even inside a transaction, so `BEGIN` and `COMMIT` would only add two round trips
/// to the server (of seven for a show).
pub fn read_together<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(_) => f(conn),
        _ => conn.transaction(f),
    }
}

/// Loads the row of a live image the caller may see; 404 otherwise.
pub fn find_row(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
) -> Result<ImageRow, RegistryError> {
    let sid = id.to_string();
    let row: Option<ImageRow> = on_backend!(conn, |c, _B| {
        images::table
            .filter(images::id.eq(&sid))
            .filter(images::deleted.eq(false))
            .select(ImageRow::as_select())
            // No LIMIT: `id` is the primary key, and SQLite re-plans a statement whose bound
            // LIMIT is rebound, so `first()` would be parsed again on every call.
            .get_result(c)
            .optional()?
    });
    match row {
        Some(row) if is_visible(conn, ctx, &row)? => Ok(row),
        _ => Err(RegistryError::not_found(format!(
            "No image found with ID {id}"
        ))),
    }
}

/// Glance's visibility rule for one image: admins see everything; others see public and
/// community images, their own, and shared images they are a member of (any status).
fn is_visible(
    conn: &mut DbConnection,
    ctx: &Context,
    row: &ImageRow,
) -> Result<bool, RegistryError> {
    if ctx.is_admin || ctx.owns(row.owner.as_deref()) {
        return Ok(true);
    }
    match row.visibility.as_str() {
        "public" | "community" => Ok(true),
        "shared" => {
            let Some(project) = ctx.project_id.as_deref() else {
                return Ok(false);
            };
            let n: i64 = on_backend!(conn, |c, _B| {
                image_members::table
                    .filter(image_members::image_id.eq(&row.id))
                    .filter(image_members::member.eq(project))
                    .filter(image_members::deleted.eq(false))
                    .count()
                    .get_result(c)?
            });
            Ok(n > 0)
        }
        _ => Ok(false),
    }
}

/// Takes the write lock on an image row before reading it, so concurrent writers queue
/// up instead of both acting on the same snapshot. A self-assignment is a row lock on
/// MySQL and PostgreSQL and the database write lock on SQLite, with one portable statement.
pub fn lock(conn: &mut DbConnection, id: &ImageId) -> Result<(), RegistryError> {
    diesel::update(images::table.filter(images::id.eq(id.to_string())))
        .set(images::status.eq(images::status))
        .execute(conn)?;
    Ok(())
}

/// Creates an image with its properties and tags in one transaction.
pub fn insert(
    conn: &mut DbConnection,
    ctx: &Context,
    new: NewImage,
) -> Result<Image, RegistryError> {
    new.validate()?;
    let id = new.id.unwrap_or_default();
    let now = glance_model::time::now();
    let row = ImageRow {
        id: id.to_string(),
        name: new.name,
        size: None,
        status: ImageStatus::Queued.as_str().to_string(),
        created_at: now,
        updated_at: Some(now),
        deleted_at: None,
        deleted: false,
        disk_format: new.disk_format,
        container_format: new.container_format,
        checksum: None,
        owner: new.owner.or_else(|| ctx.project_id.clone()),
        min_disk: new.min_disk,
        min_ram: new.min_ram,
        protected: new.protected,
        virtual_size: None,
        visibility: new.visibility.unwrap_or_default().as_str().to_string(),
        os_hidden: new.os_hidden,
        os_hash_algo: None,
        os_hash_value: None,
    };
    super::transaction(conn, |conn| {
        // A write first: SQLite then takes its write lock at once (waiting up to busy_timeout)
        // instead of failing "database is locked" when a read-started transaction upgrades.
        lock(conn, &id)?;
        // Ids of deleted images stay taken, as in Glance (a soft-deleted row keeps its id).
        let taken: i64 = images::table
            .filter(images::id.eq(&row.id))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(RegistryError::conflict(format!(
                "An image with identifier {id} already exists"
            )));
        }
        diesel::insert_into(images::table)
            .values(&row)
            .execute(conn)?;
        set_properties(conn, &row.id, &new.properties, now)?;
        tags::replace(conn, &row.id, &new.tags, now)?;
        Ok(())
    })?;
    // Built from what was written rather than read back: a new image has no locations, and
    // its live tags are the requested set.
    let tags: std::collections::BTreeSet<String> = new.tags.into_iter().collect();
    row.into_image(tags.into_iter().collect(), new.properties, Vec::new())
}

/// Applies an update in one transaction. With `from_state`, the change happens only if the
/// image is in that status when the row lock is held: of two racing callers one wins and
/// the other gets 409.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    upd: ImageUpdate,
) -> Result<Image, RegistryError> {
    upd.validate()?;
    super::transaction(conn, |conn| {
        lock(conn, id)?;
        let row = find_row(conn, ctx, id)?;
        let current: ImageStatus = row
            .status
            .parse()
            .map_err(|_| RegistryError::Migration(format!("bad status '{}'", row.status)))?;
        if let Some(expected) = upd.from_state
            && current != expected
        {
            return Err(RegistryError::conflict(format!(
                "Image {id} is {current}, not {expected}; another request changed it first"
            )));
        }
        let mut changes = Changeset::from_update(&upd);
        if let Some(to) = upd.status {
            current.check_transition(to)?;
            if to.needs_formats() && current != to {
                let disk = changes
                    .disk_format
                    .clone()
                    .unwrap_or(row.disk_format.clone());
                let container = changes
                    .container_format
                    .clone()
                    .unwrap_or(row.container_format.clone());
                if disk.is_none() || container.is_none() {
                    return Err(RegistryError::rule(
                        ErrorKind::BadRequest,
                        "Properties disk_format and container_format must be set prior to saving data",
                    ));
                }
            }
            if to == ImageStatus::Queued && current != to {
                // Glance resets sizes when an image goes back to queued.
                changes.size = Some(None);
                changes.virtual_size = Some(None);
            }
            if to.is_deleted() {
                return Err(RegistryError::rule(
                    ErrorKind::BadRequest,
                    "Use DELETE to delete an image",
                ));
            }
        }
        let now = glance_model::time::now();
        changes.updated_at = Some(Some(now));
        diesel::update(images::table.filter(images::id.eq(&row.id)))
            .set(&changes)
            .execute(conn)?;
        set_properties(conn, &row.id, &upd.set_properties, now)?;
        remove_properties(conn, &row.id, &upd.remove_properties, now)?;
        if let Some(new_tags) = &upd.tags {
            tags::replace(conn, &row.id, new_tags, now)?;
        }
        Ok(())
    })?;
    find(conn, ctx, id)
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = images)]
struct Changeset {
    name: Option<Option<String>>,
    status: Option<String>,
    visibility: Option<String>,
    protected: Option<bool>,
    os_hidden: Option<bool>,
    owner: Option<Option<String>>,
    container_format: Option<Option<String>>,
    disk_format: Option<Option<String>>,
    min_disk: Option<i32>,
    min_ram: Option<i32>,
    size: Option<Option<i64>>,
    virtual_size: Option<Option<i64>>,
    checksum: Option<Option<String>>,
    os_hash_algo: Option<Option<String>>,
    os_hash_value: Option<Option<String>>,
    updated_at: Option<Option<chrono::NaiveDateTime>>,
}

impl Changeset {
    fn from_update(u: &ImageUpdate) -> Self {
        Self {
            name: u.name.clone(),
            status: u.status.map(|s| s.as_str().to_string()),
            visibility: u.visibility.map(|v| v.as_str().to_string()),
            protected: u.protected,
            os_hidden: u.os_hidden,
            owner: u.owner.clone(),
            container_format: u.container_format.clone(),
            disk_format: u.disk_format.clone(),
            min_disk: u.min_disk,
            min_ram: u.min_ram,
            size: u.size,
            virtual_size: u.virtual_size,
            checksum: u.checksum.clone(),
            os_hash_algo: u.os_hash_algo.clone(),
            os_hash_value: u.os_hash_value.clone(),
            updated_at: None,
        }
    }
}

/// Adds or overwrites properties. Glance keeps `UNIQUE(image_id, name)` across deleted rows,
/// so a previously deleted property's row is revived rather than inserted again.
fn set_properties(
    conn: &mut DbConnection,
    image_id: &str,
    props: &BTreeMap<String, String>,
    now: chrono::NaiveDateTime,
) -> Result<(), RegistryError> {
    for (name, value) in props {
        let updated = diesel::update(
            image_properties::table
                .filter(image_properties::image_id.eq(image_id))
                .filter(image_properties::name.eq(name)),
        )
        .set((
            image_properties::value.eq(value),
            image_properties::deleted.eq(false),
            image_properties::deleted_at.eq(None::<chrono::NaiveDateTime>),
            image_properties::updated_at.eq(now),
        ))
        .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(image_properties::table)
                .values((
                    image_properties::image_id.eq(image_id),
                    image_properties::name.eq(name),
                    image_properties::value.eq(value),
                    image_properties::created_at.eq(now),
                    image_properties::updated_at.eq(now),
                    image_properties::deleted.eq(false),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Soft-deletes properties; a property that is not there is a 409, as in Glance.
fn remove_properties(
    conn: &mut DbConnection,
    image_id: &str,
    names: &[String],
    now: chrono::NaiveDateTime,
) -> Result<(), RegistryError> {
    for name in names {
        let n = diesel::update(
            image_properties::table
                .filter(image_properties::image_id.eq(image_id))
                .filter(image_properties::name.eq(name))
                .filter(image_properties::deleted.eq(false)),
        )
        .set((
            image_properties::deleted.eq(true),
            image_properties::deleted_at.eq(now),
            image_properties::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 0 {
            return Err(RegistryError::conflict(format!(
                "Property {name} does not exist"
            )));
        }
    }
    Ok(())
}

/// Soft-deletes an image and, with the same `deleted_at`, its properties, tags, members
/// and locations, in one transaction. `delayed` keeps the data for the scrubber
/// (`pending_delete`). Protected images are refused.
pub fn soft_delete(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    delayed: bool,
) -> Result<Image, RegistryError> {
    let image = super::transaction(conn, |conn| {
        lock(conn, id)?;
        let image = find(conn, ctx, id)?;
        if image.protected {
            return Err(RegistryError::rule(
                ErrorKind::Forbidden,
                format!("Image {id} is protected and cannot be deleted"),
            ));
        }
        let to = if delayed && !image.locations.is_empty() && image.status == ImageStatus::Active {
            ImageStatus::PendingDelete
        } else {
            ImageStatus::Deleted
        };
        image.status.check_transition(to)?;
        let now = glance_model::time::now();
        let sid = id.to_string();
        diesel::update(images::table.filter(images::id.eq(&sid)))
            .set((
                images::status.eq(to.as_str()),
                images::deleted.eq(true),
                images::deleted_at.eq(now),
                images::updated_at.eq(now),
            ))
            .execute(conn)?;
        macro_rules! cascade {
            ($t:ident) => {
                diesel::update(
                    $t::table
                        .filter($t::image_id.eq(&sid))
                        .filter($t::deleted.eq(false)),
                )
                .set((
                    $t::deleted.eq(true),
                    $t::deleted_at.eq(now),
                    $t::updated_at.eq(now),
                ))
                .execute(conn)?
            };
        }
        cascade!(image_properties);
        cascade!(image_tags);
        cascade!(image_members);
        // Locations keep their rows; their status says whether data still has to go.
        let loc_status = if to == ImageStatus::PendingDelete {
            "pending_delete"
        } else {
            "deleted"
        };
        diesel::update(
            image_locations::table
                .filter(image_locations::image_id.eq(&sid))
                .filter(image_locations::deleted.eq(false)),
        )
        .set((
            image_locations::deleted.eq(true),
            image_locations::deleted_at.eq(now),
            image_locations::updated_at.eq(now),
            image_locations::status.eq(loc_status),
        ))
        .execute(conn)?;
        super::leases::drop_for_image(conn, &sid)?;
        Ok(Image {
            status: to,
            deleted: true,
            deleted_at: Some(now),
            updated_at: Some(now),
            ..image
        })
    })?;
    Ok(image)
}

/// [`list`] as one read (see [`read_together`]).
pub fn list_page(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
) -> Result<Vec<Image>, RegistryError> {
    read_together(conn, |conn| list(conn, ctx, q))
}

/// Lists one page of images visible to the caller, filtered and sorted as Glance does.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
) -> Result<Vec<Image>, RegistryError> {
    let marker = match &q.marker {
        Some(marker) => Some(find_row(conn, ctx, marker).map_err(|e| match e.kind() {
            ErrorKind::NotFound => RegistryError::rule(
                ErrorKind::BadRequest,
                format!("Marker {marker} not found: it is not an image you can see"),
            ),
            _ => e,
        })?),
        None => None,
    };
    let marker = marker.as_ref();
    let rows: Vec<ImageRow> = match &mut *conn {
        // No LIMIT on SQLite: it re-plans a statement whose bound LIMIT is rebound, so the
        // page's rows are read one by one and the statement stops after the last one.
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => super::page::sqlite::query(ctx, q, marker)
            .load_iter::<ImageRow, diesel::connection::DefaultLoadingMode>(c)?
            .take(q.limit as usize)
            .collect::<Result<_, _>>()?,
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => super::page::mysql::query(ctx, q, marker)
            .limit(i64::from(q.limit))
            .load(c)?,
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => super::page::postgres::query(ctx, q, marker)
            .limit(i64::from(q.limit))
            .load(c)?,
    };
    hydrate(conn, rows)
}

/// Loads the children of a page of rows with one query per table (per [`ANY_OF_CHUNK`]
/// images) and builds the images, keeping the rows' order.
pub fn hydrate(conn: &mut DbConnection, rows: Vec<ImageRow>) -> Result<Vec<Image>, RegistryError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut props: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut tag_map: HashMap<String, Vec<String>> = HashMap::new();
    let mut locs: HashMap<String, Vec<Location>> = HashMap::new();
    for chunk in ids.chunks(ANY_OF_CHUNK) {
        let (prop_rows, loc_rows) = on_backend!(&mut *conn, |c, B| {
            let prop_rows: Vec<(String, String, Option<String>)> = image_properties::table
                .select((
                    image_properties::image_id,
                    image_properties::name,
                    image_properties::value,
                ))
                .filter(any_of!(
                    B,
                    image_properties,
                    image_properties::image_id,
                    chunk
                ))
                .filter(image_properties::deleted.eq(false))
                .load(c)?;
            let loc_rows: Vec<LocationRow> = image_locations::table
                .select(LocationRow::as_select())
                .filter(any_of!(
                    B,
                    image_locations,
                    image_locations::image_id,
                    chunk
                ))
                .filter(image_locations::deleted.eq(false))
                .order(image_locations::id.asc())
                .load(c)?;
            (prop_rows, loc_rows)
        });
        for (image_id, name, value) in prop_rows {
            props
                .entry(image_id)
                .or_default()
                .insert(name, value.unwrap_or_default());
        }
        tag_map.extend(tags::for_images(conn, chunk)?);
        for l in loc_rows {
            locs.entry(l.image_id.clone())
                .or_default()
                .push(l.into_location());
        }
    }
    rows.into_iter()
        .map(|r| {
            let id = r.id.clone();
            r.into_image(
                tag_map.remove(&id).unwrap_or_default(),
                props.remove(&id).unwrap_or_default(),
                locs.remove(&id).unwrap_or_default(),
            )
        })
        .collect()
}

/// Bytes and images a project owns (not deleted), for `user_storage_quota`.
pub fn usage(conn: &mut DbConnection, owner: Option<&str>) -> Result<Usage, RegistryError> {
    let mut q = images::table
        .filter(images::deleted.eq(false))
        .select(images::size)
        .into_boxed();
    q = match owner {
        Some(o) => q.filter(images::owner.eq(o.to_string())),
        None => q.filter(images::owner.is_null()),
    };
    let sizes: Vec<Option<i64>> = q.load(conn)?;
    Ok(Usage {
        size_bytes: sizes
            .iter()
            .flatten()
            .map(|s| u64::try_from(*s).unwrap_or(0))
            .sum(),
        image_count: sizes.len() as u64,
    })
}

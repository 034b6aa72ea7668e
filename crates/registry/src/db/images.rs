//! Queries on `images` and its children as one aggregate: find, insert, list, update with
//! compare-and-swap status, and soft delete that cascades in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;
use glance_model::filter::ListQuery;
use glance_model::quota::ImageQuotas;
use glance_model::visibility;
use glance_model::wire::{ImageUpdate, NewImage, Usage};
use glance_model::{
    Context, ErrorKind, Image, ImageId, ImageStatus, Location, MemberStatus, Visibility,
};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;

use super::generations::Generations;
use super::locked::{self, Lock, LockedImage};
use super::rows::{ImageRow, LocationRow, parse_col};
use super::schema::{image_locations, image_members, image_properties, image_tags, images};
use super::{ANY_OF_CHUNK, DbConnection, FixedUpdate, Val, any_of, leases, on_backend, tags};
use crate::cache::RecordCache;
use crate::error::RegistryError;

/// Loads a live image the caller may see, with its tags, properties and locations.
pub fn find(conn: &mut DbConnection, ctx: &Context, id: &ImageId) -> Result<Image, RegistryError> {
    let row = find_row(conn, ctx, id)?;
    with_children(conn, id, row)
}

/// The image of a row just found, with its tags, properties and locations.
fn with_children(
    conn: &mut DbConnection,
    id: &ImageId,
    row: ImageRow,
) -> Result<Image, RegistryError> {
    hydrate(conn, vec![row])?
        .pop()
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
    let row = select_row(conn, id, false)?;
    visible_or_404(conn, ctx, id, row)
}

/// Loads the row as [`find_row`] does, with `SELECT … FOR UPDATE` on a server database, so
/// that one statement takes the row lock and reads the row. SQLite has no row locks: there
/// this is a plain read, and only `locked::write` (which takes SQLite's write lock first)
/// may call it.
pub(super) fn find_row_for_update(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
) -> Result<ImageRow, RegistryError> {
    let row = select_row(conn, id, true)?;
    visible_or_404(conn, ctx, id, row)
}

fn visible_or_404(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    row: Option<ImageRow>,
) -> Result<ImageRow, RegistryError> {
    match row {
        Some(row) if is_visible(conn, ctx, &row)? => Ok(row),
        _ => Err(RegistryError::not_found(format!(
            "No image found with ID {id}"
        ))),
    }
}

/// The live row of an image, locked against other writers until the transaction ends when
/// `for_update` (MariaDB/MySQL and PostgreSQL only; SQLite ignores it).
fn select_row(
    conn: &mut DbConnection,
    id: &ImageId,
    #[cfg_attr(
        not(any(feature = "mysql", feature = "postgres")),
        expect(unused_variables, reason = "only SQLite is compiled in")
    )]
    for_update: bool,
) -> Result<Option<ImageRow>, RegistryError> {
    let sid = id.to_string();
    // No LIMIT: `id` is the primary key, and SQLite re-plans a statement whose bound LIMIT
    // is rebound, so `first()` would be parsed again on every call.
    // A macro, not a value: the selection's type names the backend.
    macro_rules! query {
        () => {
            images::table
                .filter(images::id.eq(&sid))
                .filter(images::deleted.eq(false))
                .select(ImageRow::as_select())
        };
    }
    let row = match conn {
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => query!().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) if for_update => query!().for_update().get_result(c).optional()?,
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => query!().get_result(c).optional()?,
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) if for_update => {
            query!().for_update().get_result(c).optional()?
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c) => query!().get_result(c).optional()?,
    };
    Ok(row)
}

/// Whether the caller may see the image of `row`: [`visibility::may_see`], with the
/// caller's membership read only where it counts (a shared image of another project).
fn is_visible(
    conn: &mut DbConnection,
    ctx: &Context,
    row: &ImageRow,
) -> Result<bool, RegistryError> {
    let owner = row.owner.as_deref();
    let vis = parse_col::<Visibility>("images.visibility", &row.visibility)?;
    if visibility::may_see(ctx, owner, vis, None) {
        return Ok(true);
    }
    let Some(project) = ctx
        .project_id
        .as_deref()
        .filter(|_| visibility::needs_membership(ctx, owner, vis))
    else {
        return Ok(false);
    };
    let statuses: Vec<String> = on_backend!(conn, |c, _B| {
        image_members::table
            .select(image_members::status)
            .filter(image_members::image_id.eq(&row.id))
            .filter(image_members::member.eq(project))
            .filter(image_members::deleted.eq(false))
            .load(c)?
    });
    let membership = match statuses.first() {
        Some(s) => Some(parse_col::<MemberStatus>("image_members.status", s)?),
        None => None,
    };
    Ok(visibility::may_see(ctx, owner, vis, membership))
}

/// The INSERT of a new image's row, every column bound (NULL included): Diesel writes a
/// `None` field of an `Insertable` struct as `DEFAULT`, so the struct's INSERT has no fixed
/// text and was prepared, run and closed on every call on a server database. This one is
/// kept prepared. A macro, because the statement's type is too long to name.
macro_rules! insert_row {
    ($row:expr) => {
        diesel::insert_into(images::table).values((
            images::id.eq(&$row.id),
            images::name.eq($row.name.as_deref()),
            images::size.eq($row.size),
            images::status.eq(&$row.status),
            images::created_at.eq($row.created_at),
            images::updated_at.eq($row.updated_at),
            images::deleted_at.eq($row.deleted_at),
            images::deleted.eq($row.deleted),
            images::disk_format.eq($row.disk_format.as_deref()),
            images::container_format.eq($row.container_format.as_deref()),
            images::checksum.eq($row.checksum.as_deref()),
            images::owner.eq($row.owner.as_deref()),
            images::min_disk.eq($row.min_disk),
            images::min_ram.eq($row.min_ram),
            images::protected.eq($row.protected),
            images::virtual_size.eq($row.virtual_size),
            images::visibility.eq(&$row.visibility),
            images::os_hidden.eq($row.os_hidden),
            images::os_hash_algo.eq($row.os_hash_algo.as_deref()),
            images::os_hash_value.eq($row.os_hash_value.as_deref()),
        ))
    };
}

/// Creates an image with its properties and tags: one INSERT when it has neither, one
/// transaction when it has some.
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
    let insert = |conn: &mut DbConnection| {
        // Ids of deleted images stay taken, as in Glance: a soft-deleted row keeps its id, so
        // the primary key refuses a second row with it. Of two concurrent creates with one id
        // the database makes the later wait for the earlier and then refuses it.
        let inserted = on_backend!(&mut *conn, |c, _B| { insert_row!(row).execute(c) });
        match inserted {
            Ok(_) => Ok(()),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Err(RegistryError::conflict(format!(
                "An image with identifier {id} already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    };
    let children = |conn: &mut DbConnection, image: &LockedImage| {
        set_properties(conn, image, &new.properties, now)?;
        // A new image has no tags to compare with: only a non-empty set is written.
        if !new.tags.is_empty() {
            tags::replace(conn, image, &new.tags, now)?;
        }
        Ok(())
    };
    let has_children = !(new.properties.is_empty() && new.tags.is_empty());
    locked::create(conn, &id, insert, has_children.then_some(children))?;
    // Built from what was written rather than read back: a new image has no locations, and
    // its live tags are the requested set.
    let tags: std::collections::BTreeSet<String> = new.tags.into_iter().collect();
    row.into_image(tags.into_iter().collect(), new.properties, Vec::new())
}

/// Applies an update in one transaction. With `from_state`, the change happens only if the
/// image is in that status when the row lock is held: of two racing callers one wins and
/// the other gets 409. Tags and properties are counted against `quotas` under the same lock.
pub fn update(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    upd: ImageUpdate,
    quotas: &ImageQuotas,
) -> Result<Image, RegistryError> {
    upd.validate()?;
    if let Some(new_tags) = &upd.tags {
        tags::check_set(quotas, Some(id), new_tags)?;
    }
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        check_property_quota(conn, image, &upd, quotas)?;
        let row = image.row(conn, ctx)?.clone();
        let current = row.status()?;
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
                let disk = changes.disk_format.as_ref().unwrap_or(&row.disk_format);
                let container = changes
                    .container_format
                    .as_ref()
                    .unwrap_or(&row.container_format);
                glance_model::status::require_formats(disk.as_deref(), container.as_deref())?;
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
        // A status set this way takes no lease: only an upload's start does.
        leases::follow_status(conn, image, current, upd.status.unwrap_or(current), None)?;
        set_properties(conn, image, &upd.set_properties, now)?;
        remove_properties(conn, image, &upd.remove_properties, now)?;
        if let Some(new_tags) = &upd.tags {
            tags::replace(conn, image, new_tags, now)?;
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

/// Refuses an update that adds a property when the image would then have more than
/// `image_property_quota`. As in Glance, only an update that adds one is counted: an image
/// already over a lowered quota may still change or remove its properties.
fn check_property_quota(
    conn: &mut DbConnection,
    image: &LockedImage,
    upd: &ImageUpdate,
    quotas: &ImageQuotas,
) -> Result<(), RegistryError> {
    if quotas.properties.is_none() || upd.set_properties.is_empty() {
        return Ok(());
    }
    let current: BTreeSet<String> = image_properties::table
        .select(image_properties::name)
        .filter(image_properties::image_id.eq(image.sid()))
        .filter(image_properties::deleted.eq(false))
        .load::<String>(conn)?
        .into_iter()
        .collect();
    // Set first, then remove: the order `update` writes them in.
    let mut after: BTreeSet<&String> = current.iter().collect();
    after.extend(upd.set_properties.keys());
    for name in &upd.remove_properties {
        after.remove(name);
    }
    if after.iter().all(|name| current.contains(*name)) {
        return Ok(());
    }
    Ok(quotas.check_properties(Some(image.id()), after.len() as u64)?)
}

/// Adds or overwrites properties. Glance keeps `UNIQUE(image_id, name)` across deleted rows,
/// so a previously deleted property's row is revived rather than inserted again.
pub(super) fn set_properties(
    conn: &mut DbConnection,
    image: &LockedImage,
    props: &BTreeMap<String, String>,
    now: chrono::NaiveDateTime,
) -> Result<(), RegistryError> {
    let image_id = image.sid();
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
    image: &LockedImage,
    names: &[String],
    now: chrono::NaiveDateTime,
) -> Result<(), RegistryError> {
    let image_id = image.sid();
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
///
/// With `cached`, the image as this registry's record cache holds it, the delete is first
/// tried from it (see [`soft_delete_cached`]); whenever that cannot be trusted, it is made
/// as if there were no cache.
pub fn soft_delete(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    delayed: bool,
    cached: Option<&Cached>,
) -> Result<Image, RegistryError> {
    if let Some(cached) = cached
        && let Some(image) = soft_delete_cached(conn, id, delayed, cached)?
    {
        return Ok(image);
    }
    locked::write(conn, id, Lock::Visible(ctx), |conn, locked| {
        let row = locked.row(conn, ctx)?.clone();
        let mut found = Children::default();
        children(conn, std::slice::from_ref(&row.id), &mut found, true)?;
        let has_members = !found.shared_with.is_empty();
        let image = build(vec![row], found)?
            .pop()
            .ok_or_else(|| RegistryError::not_found(format!("No image found with ID {id}")))?;
        if image.protected {
            return Err(RegistryError::rule(
                ErrorKind::Forbidden,
                format!("Image {id} is protected and cannot be deleted"),
            ));
        }
        let to = deleted_status(&image, delayed);
        image.status.check_transition(to)?;
        let now = glance_model::time::now();
        let sid = id.to_string();
        let row = DeleteRow::new(&sid, image.status, to, now);
        let mark = row.update();
        on_backend!(&mut *conn, |c, _B| { mark.execute(c)? });
        mark_children(conn, locked, &image, has_members, to, now)?;
        Ok(deleted(image, to, now))
    })
}

/// An image as a record cache holds it, with the change counter of its stripe that the
/// cache read before loading it (see `crate::cache`).
#[derive(Debug, Clone)]
pub struct Cached {
    /// The image, properties, tags and locations included.
    pub image: Image,
    /// Its stripe's counter when it was loaded.
    pub generation: i64,
    /// Whether it is known to have no members (an image this registry created); members
    /// are not cached.
    pub no_members: bool,
}

/// The delete of an image whose cached record the caller may see, without reading it
/// again ([`locked::write_cached`]): its row is marked deleted by an `UPDATE` whose filter
/// holds what the record says (taking the row lock every writer of the image holds), the
/// children the record names are marked too, and the stripe's counter is moved on only if
/// it still holds the record's value; otherwise nothing is kept and `None` says to delete
/// as if there were no cache. Where the record says the delete would be refused, it is not
/// tried (the refusal comes from the database's copy).
///
/// A change made behind the registries' back (SQL typed by hand, which moves no counter)
/// goes unseen for up to `record_cache_max_age`, as it does for a show. For a delete: the
/// row is marked only while it is live, unprotected and in the status the record says, so
/// protecting an image by hand still stops its delete; but a child row inserted by hand in
/// that time is not marked deleted with the image.
///
/// On MariaDB a create and delete pair was seven statements and the delete's children read
/// the dearest of them; this way the delete is four (`BEGIN`, two `UPDATE`s, `COMMIT`) for an
/// image with no children, and one (the two `UPDATE`s joined) on MariaDB/MySQL.
fn soft_delete_cached(
    conn: &mut DbConnection,
    id: &ImageId,
    delayed: bool,
    cached: &Cached,
) -> Result<Option<Image>, RegistryError> {
    let image = &cached.image;
    let to = deleted_status(image, delayed);
    if image.id != *id || image.protected || image.status.check_transition(to).is_err() {
        return Ok(None);
    }
    let now = glance_model::time::now();
    let sid = id.to_string();
    let row = DeleteRow::new(&sid, image.status, to, now);
    // Nothing but the row to mark (no children, no lease): the row and the counter alone.
    let alone = cached.no_members
        && image.properties.is_empty()
        && image.tags.is_empty()
        && image.locations.is_empty()
        && image.status != ImageStatus::Saving;
    let children = |conn: &mut DbConnection, locked: &LockedImage| {
        mark_children(conn, locked, image, !cached.no_members, to, now)
    };
    let kept = locked::write_cached(
        conn,
        id,
        cached.generation,
        row.update(),
        (!alone).then_some(children),
    )?;
    Ok(kept.then(|| deleted(image.clone(), to, now)))
}

/// `deleted`, or `pending_delete` for a delayed delete of an active image with data.
fn deleted_status(image: &Image, delayed: bool) -> ImageStatus {
    if delayed && !image.locations.is_empty() && image.status == ImageStatus::Active {
        ImageStatus::PendingDelete
    } else {
        ImageStatus::Deleted
    }
}

/// Marks the live children of an image whose row was just marked deleted (status `to`),
/// with the same `deleted_at`. Only the child tables `image` has rows in are written, and
/// `image_members` only with `members`: every writer of an image's properties, tags,
/// locations and members holds the image's row lock ([`LockedImage`]), as a delete does, so
/// the children the caller read under it are all there are.
fn mark_children(
    conn: &mut DbConnection,
    locked: &LockedImage,
    image: &Image,
    members: bool,
    to: ImageStatus,
    now: chrono::NaiveDateTime,
) -> Result<(), RegistryError> {
    let sid = locked.sid();
    let gone = [
        ("deleted", Val::Bool(true)),
        ("deleted_at", Val::Time(now)),
        ("updated_at", Val::Time(now)),
    ];
    // Locations keep their rows; their status says whether data still has to go.
    let loc_status = if to == ImageStatus::PendingDelete {
        ImageStatus::PendingDelete
    } else {
        ImageStatus::Deleted
    };
    let location = [
        gone[0],
        gone[1],
        gone[2],
        ("status", Val::Text(loc_status.as_str())),
    ];
    let live = [("image_id", Val::Text(sid)), ("deleted", Val::Bool(false))];
    let children = [
        (!image.properties.is_empty()).then_some(FixedUpdate {
            table: "image_properties",
            set: &gone,
            filter: &live,
        }),
        (!image.tags.is_empty()).then_some(FixedUpdate {
            table: "image_tags",
            set: &gone,
            filter: &live,
        }),
        members.then_some(FixedUpdate {
            table: "image_members",
            set: &gone,
            filter: &live,
        }),
        (!image.locations.is_empty()).then_some(FixedUpdate {
            table: "image_locations",
            set: &location,
            filter: &live,
        }),
    ];
    for statement in children.into_iter().flatten() {
        on_backend!(&mut *conn, |c, _B| { statement.execute(c)? });
    }
    leases::follow_status(conn, locked, image.status, to, None)?;
    Ok(())
}

/// The image as a delete at `now` leaves it.
fn deleted(image: Image, to: ImageStatus, now: chrono::NaiveDateTime) -> Image {
    Image {
        status: to,
        deleted: true,
        deleted_at: Some(now),
        updated_at: Some(now),
        ..image
    }
}

/// The `UPDATE` that marks an image's row deleted (status `to`). What the delete was
/// decided on is part of its filter: a row that has changed since (under a caller deciding
/// from a cached copy, see `soft_delete_cached`) is not marked.
struct DeleteRow<'a> {
    set: [(&'static str, Val<'a>); 4],
    filter: [(&'static str, Val<'a>); 4],
}

impl<'a> DeleteRow<'a> {
    fn new(sid: &'a str, from: ImageStatus, to: ImageStatus, now: chrono::NaiveDateTime) -> Self {
        Self {
            set: [
                ("status", Val::Text(to.as_str())),
                ("deleted", Val::Bool(true)),
                ("deleted_at", Val::Time(now)),
                ("updated_at", Val::Time(now)),
            ],
            filter: [
                ("id", Val::Text(sid)),
                ("deleted", Val::Bool(false)),
                ("protected", Val::Bool(false)),
                ("status", Val::Text(from.as_str())),
            ],
        }
    }

    fn update(&self) -> FixedUpdate<'_> {
        FixedUpdate {
            table: "images",
            set: &self.set,
            filter: &self.filter,
        }
    }
}

/// [`list`] as one read (see [`read_together`]).
pub fn list_page(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
) -> Result<Vec<ListedImage>, RegistryError> {
    read_together(conn, |conn| list(conn, ctx, q))
}

/// Lists one page of images visible to the caller, filtered and sorted as Glance does.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
) -> Result<Vec<ListedImage>, RegistryError> {
    let rows = page_rows(conn, ctx, q)?;
    hydrate_page(conn, rows)
}

/// [`list_page`] through the record cache: each image of the page is its cached JSON when
/// unchanged since it was cached under `generations` (read before this call), else loaded
/// (all such in one go), written as JSON and cached. The page's own query always runs: it
/// decides which images the caller sees, in which order.
pub fn list_page_cached(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
    cache: &RecordCache,
    generations: &Generations,
) -> Result<Vec<bytes::Bytes>, RegistryError> {
    read_together(conn, |conn| {
        let rows = page_rows(conn, ctx, q)?;
        let mut page: Vec<Option<bytes::Bytes>> = Vec::with_capacity(rows.len());
        let mut missing = Vec::new();
        for row in rows {
            let cached = super::rows::parse_id(&row.id)
                .ok()
                .and_then(|id| cache.get(generations, &id));
            match cached {
                Some(record) => page.push(Some(record.json.clone())),
                None => {
                    page.push(None);
                    missing.push(row);
                }
            }
        }
        let mut loaded = hydrate_page(conn, missing)?.into_iter();
        page.into_iter()
            .map(|slot| match slot {
                Some(json) => Ok(json),
                None => {
                    let listed = loaded.next().ok_or_else(|| {
                        RegistryError::Corrupt("a page's image went missing".to_string())
                    })?;
                    let json = bytes::Bytes::from(serde_json::to_vec(&listed).map_err(|e| {
                        RegistryError::Corrupt(format!("image {} as JSON: {e}", listed.image.id))
                    })?);
                    cache.keep(generations, &listed.image, json.clone());
                    Ok(json)
                }
            })
            .collect()
    })
}

/// The rows of one page of images visible to the caller, filtered and sorted.
fn page_rows(
    conn: &mut DbConnection,
    ctx: &Context,
    q: &ListQuery,
) -> Result<Vec<ImageRow>, RegistryError> {
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
    Ok(rows)
}

/// Loads the children of rows with one statement per [`ANY_OF_CHUNK`] images (see
/// [`children`]) and builds the images, keeping the rows' order.
pub fn hydrate(conn: &mut DbConnection, rows: Vec<ImageRow>) -> Result<Vec<Image>, RegistryError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut found = Children::default();
    for chunk in ids.chunks(ANY_OF_CHUNK) {
        children(conn, chunk, &mut found, false)?;
    }
    build(rows, found)
}

/// The images of rows with the children found for them, in the rows' order.
fn build(rows: Vec<ImageRow>, mut found: Children) -> Result<Vec<Image>, RegistryError> {
    rows.into_iter()
        .map(|r| {
            let tags = found.tags.remove(&r.id).unwrap_or_default();
            let properties = found.props.remove(&r.id).unwrap_or_default();
            let mut locations = found.locs.remove(&r.id).unwrap_or_default();
            locations.sort_by_key(|l| l.id);
            r.into_image(tags.into_iter().collect(), properties, locations)
        })
        .collect()
}

/// The live children of some images, by image id.
#[derive(Debug, Default)]
struct Children {
    /// Properties; a NULL value is `""`.
    props: HashMap<String, BTreeMap<String, String>>,
    /// Tags, sorted and without duplicates.
    tags: HashMap<String, BTreeSet<String>>,
    /// Locations, in no particular order.
    locs: HashMap<String, Vec<Location>>,
    /// Images with live members (filled only when [`children`] is asked for them).
    shared_with: BTreeSet<String>,
}

/// Reads the live properties, tags and locations of at most [`ANY_OF_CHUNK`] images into
/// `out` with one statement: the three child queries joined by `UNION ALL`, each row
/// marked with its table. On a server database every statement is a round trip (a show had
/// five: the pool's check, the row and one per child table), so this saves two per show
/// and per list page. With `members`, a fourth part says which of the images have live
/// members (a delete then needs no statement for an image that has none).
fn children(
    conn: &mut DbConnection,
    ids: &[String],
    out: &mut Children,
    members: bool,
) -> Result<(), RegistryError> {
    use super::{IntConst, NullText, UnionAll};
    const PROPERTY: i32 = 0;
    const TAG: i32 = 1;
    const LOCATION: i32 = 2;
    const MEMBER: i32 = 3;
    // (table, image id, row id, name | tag | url, value | metadata, location status)
    type ChildRow = (i32, String, i32, String, Option<String>, Option<String>);
    let rows: Vec<ChildRow> = on_backend!(&mut *conn, |c, B| {
        let props = image_properties::table
            .select((
                IntConst::<PROPERTY>,
                image_properties::image_id,
                image_properties::id,
                image_properties::name,
                image_properties::value,
                NullText,
            ))
            .filter(any_of!(
                B,
                image_properties,
                image_properties::image_id,
                ids
            ))
            .filter(image_properties::deleted.eq(false));
        let tags = image_tags::table
            .select((
                IntConst::<TAG>,
                image_tags::image_id,
                image_tags::id,
                image_tags::value,
                NullText,
                NullText,
            ))
            .filter(any_of!(B, image_tags, image_tags::image_id, ids))
            .filter(image_tags::deleted.eq(false));
        let locs = image_locations::table
            .select((
                IntConst::<LOCATION>,
                image_locations::image_id,
                image_locations::id,
                image_locations::value,
                image_locations::meta_data,
                image_locations::status.nullable(),
            ))
            .filter(any_of!(B, image_locations, image_locations::image_id, ids))
            .filter(image_locations::deleted.eq(false));
        if members {
            let members = image_members::table
                .select((
                    IntConst::<MEMBER>,
                    image_members::image_id,
                    image_members::id,
                    image_members::member,
                    NullText,
                    NullText,
                ))
                .filter(any_of!(B, image_members, image_members::image_id, ids))
                .filter(image_members::deleted.eq(false));
            UnionAll(props, UnionAll(tags, UnionAll(locs, members))).load(c)?
        } else {
            UnionAll(props, UnionAll(tags, locs)).load(c)?
        }
    });
    for (table, image_id, id, text, value, status) in rows {
        match table {
            PROPERTY => {
                out.props
                    .entry(image_id)
                    .or_default()
                    .insert(text, value.unwrap_or_default());
            }
            TAG => {
                out.tags.entry(image_id).or_default().insert(text);
            }
            LOCATION => {
                let row = LocationRow {
                    id,
                    image_id,
                    value: text,
                    meta_data: value,
                    status: status.unwrap_or_default(),
                };
                out.locs
                    .entry(row.image_id.clone())
                    .or_default()
                    .push(row.into_location());
            }
            MEMBER => {
                out.shared_with.insert(image_id);
            }
            other => {
                return Err(RegistryError::Corrupt(format!(
                    "child query returned an unknown table marker {other}"
                )));
            }
        }
    }
    Ok(())
}

/// [`hydrate`] for a list page. On SQLite each image's properties come as one JSON object
/// that the database built and that goes into the answer as it is (see `sqlite_json`).
fn hydrate_page(
    conn: &mut DbConnection,
    rows: Vec<ImageRow>,
) -> Result<Vec<ListedImage>, RegistryError> {
    #[cfg(feature = "sqlite")]
    #[cfg_attr(
        not(any(feature = "mysql", feature = "postgres")),
        expect(irrefutable_let_patterns, reason = "only SQLite is compiled in")
    )]
    if let DbConnection::Sqlite(c) = &mut *conn {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut children = sqlite_json::children(c, &ids)?;
        let mut locs = locations(conn, &ids)?;
        return rows
            .into_iter()
            .map(|row| {
                let json = children.remove(&row.id);
                let locations = locs.remove(&row.id).unwrap_or_default();
                sqlite_json::listed(row, json, locations)
            })
            .collect();
    }
    Ok(hydrate(conn, rows)?
        .into_iter()
        .map(|image| ListedImage {
            image,
            properties_json: None,
        })
        .collect())
}

/// Live locations of images, by image id, each list in row order.
fn locations(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<Location>>, RegistryError> {
    let mut out: HashMap<String, Vec<Location>> = HashMap::new();
    for chunk in ids.chunks(ANY_OF_CHUNK) {
        let loc_rows: Vec<LocationRow> = on_backend!(&mut *conn, |c, B| {
            image_locations::table
                .select(LocationRow::as_select())
                .filter(any_of!(
                    B,
                    image_locations,
                    image_locations::image_id,
                    chunk
                ))
                .filter(image_locations::deleted.eq(false))
                .order(image_locations::id.asc())
                .load(c)?
        });
        for l in loc_rows {
            out.entry(l.image_id.clone())
                .or_default()
                .push(l.into_location());
        }
    }
    Ok(out)
}

/// SQLite: a list page's properties and tags as JSON built by correlated subqueries, one
/// index seek each on the covering `(image_id, deleted, …)` indexes. Not in the page's own
/// statement: where the order needs a sort, SQLite would run them for every candidate row.
/// Decoding a page's 250 property rows into strings and maps, and escaping them again as
/// JSON, had been a third of glance-registry's CPU in a list of 25; the two child statements
/// with their `IN` lists were most of the rest of the children's cost.
#[cfg(feature = "sqlite")]
mod sqlite_json {
    use std::collections::{BTreeMap, HashMap};

    use diesel::expression::{
        AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate,
    };
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::sql_types::Text;
    use diesel::sqlite::Sqlite;
    use serde_json::value::RawValue;

    use glance_model::Location;

    use super::ListedImage;
    use crate::db::rows::ImageRow;
    use crate::db::schema::images;
    use crate::db::{ANY_OF_CHUNK, any_of};
    use crate::error::RegistryError;

    /// A fixed SQL expression over the current `images` row, of type `Text`. Its SQL never
    /// changes, so the statement holding it stays prepared.
    macro_rules! child_json {
        ($(#[$doc:meta])* $name:ident = $sql:expr) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Expression for $name {
                type SqlType = Text;
            }
            impl AppearsOnTable<images::table> for $name {}
            impl SelectableExpression<images::table> for $name {}
            impl<GB> ValidGrouping<GB> for $name {
                type IsAggregate = is_aggregate::Never;
            }
            impl QueryId for $name {
                type QueryId = Self;
                const HAS_STATIC_QUERY_ID: bool = true;
            }
            impl QueryFragment<Sqlite> for $name {
                fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
                    out.push_sql($sql);
                    Ok(())
                }
            }
        };
    }

    child_json! {
        /// The image's live properties as one JSON object (`{}` when none); a NULL value is
        /// `""`. Names are unique per image (`UNIQUE (image_id, name)`).
        Properties = "(SELECT json_group_object(p.name, coalesce(p.value, '')) \
                      FROM image_properties AS p \
                      WHERE p.image_id = images.id AND p.deleted = 0)"
    }

    child_json! {
        /// The image's live tags as a JSON array, sorted (byte order, as Rust sorts
        /// strings) and without duplicates (`[]` when none).
        Tags = "(SELECT json_group_array(DISTINCT t.value ORDER BY t.value) \
                FROM image_tags AS t \
                WHERE t.image_id = images.id AND t.deleted = 0)"
    }

    /// Properties and tags of images as JSON, by image id: one statement per
    /// [`ANY_OF_CHUNK`] images (`id IN (…)` over the primary key).
    pub fn children(
        c: &mut SqliteConnection,
        ids: &[String],
    ) -> Result<HashMap<String, (String, String)>, RegistryError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ANY_OF_CHUNK) {
            let found: Vec<(String, String, String)> = images::table
                .filter(any_of!(Sqlite, images, images::id, chunk))
                .select((images::id, Properties, Tags))
                .load(c)?;
            out.extend(found.into_iter().map(|(id, p, t)| (id, (p, t))));
        }
        Ok(out)
    }

    /// The listed image from its row, its [`children`] JSON and its locations.
    pub fn listed(
        row: ImageRow,
        json: Option<(String, String)>,
        locations: Vec<Location>,
    ) -> Result<ListedImage, RegistryError> {
        let unreadable = |what: &str, e: serde_json::Error| {
            RegistryError::Corrupt(format!("{what} of image {} as JSON: {e}", row.id))
        };
        // The row was read in the same transaction, so its children query found it.
        let (properties, tags) = json.unwrap_or_else(|| ("{}".to_string(), "[]".to_string()));
        let properties =
            RawValue::from_string(properties).map_err(|e| unreadable("properties", e))?;
        let tags: Vec<String> = serde_json::from_str(&tags).map_err(|e| unreadable("tags", e))?;
        Ok(ListedImage {
            image: row.into_image(tags, BTreeMap::new(), locations)?,
            properties_json: Some(properties),
        })
    }
}

/// One image of a list page as the registry answers it: the JSON of [`Image`], field for
/// field; on SQLite the custom properties are written from the JSON object the database gave.
#[derive(Debug)]
pub struct ListedImage {
    /// The image; when `properties_json` is set, its `properties` are empty and stand there.
    image: Image,
    properties_json: Option<Box<RawValue>>,
}

impl ListedImage {
    /// The image's id.
    pub fn id(&self) -> ImageId {
        self.image.id
    }

    /// The image with its properties read back from their JSON.
    pub fn into_image(self) -> Result<Image, RegistryError> {
        let Some(json) = self.properties_json else {
            return Ok(self.image);
        };
        let properties = serde_json::from_str(json.get()).map_err(|e| {
            RegistryError::Corrupt(format!("properties of image {}: {e}", self.image.id))
        })?;
        Ok(Image {
            properties,
            ..self.image
        })
    }
}

impl Serialize for ListedImage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Time<'a>(&'a chrono::NaiveDateTime);
        impl Serialize for Time<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                glance_model::time::iso::serialize(self.0, s)
            }
        }
        struct TimeOpt<'a>(&'a Option<chrono::NaiveDateTime>);
        impl Serialize for TimeOpt<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                glance_model::time::iso_opt::serialize(self.0, s)
            }
        }
        let i = &self.image;
        let mut m = s.serialize_struct("Image", 23)?;
        m.serialize_field("id", &i.id)?;
        m.serialize_field("name", &i.name)?;
        m.serialize_field("status", &i.status)?;
        m.serialize_field("visibility", &i.visibility)?;
        m.serialize_field("protected", &i.protected)?;
        m.serialize_field("os_hidden", &i.os_hidden)?;
        m.serialize_field("checksum", &i.checksum)?;
        m.serialize_field("os_hash_algo", &i.os_hash_algo)?;
        m.serialize_field("os_hash_value", &i.os_hash_value)?;
        m.serialize_field("owner", &i.owner)?;
        m.serialize_field("size", &i.size)?;
        m.serialize_field("virtual_size", &i.virtual_size)?;
        m.serialize_field("container_format", &i.container_format)?;
        m.serialize_field("disk_format", &i.disk_format)?;
        m.serialize_field("min_disk", &i.min_disk)?;
        m.serialize_field("min_ram", &i.min_ram)?;
        m.serialize_field("created_at", &Time(&i.created_at))?;
        m.serialize_field("updated_at", &TimeOpt(&i.updated_at))?;
        m.serialize_field("deleted_at", &TimeOpt(&i.deleted_at))?;
        m.serialize_field("deleted", &i.deleted)?;
        m.serialize_field("tags", &i.tags)?;
        match &self.properties_json {
            Some(json) => m.serialize_field("properties", json)?,
            None => m.serialize_field("properties", &i.properties)?,
        }
        m.serialize_field("locations", &i.locations)?;
        m.end()
    }
}

/// Bytes and images a project owns (not deleted), for `user_storage_quota`.
pub fn usage(conn: &mut DbConnection, owner: Option<&str>) -> Result<Usage, RegistryError> {
    let mut q = images::table
        .filter(images::deleted.eq(false))
        .select((images::size, images::status))
        .into_boxed();
    q = match owner {
        Some(o) => q.filter(images::owner.eq(o.to_string())),
        None => q.filter(images::owner.is_null()),
    };
    let rows: Vec<(Option<i64>, String)> = q.load(conn)?;
    let bytes = |size: &Option<i64>| size.map_or(0, |s| u64::try_from(s).unwrap_or(0));
    // Glance's counts (`user_get_uploading_count`, `user_get_staging_usage`).
    let uploading = |status: &str| matches!(status, "saving" | "uploading" | "importing");
    let staged = |status: &str| matches!(status, "uploading" | "importing");
    // Image data is what a store holds (`user_get_storage_usage` counts sizes of images with
    // locations): not a size recorded by a stage or an upload still running.
    let stored = |status: &str| matches!(status, "active" | "deactivated");
    Ok(Usage {
        size_bytes: rows
            .iter()
            .filter(|(_, st)| stored(st))
            .map(|(s, _)| bytes(s))
            .sum(),
        image_count: rows.len() as u64,
        uploading_count: rows.iter().filter(|(_, st)| uploading(st)).count() as u64,
        staging_bytes: rows
            .iter()
            .filter(|(_, st)| staged(st))
            .map(|(s, _)| bytes(s))
            .sum(),
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::collections::BTreeMap;

    use diesel::connection::SimpleConnection;
    use glance_model::filter::{ListQuery, PageLimits, parse_query_string};
    use glance_model::wire::NewImage;
    use glance_model::{Context, Image};

    use super::{find, list_page};
    use crate::db::{DbConnection, DbUrl, migrate};

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    /// A list page is written from JSON objects SQLite builds; each image in it must read
    /// back exactly as the same image shown on its own (built from decoded rows), whatever
    /// its property values hold: quotes, backslashes, control characters, non-ASCII, empty
    /// strings, a NULL value, or no properties at all; and its tags sorted, without the
    /// duplicate live row or the deleted one.
    #[test]
    fn a_list_page_carries_the_same_images_as_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DbUrl::parse(&format!("sqlite:///{}/g.db", dir.path().display())).expect("url");
        let mut conn = DbConnection::open(&url).expect("open");
        migrate::sync(&mut conn).expect("db_sync");
        let ctx = Context::unauthenticated_admin("req-test");
        let cases = [
            props(&[]),
            props(&[("os_distro", "cirros"), ("hw_disk_bus", "virtio")]),
            props(&[
                ("quote\"d", "a \"quoted\" value"),
                ("back\\slash", "C:\\images\\new"),
                ("ctl", "line\nbreak\ttab\u{1}\u{1f}"),
                ("ünïcödé", "値 😀 \u{2028}"),
                ("empty", ""),
                ("nulled", "to become NULL"),
            ]),
        ];
        let mut ids = Vec::new();
        for (n, properties) in cases.iter().enumerate() {
            let new = NewImage {
                name: Some(format!("image {n}")),
                tags: vec![
                    format!("t{n}"),
                    "shared".to_string(),
                    "Zed".to_string(),
                    "älpha".to_string(),
                ],
                properties: properties.clone(),
                ..NewImage::default()
            };
            ids.push(super::insert(&mut conn, &ctx, new).expect("insert").id);
        }
        conn.batch_execute(
            "UPDATE image_properties SET value = NULL WHERE name = 'nulled'; \
             UPDATE image_properties SET deleted = 1 WHERE name = 'hw_disk_bus'; \
             INSERT INTO image_tags (image_id, value, created_at, deleted) \
               SELECT image_id, value, created_at, 0 FROM image_tags WHERE value = 'shared'; \
             INSERT INTO image_tags (image_id, value, created_at, deleted) \
               SELECT image_id, 'gone', created_at, 1 FROM image_tags WHERE value = 'Zed';",
        )
        .expect("edit rows");
        let pairs = parse_query_string("limit=10").expect("query");
        let q = ListQuery::parse(&pairs, PageLimits::default()).expect("list query");
        let page = list_page(&mut conn, &ctx, &q).expect("list");
        assert_eq!(page.len(), cases.len());
        for listed in page {
            let id = listed.id();
            assert!(ids.contains(&id));
            let shown: Image = find(&mut conn, &ctx, &id).expect("find");
            let as_listed = serde_json::to_value(&listed).expect("listed JSON");
            assert_eq!(as_listed, serde_json::to_value(&shown).expect("image JSON"));
            let back: Image = serde_json::from_value(as_listed).expect("reads as an Image");
            assert_eq!(back, shown);
            assert_eq!(listed.into_image().expect("into_image"), shown);
        }
        let third = find(&mut conn, &ctx, &ids[2]).expect("find");
        assert_eq!(third.properties.get("nulled").map(String::as_str), Some(""));
        assert_eq!(third.properties.len(), 6);
        let second = find(&mut conn, &ctx, &ids[1]).expect("find");
        assert_eq!(second.tags, ["Zed", "shared", "t1", "älpha"]);
        assert_eq!(second.properties, props(&[("os_distro", "cirros")]));
    }
}

#[cfg(all(test, feature = "mysql"))]
mod insert_tests {
    use diesel::prelude::*;
    use diesel::query_builder::QueryFragment;

    use super::super::rows::ImageRow;
    use super::super::schema::images;

    /// A new image's INSERT binds its empty columns as NULL, so its text is the same for
    /// every image and the server keeps it prepared; the derived struct INSERT is not.
    #[test]
    fn image_insert_binds_every_column_and_is_kept_prepared() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
            .and_then(|d| d.and_hms_opt(18, 0, 0))
            .expect("time");
        let row = ImageRow {
            id: "6f3c".to_string(),
            name: None,
            size: None,
            status: glance_model::ImageStatus::Queued.as_str().to_string(),
            created_at: now,
            updated_at: Some(now),
            deleted_at: None,
            deleted: false,
            disk_format: Some("raw".to_string()),
            container_format: None,
            checksum: None,
            owner: None,
            min_disk: 0,
            min_ram: 0,
            protected: false,
            virtual_size: None,
            visibility: glance_model::Visibility::Shared.as_str().to_string(),
            os_hidden: false,
            os_hash_algo: None,
            os_hash_value: None,
        };
        let q = insert_row!(row);
        let sql = diesel::debug_query::<diesel::mysql::Mysql, _>(&q).to_string();
        assert!(!sql.contains("DEFAULT"), "{sql}");
        let values = sql.split(" -- binds").next().expect("sql");
        assert_eq!(values.matches('?').count(), 20, "{sql}");
        assert!(
            sql.contains("[\"6f3c\", None, None, \"queued\""),
            "binds in column order: {sql}"
        );
        assert!(
            q.is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk"),
            "{sql}"
        );
        let derived = diesel::insert_into(images::table).values(&row);
        assert!(
            !derived
                .is_safe_to_cache_prepared(&diesel::mysql::Mysql)
                .expect("walk"),
            "Diesel now keeps the struct INSERT prepared: insert_row! can go"
        );
    }
}

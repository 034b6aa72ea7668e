//! Upload leases (`glance_upload_leases`, our table, not Glance's): the node uploading an
//! image holds a lease it renews; an image whose lease ran out is found and returned to
//! `queued`, so a crashed glance-api never leaves an image stuck in `saving`.
//!
//! A lease exists only while its image is `saving`: it is taken with the move into
//! `saving`, and every move out drops it in the same transaction (completion, abort,
//! recovery, an update of the status, a delete). So a delete of an image in any other
//! status has no lease to drop, and sends no statement for it.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use glance_model::wire::{Lease, LeaseRequest, UploadComplete};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus};

use super::images::{find, find_row, lock, lock_row};
use super::rows::parse_id;
use super::schema::{glance_upload_leases as leases, image_locations, images};
use super::{DbConnection, on_backend};
use crate::error::RegistryError;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = leases)]
struct LeaseRow {
    image_id: String,
    node: String,
    token: String,
    expires_at: NaiveDateTime,
    heartbeat_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

impl LeaseRow {
    fn into_lease(self) -> Result<Lease, RegistryError> {
        Ok(Lease {
            image_id: parse_id(&self.image_id)?,
            node: self.node,
            token: self.token,
            expires_at: self.expires_at,
            heartbeat_at: self.heartbeat_at,
        })
    }
}

/// Starts an upload: `queued → saving` by compare-and-swap, and a fresh lease.
pub fn acquire(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    req: &LeaseRequest,
) -> Result<Lease, RegistryError> {
    req.validate()?;
    super::changing(conn, id, |conn| {
        let row = lock_row(conn, ctx, id)?;
        if row.status != ImageStatus::Queued.as_str() {
            return Err(RegistryError::conflict(format!(
                "Image {id} is {}; data can only be uploaded to a queued image",
                row.status
            )));
        }
        glance_model::status::require_formats(
            row.disk_format.as_deref(),
            row.container_format.as_deref(),
        )?;
        let now = glance_model::time::now();
        diesel::update(
            images::table
                .filter(images::id.eq(&row.id))
                .filter(images::status.eq("queued")),
        )
        .set((images::status.eq("saving"), images::updated_at.eq(now)))
        .execute(conn)?;
        drop_for_image(conn, &row.id)?;
        let lease = LeaseRow {
            image_id: row.id.clone(),
            node: req.node.clone(),
            token: uuid::Uuid::new_v4().to_string(),
            expires_at: now + Duration::seconds(i64::from(req.ttl_secs)),
            heartbeat_at: now,
            created_at: now,
        };
        diesel::insert_into(leases::table)
            .values(&lease)
            .execute(conn)?;
        lease.into_lease()
    })
}

fn held(conn: &mut DbConnection, id: &ImageId, token: &str) -> Result<LeaseRow, RegistryError> {
    leases::table
        .filter(leases::image_id.eq(id.to_string()))
        .filter(leases::token.eq(token))
        .select(LeaseRow::as_select())
        .get_result(conn)
        .optional()?
        .ok_or_else(|| {
            RegistryError::rule(
                ErrorKind::Gone,
                format!("The upload lease on image {id} is gone: the image was deleted or the upload was recovered"),
            )
        })
}

/// Renews a lease for `ttl_secs` from now.
pub fn heartbeat(
    conn: &mut DbConnection,
    id: &ImageId,
    token: &str,
    ttl_secs: u32,
) -> Result<Lease, RegistryError> {
    super::transaction(conn, |conn| {
        let mut row = held(conn, id, token)?;
        let now = glance_model::time::now();
        row.expires_at = now + Duration::seconds(i64::from(ttl_secs.clamp(1, 86_400)));
        row.heartbeat_at = now;
        diesel::update(
            leases::table
                .filter(leases::image_id.eq(&row.image_id))
                .filter(leases::token.eq(token)),
        )
        .set((
            leases::expires_at.eq(row.expires_at),
            leases::heartbeat_at.eq(now),
        ))
        .execute(conn)?;
        row.into_lease()
    })
}

/// Records the stored data and makes the image `active`, releasing the lease.
pub fn complete(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    done: &UploadComplete,
) -> Result<Image, RegistryError> {
    done.validate()?;
    super::changing(conn, id, |conn| {
        lock(conn, id)?;
        // A lost lease (410) says more than the image being gone since (404).
        held(conn, id, &done.token)?;
        let row = find_row(conn, ctx, id)?;
        if row.status != ImageStatus::Saving.as_str() {
            return Err(RegistryError::conflict(format!(
                "Image {id} is {}, not saving",
                row.status
            )));
        }
        let now = glance_model::time::now();
        diesel::update(
            images::table
                .filter(images::id.eq(&row.id))
                .filter(images::status.eq("saving")),
        )
        .set((
            images::status.eq("active"),
            images::size.eq(done.size),
            images::checksum.eq(&done.checksum),
            images::os_hash_algo.eq(&done.os_hash_algo),
            images::os_hash_value.eq(&done.os_hash_value),
            images::updated_at.eq(now),
        ))
        .execute(conn)?;
        diesel::insert_into(image_locations::table)
            .values((
                image_locations::image_id.eq(&row.id),
                image_locations::value.eq(&done.location.url),
                image_locations::meta_data.eq(done.location.metadata.to_string()),
                image_locations::status.eq("active"),
                image_locations::created_at.eq(now),
                image_locations::updated_at.eq(now),
                image_locations::deleted.eq(false),
            ))
            .execute(conn)?;
        drop_for_image(conn, &row.id)?;
        Ok(())
    })?;
    find(conn, ctx, id)
}

/// Gives up an upload: `saving → queued`, sizes cleared, lease released.
pub fn abort(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    token: &str,
) -> Result<Image, RegistryError> {
    super::changing(conn, id, |conn| {
        lock(conn, id)?;
        held(conn, id, token)?;
        back_to_queued(conn, ctx, id)
    })?;
    find(conn, ctx, id)
}

fn back_to_queued(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
) -> Result<(), RegistryError> {
    let row = find_row(conn, ctx, id)?;
    let now = glance_model::time::now();
    diesel::update(
        images::table
            .filter(images::id.eq(&row.id))
            .filter(images::status.eq("saving")),
    )
    .set((
        images::status.eq("queued"),
        images::size.eq(None::<i64>),
        images::virtual_size.eq(None::<i64>),
        images::updated_at.eq(now),
    ))
    .execute(conn)?;
    drop_for_image(conn, &row.id)
}

/// Leases that ran out before `now`: their holders died or hung.
pub fn expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<Vec<Lease>, RegistryError> {
    leases::table
        .filter(leases::expires_at.lt(now))
        .order(leases::expires_at.asc())
        .select(LeaseRow::as_select())
        .load::<LeaseRow>(conn)?
        .into_iter()
        .map(LeaseRow::into_lease)
        .collect()
}

/// Returns an image whose upload lease expired to `queued`. Refused (409) while the lease
/// is live, so a slow but healthy upload is never taken away.
pub fn recover(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
) -> Result<Image, RegistryError> {
    super::changing(conn, id, |conn| {
        lock(conn, id)?;
        let lease: Option<LeaseRow> = leases::table
            .filter(leases::image_id.eq(id.to_string()))
            .select(LeaseRow::as_select())
            .get_result(conn)
            .optional()?;
        let now = glance_model::time::now();
        match lease {
            Some(l) if l.expires_at >= now => Err(RegistryError::conflict(format!(
                "The upload of image {id} by {} is alive until {}",
                l.node,
                glance_model::time::isotime(&l.expires_at)
            ))),
            Some(_) => back_to_queued(conn, ctx, id),
            None => Err(RegistryError::not_found(format!(
                "Image {id} has no upload lease"
            ))),
        }
    })?;
    find(conn, ctx, id)
}

/// Removes any lease on an image (used on delete and completion).
pub fn drop_for_image(conn: &mut DbConnection, image_id: &str) -> Result<(), RegistryError> {
    on_backend!(conn, |c, _B| {
        diesel::delete(leases::table.filter(leases::image_id.eq(image_id))).execute(c)?
    });
    Ok(())
}

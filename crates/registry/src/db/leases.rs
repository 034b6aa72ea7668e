//! Upload leases (`glance_upload_leases`, our table, not Glance's): the node uploading,
//! staging or importing an image holds a lease it renews; an image whose lease ran out is
//! found and returned to `queued`, so a crashed glance-api never leaves an image stuck in
//! `saving`, `uploading` (while it stages) or `importing`.
//!
//! A lease exists only while its image is in one of those [leased](leased) statuses:
//! [`follow_status`] is that rule's one home (the end of a stage also releases one, leaving
//! the image `uploading` with its data staged: [`super::imports`]). Every change of an image's status passes it the move, in the same transaction and
//! under the image's row lock: the move into `saving` by an upload's start takes the lease,
//! every move out drops it (completion, abort, recovery, an update of the status, a
//! delete). So a delete of an image in any other status has no lease to drop, and sends no
//! statement for it.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use glance_model::wire::{Lease, LeaseRequest, UploadComplete};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus};

use super::images::find;
use super::locked::{self, Lock, LockedImage};
use super::rows::parse_id;
use super::schema::{glance_upload_leases as leases, image_locations, images};
use super::{DbConnection, on_backend};
use crate::error::RegistryError;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = leases)]
pub(super) struct LeaseRow {
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

/// The statuses a lease may exist in: data is being written (`saving`), staged
/// (`uploading`) or imported (`importing`) by a node that may die.
pub fn leased(status: ImageStatus) -> bool {
    matches!(
        status,
        ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
    )
}

/// The rule "a lease exists only while its image is [leased]", for a move of the locked
/// image from `from` to `to`: a move into a leased status with `take` (an upload's, stage's
/// or import's start) drops any stale lease and takes a new one, which is returned; any other
/// move out of a leased status drops the lease; any other move touches no lease and sends no
/// statement. A status set into `saving` without `take` (an update by an admin) takes no
/// lease, as before.
pub fn follow_status(
    conn: &mut DbConnection,
    image: &LockedImage,
    from: ImageStatus,
    to: ImageStatus,
    take: Option<&LeaseRequest>,
) -> Result<Option<Lease>, RegistryError> {
    match take {
        Some(req) if from != to && leased(to) => {
            drop_lease(conn, image)?;
            let now = glance_model::time::now();
            let lease = LeaseRow {
                image_id: image.sid().to_string(),
                node: req.node.clone(),
                token: uuid::Uuid::new_v4().to_string(),
                expires_at: now + Duration::seconds(i64::from(req.ttl_secs)),
                heartbeat_at: now,
                created_at: now,
            };
            diesel::insert_into(leases::table)
                .values(&lease)
                .execute(conn)?;
            Ok(Some(lease.into_lease()?))
        }
        _ if from != to && leased(from) => {
            drop_lease(conn, image)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Starts an upload: `queued → saving` by compare-and-swap, and a fresh lease.
pub fn acquire(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    req: &LeaseRequest,
) -> Result<Lease, RegistryError> {
    acquire_for(conn, ctx, id, req, ImageStatus::Saving)
}

/// Starts the writing of data, `queued → to` (`saving` for an upload, `uploading` for a
/// stage) by compare-and-swap, and a fresh lease.
pub fn acquire_for(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    req: &LeaseRequest,
    to: ImageStatus,
) -> Result<Lease, RegistryError> {
    req.validate()?;
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        let row = image.row(conn, ctx)?;
        let status = row.status()?;
        if status != ImageStatus::Queued {
            let what = if to == ImageStatus::Uploading {
                "staged for"
            } else {
                "uploaded to"
            };
            return Err(RegistryError::conflict(format!(
                "Image {id} is {status}; data can only be {what} a queued image"
            )));
        }
        // Glance stages data to an image without formats; its import then refuses it (409).
        if to == ImageStatus::Saving {
            glance_model::status::require_formats(
                row.disk_format.as_deref(),
                row.container_format.as_deref(),
            )?;
        }
        let now = glance_model::time::now();
        diesel::update(
            images::table
                .filter(images::id.eq(image.sid()))
                .filter(images::status.eq(ImageStatus::Queued.as_str())),
        )
        .set((images::status.eq(to.as_str()), images::updated_at.eq(now)))
        .execute(conn)?;
        // `queued → saving|uploading` with a request always takes one (see `follow_status`).
        follow_status(conn, image, status, to, Some(req))?.ok_or_else(|| {
            RegistryError::conflict(format!("Image {id}: no upload lease was taken"))
        })
    })
}

pub(super) fn held(
    conn: &mut DbConnection,
    id: &ImageId,
    token: &str,
) -> Result<LeaseRow, RegistryError> {
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

/// Renews a lease for `ttl_secs` from now, under the image's row lock (a child row like any
/// other: a delete that holds the lock cannot race it).
pub fn heartbeat(
    conn: &mut DbConnection,
    id: &ImageId,
    token: &str,
    ttl_secs: u32,
    message: Option<&str>,
) -> Result<Lease, RegistryError> {
    locked::write(conn, id, Lock::Row, |conn, image| {
        let mut row = held(conn, id, token)?;
        if let Some(m) = message {
            super::imports::progress(conn, image, m)?;
        }
        let now = glance_model::time::now();
        row.expires_at = now + Duration::seconds(i64::from(ttl_secs.clamp(1, 86_400)));
        row.heartbeat_at = now;
        diesel::update(
            leases::table
                .filter(leases::image_id.eq(image.sid()))
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
    locked::write(conn, id, Lock::Row, |conn, image| {
        // A lost lease (410) says more than the image being gone since (404).
        held(conn, id, &done.token)?;
        let status = image.row(conn, ctx)?.status()?;
        if !matches!(status, ImageStatus::Saving | ImageStatus::Importing) {
            return Err(RegistryError::conflict(format!(
                "Image {id} is {status}, not saving or importing"
            )));
        }
        let now = glance_model::time::now();
        diesel::update(
            images::table
                .filter(images::id.eq(image.sid()))
                .filter(images::status.eq(status.as_str())),
        )
        .set((
            images::status.eq(ImageStatus::Active.as_str()),
            images::size.eq(done.size),
            images::checksum.eq(&done.checksum),
            images::os_hash_algo.eq(&done.os_hash_algo),
            images::os_hash_value.eq(&done.os_hash_value),
            images::virtual_size.eq(done.virtual_size),
            images::updated_at.eq(now),
        ))
        .execute(conn)?;
        diesel::insert_into(image_locations::table)
            .values((
                image_locations::image_id.eq(image.sid()),
                image_locations::value.eq(&done.location.url),
                image_locations::meta_data.eq(done.location.metadata.to_string()),
                // A location's status is spelled as the image status it stands for.
                image_locations::status.eq(ImageStatus::Active.as_str()),
                image_locations::created_at.eq(now),
                image_locations::updated_at.eq(now),
                image_locations::deleted.eq(false),
            ))
            .execute(conn)?;
        if status == ImageStatus::Importing {
            super::imports::finish(conn, image, None)?;
        }
        follow_status(conn, image, status, ImageStatus::Active, None)?;
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
    message: Option<&str>,
) -> Result<Image, RegistryError> {
    locked::write(conn, id, Lock::Row, |conn, image| {
        held(conn, id, token)?;
        back_to_queued(conn, ctx, image, message.unwrap_or("The import failed"))
    })?;
    find(conn, ctx, id)
}

fn back_to_queued(
    conn: &mut DbConnection,
    ctx: &Context,
    image: &mut LockedImage,
    why: &str,
) -> Result<(), RegistryError> {
    let status = image.row(conn, ctx)?.status()?;
    // The lease this drops is what brought the caller here (held or expired), so the image
    // is in a leased status unless a writer without a lease moved it since; then only the
    // lease goes.
    let from = if leased(status) {
        status
    } else {
        ImageStatus::Saving
    };
    if status == ImageStatus::Importing {
        super::imports::finish(conn, image, Some(why))?;
    }
    let now = glance_model::time::now();
    diesel::update(
        images::table
            .filter(images::id.eq(image.sid()))
            .filter(images::status.eq(from.as_str())),
    )
    .set((
        images::status.eq(ImageStatus::Queued.as_str()),
        images::size.eq(None::<i64>),
        images::virtual_size.eq(None::<i64>),
        images::updated_at.eq(now),
    ))
    .execute(conn)?;
    follow_status(conn, image, from, ImageStatus::Queued, None)?;
    Ok(())
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
    locked::write(conn, id, Lock::Row, |conn, image| {
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
            Some(l) => back_to_queued(
                conn,
                ctx,
                image,
                &format!(
                    "The importing node {} stopped before it finished (its lease expired)",
                    l.node
                ),
            ),
            None => Err(RegistryError::not_found(format!(
                "Image {id} has no upload lease"
            ))),
        }
    })?;
    find(conn, ctx, id)
}

/// Removes any lease on the image.
pub(super) fn drop_lease(
    conn: &mut DbConnection,
    image: &LockedImage,
) -> Result<(), RegistryError> {
    let image_id = image.sid();
    on_backend!(conn, |c, _B| {
        diesel::delete(leases::table.filter(leases::image_id.eq(image_id))).execute(c)?
    });
    Ok(())
}

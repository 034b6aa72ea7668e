//! Edits of an image's locations (`image_locations`): add, remove, replace, applied under the
//! image's row lock to the rows as they are then, and checked as a whole before anything is
//! written: the location quota, no duplicate, which statuses allow which edit, and no active
//! image left without data. So two glance-api nodes adding at once cannot together pass
//! `image_location_quota`: the second sees the first's row.
//!
//! Rows keep their ids (their order) as long as the list keeps its order; a location that
//! moves behind a new one is soft-deleted and written again, since the list is read in id order.

use diesel::prelude::*;
use glance_model::wire::{LocationOp, LocationsChange, NewLocation};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus};

use super::DbConnection;
use super::images::find;
use super::locked::{self, Lock, LockedImage};
use super::schema::{image_locations, images};
use crate::error::RegistryError;

/// One live location: its row id (none for a new one), URL and metadata.
#[derive(Debug, Clone)]
struct Entry {
    id: Option<i32>,
    url: String,
    metadata: serde_json::Value,
}

/// Applies `change` to the locations of image `id` (see the module doc).
pub fn change(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    change: &LocationsChange,
) -> Result<Image, RegistryError> {
    change.validate()?;
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        let status = image.row(conn, ctx)?.status()?;
        let current = live(conn, image)?;
        let mut list = current.clone();
        for op in &change.ops {
            apply(op, status, &mut list, id)?;
        }
        check(change, status, &list, id)?;
        write(conn, image, &current, &list)?;
        if waiting(status) && !list.is_empty() {
            activate(conn, image, change, id)?;
        }
        Ok(())
    })?;
    find(conn, ctx, id)
}

/// Whether the image waits for its data: a location makes it active.
fn waiting(status: ImageStatus) -> bool {
    matches!(status, ImageStatus::Queued | ImageStatus::Importing)
}

/// The image's live locations, in row order.
fn live(conn: &mut DbConnection, image: &LockedImage) -> Result<Vec<Entry>, RegistryError> {
    let rows: Vec<(i32, String, Option<String>)> = image_locations::table
        .filter(image_locations::image_id.eq(image.sid()))
        .filter(image_locations::deleted.eq(false))
        .order(image_locations::id.asc())
        .select((
            image_locations::id,
            image_locations::value,
            image_locations::meta_data,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, url, meta)| Entry {
            id: Some(id),
            url,
            metadata: meta
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or_else(|| serde_json::json!({})),
        })
        .collect())
}

fn new_entry(l: &NewLocation) -> Entry {
    Entry {
        id: None,
        url: l.url.clone(),
        metadata: l.metadata.clone(),
    }
}

/// One edit, with Glance's status rules: add and replace on `queued` or `active` images (and
/// add on an `importing` one, which is how `POST /v2/images/{id}/locations` finishes),
/// remove on `active` ones.
fn apply(
    op: &LocationOp,
    status: ImageStatus,
    list: &mut Vec<Entry>,
    id: &ImageId,
) -> Result<(), RegistryError> {
    let writable = matches!(status, ImageStatus::Queued | ImageStatus::Active);
    match op {
        LocationOp::Add { index, location } => {
            if !writable && status != ImageStatus::Importing {
                return Err(RegistryError::conflict(format!(
                    "Locations can be added only to a queued or active image; image {id} is {status}"
                )));
            }
            let at = index.unwrap_or(list.len()).min(list.len());
            list.insert(at, new_entry(location));
        }
        LocationOp::Remove { url } => {
            if status != ImageStatus::Active {
                return Err(RegistryError::conflict(format!(
                    "Locations can be removed only from an active image; image {id} is {status}"
                )));
            }
            let at = list.iter().position(|e| e.url == *url).ok_or_else(|| {
                RegistryError::conflict(format!(
                    "Image {id} has no location {url} (any more): read the image again"
                ))
            })?;
            list.remove(at);
        }
        LocationOp::Replace {
            expected,
            locations,
        } => {
            if !writable {
                return Err(RegistryError::conflict(format!(
                    "Locations can be replaced only on a queued or active image; image {id} is {status}"
                )));
            }
            let now: Vec<&str> = list.iter().map(|e| e.url.as_str()).collect();
            if now != expected.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(RegistryError::conflict(format!(
                    "The locations of image {id} changed while this request ran: read the image again"
                )));
            }
            // A location that stays keeps its row (and so its place).
            let mut old = std::mem::take(list);
            for l in locations {
                match old.iter().position(|e| e.url == l.url) {
                    Some(i) => {
                        let mut e = old.remove(i);
                        e.metadata = l.metadata.clone();
                        list.push(e);
                    }
                    None => list.push(new_entry(l)),
                }
            }
        }
    }
    Ok(())
}

/// The rules on the list as a whole.
fn check(
    change: &LocationsChange,
    status: ImageStatus,
    list: &[Entry],
    id: &ImageId,
) -> Result<(), RegistryError> {
    if let Some(quota) = change.quota
        && list.len() > quota as usize
    {
        return Err(RegistryError::rule(
            ErrorKind::TooLarge,
            format!(
                "Image {id} may have at most {quota} locations (image_location_quota); this change would give it {}",
                list.len()
            ),
        ));
    }
    for (i, a) in list.iter().enumerate() {
        if list[..i]
            .iter()
            .any(|b| b.url == a.url && b.metadata == a.metadata)
        {
            return Err(RegistryError::bad_request(format!(
                "Image {id} would have location {} twice",
                a.url
            )));
        }
    }
    if status == ImageStatus::Active && list.is_empty() {
        return Err(RegistryError::rule(
            ErrorKind::Forbidden,
            format!(
                "Image {id} is active: its last location cannot be removed; delete the image instead"
            ),
        ));
    }
    if waiting(status) && !list.is_empty() && change.activate.is_none() {
        return Err(RegistryError::bad_request(format!(
            "Image {id} is queued: its first location must come with the data's size"
        )));
    }
    Ok(())
}

/// Writes the new list: rows that stay in order are kept (their metadata updated), the others
/// soft-deleted, and the new entries (and those that moved behind one) inserted in order.
fn write(
    conn: &mut DbConnection,
    image: &LockedImage,
    current: &[Entry],
    list: &[Entry],
) -> Result<(), RegistryError> {
    let now = glance_model::time::now();
    let mut kept: Vec<i32> = Vec::new();
    let mut last: Option<i32> = None;
    let mut inserting = false;
    let mut inserts: Vec<&Entry> = Vec::new();
    for e in list {
        match e.id {
            Some(row) if !inserting && last.is_none_or(|l| row > l) => {
                last = Some(row);
                kept.push(row);
                let before = current.iter().find(|c| c.id == Some(row));
                if before.is_some_and(|b| b.metadata != e.metadata) {
                    diesel::update(image_locations::table.filter(image_locations::id.eq(row)))
                        .set((
                            image_locations::meta_data.eq(e.metadata.to_string()),
                            image_locations::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
            }
            _ => {
                inserting = true;
                inserts.push(e);
            }
        }
    }
    let gone: Vec<i32> = current
        .iter()
        .filter_map(|c| c.id)
        .filter(|row| !kept.contains(row))
        .collect();
    if !gone.is_empty() {
        diesel::update(
            image_locations::table
                .filter(image_locations::image_id.eq(image.sid()))
                .filter(image_locations::id.eq_any(&gone)),
        )
        .set((
            image_locations::deleted.eq(true),
            image_locations::deleted_at.eq(now),
            image_locations::updated_at.eq(now),
            image_locations::status.eq("deleted"),
        ))
        .execute(conn)?;
    }
    // One statement per row: ids must follow the list's order on every backend.
    for e in inserts {
        diesel::insert_into(image_locations::table)
            .values((
                image_locations::image_id.eq(image.sid()),
                image_locations::value.eq(&e.url),
                image_locations::meta_data.eq(e.metadata.to_string()),
                // A location's status is spelled as the image status it stands for.
                image_locations::status.eq(ImageStatus::Active.as_str()),
                image_locations::created_at.eq(now),
                image_locations::updated_at.eq(now),
                image_locations::deleted.eq(false),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// `queued → active` with the size and digests the caller gave (checked by [`check`]).
fn activate(
    conn: &mut DbConnection,
    image: &LockedImage,
    change: &LocationsChange,
    id: &ImageId,
) -> Result<(), RegistryError> {
    let a = change
        .activate
        .as_ref()
        .ok_or_else(|| RegistryError::bad_request(format!("Image {id} needs a size")))?;
    let now = glance_model::time::now();
    let n = diesel::update(images::table.filter(images::id.eq(image.sid())).filter(
        images::status.eq_any([
            ImageStatus::Queued.as_str(),
            ImageStatus::Importing.as_str(),
        ]),
    ))
    .set((
        images::status.eq(ImageStatus::Active.as_str()),
        images::size.eq(a.size),
        images::checksum.eq(&a.checksum),
        images::os_hash_algo.eq(&a.os_hash_algo),
        images::os_hash_value.eq(&a.os_hash_value),
        images::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n != 1 {
        return Err(RegistryError::conflict(format!(
            "Image {id} is no longer waiting for its data"
        )));
    }
    Ok(())
}

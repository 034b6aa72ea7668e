//! Queries on `image_tags`: set semantics over live rows.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use glance_model::quota::ImageQuotas;
use glance_model::{Context, ImageId};

use super::DbConnection;
use super::locked::{self, Lock, LockedImage};
use super::schema::image_tags;
use crate::error::RegistryError;

/// Makes the live tag set equal to `wanted`: removes the others, adds the missing ones.
pub fn replace(
    conn: &mut DbConnection,
    image: &LockedImage,
    wanted: &[String],
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    let image_id = image.sid();
    let wanted: BTreeSet<&String> = wanted.iter().collect();
    let current: Vec<String> = image_tags::table
        .select(image_tags::value)
        .filter(image_tags::image_id.eq(image_id))
        .filter(image_tags::deleted.eq(false))
        .load(conn)?;
    for old in current.iter().filter(|t| !wanted.contains(t)) {
        soft_delete(conn, image, old, now)?;
    }
    for new in wanted.into_iter().filter(|t| !current.contains(t)) {
        insert(conn, image, new, now)?;
    }
    Ok(())
}

fn insert(
    conn: &mut DbConnection,
    image: &LockedImage,
    tag: &str,
    now: NaiveDateTime,
) -> Result<(), RegistryError> {
    let image_id = image.sid();
    diesel::insert_into(image_tags::table)
        .values((
            image_tags::image_id.eq(image_id),
            image_tags::value.eq(tag),
            image_tags::created_at.eq(now),
            image_tags::updated_at.eq(now),
            image_tags::deleted.eq(false),
        ))
        .execute(conn)?;
    Ok(())
}

fn soft_delete(
    conn: &mut DbConnection,
    image: &LockedImage,
    tag: &str,
    now: NaiveDateTime,
) -> Result<usize, RegistryError> {
    let image_id = image.sid();
    Ok(diesel::update(
        image_tags::table
            .filter(image_tags::image_id.eq(image_id))
            .filter(image_tags::value.eq(tag))
            .filter(image_tags::deleted.eq(false)),
    )
    .set((
        image_tags::deleted.eq(true),
        image_tags::deleted_at.eq(now),
        image_tags::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// Adds one tag; adding a tag the image already has changes nothing (Glance: idempotent).
/// A new tag is counted against `image_tag_quota` under the image's row lock, so two
/// concurrent additions cannot both take the last place.
pub fn add(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    tag: &str,
    quotas: &ImageQuotas,
) -> Result<(), RegistryError> {
    glance_model::image::check_tag(tag)?;
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        let live = || {
            image_tags::table
                .filter(image_tags::image_id.eq(image.sid()))
                .filter(image_tags::deleted.eq(false))
        };
        let have: i64 = live()
            .filter(image_tags::value.eq(tag))
            .count()
            .get_result(conn)?;
        if have == 0 {
            if quotas.tags.is_some() {
                let count: i64 = live().count().get_result(conn)?;
                quotas.check_tags(Some(id), count.unsigned_abs() + 1)?;
            }
            insert(conn, image, tag, glance_model::time::now())?;
        }
        Ok(())
    })
}

/// Checks a whole new tag set (a replacement, or a new image's) against `image_tag_quota`.
pub fn check_set(
    quotas: &ImageQuotas,
    id: Option<&ImageId>,
    tags: &[String],
) -> Result<(), RegistryError> {
    let distinct: BTreeSet<&String> = tags.iter().collect();
    Ok(quotas.check_tags(id, distinct.len() as u64)?)
}

/// Removes one tag; a tag the image does not have is a 404.
pub fn remove(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    tag: &str,
) -> Result<(), RegistryError> {
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        if soft_delete(conn, image, tag, glance_model::time::now())? == 0 {
            return Err(RegistryError::not_found(format!(
                "Tag {tag} not found on image {id}"
            )));
        }
        Ok(())
    })
}

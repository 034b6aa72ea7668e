//! Queries on `image_members`: sharing a `shared` image with other projects.

use diesel::prelude::*;
use glance_model::quota::ImageQuotas;
use glance_model::{Context, ErrorKind, ImageId, Member, MemberStatus};

use super::DbConnection;
use super::images::find_row;
use super::locked::{self, Lock, LockedImage};
use super::rows::{ImageRow, MemberRow};
use super::schema::image_members;
use crate::error::RegistryError;

fn shared_only(row: &ImageRow) -> Result<(), RegistryError> {
    if row.visibility == glance_model::Visibility::Shared.as_str() {
        Ok(())
    } else {
        Err(RegistryError::rule(
            ErrorKind::Forbidden,
            format!(
                "Only shared images have members; image {} is {}",
                row.id, row.visibility
            ),
        ))
    }
}

fn live(image_id: &str) -> image_members::BoxedQuery<'static, super::Db> {
    image_members::table
        .filter(image_members::image_id.eq(image_id.to_string()))
        .filter(image_members::deleted.eq(false))
        .into_boxed()
}

/// Members of an image the caller can see. The owner (or admin) sees all of them; a member
/// sees only its own membership, as in Glance.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
) -> Result<Vec<Member>, RegistryError> {
    let row = find_row(conn, ctx, id)?;
    shared_only(&row)?;
    let mut q = live(&row.id).select(MemberRow::as_select());
    if !ctx.is_admin && !ctx.owns(row.owner.as_deref()) {
        q = q.filter(image_members::member.eq(ctx.project_id.clone().unwrap_or_default()));
    }
    q.order(image_members::created_at.asc())
        .then_order_by(image_members::member.asc())
        .load::<MemberRow>(conn)?
        .into_iter()
        .map(MemberRow::into_member)
        .collect()
}

/// One membership; 404 if absent or not visible to the caller.
pub fn find(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    member: &str,
) -> Result<Member, RegistryError> {
    let row = find_row(conn, ctx, id)?;
    shared_only(&row)?;
    if !ctx.is_admin && !ctx.owns(row.owner.as_deref()) && ctx.project_id.as_deref() != Some(member)
    {
        return Err(not_found(id, member));
    }
    live(&row.id)
        .select(MemberRow::as_select())
        .filter(image_members::member.eq(member.to_string()))
        .first::<MemberRow>(conn)
        .optional()?
        .ok_or_else(|| not_found(id, member))?
        .into_member()
}

fn not_found(id: &ImageId, member: &str) -> RegistryError {
    RegistryError::not_found(format!("Member {member} not found on image {id}"))
}

/// Adds a `pending` member; an existing live membership is a 409, and one more than
/// `image_member_quota` a 413 (counted under the image's row lock, so two concurrent
/// additions cannot both take the last place).
pub fn add(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    member: &str,
    quotas: &ImageQuotas,
) -> Result<Member, RegistryError> {
    glance_model::member::validate_member_id(member)?;
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        shared_only(image.row(conn, ctx)?)?;
        if quotas.members.is_some() {
            let count: i64 = live(image.sid()).count().get_result(conn)?;
            quotas.check_members(id, count.unsigned_abs() + 1)?;
        }
        let exists: i64 = live(image.sid())
            .filter(image_members::member.eq(member.to_string()))
            .count()
            .get_result(conn)?;
        if exists > 0 {
            return Err(RegistryError::conflict(format!(
                "Project {member} is already a member of image {id}"
            )));
        }
        let now = glance_model::time::now();
        diesel::insert_into(image_members::table)
            .values((
                image_members::image_id.eq(image.sid()),
                image_members::member.eq(member),
                image_members::can_share.eq(false),
                image_members::status.eq(MemberStatus::Pending.as_str()),
                image_members::created_at.eq(now),
                image_members::updated_at.eq(now),
                image_members::deleted.eq(false),
            ))
            .execute(conn)?;
        Ok(())
    })?;
    find(conn, ctx, id, member)
}

/// Sets a member's status.
pub fn set_status(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    member: &str,
    status: MemberStatus,
) -> Result<Member, RegistryError> {
    locked::write(conn, id, Lock::Row, |conn, image| {
        find(conn, ctx, id, member)?;
        write_member(conn, image, member, Some(status))
    })?;
    find(conn, ctx, id, member)
}

/// Removes a member (soft delete, as Glance does).
pub fn remove(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    member: &str,
) -> Result<(), RegistryError> {
    locked::write(conn, id, Lock::Row, |conn, image| {
        find(conn, ctx, id, member)?;
        write_member(conn, image, member, None)
    })
}

/// Sets a live membership's status (`Some`), or removes it (`None`: a soft delete).
fn write_member(
    conn: &mut DbConnection,
    image: &LockedImage,
    member: &str,
    status: Option<MemberStatus>,
) -> Result<(), RegistryError> {
    let now = glance_model::time::now();
    let row = image_members::table
        .filter(image_members::image_id.eq(image.sid()))
        .filter(image_members::member.eq(member))
        .filter(image_members::deleted.eq(false));
    match status {
        Some(status) => diesel::update(row)
            .set((
                image_members::status.eq(status.as_str()),
                image_members::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(row)
            .set((
                image_members::deleted.eq(true),
                image_members::deleted_at.eq(now),
                image_members::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(())
}

//! `glance-manage db purge`: hard-deletes soft-deleted rows older than a cut-off, a bounded
//! number per table. The `images` table is left alone unless asked (`purge_images_table`),
//! because purged image ids could be reused (OSSN-0075).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::{
    glance_upload_leases, image_locations, image_members, image_properties, image_tags, images,
    task_info, tasks,
};
use crate::error::RegistryError;

/// Rows removed per table, in the order they were purged.
pub type PurgeReport = Vec<(&'static str, usize)>;

/// Purges child tables and tasks. `max_rows` bounds each table; `None` means all.
pub fn purge(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    max_rows: Option<i64>,
) -> Result<PurgeReport, RegistryError> {
    let limit = max_rows.unwrap_or(i64::MAX);
    let mut report = Vec::new();
    macro_rules! purge_int_ids {
        ($conn:ident, $t:ident) => {{
            let ids: Vec<i32> = $t::table
                .select($t::id)
                .filter($t::deleted.eq(true))
                .filter($t::deleted_at.lt(before))
                .order($t::id.asc())
                .limit(limit)
                .load($conn)?;
            let n = if ids.is_empty() {
                0
            } else {
                diesel::delete($t::table.filter($t::id.eq_any(&ids))).execute($conn)?
            };
            report.push((stringify!($t), n));
        }};
    }
    conn.transaction(|conn| {
        purge_int_ids!(conn, image_properties);
        purge_int_ids!(conn, image_tags);
        purge_int_ids!(conn, image_members);
        purge_int_ids!(conn, image_locations);
        let task_ids: Vec<String> = tasks::table
            .select(tasks::id)
            .filter(tasks::deleted.eq(true))
            .filter(tasks::deleted_at.lt(before))
            .order(tasks::id.asc())
            .limit(limit)
            .load(conn)?;
        if task_ids.is_empty() {
            report.push(("task_info", 0));
            report.push(("tasks", 0));
        } else {
            report.push((
                "task_info",
                diesel::delete(task_info::table.filter(task_info::task_id.eq_any(&task_ids)))
                    .execute(conn)?,
            ));
            report.push((
                "tasks",
                diesel::delete(tasks::table.filter(tasks::id.eq_any(&task_ids))).execute(conn)?,
            ));
        }
        Ok::<_, RegistryError>(())
    })?;
    Ok(report)
}

/// Purges soft-deleted `images` rows (and any children they still have).
pub fn purge_images(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    max_rows: Option<i64>,
) -> Result<PurgeReport, RegistryError> {
    conn.transaction(|conn| {
        let ids: Vec<String> = images::table
            .select(images::id)
            .filter(images::deleted.eq(true))
            .filter(images::deleted_at.lt(before))
            .order(images::id.asc())
            .limit(max_rows.unwrap_or(i64::MAX))
            .load(conn)?;
        if ids.is_empty() {
            return Ok(vec![("images", 0)]);
        }
        let mut report = Vec::new();
        macro_rules! children {
            ($t:ident) => {
                report.push((
                    stringify!($t),
                    diesel::delete($t::table.filter($t::image_id.eq_any(&ids))).execute(conn)?,
                ));
            };
        }
        children!(image_properties);
        children!(image_tags);
        children!(image_members);
        children!(image_locations);
        children!(glance_upload_leases);
        report.push((
            "images",
            diesel::delete(images::table.filter(images::id.eq_any(&ids))).execute(conn)?,
        ));
        Ok(report)
    })
}

//! `glance-manage db purge`: hard-deletes soft-deleted rows older than a cut-off, a bounded
//! number per table. The `images` table is left alone unless asked (`purge_images_table`),
//! because purged image ids could be reused (OSSN-0075).
//!
//! Rows go in batches of [`BATCH_ROWS`], each batch its own transaction: one `IN` list of
//! every id hit SQLite's limit of 32,766 bound variables ("too many SQL variables") once a
//! table held that many deleted rows, and purged nothing; a batch stays far below every
//! backend's limit, and a long purge never holds one huge transaction open.

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

/// Most rows one batch removes from a table (far below SQLite's 32,766 bound variables and
/// PostgreSQL's 65,535).
pub const BATCH_ROWS: i64 = 1000;

/// Runs `batch(conn, n)` for batches of at most [`BATCH_ROWS`] until `limit` rows are done or
/// a batch finds fewer rows than it asked for; each batch in its own transaction. `batch`
/// returns how many rows it selected and the rows removed per table. Returns the totals.
fn in_batches(
    conn: &mut DbConnection,
    limit: Option<i64>,
    tables: &[&'static str],
    mut batch: impl FnMut(&mut DbConnection, i64) -> Result<(i64, Vec<usize>), RegistryError>,
) -> Result<PurgeReport, RegistryError> {
    let mut totals = vec![0usize; tables.len()];
    let mut done = 0i64;
    loop {
        let want = limit.map_or(BATCH_ROWS, |l| (l - done).min(BATCH_ROWS));
        if want <= 0 {
            break;
        }
        let (found, removed) = conn.transaction(|conn| batch(conn, want))?;
        for (total, n) in totals.iter_mut().zip(removed) {
            *total += n;
        }
        done += found;
        if found < want {
            break;
        }
    }
    Ok(tables.iter().copied().zip(totals).collect())
}

/// Purges child tables and tasks. `max_rows` bounds each table; `None` means all.
pub fn purge(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    max_rows: Option<i64>,
) -> Result<PurgeReport, RegistryError> {
    let mut report = Vec::new();
    macro_rules! purge_int_ids {
        ($t:ident) => {{
            report.extend(in_batches(conn, max_rows, &[stringify!($t)], |conn, n| {
                let ids: Vec<i32> = $t::table
                    .select($t::id)
                    .filter($t::deleted.eq(true))
                    .filter($t::deleted_at.lt(before))
                    .order($t::id.asc())
                    .limit(n)
                    .load(conn)?;
                let removed = if ids.is_empty() {
                    0
                } else {
                    diesel::delete($t::table.filter($t::id.eq_any(&ids))).execute(conn)?
                };
                Ok((ids.len() as i64, vec![removed]))
            })?);
        }};
    }
    purge_int_ids!(image_properties);
    purge_int_ids!(image_tags);
    purge_int_ids!(image_members);
    purge_int_ids!(image_locations);
    report.extend(in_batches(
        conn,
        max_rows,
        &["task_info", "tasks"],
        |conn, n| {
            let task_ids: Vec<String> = tasks::table
                .select(tasks::id)
                .filter(tasks::deleted.eq(true))
                .filter(tasks::deleted_at.lt(before))
                .order(tasks::id.asc())
                .limit(n)
                .load(conn)?;
            if task_ids.is_empty() {
                return Ok((0, vec![0, 0]));
            }
            let info =
                diesel::delete(task_info::table.filter(task_info::task_id.eq_any(&task_ids)))
                    .execute(conn)?;
            let tasks =
                diesel::delete(tasks::table.filter(tasks::id.eq_any(&task_ids))).execute(conn)?;
            Ok((task_ids.len() as i64, vec![info, tasks]))
        },
    )?);
    Ok(report)
}

/// Purges soft-deleted `images` rows (and any children they still have).
pub fn purge_images(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    max_rows: Option<i64>,
) -> Result<PurgeReport, RegistryError> {
    let tables = [
        "image_properties",
        "image_tags",
        "image_members",
        "image_locations",
        "glance_upload_leases",
        "images",
    ];
    let report = in_batches(conn, max_rows, &tables, |conn, n| {
        let ids: Vec<String> = images::table
            .select(images::id)
            .filter(images::deleted.eq(true))
            .filter(images::deleted_at.lt(before))
            .order(images::id.asc())
            .limit(n)
            .load(conn)?;
        if ids.is_empty() {
            return Ok((0, vec![0; 6]));
        }
        macro_rules! children {
            ($t:ident) => {
                diesel::delete($t::table.filter($t::image_id.eq_any(&ids))).execute(conn)?
            };
        }
        let removed = vec![
            children!(image_properties),
            children!(image_tags),
            children!(image_members),
            children!(image_locations),
            children!(glance_upload_leases),
            diesel::delete(images::table.filter(images::id.eq_any(&ids))).execute(conn)?,
        ];
        Ok((ids.len() as i64, removed))
    })?;
    // Nothing to purge reads as before: just the images table.
    if report.iter().all(|(_, n)| *n == 0) {
        return Ok(vec![("images", 0)]);
    }
    Ok(report)
}

//! Tasks: Glance's `tasks` and `task_info` tables. An import's task is written with its
//! image's changes, under the image's row lock, by [`super::imports`]; this module reads
//! them and writes the rows it is handed. A task past its `expires_at` is not shown (Glance
//! deletes such tasks lazily; here they are simply no longer read).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use glance_model::Context;
use glance_model::wire::Task;

use super::DbConnection;
use super::locked::LockedImage;
use super::schema::{task_info, tasks};
use crate::error::RegistryError;

/// How long an ended task is kept: Glance's `[task] task_time_to_live` default, 48 hours.
pub const TASK_TIME_TO_LIVE_HOURS: i64 = 48;

/// The most tasks one list answers.
pub const MAX_LIST: i64 = 1000;

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = tasks)]
struct TaskRow {
    id: String,
    task_type: String,
    status: String,
    owner: String,
    expires_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
    image_id: Option<String>,
    request_id: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = task_info)]
struct InfoRow {
    input: Option<String>,
    result: Option<String>,
    message: Option<String>,
}

fn json_col(raw: Option<String>) -> Option<serde_json::Value> {
    raw.and_then(|s| serde_json::from_str(&s).ok())
}

fn into_task(t: TaskRow, i: Option<InfoRow>) -> Task {
    let (input, result, message) = match i {
        Some(i) => (json_col(i.input), json_col(i.result), i.message),
        None => (None, None, None),
    };
    Task {
        id: t.id,
        task_type: t.task_type,
        status: t.status,
        owner: t.owner,
        expires_at: t.expires_at,
        created_at: t.created_at,
        updated_at: t.updated_at,
        image_id: t.image_id,
        request_id: t.request_id,
        user_id: t.user_id,
        input: input.unwrap_or(serde_json::Value::Null),
        result,
        message: message.unwrap_or_default(),
    }
}

/// Writes a new task of the locked image (its rows join the image's transaction).
pub fn insert(
    conn: &mut DbConnection,
    _image: &LockedImage,
    task: &Task,
) -> Result<(), RegistryError> {
    diesel::insert_into(tasks::table)
        .values((
            tasks::id.eq(&task.id),
            tasks::task_type.eq(&task.task_type),
            tasks::status.eq(&task.status),
            tasks::owner.eq(&task.owner),
            tasks::expires_at.eq(task.expires_at),
            tasks::created_at.eq(task.created_at),
            tasks::updated_at.eq(task.updated_at),
            tasks::deleted.eq(false),
            tasks::image_id.eq(&task.image_id),
            tasks::request_id.eq(&task.request_id),
            tasks::user_id.eq(&task.user_id),
        ))
        .execute(conn)?;
    diesel::insert_into(task_info::table)
        .values((
            task_info::task_id.eq(&task.id),
            task_info::input.eq(task.input.to_string()),
            task_info::result.eq(task.result.as_ref().map(ToString::to_string)),
            task_info::message.eq(&task.message),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets a task's message (progress) while it runs.
pub fn set_message(
    conn: &mut DbConnection,
    _image: &LockedImage,
    id: &str,
    message: &str,
) -> Result<(), RegistryError> {
    let now = glance_model::time::now();
    diesel::update(task_info::table.filter(task_info::task_id.eq(id)))
        .set(task_info::message.eq(message))
        .execute(conn)?;
    diesel::update(tasks::table.filter(tasks::id.eq(id)))
        .set(tasks::updated_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Ends a running task: `success` with `result`, or `failure` with `message`; it expires
/// [`TASK_TIME_TO_LIVE_HOURS`] from now. A task already ended is left as it is.
pub fn end(
    conn: &mut DbConnection,
    _image: &LockedImage,
    id: &str,
    outcome: Result<serde_json::Value, &str>,
) -> Result<(), RegistryError> {
    let now = glance_model::time::now();
    let expires = now + chrono::Duration::hours(TASK_TIME_TO_LIVE_HOURS);
    let status = if outcome.is_ok() {
        "success"
    } else {
        "failure"
    };
    let n = diesel::update(
        tasks::table
            .filter(tasks::id.eq(id))
            .filter(tasks::status.eq_any(["pending", "processing"])),
    )
    .set((
        tasks::status.eq(status),
        tasks::expires_at.eq(Some(expires)),
        tasks::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(());
    }
    match outcome {
        Ok(result) => diesel::update(task_info::table.filter(task_info::task_id.eq(id)))
            .set(task_info::result.eq(Some(result.to_string())))
            .execute(conn)?,
        Err(message) => diesel::update(task_info::table.filter(task_info::task_id.eq(id)))
            .set(task_info::message.eq(message))
            .execute(conn)?,
    };
    Ok(())
}

/// A task's status, whatever its owner (for the import lock's checks).
pub fn status_of(conn: &mut DbConnection, id: &str) -> Result<Option<String>, RegistryError> {
    Ok(tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::deleted.eq(false))
        .select(tasks::status)
        .get_result(conn)
        .optional()?)
}

/// What a task list asks for.
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    /// Only tasks of this image.
    pub image_id: Option<String>,
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Only tasks of this type.
    pub task_type: Option<String>,
    /// At most this many.
    pub limit: Option<i64>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
}

/// Tasks `ctx` may see (an admin every one, others their project's), not expired, newest
/// first unless asked otherwise.
pub fn list(
    conn: &mut DbConnection,
    ctx: &Context,
    filter: &TaskFilter,
) -> Result<Vec<Task>, RegistryError> {
    let now = glance_model::time::now();
    let mut q = tasks::table
        .filter(tasks::deleted.eq(false))
        .filter(tasks::expires_at.is_null().or(tasks::expires_at.gt(now)))
        .select(TaskRow::as_select())
        .into_boxed();
    if !ctx.is_admin {
        q = q.filter(tasks::owner.eq(ctx.project_id.clone().unwrap_or_default()));
    }
    if let Some(i) = &filter.image_id {
        q = q.filter(tasks::image_id.eq(i.clone()));
    }
    if let Some(s) = &filter.status {
        q = q.filter(tasks::status.eq(s.clone()));
    }
    if let Some(t) = &filter.task_type {
        q = q.filter(tasks::task_type.eq(t.clone()));
    }
    q = if filter.ascending {
        q.order((tasks::created_at.asc(), tasks::id.asc()))
    } else {
        q.order((tasks::created_at.desc(), tasks::id.desc()))
    };
    let rows: Vec<TaskRow> = q
        .limit(filter.limit.unwrap_or(MAX_LIST).clamp(0, MAX_LIST))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for t in rows {
        let info = info_of(conn, &t.id)?;
        out.push(into_task(t, info));
    }
    Ok(out)
}

/// One task `ctx` may see (404 otherwise).
pub fn find(conn: &mut DbConnection, ctx: &Context, id: &str) -> Result<Task, RegistryError> {
    let row: Option<TaskRow> = tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::deleted.eq(false))
        .select(TaskRow::as_select())
        .get_result(conn)
        .optional()?;
    let now = glance_model::time::now();
    match row {
        Some(t)
            if (ctx.is_admin || Some(&t.owner) == ctx.project_id.as_ref())
                && t.expires_at.is_none_or(|e| e > now) =>
        {
            let info = info_of(conn, &t.id)?;
            Ok(into_task(t, info))
        }
        _ => Err(RegistryError::not_found(format!("No task with ID {id}"))),
    }
}

fn info_of(conn: &mut DbConnection, id: &str) -> Result<Option<InfoRow>, RegistryError> {
    Ok(task_info::table
        .filter(task_info::task_id.eq(id))
        .select(InfoRow::as_select())
        .get_result(conn)
        .optional()?)
}

//! Interoperable import's state, all of it the registry's (issue 30): the end of a stage
//! (`uploading` with its size, its lease released), an import's start (its checks, the import
//! lock `os_glance_import_task`, `importing`, a lease for the importing node and the task, in
//! one transaction under the image's row lock), its progress and its end (called by
//! `leases::complete` and by every return to `queued`). So a glance-api that dies mid-import
//! leaves nothing the lease's expiry does not undo.

use std::collections::BTreeMap;

use diesel::prelude::*;
use glance_model::wire::{ImportStart, ImportStarted, StageComplete, Task};
use glance_model::{Context, Image, ImageId, ImageStatus};

use super::DbConnection;
use super::images::{find, set_properties};
use super::leases::{drop_lease, follow_status, held};
use super::locked::{self, Lock, LockedImage};
use super::schema::{image_properties, images};
use super::tasks;
use crate::error::RegistryError;

/// The import lock: the id of the task importing the image.
pub const IMPORT_TASK: &str = "os_glance_import_task";
/// The stores an import still has to write.
pub const IMPORTING_TO: &str = "os_glance_importing_to_stores";
/// The stores an import failed to write.
pub const FAILED_IMPORT: &str = "os_glance_failed_import";
/// The URL of the node holding an image's staged data.
pub const STAGE_HOST: &str = "os_glance_stage_host";

fn property(
    conn: &mut DbConnection,
    image: &LockedImage,
    name: &str,
) -> Result<Option<String>, RegistryError> {
    Ok(image_properties::table
        .filter(image_properties::image_id.eq(image.sid()))
        .filter(image_properties::name.eq(name))
        .filter(image_properties::deleted.eq(false))
        .select(image_properties::value)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten())
}

fn unset(conn: &mut DbConnection, image: &LockedImage, name: &str) -> Result<(), RegistryError> {
    let now = glance_model::time::now();
    diesel::update(
        image_properties::table
            .filter(image_properties::image_id.eq(image.sid()))
            .filter(image_properties::name.eq(name))
            .filter(image_properties::deleted.eq(false)),
    )
    .set((
        image_properties::deleted.eq(true),
        image_properties::deleted_at.eq(now),
        image_properties::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

fn set(
    conn: &mut DbConnection,
    image: &LockedImage,
    pairs: &[(&str, &str)],
) -> Result<(), RegistryError> {
    let props: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    set_properties(conn, image, &props, glance_model::time::now())
}

/// The stage is whole: records its size (and `os_glance_stage_host`) and releases the stage
/// lease; the image stays `uploading`, ready for a `glance-direct` import.
pub fn stage_complete(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    done: &StageComplete,
) -> Result<Image, RegistryError> {
    done.validate()?;
    locked::write(conn, id, Lock::Row, |conn, image| {
        held(conn, id, &done.token)?;
        let status = image.row(conn, ctx)?.status()?;
        if status != ImageStatus::Uploading {
            return Err(RegistryError::conflict(format!(
                "Image {id} is {status}, not uploading"
            )));
        }
        diesel::update(images::table.filter(images::id.eq(image.sid())))
            .set((
                images::size.eq(done.size),
                images::updated_at.eq(glance_model::time::now()),
            ))
            .execute(conn)?;
        if let Some(host) = &done.stage_host {
            set(conn, image, &[(STAGE_HOST, host)])?;
        }
        // The one release of a lease without a move out of its status: the data is staged,
        // nobody is writing it any more (see `leases`).
        drop_lease(conn, image)
    })?;
    find(conn, ctx, id)
}

/// Starts an import (see the module's doc). Refused with 409 when the image is not in the
/// status the method needs, lacks its formats, or another import holds the lock.
pub fn start(
    conn: &mut DbConnection,
    ctx: &Context,
    id: &ImageId,
    req: &ImportStart,
) -> Result<ImportStarted, RegistryError> {
    req.validate()?;
    locked::write(conn, id, Lock::Visible(ctx), |conn, image| {
        let row = image.row(conn, ctx)?.clone();
        let status = row.status()?;
        let method = req.method.as_str();
        let needed = match method {
            "glance-direct" => ImageStatus::Uploading,
            "copy-image" => ImageStatus::Active,
            _ => ImageStatus::Queued,
        };
        if status == ImageStatus::Active && method != "copy-image" {
            return Err(RegistryError::conflict(format!(
                "Image {id} is active; only copy-image imports to an active image"
            )));
        }
        if status != needed {
            return Err(RegistryError::conflict(match method {
                "glance-direct" => format!(
                    "Image {id} is {status}: it needs to be staged before 'glance-direct' method can be used"
                ),
                _ => format!(
                    "Image {id} is {status}; the {method} import needs an image that is {needed}"
                ),
            }));
        }
        if row.disk_format.is_none() || row.container_format.is_none() {
            return Err(RegistryError::conflict(format!(
                "Image {id} needs its disk_format and container_format set before it is imported"
            )));
        }
        if method == "glance-direct" && row.size.is_none() {
            return Err(RegistryError::conflict(format!(
                "Image {id} is still being staged; import it once its stage has finished"
            )));
        }
        if let Some(task) = property(conn, image, IMPORT_TASK)? {
            // A lock whose task still runs holds; one left by a task that ended (or is gone)
            // is stale and taken over.
            if matches!(
                tasks::status_of(conn, &task)?.as_deref(),
                Some("pending" | "processing")
            ) {
                return Err(RegistryError::conflict(format!(
                    "Image {id} is being imported by task {task}; wait for it to end"
                )));
            }
        }
        let now = glance_model::time::now();
        let task = Task {
            id: uuid::Uuid::new_v4().to_string(),
            task_type: "api_image_import".to_string(),
            status: "processing".to_string(),
            owner: row
                .owner
                .clone()
                .or_else(|| ctx.project_id.clone())
                .unwrap_or_default(),
            expires_at: None,
            created_at: now,
            updated_at: Some(now),
            image_id: Some(image.sid().to_string()),
            request_id: Some(ctx.request_id.chars().take(64).collect()),
            user_id: ctx.user_id.as_ref().map(|u| u.chars().take(64).collect()),
            input: req.input.clone(),
            result: None,
            message: String::new(),
        };
        tasks::insert(conn, image, &task)?;
        let stores = req.stores.join(",");
        set(
            conn,
            image,
            &[
                (IMPORT_TASK, &task.id),
                (IMPORTING_TO, &stores),
                (FAILED_IMPORT, ""),
            ],
        )?;
        unset(conn, image, STAGE_HOST)?;
        let to = if method == "copy-image" {
            status
        } else {
            ImageStatus::Importing
        };
        diesel::update(
            images::table
                .filter(images::id.eq(image.sid()))
                .filter(images::status.eq(status.as_str())),
        )
        .set((images::status.eq(to.as_str()), images::updated_at.eq(now)))
        .execute(conn)?;
        let lease = follow_status(conn, image, status, to, Some(&req.lease))?.ok_or_else(|| {
            RegistryError::conflict(format!("Image {id}: no import lease was taken"))
        })?;
        Ok(ImportStarted { lease, task })
    })
}

/// Records a running import's progress as its task's message.
pub fn progress(
    conn: &mut DbConnection,
    image: &LockedImage,
    message: &str,
) -> Result<(), RegistryError> {
    if let Some(task) = property(conn, image, IMPORT_TASK)? {
        tasks::set_message(conn, image, &task, message)?;
    }
    Ok(())
}

/// Ends the locked image's import: releases the lock, clears the stores still to write
/// (moved to `os_glance_failed_import` on failure), and ends the task (`success`, or
/// `failure` with `failure`'s message).
pub fn finish(
    conn: &mut DbConnection,
    image: &LockedImage,
    failure: Option<&str>,
) -> Result<(), RegistryError> {
    let Some(task) = property(conn, image, IMPORT_TASK)? else {
        return Ok(());
    };
    let stores = property(conn, image, IMPORTING_TO)?.unwrap_or_default();
    match failure {
        None => {
            set(conn, image, &[(IMPORTING_TO, "")])?;
            let result = serde_json::json!({"image_id": image.sid()});
            tasks::end(conn, image, &task, Ok(result))?;
        }
        Some(why) => {
            set(conn, image, &[(IMPORTING_TO, ""), (FAILED_IMPORT, &stores)])?;
            tasks::end(conn, image, &task, Err(why))?;
        }
    }
    unset(conn, image, IMPORT_TASK)
}

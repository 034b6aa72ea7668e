//! The registry's service: the one owner of the database and the record cache. Route
//! handlers call only this; it decides when the cache answers, which database closure runs
//! (a read, or a write through `db::locked`, the one write path of an existing image), and
//! how a resent write (glance-api's `x-glance-replay`) is answered. It knows nothing of
//! HTTP: answers are `model` values or JSON bytes, errors are `RegistryError`s.

use std::sync::Arc;

use glance_model::filter::ListQuery;
use glance_model::quota::ImageQuotas;
use glance_model::wire::{
    ImageUpdate, ImportStart, ImportStarted, Lease, LeaseRequest, NewImage, StageComplete, Task,
    UploadComplete, Usage,
};
use glance_model::{Context, ErrorKind, Image, ImageId, ImageStatus, Member, MemberStatus};

use crate::cache::RecordCache;
use crate::db::generations::Generations;
use crate::db::{Database, images, imports, leases, members, tags, tasks};
use crate::error::RegistryError;

/// An image or a page of images, as JSON already written (from or into the record cache)
/// or as values still to be written.
#[derive(Debug)]
pub enum Answer<T> {
    /// JSON bytes, ready to send.
    Json(bytes::Bytes),
    /// A value to serialise.
    Value(T),
}

/// The registry's catalogue of images: its database and its record cache.
#[derive(Clone, Debug)]
pub struct Catalog {
    db: Database,
    cache: Option<Arc<RecordCache>>,
}

impl Catalog {
    /// A catalogue over this database, with this record cache (`None`: off).
    pub fn new(db: Database, cache: Option<Arc<RecordCache>>) -> Self {
        Self { db, cache }
    }

    /// How many database closures may run at once (the pool's size).
    pub fn slots(&self) -> usize {
        self.db.slots()
    }

    /// The record cache, if on (for tests and logs).
    pub fn cache(&self) -> Option<&Arc<RecordCache>> {
        self.cache.as_ref()
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        use diesel::connection::SimpleConnection;
        self.db
            .run(|conn| conn.batch_execute("SELECT 1").map_err(Into::into))
            .await
    }

    /// One page of images the caller sees. Through the record cache, JSON: each image of the
    /// page is its cached JSON when unchanged, else loaded and cached.
    pub async fn list(
        &self,
        ctx: Context,
        q: ListQuery,
    ) -> Result<Answer<Vec<images::ListedImage>>, RegistryError> {
        if let Some(cache) = self.cache.clone()
            && let Some(generations) = cache.generations(&self.db).await
        {
            let page = self
                .db
                .run(move |c| images::list_page_cached(c, &ctx, &q, &cache, &generations))
                .await?;
            let mut body = Vec::with_capacity(16 + page.iter().map(|j| j.len() + 1).sum::<usize>());
            body.extend_from_slice(b"{\"images\":[");
            for (i, json) in page.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(json);
            }
            body.extend_from_slice(b"]}");
            return Ok(Answer::Json(body.into()));
        }
        let page = self.db.run(move |c| images::list_page(c, &ctx, &q)).await?;
        Ok(Answer::Value(page))
    }

    /// Creates an image, with no more tags and properties than `quotas` allow (a new image
    /// has nothing to race with, so its counts are checked before the write). A resend
    /// (`replayed`) of a create that committed is answered with the image it made (see
    /// [`glance_model::replay`]); `fresh` is false then.
    pub async fn create(
        &self,
        ctx: Context,
        new: NewImage,
        replayed: bool,
        quotas: ImageQuotas,
    ) -> Result<Created, RegistryError> {
        tags::check_set(&quotas, new.id.as_ref(), &new.tags)?;
        quotas.check_properties(new.id.as_ref(), new.properties.len() as u64)?;
        // Kept only for a resend, so a first sending pays nothing for it.
        let replay = replayed.then(|| (new.clone(), ctx.clone()));
        let made = self.db.write(move |c| images::insert(c, &ctx, new)).await;
        let image = match (made, replay) {
            (Err(e), Some((new, ctx))) if e.kind() == ErrorKind::Conflict && new.id.is_some() => {
                let id = new.id.unwrap_or_default();
                let project = ctx.project_id.clone();
                let image = self.db.run(move |c| images::show(c, &ctx, &id)).await;
                return match image {
                    Ok(image)
                        if glance_model::replay::is_created_by(
                            &image,
                            &new,
                            project.as_deref(),
                        ) =>
                    {
                        log::info!("image {id}: a resent create answered with the image it made");
                        // Answered from the database, and the record cache left as it is:
                        // the first sending's answer went through it already.
                        Ok(Created {
                            id,
                            body: Answer::Value(image),
                        })
                    }
                    _ => Err(e),
                };
            }
            (made, _) => made?,
        };
        let id = image.id;
        match (&self.cache, serde_json::to_vec(&image)) {
            (Some(cache), Ok(json)) => {
                let json = bytes::Bytes::from(json);
                cache.keep_created(&image, json.clone());
                Ok(Created {
                    id,
                    body: Answer::Json(json),
                })
            }
            _ => Ok(Created {
                id,
                body: Answer::Value(image),
            }),
        }
    }

    /// An image the caller sees: its cached JSON when unchanged since it was cached, else
    /// read (and cached).
    pub async fn show(&self, ctx: Context, id: ImageId) -> Result<Answer<Image>, RegistryError> {
        let cache = self.cache.clone();
        if let Some(cache) = &cache
            && !cache.holds(&id)
            && let Some(g) = cache.last_read()
        {
            // A miss: there is nothing to check against the counters, so no wait for a read
            // of them that starts after this request (see `crate::cache`). Measured at
            // 200,000 images on SQLite, where nearly every show misses: registry 77 → 59 µs
            // per show.
            let image = self
                .db
                .read_now(move |c| images::show(c, &ctx, &id))
                .await?;
            return Ok(kept(cache, &g, image));
        }
        let generations = match &cache {
            Some(cache) => cache.generations(&self.db).await,
            None => None,
        };
        if let (Some(cache), Some(g)) = (&cache, &generations)
            && let Some(json) = cache.show(g, &ctx, &id)
        {
            return Ok(Answer::Json(json));
        }
        let image = self
            .db
            .read_now(move |c| images::show(c, &ctx, &id))
            .await?;
        Ok(match (&cache, &generations) {
            (Some(cache), Some(g)) => kept(cache, g, image),
            _ => Answer::Value(image),
        })
    }

    /// Applies an update (compare-and-swap on `from_state`), within `quotas`.
    pub async fn update(
        &self,
        ctx: Context,
        id: ImageId,
        upd: ImageUpdate,
        quotas: ImageQuotas,
    ) -> Result<Image, RegistryError> {
        self.db
            .write(move |c| images::update(c, &ctx, &id, upd, &quotas))
            .await
    }

    /// Deletes an image (`delayed`: `pending_delete` for the scrubber), from its cached
    /// record when the cache holds one the caller may see (see `images::soft_delete`).
    pub async fn delete(
        &self,
        ctx: Context,
        id: ImageId,
        delayed: bool,
    ) -> Result<Image, RegistryError> {
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.cached(&ctx, &id));
        let image = self
            .db
            .write(move |c| images::soft_delete(c, &ctx, &id, delayed, cached.as_ref()))
            .await?;
        if let Some(cache) = &self.cache {
            cache.forget(&id);
        }
        Ok(image)
    }

    /// Adds a tag (idempotent), within `quotas`.
    pub async fn add_tag(
        &self,
        ctx: Context,
        id: ImageId,
        tag: String,
        quotas: ImageQuotas,
    ) -> Result<(), RegistryError> {
        self.db
            .write(move |c| tags::add(c, &ctx, &id, &tag, &quotas))
            .await
    }

    /// Removes a tag; a resent removal (`replayed`) of a tag that is gone from an image the
    /// caller sees is a success: the first sending removed it.
    pub async fn remove_tag(
        &self,
        ctx: Context,
        id: ImageId,
        tag: String,
        replayed: bool,
    ) -> Result<(), RegistryError> {
        let ctx2 = ctx.clone();
        let removed = self
            .db
            .write(move |c| tags::remove(c, &ctx, &id, &tag))
            .await;
        self.removed(removed, replayed, ctx2, id).await
    }

    /// The answer to a removal: a resent one (`replayed`) that found its row gone is a
    /// success when the caller still sees the image, since the first sending removed it.
    async fn removed(
        &self,
        removed: Result<(), RegistryError>,
        replayed: bool,
        ctx: Context,
        id: ImageId,
    ) -> Result<(), RegistryError> {
        match removed {
            Err(e) if e.kind() == ErrorKind::NotFound && replayed => {
                self.db
                    .run(move |c| images::show(c, &ctx, &id))
                    .await
                    .map_err(|_| e)?;
                Ok(())
            }
            other => other,
        }
    }

    /// Bytes and images a project owns.
    pub async fn usage(&self, ctx: Context) -> Result<Usage, RegistryError> {
        self.db
            .run(move |c| images::usage(c, ctx.project_id.as_deref()))
            .await
    }

    /// The members of an image the caller sees.
    pub async fn members(&self, ctx: Context, id: ImageId) -> Result<Vec<Member>, RegistryError> {
        self.db.run(move |c| members::list(c, &ctx, &id)).await
    }

    /// One membership.
    pub async fn member(
        &self,
        ctx: Context,
        id: ImageId,
        member: String,
    ) -> Result<Member, RegistryError> {
        self.db
            .run(move |c| members::find(c, &ctx, &id, &member))
            .await
    }

    /// Adds a `pending` member, within `quotas`; a resend (`replayed`) of an add that
    /// committed is answered with the membership it made.
    pub async fn add_member(
        &self,
        ctx: Context,
        id: ImageId,
        member: String,
        replayed: bool,
        quotas: ImageQuotas,
    ) -> Result<Member, RegistryError> {
        let replay = replayed.then(|| (ctx.clone(), member.clone()));
        let added = self
            .db
            .write(move |c| members::add(c, &ctx, &id, &member, &quotas))
            .await;
        match (added, replay) {
            // A membership the first sending made is a 409 when sent again, or a 413 when it
            // filled the image's member quota.
            (Err(e), Some((ctx, member)))
                if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::TooLarge) =>
            {
                self.db
                    .run(move |c| members::find(c, &ctx, &id, &member))
                    .await
                    .map_err(|_| e)
            }
            (added, _) => added,
        }
    }

    /// Sets a member's status.
    pub async fn set_member_status(
        &self,
        ctx: Context,
        id: ImageId,
        member: String,
        status: MemberStatus,
    ) -> Result<Member, RegistryError> {
        self.db
            .write(move |c| members::set_status(c, &ctx, &id, &member, status))
            .await
    }

    /// Removes a member; a resent removal (`replayed`) of a membership that is gone from an
    /// image the caller sees is a success.
    pub async fn remove_member(
        &self,
        ctx: Context,
        id: ImageId,
        member: String,
        replayed: bool,
    ) -> Result<(), RegistryError> {
        let ctx2 = ctx.clone();
        let removed = self
            .db
            .write(move |c| members::remove(c, &ctx, &id, &member))
            .await;
        self.removed(removed, replayed, ctx2, id).await
    }

    /// Starts an upload: `queued → saving` and a lease.
    pub async fn start_upload(
        &self,
        ctx: Context,
        id: ImageId,
        req: LeaseRequest,
    ) -> Result<Lease, RegistryError> {
        self.db
            .write(move |c| leases::acquire(c, &ctx, &id, &req))
            .await
    }

    /// Renews an upload's lease for `ttl_secs`.
    pub async fn renew_upload(
        &self,
        id: ImageId,
        token: String,
        ttl_secs: u32,
        message: Option<String>,
    ) -> Result<Lease, RegistryError> {
        self.db
            .write(move |c| leases::heartbeat(c, &id, &token, ttl_secs, message.as_deref()))
            .await
    }

    /// Completes an upload: `saving → active` with size, checksums and location.
    pub async fn complete_upload(
        &self,
        ctx: Context,
        id: ImageId,
        done: UploadComplete,
    ) -> Result<Image, RegistryError> {
        self.db
            .write(move |c| leases::complete(c, &ctx, &id, &done))
            .await
    }

    /// Gives up an upload: `saving → queued`.
    pub async fn abort_upload(
        &self,
        ctx: Context,
        id: ImageId,
        token: String,
        message: Option<String>,
    ) -> Result<Image, RegistryError> {
        self.db
            .write(move |c| leases::abort(c, &ctx, &id, &token, message.as_deref()))
            .await
    }

    /// Returns an image whose lease expired to `queued`.
    pub async fn recover_upload(&self, ctx: Context, id: ImageId) -> Result<Image, RegistryError> {
        self.db.write(move |c| leases::recover(c, &ctx, &id)).await
    }

    /// Edits an image's locations (add, remove, replace), the quota checked under its lock.
    pub async fn change_locations(
        &self,
        ctx: Context,
        id: ImageId,
        change: glance_model::wire::LocationsChange,
    ) -> Result<Image, RegistryError> {
        self.db
            .write(move |c| crate::db::locations::change(c, &ctx, &id, &change))
            .await
    }

    // ---- Interoperable import (issue 30) ----

    /// Starts a stage: `queued → uploading` and a lease.
    pub async fn start_stage(
        &self,
        ctx: Context,
        id: ImageId,
        req: LeaseRequest,
    ) -> Result<Lease, RegistryError> {
        self.db
            .write(move |c| leases::acquire_for(c, &ctx, &id, &req, ImageStatus::Uploading))
            .await
    }

    /// Ends a stage: the size recorded, the lease released, the image still `uploading`.
    pub async fn complete_stage(
        &self,
        ctx: Context,
        id: ImageId,
        done: StageComplete,
    ) -> Result<Image, RegistryError> {
        self.db
            .write(move |c| imports::stage_complete(c, &ctx, &id, &done))
            .await
    }

    /// Starts an import: lock, `importing`, lease and task.
    pub async fn start_import(
        &self,
        ctx: Context,
        id: ImageId,
        req: ImportStart,
    ) -> Result<ImportStarted, RegistryError> {
        self.db
            .write(move |c| imports::start(c, &ctx, &id, &req))
            .await
    }

    /// Tasks the caller may see.
    pub async fn tasks(
        &self,
        ctx: Context,
        filter: tasks::TaskFilter,
    ) -> Result<Vec<Task>, RegistryError> {
        self.db.run(move |c| tasks::list(c, &ctx, &filter)).await
    }

    /// The tasks of an image the caller may see.
    pub async fn image_tasks(&self, ctx: Context, id: ImageId) -> Result<Vec<Task>, RegistryError> {
        self.db
            .run(move |c| {
                images::find(c, &ctx, &id)?;
                let filter = tasks::TaskFilter {
                    image_id: Some(id.to_string()),
                    ..tasks::TaskFilter::default()
                };
                tasks::list(c, &ctx, &filter)
            })
            .await
    }

    /// One task.
    pub async fn task(&self, ctx: Context, id: String) -> Result<Task, RegistryError> {
        self.db.run(move |c| tasks::find(c, &ctx, &id)).await
    }

    /// Leases that ran out before now.
    pub async fn expired_leases(&self) -> Result<Vec<Lease>, RegistryError> {
        self.db
            .run(|c| leases::expired(c, glance_model::time::now()))
            .await
    }
}

/// A created image (or the one a resent create made) and its id.
#[derive(Debug)]
pub struct Created {
    /// The image's id, for the `Location` header.
    pub id: ImageId,
    /// The image.
    pub body: Answer<Image>,
}

/// The answer for an image just read: its JSON, kept in the cache under the counters read
/// before it was (`generations`).
fn kept(cache: &RecordCache, generations: &Generations, image: Image) -> Answer<Image> {
    match serde_json::to_vec(&image) {
        Ok(json) => {
            let json = bytes::Bytes::from(json);
            cache.keep(generations, &image, json.clone());
            Answer::Json(json)
        }
        Err(_) => Answer::Value(image),
    }
}

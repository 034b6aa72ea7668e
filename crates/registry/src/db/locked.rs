//! The one write path of an existing image: every change to an image's row or to its child
//! rows (properties, tags, members, locations, the upload lease) is made inside [`write`] or
//! [`write_cached`], which take the image's row lock first, hand the change a
//! [`LockedImage`], and move the image's stripe counter (see [`super::generations`]) as the
//! transaction's last statement. A `LockedImage` can be made only here, and the writers of
//! child rows require one, so a change that skips the lock or the counter does not compile.
//!
//! This module must not decide anything about an image (visibility, status rules, what a
//! delete marks): it only locks, hands over, and moves the counter.

use diesel::prelude::*;
use glance_model::{Context, ImageId};

use super::generations::stripe;
use super::images::{find_row, find_row_for_update};
use super::rows::ImageRow;
use super::{DbConnection, FixedUpdate, Val, on_backend};
use crate::error::RegistryError;

/// How [`write`] takes the image's row lock.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// Lock and load the row of a live image this caller may see (404 otherwise): one
    /// `SELECT … FOR UPDATE` on a server database, the lock and a `SELECT` on SQLite.
    Visible(&'a Context),
    /// Lock the row only (one self-assigning `UPDATE`); the change loads it when it needs
    /// it with [`LockedImage::row`], after the checks that must answer first (a lost lease
    /// is a 410 even when the image is gone).
    Row,
}

/// An image whose row lock this transaction holds. Only [`write`] and [`write_cached`] make
/// one, and only inside the transaction whose last statement moves the image's counter.
#[derive(Debug)]
pub struct LockedImage {
    id: ImageId,
    sid: String,
    row: Option<ImageRow>,
}

impl LockedImage {
    /// The image's id.
    pub fn id(&self) -> &ImageId {
        &self.id
    }

    /// The image's id as its rows spell it.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The image's row: the one loaded with the lock ([`Lock::Visible`]), or else loaded now
    /// if `ctx` may see the image (404 otherwise).
    pub fn row(
        &mut self,
        conn: &mut DbConnection,
        ctx: &Context,
    ) -> Result<&ImageRow, RegistryError> {
        let row = match self.row.take() {
            Some(row) => row,
            None => find_row(conn, ctx, &self.id)?,
        };
        Ok(self.row.insert(row))
    }
}

/// Runs `change` on the image `id` in one transaction: takes the row lock as `how` says,
/// hands `change` the [`LockedImage`], and, when `change` succeeds, moves the image's
/// stripe counter as the last statement (so the counter's row lock is held only for the
/// commit). An error from `change` rolls everything back. A new image needs none of this
/// (nothing can have cached it, nothing else can write it yet): `images::insert`.
pub fn write<T>(
    conn: &mut DbConnection,
    id: &ImageId,
    how: Lock<'_>,
    change: impl FnOnce(&mut DbConnection, &mut LockedImage) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    conn.transaction(|conn| {
        let row = match how {
            // SQLite has no row locks: its write lock, then the read.
            #[cfg(feature = "sqlite")]
            Lock::Visible(ctx) if conn.backend() == super::Backend::Sqlite => {
                lock(conn, id)?;
                Some(find_row(conn, ctx, id)?)
            }
            Lock::Visible(ctx) => Some(find_row_for_update(conn, ctx, id)?),
            Lock::Row => {
                lock(conn, id)?;
                None
            }
        };
        let mut image = LockedImage {
            id: *id,
            sid: id.to_string(),
            row,
        };
        let out = change(conn, &mut image)?;
        bump(conn, &image.id)?;
        Ok(out)
    })
}

/// Creates an image: `insert` writes its row, then `children` its child rows with the
/// [`LockedImage`] (the row this transaction inserted is locked to every other writer until
/// the commit). No counter moves: nothing can have cached an image that did not exist, and
/// the id of a deleted image stays taken. With no `children` the INSERT runs alone: one
/// statement is atomic on its own, and `BEGIN` and `COMMIT` around it would be two more round
/// trips to a server database.
pub fn create(
    conn: &mut DbConnection,
    id: &ImageId,
    insert: impl FnOnce(&mut DbConnection) -> Result<(), RegistryError>,
    children: Option<impl FnOnce(&mut DbConnection, &LockedImage) -> Result<(), RegistryError>>,
) -> Result<(), RegistryError> {
    let Some(children) = children else {
        return insert(conn);
    };
    conn.transaction(|conn| {
        insert(conn)?;
        let image = LockedImage {
            id: *id,
            sid: id.to_string(),
            row: None,
        };
        children(conn, &image)
    })
}

/// A change made from what a record cache holds of the image, without reading it again:
/// `mark`, an `UPDATE` of the image's own row whose filter holds what the cached copy says
/// (so it takes the row lock every writer takes, and marks nothing when the row differs),
/// then `children` with the [`LockedImage`], then the counter moved on only if it still reads
/// `generation`. An unmoved counter read under the row lock means nothing has changed the
/// image since it was cached, so the children the cached copy names are all there are.
/// Whether the change was kept: `false` (all rolled back) when `mark` matched no row or the
/// counter had moved; the caller then makes the change as if there were no cache.
///
/// With no `children` on MariaDB/MySQL, `mark` and the counter's move are one multi-table
/// `UPDATE` on its own (autocommit), one statement in all; its locks are taken in the order
/// every writer takes them, the image's row first. Should it fail all the same (a deadlock,
/// say), it changed nothing and the answer is `false`.
pub fn write_cached(
    conn: &mut DbConnection,
    id: &ImageId,
    generation: i64,
    mark: FixedUpdate<'_>,
    children: Option<impl FnOnce(&mut DbConnection, &LockedImage) -> Result<(), RegistryError>>,
) -> Result<bool, RegistryError> {
    debug_assert_eq!(mark.table, "images", "the mark locks the image's own row");
    #[cfg(feature = "mysql")]
    if let DbConnection::Mysql(c) = &mut *conn
        && children.is_none()
    {
        let bump = BumpIf::new(id, generation);
        let both = super::JoinedUpdate(mark, bump.update());
        return Ok(match both.execute(c) {
            // Two rows: the image's and its stripe's.
            Ok(2) => true,
            Ok(_) => false,
            Err(e) => {
                log::info!(
                    "the change of image {id} from its cached record failed ({e}); making it again by its rows"
                );
                false
            }
        });
    }
    // Diesel's own "roll back, no error" marker; nothing else here returns it.
    let undo = || RegistryError::Query(diesel::result::Error::RollbackTransaction);
    let kept = conn.transaction(|conn| {
        let marked = on_backend!(&mut *conn, |c, _B| { mark.execute(c)? });
        if marked != 1 {
            return Err(undo());
        }
        let image = LockedImage {
            id: *id,
            sid: id.to_string(),
            row: None,
        };
        if let Some(children) = children {
            children(conn, &image)?;
        }
        if !bump_if(conn, &image.id, generation)? {
            return Err(undo());
        }
        Ok(())
    });
    match kept {
        Err(RegistryError::Query(diesel::result::Error::RollbackTransaction)) => Ok(false),
        other => other.map(|()| true),
    }
}

/// Takes the write lock on an image row before reading it, so concurrent writers queue
/// up instead of both acting on the same snapshot. A self-assignment is a row lock on
/// MySQL and PostgreSQL and the database write lock on SQLite, with one portable statement.
fn lock(conn: &mut DbConnection, id: &ImageId) -> Result<(), RegistryError> {
    let sid = id.to_string();
    let lock = FixedUpdate {
        table: "images",
        set: &[("status", Val::Column("status"))],
        filter: &[("id", Val::Text(&sid))],
    };
    on_backend!(conn, |c, _B| { lock.execute(c)? });
    Ok(())
}

/// Adds one to the counter of the image's stripe.
fn bump(conn: &mut DbConnection, id: &ImageId) -> Result<(), RegistryError> {
    let s = i32::try_from(stripe(id)).unwrap_or_default();
    let update = FixedUpdate {
        table: "glance_record_generations",
        set: &[("generation", Val::Incremented("generation"))],
        filter: &[("stripe", Val::Int(s))],
    };
    on_backend!(conn, |c, _B| { update.execute(c)? });
    Ok(())
}

/// [`bump`], made only if the counter still reads `generation`; whether it was.
fn bump_if(conn: &mut DbConnection, id: &ImageId, generation: i64) -> Result<bool, RegistryError> {
    let bump = BumpIf::new(id, generation);
    let update = bump.update();
    let moved = on_backend!(conn, |c, _B| { update.execute(c)? });
    Ok(moved == 1)
}

/// The statement of [`bump_if`], to be run alone or joined to another (`JoinedUpdate`).
struct BumpIf {
    set: [(&'static str, Val<'static>); 1],
    filter: [(&'static str, Val<'static>); 2],
}

impl BumpIf {
    /// The bump of `id`'s stripe counter if it reads `generation`.
    fn new(id: &ImageId, generation: i64) -> Self {
        let s = i32::try_from(stripe(id)).unwrap_or_default();
        Self {
            set: [("generation", Val::Incremented("generation"))],
            filter: [
                ("stripe", Val::Int(s)),
                ("generation", Val::BigInt(generation)),
            ],
        }
    }

    /// The `UPDATE`.
    fn update(&self) -> FixedUpdate<'_> {
        FixedUpdate {
            table: "glance_record_generations",
            set: &self.set,
            filter: &self.filter,
        }
    }
}

//! Writes under concurrency: on SQLite they are committed in batches (one transaction per
//! batch, a savepoint per write). Whatever the batching, a write answered with success is in
//! the database, and a write answered with an error left nothing behind.

use anyhow::Result;
use futures_util::future::join_all;
use glance_model::wire::NewImage;
use glance_model::{Context, ImageId};
use glance_registry::db::{Database, DbUrl, PoolOptions, images, migrate, transaction};

use crate::harness::{TestDb, backends};

fn admin() -> Context {
    Context {
        project_id: Some("p".to_string()),
        is_admin: true,
        ..Context::default()
    }
}

fn new_image(id: ImageId) -> NewImage {
    NewImage {
        id: Some(id),
        name: Some("w".to_string()),
        ..NewImage::default()
    }
}

/// What a fresh read finds: whether an image with this id exists.
async fn exists(db: &Database, id: ImageId) -> Result<bool> {
    let found = db
        .run(move |c| {
            Ok(images::show(c, &admin(), &id)
                .map(|_| true)
                .or_else(|e| match e.kind() {
                    glance_model::ErrorKind::NotFound => Ok(false),
                    _ => Err(e),
                }))
        })
        .await??;
    Ok(found)
}

#[actix_web::test]
async fn concurrent_writes_are_answered_as_they_were_committed() -> Result<()> {
    for b in backends() {
        let tdb = TestDb::new(b)?;
        let db = Database::connect(&DbUrl::parse(&tdb.url)?, PoolOptions::default())?;
        migrate::sync(&mut *db.get()?)?;
        let taken = ImageId::new();
        db.write(move |c| images::insert(c, &admin(), new_image(taken)))
            .await?;

        // 90 writes at once: every third reuses a taken id (409), one panics after its insert.
        let plan: Vec<(ImageId, bool)> = (0..90)
            .map(|i| {
                let id = if i % 3 == 2 { taken } else { ImageId::new() };
                (id, i == 45)
            })
            .collect();
        let answers = join_all(plan.iter().map(|&(id, panics)| {
            let db = db.clone();
            async move {
                // A write closure makes its changes in one transaction; this one panics
                // inside it, after its insert.
                db.write(move |c| {
                    transaction(c, |c| {
                        let made = images::insert(c, &admin(), new_image(id));
                        assert!(
                            !panics,
                            "test: a write that fails unexpectedly after its insert"
                        );
                        made
                    })
                })
                .await
            }
        }))
        .await;

        let mut ok = 0;
        for ((id, panics), answer) in plan.iter().zip(&answers) {
            match answer {
                Ok(img) => {
                    ok += 1;
                    assert_eq!(img.id, *id, "{b}");
                    assert!(
                        exists(&db, *id).await?,
                        "{b}: {id} answered ok but not saved"
                    );
                }
                Err(e) => {
                    if *id == taken {
                        assert_eq!(e.kind(), glance_model::ErrorKind::Conflict, "{b}: {e}");
                    } else {
                        assert!(
                            *panics || e.kind() == glance_model::ErrorKind::Unavailable,
                            "{b}: unexpected error for {id}: {e}"
                        );
                        assert!(!exists(&db, *id).await?, "{b}: {id} answered {e} but saved");
                    }
                }
            }
        }
        assert!(
            answers[45].is_err(),
            "{b}: the panicking write was answered ok"
        );
        // The panicking write is undone alone: every other fresh id is saved.
        assert_eq!(ok, 59, "{b}: {ok} of 59 fresh writes were saved");
        assert!(exists(&db, taken).await?, "{b}");

        // The writer goes on after a write panicked.
        let after = ImageId::new();
        db.write(move |c| images::insert(c, &admin(), new_image(after)))
            .await?;
        assert!(exists(&db, after).await?, "{b}");
    }
    Ok(())
}

/// Creates race for one fresh id: the database's primary key decides, so exactly one is
/// saved and every other caller gets 409 (never a deadlock or an internal error).
#[actix_web::test]
async fn concurrent_creates_of_one_id_save_it_once() -> Result<()> {
    for b in backends() {
        let tdb = TestDb::new(b)?;
        let db = Database::connect(&DbUrl::parse(&tdb.url)?, PoolOptions::default())?;
        migrate::sync(&mut *db.get()?)?;
        for _round in 0..5 {
            let id = ImageId::new();
            let answers = join_all((0..8).map(|_| {
                let db = db.clone();
                async move {
                    db.write(move |c| images::insert(c, &admin(), new_image(id)))
                        .await
                }
            }))
            .await;
            let mut saved = 0;
            for answer in &answers {
                match answer {
                    Ok(img) => {
                        saved += 1;
                        assert_eq!(img.id, id, "{b}");
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), glance_model::ErrorKind::Conflict, "{b}: {e}");
                        assert!(e.to_string().contains("already exists"), "{b}: {e}");
                    }
                }
            }
            assert_eq!(saved, 1, "{b}: {saved} of 8 creates of {id} answered ok");
            assert!(exists(&db, id).await?, "{b}");
        }
    }
    Ok(())
}

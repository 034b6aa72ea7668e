//! The record cache across an HA pair: two registries on one database, each with its own
//! cache. Whatever one of them changes, the other answers with at once, from the very next
//! request; and a change made behind both their backs (SQL typed by hand, which bumps no
//! counter) shows that the answers really came from the cache.

use std::time::Duration;

use anyhow::Result;
use diesel::connection::SimpleConnection;
use glance_registry::RegistryConfig;
use glance_registry::cache::CacheOptions;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, first_n};

fn config(max_bytes: usize, max_age: Duration) -> RegistryConfig {
    RegistryConfig {
        workers: 2,
        record_cache: CacheOptions { max_bytes, max_age },
        ..RegistryConfig::default()
    }
}

/// Status and body of `GET /v1/images/{id}` as `project` (member role).
async fn show(r: &TestRegistry, id: &str, project: &str) -> Result<(u16, Value)> {
    let res = r
        .req(Method::GET, &format!("/v1/images/{id}"), project, "member")
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

/// The image with this id in the first page of `GET /v1/images` as `project`.
async fn listed(r: &TestRegistry, id: &str, project: &str) -> Result<Option<Value>> {
    let res = r
        .req(Method::GET, "/v1/images?limit=100", project, "member")
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "list -> {}", res.status());
    let page: Value = res.json().await?;
    Ok(page["images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id).cloned()))
}

/// Sends a request and checks its status.
async fn expect(req: reqwest::RequestBuilder, status: u16, what: &str) -> Result<Value> {
    let res = req.send().await?;
    let got = res.status().as_u16();
    let body = res.text().await?;
    anyhow::ensure!(got == status, "{what}: {got}, expected {status}: {body}");
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[actix_web::test]
async fn each_registry_of_a_pair_sees_the_others_changes_at_once() -> Result<()> {
    for b in backends() {
        let a = TestRegistry::start(b).await?;
        let other = a
            .beside(config(16 << 20, Duration::from_secs(3600)))
            .await?;
        let img = a
            .create(
                "p",
                json!({"name": "one", "disk_format": "raw", "container_format": "bare",
                       "tags": ["t1"], "properties": {"os_distro": "a"}}),
            )
            .await?;
        let id = img["id"].as_str().unwrap_or_default().to_string();
        let path = format!("/v1/images/{id}");

        // The other registry loads (and caches) it, by show and by list.
        let (status, shown) = show(&other, &id, "p").await?;
        assert_eq!((status, shown["name"].clone()), (200, json!("one")), "{b}");
        assert!(listed(&other, &id, "p").await?.is_some(), "{b}");

        // Row and properties.
        expect(
            a.req(Method::PATCH, &path, "p", "member")
                .json(&json!({"name": "two", "set_properties": {"os_distro": "b", "extra": "x"}})),
            200,
            "patch",
        )
        .await?;
        let (_, shown) = show(&other, &id, "p").await?;
        assert_eq!(shown["name"], "two", "{b}: {shown}");
        assert_eq!(
            shown["properties"],
            json!({"os_distro": "b", "extra": "x"}),
            "{b}"
        );
        let row = listed(&other, &id, "p").await?.unwrap_or_default();
        assert_eq!(
            (row["name"].clone(), row["properties"]["extra"].clone()),
            (json!("two"), json!("x")),
            "{b}: {row}"
        );
        expect(
            a.req(Method::PATCH, &path, "p", "member")
                .json(&json!({"remove_properties": ["extra"]})),
            200,
            "remove property",
        )
        .await?;
        let (_, shown) = show(&other, &id, "p").await?;
        assert_eq!(shown["properties"], json!({"os_distro": "b"}), "{b}");

        // Tags.
        expect(
            a.req(Method::PUT, &format!("{path}/tags/t2"), "p", "member"),
            204,
            "add tag",
        )
        .await?;
        assert_eq!(show(&other, &id, "p").await?.1["tags"], json!(["t1", "t2"]));
        expect(
            a.req(Method::DELETE, &format!("{path}/tags/t1"), "p", "member"),
            204,
            "remove tag",
        )
        .await?;
        assert_eq!(show(&other, &id, "p").await?.1["tags"], json!(["t2"]));
        let row = listed(&other, &id, "p").await?.unwrap_or_default();
        assert_eq!(row["tags"], json!(["t2"]), "{b}");

        // Visibility: another project sees a public image (from the cache), and stops
        // seeing it the moment it is made private.
        assert_eq!(show(&other, &id, "q").await?.0, 404, "{b}");
        expect(
            a.admin(Method::PATCH, &path)
                .json(&json!({"visibility": "public"})),
            200,
            "publish",
        )
        .await?;
        assert_eq!(show(&other, &id, "q").await?.0, 200, "{b}");
        assert_eq!(show(&other, &id, "q").await?.0, 200, "{b}");
        expect(
            a.admin(Method::PATCH, &path)
                .json(&json!({"visibility": "private"})),
            200,
            "make private",
        )
        .await?;
        assert_eq!(show(&other, &id, "q").await?.0, 404, "{b}");
        assert!(listed(&other, &id, "q").await?.is_none(), "{b}");

        // Members of a shared image.
        expect(
            a.admin(Method::PATCH, &path)
                .json(&json!({"visibility": "shared"})),
            200,
            "share",
        )
        .await?;
        assert_eq!(show(&other, &id, "q").await?.0, 404, "{b}");
        expect(
            a.req(Method::POST, &format!("{path}/members"), "p", "member")
                .json(&json!({"member": "q"})),
            200,
            "add member",
        )
        .await?;
        assert_eq!(show(&other, &id, "q").await?.0, 200, "{b}");
        expect(
            a.req(Method::DELETE, &format!("{path}/members/q"), "p", "member"),
            204,
            "remove member",
        )
        .await?;
        assert_eq!(show(&other, &id, "q").await?.0, 404, "{b}");

        // Status, through the upload lease.
        let lease = expect(
            a.req(Method::POST, &format!("{path}/upload"), "p", "member")
                .json(&json!({"node": "api-1:9292", "ttl_secs": 30})),
            201,
            "start upload",
        )
        .await?;
        assert_eq!(show(&other, &id, "p").await?.1["status"], "saving", "{b}");
        expect(
            a.req(Method::POST, &format!("{path}/upload/abort"), "p", "member")
                .json(&json!({"token": lease["token"]})),
            200,
            "abort upload",
        )
        .await?;
        assert_eq!(show(&other, &id, "p").await?.1["status"], "queued", "{b}");

        // Delete.
        expect(a.req(Method::DELETE, &path, "p", "member"), 200, "delete").await?;
        assert_eq!(show(&other, &id, "p").await?.0, 404, "{b}");
        assert!(listed(&other, &id, "p").await?.is_none(), "{b}");
        other.stop().await;
        a.stop().await;
    }
    Ok(())
}

/// Renames an image with SQL, as an operator might by hand: no counter is bumped.
fn rename_behind_the_back(r: &TestRegistry, id: &str, name: &str) -> Result<()> {
    r.db.conn()?.batch_execute(&format!(
        "UPDATE images SET name = '{name}' WHERE id = '{id}'"
    ))?;
    Ok(())
}

#[actix_web::test]
async fn answers_come_from_the_cache_until_a_counter_moves_or_the_entry_ages() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r.create("p", json!({"name": "before"})).await?;
        let id = img["id"].as_str().unwrap_or_default().to_string();
        assert_eq!(show(&r, &id, "p").await?.1["name"], "before", "{b}");
        assert!(listed(&r, &id, "p").await?.is_some(), "{b}");

        // Unseen: both the show and the list page answer from the cache.
        rename_behind_the_back(&r, &id, "behind")?;
        assert_eq!(show(&r, &id, "p").await?.1["name"], "before", "{b}");
        let row = listed(&r, &id, "p").await?.unwrap_or_default();
        assert_eq!(row["name"], "before", "{b}");

        // Any counter moving (here all of them, by hand) makes the next request reload.
        r.db.conn()?
            .batch_execute("UPDATE glance_record_generations SET generation = generation + 1")?;
        assert_eq!(show(&r, &id, "p").await?.1["name"], "behind", "{b}");
        assert_eq!(
            listed(&r, &id, "p").await?.unwrap_or_default()["name"],
            "behind",
            "{b}"
        );

        // A registry with the cache off sees such a change at once.
        let off = r.beside(config(0, Duration::from_secs(60))).await?;
        rename_behind_the_back(&r, &id, "seen")?;
        assert_eq!(show(&off, &id, "p").await?.1["name"], "seen", "{b}");
        off.stop().await;

        // With a short max age, the cached answer goes stale for at most that long.
        let aging = r.beside(config(16 << 20, Duration::from_secs(1))).await?;
        assert_eq!(show(&aging, &id, "p").await?.1["name"], "seen", "{b}");
        rename_behind_the_back(&r, &id, "aged")?;
        assert_eq!(show(&aging, &id, "p").await?.1["name"], "seen", "{b}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(show(&aging, &id, "p").await?.1["name"], "aged", "{b}");
        aging.stop().await;
        r.stop().await;
    }
    Ok(())
}

/// A create fills the cache with the image as the database holds it: the show that follows
/// needs no read of the image (a change behind the back goes unseen), and gives what a
/// registry reading the tables gives. Any later change moves the counter as usual.
#[actix_web::test]
async fn a_created_image_is_cached_as_the_database_holds_it() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        // Until the counters have been read once, a create has none to file its entry under.
        let first = r.create("p", json!({"name": "first"})).await?;
        let first_id = first["id"].as_str().unwrap_or_default().to_string();
        rename_behind_the_back(&r, &first_id, "first-behind")?;
        assert_eq!(
            show(&r, &first_id, "p").await?.1["name"],
            "first-behind",
            "{b}: no counters read yet, so nothing was cached"
        );

        let img = r
            .create(
                "p",
                json!({"name": "new", "disk_format": "raw", "container_format": "bare",
                       "min_disk": 1, "tags": ["b", "a", "b"],
                       "properties": {"os_distro": "cirros", "empty": ""}}),
            )
            .await?;
        let id = img["id"].as_str().unwrap_or_default().to_string();
        rename_behind_the_back(&r, &id, "behind")?;
        let (status, cached) = show(&r, &id, "p").await?;
        assert_eq!(status, 200, "{b}");
        assert_eq!(
            cached["name"], "new",
            "{b}: the show was answered from the create"
        );

        let off = r.beside(config(0, Duration::from_secs(60))).await?;
        let (status, mut read) = show(&off, &id, "p").await?;
        assert_eq!(status, 200, "{b}");
        assert_eq!(read["name"], "behind", "{b}");
        read["name"] = json!("new");
        assert_eq!(
            cached, read,
            "{b}: the cached image is the one in the tables"
        );
        off.stop().await;

        // A change through the registry moves the counter: the next show reads the tables.
        expect(
            r.req(Method::PATCH, &format!("/v1/images/{id}"), "p", "member")
                .json(&json!({"min_ram": 8})),
            200,
            "update",
        )
        .await?;
        let (_, after) = show(&r, &id, "p").await?;
        assert_eq!(after["name"], "behind", "{b}");
        assert_eq!(after["min_ram"], 8, "{b}");
        r.stop().await;
    }
    Ok(())
}

/// The counter of one stripe, or `None` when the stripe has no row.
fn counter(r: &TestRegistry, stripe: usize) -> Result<Option<i64>> {
    first_n(
        &mut r.db.conn()?,
        &format!("SELECT generation AS n FROM glance_record_generations WHERE stripe = {stripe}"),
    )
}

/// A delete moves its image's stripe counter by exactly one, and still deletes where the
/// stripe has no counter row (a database changed by hand).
#[actix_web::test]
async fn a_delete_moves_its_counter_once_and_works_without_one() -> Result<()> {
    use glance_registry::db::generations::stripe;
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let mut ids = Vec::new();
        // Two images in different stripes (one in 64 pairs of random ids share one).
        while ids.len() < 2 {
            let img = r.create("p", json!({"name": "x"})).await?;
            let id: glance_model::ImageId = img["id"].as_str().unwrap_or_default().parse()?;
            if ids.iter().all(|other| stripe(other) != stripe(&id)) {
                ids.push(id);
            }
        }
        let (counted, uncounted) = (ids[0], ids[1]);
        r.db.conn()?.batch_execute(&format!(
            "DELETE FROM glance_record_generations WHERE stripe = {}",
            stripe(&uncounted)
        ))?;
        let before = counter(&r, stripe(&counted))?;
        for id in [counted, uncounted] {
            let path = format!("/v1/images/{id}");
            let gone = expect(r.req(Method::DELETE, &path, "p", "member"), 200, "delete").await?;
            assert_eq!(gone["status"], "deleted", "{b}");
            assert_eq!(show(&r, &id.to_string(), "p").await?.0, 404, "{b}");
        }
        assert_eq!(
            counter(&r, stripe(&counted))?,
            before.map(|g| g + 1),
            "{b}: the counter moves once"
        );
        assert_eq!(counter(&r, stripe(&uncounted))?, None, "{b}");
        let deleted = first_n(
            &mut r.db.conn()?,
            &format!(
                "SELECT COUNT(*) AS n FROM images WHERE id IN ('{counted}', '{uncounted}') \
                 AND deleted = true AND status = 'deleted' AND deleted_at IS NOT NULL"
            ),
        )?;
        assert_eq!(deleted, Some(2), "{b}: both rows deleted");
        r.stop().await;
    }
    Ok(())
}

/// Live rows of `table` (a child table) for one image.
fn live_children(r: &TestRegistry, table: &str, id: &str) -> Result<Option<i64>> {
    first_n(
        &mut r.db.conn()?,
        &format!("SELECT COUNT(*) AS n FROM {table} WHERE image_id = '{id}' AND deleted = false"),
    )
}

/// Whether the image's row is marked deleted, with status `deleted` and a `deleted_at`.
fn row_deleted(r: &TestRegistry, id: &str) -> Result<bool> {
    let n = first_n(
        &mut r.db.conn()?,
        &format!(
            "SELECT COUNT(*) AS n FROM images WHERE id = '{id}' AND deleted = true \
             AND status = 'deleted' AND deleted_at IS NOT NULL"
        ),
    )?;
    Ok(n == Some(1))
}

/// A delete of an image the registry holds in its cache is made from that record, without
/// reading the image again, only while nothing has changed the image since: anything
/// another registry changed is deleted with it, and what the database says about protection
/// still stops it. A rename made behind the back (no counter moves) shows which copy the
/// answer came from.
#[actix_web::test]
async fn a_delete_from_the_cache_is_checked_against_the_database() -> Result<()> {
    for b in backends() {
        let a = TestRegistry::start(b).await?;
        let other = a
            .beside(config(16 << 20, Duration::from_secs(3600)))
            .await?;
        // A first read of the counters, which a create files its entry under.
        let warm = a.create("p", json!({"name": "warm"})).await?;
        let warm = warm["id"].as_str().unwrap_or_default().to_string();

        // Unchanged since it was created, with and without properties and tags: deleted
        // from the record (the answer has the name it was created with), children included.
        for body in [
            json!({"name": "before"}),
            json!({"name": "before", "tags": ["t1", "t2"],
                   "properties": {"os_distro": "cirros", "k": "v"}}),
        ] {
            // Counters read after the last delete: ids share 64 stripes, so an entry filed
            // under a read from before it would, one time in 64, be behind its stripe's
            // counter and rightly not be used.
            show(&a, &warm, "p").await?;
            let id = a.create("p", body).await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            rename_behind_the_back(&a, &id, "behind")?;
            let path = format!("/v1/images/{id}");
            let gone = expect(a.req(Method::DELETE, &path, "p", "member"), 200, "delete").await?;
            assert_eq!(
                (gone["name"].clone(), gone["status"].clone()),
                (json!("before"), json!("deleted")),
                "{b}: answered from the cached record: {gone}"
            );
            assert!(row_deleted(&a, &id)?, "{b}");
            for table in ["image_properties", "image_tags"] {
                assert_eq!(live_children(&a, table, &id)?, Some(0), "{b}: {table}");
            }
            assert_eq!(show(&a, &id, "p").await?.0, 404, "{b}");
            assert_eq!(show(&other, &id, "p").await?.0, 404, "{b}");
        }

        // Changed through the other registry after it was cached here: a property, a tag
        // and a member it was created without are deleted with it.
        let id = a
            .create("p", json!({"name": "shared", "visibility": "shared"}))
            .await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let path = format!("/v1/images/{id}");
        expect(
            other
                .req(Method::PATCH, &path, "p", "member")
                .json(&json!({"set_properties": {"k": "v"}})),
            200,
            "set property",
        )
        .await?;
        expect(
            other.req(Method::PUT, &format!("{path}/tags/t"), "p", "member"),
            204,
            "add tag",
        )
        .await?;
        expect(
            other
                .req(Method::POST, &format!("{path}/members"), "p", "member")
                .json(&json!({"member": "q"})),
            200,
            "add member",
        )
        .await?;
        let gone = expect(a.req(Method::DELETE, &path, "p", "member"), 200, "delete").await?;
        assert_eq!(gone["properties"], json!({"k": "v"}), "{b}: {gone}");
        assert!(row_deleted(&a, &id)?, "{b}");
        for table in ["image_properties", "image_tags", "image_members"] {
            assert_eq!(live_children(&a, table, &id)?, Some(0), "{b}: {table}");
        }

        // Protected behind the back: the delete is refused and the image stays.
        let id = a.create("p", json!({"name": "kept"})).await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        a.db.conn()?.batch_execute(&format!(
            "UPDATE images SET protected = true WHERE id = '{id}'"
        ))?;
        let path = format!("/v1/images/{id}");
        expect(a.req(Method::DELETE, &path, "p", "member"), 403, "delete").await?;
        assert!(!row_deleted(&a, &id)?, "{b}");
        assert_eq!(show(&other, &id, "p").await?.0, 200, "{b}");
        other.stop().await;
        a.stop().await;
    }
    Ok(())
}

//! Image aggregate through the registry: create, show, update, properties, tags, members,
//! and the soft delete that cascades to every child table in one transaction.

use anyhow::Result;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use reqwest::Method;
use serde_json::json;

use crate::harness::{TestRegistry, backends, expect_error};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `sql` with its `$1` written as this backend's placeholder (`?` but on PostgreSQL).
fn placeholder(conn: &glance_registry::db::DbConnection, sql: &str) -> String {
    if matches!(conn, glance_registry::db::DbConnection::Postgres(_)) {
        sql.to_string()
    } else {
        sql.replace("$1", "?")
    }
}

fn count(conn: &mut glance_registry::db::DbConnection, sql: &str, id: &str) -> Result<i64> {
    let sql = placeholder(conn, sql);
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(id)
        .get_result::<N>(conn)?
        .n)
}

#[actix_web::test]
async fn create_show_update_delete_cascades() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create("proj-a", json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
                "min_ram": 64, "tags": ["a", "b"], "properties": {"os_distro": "cirros", "hw_disk_bus": "virtio"}}))
            .await?;
        let id = img["id"].as_str().unwrap().to_string();
        assert_eq!(img["status"], "queued", "{b}");
        assert_eq!(img["visibility"], "shared", "{b}: default visibility");
        assert_eq!(img["owner"], "proj-a", "{b}");
        assert_eq!(img["tags"], json!(["a", "b"]), "{b}");
        assert_eq!(img["properties"]["os_distro"], "cirros", "{b}");
        assert!(img["created_at"].as_str().unwrap().ends_with('Z'));

        let res = r
            .req(
                Method::PATCH,
                &format!("/v1/images/{id}"),
                "proj-a",
                "member",
            )
            .json(
                &json!({"name": "cirros-2", "set_properties": {"os_distro": "ubuntu", "new": "x"},
                          "remove_properties": ["hw_disk_bus"], "tags": ["b", "c"]}),
            )
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let upd: serde_json::Value = res.json().await?;
        assert_eq!(upd["name"], "cirros-2");
        assert_eq!(
            upd["properties"],
            json!({"os_distro": "ubuntu", "new": "x"}),
            "{b}"
        );
        assert_eq!(upd["tags"], json!(["b", "c"]), "{b}");

        // A removed property can be set again (Glance's UNIQUE(image_id, name) spans deleted rows).
        let res = r
            .req(
                Method::PATCH,
                &format!("/v1/images/{id}"),
                "proj-a",
                "member",
            )
            .json(&json!({"set_properties": {"hw_disk_bus": "scsi"}}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let res = r
            .req(
                Method::PATCH,
                &format!("/v1/images/{id}"),
                "proj-a",
                "member",
            )
            .json(&json!({"remove_properties": ["nope"]}))
            .send()
            .await?;
        expect_error(res, 409, "does not exist").await?;

        // Tags one by one: idempotent add, 404 on removing a missing tag.
        for _ in 0..2 {
            let res = r
                .req(
                    Method::PUT,
                    &format!("/v1/images/{id}/tags/d"),
                    "proj-a",
                    "member",
                )
                .send()
                .await?;
            assert_eq!(res.status(), 204, "{b}");
        }
        let res = r
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}/tags/zzz"),
                "proj-a",
                "member",
            )
            .send()
            .await?;
        expect_error(res, 404, "zzz").await?;
        let shown: serde_json::Value = r
            .req(Method::GET, &format!("/v1/images/{id}"), "proj-a", "reader")
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(shown["tags"], json!(["b", "c", "d"]), "{b}");

        // Members make the cascade cover every child table.
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/members"),
                "proj-a",
                "member",
            )
            .json(&json!({"member": "proj-b"}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");

        // Protected images cannot be deleted.
        r.req(
            Method::PATCH,
            &format!("/v1/images/{id}"),
            "proj-a",
            "member",
        )
        .json(&json!({"protected": true}))
        .send()
        .await?;
        let res = r
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}"),
                "proj-a",
                "member",
            )
            .send()
            .await?;
        expect_error(res, 403, "protected").await?;
        r.req(
            Method::PATCH,
            &format!("/v1/images/{id}"),
            "proj-a",
            "member",
        )
        .json(&json!({"protected": false}))
        .send()
        .await?;

        // A location too (written as an upload's completion would), so every child table
        // has a live row to cascade to.
        let mut conn = r.db.conn()?;
        let sql = "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) \
                   SELECT id, 'file:///data/img', created_at, false, NULL, 'active' FROM images WHERE id = $1";
        assert_eq!(exec(&mut conn, sql, &id)?, 1, "{b}");
        drop(conn);

        let res = r
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}"),
                "proj-a",
                "member",
            )
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let deleted: serde_json::Value = res.json().await?;
        assert_eq!(deleted["status"], "deleted");
        let res = r
            .req(Method::GET, &format!("/v1/images/{id}"), "proj-a", "member")
            .send()
            .await?;
        expect_error(res, 404, &id).await?;

        let mut conn = r.db.conn()?;
        for table in [
            "image_properties",
            "image_tags",
            "image_members",
            "image_locations",
        ] {
            let live = count(
                &mut conn,
                &format!(
                    "SELECT COUNT(*) AS n FROM {table} WHERE image_id = $1 AND deleted = false"
                ),
                &id,
            )?;
            assert_eq!(live, 0, "{b}: live rows left in {table}");
            let total = count(
                &mut conn,
                &format!("SELECT COUNT(*) AS n FROM {table} WHERE image_id = $1"),
                &id,
            )?;
            assert!(total > 0, "{b}: {table} rows were hard-deleted");
        }
        let same_time = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM image_properties p JOIN images i ON i.id = p.image_id WHERE i.id = $1 AND p.deleted_at = i.deleted_at",
            &id,
        )?;
        assert_eq!(same_time, 3, "{b}: children carry the image's deleted_at");
        let gone = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM image_locations WHERE image_id = $1 AND status = 'deleted'",
            &id,
        )?;
        assert_eq!(gone, 1, "{b}: the location is marked deleted");
        // Ids of deleted images stay taken.
        let res = r
            .req(Method::POST, "/v1/images", "proj-a", "member")
            .json(&json!({"id": id}))
            .send()
            .await?;
        expect_error(res, 409, "already exists").await?;
        r.stop().await;
    }
    Ok(())
}

#[actix_web::test]
async fn members_follow_glance_rules() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let private = r.create("owner", json!({"visibility": "private"})).await?;
        let pid = private["id"].as_str().unwrap();
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{pid}/members"),
                "owner",
                "member",
            )
            .json(&json!({"member": "p2"}))
            .send()
            .await?;
        expect_error(res, 403, "only shared images").await?;

        let shared = r.create("owner", json!({"name": "s"})).await?;
        let id = shared["id"].as_str().unwrap();
        // Not visible to another project before sharing.
        let res = r
            .req(Method::GET, &format!("/v1/images/{id}"), "p2", "member")
            .send()
            .await?;
        expect_error(res, 404, id).await?;
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/members"),
                "owner",
                "member",
            )
            .json(&json!({"member": "p2"}))
            .send()
            .await?;
        let m: serde_json::Value = res.json().await?;
        assert_eq!(m["status"], "pending", "{b}");
        assert_eq!(m["member_id"], "p2");
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/members"),
                "owner",
                "member",
            )
            .json(&json!({"member": "p2"}))
            .send()
            .await?;
        expect_error(res, 409, "already a member").await?;
        r.req(
            Method::POST,
            &format!("/v1/images/{id}/members"),
            "owner",
            "member",
        )
        .json(&json!({"member": "p3"}))
        .send()
        .await?;
        // A pending member can read the image; an outsider cannot.
        assert_eq!(
            r.req(Method::GET, &format!("/v1/images/{id}"), "p2", "reader")
                .send()
                .await?
                .status(),
            200
        );
        assert_eq!(
            r.req(Method::GET, &format!("/v1/images/{id}"), "p9", "reader")
                .send()
                .await?
                .status(),
            404
        );
        // The owner sees all members; a member only itself.
        let all: serde_json::Value = r
            .req(
                Method::GET,
                &format!("/v1/images/{id}/members"),
                "owner",
                "reader",
            )
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(all["members"].as_array().unwrap().len(), 2, "{b}");
        let mine: serde_json::Value = r
            .req(
                Method::GET,
                &format!("/v1/images/{id}/members"),
                "p2",
                "reader",
            )
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(mine["members"].as_array().unwrap().len(), 1, "{b}");
        let res = r
            .req(
                Method::PUT,
                &format!("/v1/images/{id}/members/p2"),
                "p2",
                "member",
            )
            .json(&json!({"status": "accepted"}))
            .send()
            .await?;
        let m: serde_json::Value = res.json().await?;
        assert_eq!(m["status"], "accepted", "{b}");
        let res = r
            .req(
                Method::PUT,
                &format!("/v1/images/{id}/members/p2"),
                "p2",
                "member",
            )
            .json(&json!({"status": "maybe"}))
            .send()
            .await?;
        assert_eq!(res.status(), 400, "{b}");
        let res = r
            .req(
                Method::DELETE,
                &format!("/v1/images/{id}/members/p3"),
                "owner",
                "member",
            )
            .send()
            .await?;
        assert_eq!(res.status(), 204, "{b}");
        assert_eq!(
            r.req(Method::GET, &format!("/v1/images/{id}"), "p3", "reader")
                .send()
                .await?
                .status(),
            404
        );
        // Re-adding a removed member works (UNIQUE spans deleted_at).
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/members"),
                "owner",
                "member",
            )
            .json(&json!({"member": "p3"}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        r.stop().await;
    }
    Ok(())
}

/// Runs one statement with the image id bound to `$1` (`?` on MariaDB).
fn exec(conn: &mut glance_registry::db::DbConnection, sql: &str, id: &str) -> Result<usize> {
    let sql = placeholder(conn, sql);
    Ok(diesel::sql_query(sql).bind::<Text, _>(id).execute(conn)?)
}

/// A show and a list page read an image's properties, tags and locations in one statement
/// (a `UNION ALL` of the three child tables). On every backend they must come back exactly:
/// awkward property text, a NULL value as "", deleted rows left out, a duplicate live tag
/// once, tags sorted, and locations in the order they were added.
#[actix_web::test]
async fn children_come_back_exactly_on_every_backend() -> Result<()> {
    let awkward = json!({
        "quote\"d": "a \"quoted\" value",
        "back\\slash": "C:\\images\\new",
        "ctl": "line\nbreak\ttab",
        "ünïcödé": "値 😀",
        "empty": "",
        "nulled": "to become NULL",
        "gone": "soft-deleted",
    });
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create(
                "proj-a",
                json!({"name": "kids", "tags": ["zeta", "Alpha", "mid"], "properties": awkward}),
            )
            .await?;
        let plain = r.create("proj-a", json!({"name": "no children"})).await?;
        let id = img["id"].as_str().unwrap().to_string();
        let mut conn = r.db.conn()?;
        for sql in [
            "UPDATE image_properties SET value = NULL WHERE image_id = $1 AND name = 'nulled'",
            "UPDATE image_properties SET deleted = true WHERE image_id = $1 AND name = 'gone'",
            "INSERT INTO image_tags (image_id, value, created_at, deleted) \
             SELECT image_id, value, created_at, false FROM image_tags WHERE image_id = $1 AND value = 'mid'",
            "INSERT INTO image_tags (image_id, value, created_at, deleted) \
             SELECT image_id, 'deleted-tag', created_at, true FROM image_tags WHERE image_id = $1 AND value = 'zeta'",
            "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) \
             SELECT id, 'file:///b/second', created_at, false, '{\"store\": \"b\"}', 'active' FROM images WHERE id = $1",
            "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) \
             SELECT id, 'file:///gone', created_at, true, NULL, 'deleted' FROM images WHERE id = $1",
            "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) \
             SELECT id, 'file:///a/third', created_at, false, NULL, 'pending_delete' FROM images WHERE id = $1",
        ] {
            assert_eq!(exec(&mut conn, sql, &id)?, 1, "{b}: {sql}");
        }
        let mut want_props = awkward.clone();
        want_props["nulled"] = json!("");
        want_props.as_object_mut().unwrap().remove("gone");
        let want_locations = json!([
            {"url": "file:///b/second", "metadata": {"store": "b"}, "status": "active"},
            {"url": "file:///a/third", "metadata": {}, "status": "pending_delete"},
        ]);
        let res = r
            .req(Method::GET, &format!("/v1/images/{id}"), "proj-a", "member")
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let shown: serde_json::Value = res.json().await?;
        let res = r
            .req(Method::GET, "/v1/images?limit=5", "proj-a", "member")
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let page: serde_json::Value = res.json().await?;
        let listed = page["images"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["id"] == id.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("{b}: {id} not in the page {page}"));
        for (how, got) in [("show", &shown), ("list", &listed)] {
            assert_eq!(got["properties"], want_props, "{b} {how}");
            assert_eq!(got["tags"], json!(["Alpha", "mid", "zeta"]), "{b} {how}");
            let locations: Vec<serde_json::Value> = got["locations"]
                .as_array()
                .unwrap_or_else(|| panic!("{b} {how}: no locations in {got}"))
                .iter()
                .map(|l| json!({"url": l["url"], "metadata": l["metadata"], "status": l["status"]}))
                .collect();
            assert_eq!(json!(locations), want_locations, "{b} {how}");
        }
        assert_eq!(shown, listed, "{b}: show and list differ");
        let res = r
            .req(
                Method::GET,
                &format!("/v1/images/{}", plain["id"].as_str().unwrap()),
                "proj-a",
                "member",
            )
            .send()
            .await?;
        let bare: serde_json::Value = res.json().await?;
        assert_eq!(bare["properties"], json!({}), "{b}");
        assert_eq!(bare["tags"], json!([]), "{b}");
        assert_eq!(bare["locations"], json!([]), "{b}");
        r.stop().await;
    }
    Ok(())
}

//! `db_sync` adopts a database that the real Glance 33 created and populated (dumps made by
//! `tests/fixtures/glance33/make-fixture.sh`), without losing a row, and the registry then
//! serves those images with the values Glance's own API showed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use glance_registry::db::{DbConnection, migrate};
use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestDb, TestRegistry, backends};

const TABLES: &[&str] = &[
    "images",
    "image_properties",
    "image_tags",
    "image_members",
    "image_locations",
    "tasks",
    "task_info",
    "metadef_namespaces",
    "metadef_resource_types",
    "metadef_properties",
    "metadef_objects",
    "metadef_tags",
    "alembic_version",
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/glance33")
        .join(name)
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn counts(conn: &mut DbConnection) -> Result<BTreeMap<&'static str, i64>> {
    TABLES
        .iter()
        .map(|t| {
            let n: N =
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {t}")).get_result(conn)?;
            Ok((*t, n.n))
        })
        .collect()
}

fn load_dump(conn: &mut DbConnection, backend: &str) -> Result<()> {
    let sql = std::fs::read_to_string(fixture(&format!("{backend}.sql")))?;
    conn.batch_execute(&sql)
        .with_context(|| format!("loading the Glance {backend} dump"))?;
    Ok(())
}

#[actix_web::test]
async fn db_sync_adopts_a_glance_made_database() -> Result<()> {
    for b in backends().into_iter().filter(|b| *b != "postgres") {
        let db = TestDb::new(b)?;
        let mut conn = db.conn()?;
        load_dump(&mut conn, b)?;
        let before = counts(&mut conn)?;
        assert!(before["images"] >= 8, "{b}: fixture too small: {before:?}");
        let report = migrate::sync(&mut conn)?;
        assert!(
            report.adopted_alembic.is_some(),
            "{b}: not adopted: {report:?}"
        );
        assert_eq!(
            report.applied,
            vec![
                "20261123000002",
                "20261123000003",
                "20261123000004",
                "20261127000005",
                "20261128000006"
            ],
            "{b}"
        );
        assert_eq!(counts(&mut conn)?, before, "{b}: rows changed by adoption");
        let again = migrate::sync(&mut conn)?;
        assert!(
            again.applied.is_empty() && again.adopted_alembic.is_none(),
            "{b}: second sync not a no-op"
        );
        drop(conn);

        let glance: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(&format!("api-{b}.json")))?)?;
        let r = TestRegistry::serve(db).await?;
        let listed: Value = r
            .admin(Method::GET, "/v1/images?visibility=all&limit=100")
            .send()
            .await?
            .json()
            .await?;
        let hidden: Value = r
            .admin(Method::GET, "/v1/images?visibility=all&os_hidden=true")
            .send()
            .await?
            .json()
            .await?;
        let ours: BTreeMap<String, Value> = listed["images"]
            .as_array()
            .unwrap()
            .iter()
            .chain(hidden["images"].as_array().unwrap())
            .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
            .collect();
        let theirs = glance["images"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{b}: image count differs");
        for g in theirs {
            let id = g["id"].as_str().unwrap();
            let o = ours
                .get(id)
                .with_context(|| format!("{b}: image {id} missing"))?;
            for field in [
                "name",
                "status",
                "visibility",
                "size",
                "checksum",
                "os_hash_algo",
                "os_hash_value",
                "owner",
                "disk_format",
                "container_format",
                "min_disk",
                "min_ram",
                "protected",
                "os_hidden",
                "created_at",
            ] {
                assert_eq!(o[field], g[field], "{b}: {id} field {field}");
            }
            let mut tags: Vec<&str> = g["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            tags.sort();
            assert_eq!(o["tags"], serde_json::json!(tags), "{b}: {id} tags");
            // Every key Glance showed that is not a base attribute is a custom property.
            for (k, v) in g.as_object().unwrap() {
                if !glance_model::image::BASE_ATTRS.contains(&k.as_str())
                    && !k.starts_with("os_glance")
                {
                    assert_eq!(&o["properties"][k], v, "{b}: {id} property {k}");
                }
            }
        }
        let gone = glance["deleted_id"].as_str().unwrap();
        assert_eq!(
            r.admin(Method::GET, &format!("/v1/images/{gone}"))
                .send()
                .await?
                .status(),
            404,
            "{b}: deleted image served"
        );
        let shared = glance["shared_id"].as_str().unwrap();
        let members: Value = r
            .admin(Method::GET, &format!("/v1/images/{shared}/members"))
            .send()
            .await?
            .json()
            .await?;
        let mut statuses: Vec<&str> = members["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].as_str().unwrap())
            .collect();
        statuses.sort();
        assert_eq!(statuses, ["accepted", "pending"], "{b}: members");
        // The adopted database takes new writes.
        r.create("p", serde_json::json!({"name": "after-adoption"}))
            .await?;
        r.stop().await;
    }
    Ok(())
}

#[test]
fn an_unknown_schema_is_refused() -> Result<()> {
    for b in backends() {
        let db = TestDb::new(b)?;
        let mut conn = db.conn()?;
        conn.batch_execute("CREATE TABLE images (id VARCHAR(36) NOT NULL PRIMARY KEY)")?;
        let err = migrate::sync(&mut conn).unwrap_err().to_string();
        assert!(err.contains("refusing to guess"), "{b}: {err}");
    }
    Ok(())
}

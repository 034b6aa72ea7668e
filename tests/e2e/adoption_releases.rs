//! `db_sync` adopts databases that the real glance-manage built at the revisions of Queens,
//! Rocky, Train, Wallaby and 2023.1, filled as those releases wrote rows
//! (`tests/fixtures/glance-releases/make-fixtures.sh`): the schema changes Glance made since are
//! applied, no row is lost, `alembic_version` reads 2024_1_contract01, and every image is then
//! served through glance-api with its bytes. A revision it does not know is refused unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use glance_registry::db::{DbConnection, glance_releases, migrate};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, md5_hex, sha512_hex};
use crate::harness::{TestDb, TestRegistry, backends};

const REVISIONS: &[&str] = &[
    "queens_contract01",
    "rocky_contract02",
    "train_contract01",
    "wallaby_contract01",
    "2023_1_contract01",
];

const TABLES: &[&str] = &[
    "images",
    "image_properties",
    "image_tags",
    "image_members",
    "image_locations",
    "tasks",
    "task_info",
    "metadef_namespaces",
    "metadef_properties",
];

const OWNER: &str = "11111111111111111111111111111111";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/glance-releases")
}

fn image_id(n: u32) -> String {
    format!("11111111-0000-4000-8000-{n:012}")
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct S {
    #[diesel(sql_type = Nullable<Text>)]
    s: Option<String>,
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

fn texts(conn: &mut DbConnection, sql: &str) -> Result<Vec<Option<String>>> {
    let rows: Vec<S> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|r| r.s).collect())
}

/// Loads the dump on its own connection (a PostgreSQL dump changes session settings), with
/// its locations pointing into `datadir`, and copies the image files there.
fn load(db: &TestDb, backend: &str, rev: &str, datadir: &Path) -> Result<()> {
    let sql = std::fs::read_to_string(fixtures().join(format!("{backend}-{rev}.sql")))?
        .replace("@DATADIR@", &datadir.display().to_string());
    db.conn()?
        .batch_execute(&sql)
        .with_context(|| format!("loading {backend}-{rev}.sql"))?;
    for entry in std::fs::read_dir(fixtures().join("images"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), datadir.join(entry.file_name()))?;
    }
    Ok(())
}

async fn check_schema_and_rows(
    conn: &mut DbConnection,
    b: &str,
    rev: &str,
    before: &BTreeMap<&'static str, i64>,
) -> Result<()> {
    assert_eq!(&counts(conn)?, before, "{b} {rev}: rows changed");
    assert_eq!(
        texts(conn, "SELECT version_num AS s FROM alembic_version")?,
        [Some(glance_releases::TARGET_REVISION.to_string())],
        "{b} {rev}: alembic_version"
    );
    // The columns and tables Glance added since, present and queryable.
    diesel::sql_query("SELECT os_hidden, os_hash_algo, os_hash_value FROM images").execute(conn)?;
    diesel::sql_query("SELECT image_id, request_id, user_id FROM tasks").execute(conn)?;
    diesel::sql_query("SELECT COUNT(*) FROM cached_images c JOIN node_reference n ON c.node_reference_id = n.node_reference_id").execute(conn)?;
    let task_image = texts(conn, "SELECT image_id AS s FROM tasks")?;
    let expected = if rev.starts_with("wallaby") || rev.starts_with("2023") {
        Some(image_id(1))
    } else {
        None
    };
    assert_eq!(task_image, [expected], "{b} {rev}: task image_id");
    let meta = texts(
        conn,
        &format!(
            "SELECT meta_data AS s FROM image_locations WHERE image_id = '{}'",
            image_id(3)
        ),
    )?;
    let meta = meta[0].clone().unwrap_or_default();
    assert!(!meta.contains("backend"), "{b} {rev}: {meta}");
    if rev != "queens_contract01" {
        assert!(meta.contains("\"store\": \"file\""), "{b} {rev}: {meta}");
    }
    Ok(())
}

async fn check_api(cloud: &TestCloud, b: &str, rev: &str) -> Result<()> {
    let rocky_on = rev != "queens_contract01";
    for (n, visibility, protected) in [
        (1, "public", false),
        (2, "shared", false),
        (3, "private", true),
    ] {
        let id = image_id(n);
        let want = std::fs::read(fixtures().join("images").join(&id))?;
        let img = cloud.show(&id).await?;
        let ctx = format!("{b} {rev}: image {n}");
        assert_eq!(img["status"], "active", "{ctx}");
        assert_eq!(img["visibility"], visibility, "{ctx}");
        assert_eq!(img["protected"], protected, "{ctx}");
        assert_eq!(img["owner"], OWNER, "{ctx}");
        assert_eq!(img["size"], want.len(), "{ctx}");
        assert_eq!(img["checksum"], md5_hex(&want), "{ctx}");
        assert_eq!(img["os_hidden"], false, "{ctx}");
        if rocky_on {
            assert_eq!(img["os_hash_algo"], "sha512", "{ctx}");
            assert_eq!(img["os_hash_value"], sha512_hex(&want), "{ctx}");
        } else {
            assert_eq!(img["os_hash_value"], Value::Null, "{ctx}");
        }
        let res = cloud
            .req(Method::GET, &format!("/v2/images/{id}/file"))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{ctx}: download");
        let got = res.bytes().await?;
        assert!(got.as_ref() == want.as_slice(), "{ctx}: bytes differ");
    }
    let one = cloud.show(&image_id(1)).await?;
    assert_eq!(one["tags"], json!(["cirros", "test"]), "{b} {rev}");
    assert_eq!(one["os_distro"], "cirros", "{b} {rev}");
    assert_eq!(one["hw_disk_bus"], "virtio", "{b} {rev}");
    assert_eq!(one["min_ram"], 64, "{b} {rev}");
    assert_eq!(one["disk_format"], "qcow2", "{b} {rev}");
    let gone = cloud
        .req(Method::GET, &format!("/v2/images/{}", image_id(4)))
        .send()
        .await?;
    assert_eq!(gone.status(), 404, "{b} {rev}: deleted image served");
    let queued = cloud.show(&image_id(5)).await?;
    assert_eq!(queued["status"], "queued", "{b} {rev}");
    assert_eq!(queued["min_disk"], 1, "{b} {rev}");
    let community = cloud.show(&image_id(6)).await?;
    assert_eq!(community["visibility"], "community", "{b} {rev}");
    assert_eq!(community["description"], format!("from {rev}"), "{b} {rev}");
    if rocky_on {
        assert_eq!(
            cloud.show(&image_id(7)).await?["os_hidden"],
            true,
            "{b} {rev}"
        );
    }
    let members: Value = cloud
        .req(Method::GET, &format!("/v2/images/{}/members", image_id(2)))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut seen: Vec<(String, String)> = members["members"]
        .as_array()
        .context("members")?
        .iter()
        .map(|m| {
            (
                m["member_id"].as_str().unwrap_or_default().to_string(),
                m["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("2".repeat(32), "accepted".to_string()),
            ("3".repeat(32), "pending".to_string())
        ],
        "{b} {rev}: members"
    );
    let listed: Value = cloud
        .req(Method::GET, "/v2/images?visibility=all&limit=100")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut ids: Vec<&str> = listed["images"]
        .as_array()
        .context("images")?
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    ids.sort();
    let want: Vec<String> = [1, 2, 3, 5, 6].into_iter().map(image_id).collect();
    assert_eq!(ids, want, "{b} {rev}: listed images");
    // The adopted database takes new images and bytes.
    let new = cloud
        .create(json!({"name": "after-adoption", "disk_format": "raw", "container_format": "bare"}))
        .await?;
    let id = new["id"].as_str().context("id")?;
    cloud.upload(id, b"adopted".to_vec()).await?;
    assert_eq!(cloud.show(id).await?["status"], "active", "{b} {rev}");
    Ok(())
}

#[actix_web::test]
async fn db_sync_adopts_every_release_from_queens() -> Result<()> {
    for b in backends() {
        for rev in REVISIONS {
            let db = TestDb::new(b)?;
            let datadir = tempfile::tempdir()?;
            load(&db, b, rev, datadir.path())?;
            let mut conn = db.conn()?;
            let before = counts(&mut conn)?;
            assert_eq!(
                before["images"],
                if *rev == "queens_contract01" { 6 } else { 7 }
            );
            let report = migrate::sync(&mut conn).with_context(|| format!("{b} {rev}"))?;
            assert_eq!(
                report.adopted_alembic,
                Some(vec![rev.to_string()]),
                "{b} {rev}"
            );
            check_schema_and_rows(&mut conn, b, rev, &before).await?;
            let again = migrate::sync(&mut conn)?;
            assert!(
                again.applied.is_empty() && again.adopted_alembic.is_none(),
                "{b} {rev}: second sync not a no-op"
            );
            drop(conn);
            let registry = TestRegistry::serve(db).await?;
            let cloud = TestCloud::attach(registry, datadir, "").await?;
            check_api(&cloud, b, rev).await?;
        }
    }
    Ok(())
}

#[test]
fn unknown_revisions_are_refused_unchanged() -> Result<()> {
    for b in backends() {
        for rev in ["pike_contract01", "2099_1_contract01"] {
            let db = TestDb::new(b)?;
            let dir = tempfile::tempdir()?;
            load(&db, b, "queens_contract01", dir.path())?;
            let mut conn = db.conn()?;
            conn.batch_execute(&format!("UPDATE alembic_version SET version_num = '{rev}'"))?;
            let before = counts(&mut conn)?;
            let err = migrate::sync(&mut conn).unwrap_err().to_string();
            assert!(err.contains(rev), "{b}: {err}");
            assert!(err.contains("Nothing was changed"), "{b}: {err}");
            assert_eq!(counts(&mut conn)?, before, "{b} {rev}");
            let st = migrate::state(&mut conn)?;
            assert!(st.applied.is_empty(), "{b} {rev}: {st:?}");
            assert_eq!(st.alembic, [rev.to_string()], "{b} {rev}");
            // No column was added.
            assert!(
                diesel::sql_query("SELECT os_hidden FROM images")
                    .execute(&mut conn)
                    .is_err(),
                "{b} {rev}: schema changed"
            );
        }
    }
    Ok(())
}

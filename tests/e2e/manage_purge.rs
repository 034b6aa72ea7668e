//! `glance-manage db purge` over more soft-deleted rows than one statement may bind.

use anyhow::Result;
use clap::Parser as _;
use diesel::connection::SimpleConnection as _;
use glance_registry::manage::{ManageCli, run};
use serde_json::json;

use crate::harness::{TestRegistry, backends, first_n};

const ROWS: i64 = 100_000;

/// Inserts `ROWS` properties of `image`, all soft-deleted long ago, in one statement: ten
/// digits crossed five times.
fn insert_deleted_properties(r: &TestRegistry, backend: &str, image: &str) -> Result<()> {
    let digits = (0..10)
        .map(|d| format!("SELECT {d} AS d"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let n = "(a.d * 10000 + b.d * 1000 + c.d * 100 + e.d * 10 + f.d)";
    let name = if backend == "mysql" {
        format!("CONCAT('p', {n})")
    } else {
        format!("'p' || CAST({n} AS TEXT)")
    };
    let from = ["a", "b", "c", "e", "f"]
        .iter()
        .map(|t| format!("({digits}) {t}"))
        .collect::<Vec<_>>()
        .join(" CROSS JOIN ");
    let deleted = if backend == "postgres" { "TRUE" } else { "1" };
    r.db.conn()?.batch_execute(&format!(
        "INSERT INTO image_properties (image_id, name, value, created_at, deleted, deleted_at) \
         SELECT '{image}', {name}, 'v', '2020-01-01 00:00:00', {deleted}, '2020-01-02 00:00:00' \
         FROM {from}"
    ))?;
    Ok(())
}

fn purge(url: &str, max_rows: &str) -> Result<String> {
    let cli = ManageCli::try_parse_from([
        "glance-manage",
        "--database-url",
        url,
        "db",
        "purge",
        "--age_in_days",
        "1",
        "--max_rows",
        max_rows,
    ])?;
    Ok(run(cli)?)
}

/// 100,000 deleted property rows, more than SQLite's 32,766 bound variables: a bounded purge
/// removes exactly its bound, and `--max_rows -1` removes the rest; a live property stays.
#[actix_web::test]
async fn purge_removes_a_hundred_thousand_deleted_rows_in_batches() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create("p", json!({"name": "kept", "properties": {"live": "yes"}}))
            .await?;
        let id = img["id"].as_str().unwrap();
        insert_deleted_properties(&r, b, id)?;
        let count = |deleted: bool| -> Result<Option<i64>> {
            let flag = match (b, deleted) {
                ("postgres", true) => "TRUE",
                ("postgres", false) => "FALSE",
                (_, true) => "1",
                (_, false) => "0",
            };
            first_n(
                &mut r.db.conn()?,
                &format!("SELECT COUNT(*) AS n FROM image_properties WHERE deleted = {flag}"),
            )
        };
        assert_eq!(count(true)?, Some(ROWS), "{b}");

        let out = purge(&r.db.url, "40000")?;
        assert!(out.contains("image_properties: 40000"), "{b}: {out}");
        assert_eq!(count(true)?, Some(ROWS - 40_000), "{b}");

        let out = purge(&r.db.url, "-1")?;
        assert!(out.contains("image_properties: 60000"), "{b}: {out}");
        assert_eq!(count(true)?, Some(0), "{b}");
        assert_eq!(count(false)?, Some(1), "{b}: the live property stays");
    }
    Ok(())
}

fn manage(url: &str, command: &str) -> Result<String> {
    let cli = ManageCli::try_parse_from([
        "glance-manage",
        "--database-url",
        url,
        "db",
        command,
        "--age_in_days",
        "0",
        "--max_rows",
        "-1",
    ])?;
    Ok(run(cli)?)
}

/// OSSN-0075: an image id is never given again while its row exists, and `db purge` keeps
/// the rows of deleted images (as Glance's purge does); only `purge_images_table` removes
/// them, after which the id may be taken again, as in Glance.
#[actix_web::test]
async fn deleted_image_ids_are_not_reused_and_purge_keeps_them() -> Result<()> {
    const ID: &str = "0a1b2c3d-0000-4000-8000-00000000ab75";
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let create = || {
            r.req(reqwest::Method::POST, "/v1/images", "p", "member")
                .json(&json!({"id": ID, "name": "once"}))
                .send()
        };
        assert_eq!(create().await?.status(), 201, "{b}");
        let res = r
            .admin(reqwest::Method::DELETE, &format!("/v1/images/{ID}"))
            .send()
            .await?;
        assert!(res.status().is_success(), "{b}: delete {}", res.status());
        assert_eq!(create().await?.status(), 409, "{b}: id of a deleted image");
        // Deleted long ago, so both purges consider the row.
        r.db.conn()?.batch_execute(&format!(
            "UPDATE images SET deleted_at = '2020-01-02 00:00:00' WHERE id = '{ID}'"
        ))?;
        let out = manage(&r.db.url, "purge")?;
        assert!(!out.contains("images:"), "{b}: {out}");
        assert_eq!(
            create().await?.status(),
            409,
            "{b}: id reused after db purge"
        );
        let out = manage(&r.db.url, "purge_images_table")?;
        assert!(out.contains("images: 1"), "{b}: {out}");
        assert_eq!(
            create().await?.status(),
            201,
            "{b}: after purge_images_table"
        );
    }
    Ok(())
}

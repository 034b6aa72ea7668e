//! What the real glance-api process logs for an operator to act on: the warning about a
//! registry that answers without credentials behind `trusted-auth`, and the error naming an
//! image whose stored data is not its recorded size, with both sizes.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestDb;
use crate::procs::{Daemon, Kind, write_conf};
use glance_registry::db::{DbConnection, DbUrl, migrate};

/// Waits until the daemon's stderr contains every one of `needles`; returns that log.
async fn log_shows(daemon: &Daemon, needles: &[&str]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = daemon.stderr();
        if needles.iter().all(|n| log.contains(n)) {
            return Ok(log);
        }
        if Instant::now() > deadline {
            bail!("the log never showed {needles:?}:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn the_registry_warning_and_a_damaged_image_file_are_logged() -> Result<()> {
    let db = TestDb::new("sqlite")?;
    migrate::sync(&mut DbConnection::open(&DbUrl::parse(&db.url)?)?)?;
    let dir = tempfile::tempdir()?;
    let reg_conf = write_conf(
        dir.path(),
        "glance-registry.conf",
        &format!("[database]\nconnection = {}\n", db.url),
    )?;
    let registry = Daemon::start(Kind::Registry, &["--config-file", &reg_conf]).await?;
    let datadir = tempfile::tempdir()?;
    let api_conf = write_conf(
        dir.path(),
        "glance-api.conf",
        &format!(
            "[paste_deploy]\nflavor = trusted-auth\n\
             [glance_store]\nfilesystem_store_datadir = {}\n",
            datadir.path().display()
        ),
    )?;
    let api = Daemon::start(
        Kind::Api,
        &["--config-file", &api_conf, "--registry-url", &registry.base],
    )
    .await?;
    log_shows(
        &api,
        &[
            "WARN",
            "answers requests that carry no credentials",
            &registry.base,
        ],
    )
    .await?;

    let http = reqwest::Client::new();
    let req = |method: Method, path: &str| {
        http.request(method, format!("{}{path}", api.base))
            .header("X-Identity-Status", "Confirmed")
            .header("X-Project-Id", "alpha")
            .header("X-User-Id", "alice")
            .header("X-Roles", "admin")
            .header("Accept", "application/json")
    };
    let img: Value = req(Method::POST, "/v2/images")
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let id = img["id"].as_str().context("no id")?.to_string();
    let res = req(Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 1000])
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    std::fs::OpenOptions::new()
        .write(true)
        .open(datadir.path().join(&id))?
        .set_len(100)?;
    let res = req(Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await?;
    assert_eq!(res.status(), 503);
    log_shows(
        &api,
        &[
            "ERROR",
            &format!("image {id}"),
            "is 100 bytes",
            "recorded size is 1000 bytes",
        ],
    )
    .await?;
    Ok(())
}

//! No image stuck in `saving`: a real glance-api process killed with SIGKILL in the middle of
//! an upload leaves the image in `saving`; once its upload lease expires, the node restarted on
//! the same registry and image directory returns the image to `queued` and removes the partial
//! data, and the image takes a new upload.

use std::io::Write;

use anyhow::{Context as _, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{bytes, eventually, list_files};
use crate::harness::TestRegistry;
use crate::procs::{Daemon, Kind};

async fn start_node(conf: &std::path::Path, registry: &str) -> Result<Daemon> {
    let conf = conf.display().to_string();
    Daemon::start(
        Kind::Api,
        &["--config-file", &conf, "--registry-url", registry],
    )
    .await
}

#[actix_web::test]
async fn an_upload_of_a_killed_node_is_recovered_after_its_lease_expires() -> Result<()> {
    let registry = TestRegistry::start("sqlite").await?;
    let datadir = tempfile::tempdir()?;
    let confdir = tempfile::tempdir()?;
    let conf = confdir.path().join("glance-api.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nupload_lease_ttl = 2\n[glance_store]\nfilesystem_store_datadir = {}\n",
            datadir.path().display()
        ),
    )?;
    let http = reqwest::Client::new();
    let mut node = start_node(&conf, &registry.base).await?;
    let img: Value = http
        .post(format!("{}/v2/images", node.base))
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let id = img["id"].as_str().context("id")?.to_string();
    let addr = node.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr)?;
    write!(
        sock,
        "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n"
    )?;
    sock.write_all(&bytes(9, 500_000))?;
    sock.flush()?;
    let status = |base: String| {
        let http = http.clone();
        let id = id.clone();
        async move {
            let v: Value = http
                .get(format!("{base}/v2/images/{id}"))
                .send()
                .await?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(v["status"].as_str().unwrap_or_default().to_string())
        }
    };
    eventually(10, || async {
        let saving = status(node.base.clone()).await? == "saving";
        let partial = list_files(datadir.path())
            .iter()
            .any(|f| f.ends_with(".partial"));
        Ok((saving && partial).then_some(()))
    })
    .await?;

    // SIGKILL: no cleanup code of the node runs.
    node.child.kill()?;
    node.child.wait()?;
    drop(sock);
    assert_eq!(
        registry
            .admin(Method::GET, &format!("/v1/images/{id}"))
            .send()
            .await?
            .json::<Value>()
            .await?["status"],
        "saving",
        "the killed node left the image in saving"
    );
    assert!(
        list_files(datadir.path())
            .iter()
            .any(|f| f.ends_with(".partial"))
    );

    let node = start_node(&conf, &registry.base).await?;
    eventually(30, || async {
        let queued = status(node.base.clone()).await? == "queued";
        Ok((queued && list_files(datadir.path()).is_empty()).then_some(()))
    })
    .await
    .context("the image was not recovered to queued with its partial data removed")?;
    let res = http
        .put(format!("{}/v2/images/{id}/file", node.base))
        .header("content-type", "application/octet-stream")
        .body("recovered")
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_eq!(status(node.base.clone()).await?, "active");
    Ok(())
}

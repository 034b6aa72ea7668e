//! Crash safety of imports (issue 30, point 7): a real glance-api process killed with SIGKILL
//! in the middle of a web-download import leaves the image `importing` with a partial file in
//! its staging area; once the import's lease expires, the node restarted on the same registry
//! and directories returns the image to `queued`, ends the task as `failure`, and removes the
//! staged data; the image then takes a new import.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use anyhow::{Context as _, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{bytes, eventually, list_files};
use crate::harness::TestRegistry;
use crate::procs::{Daemon, Kind};

/// An HTTP server on 127.0.0.1 whose `/slow` promises 50 MB, sends 1 MB and then holds the
/// connection; `/data` sends 4 KiB whole. Returns its port.
fn serve_slow() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if String::from_utf8_lossy(&head).contains("GET /data ") {
                    let _ = conn
                        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 4096\r\n\r\n")
                        .and_then(|()| conn.write_all(&bytes(5, 4096)));
                    return;
                }
                let _ = conn
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 50000000\r\n\r\n")
                    .and_then(|()| conn.write_all(&bytes(4, 1 << 20)));
                // Hold the connection until the client goes away.
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    Ok(port)
}

#[actix_web::test]
async fn an_import_of_a_killed_node_is_undone_after_its_lease_expires() -> Result<()> {
    let registry = TestRegistry::start("sqlite").await?;
    let datadir = tempfile::tempdir()?;
    let staging = tempfile::tempdir()?;
    let confdir = tempfile::tempdir()?;
    let port = serve_slow()?;
    let conf = confdir.path().join("glance-api.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nupload_lease_ttl = 2\nnode_staging_uri = file://{}\n\
             [import_filtering_opts]\nallowed_ports = {port}\n\
             [glance_store]\nfilesystem_store_datadir = {}\n",
            staging.path().display(),
            datadir.path().display()
        ),
    )?;
    let conf = conf.display().to_string();
    let args = [
        "--config-file",
        conf.as_str(),
        "--registry-url",
        &registry.base,
    ];
    let http = reqwest::Client::new();
    let mut node = Daemon::start(Kind::Api, &args).await?;
    let img: Value = http
        .post(format!("{}/v2/images", node.base))
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let id = img["id"].as_str().context("id")?.to_string();
    let res = http
        .post(format!("{}/v2/images/{id}/import", node.base))
        .json(&json!({"method": {"name": "web-download",
                                 "uri": format!("http://127.0.0.1:{port}/slow")}}))
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    let image = |path: String| {
        let registry = &registry;
        async move {
            Ok::<Value, anyhow::Error>(
                registry
                    .admin(Method::GET, &path)
                    .send()
                    .await?
                    .json()
                    .await?,
            )
        }
    };
    eventually(10, || async {
        let importing = image(format!("/v1/images/{id}")).await?["status"] == "importing";
        let partial = list_files(staging.path())
            .iter()
            .any(|f| f.ends_with(".partial"));
        Ok((importing && partial).then_some(()))
    })
    .await
    .context("the import did not start staging")?;

    // SIGKILL: no cleanup code of the node runs.
    node.child.kill()?;
    node.child.wait()?;
    assert_eq!(
        image(format!("/v1/images/{id}")).await?["status"],
        "importing",
        "the killed node left the image importing"
    );

    let node = Daemon::start(Kind::Api, &args).await?;
    eventually(30, || async {
        let img = image(format!("/v1/images/{id}")).await?;
        let queued =
            img["status"] == "queued" && img["properties"].get("os_glance_import_task").is_none();
        Ok((queued && list_files(staging.path()).is_empty()).then_some(()))
    })
    .await
    .with_context(|| {
        format!(
            "the image was not recovered to queued with its staged data removed: staging has {:?}",
            list_files(staging.path())
        )
    })?;
    let tasks = image(format!("/v1/images/{id}/tasks")).await?;
    let task = &tasks["tasks"][0];
    assert_eq!(task["status"], "failure", "{tasks}");
    assert!(
        task["message"]
            .as_str()
            .unwrap_or("")
            .contains("lease expired"),
        "{tasks}"
    );
    assert!(list_files(datadir.path()).is_empty());

    // The image takes a new import, which completes.
    let res = http
        .post(format!("{}/v2/images/{id}/import", node.base))
        .json(&json!({"method": {"name": "web-download",
                                 "uri": format!("http://127.0.0.1:{port}/data")}}))
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    eventually(30, || async {
        Ok((image(format!("/v1/images/{id}")).await?["status"] == "active").then_some(()))
    })
    .await
    .context("the new import did not complete")?;
    Ok(())
}

//! Interoperable import (issue 30), end to end through glance-api and glance-registry on
//! every backend: a stage (`PUT /stage`) and its `glance-direct` import, a `web-download`
//! from a local HTTP server on 127.0.0.1 (with `[import_filtering_opts]` checked at the
//! request and at each redirect), the checks of an import request and their codes, the
//! revert to `queued` when an import fails, a stager that hangs up, the tasks the imports
//! leave, and discovery (`/v2/info/import`, `OpenStack-image-import-methods`).

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use anyhow::{Context as _, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, bytes, eventually, list_files, md5_hex, sha512_hex};
use crate::harness::{backends, expect_error};

/// A tiny HTTP/1.0 server on 127.0.0.1 for web-download: `/data` is `data`, `/to/<port>`
/// redirects to `/data` on that port of 127.0.0.1, anything else is 404. Returns its port.
fn serve_http(data: Vec<u8>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let data = data.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let _ = if path == "/data" {
                    conn.write_all(
                        format!(
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                            data.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| conn.write_all(&data))
                } else if let Some(p) = path.strip_prefix("/to/") {
                    conn.write_all(
                        format!(
                            "HTTP/1.0 302 Found\r\nLocation: http://127.0.0.1:{p}/data\r\nContent-Length: 0\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                } else {
                    conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                };
            });
        }
    });
    Ok(port)
}

async fn create(c: &TestCloud, body: Value) -> Result<String> {
    Ok(c.create(body).await?["id"]
        .as_str()
        .context("id")?
        .to_string())
}

async fn stage(c: &TestCloud, id: &str, data: Vec<u8>) -> Result<reqwest::Response> {
    Ok(c.req(Method::PUT, &format!("/v2/images/{id}/stage"))
        .header("Content-Type", "application/octet-stream")
        .body(data)
        .send()
        .await?)
}

async fn import(c: &TestCloud, id: &str, body: Value) -> Result<reqwest::Response> {
    Ok(c.req(Method::POST, &format!("/v2/images/{id}/import"))
        .json(&body)
        .send()
        .await?)
}

/// Waits until the image leaves `importing` and returns it.
async fn settled(c: &TestCloud, id: &str) -> Result<Value> {
    eventually(30, || async {
        let img = c.show(id).await?;
        Ok((img["status"] != "importing").then_some(img))
    })
    .await
}

async fn tasks_of(c: &TestCloud, id: &str) -> Result<Vec<Value>> {
    let res = c
        .req(Method::GET, &format!("/v2/images/{id}/tasks"))
        .send()
        .await?;
    ensure!(res.status() == 200, "image tasks: {}", res.status());
    let v: Value = res.json().await?;
    Ok(v["tasks"].as_array().cloned().unwrap_or_default())
}

#[actix_web::test]
async fn a_staged_image_is_imported_with_glance_direct() -> Result<()> {
    for b in backends() {
        let c = TestCloud::with_config(
            b,
            "[DEFAULT]\nworker_self_reference_url = http://node-1:9292\n",
        )
        .await?;
        let res = c
            .req(Method::POST, "/v2/images")
            .json(&json!({"name": "gd", "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await?;
        ensure!(
            res.headers()
                .get("openstack-image-import-methods")
                .and_then(|v| v.to_str().ok())
                == Some("glance-direct,web-download"),
            "{b}: create headers {:?}",
            res.headers()
        );
        let id = res.json::<Value>().await?["id"]
            .as_str()
            .context("id")?
            .to_string();
        let data = bytes(30, 3 * 1024 * 1024 + 17);
        let res = stage(&c, &id, data.clone()).await?;
        ensure!(res.status() == 204, "{b}: stage {}", res.status());
        let img = c.show(&id).await?;
        ensure!(
            img["status"] == "uploading" && img["size"] == data.len(),
            "{b}: after stage {img}"
        );
        // Recorded (registry_imports checks it) but not shown, as in Glance.
        ensure!(
            img.get("os_glance_stage_host").is_none(),
            "{b}: stage host shown {img}"
        );
        ensure!(
            list_files(c.staging.path()) == [id.clone()],
            "{b}: staged {:?}",
            list_files(c.staging.path())
        );
        ensure!(c.files().is_empty(), "{b}: the store has {:?}", c.files());
        // A second stage of a staged image is refused.
        expect_error(stage(&c, &id, b"more".to_vec()).await?, 409, "queued").await?;

        let res = import(&c, &id, json!({"method": {"name": "glance-direct"}})).await?;
        ensure!(res.status() == 202, "{b}: import {}", res.status());
        let img = settled(&c, &id).await?;
        ensure!(img["status"] == "active", "{b}: after import {img}");
        ensure!(
            img["checksum"] == md5_hex(&data)
                && img["os_hash_value"] == sha512_hex(&data)
                && img["size"] == data.len()
                && img["virtual_size"] == data.len(),
            "{b}: recorded {img}"
        );
        ensure!(
            img.get("os_glance_import_task").is_none()
                && img.get("os_glance_stage_host").is_none()
                && img["os_glance_importing_to_stores"] == ""
                && img["os_glance_failed_import"] == "",
            "{b}: import properties {img}"
        );
        let got = c
            .req(Method::GET, &format!("/v2/images/{id}/file"))
            .send()
            .await?
            .bytes()
            .await?;
        ensure!(
            got.as_ref() == data.as_slice(),
            "{b}: downloaded data differs"
        );
        ensure!(
            list_files(c.staging.path()).is_empty(),
            "{b}: staging left {:?}",
            list_files(c.staging.path())
        );
        ensure!(c.files() == [id.clone()], "{b}: store {:?}", c.files());

        // The task, in the image's list and on its own.
        let tasks = tasks_of(&c, &id).await?;
        ensure!(tasks.len() == 1, "{b}: tasks {tasks:?}");
        let t = &tasks[0];
        ensure!(
            t["type"] == "api_image_import"
                && t["status"] == "success"
                && t["image_id"] == id.as_str()
                && t["result"] == json!({"image_id": id})
                && t["input"]["import_req"] == json!({"method": {"name": "glance-direct"}})
                && t["expires_at"].is_string(),
            "{b}: task {t}"
        );
        let tid = t["id"].as_str().context("task id")?;
        let res = c
            .req(Method::GET, &format!("/v2/tasks/{tid}"))
            .send()
            .await?;
        ensure!(res.status() == 200, "{b}: task {}", res.status());
        let shown: Value = res.json().await?;
        ensure!(
            shown["status"] == "success"
                && shown["self"] == format!("/v2/tasks/{tid}")
                && shown["schema"] == "/v2/schemas/task",
            "{b}: {shown}"
        );
        let list: Value = c
            .req(Method::GET, "/v2/tasks?status=success")
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            list["tasks"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["id"] == tid && x.get("input").is_none())),
            "{b}: task list {list}"
        );
        let res = c
            .req(Method::DELETE, &format!("/v2/tasks/{tid}"))
            .send()
            .await?;
        ensure!(res.status() == 405, "{b}: task delete {}", res.status());
    }
    Ok(())
}

#[actix_web::test]
async fn import_requests_are_checked_as_glance_checks_them() -> Result<()> {
    for b in backends() {
        let c = TestCloud::with_config(b, "").await?;
        let id = create(
            &c,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
        let cases = [
            (json!({}), 400, "method"),
            (json!({"method": {}}), 400, "method"),
            (
                json!({"method": {"name": "bogus"}}),
                400,
                "Unknown import method",
            ),
            (
                json!({"method": {"name": "copy-image"}}),
                400,
                "not enabled",
            ),
            (
                json!({"method": {"name": "glance-direct"}, "all_stores": "yes"}),
                400,
                "all_stores",
            ),
            (
                json!({"method": {"name": "glance-direct"}, "all_stores_must_succeed": false}),
                400,
                "multiple stores",
            ),
            (json!({"method": {"name": "web-download"}}), 400, "uri"),
            (
                json!({"method": {"name": "web-download", "uri": "http://127.0.0.1:19999/x.img"}}),
                400,
                "filtering",
            ),
            (
                json!({"method": {"name": "web-download", "uri": "file:///etc/passwd"}}),
                400,
                "filtering",
            ),
            // Not staged.
            (json!({"method": {"name": "glance-direct"}}), 409, "staged"),
        ];
        for (body, status, needle) in cases {
            expect_error(import(&c, &id, body.clone()).await?, status, needle)
                .await
                .map_err(|e| e.context(format!("{b}: {body}")))?;
        }
        let res = c
            .req(Method::POST, &format!("/v2/images/{id}/import"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await?;
        ensure!(res.status() == 400, "{b}: malformed {}", res.status());
        ensure!(c.show(&id).await?["status"] == "queued", "{b}: changed");
        expect_error(
            import(
                &c,
                &glance_model::ImageId::new().to_string(),
                json!({"method": {"name": "glance-direct"}}),
            )
            .await?,
            404,
            "",
        )
        .await?;

        // Formats are needed by the import (409), not by the stage.
        let bare = create(&c, json!({"name": "no formats"})).await?;
        let res = stage(&c, &bare, b"abc".to_vec()).await?;
        ensure!(res.status() == 204, "{b}: stage {}", res.status());
        expect_error(
            import(&c, &bare, json!({"method": {"name": "glance-direct"}})).await?,
            409,
            "disk_format",
        )
        .await?;

        // An active image takes no import but copy-image.
        let active = create(
            &c,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
        c.upload(&active, b"data".to_vec()).await?;
        expect_error(
            import(&c, &active, json!({"method": {"name": "glance-direct"}})).await?,
            409,
            "active",
        )
        .await?;
        // A stage is for a queued image only.
        expect_error(stage(&c, &active, b"x".to_vec()).await?, 409, "queued").await?;

        // Discovery.
        let info: Value = c
            .req(Method::GET, "/v2/info/import")
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            info["import-methods"]["value"] == json!(["glance-direct", "web-download"]),
            "{b}: {info}"
        );
    }
    Ok(())
}

#[actix_web::test]
async fn a_stage_over_the_cap_or_cut_off_leaves_nothing() -> Result<()> {
    for b in backends() {
        let c = TestCloud::with_config(b, "[DEFAULT]\nimage_size_cap = 1048576\n").await?;
        let id = create(
            &c,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
        expect_error(stage(&c, &id, bytes(1, 2 << 20)).await?, 413, "").await?;
        let img = c.show(&id).await?;
        ensure!(
            img["status"] == "queued" && img["size"].is_null(),
            "{b}: {img}"
        );
        ensure!(
            list_files(c.staging.path()).is_empty(),
            "{b}: {:?}",
            list_files(c.staging.path())
        );

        // A stager that hangs up mid-body: the image goes back to queued, nothing is staged.
        let addr = c.base.trim_start_matches("http://").to_string();
        let mut sock = std::net::TcpStream::connect(&addr)?;
        write!(
            sock,
            "PUT /v2/images/{id}/stage HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: 900000\r\n\r\n"
        )?;
        sock.write_all(&bytes(2, 300_000))?;
        sock.flush()?;
        eventually(10, || async {
            Ok((c.show(&id).await?["status"] == "uploading").then_some(()))
        })
        .await?;
        drop(sock);
        eventually(10, || async {
            let img = c.show(&id).await?;
            let empty = list_files(c.staging.path()).is_empty();
            Ok((img["status"] == "queued" && empty).then_some(()))
        })
        .await
        .with_context(|| format!("{b}: the cut-off stage was not undone"))?;
        // And the image takes a stage again.
        let res = stage(&c, &id, b"whole".to_vec()).await?;
        ensure!(res.status() == 204, "{b}: restage {}", res.status());
        // Its staged data goes with it when it is deleted.
        ensure!(list_files(c.staging.path()) == [id.clone()], "{b}: staged");
        let res = c
            .req(Method::DELETE, &format!("/v2/images/{id}"))
            .send()
            .await?;
        ensure!(res.status() == 204, "{b}: delete {}", res.status());
        ensure!(
            list_files(c.staging.path()).is_empty(),
            "{b}: the deleted image's staged data stayed: {:?}",
            list_files(c.staging.path())
        );
    }
    Ok(())
}

/// A server whose `/hold` sends half of `data` and the rest only once `release` is set;
/// `/data` sends it whole. Returns its port.
fn serve_held(
    data: Vec<u8>,
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (data, release) = (data.clone(), release.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let held = String::from_utf8_lossy(&head).contains("GET /hold ");
                let half = data.len() / 2;
                let _ = conn.write_all(
                    format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes(),
                );
                let _ = conn.write_all(&data[..half]);
                while held && !release.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let _ = conn.write_all(&data[half..]);
            });
        }
    });
    Ok(port)
}

#[actix_web::test]
async fn imports_wait_for_a_free_slot_of_the_pool() -> Result<()> {
    let data = bytes(8, 1 << 20);
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = serve_held(data.clone(), release.clone())?;
    let c = TestCloud::with_config(
        "sqlite",
        &format!(
            "[wsgi]\ntask_pool_threads = 1\n[import_filtering_opts]\nallowed_ports = {port}\n"
        ),
    )
    .await?;
    let first = create(
        &c,
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await?;
    let second = create(
        &c,
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await?;
    let web = |path: &str| {
        json!({"method": {"name": "web-download",
                                             "uri": format!("http://127.0.0.1:{port}{path}")}})
    };
    let res = import(&c, &first, web("/hold")).await?;
    ensure!(res.status() == 202, "first {}", res.status());
    // The first import holds the one slot, half its data staged.
    eventually(10, || async {
        Ok(list_files(c.staging.path())
            .iter()
            .any(|f| f.contains(&first))
            .then_some(()))
    })
    .await?;
    let res = import(&c, &second, web("/data")).await?;
    ensure!(res.status() == 202, "second {}", res.status());
    // The second, whose data is there whole, waits: nothing of it staged, still importing.
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ensure!(
            !list_files(c.staging.path())
                .iter()
                .any(|f| f.contains(&second)),
            "the second import ran beside the first with task_pool_threads = 1"
        );
        ensure!(c.show(&second).await?["status"] == "importing", "second");
    }
    release.store(true, std::sync::atomic::Ordering::SeqCst);
    for id in [&first, &second] {
        let img = settled(&c, id).await?;
        ensure!(
            img["status"] == "active" && img["checksum"] == md5_hex(&data),
            "{img}"
        );
    }
    Ok(())
}

#[actix_web::test]
async fn web_download_fetches_through_the_filters_and_reverts_when_it_fails() -> Result<()> {
    let data = bytes(77, 2 * 1024 * 1024 + 5);
    let port = serve_http(data.clone())?;
    // A second server on a port the filters do not allow, for the redirect.
    let other = serve_http(data.clone())?;
    for b in backends() {
        let c = TestCloud::with_config(
            b,
            &format!("[import_filtering_opts]\nallowed_ports = {port}\n"),
        )
        .await?;
        let id = create(
            &c,
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
        let uri = format!("http://127.0.0.1:{port}/data");
        let res = import(
            &c,
            &id,
            json!({"method": {"name": "web-download", "uri": uri}}),
        )
        .await?;
        ensure!(res.status() == 202, "{b}: import {}", res.status());
        let img = settled(&c, &id).await?;
        ensure!(
            img["status"] == "active"
                && img["checksum"] == md5_hex(&data)
                && img["size"] == data.len(),
            "{b}: {img}"
        );
        ensure!(list_files(c.staging.path()).is_empty(), "{b}: staging left");
        let t = &tasks_of(&c, &id).await?[0];
        ensure!(t["status"] == "success", "{b}: {t}");

        // A redirect to a port the filters refuse: the import fails, the image is queued
        // again, the task says why, and nothing is left in the staging area or the store.
        for (path, needle) in [
            (format!("/to/{other}"), "import filters"),
            ("/missing".to_string(), "404"),
        ] {
            let id = create(
                &c,
                json!({"disk_format": "raw", "container_format": "bare"}),
            )
            .await?;
            let uri = format!("http://127.0.0.1:{port}{path}");
            let res = import(
                &c,
                &id,
                json!({"method": {"name": "web-download", "uri": uri}}),
            )
            .await?;
            ensure!(res.status() == 202, "{b}: import {}", res.status());
            let img = settled(&c, &id).await?;
            ensure!(
                img["status"] == "queued" && img.get("os_glance_import_task").is_none(),
                "{b}: {path}: {img}"
            );
            let t = &tasks_of(&c, &id).await?[0];
            ensure!(
                t["status"] == "failure" && t["message"].as_str().unwrap_or("").contains(needle),
                "{b}: {path}: task {t}"
            );
            ensure!(list_files(c.staging.path()).is_empty(), "{b}: staging left");
            // A failed import releases the lock: the image takes another.
            let uri = format!("http://127.0.0.1:{port}/data");
            let res = import(
                &c,
                &id,
                json!({"method": {"name": "web-download", "uri": uri}}),
            )
            .await?;
            ensure!(res.status() == 202, "{b}: again {}", res.status());
            ensure!(settled(&c, &id).await?["status"] == "active", "{b}: again");
        }
    }
    Ok(())
}

#[actix_web::test]
async fn the_tasks_api_is_for_admins_and_image_tasks_for_those_who_see_the_image() -> Result<()> {
    let c = TestCloud::with_config("sqlite", "[paste_deploy]\nflavor = trusted-auth\n").await?;
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let res = c
        .as_(A, "member,reader", Method::POST, "/v2/images")
        .json(&json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?;
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let res = c
        .as_(
            A,
            "member,reader",
            Method::PUT,
            &format!("/v2/images/{id}/stage"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(b"abc".to_vec())
        .send()
        .await?;
    ensure!(res.status() == 204, "stage {}", res.status());
    let res = c
        .as_(
            A,
            "member,reader",
            Method::POST,
            &format!("/v2/images/{id}/import"),
        )
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await?;
    ensure!(res.status() == 202, "import {}", res.status());
    eventually(30, || async {
        let v: Value = c
            .as_(A, "member,reader", Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .json()
            .await?;
        Ok((v["status"] == "active").then_some(()))
    })
    .await?;
    // The owner reads its image's tasks; another project does not see the image (404).
    let res = c
        .as_(
            A,
            "member,reader",
            Method::GET,
            &format!("/v2/images/{id}/tasks"),
        )
        .send()
        .await?;
    ensure!(res.status() == 200, "owner image tasks {}", res.status());
    let tasks: Value = res.json().await?;
    ensure!(tasks["tasks"][0]["owner"] == A, "{tasks}");
    expect_error(
        c.as_(
            B,
            "member,reader",
            Method::GET,
            &format!("/v2/images/{id}/tasks"),
        )
        .send()
        .await?,
        404,
        "",
    )
    .await?;
    // The tasks API: admins only (tasks_api_access).
    expect_error(
        c.as_(A, "member,reader", Method::GET, "/v2/tasks")
            .send()
            .await?,
        403,
        "tasks_api_access",
    )
    .await?;
    let tid = tasks["tasks"][0]["id"].as_str().context("task id")?;
    expect_error(
        c.as_(A, "member,reader", Method::GET, &format!("/v2/tasks/{tid}"))
            .send()
            .await?,
        403,
        "tasks_api_access",
    )
    .await?;
    let res = c.as_(B, "admin", Method::GET, "/v2/tasks").send().await?;
    ensure!(res.status() == 200, "admin list {}", res.status());
    let list: Value = res.json().await?;
    ensure!(
        list["tasks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == tid)),
        "{list}"
    );
    expect_error(
        c.as_(B, "admin", Method::GET, "/v2/tasks?status=bogus")
            .send()
            .await?,
        400,
        "status",
    )
    .await?;
    Ok(())
}

#[actix_web::test]
async fn multi_store_imports_go_to_the_store_asked_for() -> Result<()> {
    let second = tempfile::tempdir()?;
    let conf = format!(
        "[DEFAULT]\nenabled_backends = fast:file, slow:file\n\
         [glance_store]\ndefault_backend = fast\n\
         [fast]\nfilesystem_store_datadir = {{datadir}}\n\
         [slow]\nfilesystem_store_datadir = {}\n",
        second.path().display()
    );
    let c = TestCloud::with_config("sqlite", &conf).await?;
    let id = create(
        &c,
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await?;
    let res = stage(&c, &id, b"to the slow store".to_vec()).await?;
    ensure!(res.status() == 204, "stage {}", res.status());
    let gd = |extra: Value| {
        let mut body = json!({"method": {"name": "glance-direct"}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    expect_error(
        import(&c, &id, gd(json!({"stores": ["nowhere"]}))).await?,
        409,
        "nowhere",
    )
    .await?;
    expect_error(
        import(&c, &id, gd(json!({"stores": ["fast", "slow"]}))).await?,
        400,
        "more than one store",
    )
    .await?;
    let res = c
        .req(Method::POST, &format!("/v2/images/{id}/import"))
        .header("x-image-meta-store", "slow")
        .json(&gd(json!({"stores": ["slow"]})))
        .send()
        .await?;
    expect_error(res, 400, "not both").await?;
    let res = import(&c, &id, gd(json!({"stores": ["slow"]}))).await?;
    ensure!(res.status() == 202, "import {}", res.status());
    let img = settled(&c, &id).await?;
    ensure!(
        img["status"] == "active" && img["stores"] == "slow",
        "{img}"
    );
    ensure!(
        list_files(second.path()) == [id.clone()] && c.files().is_empty(),
        "slow {:?}, fast {:?}",
        list_files(second.path()),
        c.files()
    );
    let t = &tasks_of(&c, &id).await?[0];
    ensure!(t["input"]["backend"] == json!(["slow"]), "{t}");
    Ok(())
}

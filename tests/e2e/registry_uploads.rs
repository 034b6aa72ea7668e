//! The upload lease: start, heartbeat, complete, abort, and recovery of an image whose
//! uploader stopped renewing (the "stuck in saving" failure Glance has).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, expect_error, first_n};

async fn start(r: &TestRegistry, id: &str, ttl: u32) -> Result<Value> {
    let res = r
        .req(
            Method::POST,
            &format!("/v1/images/{id}/upload"),
            "p",
            "member",
        )
        .json(&json!({"node": "api-1:9292", "ttl_secs": ttl}))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 201, "start upload -> {}", res.status());
    Ok(res.json().await?)
}

/// A new raw/bare image with an upload started on it (lease TTL 30 s): its id and lease.
async fn uploading(r: &TestRegistry) -> Result<(String, Value)> {
    let img = r
        .create(
            "p",
            json!({"disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    let id = img["id"]
        .as_str()
        .context("created image has no id")?
        .to_string();
    let lease = start(r, &id, 30).await?;
    Ok((id, lease))
}

#[actix_web::test]
async fn lease_lifecycle() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let no_formats = r.create("p", json!({})).await?;
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{}/upload", no_formats["id"].as_str().unwrap()),
                "p",
                "member",
            )
            .json(&json!({"node": "n", "ttl_secs": 5}))
            .send()
            .await?;
        expect_error(res, 400, "disk_format and container_format").await?;

        let (id, lease) = uploading(&r).await?;
        let id = id.as_str();
        let token = lease["token"].as_str().unwrap();
        let res = r
            .req(
                Method::PUT,
                &format!("/v1/images/{id}/upload"),
                "p",
                "member",
            )
            .json(&json!({"token": token, "ttl_secs": 60}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}: heartbeat");
        let res = r
            .req(
                Method::PUT,
                &format!("/v1/images/{id}/upload"),
                "p",
                "member",
            )
            .json(&json!({"token": "wrong"}))
            .send()
            .await?;
        expect_error(res, 410, "lease").await?;
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/upload/recover"),
                "p",
                "member",
            )
            .send()
            .await?;
        expect_error(res, 409, "alive").await?;
        let done = json!({"token": token, "size": 3, "checksum": "900150983cd24fb0d6963f7d28e17f72",
            "os_hash_algo": "sha512", "os_hash_value": "ddaf35a1", "location": {"url": format!("file:///var/lib/glance/images/{id}"), "metadata": {"store": "file"}}});
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/upload/complete"),
                "p",
                "member",
            )
            .json(&done)
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}: complete");
        let active: Value = res.json().await?;
        assert_eq!(active["status"], "active", "{b}");
        assert_eq!(active["size"], 3);
        assert_eq!(active["locations"][0]["metadata"]["store"], "file", "{b}");
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/upload/complete"),
                "p",
                "member",
            )
            .json(&done)
            .send()
            .await?;
        expect_error(res, 410, "lease").await?;

        // Abort returns the image to queued with sizes cleared.
        let (id, lease) = uploading(&r).await?;
        let id = id.as_str();
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/upload/abort"),
                "p",
                "member",
            )
            .json(&json!({"token": lease["token"]}))
            .send()
            .await?;
        let back: Value = res.json().await?;
        assert_eq!(back["status"], "queued", "{b}");
        assert_eq!(back["size"], Value::Null);

        // Deleting during an upload takes the lease away: completion is refused as gone.
        let (id, lease) = uploading(&r).await?;
        let id = id.as_str();
        assert_eq!(
            r.req(Method::DELETE, &format!("/v1/images/{id}"), "p", "member")
                .send()
                .await?
                .status(),
            200
        );
        let mut done2 = done.clone();
        done2["token"] = lease["token"].clone();
        let res = r
            .req(
                Method::POST,
                &format!("/v1/images/{id}/upload/complete"),
                "p",
                "member",
            )
            .json(&done2)
            .send()
            .await?;
        expect_error(res, 410, "lease").await?;

        // An update that moves the image out of `saving` takes the lease away too, so a
        // later delete has none to drop.
        let (id, lease) = uploading(&r).await?;
        let id = id.as_str();
        let res = r
            .req(Method::PATCH, &format!("/v1/images/{id}"), "p", "member")
            .json(&json!({"status": "killed"}))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}: saving -> killed");
        let res = r
            .req(
                Method::PUT,
                &format!("/v1/images/{id}/upload"),
                "p",
                "member",
            )
            .json(&json!({"token": lease["token"], "ttl_secs": 60}))
            .send()
            .await?;
        expect_error(res, 410, "lease").await?;
        assert_eq!(
            r.req(Method::DELETE, &format!("/v1/images/{id}"), "p", "member")
                .send()
                .await?
                .status(),
            200
        );
        // Completed, aborted, deleted while saving, killed: no lease is left.
        let left = first_n(
            &mut r.db.conn()?,
            "SELECT COUNT(*) AS n FROM glance_upload_leases",
        )?;
        assert_eq!(left, Some(0), "{b}: leases left behind");
        r.stop().await;
    }
    Ok(())
}

#[actix_web::test]
async fn expired_lease_is_found_and_recovered() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create(
                "p",
                json!({"disk_format": "raw", "container_format": "bare"}),
            )
            .await?;
        let id = img["id"].as_str().unwrap();
        start(&r, id, 1).await?;
        // The holder "dies": no heartbeat. Poll until the registry reports the lease expired.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let list: Value = r
                .admin(Method::GET, "/v1/leases/expired")
                .send()
                .await?
                .json()
                .await?;
            if list["leases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["image_id"] == id)
            {
                assert_eq!(list["leases"][0]["node"], "api-1:9292");
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{b}: lease never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let res = r
            .admin(Method::POST, &format!("/v1/images/{id}/upload/recover"))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{b}");
        let img: Value = res.json().await?;
        assert_eq!(img["status"], "queued", "{b}");
        let list: Value = r
            .admin(Method::GET, "/v1/leases/expired")
            .send()
            .await?
            .json()
            .await?;
        assert!(
            list["leases"].as_array().unwrap().is_empty(),
            "{b}: lease left behind"
        );
        // The image can be uploaded again.
        start(&r, id, 30).await?;
        r.stop().await;
    }
    Ok(())
}

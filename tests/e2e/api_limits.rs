//! Keystone unified limits (`use_keystone_limits`, `[oslo_limit]`) against the real Keystone
//! of scripts/keystone.sh (`GLANCE_TEST_KEYSTONE`): registered and project limits set through
//! Keystone's API, then enforced by glance-api on create, upload, stage and import with 413, and
//! reported by `GET /v2/info/usage`; on every backend.

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::{TestCloud, bytes};
use crate::harness::{backends, expect_error};
use crate::keystone::Ks;

/// Makes `name`'s registered limit (`project: None`) or `project`'s limit `n`, whether or not
/// one exists already (the Keystone outlives test runs).
async fn set_limit(ks: &Ks, admin: &str, project: Option<&str>, name: &str, n: i64) -> Result<()> {
    let info = ks.info();
    let v3 = info["auth_url"].as_str().context("auth_url")?;
    let service = info["image_service"]["service_id"]
        .as_str()
        .context("service_id")?;
    let region = info["image_service"]["region"].as_str().context("region")?;
    let http = reqwest::Client::new();
    let (kind, one, field) = match project {
        None => ("registered_limits", "registered_limit", "default_limit"),
        Some(_) => ("limits", "limit", "resource_limit"),
    };
    let mut query = format!("service_id={service}&region_id={region}&resource_name={name}");
    if let Some(p) = project {
        query.push_str(&format!("&project_id={p}"));
    }
    let found: Value = http
        .get(format!("{v3}/{kind}?{query}"))
        .header("x-auth-token", admin)
        .send()
        .await?
        .json()
        .await?;
    let existing = found[kind]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| project.is_none() || l["project_id"].as_str() == project);
    if existing.is_some_and(|l| l[field].as_i64() == Some(n)) {
        // Already so (a registered limit with project limits under it cannot be changed).
        return Ok(());
    }
    let res = match existing.and_then(|l| l["id"].as_str()) {
        Some(id) => {
            http.patch(format!("{v3}/{kind}/{id}"))
                .header("x-auth-token", admin)
                .json(&json!({ one: { field: n } }))
                .send()
                .await?
        }
        None => {
            let mut body = json!({"service_id": service, "region_id": region,
                                  "resource_name": name, field: n});
            if let Some(p) = project {
                body["project_id"] = json!(p);
            }
            http.post(format!("{v3}/{kind}"))
                .header("x-auth-token", admin)
                .json(&json!({ kind: [body] }))
                .send()
                .await?
        }
    };
    if !res.status().is_success() {
        bail!(
            "setting {kind} {name}: {} {}",
            res.status(),
            res.text().await?
        );
    }
    Ok(())
}

#[actix_web::test]
async fn unified_limits_come_from_keystone() -> Result<()> {
    let Some(ks) = Ks::load()? else {
        return Ok(());
    };
    let admin = ks
        .issue_scoped("admin", json!({"system": {"all": true}}))
        .await?;
    for (name, n) in [
        ("image_size_total", 1000),
        ("image_stage_total", 1000),
        ("image_count_total", 100),
        ("image_count_uploading", 100),
    ] {
        set_limit(&ks, &admin, None, name, n).await?;
    }
    let (alpha, beta) = (ks.project("alpha"), ks.project("beta"));
    set_limit(&ks, &admin, Some(&alpha), "image_count_total", 2).await?;
    set_limit(&ks, &admin, Some(&alpha), "image_size_total", 1).await?;
    set_limit(&ks, &admin, Some(&beta), "image_count_uploading", 0).await?;
    set_limit(&ks, &admin, Some(&beta), "image_stage_total", 1).await?;
    set_limit(&ks, &admin, Some(&beta), "image_size_total", 0).await?;

    let info = ks.info();
    let conf = format!(
        "{}[DEFAULT]\nuse_keystone_limits = True\n[oslo_limit]\nauth_url = {}\n\
         username = admin\npassword = {}\nuser_domain_name = Default\nsystem_scope = all\n\
         endpoint_id = {}\n",
        ks.conf(),
        info["auth_url"].as_str().unwrap_or_default(),
        info["admin"]["password"].as_str().unwrap_or_default(),
        info["image_service"]["endpoints"]["public"]
            .as_str()
            .unwrap_or_default(),
    );
    for backend in backends() {
        let c = TestCloud::with_config(backend, &conf).await?;
        let req = |token: &str, method: Method, path: &str| {
            c.req(method, path).header("x-auth-token", token)
        };
        let a = ks.token("alpha-member").await?;
        let create = || {
            req(&a, Method::POST, "/v2/images")
                .json(&json!({"name": "limited", "disk_format": "raw",
                              "container_format": "bare"}))
                .send()
        };
        // image_count_total = 2 for alpha: a third image is over it.
        let first: Value = create().await?.json().await?;
        let second: Value = create().await?.json().await?;
        let body = expect_error(create().await?, 413, "image_count_total").await?;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("limit of 2 with usage 2 and delta 1"),
            "{backend}: {body}"
        );

        // image_size_total = 1 MiB: a declared 2 MiB is over it before a byte is stored; 1.5
        // MiB is not (usage 0 + delta 1); after it (usage 1 MiB) a declared 1 MiB is.
        let upload = |id: &Value, data: Vec<u8>| {
            let id = id["id"].as_str().unwrap_or_default().to_string();
            req(&a, Method::PUT, &format!("/v2/images/{id}/file"))
                .header("content-type", "application/octet-stream")
                .body(data)
                .send()
        };
        let res = upload(&first, bytes(1, 2 << 20)).await?;
        expect_error(res, 413, "image_size_total").await?;
        let res = upload(&first, bytes(2, (3 << 20) / 2)).await?;
        assert_eq!(res.status(), 204, "{backend}: {}", res.text().await?);
        let res = upload(&second, bytes(3, 1 << 20)).await?;
        expect_error(res, 413, "image_size_total is over its limit of 1").await?;

        let usage: Value = req(&a, Method::GET, "/v2/info/usage")
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(
            usage,
            json!({"usage": {
                "image_size_total": {"limit": 1, "usage": 1},
                "image_stage_total": {"limit": 1000, "usage": 0},
                "image_count_total": {"limit": 2, "usage": 2},
                "image_count_uploading": {"limit": 100, "usage": 0},
            }}),
            "{backend}"
        );

        // image_count_uploading = 0 for beta: an upload is refused once the image is saving,
        // and the image is queued again.
        let b = ks.token("beta-member").await?;
        let img: Value = req(&b, Method::POST, "/v2/images")
            .json(&json!({"name": "b", "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await?
            .json()
            .await?;
        let id = img["id"].as_str().context("id")?.to_string();
        let res = req(&b, Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .body(bytes(4, 1024))
            .send()
            .await?;
        expect_error(res, 413, "image_count_uploading").await?;
        let status = crate::cloud::eventually(10, || async {
            let img: Value = req(&b, Method::GET, &format!("/v2/images/{id}"))
                .send()
                .await?
                .json()
                .await?;
            Ok((img["status"] == "queued").then_some(()))
        })
        .await;
        assert!(
            status.is_ok(),
            "{backend}: the refused upload left the image saving"
        );

        // Stage and import are checked as Glance checks them, with delta 0: over only once the
        // usage alone passes the limit. Beta: image_stage_total 1 MiB, image_size_total 0.
        let new_image = || async {
            let img: Value = req(&b, Method::POST, "/v2/images")
                .json(&json!({"name": "s", "disk_format": "raw", "container_format": "bare"}))
                .send()
                .await?
                .json()
                .await?;
            img["id"]
                .as_str()
                .map(str::to_string)
                .context("no id in the create's answer")
        };
        let stage = |id: &str, seed: u64| {
            req(&b, Method::PUT, &format!("/v2/images/{id}/stage"))
                .header("content-type", "application/octet-stream")
                .body(bytes(seed, 2 << 20))
                .send()
        };
        let import = |id: &str| {
            req(&b, Method::POST, &format!("/v2/images/{id}/import"))
                .json(&json!({"method": {"name": "glance-direct"}}))
                .send()
        };
        let (one, two) = (new_image().await?, new_image().await?);
        assert_eq!(
            stage(&one, 5).await?.status(),
            204,
            "{backend}: first stage"
        );
        // 2 MiB staged is over the 1 MiB: the next stage is refused before a byte is kept.
        let res = stage(&two, 6).await?;
        expect_error(
            res,
            413,
            "image_stage_total is over its limit of 1 with usage 2",
        )
        .await?;
        // No image data stored yet (usage 0 of 0): the import goes ahead.
        let res = import(&one).await?;
        assert_eq!(res.status(), 202, "{backend}: {}", res.text().await?);
        let active = crate::cloud::eventually(30, || async {
            let img: Value = req(&b, Method::GET, &format!("/v2/images/{one}"))
                .send()
                .await?
                .json()
                .await?;
            Ok((img["status"] == "active").then_some(()))
        })
        .await;
        assert!(active.is_ok(), "{backend}: the import did not finish");
        // Its 2 MiB are image data now, no longer staged: a stage is allowed again, and the
        // import after it is over image_size_total.
        assert_eq!(
            stage(&two, 6).await?.status(),
            204,
            "{backend}: second stage"
        );
        let res = import(&two).await?;
        expect_error(
            res,
            413,
            "image_size_total is over its limit of 0 with usage 2",
        )
        .await?;
    }
    Ok(())
}

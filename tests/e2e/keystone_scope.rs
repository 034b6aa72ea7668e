//! Token scope against the real Keystone (see keystone.rs): Glance 33's image rules are
//! project-scoped and always enforced, so the cloud admin's system-scoped token
//! (`"scope": {"system": {"all": true}}`) gets 404 on an image and 403 to list or create, even
//! with `[oslo_policy] enforce_scope = false`; the same user's project-scoped token works.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::keystone::{Cloud, Ks, patch, status};

#[actix_web::test]
async fn system_scoped_admin_tokens_are_refused_on_image_calls() -> Result<()> {
    let Some(ks) = Ks::load()? else {
        return Ok(());
    };
    let c = Cloud::start(&ks, "[oslo_policy]\nenforce_scope = false\n").await?;
    let member = ks.token("alpha-member").await?;
    let res = c
        .req(Method::POST, "/v2/images", &member)
        .json(&json!({"name": "alpha-img", "visibility": "community",
            "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = format!("/v2/images/{id}");

    let system = ks
        .issue_scoped("admin", json!({"system": {"all": true}}))
        .await?;
    assert_eq!(status(c.req(Method::GET, &image, &system)).await?, 404);
    let res = c.req(Method::GET, "/v2/images", &system).send().await?;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("project-scoped"),
        "{body}"
    );
    let create = c
        .req(Method::POST, "/v2/images", &system)
        .json(&json!({"name": "system-img"}));
    assert_eq!(status(create).await?, 403);
    let rename = json!([{"op": "replace", "path": "/name", "value": "system"}]);
    assert_eq!(status(patch(&c, &id, &system, rename.clone())).await?, 404);
    let upload = c
        .req(Method::PUT, &format!("{image}/file"), &system)
        .header("content-type", "application/octet-stream")
        .body("data");
    assert_eq!(status(upload).await?, 404);
    let tag = c.req(Method::PUT, &format!("{image}/tags/t"), &system);
    assert_eq!(status(tag).await?, 404);
    assert_eq!(status(c.req(Method::DELETE, &image, &system)).await?, 404);

    // Nothing changed; the same admin scoped to a project may do what admins do.
    let shown: Value = c
        .req(Method::GET, &image, &member)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (shown["name"].as_str(), shown["tags"].clone()),
        (Some("alpha-img"), json!([]))
    );
    let project_admin = ks.token("admin").await?;
    assert_eq!(
        status(c.req(Method::GET, &image, &project_admin)).await?,
        200
    );
    assert_eq!(status(patch(&c, &id, &project_admin, rename)).await?, 200);
    assert_eq!(
        status(c.req(Method::DELETE, &image, &project_admin)).await?,
        204
    );
    Ok(())
}

//! The registry's import state (issue 30), on every backend: the import lock holds against a
//! second import, an importer whose lease runs out (its glance-api died) is recovered: the
//! image goes back to `queued`, the lock is released, the task fails saying why; a stage
//! whose lease runs out is recovered the same way; and the task reads hide another
//! project's tasks.

use anyhow::Result;
use diesel::connection::SimpleConnection;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends};

const LEASE: &str = r#"{"node": "api-1:9292", "ttl_secs": 30}"#;

async fn send(req: reqwest::RequestBuilder, want: u16, what: &str) -> Result<Value> {
    let res = req.send().await?;
    let got = res.status().as_u16();
    let text = res.text().await?;
    anyhow::ensure!(got == want, "{what}: {got}, not {want}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn expire(r: &TestRegistry, id: &str) -> Result<()> {
    r.db.conn()?.batch_execute(&format!(
        "UPDATE glance_upload_leases SET expires_at = '2000-01-01 00:00:00' WHERE image_id = '{id}'"
    ))?;
    Ok(())
}

#[actix_web::test]
async fn the_import_lock_holds_and_a_dead_importer_is_recovered() -> Result<()> {
    let lease: Value = serde_json::from_str(LEASE)?;
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create(
                "p",
                json!({"disk_format": "raw", "container_format": "bare"}),
            )
            .await?;
        let id = img["id"].as_str().unwrap_or_default().to_string();
        let as_p = |m: Method, path: String| r.req(m, &path, "p", "member");
        let start = json!({"lease": lease, "method": "web-download", "input": {"x": 1}});
        let started = send(
            as_p(Method::POST, format!("/v1/images/{id}/import")).json(&start),
            201,
            &format!("{b}: start"),
        )
        .await?;
        let task = started["task"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Refused while it runs: the status (no longer queued) and the lock.
        send(
            as_p(Method::POST, format!("/v1/images/{id}/import")).json(&start),
            409,
            &format!("{b}: second start"),
        )
        .await?;
        let shown = send(as_p(Method::GET, format!("/v1/images/{id}")), 200, b).await?;
        assert_eq!(shown["status"], "importing", "{b}");
        assert_eq!(
            shown["properties"]["os_glance_import_task"], task,
            "{b}: {shown}"
        );

        // Progress goes to the task's message with the heartbeat.
        let token = started["lease"]["token"].clone();
        send(
            as_p(Method::PUT, format!("/v1/images/{id}/upload"))
                .json(&json!({"token": token, "ttl_secs": 30, "message": "Copied 7 MiB"})),
            200,
            &format!("{b}: heartbeat"),
        )
        .await?;
        let t = send(as_p(Method::GET, format!("/v1/tasks/{task}")), 200, b).await?;
        assert_eq!(t["message"], "Copied 7 MiB", "{b}: {t}");
        assert_eq!(t["input"], json!({"x": 1}), "{b}: {t}");
        // Another project sees neither the task nor the image's tasks.
        send(
            r.req(Method::GET, &format!("/v1/tasks/{task}"), "q", "member"),
            404,
            &format!("{b}: other project"),
        )
        .await?;
        let listed = send(
            r.req(Method::GET, "/v1/tasks", "q", "member"),
            200,
            &format!("{b}: other list"),
        )
        .await?;
        assert_eq!(listed["tasks"], json!([]), "{b}");

        // The importing node dies: its lease runs out, and recovery undoes the import.
        expire(&r, &id)?;
        let back = send(
            r.admin(Method::POST, &format!("/v1/images/{id}/upload/recover")),
            200,
            &format!("{b}: recover"),
        )
        .await?;
        assert_eq!(back["status"], "queued", "{b}: {back}");
        assert!(
            back["properties"].get("os_glance_import_task").is_none(),
            "{b}: {back}"
        );
        let t = send(as_p(Method::GET, format!("/v1/tasks/{task}")), 200, b).await?;
        assert_eq!(t["status"], "failure", "{b}: {t}");
        assert!(
            t["message"].as_str().unwrap_or("").contains("api-1:9292"),
            "{b}: {t}"
        );
        assert!(t["expires_at"].is_string(), "{b}: {t}");
        // The image takes a new import.
        send(
            as_p(Method::POST, format!("/v1/images/{id}/import")).json(&start),
            201,
            &format!("{b}: restart"),
        )
        .await?;
        let tasks = send(as_p(Method::GET, format!("/v1/images/{id}/tasks")), 200, b).await?;
        assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(2), "{b}");

        // A stage whose node died is recovered to queued too.
        let img = r.create("p", json!({"name": "staged"})).await?;
        let sid = img["id"].as_str().unwrap_or_default().to_string();
        send(
            as_p(Method::POST, format!("/v1/images/{sid}/stage")).json(&lease),
            201,
            &format!("{b}: stage"),
        )
        .await?;
        // (A stage that ended records its size and host, and releases its lease.)
        let done_img = r.create("p", json!({"name": "done"})).await?;
        let did = done_img["id"].as_str().unwrap_or_default().to_string();
        let l = send(
            as_p(Method::POST, format!("/v1/images/{did}/stage")).json(&lease),
            201,
            &format!("{b}: stage 2"),
        )
        .await?;
        let up = send(
            as_p(Method::POST, format!("/v1/images/{did}/stage/complete"))
                .json(&json!({"token": l["token"], "size": 5, "stage_host": "http://node-1:9292"})),
            200,
            &format!("{b}: stage complete"),
        )
        .await?;
        assert_eq!(up["status"], "uploading", "{b}: {up}");
        assert_eq!(up["size"], 5, "{b}: {up}");
        assert_eq!(
            up["properties"]["os_glance_stage_host"], "http://node-1:9292",
            "{b}: {up}"
        );
        let expired = send(r.admin(Method::GET, "/v1/leases/expired"), 200, b).await?;
        let leases = expired["leases"].as_array().cloned().unwrap_or_default();
        assert!(
            !leases.iter().any(|l| l["image_id"] == did),
            "{b}: {leases:?}"
        );
        expire(&r, &sid)?;
        let back = send(
            r.admin(Method::POST, &format!("/v1/images/{sid}/upload/recover")),
            200,
            &format!("{b}: recover stage"),
        )
        .await?;
        assert_eq!(back["status"], "queued", "{b}: {back}");
        r.stop().await;
    }
    Ok(())
}

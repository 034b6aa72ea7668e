//! Compare-and-swap status changes: of two concurrent callers exactly one wins.

use anyhow::Result;
use reqwest::Method;
use serde_json::json;

use crate::harness::{TestRegistry, backends};

#[actix_web::test]
async fn two_concurrent_uploads_exactly_one_wins() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        for round in 0..10 {
            let img = r
                .create(
                    "p",
                    json!({"disk_format": "raw", "container_format": "bare"}),
                )
                .await?;
            let id = img["id"].as_str().unwrap().to_string();
            let start = |node: &'static str| {
                r.req(
                    Method::POST,
                    &format!("/v1/images/{id}/upload"),
                    "p",
                    "member",
                )
                .json(&json!({"node": node, "ttl_secs": 30}))
                .send()
            };
            let (x, y) = tokio::join!(start("node-1"), start("node-2"));
            let mut codes = [x?.status().as_u16(), y?.status().as_u16()];
            codes.sort();
            assert_eq!(codes, [201, 409], "{b} round {round}");
            let now: serde_json::Value = r
                .admin(Method::GET, &format!("/v1/images/{id}"))
                .send()
                .await?
                .json()
                .await?;
            assert_eq!(now["status"], "saving", "{b}");
        }
        for round in 0..10 {
            let img = r
                .create(
                    "p",
                    json!({"disk_format": "raw", "container_format": "bare"}),
                )
                .await?;
            let id = img["id"].as_str().unwrap().to_string();
            let go = || {
                r.admin(Method::PATCH, &format!("/v1/images/{id}"))
                    .json(&json!({"from_state": "queued", "status": "importing"}))
                    .send()
            };
            let (x, y) = tokio::join!(go(), go());
            let mut codes = [x?.status().as_u16(), y?.status().as_u16()];
            codes.sort();
            assert_eq!(codes, [200, 409], "{b} round {round}");
        }
        r.stop().await;
    }
    Ok(())
}

//! Bad input gets a 4xx JSON error naming the problem, and writes nothing.

use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{TestRegistry, backends, expect_error};

async fn image_count(r: &TestRegistry) -> Result<usize> {
    let body: Value = r
        .admin(Method::GET, "/v1/images?limit=1000&visibility=all")
        .send()
        .await?
        .json()
        .await?;
    Ok(body["images"].as_array().map_or(0, Vec::len))
}

#[actix_web::test]
async fn bad_input_is_refused_cleanly() -> Result<()> {
    for b in backends() {
        let r = TestRegistry::start(b).await?;
        let img = r
            .create("p", json!({"name": "keep", "properties": {"k": "v"}}))
            .await?;
        let id = img["id"].as_str().unwrap();
        let before = image_count(&r).await?;
        let post = |body: &str| {
            r.req(Method::POST, "/v1/images", "p", "member")
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        expect_error(post("{\"name\": ").await?, 400, "malformed").await?;
        expect_error(post("[1,2]").await?, 400, "malformed").await?;
        expect_error(post("{\"nmae\": \"x\"}").await?, 400, "nmae").await?;
        expect_error(
            post(&json!({"name": "n".repeat(256)}).to_string()).await?,
            400,
            "name is too long",
        )
        .await?;
        expect_error(
            post(&json!({"properties": {"k".repeat(256): "v"}}).to_string()).await?,
            400,
            "property name is too long",
        )
        .await?;
        expect_error(
            post(&json!({"min_ram": -1}).to_string()).await?,
            400,
            "min_ram",
        )
        .await?;
        expect_error(
            post(&json!({"visibility": "everyone"}).to_string()).await?,
            400,
            "everyone",
        )
        .await?;
        expect_error(
            post(&json!({"tags": ["t".repeat(256)]}).to_string()).await?,
            400,
            "tag is too long",
        )
        .await?;
        expect_error(
            post(&json!({"id": "not-a-uuid"}).to_string()).await?,
            400,
            "",
        )
        .await?;
        expect_error(
            post(&json!({"properties": {"os_glance_x": "v"}}).to_string()).await?,
            403,
            "reserved",
        )
        .await?;
        let res = r
            .req(Method::POST, "/v1/images", "p", "member")
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await?;
        expect_error(res, 400, "").await?;

        let res = r
            .req(Method::GET, "/v1/images/not-a-uuid", "p", "member")
            .send()
            .await?;
        expect_error(res, 400, "not a valid image id").await?;
        for (q, needle) in [
            ("sort_key=colour", "colour"),
            ("limit=-1", "limit"),
            ("limit=abc", "limit"),
            ("marker=bogus", "marker"),
            ("visibility=everyone", "visibility"),
            ("sort=name:sideways", "sideways"),
            ("created_at=soon:2020-01-01T00:00:00Z", "soon"),
        ] {
            let res = r
                .req(Method::GET, &format!("/v1/images?{q}"), "p", "reader")
                .send()
                .await?;
            expect_error(res, 400, needle).await?;
        }
        // A failing update changes nothing, not even the parts that were valid.
        let res = r.req(Method::PATCH, &format!("/v1/images/{id}"), "p", "member")
            .json(&json!({"name": "changed", "set_properties": {"a": "b"}, "remove_properties": ["missing"]}))
            .send().await?;
        expect_error(res, 409, "missing").await?;
        let now: Value = r
            .admin(Method::GET, &format!("/v1/images/{id}"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(now["name"], "keep", "{b}: partial update leaked");
        assert_eq!(now["properties"], json!({"k": "v"}), "{b}");
        let res = r
            .req(Method::PATCH, &format!("/v1/images/{id}"), "p", "member")
            .json(&json!({"status": "frozen"}))
            .send()
            .await?;
        expect_error(res, 400, "").await?;
        let res = r
            .req(Method::PATCH, &format!("/v1/images/{id}"), "p", "member")
            .json(&json!({"status": "active"}))
            .send()
            .await?;
        expect_error(res, 400, "disk_format").await?;
        let res = r
            .req(Method::GET, "/v1/nothing-here", "p", "member")
            .send()
            .await?;
        expect_error(res, 404, "").await?;
        let res = r
            .req(Method::PUT, "/v1/images", "p", "member")
            .send()
            .await?;
        assert_eq!(
            res.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some("GET, POST")
        );
        expect_error(res, 405, "").await?;
        assert_eq!(
            image_count(&r).await?,
            before,
            "{b}: bad input created rows"
        );
        r.stop().await;
    }
    Ok(())
}

//! Glance's static per-image quotas (`image_member_quota`, `image_property_quota`,
//! `image_tag_quota`) through glance-api: 413 in Glance's cases, with Glance's `Attempted: N,
//! Maximum: M`; enforced by the registry under the image's row lock, so two concurrent
//! additions at one below a limit never both succeed; on every backend.

use anyhow::Result;
use glance_model::quota::HEADER_IMAGE_QUOTAS;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cloud::TestCloud;
use crate::harness::{TestRegistry, backends, expect_error};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";
const MEMBER: &str = "member,reader";
const PATCH: &str = "application/openstack-images-v2.1-json-patch";

const SMALL_QUOTAS: &str = "[DEFAULT]\nimage_member_quota = 1\nimage_tag_quota = 3\n\
                            image_property_quota = 2\n";

async fn patch(c: &TestCloud, id: &str, ops: Value) -> Result<reqwest::Response> {
    Ok(c.as_(A, MEMBER, Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .json(&ops)
        .send()
        .await?)
}

async fn image_count(c: &TestCloud) -> Result<usize> {
    let list: Value = c
        .as_(A, MEMBER, Method::GET, "/v2/images")
        .send()
        .await?
        .json()
        .await?;
    Ok(list["images"].as_array().map_or(0, Vec::len))
}

/// The cases checked against the real Glance 33 with the same limits (members 1, tags 3,
/// properties 2): which requests it refuses with 413, and the counts its message gives.
#[actix_web::test]
async fn static_quotas_refuse_as_glance_does() -> Result<()> {
    for backend in backends() {
        let conf = format!("[paste_deploy]\nflavor = trusted-auth\n{SMALL_QUOTAS}");
        let c = TestCloud::with_config(backend, &conf).await?;
        let create = |body: Value| {
            c.as_(A, MEMBER, Method::POST, "/v2/images")
                .json(&body)
                .send()
        };

        // Create: over the tag or property limit is a 413 and makes nothing.
        let res = create(json!({"name": "t", "tags": ["a", "b", "c", "d"]})).await?;
        expect_error(res, 413, "Attempted: 4, Maximum: 3").await?;
        let res = create(json!({"name": "p", "p1": "1", "p2": "2", "p3": "3"})).await?;
        let body = expect_error(res, 413, "Attempted: 3, Maximum: 2").await?;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("image_property_quota"),
            "{body}"
        );
        assert_eq!(
            image_count(&c).await?,
            0,
            "{backend}: a refused create left an image"
        );

        // At the limits exactly, a create is accepted.
        let res = create(json!({"name": "s", "visibility": "shared",
                                "tags": ["a", "b", "c"], "p1": "1", "p2": "2"}))
        .await?;
        assert_eq!(res.status(), 201, "{backend}");
        let id = res.json::<Value>().await?["id"]
            .as_str()
            .unwrap()
            .to_string();

        // Tags: a tag the image has is no addition; a fourth is refused.
        let tag = |t: &str| {
            c.as_(A, MEMBER, Method::PUT, &format!("/v2/images/{id}/tags/{t}"))
                .send()
        };
        assert_eq!(tag("a").await?.status(), 204, "{backend}");
        let res = tag("d").await?;
        let body = expect_error(res, 413, "Attempted: 4, Maximum: 3").await?;
        assert!(
            body["message"].as_str().unwrap().contains(&id),
            "the message names the image: {body}"
        );
        let res = patch(
            &c,
            &id,
            json!([{"op": "replace", "path": "/tags", "value": ["w", "x", "y", "z"]}]),
        )
        .await?;
        expect_error(res, 413, "image_tag_quota").await?;

        // Properties: changing one at the limit is fine, adding one is not, adding one while
        // removing another is.
        let res = patch(
            &c,
            &id,
            json!([{"op": "replace", "path": "/p1", "value": "z"}]),
        )
        .await?;
        assert_eq!(res.status(), 200, "{backend}");
        let res = patch(&c, &id, json!([{"op": "add", "path": "/p3", "value": "z"}])).await?;
        expect_error(res, 413, "Attempted: 3, Maximum: 2").await?;
        let res = patch(
            &c,
            &id,
            json!([{"op": "add", "path": "/p3", "value": "z"}, {"op": "remove", "path": "/p1"}]),
        )
        .await?;
        assert_eq!(res.status(), 200, "{backend}");

        let image: Value = c
            .as_(A, MEMBER, Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await?
            .json()
            .await?;
        let mut tags: Vec<&str> = image["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        tags.sort_unstable();
        assert_eq!(
            tags,
            ["a", "b", "c"],
            "{backend}: refused tags were written"
        );
        assert_eq!(
            (&image["p1"], &image["p2"], &image["p3"]),
            (&Value::Null, &json!("2"), &json!("z")),
            "{backend}"
        );

        // Members: one is allowed; a second is 413, and so is the first one again (Glance
        // counts before it looks for the duplicate).
        let members = format!("/v2/images/{id}/members");
        let add = |m: &str| {
            c.as_(A, MEMBER, Method::POST, &members)
                .json(&json!({"member": m}))
                .send()
        };
        assert_eq!(add(B).await?.status(), 200, "{backend}");
        expect_error(add(C).await?, 413, "Attempted: 2, Maximum: 1").await?;
        expect_error(add(B).await?, 413, "image_member_quota").await?;
        let list: Value = c
            .as_(A, MEMBER, Method::GET, &members)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(list["members"].as_array().unwrap().len(), 1, "{backend}");
    }
    Ok(())
}

/// Glance's defaults (128 each): the 129th tag is refused; a negative limit is unlimited.
#[actix_web::test]
async fn defaults_are_128_and_negative_is_unlimited() -> Result<()> {
    let tags: Vec<String> = (0..129).map(|i| format!("t{i}")).collect();
    let c = TestCloud::start().await?;
    let id = c.create(json!({"name": "d"})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .json(&json!([{"op": "replace", "path": "/tags", "value": tags}]))
        .send()
        .await?;
    expect_error(res, 413, "Attempted: 129, Maximum: 128").await?;
    let res = c
        .req(Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", PATCH)
        .json(&json!([{"op": "replace", "path": "/tags", "value": tags[..128]}]))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let res = c
        .req(Method::PUT, &format!("/v2/images/{id}/tags/t128"))
        .send()
        .await?;
    expect_error(res, 413, "Attempted: 129, Maximum: 128").await?;

    let c = TestCloud::with_config(
        "sqlite",
        "[DEFAULT]\nimage_tag_quota = -1\nimage_property_quota = -5\n",
    )
    .await?;
    let mut body = json!({"name": "u", "tags": tags});
    for i in 0..200 {
        body[format!("p{i}")] = json!("v");
    }
    let made = c.create(body).await?;
    assert_eq!(made["tags"].as_array().unwrap().len(), 129);
    Ok(())
}

/// Two additions at one below a limit, sent at once, many times over: exactly one of each
/// pair succeeds, and the image never goes over. Tags (PUT), properties (PATCH) and members.
#[actix_web::test]
async fn concurrent_additions_cannot_both_take_the_last_place() -> Result<()> {
    const ROUNDS: usize = 8;
    for backend in backends() {
        let c = TestCloud::with_config(
            backend,
            "[DEFAULT]\nimage_member_quota = 2\nimage_tag_quota = 2\nimage_property_quota = 2\n",
        )
        .await?;
        for round in 0..ROUNDS {
            let made = c
                .create(
                    json!({"name": "race", "visibility": "shared", "tags": ["t0"],
                               "p0": "v"}),
                )
                .await?;
            let id = made["id"].as_str().unwrap().to_string();
            assert_eq!(
                c.req(Method::POST, &format!("/v2/images/{id}/members"))
                    .json(&json!({"member": A}))
                    .send()
                    .await?
                    .status(),
                200
            );
            let tag = |t: &'static str| {
                c.req(Method::PUT, &format!("/v2/images/{id}/tags/{t}"))
                    .send()
            };
            let prop = |p: &'static str| {
                c.req(Method::PATCH, &format!("/v2/images/{id}"))
                    .header("content-type", PATCH)
                    .json(&json!([{"op": "add", "path": format!("/{p}"), "value": "v"}]))
                    .send()
            };
            let member = |m: &'static str| {
                c.req(Method::POST, &format!("/v2/images/{id}/members"))
                    .json(&json!({"member": m}))
                    .send()
            };
            let (t1, t2, p1, p2, m1, m2) = tokio::join!(
                tag("t1"),
                tag("t2"),
                prop("p1"),
                prop("p2"),
                member(B),
                member(C)
            );
            for (what, x, y) in [
                ("tags", t1?, t2?),
                ("properties", p1?, p2?),
                ("members", m1?, m2?),
            ] {
                let mut got = [x.status().as_u16(), y.status().as_u16()];
                got.sort_unstable();
                assert!(
                    got[0] < 300 && got[1] == 413,
                    "{backend} round {round}: two {what} additions at quota-1 answered {got:?}"
                );
            }
            let image = c.show(&id).await?;
            assert_eq!(image["tags"].as_array().unwrap().len(), 2, "{backend}");
            let props = ["p0", "p1", "p2"]
                .iter()
                .filter(|p| !image[**p].is_null())
                .count();
            assert_eq!(props, 2, "{backend}: {image}");
            let list: Value = c
                .req(Method::GET, &format!("/v2/images/{id}/members"))
                .send()
                .await?
                .json()
                .await?;
            assert_eq!(list["members"].as_array().unwrap().len(), 2, "{backend}");
        }
    }
    Ok(())
}

/// The registry enforces only what glance-api sends: no header (an older glance-api), no
/// limit; a malformed one is a 400 that names the header.
#[actix_web::test]
async fn the_registry_takes_its_limits_from_the_header() -> Result<()> {
    let r = TestRegistry::start("sqlite").await?;
    let tags: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let made = r
        .create(A, json!({"name": "old-api", "tags": tags}))
        .await?;
    assert_eq!(made["tags"].as_array().unwrap().len(), 200);
    let create = |header: &'static str| {
        r.req(Method::POST, "/v1/images", A, "member")
            .header(HEADER_IMAGE_QUOTAS, header)
            .json(&json!({"name": "x", "tags": ["a", "b"]}))
            .send()
    };
    expect_error(create("tags=1").await?, 413, "Attempted: 2, Maximum: 1").await?;
    expect_error(create("tags=lots").await?, 400, HEADER_IMAGE_QUOTAS).await?;
    // A limit this registry does not know (sent by a newer glance-api) is skipped.
    assert_eq!(create("tags=2,widgets=0").await?.status(), 201);
    Ok(())
}
